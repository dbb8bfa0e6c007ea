"""Document writes for the API: uploads become files under the uploads folder, then are ingested.

Writes of this process run on one writer thread, in order, so two requests never race on a
document's version; writes of other processes sharing a PostgreSQL database (replicas, workers)
wait for the tenant's write lock (ingest/jobs.py). Large uploads run as jobs kept in SQL
(ingest/jobs.py) whose progress and per-file results any replica can show. A job runs either here,
on the writer thread one file at a time, so a write sent while a batch runs goes in between its
files (SQLite, or ``job_runner = "api"``), or in ``answerdesk worker`` (ingest/queue.py). A write
that cannot start within its deadline is handed back as a job instead of holding the client.
Uploaded bytes are parsed before anything is written: a bad file changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Protocol

from sqlalchemy import Connection

from common.errors import AnswerDeskError
from ingest.jobs import Job, JobStatus, JobStore, PendingFile, Upload
from ingest.parse import SUPPORTED_SUFFIXES, ParseError, parse_bytes
from ingest.pipeline import DEFAULT_PLACEMENT, STORE_UNAVAILABLE, FileResult, Ingestor, Outcome, Placement
from retrieval.scope import (
    DEFAULT_TENANT,
    MAX_ID_SEGMENT_BYTES,
    TENANT_SEPARATOR,
    InvalidIdError,
    check_document_id,
    qualify,
    tenant_of,
)
from retrieval.vector_store import StoreUnavailableError

logger = logging.getLogger(__name__)

__all__ = ["DocumentService", "Job", "JobQueue", "JobStatus", "Upload", "WriterBusyError"]


# A job run this many times whose next file was being written when the previous run died fails that file.
MAX_ATTEMPTS = 5


class WriterBusyError(AnswerDeskError, RuntimeError):
    """A write that could not start within its deadline, because other writes were still running."""

    code = "writer_busy"


class JobStopped(Exception):  # noqa: N818 - a signal to the queue, not an error
    """The worker is stopping: the job's remaining files are left for the next run of it."""


class JobQueue(Protocol):
    """Where jobs go when another process runs them (ingest/queue.py); called inside the
    transaction that makes the job's rows, so both are committed or neither."""

    def enqueue(self, connection: Connection, job: Job) -> None: ...


