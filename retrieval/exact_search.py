"""Exact vector search over a snapshot of one Chroma collection kept in memory.

Chroma stays the store of record; this is a read cache of one collection: its ids, a contiguous
float32 matrix of unit vectors, and each chunk's text and metadata. A search is one matrix-vector
product and a partial sort, so it returns the exact neighbours (Chroma's HNSW, at the settings in
retrieval/vector_store.py, finds ~0.97 of them at 100k chunks) and, on our 2 cores, in less time
than an HNSW query (docs/benchmarks.md, "Issue #13").

A snapshot is stamped with the tenant's state when it was read, and dropped when the stamp changes:
on every write through this process's store, and on a write by another process, noticed from the
stamp read before each search. An embedded store's stamp is its Chroma database file's size and
modification time (one ``stat``: the CLI ingesting while the server runs); on Chroma servers it is
the collection's generation in SQL (retrieval/generations.py, bumped after every write by any
replica, read at most every 0.25 s), so another replica's write is seen within that. A snapshot is
(re)built in a background thread from ``collection.get``; until it is ready the store answers from
Chroma as before. A build that saw the file change while it read is discarded and tried again at
the next search.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

Stamp = tuple[int, int]
# A collection up to this size is read in the searching thread (~0.1 s at 10k rows): evaluations and
# small knowledge bases get exact results from the first question. A bigger one loads in the background.
SYNC_BUILD_ROWS = 20_000


def file_stamp(path: Path) -> Stamp:
    """(size, mtime in ns) of ``path``; (0, 0) when it is missing."""
    try:
        status = path.stat()
    except OSError:
        return (0, 0)
    return (status.st_size, status.st_mtime_ns)


@dataclass
class Snapshot:
    """One collection as read at ``stamp``: row ``i`` is chunk ``ids[i]`` with its unit vector, text and metadata."""

    stamp: Stamp
    ids: list[str]
    matrix: NDArray[np.float32]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    rows: dict[str, int] = field(default_factory=dict)
    # Rows already turned into the caller's objects (ChromaStore: Chunks), made once per row.
    made: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = {chunk_id: row for row, chunk_id in enumerate(self.ids)}

    def row_object(self, row: int, make: Callable[[str, str, dict[str, Any]], Any]) -> Any:
        """``make(id, text, metadata)`` of ``row``, made on first use and kept (a snapshot never changes)."""
        found = self.made.get(row)
        if found is None:
            found = self.made[row] = make(self.ids[row], self.texts[row], self.metadatas[row])
        return found

    def nearest(self, vector: NDArray[np.float32], n: int) -> list[tuple[int, float]]:
        """The ``n`` rows most similar to ``vector`` (cosine; rows and ``vector`` are unit length), best first."""
        if n <= 0 or not self.ids:
            return []
        # einsum, not ``@``: multi-threaded BLAS waits for its second thread, which on our busy 2 cores
        # made a 10k-row product take 12 ms p50 / 36 ms p95; einsum's one thread took 0.6 / 8.7 ms.
        scores = np.einsum("ij,j->i", self.matrix, np.asarray(vector, dtype=np.float32))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(row), float(scores[row])) for row in top]


def build_snapshot(collection: Any, stamp: Stamp, batch: int = 20_000) -> Snapshot:
    """Read every row of ``collection`` (in pages, to bound the transient lists Chroma returns)."""
    ids: list[str] = []
    parts: list[NDArray[np.float32]] = []
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = collection.get(include=["embeddings", "documents", "metadatas"], limit=batch, offset=offset)
        if not page["ids"]:
            break
        ids.extend(page["ids"])
        parts.append(np.asarray(page["embeddings"], dtype=np.float32))
        texts.extend(page["documents"])
        metadatas.extend(page["metadatas"])
        offset += len(page["ids"])
    matrix = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True) if parts else matrix
    matrix = np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)
    return Snapshot(stamp, ids, matrix, texts, metadatas)


class Snapshots:
    """Per-tenant snapshots of a store's collections, built in the background and dropped on writes.

    ``collection_of(tenant)`` gives the Chroma collection; ``stamp(tenant)`` its current stamp.
    """

    def __init__(self, collection_of: Callable[[str], Any], stamp: Callable[[str], Stamp]) -> None:
        self._collection_of = collection_of
        self._stamp = stamp
        self._ready: dict[str, Snapshot] = {}
        self._building: set[str] = set()
        self._sizes: dict[str, int] = {}  # rows at the last build (or count): small ones build in line
        self._lock = threading.Lock()

    def ready(self, tenant: str) -> Snapshot | None:
        """The tenant's snapshot when one is built and up to date (never starts a build)."""
        snapshot = self._ready.get(tenant)
        if snapshot is not None and snapshot.stamp == self._stamp(tenant):
            return snapshot
        if snapshot is not None:
            self._ready.pop(tenant, None)
        return None

    def current(self, tenant: str) -> Snapshot | None:
        """The tenant's up-to-date snapshot, built now when the collection is small; for a big one
        None, and a build starts in the background (searches use Chroma meanwhile)."""
        snapshot = self.ready(tenant)
        if snapshot is not None:
            return snapshot
        with self._lock:
            if tenant in self._building:
                return None
        if self._size(tenant) <= SYNC_BUILD_ROWS:
            return self.build(tenant)
        self._start_build(tenant)
        return None

    def _size(self, tenant: str) -> int:
        if tenant not in self._sizes:
            self._sizes[tenant] = int(self._collection_of(tenant).count())
        return self._sizes[tenant]

    def drop(self, tenants: Sequence[str]) -> None:
        """Forget the snapshots of ``tenants`` (this process wrote to them); rebuilt at the next search."""
        for tenant in tenants:
            self._ready.pop(tenant, None)

    def clear(self) -> None:
        self._ready.clear()
        self._sizes.clear()

    def build(self, tenant: str) -> Snapshot | None:
        """Build the tenant's snapshot now, in this thread; None when the store changed meanwhile."""
        stamp = self._stamp(tenant)
        started = time.perf_counter()
        snapshot = build_snapshot(self._collection_of(tenant), stamp)
        if self._stamp(tenant) != stamp:  # written while we read: the snapshot may mix two states
            return None
        self._ready[tenant] = snapshot
        self._sizes[tenant] = len(snapshot.ids)
        logger.info("exact search: %d vectors of tenant %s in memory (%.1f s)", len(snapshot.ids), tenant,
                    time.perf_counter() - started)
        return snapshot

    def _start_build(self, tenant: str) -> None:
        with self._lock:
            if tenant in self._building:
                return
            self._building.add(tenant)

        def run() -> None:
            try:
                self.build(tenant)
            except Exception:  # the store is down or changing; searches keep using Chroma
                logger.warning("exact search: building the snapshot of tenant %s failed", tenant, exc_info=True)
            finally:
                with self._lock:
                    self._building.discard(tenant)

        threading.Thread(target=run, name=f"exact-search-{tenant}", daemon=True).start()
