"""`answerdesk worker` on PostgreSQL (issue #14): it runs a batch uploaded through the API; killed
with SIGKILL mid-batch, a new worker picks the job up again (stalled-job retry); stopped with
SIGTERM mid-batch, it exits cleanly and the next worker finishes the job, every document written
exactly once. Skipped loudly without PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from eval.fleet import Worker
from ingest.jobs import Job, JobStatus, JobStore
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from retrieval.registry import DocumentRegistry
from tests.helpers import bearer, issue_key, unlimited

REPO = Path(__file__).resolve().parents[2]
FILES = 16
STALLED_SECONDS = 3.0  # how soon a silent worker's job is taken back (30 s by default)
PAGE = (
    "# Plan {n}\n\nThe plan number {n} includes {n} seats, a monthly invoice and e-mail support.\n\n"
    "## Refunds\n\nA plan {n} bought by mistake is refunded within {n} days; write to billing.\n"
)


@pytest.fixture
def settings(tmp_path: Path, postgres_url: str, model_dir: Path) -> Settings:
    return unlimited(
        Settings(
            data_dir=tmp_path / "data",
            model_dir=model_dir,
            database_url_setting=postgres_url,
            worker_stalled_seconds=STALLED_SECONDS,
        )
    )


@pytest.fixture
def start_worker(settings: Settings) -> Iterator[Callable[[], Worker]]:
    started: list[Worker] = []
    env = {
        **os.environ,
        "ANSWERDESK_DATABASE_URL": settings.database_url,
        "ANSWERDESK_MODEL_DIR": str(settings.model_dir),
        "ANSWERDESK_WORKER_STALLED_SECONDS": str(STALLED_SECONDS),
        "ANSWERDESK_JOB_RUNNER": "auto",
    }

    def start() -> Worker:
        worker = Worker(f"worker-{len(started)}", settings.data_dir, env)
        worker.launch()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def _until(jobs: JobStore, job_id: str, done: Callable[[Job], bool], timeout: float = 120.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        assert job is not None
        if done(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck: {jobs.get(job_id)}")


def test_workers_killed_or_stopped_mid_batch_are_replaced_and_every_file_is_written_once(
    settings: Settings, start_worker: Callable[[], Worker]
) -> None:
    # The API only enqueues here (no worker runs in it); it closes before the workers write, so
    # the embedded vector store is never open in two processes writing at once.
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as api:
        batch = [("file", (f"plans/plan-{n:02}.md", PAGE.format(n=n).encode())) for n in range(FILES)]
        accepted = api.post("/v1/documents", files=batch)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    jobs = JobStore(settings.database_url)
    try:
        first = start_worker()
        _until(jobs, job_id, lambda job: len(job.results) >= 1)
        first.kill()
        cut = jobs.get(job_id)
        assert cut is not None and cut.status == JobStatus.RUNNING and len(cut.results) < FILES, cut

        second = start_worker()  # takes the job back once the first one's heartbeat is stale
        _until(jobs, job_id, lambda job: len(job.results) > len(cut.results))
        assert second.stop(timeout=30) == 0  # a clean stop (SIGTERM): the file being written finishes ...
        stopped = jobs.get(job_id)
        assert stopped is not None and len(stopped.results) < FILES, stopped

        third = start_worker()  # ... and the rest of the job is back in the queue at once
        job = _until(jobs, job_id, lambda job: job.status not in {JobStatus.QUEUED, JobStatus.RUNNING})
        assert third.stop(timeout=30) == 0
    finally:
        jobs.close()

    assert job.status == JobStatus.SUCCEEDED, [r for r in job.results if r.error]
    assert job.attempts == 3  # once by each worker
    assert sorted(r.document_id for r in job.results) == [f"plans/plan-{n:02}" for n in range(FILES)]
    assert {r.outcome.value for r in job.results} <= {"added", "unchanged"}  # the cut file: either
    registry = DocumentRegistry(settings.database_url)
    try:
        records = registry.all()
    finally:
        registry.engine.dispose()
    assert len(records) == FILES
    assert {record.version for record in records} == {1}  # none written twice
    # Registry, vector store and lexical index agree: the killed write left no stray chunks.
    env = {
        **os.environ,
        "ANSWERDESK_DATA_DIR": str(settings.data_dir),
        "ANSWERDESK_DATABASE_URL": settings.database_url,
    }
    check = subprocess.run(
        [sys.executable, "-m", "answerdesk", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0 and f"consistent: {FILES} documents" in check.stdout, check.stdout + check.stderr


def test_the_worker_refuses_sqlite_and_an_old_schema_naming_the_fix(tmp_path: Path, postgres_database: str) -> None:
    from tests.databases import schema_in

    def worker(url: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ANSWERDESK_DATA_DIR": str(tmp_path / "data"), "ANSWERDESK_DATABASE_URL": url}
        command = [sys.executable, "-m", "answerdesk", "worker"]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    sqlite = worker(f"sqlite:///{tmp_path / 'answerdesk.db'}")
    assert sqlite.returncode == 2 and "postgresql" in sqlite.stderr, sqlite.stderr
    with schema_in(postgres_database) as empty:  # `answerdesk db upgrade` never ran
        outdated = worker(empty)
    said = " ".join(outdated.stderr.split())
    assert outdated.returncode == 2 and "answerdesk db upgrade" in said and "Traceback" not in said, said
