"""Localized versions of a document, linked by a translation key or by their ids.

A document may carry a translation key (front matter or an explicit map, ingest/translation_keys.py):
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

import numpy as np

from retrieval.records import Chunk, Hit
from retrieval.scope import TENANT_SEPARATOR, Scope, tenant_of
from retrieval.vector_store import scope_metadata

if TYPE_CHECKING:
    from retrieval.embedding import Vector
    from retrieval.registry import DocumentRegistry
    from retrieval.vector_store import ChromaStore


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


def localized_first(
    hits: list[Hit],
    vector: Vector,
    language: str,
    scope: Scope,
    registry: DocumentRegistry | None,
    store: ChromaStore,
    margin: float,
) -> list[Hit]:
    """``hits`` with the question-language version of the best document first, when the KB has one
    in scope whose best passage scores within ``margin`` of the best hit. It takes the
    place (and fused score) of the hit it localizes; that hit moves down one."""
    top = hits[0]
    sibling = translation_id(top.chunk, language, registry) if registry is not None else None
    if sibling is None or registry is None:
        return hits
    record = registry.get(sibling)
    if record is None:
        return hits
    passages = [
        (chunk, float(np.dot(embedding, vector)))
        for chunk, embedding in store.embedded(record.chunk_ids)
        if chunk.version == record.version and scope.allows(scope_metadata(chunk))
    ]
    if not passages:
        return hits
    chunk, cosine = max(passages, key=lambda passage: passage[1])
    if cosine < top.score - margin:
        return hits
    known = next((hit for hit in hits if hit.chunk.chunk_id == chunk.chunk_id), None)
    localized = Hit(chunk, cosine, known.lexical_score if known else 0.0, top.fused_score)
    rest = [hit for hit in hits if hit.chunk.chunk_id != chunk.chunk_id]
    return [localized, *rest]
