"""Upload jobs in SQL: a job row and one row per file, holding the uploaded bytes and, once written,
the file's result. Every replica reads the same rows (GET /v1/jobs/{id} from anywhere), and a job cut
short by a crash resumes from its first file without a result: finished files are never written again.

Who runs a job is the caller's business (ingest/service.py in the API process, ingest/queue.py in
``answerdesk worker``); this module only keeps the state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from common.clock import utc_now
from common.errors import AnswerDeskError
from common.schema import require_current
from common.sql import SqlStore
from ingest.locks import TenantLocks
from ingest.pipeline import FileResult, Outcome
from retrieval.scope import DEFAULT_TENANT, PUBLIC


class _Base(DeclarativeBase):
    pass


class _JobRow(_Base):
    __tablename__ = "upload_jobs"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    audiences: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[str] = mapped_column(String(40))
    finished_at: Mapped[str] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    document_id: Mapped[str | None] = mapped_column(String, nullable=True)  # the URL's id (PUT, JSON text)
    must_be_new: Mapped[bool] = mapped_column(Boolean)


class _FileRow(_Base):
    __tablename__ = "upload_job_files"

    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("upload_jobs.job_id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)  # over the size limit: the size alone, no data
    # Its write began: a resumed job may find the document written by itself (not "document_exists").
    started: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every file ingested (or unchanged)
    FAILED = "failed"  # at least one file failed; the others were ingested
    CANCELLED = "cancelled"  # cancelled before every file was written; the written ones stay


UNFINISHED = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
MAX_JOBS_KEPT = 1000  # finished jobs kept for GET /v1/jobs/{id} and retry; older ones are deleted
CANCELLED_CODE = "cancelled"
GAVE_UP_CODE = "job_failed"  # the files a job's runner gave up on (ingest/queue.py: its tries ran out)


class JobStateError(AnswerDeskError, ValueError):
    """A cancel or retry that the job's state does not allow (``job_finished``, ``job_not_failed``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]


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


@dataclass
class Job:
    job_id: str
    files_total: int
    status: JobStatus = JobStatus.QUEUED
    created_at: str = field(default_factory=lambda: utc_now("seconds"))
    finished_at: str = ""
    results: list[FileResult] = field(default_factory=list)  # of the files written so far, in file order
    tenant: str = DEFAULT_TENANT  # whose documents; the API shows a job only to its tenant
    # The audiences its writer could publish to: a job of an internal key may name internal
    # documents, so the API shows it only to keys that see every one of them.
    audiences: frozenset[str] = frozenset({PUBLIC})
    attempts: int = 0
    cancel_requested: bool = False


@dataclass(frozen=True)
class PendingFile:
    """A file of a job still to write, with what the job says about it."""

    job_id: str
    position: int
    upload: Upload
    document_id: str | None
    must_be_new: bool
    tenant: str
    audiences: frozenset[str]
    started: bool  # a write of it began before (and was cut short)


# Called inside the transaction that creates or re-queues a job (the queue's enqueue), so the job's
# rows and its place in the queue are committed together or not at all.
OnQueued = Callable[[Connection, Job], None]


