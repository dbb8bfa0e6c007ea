"""The handoff to a person: the escalation record, its redacted copy (the webhook body) and what the
customer is told, in their language.

The record holds everything an agent needs so the customer never repeats themselves: the transcript,
the detected language, the last question, the attempted answer with its candidate sources and
scores, the confidence, the reason codes and the caller's customer metadata. Only the redacted copy
leaves the system: customer-written text and metadata go through :mod:`common.redact`; the
assistant's text is quoted from the knowledge base and is kept as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.redact import redact_metadata, redact_text
from retrieval.messages import localized
from retrieval.records import Answer, Citation, Hit, Reason, ReasonField, Status
from retrieval.scope import local_id

SCHEMA_VERSION = 1
CREATED = "escalation.created"
RESOLVED = "escalation.resolved"

HANDOFF = {
    "en": "I have passed this conversation to a member of our support team. They can see everything you "
    "have written here, so you will not need to repeat anything.",
    "ru": "Я передал этот разговор сотруднику службы поддержки. Он видит всё, что вы здесь написали, "
    "поэтому вам не придётся ничего повторять.",
    "lv": "Es nodevu šo sarunu mūsu atbalsta komandas darbiniekam. Viņš redz visu, ko šeit uzrakstījāt, "
    "tāpēc jums nekas nebūs jāatkārto.",
    "zh": "我已将此对话转交给我们的支持团队成员。他们可以看到您在这里写的所有内容，您无需重复任何信息。",
}
MEANWHILE = {
    "en": "Meanwhile, this is what our help centre says:",
    "ru": "А пока вот что говорится в нашем справочном центре:",
    "lv": "Pa to laiku, lūk, ko saka mūsu palīdzības centrs:",
    "zh": "在此期间，以下是我们帮助中心的相关内容：",
}
OFFER = {
    "en": "If you would like, I can pass this conversation to a person: just ask.",
    "ru": "Если хотите, я могу передать этот разговор сотруднику — просто попросите.",
    "lv": "Ja vēlaties, varu nodot šo sarunu darbiniekam — vienkārši palūdziet.",
    "zh": "如果您愿意，我可以将此对话转交给人工客服，只需告诉我即可。",
}


class SourceCandidate(BaseModel):
    """A retrieved passage the engine considered, with its similarity score."""

    chunk_id: str
    document_id: str
    title: str
    section: str
    language: str
    score: float


class AttemptedAnswer(BaseModel):
    """What the engine would have replied on its own."""

    answer_id: str
    status: Literal["answered", "abstained"]
    answer: str
    confidence: float
    reasons: list[ReasonField]
    citations: list[Citation]


class TranscriptEntry(BaseModel):
    """One message of the conversation, oldest first."""

    role: Literal["customer", "assistant"]
    text: str
    at: str = Field(description="UTC, ISO 8601.")
    answer_id: str | None = Field(default=None, description="The assistant answer's id (assistant turns).")
    status: str | None = Field(default=None, description="answered, abstained or escalated (assistant turns).")


class EscalationPayload(BaseModel):
    """The escalation as an agent receives it (webhook body ``escalation.created``).

    ``redacted`` says whether personal data was masked; webhooks always get ``true``.
    """

    model_config = ConfigDict(json_schema_extra={"title": "AnswerDesk escalation.created"})

    event: Literal["escalation.created"] = "escalation.created"
    schema_version: Literal[1] = 1
    idempotency_key: str = Field(description="Same on every retry of this event; deduplicate on it.")
    escalation_id: str
    conversation_id: str
    created_at: str = Field(description="UTC, ISO 8601.")
    language: str = Field(description="ISO 639-1 code of the last question's language.")
    reason_codes: list[str] = Field(description="Stable codes, e.g. customer_requested_human, sensitive_topic.")
    reasons: list[ReasonField] = Field(description="Codes with details, e.g. 'sensitive_topic: chargeback'.")
    question: str = Field(description="The customer's last question.")
    confidence: float = Field(ge=0, le=1, description="The engine's confidence in its attempted answer.")
    attempted_answer: AttemptedAnswer
    candidates: list[SourceCandidate] = Field(description="Passages retrieved for the question, best first.")
    transcript: list[TranscriptEntry]
    customer: dict[str, Any] = Field(description="Caller-supplied customer metadata (redacted in webhooks).")
    redacted: bool
    request_id: str | None = Field(
        default=None,
        description="The X-Request-ID of the /v1/ask that opened the escalation: every log line of "
        "that request carries it, on whichever replica served it.",
    )


class ResolutionPayload(BaseModel):
    """Webhook body ``escalation.resolved``: the agent's answer to an escalation."""

    event: Literal["escalation.resolved"] = "escalation.resolved"
    schema_version: Literal[1] = 1
    idempotency_key: str
    escalation_id: str
    conversation_id: str
    resolved_at: str
    answer: str = Field(description="The agent's answer (redacted).")
    offer_as_faq: bool
    redacted: bool = True


