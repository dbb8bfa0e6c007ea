"""Issue 17, item 11: damaged or lost stores are named (503, /readyz), never written to silently,
refused at start, and reported (and the lexical index repaired) by ``answerdesk check``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from answerdesk.cli import app as cli
from api.app import create_app
from common.sql import open_database
from retrieval.config import Settings, get_settings
from retrieval.embedding import HashingEmbedder
from retrieval.storage import StorageError
from tests.helpers import bearer, issue_key, small_kb_settings

QUESTION = {"question": "How long does a refund take?"}


def _code(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["error"]["code"]
    return code


def _database(settings: Settings) -> Path:
    return settings.data_dir / "answerdesk.db"


def _corrupt(path: Path, in_place: bool = False) -> None:
    """Garbage in ``path``: written into the open file (a damaged disk under a running server), or
    as a new file in its place (what a restart finds; a connection this process may still hold on
    the old file would share SQLite's per-file state and go on reading the old pages)."""
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    garbage = b"this is not a database " * 400
    if in_place:
        path.write_bytes(garbage)
    else:
        path.with_name(path.name + ".garbage").write_bytes(garbage)
        path.with_name(path.name + ".garbage").replace(path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return small_kb_settings(tmp_path)


def test_a_database_deleted_while_serving_is_503_and_never_written_to(settings: Settings) -> None:
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        assert client.post("/v1/ask", json=QUESTION).status_code == 200
        assert client.get("/readyz").status_code == 200
        _database(settings).unlink()
        ready = client.get("/readyz")
        assert _code(ready, 503) == "database_gone"
        assert {detail["field"] for detail in ready.json()["error"]["details"]} >= {"registry", "keys"}
        # Every write (the key check first) refuses instead of going to the unlinked file.
        assert _code(client.post("/v1/ask", json=QUESTION), 503) == "database_gone"
        assert str(settings.data_dir) not in ready.text  # /readyz needs no key: no server paths
    assert not _database(settings).exists()


def test_a_lost_lexical_table_is_named_and_lost_rows_are_refilled_by_check_repair(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        assert client.post("/v1/ask", json=QUESTION).status_code == 200
        _sql(settings, "ALTER TABLE lexical_chunks RENAME TO lexical_chunks_away")
        assert _code(client.get("/readyz"), 503) == "lexical_index_unavailable"
    # A start on it is refused with a message; `answerdesk check` names it.
    _refused_start(settings, StorageError, match="lexical index: lexical_index_unavailable")
    runner = _cli(settings, monkeypatch)
    reported = runner.invoke(cli, ["check"])
    assert reported.exit_code == 1 and "lexical_index_unavailable" in reported.output
    assert "Traceback" not in reported.output
    # The table restored without its rows: `check` sees them missing, `check --repair` refills them.
    _sql(settings, "ALTER TABLE lexical_chunks_away RENAME TO lexical_chunks")
    _sql(settings, "DELETE FROM lexical_chunks")
    reported = runner.invoke(cli, ["check"])
    assert reported.exit_code == 1 and "LexicalIndex: 3 live chunks missing" in reported.output, reported.output
    repaired = runner.invoke(cli, ["check", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "consistent: 2 documents" in repaired.output
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        answer = client.post("/v1/ask", json=QUESTION).json()
        assert answer["status"] == "answered", answer


def _sql(settings: Settings, statement: str) -> None:
    engine = open_database(settings.database_url)
    with engine.begin() as connection:
        connection.execute(text(statement))
    engine.dispose()


def test_a_start_beside_a_lost_registry_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _database(settings).unlink()  # the vector store still holds every chunk
    _refused_start(settings, StorageError, match="registry is empty while the vector store holds 3 chunks")
    served = _cli(settings, monkeypatch).invoke(cli, ["serve"])
    assert served.exit_code == 2 and "registry_lost" in served.output and "Traceback" not in served.output


def test_check_reports_a_corrupt_database_instead_of_crashing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _corrupt(_database(settings))
    result = _cli(settings, monkeypatch).invoke(cli, ["check"])
    assert result.exit_code == 1
    assert "registry: database_unavailable" in result.output and "Traceback" not in result.output
    _refused_start(settings, StorageError, match="registry: database_unavailable")


def _refused_start(settings: Settings, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match), TestClient(create_app(settings, embedder=HashingEmbedder())):
        pass


def _cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ANSWERDESK_DATA_DIR", str(settings.data_dir))
    if settings.profile_path is not None:
        monkeypatch.setenv("ANSWERDESK_PROFILE_PATH", str(settings.profile_path))
    monkeypatch.setattr("retrieval.pipeline.load_embedder", lambda *args, **kwargs: HashingEmbedder())
    get_settings.cache_clear()
    return CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    yield
    get_settings.cache_clear()