class JobStore(SqlStore):
    """Upload jobs and their files in the SQL database (``ANSWERDESK_DATABASE_URL``)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        require_current(self.engine)

    def create(
        self,
        uploads: Sequence[Upload],
        tenant: str,
        audiences: frozenset[str],
        document_id: str | None = None,
        must_be_new: bool = False,
        on_queued: OnQueued | None = None,
    ) -> Job:
        job = Job(uuid.uuid4().hex, len(uploads), tenant=tenant, audiences=audiences)
        with self._session() as session:
            session.add(
                _JobRow(
                    job_id=job.job_id,
                    tenant=tenant,
                    audiences=sorted(audiences),
                    status=job.status.value,
                    created_at=job.created_at,
                    finished_at="",
                    attempts=0,
                    cancel_requested=False,
                    document_id=document_id,
                    must_be_new=must_be_new,
                )
            )
            session.flush()
            session.add_all(
                _FileRow(
                    job_id=job.job_id,
                    position=index,
                    filename=upload.filename,
                    data=upload.data,
                    size=upload.length,
                    started=False,
                )
                for index, upload in enumerate(uploads)
            )
            session.flush()
            if on_queued is not None:
                on_queued(session.connection(), job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._session() as session:
            row = session.get(_JobRow, job_id)
            if row is None:
                return None
            files = session.execute(
                select(_FileRow.result).where(_FileRow.job_id == job_id).order_by(_FileRow.position)
            ).all()
            return Job(
                job_id=row.job_id,
                files_total=len(files),
                status=JobStatus(row.status),
                created_at=row.created_at,
                finished_at=row.finished_at,
                results=[_result_from(result) for (result,) in files if result is not None],
                tenant=row.tenant,
                audiences=frozenset(row.audiences),
                attempts=row.attempts,
                cancel_requested=row.cancel_requested,
            )

    def start(self, job_id: str) -> bool:
        """Mark a job running (one more attempt); False when there is nothing to run (finished or gone)."""
        with self._session() as session:
            changed = session.execute(
                update(_JobRow)
                .where(_JobRow.job_id == job_id, _JobRow.status.in_([s.value for s in UNFINISHED]))
                .values(status=JobStatus.RUNNING.value, attempts=_JobRow.attempts + 1)
            )
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    def next_file(self, job_id: str) -> PendingFile | None:
        """The job's first file without a result; None when every file has one."""
        with self._session() as session:
            found = session.execute(
                select(_FileRow, _JobRow)
                .join(_JobRow, _JobRow.job_id == _FileRow.job_id)
                .where(_FileRow.job_id == job_id, _FileRow.result.is_(None))
                .order_by(_FileRow.position)
                .limit(1)
            ).first()
            if found is None:
                return None
            file, job = found
            return PendingFile(
                job_id=job_id,
                position=file.position,
                upload=Upload(file.filename, file.data, file.size),
                document_id=job.document_id,
                must_be_new=job.must_be_new,
                tenant=job.tenant,
                audiences=frozenset(job.audiences),
                started=file.started,
            )

    def claim(self, job_id: str, position: int) -> bool:
        """Mark a file's write as begun; False when it has a result already. Called under the
        tenant's write lock, so a file that two runners reach at once (a stalled worker's job retried
        while it still runs) is written once."""
        with self._session() as session:
            changed = session.execute(
                update(_FileRow)
                .where(_FileRow.job_id == job_id, _FileRow.position == position, _FileRow.result.is_(None))
                .values(started=True)
            )
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    @contextmanager
    def write_lock(self, tenant: str) -> Iterator[None]:
        """Writes of one tenant one at a time across every process sharing a PostgreSQL database
        (ingest/locks.py); SQLite has one writer process, whose writer thread already serializes them."""
        with TenantLocks(self.engine).hold(tenant):
            yield

    def cancel_requested(self, job_id: str) -> bool:
        with self._session() as session:
            return bool(session.scalar(select(_JobRow.cancel_requested).where(_JobRow.job_id == job_id)))

    def record(self, job_id: str, position: int, result: FileResult) -> None:
        with self._session() as session:
            session.execute(
                update(_FileRow)
                .where(_FileRow.job_id == job_id, _FileRow.position == position)
                .values(result=_result_to(result))
            )

    def finish(self, job_id: str, gave_up: str = "") -> Job | None:
        """Close a job whose files all have results (those left get ``cancelled`` when it was
        cancelled, or fail as ``job_failed`` saying ``gave_up`` when its runner gives up on it); its
        status says how it went. The bytes of the files written are dropped (a retry writes only
        failed ones), and only the newest :data:`MAX_JOBS_KEPT` finished jobs stay."""
        with self._session() as session:
            row = session.get(_JobRow, job_id, with_for_update=True)
            if row is None:
                return None
            if row.status in UNFINISHED:  # else closed meanwhile (cancelled, or by another runner)
                _close(session, row, gave_up)
        return self.get(job_id)

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop: files not started yet will not be written. Raises ``job_finished``."""
        with self._session() as session:
            row = session.get(_JobRow, job_id, with_for_update=True)
            if row is None or row.status not in UNFINISHED:
                raise JobStateError(f"job {job_id!r} has finished; there is nothing to cancel", "job_finished")
            row.cancel_requested = True
            queued = row.status == JobStatus.QUEUED
        if queued:  # no runner has it yet: it ends now (one that starts it later finds it finished)
            self.finish(job_id)

    def retry(self, job_id: str, on_queued: OnQueued | None = None) -> Job:
        """Queue a finished job's failed (and cancelled) files again. Raises ``job_not_failed``."""
        with self._session() as session:
            row = session.get(_JobRow, job_id, with_for_update=True)
            if row is None or row.status not in {JobStatus.FAILED, JobStatus.CANCELLED}:
                state = row.status if row is not None else "gone"
                problem = f"job {job_id!r} is {state}: only a failed or cancelled job is retried"
                raise JobStateError(problem, "job_not_failed")
            files = session.scalars(select(_FileRow).where(_FileRow.job_id == job_id)).all()
            for file in files:
                if file.result is not None and file.result["outcome"] == Outcome.FAILED.value:
                    file.result, file.started = None, False
            row.status, row.finished_at, row.cancel_requested = JobStatus.QUEUED.value, "", False
            session.flush()
            job = Job(job_id, len(files), tenant=row.tenant, audiences=frozenset(row.audiences))
            if on_queued is not None:
                on_queued(session.connection(), job)
        found = self.get(job_id)
        assert found is not None
        return found

    def close_abandoned(self, held: Callable[[Connection, list[str]], set[str]], problem: str) -> list[str]:
        """Close as failed (files left: ``job_failed``, saying ``problem``) the unfinished jobs that
        no runner holds any more; ``held`` tells, on this transaction, which of them the queue still
        will run. Their rows are locked first, so a job queued again meanwhile (a retry commits its
        row and its queue entry together, under the same lock) is never taken for abandoned."""
        with self._session() as session:
            unfinished = _JobRow.status.in_([s.value for s in UNFINISHED])
            rows = session.scalars(select(_JobRow).where(unfinished).with_for_update(skip_locked=True)).all()
            kept = held(session.connection(), [row.job_id for row in rows]) if rows else set()
            abandoned = [row for row in rows if row.job_id not in kept]
            for row in abandoned:
                _close(session, row, problem)
            return [row.job_id for row in abandoned]

    def unfinished(self) -> list[str]:
        """Jobs queued or running (left so by a crash, when no other process runs them)."""
        with self._session() as session:
            return list(
                session.scalars(
                    select(_JobRow.job_id)
                    .where(_JobRow.status.in_([s.value for s in UNFINISHED]))
                    .order_by(_JobRow.created_at)
                )
            )

    def counts(self) -> dict[str, int]:
        """Jobs by status (the /metrics gauge: the same on every replica)."""
        with self._session() as session:
            rows = session.execute(select(_JobRow.status, func.count()).group_by(_JobRow.status)).all()
        return {status: count for status, count in rows}


