"""How long a client waits on a PostgreSQL server that hangs (docs/operations.md, Databases).

``python -m tests.measure_database_hang``: on a private server (tests/postgres_cluster.py), a
``SELECT 1`` on a SIGSTOPped backend with each libpq option that might bound it, and with
common/sql.py's BoundedConnection; then /v1/ask and /readyz of an app whose whole server is
SIGSTOPped, per ANSWERDESK_DATABASE_TIMEOUT_S. Prints seconds; needs PostgreSQL's server binaries."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.postgres_cluster import PrivateCluster, postgres_bin

QUESTION = {"question": "How long does a refund take?"}
GIVE_UP_S = 8.0
OPTIONS: dict[str, dict[str, Any]] = {
    "no option": {},
    "keepalives 1 s + tcp_user_timeout 1 s": {
        "keepalives": 1,
        "keepalives_idle": 1,
        "keepalives_interval": 1,
        "keepalives_count": 1,
        "tcp_user_timeout": 1000,
    },
    "statement_timeout + idle_in_transaction 1 s": {
        "options": "-c statement_timeout=1000 -c idle_in_transaction_session_timeout=1000"
    },
}


def _one_query(connection: psycopg.Connection[Any]) -> str:
    """``SELECT 1`` on ``connection`` with its backend stopped: how it ended, or that it still waits."""
    backend = connection.info.backend_pid
    os.kill(backend, signal.SIGSTOP)
    outcome: list[str] = []

    def run() -> None:
        started = time.monotonic()
        try:
            connection.execute("SELECT 1")
            outcome.append(f"{time.monotonic() - started:.2f} s, answered")
        except psycopg.Error as exc:
            outcome.append(f"{time.monotonic() - started:.2f} s, {str(exc).splitlines()[0]}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GIVE_UP_S)
    waiting = thread.is_alive()
    os.kill(backend, signal.SIGCONT)
    thread.join(10)
    return f"still waiting after {GIVE_UP_S:.0f} s" if waiting else outcome[0]


def measure_options(cluster: PrivateCluster) -> None:
    from common.sql import BoundedConnection

    dsn = f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres"
    for name, extra in OPTIONS.items():
        with psycopg.connect(dsn, autocommit=True, **extra) as connection:
            print(f"{name:45s} {_one_query(connection)}")
    with BoundedConnection.connect(dsn, autocommit=True) as bounded:
        bounded.timeout_s = 1.0
        print(f"{'BoundedConnection, timeout 1 s':45s} {_one_query(bounded)}")


def measure_app(cluster: PrivateCluster, timeout_s: float) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from common.schema import upgrade
    from common.sql import open_database
    from retrieval.embedding import HashingEmbedder
    from tests.helpers import bearer, issue_key, small_kb_settings

    os.environ["ANSWERDESK_DATABASE_TIMEOUT_S"] = str(timeout_s)
    engine = open_database(cluster.url)
    upgrade(engine)
    engine.dispose()
    settings = small_kb_settings(Path(tempfile.mkdtemp()), database_url_setting=cluster.url)
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        assert client.post("/v1/ask", json=QUESTION).status_code == 200
        timings = []
        with cluster.frozen():
            for path in ["/v1/ask", "/v1/ask", "/v1/ask", "/readyz"]:
                started = time.monotonic()
                response = client.post(path, json=QUESTION) if path == "/v1/ask" else client.get(path)
                timings.append(f"{path} {response.status_code} {time.monotonic() - started:.2f} s")
        started = time.monotonic()
        resumed = client.post("/v1/ask", json=QUESTION)
        timings.append(f"resumed /v1/ask {resumed.status_code} {time.monotonic() - started:.2f} s")
    print(f"timeout {timeout_s:g} s: " + "; ".join(timings))


def main() -> None:
    bin_dir = postgres_bin()
    assert bin_dir is not None, "PostgreSQL's server binaries (initdb, pg_ctl) are needed"
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.start()
        measure_options(cluster)
        for timeout_s in (1.0, 5.0):
            measure_app(cluster, timeout_s)
    finally:
        cluster.remove()


if __name__ == "__main__":
    main()
