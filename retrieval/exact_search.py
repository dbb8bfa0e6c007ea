"""Exact vector search over a snapshot of one Chroma collection kept in memory.

Chroma stays the store of record; this is a read cache of one collection: its ids, a contiguous
float32 matrix of unit vectors, and each chunk's text and metadata. A search returns the exact
neighbours with their exact scores (Chroma's HNSW, at the settings in retrieval/vector_store.py,
finds ~0.97 of them at 100k chunks; the peer's 0.46 on the bench's near-duplicates). Below
``PREFILTER_ROWS`` rows it is one float32 matrix-vector product and a partial sort. A bigger
snapshot also holds an int8 copy of its matrix in an onnxruntime session (``Int8Prefilter``, built
with the snapshot): it scores every row approximately, 2.5–4× faster than the float32 pass at
100k rows, and only the rows whose approximate score is near enough the best ones to be among them
are rescored from the float32 matrix (``Scores.top``), so rankings and scores are those of the
float32 pass (docs/benchmarks.md, "Issue #13", "Round 4" and "Round 5").

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
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController

from retrieval.onnx_runtime import onnxruntime

logger = logging.getLogger(__name__)

Stamp = tuple[int, int]
# A collection up to this size is read in the searching thread (~0.1 s at 10k rows): evaluations and
# small knowledge bases get exact results from the first question. A bigger one loads in the background.
SYNC_BUILD_ROWS = 20_000
# A snapshot of at least this many rows gets an int8 prefilter (Int8Prefilter). At 10k rows the float32
# pass takes ~1 ms and a question with its centred form gained nothing; at 20k 3.0 vs 1.9 ms, at 100k
# 21 vs 8 ms (docs/benchmarks.md, "Round 4"). Read at each build, so a check can lower it.
PREFILTER_ROWS = 20_000


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
    # Picks the candidates of a big snapshot's searches (None: every row is scored exactly).
    prefilter: Int8Prefilter | None = None

    def __post_init__(self) -> None:
        self.rows = {chunk_id: row for row, chunk_id in enumerate(self.ids)}

    def row_object(self, row: int, make: Callable[[str, str, dict[str, Any]], Any]) -> Any:
        """``make(id, text, metadata)`` of ``row``, made on first use and kept (a snapshot never changes)."""
        found = self.made.get(row)
        if found is None:
            found = self.made[row] = make(self.ids[row], self.texts[row], self.metadatas[row])
        return found

    def scores(self, vector: NDArray[np.float32]) -> Scores:
        """Each row's cosine to ``vector`` (rows and vector are unit length): exact, or, with a
        prefilter, approximate for every row and exact for the best ones (:meth:`Scores.top`)."""
        vector = np.asarray(vector, dtype=np.float32)
        if self.prefilter is None:
            return Scores(self.matrix, vector, self.product(vector), exact=True)
        return Scores(self.matrix, vector, self.prefilter.scores(vector), exact=False, error=self.prefilter.error)

    def product(self, vector: NDArray[np.float32]) -> NDArray[np.float32]:
        """``matrix @ vector`` in float32, exact."""
        # One BLAS thread, one matrix-vector product. Multi-threaded BLAS waits for its second thread
        # on our busy 2 cores (10k rows: 12 ms p50 / 36 ms p95); einsum's one thread is slower than
        # BLAS's (100k rows: 42 vs 17 ms). Both vectors in one pass over the matrix (a gemm, or gemv
        # over cache-sized blocks) saved nothing: 42 / 33 vs 35 ms (docs/benchmarks.md).
        if not self.ids:
            return np.zeros(0, dtype=np.float32)
        with one_blas_thread():
            return self.matrix @ np.asarray(vector, dtype=np.float32)

    def shifted_scores(self, scores: Scores, shift: NDArray[np.float32], norm: float) -> Scores:
        """Each row's cosine to ``(q + shift) / norm`` given its ``scores`` against ``q``: the product
        is linear, so only ``matrix @ shift`` is new, and ``shift`` is a constant (one per language)
        whose product is kept. Saves the second pass over the matrix (14.5 ms at 100k rows)."""
        key = np.asarray(shift, dtype=np.float32).tobytes()
        product = self.products.get(key)
        if product is None:
            product = self.products[key] = self.product(shift)
        return scores.shifted(product, norm)

    def nearest(self, vector: NDArray[np.float32], n: int) -> list[tuple[int, float]]:
        """The ``n`` rows most similar to ``vector`` (cosine; rows and ``vector`` are unit length), best first."""
        if n <= 0 or not self.ids:
            return []
        return self.scores(vector).top(n)


@dataclass
class Scores:
    """One question's scores over a snapshot: ``approximate`` holds every row's (the exact cosine when
    ``exact``); :meth:`top` gives exact scores, rescoring the prefilter's best rows in float32.

    The score of a row is ``(matrix[row] @ vector + offset[row]) / norm`` (offset and norm: a shifted
    question, :meth:`shifted`)."""

    matrix: NDArray[np.float32]
    vector: NDArray[np.float32]
    approximate: NDArray[np.float32]
    exact: bool
    offset: NDArray[np.float32] | None = None
    norm: float = 1.0
    # How far an approximate score may be from the exact one (Int8Prefilter.error).
    error: float = 0.0
    # Rows rescored for a number of wanted rows (with their exact scores), reused when a scope widens.
    _rescored: dict[int, tuple[NDArray[np.intp], NDArray[np.float32]]] = field(default_factory=dict)

    def shifted(self, offset: NDArray[np.float32], norm: float) -> Scores:
        """The scores of ``(vector + shift) / norm`` given each row's product ``offset`` with the shift."""
        approximate = np.asarray((self.approximate + offset) / np.float32(norm), dtype=np.float32)
        return Scores(self.matrix, self.vector, approximate, self.exact, offset, norm, self.error / norm)

    def rescore(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        """The exact scores of ``rows``."""
        with one_blas_thread():
            scores = self.matrix[rows] @ self.vector
        if self.offset is not None:
            scores = np.asarray((scores + self.offset[rows]) / np.float32(self.norm), dtype=np.float32)
        return scores

    def top(self, n: int, among: NDArray[np.intp] | None = None) -> list[tuple[int, float]]:
        """The ``n`` best (row, exact score), best first (ties: lower row first); only among the rows
        ``among`` (ascending) when given. Rows are rescored exactly when their approximate score is within
        ``2 · error`` of the ``n``-th best approximate one: at least ``n`` rows score at least that
        minus ``error`` exactly, so a row of the exact top ``n`` cannot score less than it minus
        ``2 · error`` approximately. Approximate scores alone misorder near-duplicates."""
        pool = self.approximate if among is None else self.approximate[among]
        if self.exact:
            return [(row if among is None else int(among[row]), score) for row, score in top_rows(pool, n)]
        found = self._rescored.get(n) if among is None else None
        if found is None:
            picked = np.arange(len(pool))
            if n < len(pool):
                nth = np.partition(pool[best_candidates(pool, n)], -n)[-n]  # the n-th best approximate score
                picked = np.flatnonzero(pool >= nth - np.float32(2 * self.error))
            rows = picked if among is None else among[picked]
            found = (rows, self.rescore(rows))
            if among is None:
                self._rescored[n] = found
        rows, scores = found
        return [(int(rows[i]), score) for i, score in top_rows(scores, n)]


class Int8Prefilter:
    """Approximate scores of every row from an int8 copy of the matrix: about 6× faster than the
    float32 pass at 100k rows (a quarter of the bytes, and onnxruntime's packed integer kernel;
    docs/benchmarks.md, "Round 4").

    Each row is quantised with its own scale (``max |x| / 127``), the question with one scale and
    zero point 128 (uint8: onnxruntime's fast u8 × s8 kernel). The int8 matrix is a constant of the
    model, so the session packs it once; a run-time input, or an int8 question, took 6–38 ms. Memory
    at 100k × 384: +73 MB resident, +147 MB at the peak of the build (0.25 s); the float32 matrix
    is 146 MB."""

    def __init__(self, matrix: NDArray[np.float32], block: int = 1_024) -> None:
        from onnx import TensorProto, helper

        rows, dims = matrix.shape
        self.scales = np.empty(rows, dtype=np.float32)
        transposed = np.empty((dims, rows), dtype=np.int8)  # B of MatMulInteger: dims × rows
        for start in range(0, rows, block):  # small blocks: no float32 copy of the matrix, less heap left
            part = matrix[start : start + block]
            scales = self.scales[start : start + block]
            scales[:] = np.maximum(np.abs(part).max(axis=1), np.float32(1e-30)) / np.float32(127)
            transposed[:, start : start + block] = np.rint(part / scales[:, None]).T
        # The int8 matrix reaches the session as an "external" initializer read from our array (no
        # serialized copy); once the session is built it holds only its packed copy, and the array
        # may go (onnxruntime's AddExternalInitializers). As a constant inside the model: 85 MB kept at 100k.
        placeholder = TensorProto(name="matrix", data_type=TensorProto.INT8, dims=[dims, rows])
        placeholder.data_location = TensorProto.EXTERNAL
        placeholder.external_data.add(key="location", value="in-memory")
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["question", "matrix", "zero"], ["scores"])],
            "int8_prefilter",
            [helper.make_tensor_value_info("question", TensorProto.UINT8, [1, dims])],
            [helper.make_tensor_value_info("scores", TensorProto.INT32, [1, rows])],
            [placeholder, helper.make_tensor("zero", TensorProto.UINT8, [], [128])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one question, one thread, as the float32 pass
        options.enable_cpu_mem_arena = False
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_external_initializers(["matrix"], [ort.OrtValue.ortvalue_from_numpy(transposed)])
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.error = 2 * self._largest_error(matrix)

    def _largest_error(self, matrix: NDArray[np.float32], questions: int = 32, rows: int = 4_096) -> float:
        """The largest gap between approximate and exact scores seen with ``questions`` of the matrix's
        own rows as questions, over ``rows`` of its rows (0.07 s at 100k). It fell 15–35% short of the
        largest gap over every row for 150 real questions, hence ``error`` is twice it (docs/benchmarks.md,
        "Round 5")."""
        rng = np.random.default_rng(len(matrix))
        sample = rng.choice(len(matrix), size=min(rows, len(matrix)), replace=False)
        asked = matrix[rng.choice(len(matrix), size=min(questions, len(matrix)), replace=False)]
        return max(float(np.abs(self.scores(vector)[sample] - matrix[sample] @ vector).max()) for vector in asked)

    def scores(self, vector: NDArray[np.float32]) -> NDArray[np.float32]:
        """Every row's approximate product with ``vector``."""
        scale = max(float(np.abs(vector).max()), 1e-30) / 127
        question = (np.rint(vector / np.float32(scale)) + 128).astype(np.uint8)[None, :]
        products = self.session.run(None, {"question": question})[0][0]
        return np.asarray(np.multiply(products, self.scales * np.float32(scale), dtype=np.float32))


def best_candidates(scores: NDArray[np.float32], wanted: int) -> NDArray[np.intp]:
    """The rows (ascending) of at least the ``wanted`` best ``scores``: every row at or above a bound
    read off a fixed random sample of 8,192 rows, set to keep ~1.25 × ``wanted`` and ~100 more (a
    compare and ``flatnonzero``: 0.06 vs 0.8 ms for argpartition at 100k rows). When the bound keeps
    too few, or too many (ties), argpartition picks exactly ``wanted``."""
    if wanted >= len(scores):
        return np.arange(len(scores))
    sample = _sample_rows(len(scores))
    if len(sample):
        drawn = scores[sample]
        keep = min(len(drawn), int(1.25 * wanted * len(drawn) / len(scores)) + 8)
        bound = np.partition(drawn, len(drawn) - keep)[len(drawn) - keep]
        rows = np.flatnonzero(scores >= bound)
        if wanted <= len(rows) <= max(3 * wanted, 2_048):
            return rows
    cut = len(scores) - wanted  # the wanted best are above it (no negated copy of 100k scores)
    return np.sort(np.argpartition(scores, cut)[cut:])


@lru_cache(maxsize=8)
def _sample_rows(rows: int, size: int = 8_192) -> NDArray[np.intp]:
    """A fixed random sample of ``rows`` positions (none below 4 × ``size`` rows, where argpartition is as
    fast). Random, not strided: the rows of a store come in runs of one document's chunks, and a stride
    in step with them (the bench's copies of 300 passages, every 12th row) saw a twelfth of the bases."""
    if rows < 4 * size:
        return np.zeros(0, dtype=np.intp)
    return np.sort(np.random.default_rng(rows).choice(rows, size, replace=False))


def top_rows(scores: NDArray[np.float32], n: int) -> list[tuple[int, float]]:
    """The ``n`` best (row, score) of ``scores``, best first; of equal scores the lower row first."""
    if n <= 0 or not len(scores):
        return []
    if n < len(scores):
        bound = scores[np.argpartition(-scores, n - 1)[n - 1]]
        top = np.flatnonzero(scores >= bound)  # the n best and any tied with the last (ascending)
    else:
        top = np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")][:n]
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


def build_snapshot(collection: Any, stamp: Stamp, batch: int = 1_000, sibling: Snapshot | None = None) -> Snapshot:
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
    prefilter = Int8Prefilter(matrix) if ids and len(ids) >= PREFILTER_ROWS else None
    return Snapshot(stamp, ids, matrix, texts, metadatas, prefilter=prefilter)


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
        logger.info(
            "exact search: %d vectors of tenant %s in memory (%.1f s)",
            len(snapshot.ids),
            tenant,
            time.perf_counter() - started,
        )
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
