"""The HTTP API over the real model and the whole sample knowledge base."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.config import Settings
from tests.helpers import ANSWERABLE, UNANSWERABLE, bearer, issue_key, unlimited

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(kb_settings: Settings) -> Iterator[TestClient]:
    settings = unlimited(kb_settings)
    with TestClient(create_app(settings), headers=bearer(issue_key(settings))) as test_client:
        yield test_client


def _ask(client: TestClient, question: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/ask", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _stem(document_id: str) -> str:
    return document_id.rsplit("/", 1)[-1]


@pytest.mark.parametrize(("question", "gold_stems"), ANSWERABLE)
def test_answerable_questions_are_answered_with_a_gold_citation(
    client: TestClient, question: str, gold_stems: set[str]
) -> None:
    body = _ask(client, question)
    assert body["status"] == "answered", body["reasons"]
    assert _stem(body["citations"][0]["document_id"]) in gold_stems, body["citations"]


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_unanswerable_questions_abstain(client: TestClient, question: str) -> None:
    body = _ask(client, question)
    assert body["status"] == "abstained", body
    assert body["citations"] == []
    assert body["reasons"][0].startswith("low_confidence")


def test_every_quote_is_verbatim_from_a_retrieved_chunk(client: TestClient, kb_settings: Settings) -> None:
    from retrieval.vector_store import ChromaStore

    store = ChromaStore(kb_settings.chroma_dir, kb_settings.collection)
    body = _ask(client, "How long does a refund take to reach my card?")
    assert body["status"] == "answered"
    assert body["citations"]
    for number, citation in enumerate(body["citations"], 1):
        chunk_texts = {chunk.chunk_id: chunk.text for chunk in store.chunks_of(citation["document_id"])}
        assert citation["quote"] in chunk_texts[citation["chunk_id"]]
        assert f"[{number}]" in body["answer"]
    assert set(body) >= {
        "answer_id",
        "status",
        "answer",
        "citations",
        "confidence",
        "reasons",
        "disclosure",
        "conversation_id",
    }
    assert 0 <= body["confidence"] <= 1
    assert body["reasons"]


def test_conversation_id_is_kept_or_created(client: TestClient) -> None:
    assert _ask(client, "How do I reset my password?", conversation_id="conv-42")["conversation_id"] == "conv-42"
    assert len(_ask(client, "How do I reset my password?")["conversation_id"]) == 32


def test_disclosure_follows_the_question_language(client: TestClient) -> None:
    assert "ИИ" in _ask(client, "Как сбросить пароль?")["disclosure"]
    assert "AI" in _ask(client, "我忘记密码了怎么办？")["disclosure"]


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        ({"question": ""}, "question", "at least 1 character"),
        ({"question": "   \n "}, "question", "empty or only whitespace"),
        ({"question": "x" * 2001}, "question", "at most 2000 characters"),
        ({"question": 42}, "question", "valid string"),
        ({"question": "hi", "colour": "red"}, "colour", "not a known field"),
        ({}, "question", "Field required"),
        ({"question": "hi", "language": "English!"}, "language", "match pattern"),
    ],
)
def test_bad_requests_get_422_naming_the_field(
    client: TestClient, payload: dict[str, Any], field: str, problem: str
) -> None:
    response = client.post("/v1/ask", json=payload)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert any(d["field"] == field and problem in d["problem"] for d in error["details"]), error


def test_malformed_json_is_a_422_not_a_500(client: TestClient) -> None:
    response = client.post("/v1/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_health_readiness_documents_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["chunks"] > 100
    listing = client.get("/v1/documents", params={"limit": 5}).json()
    assert listing["total"] >= 40 and len(listing["documents"]) == 5
    assert {"document_id", "title", "language", "version", "chunks"} <= set(listing["documents"][0])
    assert client.get("/docs").status_code == 200
    assert client.get("/nope").json()["error"]["code"] == "not_found"
