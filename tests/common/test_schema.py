"""The SQL schema through Alembic: idempotent `answerdesk db upgrade` (also two at once), migrations
that match the models on SQLite and PostgreSQL, a clear error for a server schema that is behind,
and a database server outage answered with 503 and recovered from without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, make_url, text

import access.keys
import ingest.jobs
import retrieval.generations
import retrieval.lexical
import retrieval.placement
import retrieval.registry
import support.experiments
import support.store
from api.app import create_app
from common.schema import SchemaOutdatedError, _config, head, upgrade
from common.sql import open_database
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from retrieval.registry import DocumentRegistry
from retrieval.storage import check_data_dir
from support.store import SupportStore
from tests.databases import schema_in
from tests.helpers import bearer, issue_key, unlimited
from tests.relay import Relay

REPO = Path(__file__).resolve().parents[2]


def _models() -> MetaData:
    """Every table the stores map, in one MetaData."""
    metadata = MetaData()
    modules = (
        retrieval.registry, retrieval.placement, retrieval.lexical, retrieval.generations, support.store,
        support.experiments, access.keys, ingest.jobs,
    )
    for module in modules:
        for table in module._Base.metadata.tables.values():
            table.to_metadata(metadata)
    return metadata


def _ours(name: str | None, kind: str, parents: dict[str, str | None]) -> bool:
    table = name if kind == "table" else parents.get("table_name")
    return not (table or "").startswith("procrastinate_")


def _differences(url: str) -> list[object]:
    engine = open_database(url)
    try:
        with engine.connect() as connection:
            # Procrastinate's tables (the job queue, migration 0004) are its own, not our models'.
            options = {"include_name": _ours}
            return list(compare_metadata(MigrationContext.configure(connection, opts=options), _models()))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new schema on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'answerdesk.db'}"
        return
    with schema_in(request.getfixturevalue("postgres_database")) as url:
        yield url


def test_upgrade_makes_the_models_schema_and_a_second_one_changes_nothing(fresh_url: str) -> None:
    engine = open_database(fresh_url)
    try:
        assert upgrade(engine) == (None, head())
        assert upgrade(engine) == (head(), head())
    finally:
        engine.dispose()
    assert _differences(fresh_url) == []  # the migrations build exactly what the models map


def _db_upgrade(url: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "ANSWERDESK_DATABASE_URL": url, "ANSWERDESK_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "answerdesk", "db", "upgrade"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_upgrades_started_at_once_both_succeed_and_one_does_the_work(fresh_url: str, tmp_path: Path) -> None:
    processes = [_db_upgrade(fresh_url, tmp_path / "data") for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    said = " ".join(" ".join(out.split()) for out, _ in outputs)  # rich wraps long lines
    assert said.count("upgraded from nothing") == 1, said
    assert said.count("already current") == 1, said
    assert _differences(fresh_url) == []


def test_a_server_database_behind_the_code_is_refused_naming_the_command(
    postgres_database: str, tmp_path: Path
) -> None:
    with schema_in(postgres_database) as url:
        with pytest.raises(SchemaOutdatedError, match="answerdesk db upgrade"):
            SupportStore(url)
        [fault] = check_data_dir(Settings(data_dir=tmp_path / "data", database_url_setting=url))
        assert fault.code == "schema_outdated" and "answerdesk db upgrade" in fault.problem


def test_experiment_tables_an_older_version_made_are_kept_by_their_migration(fresh_url: str) -> None:
    """Before 0006 the experiment store made its tables at start (two replicas raced on CREATE
    TABLE); a database that has them upgrades without losing a row, one that lacks them gets them."""
    engine = open_database(fresh_url)
    try:
        with engine.begin() as connection:
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0005")
        support.experiments._Base.metadata.create_all(engine)  # what ExperimentStore did at start
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO experiments VALUES ('e1', 'acme', 'n', 'b', 0.5, 'running', 'now', NULL)")
            )
        if engine.dialect.name == "postgresql":  # a server's schema is never changed by a store
            with pytest.raises(SchemaOutdatedError, match="answerdesk db upgrade"):
                support.experiments.ExperimentStore(fresh_url)
        assert upgrade(engine) == ("0005", head())
    finally:
        engine.dispose()
    store = support.experiments.ExperimentStore(fresh_url)
    active = store.active("acme")
    store.close()
    assert active is not None and active.experiment_id == "e1"
    assert _differences(fresh_url) == []


def test_a_sqlite_file_is_upgraded_when_first_opened(tmp_path: Path) -> None:
    """The embedded default needs no separate step (common/schema.py says why)."""
    url = f"sqlite:///{tmp_path / 'answerdesk.db'}"
    DocumentRegistry(url).engine.dispose()
    assert _differences(url) == []


def test_database_outage_is_503_and_recovers_without_restart(postgres_database: str, tmp_path: Path) -> None:
    with schema_in(postgres_database) as url:
        real = make_url(url)
        with Relay(real.host or "127.0.0.1", real.port or 5432) as relay:
            relayed = real.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
            engine = open_database(relayed)
            upgrade(engine)
            engine.dispose()
            settings = unlimited(Settings(data_dir=tmp_path / "data", database_url_setting=relayed))
            with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
                headers = bearer(issue_key(settings))
                assert client.get("/v1/escalations", headers=headers).status_code == 200

                relay.cut()
                started = time.monotonic()
                response = client.get("/v1/escalations", headers=headers)
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "database_unavailable"
                assert time.monotonic() - started < 15  # connect_timeout, not a hang
                ready = client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["error"]["code"] == "database_unavailable"

                relay.restore()
                assert client.get("/v1/escalations", headers=headers).status_code == 200
                assert client.get("/readyz").status_code == 200
