"""Document writes for the API: uploads become files under the uploads folder, then are ingested.

All writes run on one writer thread, in order, so two requests never race on a document's
version; large uploads run as jobs whose progress and per-file results can be polled. A job's files
are queued one at a time, so a write sent while a batch runs goes in between its files, and a
write that cannot start within its deadline is handed back as a job instead of holding the client.
Uploaded bytes are parsed before anything is written: a bad file changes nothing.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

from common.clock import utc_now
from common.errors import AnswerDeskError
from ingest.parse import SUPPORTED_SUFFIXES, ParseError, parse_bytes
from ingest.pipeline import DEFAULT_PLACEMENT, FileResult, Ingestor, Outcome, Placement
from retrieval.scope import (
    DEFAULT_TENANT,
    MAX_ID_SEGMENT_BYTES,
    PUBLIC,
    TENANT_SEPARATOR,
    InvalidIdError,
    check_document_id,
    qualify,
    tenant_of,
)

logger = logging.getLogger(__name__)

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


class WriterBusyError(AnswerDeskError, RuntimeError):
    """A write that could not start within its deadline, because other writes were still running."""

    code = "writer_busy"


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
    created_at: str = field(default_factory=lambda: utc_now("seconds"))
    finished_at: str = ""
    results: list[FileResult] = field(default_factory=list)
    tenant: str = DEFAULT_TENANT  # whose documents; the API shows a job only to its tenant
    # The audiences its writer could publish to: a job of an internal key may name internal
    # documents, so the API shows it only to keys that see every one of them.
    audiences: frozenset[str] = frozenset({PUBLIC})
    started: threading.Event = field(default_factory=threading.Event, repr=False)


class DocumentService:
    """Adds, replaces and deletes documents for the API, one write at a time."""

    def __init__(self, ingestor: Ingestor, uploads_dir: Path) -> None:
        self.ingestor = ingestor
        self.uploads_dir = uploads_dir
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="document-writer")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_lock = threading.Lock()

    def write(
        self,
        upload: Upload,
        document_id: str | None = None,
        must_be_new: bool = False,
        placement: Placement = DEFAULT_PLACEMENT,
        wait_seconds: float | None = None,
    ) -> FileResult | Job:
        """Add or replace one document of ``placement``'s tenant (``document_id`` is the tenant's own,
        unqualified id): its result, or, when other writes keep it from starting within
        ``wait_seconds`` (None: however long), the job that will write it, to poll like any other."""
        job = self._new_job(1, placement)
        future = self._writer.submit(self._job_step, job, [upload], 0, document_id, must_be_new, placement, set())
        if not job.started.wait(wait_seconds):
            self._keep(job)
            return job
        future.result()
        return job.results[0]

    def delete(self, document_id: str, wait_seconds: float | None = None) -> bool:
        """Remove a document (by qualified id, retrieval/scope.py) and its uploaded file; False when
        there was no such document. Raises WriterBusyError when it could not start within
        ``wait_seconds`` (and is then not done at all)."""
        future = self._writer.submit(self._delete, document_id)
        try:
            return future.result(timeout=wait_seconds)
        except FutureTimeout:
            if future.cancel():
                raise WriterBusyError("other writes are still running; nothing was deleted") from None
            return future.result()  # it has started: it is quick, wait for it

    def start_job(
        self,
        uploads: list[Upload],
        document_id: str | None = None,
        must_be_new: bool = False,
        placement: Placement = DEFAULT_PLACEMENT,
    ) -> Job:
        """Queue uploads as a job and return it at once; poll :meth:`job` for progress."""
        job = self._new_job(len(uploads), placement)
        self._keep(job)
        if uploads:
            self._submit_step(job, uploads, 0, document_id, must_be_new, placement, set())
        else:
            self._finish(job)
        return job

    def job(self, job_id: str) -> Job | None:
        with self._jobs_lock:
            return self._jobs.get(job_id)

    def recover(self) -> None:
        """Finish cleaning up after a write that was interrupted (e.g. by a crash)."""
        self._writer.submit(self.ingestor.recover).result()

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def _new_job(self, files: int, placement: Placement) -> Job:
        return Job(
            job_id=uuid.uuid4().hex,
            files_total=files,
            tenant=placement.tenant,
            audiences=placement.allowed_audiences,
        )

    def _keep(self, job: Job) -> None:
        with self._jobs_lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > MAX_JOBS_KEPT:
                self._jobs.popitem(last=False)

    def _submit_step(
        self,
        job: Job,
        uploads: list[Upload],
        index: int,
        document_id: str | None,
        must_be_new: bool,
        placement: Placement,
        claimed: set[str],
    ) -> None:
        try:
            future = self._writer.submit(
                self._job_step, job, uploads, index, document_id, must_be_new, placement, claimed
            )
        except RuntimeError:  # the server is shutting down: the rest of the job is not written
            for upload in uploads[index:]:
                problem = "the server stopped before this file was written; upload it again"
                job.results.append(FileResult(upload.filename, Outcome.FAILED, error=problem, code="not_written"))
            self._finish(job)
            return
        future.add_done_callback(_log_crash)

    def _job_step(
        self,
        job: Job,
        uploads: list[Upload],
        index: int,
        document_id: str | None,
        must_be_new: bool,
        placement: Placement,
        claimed: set[str],
    ) -> None:
        """Write the job's file ``index``, then queue the next one behind the writes sent meanwhile,
        so a small write never waits for a whole batch. A file that fails, even by a bug, gets its
        own failed result and the batch goes on."""
        job.status = JobStatus.RUNNING
        job.started.set()
        upload = uploads[index]
        try:
            result = self._put(upload, document_id, must_be_new, placement, claimed)
        except Exception as exc:
            logger.exception("unexpected error writing upload %s", upload.filename)
            result = FileResult(
                upload.filename,
                Outcome.FAILED,
                document_id or "",
                error=f"internal error: {exc}",
                code="internal_error",
            )
        if result.document_id and result.outcome != Outcome.FAILED:
            claimed.add(result.document_id)
        job.results.append(result)
        if index + 1 < len(uploads):
            self._submit_step(job, uploads, index + 1, document_id, must_be_new, placement, claimed)
        else:
            self._finish(job)

    def _finish(self, job: Job) -> None:
        failed = any(result.outcome == Outcome.FAILED for result in job.results)
        job.status = JobStatus.FAILED if failed else JobStatus.SUCCEEDED
        job.finished_at = utc_now("seconds")

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
            relative = _safe_relative(unicodedata.normalize("NFC", name))
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
        elif problem := id_problem(new_id, relative.suffix.lower()):
            code = "invalid_id"
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
        names = [base.name + suffix for suffix in SUPPORTED_SUFFIXES]
        # A name over the file system's limit cannot exist (and stat-ing it fails).
        candidates = [base.with_name(name) for name in names if len(name.encode()) <= MAX_ID_SEGMENT_BYTES]
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


def name_problem(filename: str) -> tuple[str, str]:
    """Why an upload's file name cannot name a document (problem and code; empty when it can)."""
    try:
        relative = _safe_relative(unicodedata.normalize("NFC", filename))
    except ParseError as exc:
        return exc.problem, exc.code
    problem = id_problem(relative.with_suffix("").as_posix(), relative.suffix.lower())
    return problem, "invalid_id" if problem else ""


def id_problem(document_id: str, suffix: str = "") -> str:
    """Why ``document_id`` cannot name an uploaded document ("" when it can): the rule of folder
    ingestion (retrieval/scope.py), and no segment starting with '.', which is kept for the uploads
    folder's own entries (``.tenants``, temporary files)."""
    try:
        check_document_id(document_id, suffix)
    except InvalidIdError as exc:
        return str(exc)
    if any(segment.startswith(".") for segment in document_id.split("/")):
        return f"invalid document id {document_id[:80]!r}: a path segment starts with '.'"
    return ""


def _write_atomically(path: Path, data: bytes) -> None:
    # A short temporary name: the target's own name may already be at the file system's limit.
    temporary = path.with_name(f".{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
