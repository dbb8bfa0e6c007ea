"""Upload jobs kept in SQL (issue #14): seen from another app instance on the same database, cancel,
retry, and resumed after a crash; run in the API process (tests/ingest/test_worker.py: the worker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import procrastinate
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

import ingest.jobs
import ingest.queue
from api.app import create_app
from ingest.jobs import JobStore, Upload
from ingest.pipeline import FileResult, Outcome
from ingest.service import MAX_ATTEMPTS, DocumentService
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from retrieval.registry import DocumentRegistry
from tests.helpers import bearer, issue_key, unlimited, wait_until

pytestmark = pytest.mark.sql  # each test also runs on PostgreSQL (tests/conftest.py)

PAGE = "# Refunds\n\nAnnual plans are refunded within {} days of purchase.\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return unlimited(Settings(data_dir=tmp_path / "data", sync_upload_bytes=5_000))


def _client(settings: Settings, token: str) -> TestClient:
    return TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(token))


@pytest.fixture
def token(settings: Settings) -> str:
    return issue_key(settings)


@pytest.fixture
def client(settings: Settings, token: str) -> Iterator[TestClient]:
    with _client(settings, token) as client:
        yield client


def _batch(*names: str) -> list[tuple[str, tuple[str, bytes]]]:
    return [("file", (name, PAGE.format(number).encode())) for number, name in enumerate(names, 10)]


def _wait(client: TestClient, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in {"queued", "running"}:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _held_writer(client: TestClient) -> threading.Event:
    """Keep the app's writer thread busy until the returned event is set (jobs stay queued)."""
    service: DocumentService = client.app.state.documents  # type: ignore[attr-defined]
    release = threading.Event()
    service._writer.submit(release.wait)
    return release


def test_a_job_and_the_job_gauge_are_the_same_from_another_app_on_the_database(
    settings: Settings, token: str, client: TestClient
) -> None:
    accepted = client.post("/v1/documents", files=_batch("a.md", "b.md"))
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert _wait(client, job_id)["status"] == "succeeded"
    with _client(settings, token) as other:
        seen = other.get(f"/v1/jobs/{job_id}")
        assert seen.status_code == 200, seen.text
        assert seen.json() == client.get(f"/v1/jobs/{job_id}").json()
        assert [r["document_id"] for r in seen.json()["results"]] == ["a", "b"]
        assert 'answerdesk_upload_jobs{status="succeeded"} 1.0' in other.get("/metrics").text
        # Another tenant's key sees no such job, on any instance.
        stranger = issue_key(settings, role="admin", tenant="acme")
        assert _error(other.get(f"/v1/jobs/{job_id}", headers=bearer(stranger)), 404)["code"] == "job_not_found"
        assert _error(other.delete(f"/v1/jobs/{job_id}", headers=bearer(stranger)), 404)["code"] == "job_not_found"
        reader = issue_key(settings, role="reader")
        assert _error(other.delete(f"/v1/jobs/{job_id}", headers=bearer(reader)), 403)["code"] == "forbidden_role"
        assert _error(other.post(f"/v1/jobs/{job_id}/retry", headers=bearer(reader)), 403)["code"] == "forbidden_role"


def test_cancel_leaves_unstarted_files_unwritten_and_a_finished_job_is_refused(client: TestClient) -> None:
    release = _held_writer(client)
    job_id = client.post("/v1/documents", files=_batch("c1.md", "c2.md", "c3.md")).json()["job_id"]
    cancelled = client.delete(f"/v1/jobs/{job_id}")
    release.set()
    assert cancelled.status_code == 200, cancelled.text
    job = _wait(client, job_id)
    assert job["status"] == "cancelled"
    assert [(r["file"], r["outcome"], r["code"]) for r in job["results"]] == [
        ("c1.md", "failed", "cancelled"),
        ("c2.md", "failed", "cancelled"),
        ("c3.md", "failed", "cancelled"),
    ]
    assert client.get("/v1/documents/c1").status_code == 404  # never written, even after the writer is free
    assert _error(client.delete(f"/v1/jobs/{job_id}"), 409)["code"] == "job_finished"


