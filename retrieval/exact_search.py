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
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController

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
    # Each row's product with a constant vector (a language's centring shift), computed once.
    products: dict[bytes, NDArray[np.float32]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = {chunk_id: row for row, chunk_id in enumerate(self.ids)}

    def row_object(self, row: int, make: Callable[[str, str, dict[str, Any]], Any]) -> Any:
        """``make(id, text, metadata)`` of ``row``, made on first use and kept (a snapshot never changes)."""
        found = self.made.get(row)
        if found is None:
            found = self.made[row] = make(self.ids[row], self.texts[row], self.metadatas[row])
        return found

    def scores(self, vectors: Sequence[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        """Each row's cosine to each of ``vectors`` (rows and vectors are unit length)."""
        # One BLAS thread, one matrix-vector product per vector. Multi-threaded BLAS waits for its
        # second thread on our busy 2 cores (10k rows: 12 ms p50 / 36 ms p95); einsum's one thread
        # is slower than BLAS's (100k rows: 42 vs 17 ms). Both vectors in one pass over the matrix
        # (a gemm, or gemv over cache-sized blocks) saved nothing: 42 / 33 vs 35 ms (docs/benchmarks.md).
        if not self.ids:
            return [np.zeros(0, dtype=np.float32) for _ in vectors]
        with one_blas_thread():
            return [self.matrix @ np.asarray(vector, dtype=np.float32) for vector in vectors]

    def shifted_scores(
        self, scores: NDArray[np.float32], shift: NDArray[np.float32], norm: float
    ) -> NDArray[np.float32]:
        """Each row's cosine to ``(q + shift) / norm`` given its ``scores`` against ``q``: the product
        is linear, so only ``matrix @ shift`` is new, and ``shift`` is a constant (one per language)
        whose product is kept. Saves the second pass over the matrix (14.5 ms at 100k rows)."""
        key = np.asarray(shift, dtype=np.float32).tobytes()
        product = self.products.get(key)
        if product is None:
            product = self.products[key] = self.scores([shift])[0]
        return np.asarray((scores + product) / np.float32(norm), dtype=np.float32)

    def nearest(self, vector: NDArray[np.float32], n: int) -> list[tuple[int, float]]:
        """The ``n`` rows most similar to ``vector`` (cosine; rows and ``vector`` are unit length), best first."""
        if n <= 0 or not self.ids:
            return []
        return top_rows(self.scores([vector])[0], n)


def top_rows(scores: NDArray[np.float32], n: int) -> list[tuple[int, float]]:
    """The ``n`` best (row, score) of ``scores``, best first."""
    if n <= 0 or not len(scores):
        return []
    top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(row), float(scores[row])) for row in top]


_blas = ThreadpoolController()
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit: Any = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread while any caller is inside (the limit is process-wide, so it is
    counted: the last caller out restores the original)."""
    global _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = _blas.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def build_snapshot(
    collection: Any, stamp: Stamp, batch: int = 1_000, sibling: Snapshot | None = None
) -> Snapshot:
    """Read every row of ``collection`` in pages of ``batch`` rows (the lists Chroma returns for a
    page are transient; the matrix is filled in place, so the peak is the snapshot plus one page).

    A row whose text and metadata equal ``sibling``'s for the same id (the e5 and USE collections of
    a tenant hold the same chunks) keeps the sibling's objects, so the two snapshots share one copy.
    """
    ids: list[str] = []
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    matrix: NDArray[np.float32] | None = None
    offset = 0
    while True:
        page = collection.get(include=["embeddings", "documents", "metadatas"], limit=batch, offset=offset)
        if not page["ids"]:
            break
        vectors = np.asarray(page["embeddings"], dtype=np.float32)
        if matrix is None or len(matrix) < offset + len(vectors):  # sized from count(); grows if rows appear
            size = max(offset + len(vectors), int(collection.count()), 2 * len(matrix) if matrix is not None else 0)
            grown = np.empty((size, vectors.shape[1]), dtype=np.float32)
            if matrix is not None:
                grown[:offset] = matrix[:offset]
            matrix = grown
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        matrix[offset : offset + len(vectors)] = vectors / np.maximum(norms, 1e-12)
        for chunk_id, text, metadata in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
            row = sibling.rows.get(chunk_id) if sibling is not None else None
            if row is not None and sibling is not None and sibling.texts[row] == text:
                text = sibling.texts[row]
            if row is not None and sibling is not None and sibling.metadatas[row] == metadata:
                metadata = sibling.metadatas[row]
            elif metadata:
                metadata = _interned(metadata)
            ids.append(chunk_id)
            texts.append(text)
            metadatas.append(metadata)
        offset += len(page["ids"])
    if matrix is None:
        matrix = np.zeros((0, 0), dtype=np.float32)
    elif len(matrix) != offset:  # rows deleted while we read (the build is discarded then anyway)
        matrix = np.array(matrix[:offset])
    return Snapshot(stamp, ids, matrix, texts, metadatas)


def _interned(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with its keys and text values interned: Chroma returns new strings for every row,
    though all rows repeat the same 15 keys and most values (tenant, language, kind, a document's
    title...). At 100k rows: 127 MB less (docs/benchmarks.md, Issue #13 Round 4)."""
    return {sys.intern(key): sys.intern(value) if isinstance(value, str) else value for key, value in metadata.items()}


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
        # Snapshots of the same chunks in another store (the USE vectors beside the e5 ones): their
        # texts and metadata are shared, not copied (build_snapshot).
        self._siblings: list[Snapshots] = []
        # One build per tenant at a time among siblings, so the second build finds the first one's
        # rows to share (two at once each held their own copy: docs/benchmarks.md, Round 4).
        self._build_locks: dict[str, threading.Lock] = {}

    def share_rows_with(self, other: Snapshots) -> None:
        """Let this and ``other`` (stores of the same chunks) share each row's text and metadata."""
        shared = other._build_locks  # one table for the whole group (the server makes two USE stores)
        for snapshots in [self, *self._siblings]:
            snapshots._build_locks = shared
        self._siblings.append(other)
        other._siblings.append(self)

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
        with self._build_locks.setdefault(tenant, threading.Lock()):
            return self._build(tenant)

    def _build(self, tenant: str) -> Snapshot | None:
        stamp = self._stamp(tenant)
        started = time.perf_counter()
        sibling = next((found for other in self._siblings if (found := other.ready(tenant)) is not None), None)
        snapshot = build_snapshot(self._collection_of(tenant), stamp, sibling=sibling)
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
