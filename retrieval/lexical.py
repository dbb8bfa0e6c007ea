"""The lexical leg: BM25 (bm25s) over the analysed terms of every chunk, kept in sync by ingestion.

The durable state is one row per chunk in the SQL database (table ``lexical_chunks``: its terms,
retrieval/analysis.py, and the metadata a :class:`~retrieval.scope.Scope` checks), so every replica
sharing ``ANSWERDESK_DATABASE_URL`` searches the same chunks. Each process keeps bm25s's matrices in
memory and rebuilds them from the rows when the ``lexical`` generation (retrieval/generations.py),
bumped in the same transaction as every write, has changed: in a background thread while searches use
the previous matrices (the first build and :meth:`LexicalIndex.refresh` run in the caller's thread).
The generation is read at most every ``max_age_s`` (0.25 s) on the search path. Every hit is checked
against the scope here and against the live versions by the retriever. It is a
:class:`~retrieval.publish.ChunkIndex`, written by the Publisher beside the vector store. Why, with
measurements: docs/decisions.md; replicas: docs/operations.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Integer, String, Text, delete, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.schema import require_current
from common.sql import open_database, private_file
from retrieval import generations
from retrieval.analysis import analyze
from retrieval.records import Chunk
from retrieval.registry import DocumentRegistry
from retrieval.scope import TAG_KEY_PREFIX, Scope

logger = logging.getLogger(__name__)

GENERATION = "lexical"  # its key in cache_generations
_BATCH = 500
_MASK_CACHE = 64  # scopes whose chunk masks are kept per snapshot
# A build that took longer is saved for the next start (below this, building is as quick as loading).
_SAVE_AFTER_S = 0.5
_SAVED_FORMAT = 1  # bump when _Snapshot's fields change: an older file is then built again


class _Base(DeclarativeBase):
    pass


class _ChunkRow(_Base):
    __tablename__ = "lexical_chunks"

    chunk_id: Mapped[str] = mapped_column(String, primary_key=True)
    document_id: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    audience: Mapped[str] = mapped_column(String)
    language: Mapped[str] = mapped_column(String)
    product: Mapped[str] = mapped_column(String)
    tags: Mapped[str] = mapped_column(Text)  # JSON list
    terms: Mapped[str] = mapped_column(Text)  # analysed terms joined by spaces (a term never holds whitespace)


_COLUMNS = (
    _ChunkRow.chunk_id,
    _ChunkRow.document_id,
    _ChunkRow.version,
    _ChunkRow.tenant,
    _ChunkRow.audience,
    _ChunkRow.language,
    _ChunkRow.product,
    _ChunkRow.tags,
    _ChunkRow.terms,
)


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
    """BM25 over chunk terms, durable in the SQL database at ``url``; search within a scope."""

    def __init__(
        self,
        url: str,
        background_rebuild: bool = True,
        max_age_s: float = generations.MAX_AGE_S,
        saved_path: Path | None = None,
    ) -> None:
        self.engine = open_database(url)
        # The last big build, kept on local disk and loaded at the next start when the rows are the
        # same (_load_saved): at 100k chunks 5.7 s of building becomes ~1 s (docs/benchmarks.md).
        self.saved_path = saved_path
        require_current(self.engine)  # the schema is Alembic's (common/schema.py)
        self.background_rebuild = background_rebuild
        self._generations = generations.Generations(self.engine, max_age_s)
        self._lock = threading.Lock()  # guards _rebuilding
        self._rebuild_lock = threading.Lock()  # one rebuild at a time
        self._snapshot: _Snapshot | None = None
        self._rebuilding = False
        self.last_rebuild_seconds = 0.0

    # -- writing (retrieval/publish.py's ChunkIndex) ------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32] | None = None) -> None:
        """Add or replace chunks (``embeddings`` are ignored: the protocol passes them to every index)."""
        if not chunks:
            return
        rows = [
            {
                "chunk_id": chunk.chunk_id,
                "document_id": chunk.document_id,
                "version": chunk.version,
                "tenant": chunk.tenant,
                "audience": chunk.audience,
                "language": chunk.language,
                "product": chunk.product,
                "tags": json.dumps(sorted(chunk.tags), ensure_ascii=False),
                "terms": " ".join(chunk_terms(chunk)),
            }
            for chunk in {chunk.chunk_id: chunk for chunk in chunks}.values()  # the last of a repeated id
        ]
        with self.engine.begin() as connection:  # rows and generation commit together
            for start in range(0, len(rows), _BATCH):
                batch = rows[start : start + _BATCH]
                ids = [row["chunk_id"] for row in batch]
                connection.execute(delete(_ChunkRow).where(_ChunkRow.chunk_id.in_(ids)))
                connection.execute(insert(_ChunkRow), batch)
            generations.bump(connection, GENERATION)
        self._forget_generation()

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        with self.engine.begin() as connection:
            for start in range(0, len(chunk_ids), _BATCH):
                batch = list(chunk_ids[start : start + _BATCH])
                connection.execute(delete(_ChunkRow).where(_ChunkRow.chunk_id.in_(batch)))
            generations.bump(connection, GENERATION)
        self._forget_generation()

    def clear(self) -> None:
        """Remove every row (``answerdesk check --repair`` refills them from the vector store)."""
        with self.engine.begin() as connection:
            connection.execute(delete(_ChunkRow))
            generations.bump(connection, GENERATION)
        self._forget_generation()

    def inventory(self, tenant: str | None = None) -> dict[str, tuple[str, int]]:
        """Every chunk id (of ``tenant``, or of all) with its document id and version."""
        query = select(_ChunkRow.chunk_id, _ChunkRow.document_id, _ChunkRow.version)
        if tenant is not None:
            query = query.where(_ChunkRow.tenant == tenant)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return {chunk_id: (document_id, int(version)) for chunk_id, document_id, version in rows}

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(_ChunkRow)) or 0)

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
        if self._snapshot is None or self._snapshot.generation != self._generations.fresh(GENERATION):
            self._rebuild()

    def ping(self) -> None:
        """Raise unless the table and the generation answer (DatabaseGoneError, SQLAlchemy's errors)."""
        with self.engine.connect() as connection:
            connection.execute(select(_ChunkRow.chunk_id).limit(1)).all()
        self._generations.fresh(GENERATION)

    def close(self) -> None:
        self.engine.dispose()

    # -- internals ----------------------------------------------------------------------------------

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            self._rebuild()
        elif snapshot.generation != self._generations.current(GENERATION):
            if self.background_rebuild:
                self._rebuild_in_background()
            else:
                self._rebuild()
        assert self._snapshot is not None
        return self._snapshot

    def _forget_generation(self) -> None:
        """This process wrote: its next search reads the generation instead of a throttled value."""
        self._generations.forget(GENERATION)

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
            with self.engine.connect() as connection:
                # The generation before the rows: the rows read are then at least that generation
                # (also under PostgreSQL's READ COMMITTED, where each statement sees the latest
                # commits), so a write that commits meanwhile is rebuilt again, never missed.
                generation = generations.read(connection, GENERATION)
                if self._snapshot is not None and self._snapshot.generation == generation:
                    return
                rows = connection.execute(select(*_COLUMNS).order_by(_ChunkRow.chunk_id)).all()
            # Only a process's first build can use the saved file: later, the file holds at most the
            # build this process already has, and a rebuild means the rows have changed since.
            digest, snapshot = None, None  # the rows' digest is taken once, when a file or a save needs it
            if self._snapshot is None and self.saved_path is not None and self.saved_path.is_file():
                digest = _digest(rows)
                snapshot = self._load_saved(digest, generation)
            if snapshot is None:
                snapshot = _build(generation, rows)
                if self.saved_path is not None and time.perf_counter() - started > _SAVE_AFTER_S:
                    self._save(snapshot, digest if digest is not None else _digest(rows))
            self._snapshot = snapshot
            self.last_rebuild_seconds = time.perf_counter() - started
            logger.info("lexical index rebuilt: %d chunks in %.2f s", len(rows), self.last_rebuild_seconds)

    def _load_saved(self, digest: str, generation: int) -> _Snapshot | None:
        """The saved build when it was made from exactly the rows of ``digest``, else None."""
        assert self.saved_path is not None
        try:
            # Our own file in the private data dir (0600), which also holds the database: pickle is
            # as trusted as the rows it replaces. A damaged or older file is built again.
            with self.saved_path.open("rb") as handle:
                saved = pickle.load(handle)
            if saved.get("format") != _SAVED_FORMAT or saved.get("digest") != digest:
                return None
            return _Snapshot(**saved["fields"], generation=generation)
        except Exception:
            logger.warning("lexical index: %s unreadable; building from the rows", self.saved_path, exc_info=True)
            return None

    def _save(self, snapshot: _Snapshot, digest: str) -> None:
        assert self.saved_path is not None
        kept = {item.name: getattr(snapshot, item.name) for item in fields(snapshot)}
        for transient in ("generation", "masks", "masks_lock"):
            kept.pop(transient)
        partial = self.saved_path.with_name(self.saved_path.name + ".partial")
        try:
            with private_file(partial).open("wb") as handle:
                pickle.dump({"format": _SAVED_FORMAT, "digest": digest, "fields": kept}, handle, protocol=5)
            partial.replace(self.saved_path)  # a reader sees the old file or the new one, never half
        except OSError:
            logger.warning("lexical index: could not save the build to %s", self.saved_path, exc_info=True)


def _digest(rows: Sequence[tuple[Any, ...]]) -> str:
    """A hash of every row's every column: equal digests mean the saved build is of these rows."""
    digest = hashlib.blake2b(digest_size=32)
    for row in rows:
        digest.update("\x1f".join(map(str, row)).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.hexdigest()


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