def _close(session: Session, row: _JobRow, gave_up: str) -> None:
    files = session.scalars(select(_FileRow).where(_FileRow.job_id == row.job_id)).all()
    for file in files:
        if file.result is None and row.cancel_requested:
            problem = "the job was cancelled before this file was written"
            file.result = _result_to(FileResult(file.filename, Outcome.FAILED, error=problem, code=CANCELLED_CODE))
        elif file.result is None and gave_up:
            file.result = _result_to(FileResult(file.filename, Outcome.FAILED, error=gave_up, code=GAVE_UP_CODE))
        if file.result is not None and file.result["outcome"] != Outcome.FAILED.value:
            file.data = b""
    results = [file.result for file in files]
    if any(result and result["code"] == CANCELLED_CODE for result in results):
        status = JobStatus.CANCELLED
    elif any(result is None or result["outcome"] == Outcome.FAILED.value for result in results):
        status = JobStatus.FAILED
    else:
        status = JobStatus.SUCCEEDED
    row.status, row.finished_at = status.value, utc_now("seconds")
    _prune(session)


def _prune(session: Session) -> None:
    """Forget finished jobs older than the newest MAX_JOBS_KEPT (their files first: SQLite does not
    enforce the foreign key's cascade)."""
    finished = _JobRow.status.not_in([s.value for s in UNFINISHED])
    oldest_kept = session.scalar(
        select(_JobRow.finished_at)
        .where(finished)
        .order_by(_JobRow.finished_at.desc())
        .offset(MAX_JOBS_KEPT - 1)
        .limit(1)
    )
    if oldest_kept is None:
        return
    old = select(_JobRow.job_id).where(finished, _JobRow.finished_at < oldest_kept)
    session.execute(delete(_FileRow).where(_FileRow.job_id.in_(old)))
    session.execute(delete(_JobRow).where(_JobRow.job_id.in_(old)))


def _result_to(result: FileResult) -> dict[str, Any]:
    stored = asdict(result)
    stored["outcome"] = result.outcome.value
    stored["warnings"] = list(result.warnings)
    return stored


def _result_from(stored: dict[str, Any]) -> FileResult:
    return FileResult(**{**stored, "outcome": Outcome(stored["outcome"]), "warnings": tuple(stored["warnings"])})
