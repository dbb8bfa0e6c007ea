"""Structured logs: JSON lines, personal data redacted everywhere, one access line per request with
its request id, and no question text unless ANSWERDESK_LOG_QUESTIONS is on."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.access_log import AccessLogMiddleware
from api.app import create_app
from common.logs import configure_logging, request_context
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import SECRET, Receiver, bearer, free_port, issue_key, small_kb_settings, wait_until

PERSONAL = "mail anna.berzina@example.com, call +371 2612 3456, card 4242 4242 4242 4242"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The JSON log handler writing into a buffer; removed (and the level restored) afterwards."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(logging.INFO, stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_is_json_and_every_string_in_it_is_redacted(log_stream: io.StringIO) -> None:
    logger = logging.getLogger("tests.logging")
    logger.info("customer wrote: %s", PERSONAL, extra={"note": PERSONAL, "items": [PERSONAL]})
    try:
        raise ValueError(PERSONAL)
    except ValueError:
        logger.exception("failed for %s", "anna.berzina@example.com")
    lines = _lines(log_stream)
    assert [line["level"] for line in lines] == ["INFO", "ERROR"]
    assert lines[0]["logger"] == "tests.logging"
    assert lines[0]["message"] == "customer wrote: mail [EMAIL], call [PHONE], card [CARD]"
    assert lines[0]["note"] == "mail [EMAIL], call [PHONE], card [CARD]"
    assert lines[0]["items"] == ["mail [EMAIL], call [PHONE], card [CARD]"]
    assert "ValueError: mail [EMAIL], call [PHONE], card [CARD]" in lines[1]["exc_info"]
    raw = log_stream.getvalue()
    for secret in ("anna.berzina", "2612 3456", "4242 4242"):
        assert secret not in raw


def test_lines_written_inside_a_request_carry_its_id(log_stream: io.StringIO) -> None:
    with request_context("req-42"):
        logging.getLogger("tests.logging").warning("inside")
    logging.getLogger("tests.logging").warning("outside")
    inside, outside = _lines(log_stream)
    assert inside["request_id"] == "req-42"
    assert "request_id" not in outside


def test_configuring_twice_keeps_one_handler(log_stream: io.StringIO) -> None:
    second = io.StringIO()
    handler = configure_logging("WARNING", second)
    try:
        logging.getLogger("tests.logging").warning("once")
        assert log_stream.getvalue() == ""
        assert len(_lines(second)) == 1
    finally:
        logging.getLogger().removeHandler(handler)


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings)))


def _access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in _lines(stream) if line["logger"] == "api.access"]


def test_one_access_line_per_request_with_the_echoed_or_a_new_request_id(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    with _client(small_kb_settings(tmp_path)) as client:
        log_stream.truncate(0)
        log_stream.seek(0)
        echoed = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        created = client.get("/v1/documents/nope")
        insane = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    assert len(created.headers["X-Request-ID"]) == 32
    assert insane.headers["X-Request-ID"] != "bad id\twith spaces"
    first, second, third = _access_lines(log_stream)
    assert first | {"duration_ms": 0, "timestamp": ""} == {
        "timestamp": "",
        "level": "INFO",
        "logger": "api.access",
        "message": "GET /healthz 200",
        "request_id": "abc-123",
        "method": "GET",
        "path": "/healthz",
        "status": 200,
        "duration_ms": 0,
    }
    assert first["duration_ms"] >= 0
    assert (second["status"], second["request_id"]) == (404, created.headers["X-Request-ID"])
    assert third["request_id"] == insane.headers["X-Request-ID"]


def test_the_access_line_names_the_callers_key_id_when_authentication_left_one(log_stream: io.StringIO) -> None:
    app = FastAPI()
    app.add_middleware(AccessLogMiddleware)

    @app.get("/who")
    async def who(request: Request) -> dict[str, str]:
        request.state.caller = SimpleNamespace(key_id="k_123")  # what authentication leaves behind
        return {}

    @app.get("/anonymous")
    async def anonymous() -> dict[str, str]:
        return {}

    with TestClient(app) as client:
        client.get("/who")
        client.get("/anonymous")
    named, unnamed = _access_lines(log_stream)
    assert named["key_id"] == "k_123"
    assert "key_id" not in unnamed


@pytest.mark.parametrize("log_questions", [False, True])
def test_question_text_is_logged_only_when_enabled_and_then_redacted(
    tmp_path: Path, log_stream: io.StringIO, log_questions: bool
) -> None:
    question = "How long does a refund take? My email is anna.berzina@example.com"
    with _client(small_kb_settings(tmp_path, log_questions=log_questions)) as client:
        response = client.post("/v1/ask", json={"question": question})
    assert response.status_code == 200, response.text
    raw = log_stream.getvalue()
    assert "anna.berzina" not in raw
    (answer_line,) = [line for line in _lines(log_stream) if line["logger"] == "api.answers"]
    assert answer_line["answer_id"] == response.json()["answer_id"]
    assert answer_line["answer_status"] == response.json()["status"]
    assert answer_line["request_id"] == response.headers["X-Request-ID"]
    if log_questions:
        assert answer_line["question"] == "How long does a refund take? My email is [EMAIL]"
        assert answer_line["answer"] == response.json()["answer"]
    else:
        assert "question" not in answer_line and "answer" not in answer_line
        assert "refund take" not in raw


def test_the_callers_request_id_reaches_the_logs_the_header_and_the_escalation_webhook(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    # A load balancer in front of several replicas sets X-Request-ID; whichever replica answers
    # keeps it, and so does the webhook that any replica's outbox worker delivers later.
    receiver = Receiver(free_port())
    receiver.start()
    try:
        settings = small_kb_settings(tmp_path, webhook_urls=[receiver.url], webhook_secret=SecretStr(SECRET))
        app = create_app(settings, embedder=HashingEmbedder())
        with TestClient(app, headers=bearer(issue_key(settings))) as client:
            response = client.post(
                "/v1/ask", json={"question": "Connect me to a person", "escalate": True},
                headers={"X-Request-ID": "lb-7f3a.1"},
            )
            assert response.json()["status"] == "escalated" and response.headers["X-Request-ID"] == "lb-7f3a.1"
            assert wait_until(lambda: len(receiver.processed) == 1)
    finally:
        receiver.stop()
    [body] = receiver.processed.values()
    assert body["request_id"] == "lb-7f3a.1"
    answer_lines = [line for line in _lines(log_stream) if line.get("answer_status") == "escalated"]
    assert answer_lines and all(line["request_id"] == "lb-7f3a.1" for line in answer_lines)