def idempotency_key(event: str, escalation_id: str) -> str:
    """Stable for one event of one escalation, so every retry carries the same key."""
    return f"{event}:{escalation_id}"


def candidates_from(hits: Sequence[Hit], limit: int = 5) -> list[SourceCandidate]:
    return [
        SourceCandidate(
            chunk_id=local_id(hit.chunk.chunk_id),
            document_id=local_id(hit.chunk.document_id),
            title=hit.chunk.title,
            section=hit.chunk.section,
            language=hit.chunk.language,
            score=round(hit.score, 4),
        )
        for hit in hits[:limit]
    ]


def attempted_from(answer: Answer) -> AttemptedAnswer:
    status: Literal["answered", "abstained"] = "answered" if answer.status == Status.ANSWERED else "abstained"
    return AttemptedAnswer(
        answer_id=answer.answer_id,
        status=status,
        answer=answer.answer,
        confidence=answer.confidence,
        reasons=list(answer.reasons),
        citations=list(answer.citations),
    )


def redacted_copy(payload: EscalationPayload) -> EscalationPayload:
    """The copy that may leave the system: customer text and metadata masked."""
    transcript = [
        entry.model_copy(update={"text": redact_text(entry.text)}) if entry.role == "customer" else entry
        for entry in payload.transcript
    ]
    return payload.model_copy(
        update={
            "question": redact_text(payload.question),
            "transcript": transcript,
            "customer": redact_metadata(payload.customer),
            "redacted": True,
        }
    )


def escalated_answer(attempt: Answer, reasons: Sequence[Reason]) -> Answer:
    """The customer's reply when a person takes over: same shape, status ``escalated``.

    A confident attempt is kept below the handoff note (with its citations), so the customer is
    helped while waiting; an abstention is replaced by the note alone.
    """
    note = localized(HANDOFF, attempt.language)
    if attempt.status == Status.ANSWERED:
        text = f"{note}\n\n{localized(MEANWHILE, attempt.language)}\n{attempt.answer}"
        citations = list(attempt.citations)
    else:
        text, citations = note, []
    return attempt.model_copy(
        update={
            "status": Status.ESCALATED,
            "answer": text,
            "citations": citations,
            "reasons": [*reasons, *attempt.reasons],
        }
    )


def offer_escalation(attempt: Answer) -> Answer:
    """An abstention that offers a person (the caller escalates with ``"escalate": true``)."""
    return attempt.model_copy(update={"answer": f"{attempt.answer} {localized(OFFER, attempt.language)}"})


def payload_schemas() -> dict[str, Any]:
    """JSON schemas of both webhook bodies (docs/webhooks.md shows them)."""
    return {
        CREATED: EscalationPayload.model_json_schema(),
        RESOLVED: ResolutionPayload.model_json_schema(),
    }
