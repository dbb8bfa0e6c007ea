"""Localized versions of a document, linked by a translation key or by their ids.

A document may carry a translation key (front matter or an explicit map, ingest/translations.py):
documents of one tenant with the same key are one article, whatever their ids. Without one:

Translations share their id after a leading locale segment: the sample KB keeps them as
``data/kb/<locale>/<name>``, so ``en/faq-refunds``, ``ru/faq-refunds`` and ``lv/faq-refunds`` are
one article in three languages (for another tenant, ``acme:en/faq-refunds`` and so on). A file kept
elsewhere joins its translations by front matter, e.g. ``id: ru/faq-refunds``. Only documents whose
id starts with their own language are linked, so an id like ``en/…`` on a Russian document links
nothing by mistake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrieval.scope import TENANT_SEPARATOR, tenant_of

if TYPE_CHECKING:
    from retrieval.registry import DocumentRegistry
    from retrieval.types import Chunk


def same_article(a: Chunk, b: Chunk) -> bool:
    """The same document, or language versions of one article (by translation key or by id)."""
    if a.document_id == b.document_id:
        return True
    if a.translation_key and a.translation_key == b.translation_key and a.tenant == b.tenant:
        return True
    return localized_id(a.document_id, a.language, b.language) == b.document_id


def translation_id(chunk: Chunk, language: str, registry: DocumentRegistry) -> str | None:
    """The id of the ``language`` version of ``chunk``'s document, or None when none is linked
    (by key: one that is ingested; by id: the id it would have)."""
    if chunk.language == language:
        return None
    for record in registry.translations(chunk.translation_key):
        if record.language == language and tenant_of(record.document_id) == chunk.tenant:
            return record.document_id
    return localized_id(chunk.document_id, chunk.language, language)


def localized_id(document_id: str, document_language: str, language: str) -> str | None:
    """The id the ``language`` version of a document would have, or None when its id has no locale segment.

    >>> localized_id("acme:en/faq-refunds", "en", "ru")
    'acme:ru/faq-refunds'
    """
    owner, separator, local_id = document_id.partition(TENANT_SEPARATOR)
    prefix = f"{owner}{separator}" if separator else ""
    if not separator:
        local_id = document_id
    head, slash, rest = local_id.partition("/")
    if not slash or not rest or head.lower() != document_language.lower() or head.lower() == language.lower():
        return None
    return f"{prefix}{language}/{rest}"
