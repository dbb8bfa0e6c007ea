"""Two API replicas, one worker, two Chroma servers, PostgreSQL and Redis, all real processes on
loopback (issue #14): what one replica writes the other answers from, a Chroma server that is down
fails only its own tenants on every replica, one key's rate limit is one bucket across replicas and
survives a Redis restart, a worker killed mid-job is replaced, and a replica killed under load costs
its clients only connection errors they retry on the other one.

The processes start once for the module (tests/replica_server.py); each replica and the worker have
a data dir of their own. Tenant ``xco`` lives on the first Chroma server, ``yco`` on the second.
Skipped loudly without PostgreSQL, redis-server or the chroma command.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from common.schema import upgrade
from common.sql import open_database
from eval.fleet import ApiReplica, ChromaServer, RedisServer
from ingest.jobs import Job, JobStatus, JobStore
from retrieval.config import Settings
from retrieval.placement import PlacementStore
from retrieval.registry import DocumentRegistry
from tests.conftest import service_unreachable
from tests.databases import PostgresUnavailableError, create_database, drop_database
from tests.helpers import FAQ, GLOBEX_FAQ, GUIDE, bearer, issue_key
from tests.replica_server import Fleet, logs_on_failure, private_redis_server, require_command, service_env

pytestmark = pytest.mark.slow

RATE, BURST = 2.0, 40  # per key: 40 requests in any 20 s window, shared through Redis
STALLED_S = 3.0  # a worker silent this long is taken for dead and its job queued again
LAG_BOUND_S = 10.0  # what A writes, B answers from within this
JOB_TIMEOUT_S = 180.0
HTTP_TIMEOUT_S = 60.0
X, Y = "xco", "yco"
REFUND_QUESTION = "How long does a refund take?"
SHIPPING_QUESTION = "How long does Globex shipping take?"
PAGE = """---
title: {title}
type: faq
---
## {question}
{answer}
"""
PARKING = PAGE.format(
    title="Visitor parking", question="Where can visitors park their car?",
    answer="Visitors park in the north garage on level two and show the ticket at the front desk.",
)
BADGES = PAGE.format(
    title="Zorblax badges", question="How is a zorblax badge renewed?",
    answer="Zorblax badges are renewed at the Quillfeather desk every Thursday before noon.",
)
PLANTS = PAGE.format(
    title="Office plants", question="Who waters the office plants?",
    answer="The office plants are watered by the facilities team every Monday and Thursday morning.",
)
BIKES = PAGE.format(
    title="Bike storage", question="Where can I store my bicycle at the office?",
    answer="Bicycles are stored in the locked cage behind the loading dock; ask reception for the code.",
)
PLAN = PAGE.format(
    title="Plan {n}", question="What does plan {n} include?",
    answer="Plan number {n} includes {n} seats, a monthly invoice and e-mail support.",
)


@dataclass
class Deployment:
    fleet: Fleet
    a: ApiReplica
    b: ApiReplica
    chroma: list[ChromaServer]
    redis: RedisServer
    settings: Settings  # the test's own view of the shared database (keys, jobs, registry)

    def key(self, role: str, tenant: str = X) -> dict[str, str]:
        return bearer(issue_key(self.settings, role=role, tenant=tenant, audience="public"))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Deployment]:
    require_command("Chroma", "chroma")
    root = tmp_path_factory.mktemp("replicas")
    redis = private_redis_server(root / "redis")
    chroma = [ChromaServer(root / f"chroma-{n}") for n in (1, 2)]
    fleet = Fleet(root, {})
    fleet.others += [redis, *chroma]
    database = None
    try:
        for server in chroma:
            server.launch()
        try:
            database = create_database()  # a fresh database for this module
        except PostgresUnavailableError as exc:
            service_unreachable("PostgreSQL", str(exc))
        engine = open_database(database)
        upgrade(engine)  # `answerdesk db upgrade` (tests/test_deploy.py runs the command itself)
        engine.dispose()
        for server in chroma:
            server.wait_ready(60)
        fleet.env = service_env(
            database, ",".join(server.url for server in chroma), redis.url, model_dir,
            ANSWERDESK_RATE_LIMIT_PER_SECOND=str(RATE), ANSWERDESK_RATE_LIMIT_BURST=str(BURST),
            ANSWERDESK_WORKER_STALLED_SECONDS=str(STALLED_S),
        )
        a, b = fleet.add_replica("a"), fleet.add_replica("b")
        fleet.add_worker()
        a.wait_ready()
        b.wait_ready()
        settings = Settings(data_dir=root / "test-data", database_url_setting=database)
        setup = Deployment(fleet, a, b, chroma, redis, settings)
        _place_tenants(setup)
    except BaseException as exc:  # a failure, or a skip: nothing is left running
        if isinstance(exc, Exception):
            print(fleet.logs())
        fleet.close()
        if database is not None:
            drop_database(database)
        raise
    yield setup
    fleet.close()
    drop_database(database)


def _place_tenants(setup: Deployment) -> None:
    """xco's documents first (placed on the first server, both being empty), then yco's (the second)."""
    documents = [(X, "en/faq-refunds.md", FAQ), (X, "en/guide-passwords.md", GUIDE), (Y, "en/globex.md", GLOBEX_FAQ)]
    for tenant, name, text in documents:
        response = _upload(setup.a, setup.key("editor", tenant), name, text)
        assert response.status_code == 201, response.text
    placements = PlacementStore(setup.settings.database_url)
    try:
        assert placements.placements() == {X: setup.chroma[0].url, Y: setup.chroma[1].url}
    finally:
        placements.close()


@pytest.fixture(autouse=True)
def _logs(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[None]:
    with logs_on_failure(request, deployment.fleet):
        yield


# ---------------------------------------------------------------------------------------- helpers


def _upload(replica: ApiReplica, headers: dict[str, str], *files: str) -> httpx.Response:
    """POST /v1/documents with files given as name, text, name, text, …"""
    pairs = [("file", (files[i], files[i + 1].encode())) for i in range(0, len(files), 2)]
    return httpx.post(f"{replica.url}/v1/documents", files=pairs, headers=headers, timeout=HTTP_TIMEOUT_S)


def _ask(replica: ApiReplica, headers: dict[str, str], question: str, **extra: Any) -> httpx.Response:
    body = {"question": question, **extra}
    return httpx.post(f"{replica.url}/v1/ask", json=body, headers=headers, timeout=HTTP_TIMEOUT_S)


def _cites(response: httpx.Response, document_id: str) -> bool:
    body = response.json()
    return response.status_code == 200 and body["status"] == "answered" and any(
        citation["document_id"] == document_id for citation in body["citations"]
    )


T = TypeVar("T")


def _within(seconds: float, probe: Callable[[], T | None], step: float = 0.5) -> tuple[T | None, float]:
    """Call ``probe`` until it returns something, for at most ``seconds``: (what it returned, seconds taken)."""
    started = time.monotonic()
    while True:
        found = probe()
        taken = time.monotonic() - started
        if found is not None or taken > seconds:
            return found, taken
        time.sleep(step)


def _finished_job(setup: Deployment, job_id: str, timeout: float = JOB_TIMEOUT_S) -> Job:
    jobs = JobStore(setup.settings.database_url)  # read from the database: no rate limit on polling

    def finished() -> Job | None:
        job = jobs.get(job_id)
        return job if job is not None and job.status not in {JobStatus.QUEUED, JobStatus.RUNNING} else None

    try:
        job, _ = _within(timeout, finished)
    finally:
        jobs.close()
    assert job is not None, f"job {job_id} did not finish in {timeout:.0f} s"
    return job


def _burst(setup: Deployment, headers: dict[str, str]) -> Counter[int]:
    """2 × BURST cheap requests of one key, alternating between the replicas."""
    statuses: Counter[int] = Counter()
    with httpx.Client(timeout=HTTP_TIMEOUT_S, headers=headers) as http:
        for n in range(2 * BURST):
            response = http.get(f"{(setup.a, setup.b)[n % 2].url}/v1/me")
            statuses[response.status_code] += 1
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "rate_limited"
    return statuses


# ------------------------------------------------------------------------------------------ tests


def test_what_is_uploaded_through_a_is_answered_through_b(deployment: Deployment) -> None:
    setup, editor, reader = deployment, deployment.key("editor"), deployment.key("reader")
    question = "Where can visitors park their car?"
    assert not _cites(_ask(setup.b, reader, question), "en/parking")

    written = _upload(setup.a, editor, "en/parking.md", PARKING)  # the synchronous path
    assert written.status_code == 201, written.text
    answer, lag = _within(LAG_BOUND_S, lambda: _cites(_ask(setup.b, reader, question), "en/parking") or None)
    print(f"\nsynchronous upload through A, cited answer through B after {lag:.2f} s")
    assert answer is not None, f"B did not answer from A's upload within {LAG_BOUND_S} s"

    accepted = _upload(setup.a, editor, "en/plants.md", PLANTS, "en/bikes.md", BIKES)  # a job, run by the worker
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert _finished_job(setup, job_id).status == JobStatus.SUCCEEDED
    seen = httpx.get(f"{setup.b.url}/v1/jobs/{job_id}", headers=editor, timeout=HTTP_TIMEOUT_S)
    assert seen.json()["status"] == "succeeded", seen.text  # the job's state, from any replica
    question = "Where can I store my bicycle at the office?"
    answer, lag = _within(LAG_BOUND_S, lambda: _cites(_ask(setup.b, reader, question), "en/bikes") or None)
    print(f"batch job through A run by the worker, cited answer through B after {lag:.2f} s")
    assert answer is not None, f"B did not answer from the worker's job within {LAG_BOUND_S} s"


def test_a_rare_word_uploaded_through_a_is_a_lexical_hit_through_b(deployment: Deployment) -> None:
    setup, editor = deployment, deployment.key("editor")
    written = _upload(setup.a, editor, "en/zorblax.md", BADGES)
    assert written.status_code == 201, written.text

    def lexical_score(replica: ApiReplica) -> float | None:
        question = {"question": "zorblax quillfeather"}
        response = httpx.post(f"{replica.url}/v1/preview", json=question, headers=editor, timeout=HTTP_TIMEOUT_S)
        assert response.status_code == 200, response.text
        scores = [c["lexical_score"] for c in response.json()["candidates"] if c["document_id"] == "en/zorblax"]
        return scores[0] if scores and scores[0] > 0 else None

    # The writer's own index has it once its BM25 matrices are rebuilt (in the background).
    assert _within(LAG_BOUND_S, lambda: lexical_score(setup.a))[0] is not None
    found, lag = _within(LAG_BOUND_S, lambda: lexical_score(setup.b))
    print(f"\nrare word uploaded through A, lexical hit through B after {lag:.2f} s")
    assert found is not None, f"B's lexical leg did not find A's upload within {LAG_BOUND_S} s"


def test_a_stopped_chroma_server_fails_only_its_tenants_on_both_replicas(deployment: Deployment) -> None:
    setup, second = deployment, deployment.chroma[1]
    x_reader, y_reader = setup.key("reader", X), setup.key("reader", Y)
    y_editor = setup.key("editor", Y)
    replicas = (setup.a, setup.b)
    for replica in replicas:
        assert _cites(_ask(replica, x_reader, REFUND_QUESTION), "en/faq-refunds")
        assert _cites(_ask(replica, y_reader, SHIPPING_QUESTION), "en/globex")

    second.kill()
    try:
        _while_down(setup, replicas, y_reader, y_editor, x_reader)
    finally:
        second.start(timeout=60)  # same folder and port: yco's vectors are back
    for number, replica in enumerate(replicas):  # no restart of the replica
        assert _upload(replica, y_editor, f"en/globex-late-{number}.md", BADGES).status_code == 201
        assert _cites(_ask(replica, y_reader, SHIPPING_QUESTION), "en/globex")


def _while_down(
    setup: Deployment, replicas: tuple[ApiReplica, ...], y_reader: dict[str, str], y_editor: dict[str, str],
    x_reader: dict[str, str],
) -> None:
    for number, replica in enumerate(replicas):
        # Writes to yco's server fail cleanly; its questions are answered from the vectors both
        # replicas hold in memory (exact search: nothing can have changed them meanwhile).
        down = _upload(replica, y_editor, "en/globex-late.md", BADGES)
        assert down.status_code == 503 and down.json()["error"]["code"] == "store_unavailable", down.text
        assert _cites(_ask(replica, y_reader, SHIPPING_QUESTION), "en/globex")
        assert _cites(_ask(replica, x_reader, REFUND_QUESTION), "en/faq-refunds")  # xco is on the first server
        assert _upload(replica, setup.key("editor", X), f"en/xco-note-{number}.md", BADGES).status_code == 201


def test_one_keys_burst_across_both_replicas_is_one_bucket(deployment: Deployment) -> None:
    assert _burst(deployment, deployment.key("reader")) == Counter({200: BURST, 429: BURST})


def test_a_redis_restart_loses_no_job_and_limits_apply_again(deployment: Deployment) -> None:
    setup, editor = deployment, deployment.key("editor")
    setup.redis.kill()
    with httpx.Client(timeout=HTTP_TIMEOUT_S, headers=setup.key("reader")) as http:
        # Not limited while Redis is down, and not failed: the limiter lets requests through.
        assert {http.get(f"{replica.url}/v1/me").status_code for replica in (setup.a, setup.b)} == {200}
    accepted = _upload(setup.a, editor, "plans/plan-20.md", PLAN.format(n=20), "plans/plan-21.md", PLAN.format(n=21))
    assert accepted.status_code == 202, accepted.text  # the queue is in PostgreSQL, not Redis
    assert _finished_job(setup, accepted.json()["job_id"]).status == JobStatus.SUCCEEDED

    setup.redis.start(timeout=30)  # empty: nothing was kept on disk
    assert _burst(setup, setup.key("reader")) == Counter({200: BURST, 429: BURST})


def test_a_worker_killed_mid_job_is_replaced_and_the_job_succeeds(deployment: Deployment) -> None:
    setup, editor = deployment, deployment.key("editor")
    files = 12
    batch = [f"killed/plan-{n:02}.md" if i == 0 else PLAN.format(n=100 + n) for n in range(files) for i in (0, 1)]
    accepted = _upload(setup.b, editor, *batch)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    jobs = JobStore(setup.settings.database_url)

    def begun() -> bool | None:
        job = jobs.get(job_id)
        return (job is not None and len(job.results) >= 1) or None

    try:
        assert _within(JOB_TIMEOUT_S, begun, 0.05)[0], "the worker did not start the job"
        setup.fleet.worker.kill()
        cut = jobs.get(job_id)
    finally:
        jobs.close()
    assert cut is not None and cut.status == JobStatus.RUNNING and len(cut.results) < files, cut

    setup.fleet.add_worker()  # takes the job back once the killed one's heartbeat is STALLED_S old
    job = _finished_job(setup, job_id)
    assert job.status == JobStatus.SUCCEEDED, [r for r in job.results if r.error]
    assert sorted(r.document_id for r in job.results) == [f"{X}:killed/plan-{n:02}" for n in range(files)]
    registry = DocumentRegistry(setup.settings.database_url)
    try:
        versions = {record.version for record in registry.all() if "killed/plan-" in record.document_id}
    finally:
        registry.engine.dispose()
    assert versions == {1}  # nothing written twice
    found = httpx.get(f"{setup.a.url}/v1/documents/killed/plan-05", headers=editor, timeout=HTTP_TIMEOUT_S)
    assert found.status_code == 200 and found.json()["version"] == 1, found.text


@dataclass
class Client:
    """A load client: requests go to A and B in turn; one that fails to connect or is cut is sent
    again to the other replica. It keeps what was acknowledged, to look for afterwards."""

    number: int
    replicas: tuple[ApiReplica, ApiReplica]
    headers: dict[str, str]
    documents: list[str]
    escalations: list[str]
    jobs: list[str]
    cut: Counter[str]  # transport errors, by replica and type, each retried on the other replica
    failures: list[str]  # anything else: the test fails

    def run(self, operations: int) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT_S, headers=self.headers) as http:
            for n in range(operations):
                first = self.replicas[(self.number + n) % 2]
                second = self.replicas[(self.number + n + 1) % 2]
                try:
                    response = self._send(http, first, n)
                except httpx.TransportError as exc:
                    self.cut[f"{first.name}: {type(exc).__name__}"] += 1
                    try:
                        response = self._send(http, second, n)
                    except httpx.TransportError as again:
                        self.failures.append(f"{second.name} too: {again!r}")
                        continue
                self._keep(response, n)

    def _send(self, http: httpx.Client, replica: ApiReplica, n: int) -> httpx.Response:
        if n % 3 == 2:  # PUT: the idempotent write, safe to send again
            document_id = f"load/client-{self.number}-{n}"
            text = PAGE.format(title=f"Load {self.number} {n}", question=f"What is load page {n}?", answer="A page.")
            files = [("file", ("page.md", text.encode()))]
            return http.put(f"{replica.url}/v1/documents/{document_id}", files=files)
        return http.post(f"{replica.url}/v1/ask", json={"question": REFUND_QUESTION, "escalate": n % 3 == 1})

    def _keep(self, response: httpx.Response, n: int) -> None:
        if response.status_code not in (200, 201, 202):
            self.failures.append(f"HTTP {response.status_code}: {response.text[:300]}")
        elif n % 3 == 2:
            body = response.json()
            if response.status_code == 202:
                self.jobs.append(body["job_id"])
            else:
                self.documents.append(body["document_id"])
        elif n % 3 == 1:
            self.escalations.append(response.json()["escalation_id"])


def test_killing_a_replica_under_load_loses_nothing(deployment: Deployment) -> None:
    """Runs last: replica A stays dead."""
    setup, admin = deployment, deployment.key("admin")
    clients = [
        Client(n, (setup.a, setup.b), setup.key("admin"), [], [], [], Counter(), []) for n in range(3)
    ]
    threads = [threading.Thread(target=client.run, args=(9,)) for client in clients]
    for thread in threads:
        thread.start()
    accepted = _upload(setup.a, admin, "load/batch-1.md", PLAN.format(n=301), "load/batch-2.md", PLAN.format(n=302))
    assert accepted.status_code == 202, accepted.text
    done, _ = _within(60, lambda: sum(len(c.documents) + len(c.escalations) for c in clients) >= 3 or None, 0.05)
    assert done, "the clients got nothing done before the kill"
    setup.a.kill()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)

    cut = sum((client.cut for client in clients), Counter())
    print(f"\nreplica A killed under load: transport errors retried on B: {dict(cut)}")
    assert [f for client in clients for f in client.failures] == []
    assert all(name.startswith("a:") for name in cut), cut  # only the killed replica's requests failed
    documents = [d for client in clients for d in client.documents]
    escalations = [e for client in clients for e in client.escalations]
    jobs = [accepted.json()["job_id"], *(j for client in clients for j in client.jobs)]
    # Every write and escalation was acknowledged, on A or on B (a write that waited too long for
    # the tenant's lock is answered as a job instead).
    assert len(documents) + len(jobs) - 1 == 3 * 3 and len(escalations) == 3 * 3
    with httpx.Client(timeout=HTTP_TIMEOUT_S, headers=admin, base_url=setup.b.url) as http:
        for document_id in documents:
            assert http.get(f"/v1/documents/{document_id}").status_code == 200, document_id
        for escalation_id in escalations:
            assert http.get(f"/v1/escalations/{escalation_id}").status_code == 200, escalation_id
    for job_id in jobs:
        assert _finished_job(setup, job_id).status == JobStatus.SUCCEEDED, job_id