class DocumentService:
    """Adds, replaces and deletes documents for the API, one write at a time; runs upload jobs
    (here, or in a worker when ``queue`` is given)."""

    def __init__(self, ingestor: Ingestor, uploads_dir: Path, jobs: JobStore, queue: JobQueue | None = None) -> None:
        self.ingestor = ingestor
        self.uploads_dir = uploads_dir
        self.jobs = jobs
        self.queue = queue
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="document-writer")
        # Told each written file's outcome and seconds (the API's metrics); None: nobody listens.
        self.on_file_written: Callable[[str, float], None] | None = None

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
        started = threading.Event()

        def run() -> FileResult:
            started.set()
            with self.jobs.write_lock(placement.tenant):
                return self._timed_put(upload, document_id, must_be_new, placement, set())

        future = self._writer.submit(run)
        if not started.wait(wait_seconds) and future.cancel():
            return self.start_job([upload], document_id, must_be_new, placement)
        return future.result()

    def delete(self, document_id: str, wait_seconds: float | None = None) -> bool:
        """Remove a document (by qualified id, retrieval/scope.py) and its uploaded file; False when
        there was no such document. Raises WriterBusyError when it could not start within
        ``wait_seconds`` (and is then not done at all)."""
        started = threading.Event()

        def run() -> bool:
            started.set()
            with self.jobs.write_lock(tenant_of(document_id)):
                return self._delete(document_id)

        future = self._writer.submit(run)
        if not started.wait(wait_seconds) and future.cancel():
            raise WriterBusyError("other writes are still running; nothing was deleted")
        return future.result()  # it has started: it is quick, wait for it

    def start_job(
        self,
        uploads: list[Upload],
        document_id: str | None = None,
        must_be_new: bool = False,
        placement: Placement = DEFAULT_PLACEMENT,
    ) -> Job:
        """Keep uploads as a job and return it at once; poll :meth:`job` for progress."""
        enqueue = self.queue.enqueue if self.queue is not None else None
        audiences = placement.allowed_audiences
        job = self.jobs.create(uploads, placement.tenant, audiences, document_id, must_be_new, enqueue)
        if self.queue is None:
            self._submit_step(job.job_id, first=True)
        return job

    def job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Job:
        """Stop a job: files not started yet are not written (``cancelled``), the running one finishes."""
        self.jobs.cancel(job_id)
        job = self.jobs.get(job_id)
        assert job is not None
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed job's failed files again."""
        job = self.jobs.retry(job_id, self.queue.enqueue if self.queue is not None else None)
        if self.queue is None:
            self._submit_step(job_id, first=True)
        return job

    def job_counts(self) -> dict[str, int]:
        """Jobs in the database, by status."""
        return self.jobs.counts()

    def recover(self) -> None:
        """Finish cleaning up after a write that was interrupted (e.g. by a crash), and resume the
        jobs it left unfinished when this process runs jobs (their bytes are in SQL)."""
        self._writer.submit(self.ingestor.recover).result()
        if self.queue is None:
            for job_id in self.jobs.unfinished():
                logger.info("resuming upload job %s", job_id)
                self._submit_step(job_id, first=True)

    def run_job(self, job_id: str, should_stop: Callable[[], bool] = lambda: False) -> Job | None:
        """Write a job's files that have no result yet, then close it (``answerdesk worker``). Raises
        :class:`JobStopped` between files once ``should_stop`` says so."""
        if not self.jobs.start(job_id):
            return self.jobs.get(job_id)  # finished already (e.g. a duplicate delivery)
        while self._write_next(job_id):
            if should_stop():
                raise JobStopped(job_id)
        return self.jobs.finish(job_id)

    def give_up(self, job_id: str, problem: str) -> Job | None:
        """Close a job that will not be run again: its files without a result fail, saying ``problem``."""
        return self.jobs.finish(job_id, gave_up=problem)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.jobs.close()

    def _submit_step(self, job_id: str, first: bool = False) -> None:
        try:
            future = self._writer.submit(self._step, job_id, first)
        except RuntimeError:  # the server is shutting down: the job resumes when it starts again
            logger.info("upload job %s left for the next start", job_id)
            return
        future.add_done_callback(_log_crash)

    def _step(self, job_id: str, first: bool) -> None:
        """Write the job's next file, then queue the following one behind the writes sent
        meanwhile, so a small write never waits for a whole batch."""
        if first and not self.jobs.start(job_id):
            return
        if self._write_next(job_id):
            self._submit_step(job_id)
        else:
            self.jobs.finish(job_id)

    def _write_next(self, job_id: str) -> bool:
        """Write the job's next file without a result; False when none is left (or it was cancelled).
        A file that fails, even by a bug, gets its own failed result and the batch goes on."""
        pending = self.jobs.next_file(job_id)
        if pending is None or self.jobs.cancel_requested(job_id):
            return False
        with self.jobs.write_lock(pending.tenant):
            if not self.jobs.claim(job_id, pending.position):
                return True  # another runner wrote it meanwhile
            result = self._write_pending(pending)
            self.jobs.record(job_id, pending.position, result)
        return True

    def _write_pending(self, pending: PendingFile) -> FileResult:
        job = self.jobs.get(pending.job_id)
        assert job is not None
        if pending.started and job.attempts >= MAX_ATTEMPTS:
            # Its runner died while writing it, again and again (a file that crashes the process):
            # the rest of the job must not wait on it for ever.
            problem = f"the process writing this file stopped {MAX_ATTEMPTS - 1} times; it was not tried again"
            return FileResult(pending.upload.filename, Outcome.FAILED, error=problem, code="write_interrupted")
        claimed = {r.document_id for r in job.results if r.document_id and r.outcome != Outcome.FAILED}
        placement = Placement(tenant=pending.tenant, allowed_audiences=pending.audiences)
        # A file whose write began before may have added its document then: not "document_exists".
        must_be_new = pending.must_be_new and not pending.started
        return self._timed_put(pending.upload, pending.document_id, must_be_new, placement, claimed)

    def _timed_put(
        self, upload: Upload, document_id: str | None, must_be_new: bool, placement: Placement, claimed: set[str]
    ) -> FileResult:
        started = time.perf_counter()
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
        if self.on_file_written is not None:
            self.on_file_written(str(result.outcome), time.perf_counter() - started)
        return result

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
        try:
            [result] = self.ingestor.ingest_files([(target, root)], placement=placement)
        except StoreUnavailableError as exc:  # before anything was written (replaying the tenant's journal)
            logger.error("not writing %s: %s", target.name, exc)
            document_id = qualify(placement.tenant, local_id)
            result = FileResult(target.as_posix(), Outcome.FAILED, document_id, error=STORE_UNAVAILABLE, code=exc.code)
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
