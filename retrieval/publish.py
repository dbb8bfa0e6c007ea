"""Writing documents so that readers never see a mix of versions, a gap, or leftovers after a crash.

Every chunk carries its document's version (and the version is part of its id), and the registry
says which version of each document is live; readers drop hits of any other version. Publishing
version N+1 of a document:

1. journal the new chunk ids (registry transaction);
2. write the new chunks to every chunk index (the vector store, the lexical index, and the USE
   vector store with their USE vectors when computed: retrieval/use_encoder.py);
3. in one registry transaction, make N+1 live and journal version N's chunks as retired;
4. delete the retired chunks from every index and clear their journal entry.

Until step 3 readers use version N, from then on N+1: never both, never neither. A crash leaves at
most journalled chunks that are not live; :meth:`Publisher.recover` deletes them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from retrieval.records import Chunk
from retrieval.registry import DocumentRecord, DocumentRegistry, JournalEntry
from retrieval.scope import tenant_of

logger = logging.getLogger(__name__)


class ChunkIndex(Protocol):
    """A store of chunks keyed by chunk id: the vector store, the lexical (BM25) index."""

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None: ...

    def delete(self, chunk_ids: Sequence[str]) -> None: ...

    def inventory(self) -> dict[str, tuple[str, int]]:
        """Every chunk id with its document id and version."""
        ...


@dataclass(frozen=True)
class Publication:
    """A new version of one document: its registry record, chunks and their embeddings."""

    record: DocumentRecord
    chunks: list[Chunk]
    embeddings: NDArray[np.float32]
    previous: DocumentRecord | None = None
    # USE vectors of ``chunks`` (rows in the same order), or None: not computed (a language USE does
    # not cover, or no USE store), so the USE leg skips these chunks.
    use_embeddings: NDArray[np.float32] | None = None


class Publisher:
    """The only writer of documents: keeps the registry and every chunk index in agreement.

    ``use_index`` holds the publications' USE vectors (a second vector store); it is written and
    deleted from with the other indexes, but a live chunk may lack a USE vector there.
    """

    def __init__(
        self, registry: DocumentRegistry, indexes: Sequence[ChunkIndex], use_index: ChunkIndex | None = None
    ) -> None:
        self.registry = registry
        self.indexes = list(indexes)
        self.use_index = use_index

    def publish(self, publications: Sequence[Publication]) -> None:
        """Make each publication's version live (several documents share the writes)."""
        if not publications:
            return
        staged = self.registry.stage(
            [(item.record.document_id, [chunk.chunk_id for chunk in item.chunks]) for item in publications]
        )
        chunks = [chunk for item in publications for chunk in item.chunks]
        embeddings = np.concatenate([item.embeddings for item in publications], axis=0)
        for index in self.indexes:
            index.upsert(chunks, embeddings)
        with_use = [item for item in publications if item.use_embeddings is not None and item.chunks]
        if self.use_index is not None and with_use:
            self.use_index.upsert(
                [chunk for item in with_use for chunk in item.chunks],
                np.concatenate([item.use_embeddings for item in with_use if item.use_embeddings is not None]),
            )
        retired = [
            (item.previous.document_id, item.previous.chunk_ids) for item in publications if item.previous is not None
        ]
        retired_ids = self.registry.commit([item.record for item in publications], staged, retired)
        entries = [JournalEntry(entry_id, doc, ids) for entry_id, (doc, ids) in zip(retired_ids, retired, strict=True)]
        self._drop(entries)

    def remove(self, document_ids: Sequence[str]) -> None:
        """Remove documents: gone from readers at once, their chunks deleted right after."""
        if document_ids:
            self._drop(self.registry.retire(document_ids))

    def recover(self, tenants: Collection[str] | None = None) -> int:
        """Delete chunks left by an interrupted write (of ``tenants`` only, when given: the caller
        holds their write locks, ingest/locks.py); returns how many journal entries were replayed."""
        entries = [
            entry for entry in self.registry.journal() if tenants is None or tenant_of(entry.document_id) in tenants
        ]
        if entries:
            logger.warning("recovering from an interrupted ingest: %d journal entries", len(entries))
            live = self.registry.live_versions({entry.document_id for entry in entries})
            records = {document_id: self.registry.get(document_id) for document_id in live}
            live_ids = {chunk_id for record in records.values() if record for chunk_id in record.chunk_ids}
            stale = [[chunk_id for chunk_id in entry.chunk_ids if chunk_id not in live_ids] for entry in entries]
            self._drop([JournalEntry(e.entry_id, e.document_id, ids) for e, ids in zip(entries, stale, strict=True)])
        return len(entries)

    def audit(self) -> list[str]:
        """Every disagreement between the registry and the chunk indexes (empty when consistent)."""
        records = self.registry.all()
        live = {chunk_id: (record.document_id, record.version) for record in records for chunk_id in record.chunk_ids}
        problems = []
        if len(live) != sum(len(record.chunk_ids) for record in records):
            problems.append("registry: a chunk id is listed by two documents or twice")
        pending = self.registry.journal()
        if pending:
            problems.append(f"registry: {len(pending)} journal entries await recovery")
        for index in self._all_indexes:
            name = "USE vectors" if index is self.use_index else type(index).__name__
            stored = index.inventory()
            orphans = sorted(set(stored) - set(live))
            # A live chunk may lack its USE vector (its language is not covered, or it was ingested
            # before the USE leg): the leg skips it; see :meth:`use_coverage`.
            missing = [] if index is self.use_index else sorted(set(live) - set(stored))
            wrong = sorted(i for i in set(live) & set(stored) if stored[i] != live[i])
            if orphans:
                problems.append(f"{name}: {len(orphans)} chunks not live in the registry, e.g. {orphans[0]}")
            if missing:
                problems.append(f"{name}: {len(missing)} live chunks missing, e.g. {missing[0]}")
            if wrong:
                problems.append(f"{name}: {len(wrong)} chunks with another document or version, e.g. {wrong[0]}")
        return problems

    def use_coverage(self) -> tuple[int, int] | None:
        """(live chunks with a USE vector, live chunks), or None without a USE index."""
        if self.use_index is None:
            return None
        live = {chunk_id for record in self.registry.all() for chunk_id in record.chunk_ids}
        return len(live & set(self.use_index.inventory())), len(live)

    @property
    def _all_indexes(self) -> list[ChunkIndex]:
        return [*self.indexes, self.use_index] if self.use_index is not None else self.indexes

    def _drop(self, entries: Sequence[JournalEntry]) -> None:
        chunk_ids = [chunk_id for entry in entries for chunk_id in entry.chunk_ids]
        for index in self._all_indexes:
            index.delete(chunk_ids)
        self.registry.clear_journal([entry.entry_id for entry in entries])
