"""Tenant isolation at the API: one tenant's key never reaches another tenant's documents, answers,
conversations, escalations or feedback, and the refusal looks exactly like an id that does not exist."""

from __future__ import annotations

from fastapi.testclient import TestClient

from retrieval.config import Settings
from tests.helpers import ACME_FAQ, GLOBEX_FAQ, INTERNAL_FAQ, Tenant, assert_like_unknown, issue_key


def test_conversations_are_per_tenant(acme: Tenant, globex: Tenant) -> None:
    acme.ask("How long does an Acme refund take?", conversation_id="shared-id", customer={"email": "a@acme.test"})
    acme.ask("and for an annual plan?", conversation_id="shared-id")

    theirs = globex.request("GET", "/v1/conversations/shared-id")
    assert_like_unknown(theirs, globex.request("GET", "/v1/conversations/never-used"), "shared-id", "never-used")

    # The same id in another tenant is another conversation: no history, no customer data carried over.
    reply = globex.ask("and for an annual plan?", conversation_id="shared-id")
    assert not any(reason.startswith("follow_up") for reason in reply["reasons"])
    own = globex.request("GET", "/v1/conversations/shared-id", params={"view": "full"}).json()
    assert [turn["question"] for turn in own["turns"]] == ["and for an annual plan?"]
    assert own["customer"] == {}
    acme_view = acme.request("GET", "/v1/conversations/shared-id", params={"view": "full"}).json()
    assert [turn["question"] for turn in acme_view["turns"]] == [
        "How long does an Acme refund take?",
        "and for an annual plan?",
    ]
    assert acme_view["customer"] == {"email": "a@acme.test"}


def test_escalations_and_faq_candidates_are_per_tenant(acme: Tenant, globex: Tenant) -> None:
    escalation_id = acme.ask("I want to talk to a person", escalate=True)["escalation_id"]
    assert escalation_id
    unknown_id = "0" * len(escalation_id)

    for method, suffix, body in [("GET", "", None), ("POST", "/resolve", {"answer": "Done."})]:
        theirs = globex.request(method, f"/v1/escalations/{escalation_id}{suffix}", json=body)
        unknown = globex.request(method, f"/v1/escalations/{unknown_id}{suffix}", json=body)
        assert_like_unknown(theirs, unknown, escalation_id, unknown_id)
    assert globex.request("GET", "/v1/escalations").json() == {"total": 0, "escalations": []}
    assert acme.request("GET", "/v1/escalations").json()["total"] == 1

    # Globex's failed resolve changed nothing; Acme resolves and offers the answer as a FAQ entry.
    resolved = acme.request("POST", f"/v1/escalations/{escalation_id}/resolve", json={
        "answer": "Acme agents answer within a day.", "offer_as_faq": True
    })
    assert resolved.status_code == 200, resolved.text
    assert [c["escalation_id"] for c in acme.request("GET", "/v1/faq-candidates").json()["candidates"]] == [
        escalation_id
    ]
    candidates = globex.request("GET", "/v1/faq-candidates").json()
    assert candidates["candidates"] == [] and "Acme" not in candidates["markdown"]


def test_feedback_only_on_own_answers(acme: Tenant, globex: Tenant) -> None:
    answer_id = acme.ask("How long does an Acme refund take?")["answer_id"]
    unknown_id = "f" * len(answer_id)
    theirs = globex.request("POST", f"/v1/answers/{answer_id}/feedback", json={"helpful": False})
    unknown = globex.request("POST", f"/v1/answers/{unknown_id}/feedback", json={"helpful": False})
    assert_like_unknown(theirs, unknown, answer_id, unknown_id)
    assert acme.request("POST", f"/v1/answers/{answer_id}/feedback", json={"helpful": True}).status_code == 201


def test_documents_are_per_tenant(acme: Tenant, globex: Tenant) -> None:
    assert acme.upload("en/refunds.md", ACME_FAQ).status_code == 201
    assert acme.request("GET", "/v1/documents/en/refunds").status_code == 200
    listed = acme.request("GET", "/v1/documents").json()
    [listed_id] = [document["document_id"] for document in listed["documents"]]
    assert listed["total"] == 1 and listed_id == "en/refunds"  # never the stored "acme:" prefix
    stored_id = f"acme:{listed_id}"

    for their_id in ("en/refunds", stored_id):  # the local id, and the stored (qualified) one
        for method in ("GET", "DELETE"):
            theirs = globex.request(method, f"/v1/documents/{their_id}")
            unknown = globex.request(method, "/v1/documents/en/never-was")
            assert_like_unknown(theirs, unknown, their_id, "en/never-was")
    assert globex.request("GET", "/v1/documents").json() == {"total": 0, "documents": []}
    theirs = globex.request("PUT", f"/v1/documents/{stored_id}", json={"content": "# Mine now"})
    unknown = globex.request("PUT", "/v1/documents/acme:en/never-was", json={"content": "# Mine now"})
    assert_like_unknown(theirs, unknown, stored_id, "acme:en/never-was")

    # The same local id in Globex is Globex's own document; Acme's is untouched.
    assert globex.upload("en/refunds.md", GLOBEX_FAQ).status_code == 201
    acme_text = " ".join(c["text"] for c in acme.request("GET", "/v1/documents/en/refunds").json()["chunk_details"])
    assert "Acme refunds" in acme_text and "Globex" not in acme_text
    assert globex.request("DELETE", "/v1/documents/en/refunds").status_code == 204
    assert acme.request("GET", "/v1/documents/en/refunds").status_code == 200


