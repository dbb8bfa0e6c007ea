"""The lexical leg: BM25 (bm25s) over the analysed terms of every chunk, kept in sync by ingestion.

The durable state is one row per chunk in SQLite (its terms, retrieval/analysis.py, and the metadata a
:class:`~retrieval.scope.Scope` checks); bm25s's matrices are rebuilt from it when a generation counter
that every write bumps has changed, in a background thread while searches use the previous matrices
(the first build and :meth:`LexicalIndex.refresh` run in the caller's thread). Every hit is checked
against the scope here and against the live versions by the retriever. It is a
:class:`~retrieval.publish.ChunkIndex`, written by the Publisher beside the vector store. Why, with
measurements: docs/decisions.md.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common.sql import FileGuard
from retrieval.analysis import analyze
from retrieval.records import Chunk
from retrieval.registry import DocumentRegistry
from retrieval.scope import TAG_KEY_PREFIX, Scope

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    audience TEXT NOT NULL,
    language TEXT NOT NULL,
    product TEXT NOT NULL,
    tags TEXT NOT NULL,   -- JSON list
    terms TEXT NOT NULL   -- analysed terms joined by spaces (a term never holds whitespace)
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state (key, value) VALUES ('generation', 0);
"""
_BATCH = 500
_MASK_CACHE = 64  # scopes whose chunk masks are kept per snapshot


@dataclass(frozen=True)
class LexicalMatch:
    """A chunk the lexical leg found, with its BM25 score."""

    chunk_id: str
    document_id: str
    version: int
    language: str
    score: float


def chunk_terms(chunk: Chunk) -> list[str]:
    """What the index holds for a chunk: the analysed title, headings and text, as the embedder sees them."""
    return analyze(chunk.embedding_text, chunk.language)


@dataclass
class _Snapshot:
    """The bm25s matrices of one generation of the table, with the columns scopes are checked on."""

    generation: int
    bm25: Any = None  # bm25s.BM25, None when the table is empty
    chunk_ids: list[str] = field(default_factory=list)
    document_ids: list[str] = field(default_factory=list)
    versions: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Each categorical column as (distinct values, code per chunk).
    columns: dict[str, tuple[list[str], NDArray[np.int32]]] = field(default_factory=dict)
    tags: list[frozenset[str]] = field(default_factory=list)
    rows_by_tag: dict[str, NDArray[np.int64]] = field(default_factory=dict)
    rows_by_document: dict[str, list[int]] = field(default_factory=dict)
    masks: dict[Scope, NDArray[np.float32]] = field(default_factory=dict)
    masks_lock: threading.Lock = field(default_factory=threading.Lock)  # searches run in several threads

    def metadata(self, row: int) -> dict[str, Any]:
        """The chunk's metadata under the keys the vector store uses, for :meth:`Scope.allows`."""
        values: dict[str, Any] = {name: names[codes[row]] for name, (names, codes) in self.columns.items()}
        values["document_id"] = self.document_ids[row]
        values.update({TAG_KEY_PREFIX + tag: True for tag in self.tags[row]})
        return values

    def mask(self, scope: Scope) -> NDArray[np.float32]:
        """1.0 for the chunks ``scope`` allows, else 0.0 (a bm25s ``weight_mask``); cached per scope."""
        with self.masks_lock:
            cached = self.masks.get(scope)
        if cached is not None:
            return cached
        allowed = self._allowed("tenant", {scope.tenant}) & self._allowed("audience", scope.audiences)
        if scope.languages is not None:
            allowed &= self._allowed("language", scope.languages)
        if scope.products is not None:
            allowed &= self._allowed("product", scope.products)
        if scope.tags is not None:
            tagged = np.zeros(len(self.chunk_ids), dtype=bool)
            for tag in scope.tags:
                tagged[self.rows_by_tag.get(tag, [])] = True
            allowed &= tagged
        if scope.document_ids is not None:
            chosen = np.zeros(len(self.chunk_ids), dtype=bool)
            for document_id in scope.document_ids:
                chosen[self.rows_by_document.get(document_id, [])] = True
            allowed &= chosen
        mask = allowed.astype(np.float32)
        with self.masks_lock:
            if len(self.masks) >= _MASK_CACHE:
                self.masks.pop(next(iter(self.masks)))
            self.masks[scope] = mask
        return mask

    def _allowed(self, column: str, values: Iterable[str]) -> NDArray[np.bool_]:
        names, codes = self.columns[column]
        wanted = [code for code, name in enumerate(names) if name in set(values)]
        return np.isin(codes, wanted)


