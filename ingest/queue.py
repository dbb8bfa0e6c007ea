"""The upload-job queue of a PostgreSQL deployment: Procrastinate, whose tables live in the same
database as the job rows (docs/operations.md says why it, and not a Redis queue).

The API enqueues inside the transaction that stores the job (:meth:`ProcrastinateQueue.enqueue`);
``answerdesk worker`` (:func:`run_worker`) runs them. A job holds its tenant's Procrastinate lock, so
two workers never run batches of one tenant at once; each file also takes the tenant's advisory lock
(ingest/jobs.py) against the API's own small writes. A stopping worker (SIGTERM) finishes the file
it is writing and hands the rest back (Procrastinate retries jobs aborted by a shutdown); a worker
killed outright stops sending heartbeats, and the other workers put its job back in the queue after
``worker_stalled_seconds`` (:func:`_recover`, which also closes jobs the queue gave up on).
Finished files have results in SQL, so a job run again writes only the files left.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import procrastinate
from procrastinate.exceptions import JobAborted
from sqlalchemy import Connection, make_url, text

from ingest.jobs import Job
from ingest.service import DocumentService, JobStopped

logger = logging.getLogger(__name__)

QUEUE = "uploads"
TASK = "answerdesk.run_upload_job"
# Jobs that fail to run (database down, a stopping worker) are tried again; files already written
# are skipped, so trying again costs only the files left. After the last try the job is closed as
# failed (its files left fail as ``job_failed``), so that it can be retried through the API.
_RETRY = procrastinate.RetryStrategy(max_attempts=20, wait=2)


def conninfo(database_url: str) -> str:
    """The libpq connection string of an SQLAlchemy ``postgresql+psycopg://`` URL (query kept)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def build_app(database_url: str) -> procrastinate.App:
    """Procrastinate's app on our database, with the one task: run an upload job."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(database_url)))

    @app.task(name=TASK, queue=QUEUE, pass_context=True, retry=_RETRY)
    def run_upload_job(context: procrastinate.JobContext, job_id: str) -> None:
        service: DocumentService = context.additional_context["service"]
        # Procrastinate gives a job up (failed or aborted for good) when a try that ends in an error
        # had ``attempts`` >= max_attempts; without closing it here it would stay "running" for ever.
        last = context.job.attempts >= (_RETRY.max_attempts or 0)
        try:
            service.run_job(job_id, context.should_abort)
        except JobStopped as exc:
            if last:
                service.give_up(job_id, f"the job was stopped or failed {context.job.attempts + 1} times; retry it")
            raise JobAborted(f"worker stopping; job {job_id} goes back to the queue") from exc
        except Exception as exc:
            if last:  # the detail (may name servers) goes to the log below, not to the client
                problem = f"the job failed {context.job.attempts + 1} times, last with {type(exc).__name__}"
                service.give_up(job_id, f"{problem}; see the worker's log, then retry it")
            raise

    return app


class ProcrastinateQueue:
    """Enqueues upload jobs for ``answerdesk worker`` (the API side; it opens no pool of its own)."""

    def __init__(self, database_url: str) -> None:
        self.app = build_app(database_url)

    def enqueue(self, connection: Connection, job: Job) -> None:
        driver = connection.connection.driver_connection  # psycopg's, inside our open transaction
        # Batches of one tenant run one at a time (Procrastinate's lock): they serialize anyway on
        # the tenant's write lock, and this keeps a worker from waiting idle on it.
        deferrer = self.app.configure_task(TASK, lock=f"tenant:{job.tenant}", connection=driver)
        deferrer.defer(job_id=job.job_id)


def held_by_queue(connection: Connection, job_ids: list[str]) -> set[str]:
    """Of ``job_ids``, those Procrastinate will still run (waiting, or running on a worker)."""
    rows = connection.execute(
        text(
            "SELECT args->>'job_id' FROM procrastinate_jobs WHERE task_name = :task"
            " AND status IN ('todo', 'doing', 'aborting') AND args->>'job_id' = ANY(:ids)"
        ),
        {"task": TASK, "ids": job_ids},
    )
    return {job_id for (job_id,) in rows}


async def _recover(app: procrastinate.App, service: DocumentService, stalled_seconds: float) -> None:
    """Put back in the queue the jobs of workers that stopped sending heartbeats (killed, lost),
    as Procrastinate's docs advise (it finds them; retrying is left to the application); then close
    the jobs left unfinished that the queue no longer holds (given up on while the database refused
    to record it), so that they can be retried."""
    while True:
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_seconds):
                logger.warning("upload job %s was running on a worker that stopped; queued again", job.task_kwargs)
                await app.job_manager.retry_job(job)
            problem = "the queue gave up on the job (its tries ran out); see the worker's log, then retry it"
            for job_id in await asyncio.to_thread(service.jobs.close_abandoned, held_by_queue, problem):
                logger.error("upload job %s was left unfinished outside the queue; closed as failed", job_id)
        except Exception:  # the database is down, say: the next round tries again
            logger.exception("recovering upload jobs failed; trying again in %.0f s", stalled_seconds / 2)
        await asyncio.sleep(stalled_seconds / 2)


def run_worker(service: DocumentService, database_url: str, stalled_seconds: float, wait: bool = True) -> None:
    """Run upload jobs until SIGTERM or SIGINT (then the running file finishes, the rest is
    queued again), or with ``wait=False`` until the queue is empty. One job at a time: ingesting is
    CPU-bound."""
    app = build_app(database_url)

    async def main() -> None:
        async with app.open_async():
            recovery = asyncio.create_task(_recover(app, service, stalled_seconds))
            try:
                options: dict[str, Any] = {
                    "queues": [QUEUE],
                    "wait": wait,
                    "concurrency": 1,
                    "additional_context": {"service": service},
                    "shutdown_graceful_timeout": 0,  # at once: the task stops between files
                    "delete_jobs": "successful",  # our job rows keep the history; the queue stays small
                    "update_heartbeat_interval": stalled_seconds / 4,
                    "stalled_worker_timeout": stalled_seconds,
                }
                await app.run_worker_async(**options)
            finally:
                recovery.cancel()

    asyncio.run(main())
