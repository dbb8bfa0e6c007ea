"""The /v1 endpoints the console uses: /v1/me, /v1/preview, /v1/stats, /v1/gaps (hashing embedder).

Each role reaches only its own; a tenant sees only its figures; a preview records nothing; the
stats count exactly the questions, escalations and feedback the API received.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from support.store import AuditRecord, Escalation, Feedback
from support.usage_stats import Period, usage_stats
from tests.helpers import bearer, issue_key, small_kb_settings

ROLES = ("reader", "editor", "agent", "admin")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, Settings, dict[str, dict[str, str]]]]:
    settings = small_kb_settings(tmp_path, failed_auth_per_second=0.0)
    headers = {role: bearer(issue_key(settings, role, "default", "public")) for role in ROLES}
    headers["other-admin"] = bearer(issue_key(settings, "admin", "acme", "public"))
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        yield client, settings, headers


def _ask(client: TestClient, headers: dict[str, str], question: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/ask", json={"question": question, **extra}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_me_names_the_key_and_its_permissions(setup: Any) -> None:
    client, _, headers = setup
    me = client.get("/v1/me", headers=headers["editor"]).json()
    assert (me["role"], me["tenant"], me["audience"]) == ("editor", "default", "public")
    assert me["permissions"] == ["documents", "jobs"]
    assert "stats" in client.get("/v1/me", headers=headers["admin"]).json()["permissions"]
    assert client.get("/v1/me").status_code == 401
    assert (
        client.get("/v1/me", headers=bearer("adk_0000000000000000_nope")).json()["error"]["code"] == "invalid_api_key"
    )


def test_each_role_reaches_only_its_endpoints(setup: Any) -> None:
    client, _, headers = setup
    allowed = {
        ("POST", "/v1/preview"): {"editor", "admin"},
        ("GET", "/v1/stats"): {"admin"},
        ("GET", "/v1/gaps"): {"admin"},
    }
    for (method, path), roles in allowed.items():
        for role in ROLES:
            response = client.request(method, path, headers=headers[role], json={"question": "refund?"})
            assert (response.status_code == 403) == (role not in roles), (role, path, response.text)
            if response.status_code == 403:
                assert response.json()["error"]["code"] == "forbidden_role"


def test_preview_shows_the_candidates_and_records_nothing(setup: Any) -> None:
    client, _, headers = setup
    preview = client.post("/v1/preview", json={"question": "How long does a refund take?"}, headers=headers["editor"])
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["answer"]["status"] == "answered"
    candidates = {candidate["chunk_id"]: candidate for candidate in body["candidates"]}
    citation = body["answer"]["citations"][0]
    cited = candidates[citation["chunk_id"]]
    assert cited["cited"] and citation["quote"] in cited["text"]  # the console highlights it inside the chunk
    assert cited["section"] == "How long does a refund take?"
    losers = [candidate for candidate in body["candidates"] if not candidate["cited"]]
    assert losers and all(candidate["why"].startswith("ranked") for candidate in losers)
    assert [candidate["rank"] for candidate in body["candidates"]] == list(range(1, len(body["candidates"]) + 1))
    assert client.get("/v1/stats", headers=headers["admin"]).json()["totals"]["total"] == 0

    unknown = client.post("/v1/preview", json={"question": "Do you sell gift cards?"}, headers=headers["editor"]).json()
    assert unknown["answer"]["status"] == "abstained"
    assert all(candidate["why"].startswith("not used: the engine abstained") for candidate in unknown["candidates"])
    blank = client.post("/v1/preview", json={"question": "  "}, headers=headers["editor"])
    assert blank.status_code == 422 and blank.json()["error"]["code"] == "invalid_request"


def test_stats_count_what_the_api_received_per_tenant(setup: Any) -> None:
    client, _, headers = setup
    answered = _ask(client, headers["reader"], "How long does a refund take?")
    _ask(client, headers["reader"], "Do you sell gift cards for birthdays?")
    _ask(client, headers["reader"], "Do you sell gift cards for birthdays?", escalate=True)
    assert client.post(
        f"/v1/answers/{answered['answer_id']}/feedback", json={"helpful": False}, headers=headers["reader"]
    )
    assert client.post(
        f"/v1/answers/{answered['answer_id']}/feedback", json={"helpful": True}, headers=headers["reader"]
    )

    stats = client.get("/v1/stats", headers=headers["admin"]).json()
    assert stats["totals"] == {"answered": 1, "abstained": 1, "escalated": 1, "total": 3}
    today = datetime.now(UTC).date().isoformat()
    assert [day for day in stats["days"] if day["total"]] == [
        {"day": today, "answered": 1, "abstained": 1, "escalated": 1, "total": 3, "helpful": 1, "not_helpful": 0}
    ]
    assert len(stats["days"]) == 30 and stats["until"] == today
    assert stats["languages"] == [{"language": "en", "answered": 1, "abstained": 1, "escalated": 1, "total": 3}]
    assert (stats["escalations"], stats["escalations_resolved"]) == (1, 0)
    assert stats["escalation_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert stats["resolution_rate"] == 0.0
    assert (stats["helpful"], stats["not_helpful"]) == (1, 0)  # the latest feedback on an answer counts
    assert stats["latency_p50_ms"] is not None and stats["latency_p95_ms"] >= stats["latency_p50_ms"]

    other = client.get("/v1/stats", headers=headers["other-admin"]).json()
    assert other["totals"]["total"] == 0 and other["escalations"] == 0 and other["languages"] == []


def test_stats_period_is_checked(setup: Any) -> None:
    client, _, headers = setup
    admin = headers["admin"]
    backwards = client.get("/v1/stats?since=2026-02-01&until=2026-01-01", headers=admin)
    assert backwards.status_code == 422 and "after" in backwards.json()["error"]["message"]
    too_long = client.get("/v1/stats?since=2024-01-01&until=2026-01-01", headers=admin)
    assert too_long.status_code == 422 and "366 days" in too_long.json()["error"]["message"]
    assert client.get("/v1/stats?since=yesterday", headers=admin).status_code == 422
    one_day = client.get("/v1/stats?since=2026-01-01&until=2026-01-01", headers=admin).json()
    assert [day["day"] for day in one_day["days"]] == ["2026-01-01"]


def test_gaps_cluster_the_tenants_unanswered_questions(setup: Any) -> None:
    client, _, headers = setup
    for question in ("Do you sell gift cards?", "Do you sell gift cards for birthdays?"):
        assert _ask(client, headers["reader"], question)["status"] == "abstained"
    report = client.get("/v1/gaps", headers=headers["admin"]).json()
    assert report["unanswered"] == 2
    assert sum(cluster["size"] for cluster in report["clusters"]) == 2
    nearest = [cluster["nearest"] for cluster in report["clusters"] if cluster["nearest"]]
    assert nearest and all(not item["document_id"].startswith("acme:") for item in nearest)
    assert client.get("/v1/gaps", headers=headers["other-admin"]).json() == {
        "since": report["since"],
        "until": report["until"],
        "unanswered": 0,
        "clusters": [],
    }


def _audit(day: str, status: str, answer_id: str, latency: float = 10.0) -> AuditRecord:
    return AuditRecord(
        answer_id=answer_id,
        conversation_id="c",
        created_at=f"{day}T12:00:00.000+00:00",
        question="q",
        query="q",
        language="lv",
        status=status,
        confidence=0.5,
        answer="",
        reasons=[],
        retrieved=[],
        cited_documents=[],
        profile="p",
        latency_ms=latency,
    )


def test_usage_stats_keep_to_the_period_and_count_the_latest_feedback() -> None:
    period = Period(date(2026, 3, 1), date(2026, 3, 2))
    records = [
        _audit("2026-02-28", "answered", "before"),
        _audit("2026-03-01", "answered", "a", 10.0),
        _audit("2026-03-02", "escalated", "b", 30.0),
        _audit("2026-03-03", "abstained", "after"),
    ]
    escalation = Escalation("e", "c", "b", "resolved", [], "lv", "2026-03-02T12:00:00+00:00", {}, {})
    feedback = [
        Feedback(1, "a", True, None, "2026-03-01T13:00:00+00:00"),
        Feedback(2, "a", False, None, "2026-03-02T13:00:00+00:00"),  # changes its mind: counts once, not helpful
    ]
    stats = usage_stats(period, records, [escalation], feedback)
    assert (stats.totals.answered, stats.totals.escalated, stats.totals.total) == (1, 1, 2)
    assert list(stats.per_day) == ["2026-03-01", "2026-03-02"]
    assert stats.feedback.helpful == 0 and stats.feedback.not_helpful == 1
    assert stats.resolution_rate == 1.0 and stats.escalation_rate == 0.5
    assert stats.latency_p50_ms == 20.0
    assert Period(date(2026, 3, 1), date(2026, 3, 1) + timedelta(days=0)).end == "2026-03-02"


def test_gaps_survive_a_question_without_words(setup: Any) -> None:
    """The hashing embedder gives "???" a zero vector; it is its own group, not a 500."""
    client, _, headers = setup
    for question in ("???", "Do you sell gift cards?"):
        _ask(client, headers["reader"], question)
    report = client.get("/v1/gaps", headers=headers["admin"])
    assert report.status_code == 200, report.text
    assert report.json()["unanswered"] == 2
