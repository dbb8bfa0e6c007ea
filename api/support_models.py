"""Request and response bodies of the support endpoints: escalations, feedback, conversations.

Kept beside ``api/models.py`` (the ask and document bodies) so the two can change independently.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from support.handoff import EscalationPayload


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


class Resolution(BaseModel):
    answer: str
    agent: str | None = None
    offer_as_faq: bool = False
    document_ids: list[str] = Field(default_factory=list)
    kb_gap: bool = False
    resolved_at: str


class EscalationSummary(BaseModel):
    escalation_id: str
    conversation_id: str
    status: Literal["open", "resolved"]
    reason_codes: list[str]
    language: str
    created_at: str
    question: str = Field(description="The customer's last question (redacted).")
    confidence: float
    resolved_at: str | None = None


class EscalationList(BaseModel):
    total: int
    escalations: list[EscalationSummary]


class EscalationDetail(EscalationSummary):
    view: Literal["redacted", "full"]
    record: EscalationPayload
    resolution: Resolution | None = None


class ResolveRequest(BaseModel):
    """The agent's answer to an escalation."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "answer": "I have refunded the duplicate charge; it reaches your card in 5-10 business days.",
                    "agent": "maria",
                    "offer_as_faq": True,
                    "document_ids": ["en/faq-refunds"],
                }
            ]
        },
    )

    answer: str = Field(min_length=1, max_length=10_000)
    agent: str | None = Field(default=None, max_length=200, description="Who answered.")
    offer_as_faq: StrictBool = Field(default=False, description="Offer this answer to editors as a FAQ candidate.")
    document_ids: list[str] = Field(
        default_factory=list, max_length=20, description="Documents that do answer the question, if any."
    )
    kb_gap: StrictBool = Field(default=False, description="The knowledge base does not cover this question.")

    _answer_not_blank = field_validator("answer")(_not_blank)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"helpful": False, "comment": "Outdated"}]}
    )

    helpful: StrictBool
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackResponse(BaseModel):
    feedback_id: int
    answer_id: str
    helpful: bool
    comment: str | None
    created_at: str


class FaqCandidate(BaseModel):
    """A resolved escalation an agent offered as a FAQ entry: the question and the agent's answer."""

    escalation_id: str
    language: str
    question: str = Field(description="The customer's question (redacted).")
    answer: str
    agent: str | None
    resolved_at: str


class FaqCandidateList(BaseModel):
    candidates: list[FaqCandidate]
    markdown: str = Field(description="The candidates as a FAQ document in the knowledge-base format, for review.")


class TurnView(BaseModel):
    position: int
    question: str
    answer_id: str
    status: str
    answer: str
    language: str
    confidence: float
    follow_up: bool
    escalation_id: str | None
    created_at: str


class Erased(BaseModel):
    """Rows deleted by an erasure, per table."""

    conversations: int
    turns: int
    audit: int
    feedback: int
    escalations: int
    outbox: int


class ConversationView(BaseModel):
    conversation_id: str
    customer: dict[str, Any]
    turns: list[TurnView]
