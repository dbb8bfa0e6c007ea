"""Localized versions of a document, linked by their ids.

Translations share their id after a leading locale segment: the sample KB keeps them as
``data/kb/<locale>/<name>``, so ``en/faq-refunds``, ``ru/faq-refunds`` and ``lv/faq-refunds`` are
one article in three languages (for another tenant, ``acme:en/faq-refunds`` and so on). A file kept
elsewhere joins its translations by front matter, e.g. ``id: ru/faq-refunds``. Only documents whose
id starts with their own language are linked, so an id like ``en/…`` on a Russian document links
nothing by mistake.
"""

from __future__ import annotations

from retrieval.scope import TENANT_SEPARATOR


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
