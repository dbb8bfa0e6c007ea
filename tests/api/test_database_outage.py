"""A PostgreSQL server that goes away while the API serves: /v1/ask and /readyz answer 503
``database_unavailable`` (a JSON body, no stack trace) while it is down, and answer again once it is
back, in the same process (common/sql.py: connect timeout, pre-ping of pooled connections).

A private server (tests/postgres_cluster.py), stopped and started for real; the shared one on :5432
stays up for the other tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
