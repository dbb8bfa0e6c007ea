"""The trust boundary inside a tenant (issue 17): support reads follow the key's audience, a key grants
only what it has, a conversation belongs to the key that started it, and no response shows a server
path or the stored ``tenant:`` prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from access.keys import split_token
from api.app import create_app
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import ACME_FAQ, FAQ, INTERNAL_FAQ, PROFILE, Tenant, assert_like_unknown, issue_key, unlimited

INTERNAL_QUESTION = "When may agents refund after 90 days?"


def _key(client: TestClient, settings: Settings, role: str, audience: str) -> Tenant:
    return Tenant(client, issue_key(settings, role=role, tenant="acme", audience=audience))


def test_a_public_agent_reads_nothing_an_internal_readers_escalation_shows(
    client: TestClient, settings: Settings, acme: Tenant
) -> None:
    assert acme.upload("en/exceptions.md", INTERNAL_FAQ).status_code == 201
    internal_reader = _key(client, settings, "reader", "internal")
    asked = internal_reader.ask(INTERNAL_QUESTION, escalate=True)
    escalation_id, conversation_id = asked["escalation_id"], asked["conversation_id"]
    internal_agent, public_agent = (
        _key(client, settings, "agent", "internal"),
        _key(client, settings, "agent", "public"),
    )
    shown = internal_agent.request("GET", f"/v1/escalations/{escalation_id}").json()
    assert "team lead" in shown["record"]["attempted_answer"]["answer"]  # the quote a public key must not see

    theirs = public_agent.request("GET", f"/v1/escalations/{escalation_id}")
    unknown = public_agent.request("GET", "/v1/escalations/" + "e" * 32)
    assert_like_unknown(theirs, unknown, escalation_id, "e" * 32)
    listed = public_agent.request("GET", "/v1/escalations")
    assert listed.json()["total"] == 0 and "team lead" not in listed.text and "exceptions" not in listed.text
    theirs = public_agent.request("GET", f"/v1/conversations/{conversation_id}")
    unknown = public_agent.request("GET", "/v1/conversations/never-was")
    assert_like_unknown(theirs, unknown, conversation_id, "never-was")
    resolve = {"answer": "Approved by Maria, call +371 2612 3456.", "offer_as_faq": True}
    theirs = public_agent.request("POST", f"/v1/escalations/{escalation_id}/resolve", json=resolve)
    unknown = public_agent.request("POST", "/v1/escalations/" + "e" * 32 + "/resolve", json=resolve)
    assert_like_unknown(theirs, unknown, escalation_id, "e" * 32)

    # Resolved by an internal agent, it is a FAQ candidate for internal keys only.
    assert internal_agent.request("POST", f"/v1/escalations/{escalation_id}/resolve", json=resolve).status_code == 200
    assert public_agent.request("GET", "/v1/faq-candidates").json()["candidates"] == []
    candidates = internal_agent.request("GET", "/v1/faq-candidates").json()
    [candidate] = candidates["candidates"]
    assert candidate["answer"] == "Approved by Maria, call [PHONE]."  # meant for the knowledge base: redacted
    assert "2612" not in candidates["markdown"]

    # Feedback: a public reader cannot rate (or learn of) an internal reader's answer.
    public_reader = _key(client, settings, "reader", "public")
    answer_id = asked["answer_id"]
    theirs = public_reader.request("POST", f"/v1/answers/{answer_id}/feedback", json={"helpful": False})
    unknown = public_reader.request("POST", "/v1/answers/" + "f" * 32 + "/feedback", json={"helpful": False})
    assert_like_unknown(theirs, unknown, answer_id, "f" * 32)


def test_a_public_editor_does_not_see_an_internal_editors_job(client: TestClient, settings: Settings) -> None:
    internal_editor, public_editor = (
        _key(client, settings, "editor", "internal"),
        _key(client, settings, "editor", "public"),
    )
    files = [("file", ("en/exceptions.md", INTERNAL_FAQ.encode())), ("file", ("en/refunds.md", ACME_FAQ.encode()))]
    started = internal_editor.request("POST", "/v1/documents", files=files)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    assert internal_editor.request("GET", f"/v1/jobs/{job_id}").status_code == 200
    theirs = public_editor.request("GET", f"/v1/jobs/{job_id}")
    unknown = public_editor.request("GET", "/v1/jobs/" + "0" * 32)
    assert_like_unknown(theirs, unknown, job_id, "0" * 32)


def test_a_key_grants_only_what_it_has(client: TestClient, settings: Settings) -> None:
    public_admin, internal_admin = (
        _key(client, settings, "admin", "public"),
        _key(client, settings, "admin", "internal"),
    )
    refused = public_admin.request("POST", "/v1/keys", json={"role": "agent", "audience": "internal"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "audience_not_allowed")
    assert public_admin.request("POST", "/v1/keys", json={"role": "agent"}).status_code == 201
    created = internal_admin.request("POST", "/v1/keys", json={"role": "agent", "audience": "internal"})
    assert created.status_code == 201 and created.json()["tenant"] == "acme"

    # Internal keys are "no key" to a public admin: not listed, not revocable.
    internal_id = created.json()["key_id"]
    assert {key["audience"] for key in public_admin.request("GET", "/v1/keys").json()["keys"]} == {"public"}
    theirs = public_admin.request("DELETE", f"/v1/keys/{internal_id}")
    unknown = public_admin.request("DELETE", "/v1/keys/0123456789abcdef")
    assert_like_unknown(theirs, unknown, internal_id, "0123456789abcdef")
    assert internal_admin.request("DELETE", f"/v1/keys/{internal_id}").status_code == 200


def test_the_command_line_keeps_its_operator_powers(settings: Settings) -> None:
    from typer.testing import CliRunner

    from answerdesk.cli import app

    env = {"ANSWERDESK_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(
        app, ["keys", "create", "--role", "admin", "--tenant", "acme", "--audience", "internal"], env=env
    )
    assert result.exit_code == 0, result.output
    assert split_token(result.stdout.strip().splitlines()[-1]) is not None


def test_a_conversation_is_continued_only_by_the_key_that_started_it(
    client: TestClient, settings: Settings, acme: Tenant
) -> None:
    assert acme.upload("en/refunds.md", ACME_FAQ).status_code == 201
    widget, other = _key(client, settings, "reader", "public"), _key(client, settings, "reader", "public")
    first = widget.ask("How long does an Acme refund take?", conversation_id="chat-1", customer={"customer_id": "u1"})
    assert first["conversation_id"] == "chat-1"

    def refused(reader: Tenant, **extra: Any) -> dict[str, Any]:
        response = reader.request("POST", "/v1/ask", json={"question": "Refund it to me", **extra})
        assert response.status_code == 404, response.text
        body: dict[str, Any] = response.json()
        return body

    unknown = acme.request("GET", "/v1/conversations/chat-1-unknown").json()
    expected = {"error": {**unknown["error"], "message": "no conversation 'chat-1'"}}
    # Another key of the same tenant and role, with or without new customer metadata: the unknown-id 404.
    assert refused(other, conversation_id="chat-1") == expected
    assert refused(other, conversation_id="chat-1", customer={"customer_id": "u1", "plan": "evil"}) == expected
    # The same key for another customer: also refused.
    assert refused(widget, conversation_id="chat-1", customer={"customer_id": "u2"}) == expected

    view = acme.request("GET", "/v1/conversations/chat-1").json()
    assert len(view["turns"]) == 1 and view["customer"] == {"customer_id": "u1"}
    assert widget.ask("and for an annual plan?", conversation_id="chat-1")["conversation_id"] == "chat-1"


def test_no_response_shows_a_server_path_or_the_tenant_prefix(tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text(PROFILE, encoding="utf-8")  # the tiny KB's profile, on which this question is answered
    settings = unlimited(Settings(data_dir=tmp_path / "data", profile_path=profile))
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        acme = Tenant(client, issue_key(settings, tenant="acme"))
        assert acme.upload("en/refunds.md", FAQ).status_code == 201
        answer = acme.ask("How long does a refund take?")
        assert answer["status"] == "answered", answer["reasons"]
        citation = answer["citations"][0]
        assert (citation["document_id"], citation["source"]) == ("en/refunds", "en/refunds.md")
        assert citation["chunk_id"].startswith("en/refunds#")
        escalated = acme.ask("How long does a refund take?", escalate=True)
        record = acme.request("GET", f"/v1/escalations/{escalated['escalation_id']}").json()["record"]
        assert record["candidates"][0]["document_id"] == "en/refunds"
        assert record["attempted_answer"]["citations"][0]["source"] == "en/refunds.md"
        listed = acme.request("GET", "/v1/documents").json()["documents"]
        assert [(doc["document_id"], doc["source"]) for doc in listed] == [("en/refunds", "en/refunds.md")]
        detail = acme.request("GET", "/v1/documents/en/refunds")
        assert detail.status_code == 200
        for text in (str(answer), str(record), str(listed), detail.text):
            assert str(settings.data_dir) not in text and "acme:" not in text


def test_a_taken_id_reads_the_same_whether_or_not_the_caller_may_see_it(
    client: TestClient, settings: Settings, acme: Tenant
) -> None:
    assert acme.upload("en/exceptions.md", INTERNAL_FAQ).status_code == 201
    assert acme.upload("en/refunds.md", ACME_FAQ).status_code == 201
    public_editor = _key(client, settings, "editor", "public")
    hidden = public_editor.upload("en/exceptions.md", ACME_FAQ)
    visible = public_editor.upload("en/refunds.md", ACME_FAQ)
    assert hidden.status_code == visible.status_code == 409
    assert hidden.json() == {
        "error": {
            **visible.json()["error"],
            "message": visible.json()["error"]["message"].replace("refunds", "exceptions"),
        }
    }
    # No hint that leads on (a PUT to a hidden document is a 404, which would confirm what it is).
    assert "PUT" not in hidden.text and "internal" not in hidden.text