def test_cancel_while_a_file_is_written_lets_that_file_finish(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    service: DocumentService = client.app.state.documents  # type: ignore[attr-defined]
    real = service.ingestor.ingest_files
    writing, release = threading.Event(), threading.Event()

    def ingest_files(files: Sequence[tuple[Path, Path | None]], **kwargs: Any) -> list[FileResult]:
        if files[0][0].name == "m2.md":
            writing.set()
            assert release.wait(30)
        return real(files, **kwargs)

    monkeypatch.setattr(service.ingestor, "ingest_files", ingest_files)
    job_id = client.post("/v1/documents", files=_batch("m1.md", "m2.md", "m3.md")).json()["job_id"]
    assert writing.wait(20)
    cancelling = client.delete(f"/v1/jobs/{job_id}")
    assert (cancelling.status_code, cancelling.json()["status"]) == (200, "running")
    release.set()
    job = _wait(client, job_id)
    assert job["status"] == "cancelled"
    outcomes = [(r["outcome"], r["code"]) for r in job["results"]]
    assert outcomes == [("added", ""), ("added", ""), ("failed", "cancelled")]
    assert client.get("/v1/documents/m2").status_code == 200 and client.get("/v1/documents/m3").status_code == 404


def test_a_write_waits_for_another_process_holding_the_tenants_write_lock(
    settings: Settings, client: TestClient, sql_backend: str
) -> None:
    if sql_backend != "postgres":
        pytest.skip("one process writes a SQLite database: its writer thread is the lock")
    other = JobStore(settings.database_url)  # another replica or worker, writing the same tenant
    waiting = (  # in this test session's database only: other runs may share the server
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    try:
        with other.write_lock("default"):
            put: list[Any] = []
            writer = threading.Thread(
                target=lambda: put.append(client.put("/v1/documents/locked", json={"content": PAGE.format(3)}))
            )
            writer.start()
            with other.engine.connect() as connection:
                assert wait_until(lambda: connection.execute(text(waiting)).scalar() == 1)
            assert client.get("/v1/documents/locked").status_code == 404  # not written while the lock is held
        writer.join(20)
    finally:
        other.close()
    assert put[0].status_code == 201, put[0].text


def test_on_postgresql_jobs_go_to_the_workers_queue_with_their_rows(
    settings: Settings, token: str, sql_backend: str
) -> None:
    if sql_backend != "postgres":
        pytest.skip("the queue of `answerdesk worker` is in PostgreSQL")
    queued = settings.model_copy(update={"job_runner": "auto", "sync_write_seconds": 0.2})
    with _client(queued, token) as client:
        release = _held_writer(client)
        try:  # a write that cannot start in time becomes a job for the workers, like a batch
            late = client.post("/v1/documents", json={"document_id": "late", "content": PAGE.format(4)})
        finally:
            release.set()
        assert late.status_code == 202, late.text
        batch = client.post("/v1/documents", files=_batch("q1.md", "q2.md"))
        assert batch.status_code == 202, batch.text
        job_ids = [late.json()["job_id"], batch.json()["job_id"]]
        assert [client.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in job_ids] == ["queued", "queued"]
    jobs = JobStore(settings.database_url)
    try:
        with jobs.engine.connect() as connection:
            entries = connection.execute(
                text("SELECT args->>'job_id', task_name, lock, status FROM procrastinate_jobs ORDER BY id")
            ).all()
    finally:
        jobs.close()
    assert [tuple(entry) for entry in entries] == [
        (job_id, "answerdesk.run_upload_job", "tenant:default", "todo") for job_id in job_ids
    ]


@pytest.fixture
def queued(settings: Settings, token: str, sql_backend: str) -> Iterator[TestClient]:
    """An app whose jobs go to the workers' queue (PostgreSQL only); :func:`_work` runs them here."""
    if sql_backend != "postgres":
        pytest.skip("the queue of `answerdesk worker` is in PostgreSQL")
    with _client(settings.model_copy(update={"job_runner": "auto"}), token) as client:
        yield client


def _work(client: TestClient, settings: Settings) -> DocumentService:
    """Run the queued jobs with the app's service, as `answerdesk worker` does, until none is left."""
    service: DocumentService = client.app.state.documents  # type: ignore[attr-defined]
    ingest.queue.run_worker(service, settings.database_url, stalled_seconds=30, wait=False)
    return service


def test_a_job_whose_queue_tries_run_out_ends_failed_and_is_retried(
    queued: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.queue, "_RETRY", procrastinate.RetryStrategy(max_attempts=2))  # 3 tries, no wait
    job_id = queued.post("/v1/documents", files=_batch("t1.md", "t2.md")).json()["job_id"]
    jobs: JobStore = queued.app.state.documents.jobs  # type: ignore[attr-defined]
    claim, tries = jobs.claim, []

    def failing_claim(job_id: str, position: int) -> bool:  # the second file's write fails every time
        if position == 1:
            tries.append(position)
            raise RuntimeError("simulated fault")
        return claim(job_id, position)

    monkeypatch.setattr(jobs, "claim", failing_claim)
    _work(queued, settings)
    assert len(tries) == 3
    job = queued.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed", job  # not "running" for ever
    assert [(r["file"], r["outcome"], r["code"]) for r in job["results"]] == [
        ("t1.md", "added", ""),
        ("t2.md", "failed", "job_failed"),
    ]
    assert "failed 3 times, last with RuntimeError" in job["results"][1]["error"]

    monkeypatch.setattr(jobs, "claim", claim)  # the cause is fixed
    retried = queued.post(f"/v1/jobs/{job_id}/retry")
    assert (retried.status_code, retried.json()["status"]) == (202, "queued"), retried.text
    _work(queued, settings)
    job = queued.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert [(r["document_id"], r["outcome"], r["version"]) for r in job["results"]] == [
        ("t1", "added", 1),
        ("t2", "added", 1),
    ]


def test_a_job_given_up_while_its_database_refused_the_close_is_closed_by_the_workers_recovery(
    queued: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.queue, "_RETRY", procrastinate.RetryStrategy(max_attempts=1))  # 2 tries, no wait
    lost = queued.post("/v1/documents", files=_batch("l1.md", "l2.md")).json()["job_id"]
    service: DocumentService = queued.app.state.documents  # type: ignore[attr-defined]

    def refused(*_: Any, **__: Any) -> Any:
        raise RuntimeError("simulated fault: the database refuses this worker")

    with monkeypatch.context() as patched:
        patched.setattr(service.jobs, "claim", refused)
        patched.setattr(service, "give_up", refused)
        _work(queued, settings)
    assert queued.get(f"/v1/jobs/{lost}").json()["status"] == "running"  # and the queue gave it up
    waiting = queued.post("/v1/documents", files=_batch("w1.md", "w2.md")).json()["job_id"]  # no worker runs

    problem = "the queue gave up on the job"
    assert service.jobs.close_abandoned(ingest.queue.held_by_queue, problem) == [lost]
    job = queued.get(f"/v1/jobs/{lost}").json()
    assert job["status"] == "failed", job
    assert [(r["code"], r["error"]) for r in job["results"]] == [("job_failed", problem)] * 2
    assert queued.get(f"/v1/jobs/{waiting}").json()["status"] == "queued"  # the queue holds it: left alone
    assert queued.post(f"/v1/jobs/{lost}/retry").status_code == 202


def test_retry_writes_only_the_failed_files_again(client: TestClient) -> None:
    assert client.post("/v1/documents", json={"document_id": "r2", "content": PAGE.format(1)}).status_code == 201
    job_id = client.post("/v1/documents", files=_batch("r1.md", "r2.md")).json()["job_id"]
    job = _wait(client, job_id)
    assert job["status"] == "failed"
    assert [r["code"] for r in job["results"]] == ["", "document_exists"]
    assert client.delete("/v1/documents/r2").status_code == 204
    retried = client.post(f"/v1/jobs/{job_id}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.headers["location"] == f"/v1/jobs/{job_id}"
    job = _wait(client, job_id)
    assert job["status"] == "succeeded", job["results"]
    assert [(r["document_id"], r["outcome"], r["version"]) for r in job["results"]] == [
        ("r1", "added", 1),  # written once: not again by the retry
        ("r2", "added", 1),
    ]
    assert _error(client.post(f"/v1/jobs/{job_id}/retry"), 409)["code"] == "job_not_failed"


def test_jobs_left_running_by_a_crash_resume_when_the_api_starts(settings: Settings, token: str) -> None:
    jobs = JobStore(settings.database_url)
    try:
        uploads = [Upload(f"crash-{number}.md", PAGE.format(number).encode()) for number in range(3)]
        job = jobs.create(uploads, "default", frozenset({"public", "internal"}))
        assert jobs.start(job.job_id)  # the process that ran it died while it was running
        first = jobs.next_file(job.job_id)
        assert first is not None and jobs.claim(job.job_id, first.position)  # ... in its first file
    finally:
        jobs.close()
    with _client(settings, token) as client:
        resumed = _wait(client, job.job_id)
    assert resumed["status"] == "succeeded", resumed
    assert [r["document_id"] for r in resumed["results"]] == ["crash-0", "crash-1", "crash-2"]
    registry = DocumentRegistry(settings.database_url)
    try:
        assert sorted(record.document_id for record in registry.all()) == ["crash-0", "crash-1", "crash-2"]
    finally:
        registry.engine.dispose()


def test_only_the_newest_finished_jobs_are_kept(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest.jobs, "MAX_JOBS_KEPT", 2)
    jobs = JobStore(settings.database_url)
    try:
        made = []
        for number in range(3):
            job = jobs.create([Upload("a.md", b"# A\n")], "default", frozenset({"public"}))
            assert jobs.start(job.job_id)
            jobs.record(job.job_id, 0, FileResult("a.md", Outcome.ADDED, "a", version=1))
            jobs.finish(job.job_id)
            made.append(job.job_id)
            time.sleep(1.1 if number == 0 else 0)  # finished_at has whole seconds
        unfinished = jobs.create([Upload("b.md", b"# B\n")], "default", frozenset({"public"}))
        assert [jobs.get(job_id) is not None for job_id in made] == [False, True, True]
        assert jobs.get(unfinished.job_id) is not None  # never pruned while queued
        assert jobs.counts() == {"succeeded": 2, "queued": 1}
    finally:
        jobs.close()


def test_a_file_whose_writer_keeps_dying_fails_and_the_job_goes_on(settings: Settings, token: str) -> None:
    jobs = JobStore(settings.database_url)
    try:
        uploads = [Upload(f"poison-{number}.md", PAGE.format(number).encode()) for number in range(2)]
        job = jobs.create(uploads, "default", frozenset({"public", "internal"}))
        for _ in range(MAX_ATTEMPTS - 1):  # each run died while writing the first file
            assert jobs.start(job.job_id) and jobs.claim(job.job_id, 0)
    finally:
        jobs.close()
    with _client(settings, token) as client:
        resumed = _wait(client, job.job_id)
        assert resumed["status"] == "failed", resumed
        outcomes = [(r["outcome"], r["code"]) for r in resumed["results"]]
        assert outcomes == [("failed", "write_interrupted"), ("added", "")]
        retried = _wait(client, client.post(f"/v1/jobs/{job.job_id}/retry").json()["job_id"])
        assert retried["status"] == "succeeded", retried  # a retry tries it afresh
