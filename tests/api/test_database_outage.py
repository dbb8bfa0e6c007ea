"""A PostgreSQL server that goes away or hangs while the API serves: /v1/ask and /readyz answer 503
``database_unavailable`` (a JSON body, no stack trace) while it is down, within
ANSWERDESK_DATABASE_TIMEOUT_S when it hangs, and answer again once it is back, in the same process
(common/sql.py: connect and answer timeouts, pre-ping of pooled connections).

A private server (tests/postgres_cluster.py), stopped and started for real; the shared one on :5432
stays up for the other tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from common.schema import upgrade
from common.sql import open_database
from retrieval.embedding import HashingEmbedder
from tests.helpers import api_error, ask, bearer, issue_key, small_kb_settings
from tests.postgres_cluster import PrivateCluster, postgres_bin

QUESTION = {"question": "How long does a refund take?"}


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        from tests.conftest import service_unreachable

        service_unreachable("PostgreSQL server binaries", "initdb/pg_ctl not found (ANSWERDESK_TEST_POSTGRES_BIN)")
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def test_a_database_server_that_stops_is_503_and_serves_again_when_it_is_back(
    tmp_path: Path, cluster: PrivateCluster
) -> None:
    engine = open_database(cluster.url)
    upgrade(engine)  # `answerdesk db upgrade`
    engine.dispose()
    settings = small_kb_settings(tmp_path, database_url_setting=cluster.url)
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        assert ask(client, QUESTION["question"])["status"] == "answered"
        assert client.get("/readyz").status_code == 200

        cluster.stop()
        for _ in range(2):  # the pooled connections are dead; new ones are refused
            error = api_error(client.post("/v1/ask", json=QUESTION), 503)
            assert error["code"] == "database_unavailable", error
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "database_unavailable", ready.text
        assert "Traceback" not in ready.text

        cluster.start()  # same data, same port: no restart of the API
        assert ask(client, QUESTION["question"])["status"] == "answered"
        assert client.get("/readyz").status_code == 200
        samples = client.get("/metrics").text
        assert 'answerdesk_store_errors_total{code="database_unavailable"}' in samples


def test_a_database_server_that_hangs_is_503_within_the_timeout_and_serves_again_when_it_resumes(
    tmp_path: Path, cluster: PrivateCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeout_s = 1.0
    # A pooled connection found dead costs one timeout (the ping), and the new connection another
    # (libpq's connect_timeout: at least 2 s).
    bound_s = timeout_s + 2 + 3
    monkeypatch.setenv("ANSWERDESK_DATABASE_TIMEOUT_S", str(timeout_s))
    engine = open_database(cluster.url)
    upgrade(engine)
    engine.dispose()
    settings = small_kb_settings(tmp_path, database_url_setting=cluster.url)
    with (
        TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client,
        ThreadPoolExecutor(1) as requests,  # a request that hangs fails the test instead of hanging it
    ):

        def timed(method: str, path: str, **kwargs: Any) -> tuple[Any, float]:
            started = time.monotonic()
            response = requests.submit(client.request, method, path, **kwargs).result(timeout=4 * bound_s)
            return response, time.monotonic() - started

        assert ask(client, QUESTION["question"])["status"] == "answered"
        with cluster.frozen():
            for _ in range(2):
                response, elapsed = timed("POST", "/v1/ask", json=QUESTION)
                assert api_error(response, 503)["code"] == "database_unavailable", response.text
                assert elapsed < bound_s, elapsed
            ready, elapsed = timed("GET", "/readyz")
            assert ready.status_code == 503 and elapsed < bound_s, (ready.text, elapsed)
        answered, elapsed = timed("POST", "/v1/ask", json=QUESTION)  # resumed: no restart of the API
        assert answered.status_code == 200 and answered.json()["status"] == "answered", answered.text
