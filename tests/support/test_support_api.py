"""The support API on a tiny knowledge base (hashing embedder): conversations, escalation, the agent
API, feedback, FAQ candidates, and 4xx JSON for client mistakes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from support.store import SupportStore
from tests.helpers import bearer, issue_key, unlimited


@pytest.fixture
def client(fake_settings: Settings) -> Iterator[TestClient]:
    settings = unlimited(fake_settings)
    app = create_app(settings, embedder=HashingEmbedder())
    with TestClient(app, headers=bearer(issue_key(settings))) as test_client:
        yield test_client


def _ask(client: TestClient, question: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/ask", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_turns_are_stored_under_the_conversation(client: TestClient, fake_settings: Settings) -> None:
    first = _ask(client, "How long does a refund take?")
    assert first["status"] == "answered", first["reasons"]
    conversation_id = first["conversation_id"]
    second = _ask(client, "and for an annual plan?", conversation_id=conversation_id)
    assert second["conversation_id"] == conversation_id
    view = client.get(f"/v1/conversations/{conversation_id}").json()
    assert [turn["question"] for turn in view["turns"]] == ["How long does a refund take?", "and for an annual plan?"]
    assert view["turns"][1]["follow_up"] is True
    # Durable: a new store on the same database sees them.
    store = SupportStore(fake_settings.database_url)
    assert len(store.turns(conversation_id)) == 2
    store.close()


def test_abstaining_offers_escalation_and_repeated_abstention_escalates(client: TestClient) -> None:
    first = _ask(client, "Do you sell garden furniture?")
    assert first["status"] == "abstained" and first["escalation_offered"] is True
    assert first["escalation_id"] is None and "pass this conversation" in first["answer"]
    second = _ask(client, "Do you sell garden gnomes?", conversation_id=first["conversation_id"])
    assert second["status"] == "escalated"
    assert second["reasons"][0].startswith("repeated_abstention: 2 answers in a row")
    assert second["citations"] == []


@pytest.mark.parametrize(
    ("question", "language", "code", "phrase"),
    [
        ("I want to talk to a human, please", "en", "customer_requested_human", "passed this conversation"),
        ("Хочу поговорить с живым человеком", "ru", "customer_requested_human", "передал этот разговор"),
        ("Es vērsīšos tiesā!", "lv", "sensitive_topic", "nodevu šo sarunu"),
        ("我的账号被盗了", "zh", "sensitive_topic", "转交给我们的支持团队"),
    ],
)
def test_triage_escalates_with_a_reason_and_a_localized_handoff(
    client: TestClient, question: str, language: str, code: str, phrase: str
) -> None:
    body = _ask(client, question)
    assert body["status"] == "escalated" and body["escalation_id"]
    assert body["language"] == language
    assert body["reasons"][0].startswith(code + ":")
    assert phrase in body["answer"]
    assert body["disclosure"]


def test_escalation_record_redaction_filters_and_resolution(client: TestClient) -> None:
    first = _ask(client, "How long does a refund take?", customer={"email": "anna@example.com", "plan": "team"})
    body = _ask(
        client,
        "I was charged twice on card 4242 4242 4242 4242, connect me to a person",
        conversation_id=first["conversation_id"],
        escalate=True,
    )
    escalation_id = body["escalation_id"]
    redacted = client.get(f"/v1/escalations/{escalation_id}").json()
    record = redacted["record"]
    assert redacted["view"] == "redacted" and record["redacted"] is True
    assert "[CARD]" in record["question"] and record["customer"] == {"email": "[REDACTED]", "plan": "team"}
    assert [entry["role"] for entry in record["transcript"]] == ["customer", "assistant", "customer"]
    assert record["transcript"][0]["text"] == "How long does a refund take?"
    assert record["candidates"] and {"chunk_id", "score"} <= set(record["candidates"][0])
    assert set(record["reason_codes"]) >= {"customer_requested_human", "caller_requested"}
    assert record["attempted_answer"]["answer_id"] and record["language"] == "en"
    full = client.get(f"/v1/escalations/{escalation_id}", params={"view": "full"}).json()["record"]
    # The full view shows the customer's metadata; the question was stored redacted (docs/privacy.md).
    assert "[CARD]" in full["question"] and full["customer"]["email"] == "anna@example.com"

    listed = client.get("/v1/escalations", params={"status": "open", "reason": "caller_requested", "language": "en"})
    assert [item["escalation_id"] for item in listed.json()["escalations"]] == [escalation_id]
    assert client.get("/v1/escalations", params={"language": "zh"}).json()["total"] == 0

    # A later message in the conversation joins the open escalation instead of opening another.
    again = _ask(client, "Can I talk to a human now?", conversation_id=first["conversation_id"])
    assert again["escalation_id"] == escalation_id and again["reasons"][0].startswith("already_escalated")
    assert client.get("/v1/escalations").json()["total"] == 1

    resolved = client.post(
        f"/v1/escalations/{escalation_id}/resolve",
        json={"answer": "Refunded the duplicate charge.", "agent": "maria", "offer_as_faq": True},
    )
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["resolution"]["agent"] == "maria"
    again = client.post(f"/v1/escalations/{escalation_id}/resolve", json={"answer": "again"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "escalation_already_resolved"
    candidates = client.get("/v1/faq-candidates").json()
    assert candidates["candidates"][0]["answer"] == "Refunded the duplicate charge."
    assert "## I was charged twice on card [CARD]" in candidates["markdown"]


def test_feedback(client: TestClient) -> None:
    body = _ask(client, "How long does a refund take?")
    response = client.post(f"/v1/answers/{body['answer_id']}/feedback", json={"helpful": False, "comment": "too vague"})
    assert response.status_code == 201
    assert response.json()["helpful"] is False and response.json()["comment"] == "too vague"


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "code"),
    [
        ("get", "/v1/escalations/does-not-exist", None, 404, "escalation_not_found"),
        ("post", "/v1/escalations/does-not-exist/resolve", {"answer": "x"}, 404, "escalation_not_found"),
        ("post", "/v1/answers/nope/feedback", {"helpful": True}, 404, "answer_not_found"),
        ("get", "/v1/conversations/nope", None, 404, "conversation_not_found"),
        ("post", "/v1/answers/nope/feedback", {"helpful": "yes"}, 422, "invalid_request"),
        ("post", "/v1/answers/nope/feedback", {"helpful": True, "stars": 5}, 422, "invalid_request"),
        ("post", "/v1/escalations/x/resolve", {"answer": "   "}, 422, "invalid_request"),
        ("get", "/v1/escalations?status=closed", None, 422, "invalid_request"),
        ("get", "/v1/escalations?reason=DROP%20TABLE", None, 422, "invalid_request"),
        ("get", "/v1/escalations?limit=0", None, 422, "invalid_request"),
        ("get", "/v1/escalations/x?view=everything", None, 422, "invalid_request"),
        ("post", "/v1/ask", {"question": "hi", "escalate": "maybe"}, 422, "invalid_request"),
        ("post", "/v1/ask", {"question": "hi", "customer": {"plan": {"nested": 1}}}, 422, "invalid_request"),
        ("post", "/v1/ask", {"question": "hi", "customer": {"note": "x" * 1001}}, 422, "invalid_request"),
    ],
)
def test_client_mistakes_are_4xx_json(
    client: TestClient, method: str, path: str, payload: dict[str, Any] | None, status: int, code: str
) -> None:
    response = client.request(method.upper(), path, json=payload)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
