"""Ingest files: parse → chunk → embed → store, skipping what has not changed.

One broken file never stops a batch: it is reported as failed with its reason and the store keeps
what it had for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ingest.chunk import Chunker
from ingest.parse import SUPPORTED_SUFFIXES, ParseError, parse_file
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import Embedder
from retrieval.registry import DocumentRecord, DocumentRegistry, utc_now
from retrieval.store import ChromaStore
from retrieval.types import content_hash

logger = logging.getLogger(__name__)


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


def discover(paths: Iterable[Path]) -> tuple[list[tuple[Path, Path | None]], list[FileResult]]:
    """Expand folders into supported files, each with the root its document id is relative to."""
    found: list[tuple[Path, Path | None]] = []
    problems: list[FileResult] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            found.extend((file, path) for file in files if file.suffix.lower() in SUPPORTED_SUFFIXES)
            problems.extend(
                FileResult(file.as_posix(), Outcome.FAILED, error=f"unsupported file type {file.suffix or '(none)'}")
                for file in files
                if file.suffix.lower() not in SUPPORTED_SUFFIXES
            )
        elif path.is_file():
            found.append((path, None))
        else:
            problems.append(FileResult(path.as_posix(), Outcome.FAILED, error="no such file or directory"))
    return found, problems


class Ingestor:
    """Brings the store in line with a set of files."""

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        registry: DocumentRegistry,
        chunker: Chunker,
        pipeline_signature: str = "",
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.registry = registry
        self.chunker = chunker
        # Changing the model or chunk sizes must re-ingest everything, so they are part of each hash.
        self.pipeline_signature = pipeline_signature

    def ingest(
        self,
        paths: Sequence[Path],
        sync: bool = False,
        on_result: Callable[[FileResult], None] | None = None,
    ) -> list[FileResult]:
        """Ingest ``paths`` (files or folders). With ``sync``, documents from those folders whose
        files are gone are removed."""
        files, results = discover(paths)
        seen_ids: dict[str, str] = {}
        for path, root in files:
            result = self._ingest_file(path, root, seen_ids)
            results.append(result)
            if on_result:
                on_result(result)
        if sync:
            present = {path.as_posix() for path, _ in files}
            for result in self._remove_missing([p for p in paths if p.is_dir()], present, seen_ids):
                results.append(result)
                if on_result:
                    on_result(result)
        return results

    def _ingest_file(self, path: Path, root: Path | None, seen_ids: dict[str, str]) -> FileResult:
        source = path.as_posix()
        try:
            document = parse_file(path, root)
        except ParseError as exc:
            logger.warning("skipping %s: %s", source, exc.problem)
            return FileResult(source, Outcome.FAILED, error=exc.problem)
        if document.document_id in seen_ids:
            problem = f"duplicate document id {document.document_id!r} (also used by {seen_ids[document.document_id]})"
            return FileResult(source, Outcome.FAILED, document.document_id, error=problem)
        seen_ids[document.document_id] = source

        digest = content_hash(f"{document.content_hash}\x00{self.pipeline_signature}")
        previous = self.registry.get(document.document_id)
        if previous and previous.content_hash == digest:
            return FileResult(source, Outcome.UNCHANGED, document.document_id, len(previous.chunk_ids))

        updated_at = utc_now()
        chunks = self.chunker.chunk(document, updated_at=updated_at)
        embeddings = self.embedder.embed_documents([chunk.embedding_text for chunk in chunks])
        # New chunks go in before old ones come out, so the document never vanishes from search.
        self.store.upsert(chunks, embeddings)
        new_ids = {chunk.chunk_id for chunk in chunks}
        if previous:
            self.store.delete([chunk_id for chunk_id in previous.chunk_ids if chunk_id not in new_ids])
        self.registry.put(
            DocumentRecord(
                document_id=document.document_id,
                title=document.title,
                source=source,
                language=document.language,
                kind=document.kind,
                content_hash=digest,
                version=previous.version + 1 if previous else 1,
                chunk_ids=[chunk.chunk_id for chunk in chunks],
                updated_at=updated_at,
                extra=document.metadata,
            )
        )
        outcome = Outcome.UPDATED if previous else Outcome.ADDED
        return FileResult(source, outcome, document.document_id, len(chunks))

    def _remove_missing(self, folders: Sequence[Path], present: set[str], seen_ids: dict[str, str]) -> list[FileResult]:
        """Remove documents whose file is gone; a file that is present but failed to parse keeps its
        old chunks."""
        prefixes = tuple(folder.as_posix().rstrip("/") + "/" for folder in folders)
        removed = []
        for record in self.registry.all():
            gone = record.source.startswith(prefixes) and record.source not in present
            if not gone or record.document_id in seen_ids:
                continue
            self.remove_document(record)
            removed.append(FileResult(record.source, Outcome.REMOVED, record.document_id, len(record.chunk_ids)))
        return removed

    def remove_document(self, record: DocumentRecord) -> None:
        self.store.delete(record.chunk_ids)
        self.registry.remove(record.document_id)


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
    return Ingestor(embedder, store, registry, chunker, pipeline_signature=signature)
