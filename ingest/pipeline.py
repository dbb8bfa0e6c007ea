"""Ingest files: parse → chunk → embed → store, skipping what has not changed.

A reader thread reads, parses and chunks files while the calling thread embeds and stores them, so
parsing overlaps with embedding. Passages of several documents are embedded together (similar
lengths batch well) and published together (retrieval/publish.py keeps each document atomic).

Nothing is redone that need not be: a file whose bytes are unchanged is not even parsed, a document
whose content is unchanged is not re-chunked, and a changed document reuses the embeddings of its
passages that did not change. One broken file never stops a batch: it is reported as failed with
its reason and the store keeps what it had for it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from common.clock import utc_now
from ingest.chunk import Chunker
from ingest.locks import TenantLocks
from ingest.parse import (
    DEFAULT_MAX_FILE_BYTES,
    SUPPORTED_SUFFIXES,
    ParseError,
    document_id_for,
    parse_bytes,
    read_source,
)
from ingest.transclusion import MARKDOWN_SUFFIXES, Expansion, Site, expand
from ingest.translation_keys import TranslationKeys
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import Embedder, Matrix, Vector
from retrieval.evidence import SentenceScorer, sentence_cache
from retrieval.lexical import LexicalIndex
from retrieval.publish import ChunkIndex, Publication, Publisher
from retrieval.records import Chunk, Document, content_hash
from retrieval.registry import DocumentRecord, DocumentRegistry
from retrieval.scope import (
    AUDIENCES,
    DEFAULT_TENANT,
    PUBLIC,
    InvalidIdError,
    ScopeError,
    check_audience,
    check_document_id,
    check_tenant,
    qualify,
    tenant_of,
)
from retrieval.use_encoder import UseEncoder, shared_use_encoder, use_covers, use_store_beside
from retrieval.vector_store import ChromaStore, StoreUnavailableError

logger = logging.getLogger(__name__)

_FILL_BATCH = 1000
# A file's error when its tenant's vector store is down (code ``store_unavailable``, a 503 in the
# API); the server's address is logged, not shown.
STORE_UNAVAILABLE = "the knowledge base's store for this tenant does not answer; nothing was written: retry later"

# Bump when stored chunks change shape, so everything is re-ingested once (2: versioned chunk ids,
# 3: tenant, audience, product and tags in chunk metadata).
INDEX_FORMAT = 3
# Bump when parsing changes what text a file gives: every file is parsed again once, and only the
# documents whose text changed are re-chunked (unchanged passages keep their embeddings).
# 2: Markdown dialects, transclusion, titles, translation keys (issue #16).
PARSER_VERSION = 2


class Outcome(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    FAILED = "failed"


@dataclass(frozen=True)
class FileResult:
    source: str
    outcome: Outcome
    document_id: str = ""
    chunks: int = 0
    error: str = ""
    code: str = ""  # stable error code when failed (ParseError codes, duplicate_id, store_unavailable, …)
    version: int = 0
    note: str = ""
    # What the editor should fix or know, each "<kind>: <detail>" (leftover_markup_wikilink,
    # dangling_embed, embed_cycle, scripts_removed, …); ``note`` is them joined.
    warnings: tuple[str, ...] = ()


@dataclass
class StageTimes:
    """Seconds spent per stage in the last run (parse and chunk overlap with embed and store)."""

    parse: float = 0.0
    chunk: float = 0.0
    embed: float = 0.0
    use_embed: float = 0.0  # USE vectors (within the embed stage, beside e5 on a thread; timed apart)
    store: float = 0.0
    total: float = 0.0
    passages_embedded: int = 0
    passages_reused: int = 0


@dataclass(frozen=True)
class Placement:
    """Where an ingest run puts its documents: a tenant, and the audience of documents whose front
    matter names none. A document's own ``audience`` wins; its id is qualified with the tenant, and an
    id naming another tenant fails the file (an upload can never write into another tenant)."""

    tenant: str = DEFAULT_TENANT
    audience: str = PUBLIC
    # Audiences the writer may publish to (an API key for public documents may not add internal ones).
    allowed_audiences: frozenset[str] = frozenset(AUDIENCES)

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
        check_audience(self.audience)

    def place(self, document: Document, path: Path) -> Document:
        try:
            check_document_id(document.document_id)
        except InvalidIdError as exc:
            raise ParseError(path, str(exc), "invalid_id") from exc
        try:
            document_id = qualify(self.tenant, document.document_id)
            audience = check_audience(document.metadata.get("audience", self.audience).strip().lower())
        except ScopeError as exc:
            raise ParseError(path, str(exc), "invalid_placement") from exc
        if audience not in self.allowed_audiences:
            raise ParseError(path, f"this key may not publish {audience} documents", "audience_not_allowed")
        return replace(document, document_id=document_id, metadata={**document.metadata, "audience": audience})

    def owns(self, record: DocumentRecord) -> bool:
        return tenant_of(record.document_id) == self.tenant


DEFAULT_PLACEMENT = Placement()


# (stage, done, total): stage is "parse", "chunk" or "embed"; both numbers are increments.
Progress = Callable[[str, int, int], None]
ResultCallback = Callable[[FileResult], None]


@dataclass
class _Planned:
    """A document that needs writing: its new chunks and the version they replace."""

    source: str
    document: Document
    chunks: list[Chunk]
    record: DocumentRecord
    previous: DocumentRecord | None
    note: str = ""
    embeddings: list[Vector | None] = field(default_factory=list)
    use_embeddings: list[Vector | None] = field(default_factory=list)  # empty: none computed

    def matrix(self, dimension: int) -> Matrix:
        if not self.embeddings:
            return np.zeros((0, dimension), dtype=np.float32)
        return np.stack([vector for vector in self.embeddings if vector is not None])

    def use_matrix(self) -> Matrix | None:
        if not self.use_embeddings or any(vector is None for vector in self.use_embeddings):
            return None
        return np.stack([vector for vector in self.use_embeddings if vector is not None])


def discover(paths: Sequence[Path]) -> tuple[list[tuple[Path, Path | None]], list[FileResult]]:
    """Expand folders into supported files, each with the root its document id is relative to."""
    found: list[tuple[Path, Path | None]] = []
    problems: list[FileResult] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            found.extend((file, path) for file in files if file.suffix.lower() in SUPPORTED_SUFFIXES)
            problems.extend(
                FileResult(
                    file.as_posix(),
                    Outcome.FAILED,
                    error=f"unsupported file type {file.suffix or '(none)'}",
                    code="unsupported_type",
                )
                for file in files
                if file.suffix.lower() not in SUPPORTED_SUFFIXES
            )
        elif path.is_file():
            found.append((path, None))
        else:
            problems.append(
                FileResult(path.as_posix(), Outcome.FAILED, error="no such file or directory", code="missing")
            )
    return found, problems


class Ingestor:
    """Brings the store in line with a set of files. Only one ingest writes at a time (``lock_path``)."""

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        registry: DocumentRegistry,
        chunker: Chunker,
        pipeline_signature: str = "",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        batch_passages: int = 128,
        lock_path: Path | None = None,
        lexical: LexicalIndex | None = None,
        sentences: SentenceScorer | None = None,
        use_store: ChromaStore | None = None,
        use_encoder: UseEncoder | None = None,
        translations: TranslationKeys | None = None,
        locks: TenantLocks | None = None,
    ) -> None:
        self.embedder = embedder
        # Tenants' write locks across processes (ingest/locks.py; None: this process writes alone).
        self.locks = locks
        self.translations = translations or TranslationKeys()
        # Sentence embeddings for answer evidence are computed here, once per new passage, so that
        # questions read them from the cache instead of paying 25-200 ms each (retrieval/evidence.py).
        self.sentences = sentences
        self.store = store
        self.registry = registry
        self.chunker = chunker
        # Changing the model or chunk sizes must re-ingest everything, so they are part of each hash.
        self.pipeline_signature = f"{INDEX_FORMAT}|{pipeline_signature}"
        self.max_file_bytes = max_file_bytes
        self.batch_passages = batch_passages
        self.lock_path = lock_path
        self.lexical = lexical
        # USE vectors (retrieval/use_encoder.py) of chunks in the languages USE covers, in their own store.
        self.use_store = use_store
        self.use_encoder = use_encoder if use_store is not None else None
        indexes: list[ChunkIndex] = [store, lexical] if lexical is not None else [store]
        self.publisher = Publisher(registry, indexes, use_index=use_store)
        self.times = StageTimes()
        self._sites: dict[Path, Site] = {}

    def ingest(
        self,
        paths: Sequence[Path],
        sync: bool = False,
        on_result: ResultCallback | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        placement: Placement = DEFAULT_PLACEMENT,
    ) -> list[FileResult]:
        """Ingest ``paths`` (files or folders) into ``placement``'s tenant. With ``sync``, that tenant's
        documents from those folders whose files are gone are removed. With ``dry_run``, report what
        would change and write nothing."""
        files, problems = discover(paths)
        for problem in problems:
            _emit(problem, on_result)
        with self._tenant_lock(placement.tenant), self._exclusive():
            results = problems + self._run(files, dry_run, on_result, progress, placement)
            if sync:
                present = {path.as_posix() for path, _ in files}
                claimed = {result.document_id for result in results if result.document_id}
                folders = [path for path in paths if path.is_dir()]
                results.extend(self._remove_missing(folders, present, claimed, dry_run, on_result, placement))
        return results

    def ingest_files(
        self,
        files: Sequence[tuple[Path, Path | None]],
        on_result: ResultCallback | None = None,
        placement: Placement = DEFAULT_PLACEMENT,
    ) -> list[FileResult]:
        """Ingest exact files, each with the root its document id is relative to (``None``: the name).
        The caller holds the tenant's write lock (ingest/service.py)."""
        with self._exclusive():
            return self._run(files, False, on_result, None, placement)

    def ingest_documents(self, documents: Sequence[Document]) -> list[FileResult]:
        """Publish documents already parsed in memory (the speed benchmark): chunked, embedded (passages,
        sentence evidence, USE vectors) and written exactly as files are; each document's source is its id."""
        with self._exclusive():
            claimed: dict[str, str] = {}
            planned = [
                self._plan_document(document, document.document_id, "", claimed, set(), False) for document in documents
            ]
            results = [item for item in planned if isinstance(item, FileResult)]
            batch: list[_Planned] = []
            for item in planned:
                if isinstance(item, _Planned):
                    batch.append(item)
                    if sum(len(entry.chunks) for entry in batch) >= self.batch_passages:
                        results.extend(self._write(batch, None))
                        batch = []
            return results + self._write(batch, None)

    def remove(self, document_ids: Sequence[str]) -> None:
        """Remove documents from the registry and the store; the caller holds their tenants' write
        locks (ingest/service.py). Raises StoreUnavailableError, having removed nothing, when a
        tenant's store does not answer."""
        with self._exclusive():
            for tenant in sorted({tenant_of(document_id) for document_id in document_ids}):
                self._replay(tenant)
                # The registry drops the documents first (readers stop seeing them at once), so a
                # store that is down must be found before, not after: else a 503 for a done delete.
                self.store.check_reachable(tenant)
            self.publisher.remove(document_ids)

    def recover(self) -> int:
        """Clean up after an interrupted write; returns the number of journal entries replayed.

        Tenant by tenant, for those that need it (journal entries, or a lexical index out of step),
        each under its write lock taken without waiting (ingest/locks.py): a tenant another process
        is writing is skipped, never rolled back under it; that writer replays the tenant's journal
        itself before its next write. Likewise when another process holds the data dir's ingest lock.
        """
        replayed = 0
        for tenant in self._tenants_to_recover():
            with self._tenant_lock(tenant, wait=False) as held, self._exclusive(wait=False) as acquired:
                if not (held and acquired):
                    logger.info("tenant %s is being written by another process: left to it", tenant)
                    continue
                try:
                    replayed += self._replay(tenant)
                except StoreUnavailableError as exc:  # its Chroma server is down: replayed at its next write
                    logger.warning("tenant %s not recovered now: %s", tenant, exc)
        return replayed

    def _tenants_to_recover(self) -> list[str]:
        tenants = {tenant_of(entry.document_id) for entry in self.registry.journal()}
        if self.lexical is not None:
            live: dict[str, set[str]] = {}
            for record in self.registry.all():
                live.setdefault(tenant_of(record.document_id), set()).update(record.chunk_ids)
            held: dict[str, set[str]] = {}
            for chunk_id, (document_id, _) in self.lexical.inventory().items():
                held.setdefault(tenant_of(document_id), set()).add(chunk_id)
            tenants |= {tenant for tenant in live.keys() | held.keys() if live.get(tenant) != held.get(tenant)}
        return sorted(tenants)

    @contextmanager
    def _tenant_lock(self, tenant: str, wait: bool = True) -> Iterator[bool]:
        if self.locks is None:
            yield True
            return
        with self.locks.hold(tenant, wait) as held:
            yield held

    def audit(self) -> list[str]:
        """Disagreements between the registry and the store (empty when consistent)."""
        return self.publisher.audit()

    def use_coverage(self) -> tuple[int, int] | None:
        """(live chunks with a USE vector, live chunks), or None when USE vectors are off."""
        return self.publisher.use_coverage()

    @contextmanager
    def _exclusive(self, wait: bool = True) -> Iterator[bool]:
        """Hold the data dir's ingest lock, so two processes never write at once; yields whether
        it was acquired (always, when ``wait``)."""
        if self.lock_path is None:
            yield True
            return
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.lock_path, timeout=-1 if wait else 0)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def _run(
        self,
        files: Sequence[tuple[Path, Path | None]],
        dry_run: bool,
        on_result: ResultCallback | None,
        progress: Progress | None,
        placement: Placement,
    ) -> list[FileResult]:
        started = time.perf_counter()
        self.times = StageTimes()
        self._sites = {}  # embeds resolve against the files as they are now
        if not dry_run:
            self._replay(placement.tenant)
            # Only here, not in recover(): a server starting on an old 100k-chunk store would wait ~30 min.
            self._sync_use(placement.tenant)
        if progress:
            progress("parse", 0, len(files))
            progress("chunk", 0, len(files))
        planned: queue.Queue[_Planned | FileResult | None] = queue.Queue(maxsize=256)
        reader = threading.Thread(
            target=self._read_all,
            args=(files, dry_run, planned, progress, placement),
            name="ingest-reader",
            daemon=True,
        )
        reader.start()
        results: list[FileResult] = []
        batch: list[_Planned] = []
        while (item := planned.get()) is not None:
            if isinstance(item, FileResult):
                results.append(_emit(item, on_result))
            elif dry_run:
                outcome = Outcome.UPDATED if item.previous else Outcome.ADDED
                results.append(_emit(_result(item, outcome), on_result))
            else:
                batch.append(item)
                if sum(len(entry.chunks) for entry in batch) >= self.batch_passages:
                    results.extend(_emit(result, on_result) for result in self._write(batch, progress))
                    batch = []
        results.extend(_emit(result, on_result) for result in self._write(batch, progress))
        reader.join()
        self.times.total = time.perf_counter() - started
        order = {path.as_posix(): number for number, (path, _) in enumerate(files)}
        return sorted(results, key=lambda result: order.get(result.source, len(order)))  # in file order

    def _read_all(
        self,
        files: Sequence[tuple[Path, Path | None]],
        dry_run: bool,
        out: queue.Queue[_Planned | FileResult | None],
        progress: Progress | None,
        placement: Placement,
    ) -> None:
        """The reader thread: read, parse and chunk each file in order, for the writer to consume."""
        claimed: dict[str, str] = {}
        present = {path.as_posix() for path, _ in files}
        try:
            for path, root in files:
                try:
                    out.put(self._plan(path, root, claimed, present, dry_run, progress, placement))
                except Exception as exc:  # a bug must not stop the batch or lose the other files
                    logger.exception("unexpected error ingesting %s", path)
                    problem = f"internal error: {exc}"
                    out.put(FileResult(path.as_posix(), Outcome.FAILED, error=problem, code="internal_error"))
        finally:
            out.put(None)

    def _plan(
        self,
        path: Path,
        root: Path | None,
        claimed: dict[str, str],
        present: set[str],
        dry_run: bool,
        progress: Progress | None,
        placement: Placement,
    ) -> _Planned | FileResult:
        source = path.as_posix()
        started = time.perf_counter()
        try:
            raw = read_source(path, self.max_file_bytes)
            expansion = self._expand(path, root, raw)
            file_hash = self._file_hash(raw, expansion)
            known = self.registry.by_source(source, tenant=placement.tenant)
            if known and known.file_hash == file_hash and known.document_id not in claimed:
                claimed[known.document_id] = source
                _advance(progress, "parse", "chunk")
                chunks = len(known.chunk_ids)
                return FileResult(source, Outcome.UNCHANGED, known.document_id, chunks, version=known.version)
            parsed = parse_bytes(expansion.text.encode() if expansion else raw, path, document_id_for(path, root))
            if expansion and expansion.warnings:
                parsed = replace(parsed, notes=(*parsed.notes, *expansion.warnings))
            document = placement.place(self.translations.apply(parsed), path)
        except ParseError as exc:
            logger.info("skipping %s: %s", source, exc.problem)
            _advance(progress, "parse", "chunk")
            return FileResult(source, Outcome.FAILED, error=exc.problem, code=exc.code)
        finally:
            self.times.parse += time.perf_counter() - started
        _advance(progress, "parse")
        try:
            return self._plan_document(document, source, file_hash, claimed, present, dry_run)
        finally:
            _advance(progress, "chunk")

    def _expand(self, path: Path, root: Path | None, raw: bytes) -> Expansion | None:
        """The Markdown page with its embeds replaced (ingest/transclusion.py); None when it has none."""
        if path.suffix.lower() not in MARKDOWN_SUFFIXES or b"![[" not in raw:
            return None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None  # parsing reports it
        folder = root if root is not None else path.parent
        site = self._sites.setdefault(folder, Site(folder))
        return expand(path, text, site)

    def _file_hash(self, raw: bytes, expansion: Expansion | None) -> str:
        """What decides whether a file must be parsed again: its bytes, the pipeline, the parser,
        the translation-key settings and the bytes of every page it embeds."""
        parts = [content_hash(raw.hex()), self.pipeline_signature, f"parser{PARSER_VERSION}"]
        parts.append(self.translations.fingerprint)
        parts.extend(expansion.dependencies if expansion else ())
        return content_hash("\x00".join(parts))

    def _plan_document(
        self, document: Document, source: str, file_hash: str, claimed: dict[str, str], present: set[str], dry_run: bool
    ) -> _Planned | FileResult:
        """What to do with a parsed document. An id already used by another file of this run is a
        duplicate, whichever comes first (the file that has it in the registry keeps it)."""
        note = "; ".join(document.notes)
        if document.document_id in claimed:
            problem = f"duplicate document id {document.document_id!r} (also used by {claimed[document.document_id]})"
            return FileResult(source, Outcome.FAILED, document.document_id, error=problem, code="duplicate_id")
        previous = self.registry.get(document.document_id)
        if previous and previous.source != source and previous.source in present:
            problem = f"duplicate document id {document.document_id!r} (already used by {previous.source})"
            return FileResult(source, Outcome.FAILED, document.document_id, error=problem, code="duplicate_id")
        claimed[document.document_id] = source
        digest = content_hash(f"{document.content_hash}\x00{self.pipeline_signature}")
        if previous and previous.content_hash == digest:
            if not dry_run and (previous.file_hash, previous.source) != (file_hash, source):
                self.registry.put(replace(previous, file_hash=file_hash, source=source))  # no store write
            return FileResult(
                source,
                Outcome.UNCHANGED,
                document.document_id,
                len(previous.chunk_ids),
                version=previous.version,
                warnings=document.notes,
            )
        started = time.perf_counter()
        updated_at = utc_now("seconds")
        version = previous.version + 1 if previous else 1
        chunks = [
            replace(chunk, embedding_key=self._embedding_key(chunk))
            for chunk in self.chunker.chunk(document, updated_at=updated_at, version=version)
        ]
        self.times.chunk += time.perf_counter() - started
        record = DocumentRecord(
            document_id=document.document_id,
            title=document.title,
            source=source,
            language=document.language,
            kind=document.kind,
            content_hash=digest,
            version=version,
            chunk_ids=[chunk.chunk_id for chunk in chunks],
            updated_at=updated_at,
            extra=document.metadata,
            file_hash=file_hash,
            translation_key=document.metadata.get("translation_key", ""),
        )
        return _Planned(source, document, chunks, record, previous, note)

    def _embedding_key(self, chunk: Chunk) -> str:
        """Equal keys mean equal vectors: same text embedded by the same model (pipeline signature)."""
        return content_hash(f"{self.pipeline_signature}\x00{chunk.embedding_text}")[:32]

    def _write(self, batch: Sequence[_Planned], progress: Progress | None) -> list[FileResult]:
        """Embed and publish a batch of documents; on a store failure they all fail and nothing leaks."""
        if not batch:
            return []
        try:
            self._embed(batch, progress)
            started = time.perf_counter()
            dimension = self.embedder.dimension
            self.publisher.publish(
                [
                    Publication(item.record, item.chunks, item.matrix(dimension), item.previous, item.use_matrix())
                    for item in batch
                ]
            )
            self.times.store += time.perf_counter() - started
        except Exception as exc:  # the store or model failed: report it per file, keep the old versions
            logger.exception("writing %d documents failed", len(batch))
            self._recover_quietly({tenant_of(item.record.document_id) for item in batch})
            problem, code = f"store error: {exc}", "store_error"
            if isinstance(exc, StoreUnavailableError):
                problem, code = STORE_UNAVAILABLE, exc.code
            return [
                FileResult(item.source, Outcome.FAILED, item.record.document_id, error=problem, code=code)
                for item in batch
            ]
        return [_result(item, Outcome.UPDATED if item.previous else Outcome.ADDED) for item in batch]

    def _embed(self, batch: Sequence[_Planned], progress: Progress | None) -> None:
        """Fill each item's embeddings, reusing those of unchanged passages of the previous version."""
        started = time.perf_counter()
        reusable = self._previous_embeddings([item.previous for item in batch if item.previous])
        todo: list[tuple[_Planned, int]] = []
        for item in batch:
            item.embeddings = [None] * len(item.chunks)
            for position, chunk in enumerate(item.chunks):
                vector = reusable.get(chunk.embedding_key)
                if vector is None:
                    todo.append((item, position))
                else:
                    item.embeddings[position] = vector
        self.times.passages_reused += sum(len(item.chunks) for item in batch) - len(todo)
        if progress:
            progress("embed", 0, len(todo))
        # USE runs on its own thread beside e5 (both release the GIL): 1.07-1.13x faster on our 2 cores
        # than one after the other (docs/benchmarks.md, #13 round 4); the vectors are the same.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-use") as pool:
            use_done = pool.submit(self._embed_use, batch)
            vectors = self.embedder.embed_documents([item.chunks[position].embedding_text for item, position in todo])
            for (item, position), vector in zip(todo, vectors, strict=True):
                item.embeddings[position] = vector
            if self.sentences is not None:
                self.sentences.warm(item.chunks[position] for item, position in todo)
            use_done.result()
        self.times.passages_embedded += len(todo)
        if progress:
            progress("embed", len(todo), 0)
        self.times.embed += time.perf_counter() - started

    def _embed_use(self, batch: Sequence[_Planned]) -> None:
        """USE vectors for the chunks of documents in a language USE covers, reusing unchanged ones."""
        if self.use_store is None or self.use_encoder is None:
            return
        started = time.perf_counter()
        covered = [item for item in batch if use_covers(item.document.language)]
        ids = [chunk_id for item in covered if item.previous for chunk_id in item.previous.chunk_ids]
        stored = self.use_store.embedded(ids)
        reusable = {chunk.embedding_key: vector for chunk, vector in stored if chunk.embedding_key}
        todo: list[tuple[_Planned, int]] = []
        for item in covered:
            item.use_embeddings = [reusable.get(chunk.embedding_key) for chunk in item.chunks]
            todo.extend((item, position) for position, vector in enumerate(item.use_embeddings) if vector is None)
        vectors = self.use_encoder.embed([item.chunks[position].embedding_text for item, position in todo])
        for (item, position), vector in zip(todo, vectors, strict=True):
            item.use_embeddings[position] = vector
        self.times.use_embed += time.perf_counter() - started

    def _previous_embeddings(self, records: Sequence[DocumentRecord]) -> dict[str, Vector]:
        ids = [chunk_id for record in records for chunk_id in record.chunk_ids]
        return {chunk.embedding_key: vector for chunk, vector in self.store.embedded(ids) if chunk.embedding_key}

    def _replay(self, tenant: str) -> int:
        """Replay the tenant's journal (see :meth:`recover`), then bring its lexical rows in line with
        the registry. The caller holds the tenant's write lock."""
        replayed = self.publisher.recover({tenant})
        self._sync_lexical(tenant)
        return replayed

    def _sync_lexical(self, tenant: str) -> None:
        """Give the lexical index the tenant's live chunks it lacks (a data dir ingested before it
        existed, or before its rows moved into SQL) and drop any it holds that are not live.
        Normally there is nothing to do."""
        if self.lexical is None:
            return
        live = {
            chunk_id
            for record in self.registry.all()
            if tenant_of(record.document_id) == tenant
            for chunk_id in record.chunk_ids
        }
        held = self.lexical.inventory(tenant)
        stale = [chunk_id for chunk_id in held if chunk_id not in live]
        missing = sorted(live - held.keys())
        self.lexical.delete(stale)
        for start in range(0, len(missing), _FILL_BATCH):
            batch = missing[start : start + _FILL_BATCH]
            self.lexical.upsert([chunk for chunk, _ in self.store.embedded(batch)])
        if stale or missing:
            logger.info("lexical index: added %d live chunks it lacked, removed %d stale", len(missing), len(stale))

    def _sync_use(self, tenant: str) -> None:
        """Compute the USE vectors the tenant's live chunks lack (a data dir ingested before the USE
        leg), in the languages USE covers, at the start of the tenant's ingest run. Normally there is
        nothing to do; the first run after an upgrade pays for every chunk once (USE encodes 30-65
        passages/s on our 2 cores). The tenant's only: on Chroma servers another tenant's server
        being down must not fail this write (each tenant is filled at its own next write)."""
        if self.use_store is None or self.use_encoder is None:
            return
        covered = {
            chunk_id
            for record in self.registry.all()
            if tenant_of(record.document_id) == tenant and use_covers(record.language)
            for chunk_id in record.chunk_ids
        }
        missing = sorted(covered - self.use_store.inventory(tenant).keys())
        if not missing:
            return
        logger.info("USE vectors: computing them for %d live chunks that lack them", len(missing))
        for start in range(0, len(missing), _FILL_BATCH):
            chunks = [chunk for chunk, _ in self.store.embedded(missing[start : start + _FILL_BATCH])]
            self.use_store.upsert(chunks, self.use_encoder.embed([chunk.embedding_text for chunk in chunks]))

    def _recover_quietly(self, tenants: set[str]) -> None:
        try:
            self.publisher.recover(tenants)
        except Exception:  # the store is down; the journal is replayed on the next run
            logger.exception("recovery after a failed write failed too")

    def _remove_missing(
        self,
        folders: Sequence[Path],
        present: set[str],
        claimed: set[str],
        dry_run: bool,
        on_result: ResultCallback | None,
        placement: Placement,
    ) -> list[FileResult]:
        """Remove the tenant's documents whose file is gone; a file that is present but failed to
        parse keeps its old chunks."""
        if not folders:
            return []
        prefixes = tuple(folder.as_posix().rstrip("/") + "/" for folder in folders)
        gone = [
            record
            for record in self.registry.all()
            if placement.owns(record)
            and record.source.startswith(prefixes)
            and record.source not in present
            and record.document_id not in claimed
        ]
        if not dry_run:
            self.publisher.remove([record.document_id for record in gone])
        return [
            _emit(FileResult(record.source, Outcome.REMOVED, record.document_id, len(record.chunk_ids)), on_result)
            for record in gone
        ]


def _result(item: _Planned, outcome: Outcome) -> FileResult:
    return FileResult(
        item.source,
        outcome,
        item.record.document_id,
        len(item.chunks),
        version=item.record.version,
        note=item.note,
        warnings=item.document.notes,
    )


def _emit(result: FileResult, on_result: ResultCallback | None) -> FileResult:
    if on_result:
        on_result(result)
    return result


def _advance(progress: Progress | None, *stages: str) -> None:
    if progress:
        for stage in stages:
            progress(stage, 1, 0)


def build_ingestor(
    settings: Settings, profile: RetrievalProfile, embedder: Embedder, store: ChromaStore, registry: DocumentRegistry
) -> Ingestor:
    chunker = Chunker(
        embedder.count_tokens,
        target_tokens=profile.chunk_target_tokens,
        max_tokens=profile.chunk_max_tokens,
        overlap_tokens=profile.chunk_overlap_tokens,
    )
    signature = "|".join(
        map(
            str,
            (
                settings.embedding_backend,
                settings.embedding_model,
                profile.chunk_target_tokens,
                profile.chunk_max_tokens,
                profile.chunk_overlap_tokens,
            ),
        )
    )
    return Ingestor(
        embedder,
        store,
        registry,
        chunker,
        pipeline_signature=signature,
        max_file_bytes=settings.max_file_bytes,
        lock_path=settings.data_dir / "ingest.lock",
        lexical=LexicalIndex(settings.database_url),
        locks=TenantLocks(registry.engine),
        sentences=SentenceScorer(sentence_cache(embedder, settings)),
        use_store=use_store_beside(store) if settings.use_vectors else None,
        use_encoder=shared_use_encoder() if settings.use_vectors else None,
        translations=TranslationKeys.configured(settings.translation_keys, settings.translation_map),
    )
