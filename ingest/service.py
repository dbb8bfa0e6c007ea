"""Document writes for the API: uploads become files under the uploads folder, then are ingested.

All writes run on one writer thread, in order, so two requests never race on a document's
version; large uploads run as jobs whose progress and per-file results can be polled.
Uploaded bytes are parsed before anything is written: a bad file changes nothing.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

from ingest.parse import SUPPORTED_SUFFIXES, ParseError, parse_bytes
from ingest.pipeline import DEFAULT_PLACEMENT, FileResult, Ingestor, Outcome, Placement
from retrieval.registry import utc_now
from retrieval.scope import DEFAULT_TENANT, PUBLIC, TENANT_SEPARATOR, qualify, tenant_of

logger = logging.getLogger(__name__)

DOCUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
MAX_JOBS_KEPT = 1000


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its name (may hold folders, e.g. ``en/faq.md``) and bytes.

    A file over the size limit is passed with its ``size`` and no data, and fails as ``too_large``.
    """

    filename: str
    data: bytes
    size: int = -1

    @property
    def length(self) -> int:
        return self.size if self.size >= 0 else len(self.data)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every file ingested (or unchanged)
    FAILED = "failed"  # at least one file failed; the others were ingested


@dataclass
class Job:
    job_id: str
    files_total: int
    status: JobStatus = JobStatus.QUEUED
    created_at: str = field(default_factory=utc_now)
    finished_at: str = ""
    results: list[FileResult] = field(default_factory=list)
    tenant: str = DEFAULT_TENANT  # whose documents; the API shows a job only to its tenant
    # The audiences its writer could publish to: a job of an internal key may name internal
    # documents, so the API shows it only to keys that see every one of them.
    audiences: frozenset[str] = frozenset({PUBLIC})


