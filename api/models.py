"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retrieval.types import Answer

MAX_QUESTION_CHARS = 2000


class AskRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"question": "How do I get a refund for my annual plan?"}]}
    )

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="The customer's question.")
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Groups turns of one conversation; created when absent.",
    )
    language: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
        description="ISO 639-1 code of the question's language; detected when absent.",
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or only whitespace")
        return value


class AskResponse(Answer):
    conversation_id: str


class DocumentSummary(BaseModel):
    document_id: str
    title: str
    language: str
    kind: str
    source: str
    version: int
    chunks: int
    updated_at: str


class DocumentList(BaseModel):
    total: int
    documents: list[DocumentSummary]


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody
