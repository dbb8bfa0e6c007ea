"""Privacy (issue 17): erasure by customer id and by conversation, retention, questions stored once
and redacted, private state files, and no file written outside the data dir (onnxruntime telemetry)."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from answerdesk.cli import app as cli
from api.app import create_app
from common.logs import configure_logging
from retrieval.config import Settings, get_settings
from retrieval.embedding import HashingEmbedder
from support.store import AuditRecord, Exchange, SupportStore, Turn
from tests.helpers import SECRET, Receiver, bearer, issue_key, unlimited, wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """The commands read settings from the environment each time (get_settings caches them)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    get_settings.cache_clear()
    return CliRunner().invoke(cli, args, env=env)


# What the person wrote or is: none of it may survive erasure anywhere.
PERSONAL = ("Zebulon", "zebulon@example.com", "37126123456", "2612 3456", "Quarkstrasse")


def _database(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def _dump(settings: Settings) -> str:
    """Every row of every table, as SQL text."""
    with sqlite3.connect(_database(settings)) as connection:
        return "\n".join(connection.iterdump())


def _raw_bytes(settings: Settings) -> bytes:
    """The database files themselves, free pages and write-ahead log included."""
    database = _database(settings)
    files = [database, database.with_name(database.name + "-wal")]
    return b"".join(path.read_bytes() for path in files if path.exists())


@pytest.fixture
def webhook_settings(fake_settings: Settings, receiver: Receiver) -> Settings:
    """Webhooks to a receiver that is down at first, retried quickly."""
    return unlimited(fake_settings).model_copy(
        update={
            "webhook_urls": [receiver.url],
            "webhook_secret": SecretStr(SECRET),
            "webhook_backoff_seconds": 0.05,
            "webhook_backoff_max_seconds": 0.2,
            "webhook_max_attempts": 1000,
            "outbox_poll_seconds": 0.05,
        }
    )


def test_erasing_a_customer_leaves_no_trace_in_tables_files_logs_webhooks_or_exports(
    webhook_settings: Settings, receiver: Receiver
) -> None:
    settings = webhook_settings
    admin = bearer(issue_key(settings))
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=admin) as client:
        customer = {"customer_id": "cus-42", "email": "zebulon@example.com", "phone": 37126123456}
        first = client.post(
            "/v1/ask",
            json={"question": "How long does a refund take? I am Zebulon, Quarkstrasse 5", "customer": customer},
        ).json()
        second = client.post(
            "/v1/ask",
            json={
                "question": "Zebulon here again, call +371 2612 3456, I want a person",
                "conversation_id": first["conversation_id"],
                "escalate": True,
            },
        ).json()
        assert second["escalation_id"]
        feedback = {"helpful": False, "comment": "Zebulon was not helped"}
        assert client.post(f"/v1/answers/{first['answer_id']}/feedback", json=feedback).status_code == 201
        resolve = {"answer": "Dear Zebulon, refunded to zebulon@example.com.", "offer_as_faq": True}
        assert client.post(f"/v1/escalations/{second['escalation_id']}/resolve", json=resolve).status_code == 200
        # Someone else's conversation, which must stay.
        other = client.post(
            "/v1/ask", json={"question": "I forgot my password", "customer": {"customer_id": "cus-7"}, "escalate": True}
        ).json()
        assert "Zebulon" in _dump(settings)

        erased = client.delete("/v1/customers/cus-42")
        assert erased.status_code == 200, erased.text
        counts = erased.json()
        assert (counts["conversations"], counts["turns"], counts["audit"]) == (1, 2, 2)
        assert (counts["escalations"], counts["feedback"]) == (1, 1) and counts["outbox"] >= 2

        # Later log lines, and webhook retries once the receiver is back: nothing about the person.
        stream = io.StringIO()
        handler = configure_logging(logging.DEBUG, stream)
        try:
            receiver.start()
            client.app.state.support.worker.wake()  # type: ignore[attr-defined]
            assert wait_until(lambda: len(receiver.processed) >= 1), "the other customer's webhook never came"
            assert client.get(f"/v1/conversations/{first['conversation_id']}").status_code == 404
            assert client.delete("/v1/customers/cus-42").json()["conversations"] == 0
        finally:
            logging.getLogger().removeHandler(handler)
        sent = b"".join(request["body"] for request in receiver.requests).decode()
        assert other["escalation_id"] in sent
        for text in (stream.getvalue(), sent):
            assert not [marker for marker in PERSONAL if marker in text]

    # Tables, the database files (free pages, write-ahead log) and the exports.
    env = {"ANSWERDESK_DATA_DIR": str(settings.data_dir)}
    exported = _invoke(["audit", "--json", "--full"], env=env)
    assert exported.exit_code == 0 and "I forgot my password" in exported.stdout
    escalations = _invoke(["escalations", "list"], env=env).stdout
    assert "password" in escalations
    raw = _raw_bytes(settings)
    for text in (_dump(settings), exported.stdout, escalations):
        assert not [marker for marker in PERSONAL if marker in text]
    assert not [marker for marker in PERSONAL if marker.encode() in raw]


def _exchange(conversation_id: str, answer_id: str, stamp: str, customer_id: str) -> Exchange:
    question = f"Question of {customer_id}"
    turn = Turn(0, question, question, False, answer_id, "answered", "An answer.", "en", 0.9, None, stamp)
    audit = AuditRecord(
        answer_id, conversation_id, stamp, question, question, "en", "answered", 0.9, "An answer.", [], [], [], "p", 1.0
    )
    return Exchange(conversation_id, {"customer_id": customer_id}, turn, audit)


def test_privacy_commands_erase_a_customer_and_purge_by_retention(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = SupportStore(settings.database_url)
    store.record_exchange(_exchange("old", "a1", "2020-01-01T00:00:00.000+00:00", "cus-old"), now=0.0)
    store.record_exchange(_exchange("new", "a2", "2999-01-01T00:00:00.000+00:00", "cus-new"), now=0.0)
    store.record_exchange(_exchange("gone", "a3", "2999-01-01T00:00:00.000+00:00", "cus-gone"), now=0.0)
    store.add_feedback("a1", helpful=True, comment="fine")
    store.close()
    env = {"ANSWERDESK_DATA_DIR": str(settings.data_dir)}

    missing = _invoke(["privacy", "purge"], env=env)
    assert missing.exit_code == 2 and "ANSWERDESK_RETENTION_DAYS" in missing.output
    purged = _invoke(["privacy", "purge"], env={**env, "ANSWERDESK_RETENTION_DAYS": "30"})
    assert purged.exit_code == 0, purged.output
    assert "conversations 1" in purged.stdout and "feedback 1" in purged.stdout
    erased = _invoke(["privacy", "erase", "--customer-id", "cus-gone", "--tenant", "default"], env=env)
    assert erased.exit_code == 0 and "conversations 1" in erased.stdout
    assert _invoke(["privacy", "erase"], env=env).exit_code == 2

    store = SupportStore(settings.database_url)
    try:
        assert [record.conversation_id for record in store.audit()] == ["new"]
        assert store.feedback() == [] and store.turns("old") == [] and store.turns("gone") == []
    finally:
        store.close()


@pytest.fixture
def client(fake_settings: Settings) -> Iterator[TestClient]:
    settings = unlimited(fake_settings)
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        yield client


def test_agents_delete_conversations_of_their_audience(client: TestClient, fake_settings: Settings) -> None:
    internal = client.post("/v1/ask", json={"question": "How long does a refund take?"}).json()["conversation_id"]
    public_agent = bearer(issue_key(fake_settings, role="agent", audience="public"))
    theirs = client.delete(f"/v1/conversations/{internal}", headers=public_agent)
    unknown = client.delete("/v1/conversations/never-was", headers=public_agent)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "conversation_not_found"
    reader = bearer(issue_key(fake_settings, role="reader"))
    assert client.delete(f"/v1/conversations/{internal}", headers=reader).status_code == 403
    agent = bearer(issue_key(fake_settings, role="agent", audience="internal"))
    assert client.delete(f"/v1/customers/{internal}", headers=agent).status_code == 403  # admins only
    deleted = client.delete(f"/v1/conversations/{internal}", headers=agent)
    assert deleted.status_code == 200 and deleted.json()["turns"] == 1
    assert client.get(f"/v1/conversations/{internal}").status_code == 404


def test_a_question_is_stored_once_and_redacted(client: TestClient, fake_settings: Settings) -> None:
    question = "Call me on +371 2612 3456 about how long a refund takes"
    answer_id = client.post("/v1/ask", json={"question": question}).json()["answer_id"]
    with sqlite3.connect(_database(fake_settings)) as connection:
        stored: list[tuple[Any, ...]] = connection.execute(
            "SELECT t.question, a.question, a.query FROM support_turns t JOIN support_audit a USING (answer_id)"
        ).fetchall()
    assert stored == [("Call me on [PHONE] about how long a refund takes", "", "")]
    store = SupportStore(fake_settings.database_url)
    try:
        [record] = store.audit(answer_ids=[answer_id])
        assert record.question == "Call me on [PHONE] about how long a refund takes"
    finally:
        store.close()


def test_raw_questions_are_stored_only_when_asked_for(fake_settings: Settings) -> None:
    settings = unlimited(fake_settings).model_copy(update={"store_raw_questions": True})
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        conversation_id = client.post("/v1/ask", json={"question": "Call +371 2612 3456"}).json()["conversation_id"]
        view = client.get(f"/v1/conversations/{conversation_id}", params={"view": "full"}).json()
    assert view["turns"][0]["question"] == "Call +371 2612 3456"


def test_state_files_are_private(fake_settings: Settings, tmp_path: Path) -> None:
    settings = unlimited(fake_settings)
    with TestClient(create_app(settings, embedder=HashingEmbedder())):
        pass
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(_database(settings).stat().st_mode) == 0o600
    # A database another version created world-readable is tightened on open.
    loose = tmp_path / "loose" / "support.db"
    loose.parent.mkdir()
    loose.touch()
    loose.chmod(0o644)
    SupportStore(f"sqlite:///{loose}").close()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


SERVE_AND_INGEST = """
import sys
from pathlib import Path
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner
from answerdesk.cli import app
from api.app import create_app
from retrieval.config import Settings, get_settings
from tests.helpers import bearer, issue_key

result = CliRunner().invoke(app, ["ingest", sys.argv[1]])
assert result.exit_code == 0, result.output
settings = Settings()
with TestClient(create_app(settings), headers=bearer(issue_key(settings))) as client:
    reply = client.post("/v1/ask", json={"question": "How long does a refund take?"})
    assert reply.status_code == 200, reply.text
"""


def test_serving_and_ingesting_write_nothing_outside_the_data_dir(
    tmp_path: Path, fake_kb: Path, model_dir: Path
) -> None:
    home, work, temporary = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
    for folder in (home, work, temporary):
        folder.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(temporary),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
        "ANSWERDESK_DATA_DIR": str(work / "data"),
        "ANSWERDESK_MODEL_DIR": str(model_dir),
        "ANSWERDESK_EMBEDDING_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_INGEST, str(fake_kb)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(path.name for path in work.iterdir()) == ["data"]
    assert list(home.rglob("*")) == [] and list(temporary.rglob("*")) == []