class DocumentService:
    """Adds, replaces and deletes documents for the API, one write at a time."""

    def __init__(self, ingestor: Ingestor, uploads_dir: Path) -> None:
        self.ingestor = ingestor
        self.uploads_dir = uploads_dir
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="document-writer")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_lock = threading.Lock()

    def put(
        self,
        upload: Upload,
        document_id: str | None = None,
        must_be_new: bool = False,
        placement: Placement = DEFAULT_PLACEMENT,
    ) -> FileResult:
        """Add or replace one document of ``placement``'s tenant now (blocks until written);
        ``document_id`` is the tenant's own (unqualified) id."""
        return self._writer.submit(self._put, upload, document_id, must_be_new, placement).result()

    def delete(self, document_id: str) -> bool:
        """Remove a document (by qualified id, retrieval/scope.py) and its uploaded file; False when
        there was no such document."""
        return self._writer.submit(self._delete, document_id).result()

    def start_job(
        self,
        uploads: list[Upload],
        document_id: str | None = None,
        must_be_new: bool = False,
        placement: Placement = DEFAULT_PLACEMENT,
    ) -> Job:
        """Queue uploads as a job and return it at once; poll :meth:`job` for progress."""
        job = Job(
            job_id=uuid.uuid4().hex,
            files_total=len(uploads),
            tenant=placement.tenant,
            audiences=placement.allowed_audiences,
        )
        with self._jobs_lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > MAX_JOBS_KEPT:
                self._jobs.popitem(last=False)
        future: Future[None] = self._writer.submit(self._run_job, job, uploads, document_id, must_be_new, placement)
        future.add_done_callback(_log_crash)
        return job

    def job(self, job_id: str) -> Job | None:
        with self._jobs_lock:
            return self._jobs.get(job_id)

    def recover(self) -> None:
        """Finish cleaning up after a write that was interrupted (e.g. by a crash)."""
        self._writer.submit(self.ingestor.recover).result()

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def _run_job(
        self, job: Job, uploads: list[Upload], document_id: str | None, must_be_new: bool, placement: Placement
    ) -> None:
        job.status = JobStatus.RUNNING
        claimed: set[str] = set()
        try:
            for upload in uploads:
                result = self._put(upload, document_id, must_be_new, placement, claimed)
                if result.document_id and result.outcome != Outcome.FAILED:
                    claimed.add(result.document_id)
                job.results.append(result)
        finally:
            failed = len(job.results) < len(uploads) or any(r.outcome == Outcome.FAILED for r in job.results)
            job.status = JobStatus.FAILED if failed else JobStatus.SUCCEEDED
            job.finished_at = utc_now()

    def _put(
        self,
        upload: Upload,
        document_id: str | None,
        must_be_new: bool,
        placement: Placement,
        claimed: set[str] | None = None,
    ) -> FileResult:
        name = upload.filename
        limit = self.ingestor.max_file_bytes
        if upload.length > limit:
            problem = f"file is {upload.length / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit"
            return FileResult(name, Outcome.FAILED, document_id or "", error=problem, code="too_large")
        try:
            relative = _safe_relative(name)
            default_id = document_id or relative.with_suffix("").as_posix()
            document = parse_bytes(upload.data, Path(relative.name), default_id)
        except ParseError as exc:
            return FileResult(name, Outcome.FAILED, document_id or "", error=exc.problem, code=exc.code)
        except Exception as exc:  # a parser bug must not fail the whole job
            logger.exception("unexpected error parsing upload %s", name)
            problem = f"internal error: {exc}"
            return FileResult(name, Outcome.FAILED, document_id or "", error=problem, code="internal_error")
        new_id = document.document_id
        problem, code = "", ""
        if document_id and new_id != document_id:
            problem, code = f"the file's front matter says id {new_id!r}, the URL {document_id!r}", "id_mismatch"
        elif not DOCUMENT_ID.fullmatch(new_id) or ".." in new_id.split("/"):
            problem, code = f"invalid document id {new_id!r}: use letters, digits, '.', '_', '-' and '/'", "invalid_id"
        elif claimed is not None and qualify(placement.tenant, new_id) in claimed:
            problem, code = f"duplicate document id {new_id!r} in this upload", "duplicate_id"
        elif must_be_new and self.ingestor.registry.get(qualify(placement.tenant, new_id)) is not None:
            # The same words whether or not the caller may see that document (docs/privacy.md): ids
            # are unique per tenant, so that an id is taken cannot be hidden, but nothing more shows.
            problem, code = f"document id {new_id!r} is taken in this tenant; choose another id", "document_exists"
        if problem:
            return FileResult(name, Outcome.FAILED, new_id, error=problem, code=code)
        return self._write_and_ingest(upload.data, new_id, relative.suffix.lower(), placement)

    def _write_and_ingest(self, data: bytes, local_id: str, suffix: str, placement: Placement) -> FileResult:
        """Keep the bytes as the document's source file and ingest it; on failure restore the old file."""
        root = self._tenant_dir(placement.tenant)
        target = root / f"{local_id}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        backup = target.read_bytes() if target.exists() else None
        _write_atomically(target, data)
        [result] = self.ingestor.ingest_files([(target, root)], placement=placement)
        if result.outcome == Outcome.FAILED:
            if backup is None:
                target.unlink(missing_ok=True)
            else:
                _write_atomically(target, backup)
            return result
        for other in self._uploaded_files(qualify(placement.tenant, local_id)):
            if other != target:
                other.unlink()  # the same document uploaded earlier in another format
        return result

    def _delete(self, document_id: str) -> bool:
        if self.ingestor.registry.get(document_id) is None:
            return False
        self.ingestor.remove([document_id])
        for path in self._uploaded_files(document_id):
            path.unlink()
        return True

    def _tenant_dir(self, tenant: str) -> Path:
        """Uploads of the default tenant sit at the top; others under ``.tenants/`` (a document id
        never starts with a dot, so the two cannot collide)."""
        return self.uploads_dir if tenant == DEFAULT_TENANT else self.uploads_dir / ".tenants" / tenant

    def _uploaded_files(self, document_id: str) -> list[Path]:
        tenant = tenant_of(document_id)
        local_id = document_id.removeprefix(f"{tenant}{TENANT_SEPARATOR}") if tenant != DEFAULT_TENANT else document_id
        base = self._tenant_dir(tenant) / local_id
        candidates = [base.with_name(base.name + suffix) for suffix in SUPPORTED_SUFFIXES]
        return [path for path in candidates if path.is_file()]


def _log_crash(future: Future[None]) -> None:
    if future.exception() is not None:
        logger.error("an upload job crashed", exc_info=future.exception())


def _safe_relative(filename: str) -> PurePosixPath:
    """The upload's name as a relative path inside the uploads folder, or a ParseError."""
    relative = PurePosixPath(filename.replace("\\", "/").lstrip("/"))
    if not relative.name or any(part in {"..", "."} for part in relative.parts):
        raise ParseError(Path(filename or "(unnamed)"), "invalid file name", "invalid_filename")
    if relative.suffix.lower() not in SUPPORTED_SUFFIXES:
        suffix = relative.suffix or "(none)"
        raise ParseError(Path(filename), f"unsupported file type {suffix}", "unsupported_type")
    return relative


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