def test_upload_jobs_are_per_tenant(acme: Tenant, globex: Tenant) -> None:
    job = acme.request(
        "POST", "/v1/documents", files=[("file", ("en/a.md", ACME_FAQ.encode())), ("file", ("en/b.md", b"# B\n\nB."))]
    )
    assert job.status_code == 202, job.text
    job_id = job.json()["job_id"]
    assert acme.request("GET", f"/v1/jobs/{job_id}").status_code == 200
    unknown_id = "0" * len(job_id)
    theirs, unknown = globex.request("GET", f"/v1/jobs/{job_id}"), globex.request("GET", f"/v1/jobs/{unknown_id}")
    assert_like_unknown(theirs, unknown, job_id, unknown_id)


def _sources(asker: Tenant, agent: Tenant, question: str) -> set[str]:
    """Titles of every passage retrieved for ``question`` (the escalation lists them all, whatever the
    answer's status), checked against the citations of the reply."""
    reply = asker.ask(question, escalate=True)
    record = agent.request("GET", f"/v1/escalations/{reply['escalation_id']}").json()["record"]
    titles = {candidate["title"] for candidate in record["candidates"]}
    assert {citation["title"] for citation in record["attempted_answer"]["citations"]} <= titles
    return titles


def test_answers_come_only_from_the_callers_tenant_and_audience(
    client: TestClient, settings: Settings, acme: Tenant, globex: Tenant
) -> None:
    assert acme.upload("en/refunds.md", ACME_FAQ).status_code == 201
    assert acme.upload("en/exceptions.md", INTERNAL_FAQ).status_code == 201
    assert globex.upload("en/shipping.md", GLOBEX_FAQ).status_code == 201
    acme_question, internal_question = "How long does an Acme refund take?", "When may agents refund after 90 days?"

    assert "Acme refunds" in _sources(acme, acme, acme_question)
    # Globex asks Acme's exact questions: it only ever retrieves its own document.
    assert _sources(globex, globex, acme_question) <= {"Globex shipping"}
    assert _sources(globex, globex, internal_question) <= {"Globex shipping"}
    reply = globex.ask(acme_question)
    assert "Acme" not in reply["answer"] and all(c["title"] == "Globex shipping" for c in reply["citations"])

    # Within Acme, a public key never retrieves the internal document; an internal key does.
    public_reader = Tenant(client, issue_key(settings, role="reader", tenant="acme", audience="public"))
    internal_reader = Tenant(client, issue_key(settings, role="reader", tenant="acme", audience="internal"))
    assert "Acme refund exceptions" not in _sources(public_reader, acme, internal_question)
    assert "team lead" not in public_reader.ask(internal_question)["answer"]
    assert "Acme refund exceptions" in _sources(internal_reader, acme, internal_question)


def test_a_public_editor_key_does_not_see_internal_documents(
    client: TestClient, settings: Settings, acme: Tenant
) -> None:
    assert acme.upload("en/exceptions.md", INTERNAL_FAQ).status_code == 201
    public_editor = Tenant(client, issue_key(settings, role="editor", tenant="acme", audience="public"))
    assert public_editor.request("GET", "/v1/documents").json()["total"] == 0
    hidden = public_editor.request("GET", "/v1/documents/en/exceptions")
    assert_like_unknown(hidden, public_editor.request("GET", "/v1/documents/en/nope"), "en/exceptions", "en/nope")


def test_a_public_editor_key_cannot_publish_or_overwrite_internal_documents(
    client: TestClient, settings: Settings, acme: Tenant
) -> None:
    public_editor = Tenant(client, issue_key(settings, role="editor", tenant="acme", audience="public"))
    refused = public_editor.upload("en/exceptions.md", INTERNAL_FAQ)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "audience_not_allowed")

    assert acme.upload("en/exceptions.md", INTERNAL_FAQ).status_code == 201
    overwrite = public_editor.request(
        "PUT", "/v1/documents/en/exceptions", files=[("file", ("exceptions.md", ACME_FAQ.encode()))]
    )
    assert_like_unknown(
        overwrite,
        public_editor.request("GET", "/v1/documents/en/nope"),
        "en/exceptions",
        "en/nope",
    )
    assert "Agents may refund" in acme.request("GET", "/v1/documents/en/exceptions").text