class LexicalIndex:
    """BM25 over chunk terms, durable in ``<path>/chunks.sqlite3``; search within a scope."""

    def __init__(self, path: Path, background_rebuild: bool = True) -> None:
        self.path = path
        self.background_rebuild = background_rebuild
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # guards the connection
        self._rebuild_lock = threading.Lock()  # one rebuild at a time
        self._snapshot: _Snapshot | None = None
        self._rebuilding = False
        self.last_rebuild_seconds = 0.0
        self._guard = FileGuard(self.database)  # a deleted file is an error, not silently lost writes

    @property
    def database(self) -> Path:
        return self.path / "chunks.sqlite3"

    # -- writing (retrieval/publish.py's ChunkIndex) ------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32] | None = None) -> None:
        """Add or replace chunks (``embeddings`` are ignored: the protocol passes them to every index)."""
        if not chunks:
            return
        rows = [
            (
                chunk.chunk_id,
                chunk.document_id,
                chunk.version,
                chunk.tenant,
                chunk.audience,
                chunk.language,
                chunk.product,
                json.dumps(sorted(chunk.tags), ensure_ascii=False),
                " ".join(chunk_terms(chunk)),
            )
            for chunk in chunks
        ]
        with self._write() as connection:
            connection.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        with self._write() as connection:
            for start in range(0, len(chunk_ids), _BATCH):
                batch = list(chunk_ids[start : start + _BATCH])
                marks = ",".join("?" * len(batch))
                connection.execute(f"DELETE FROM chunks WHERE chunk_id IN ({marks})", batch)  # only placeholders

    def inventory(self) -> dict[str, tuple[str, int]]:
        """Every chunk id with its document id and version."""
        with self._lock:
            rows = self._db().execute("SELECT chunk_id, document_id, version FROM chunks").fetchall()
        return {chunk_id: (document_id, int(version)) for chunk_id, document_id, version in rows}

    def count(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT count(*) FROM chunks").fetchone()[0])

    # -- reading ------------------------------------------------------------------------------------

    def search(self, terms: Sequence[str], k: int, scope: Scope) -> list[LexicalMatch]:
        """The ``k`` best chunks for the analysed query ``terms`` among those ``scope`` allows."""
        snapshot = self._current()
        if k <= 0 or scope.is_empty or snapshot.bm25 is None:
            return []
        vocabulary: dict[str, int] = snapshot.bm25.vocab_dict
        term_ids = list(dict.fromkeys(vocabulary[term] for term in terms if term in vocabulary))
        if not term_ids:
            return []
        scores = np.asarray(snapshot.bm25.get_scores(term_ids, weight_mask=snapshot.mask(scope)))
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        ordered = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [
            LexicalMatch(
                chunk_id=snapshot.chunk_ids[row],
                document_id=snapshot.document_ids[row],
                version=int(snapshot.versions[row]),
                language=snapshot.columns["language"][0][snapshot.columns["language"][1][row]],
                score=float(scores[row]),
            )
            for row in (int(row) for row in ordered)
            if scope.allows(snapshot.metadata(row))  # the mask already did this; a leak must be impossible
        ]

    def refresh(self) -> None:
        """Rebuild the matrices now if the table changed since they were built."""
        if self._snapshot is None or self._snapshot.generation != self._generation():
            self._rebuild()

    # -- internals ----------------------------------------------------------------------------------

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            self._rebuild()
        elif snapshot.generation != self._generation():
            if self.background_rebuild:
                self._rebuild_in_background()
            else:
                self._rebuild()
        assert self._snapshot is not None
        return self._snapshot

    def _rebuild_in_background(self) -> None:
        with self._lock:
            if self._rebuilding:
                return
            self._rebuilding = True

        def run() -> None:
            try:
                self._rebuild()
            except Exception:  # keep serving the previous matrices; the next search tries again
                logger.exception("rebuilding the lexical index failed")
            finally:
                with self._lock:
                    self._rebuilding = False

        threading.Thread(target=run, name="lexical-rebuild", daemon=True).start()

    def _rebuild(self) -> None:
        with self._rebuild_lock:
            started = time.perf_counter()
            # A connection of its own: reading the table may take a while, and WAL gives this read a
            # consistent snapshot of rows and generation while a writer goes on.
            self._generation()  # creates the database on first use
            connection = self._open()
            try:
                connection.execute("BEGIN")
                generation = _read_generation(connection)
                if self._snapshot is not None and self._snapshot.generation == generation:
                    return
                rows = connection.execute(
                    "SELECT chunk_id, document_id, version, tenant, audience, language, product, tags, terms"
                    " FROM chunks ORDER BY chunk_id"
                ).fetchall()
            finally:
                connection.close()  # ends the read transaction
            self._snapshot = _build(generation, rows)
            self.last_rebuild_seconds = time.perf_counter() - started
            logger.info("lexical index rebuilt: %d chunks in %.2f s", len(rows), self.last_rebuild_seconds)

    def _generation(self) -> int:
        with self._lock:
            return _read_generation(self._db())

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that also bumps the generation, so readers rebuild."""
        with self._lock:
            connection = self._db()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("UPDATE state SET value = value + 1 WHERE key = 'generation'")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def ping(self) -> None:
        """Raise unless the index file is the one opened and answers (DatabaseGoneError, sqlite3.Error)."""
        self._generation()

    def _db(self) -> sqlite3.Connection:
        self._guard.check()
        if self._connection is None:
            self.path.mkdir(parents=True, exist_ok=True)
            connection = self._open()
            # WAL lets searches read while an ingest writes; busy waits for the other writer.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    def _open(self) -> sqlite3.Connection:
        self._guard.check()  # a deleted file must not be recreated empty by a background rebuild
        # isolation_level=None: no implicit transactions, only the ones begun here.
        return sqlite3.connect(self.database, timeout=30, check_same_thread=False, isolation_level=None)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _read_generation(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()[0])


def _build(generation: int, rows: Sequence[tuple[Any, ...]]) -> _Snapshot:
    snapshot = _Snapshot(generation)
    if not rows:
        return snapshot
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)  # bm25s sets DEBUG on import; give it back
    vocabulary: dict[str, int] = {}
    corpus = [[vocabulary.setdefault(term, len(vocabulary)) for term in row[8].split()] for row in rows]
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenization.Tokenized(ids=corpus, vocab=vocabulary), show_progress=False)
    snapshot.bm25 = bm25
    snapshot.chunk_ids = [row[0] for row in rows]
    snapshot.document_ids = [row[1] for row in rows]
    snapshot.versions = np.fromiter((row[2] for row in rows), dtype=np.int64, count=len(rows))
    for position, name in enumerate(("tenant", "audience", "language", "product"), start=3):
        names, codes = np.unique(np.array([row[position] for row in rows], dtype=object), return_inverse=True)
        snapshot.columns[name] = ([str(value) for value in names], codes.astype(np.int32))
    snapshot.tags = [frozenset(json.loads(row[7])) for row in rows]
    by_tag: dict[str, list[int]] = {}
    for row_number, tags in enumerate(snapshot.tags):
        for tag in tags:
            by_tag.setdefault(tag, []).append(row_number)
    snapshot.rows_by_tag = {tag: np.asarray(rows_of, dtype=np.int64) for tag, rows_of in by_tag.items()}
    for row_number, document_id in enumerate(snapshot.document_ids):
        snapshot.rows_by_document.setdefault(document_id, []).append(row_number)
    return snapshot


class LexicalRetriever:
    """Analyses a question and searches the lexical index; only live versions come back."""

    def __init__(self, index: LexicalIndex, registry: DocumentRegistry | None = None) -> None:
        self.index = index
        self.registry = registry

    def retrieve(self, question: str, language: str, k: int, scope: Scope) -> list[LexicalMatch]:
        return self.keep_live(self.search(question, language, k, scope))

    def search(self, question: str, language: str, k: int, scope: Scope) -> list[LexicalMatch]:
        """The ``k`` best matches in ``scope`` before the live-version filter (:meth:`keep_live`)."""
        return self.index.search(analyze(question, language), k, scope)

    def keep_live(self, matches: list[LexicalMatch], live: Mapping[str, int] | None = None) -> list[LexicalMatch]:
        """``matches`` of live versions only (``live``: the versions read already, see DocumentRegistry.keep_live)."""
        if self.registry is None or not matches:
            return matches
        return self.registry.keep_live(matches, lambda match: (match.document_id, match.version), live)
