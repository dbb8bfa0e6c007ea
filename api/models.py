"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from retrieval.records import Answer
from retrieval.registry import DocumentRecord
from retrieval.scope import local_id, shown_source
from support.desk import Reply

MAX_QUESTION_CHARS = 2000
CustomerValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None


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
    escalate: StrictBool = Field(default=False, description="Hand the conversation to a person now (true or false).")
    customer: dict[str, CustomerValue] | None = Field(
        default=None,
        max_length=50,
        description="Caller-supplied customer metadata (plan, account id, e-mail…) passed on with an escalation.",
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or only whitespace")
        return value


class AskResponse(Answer):
    conversation_id: str
    escalation_id: str | None = Field(default=None, description="Set when a person has taken over.")
    escalation_offered: bool = Field(
        default=False, description="The engine abstained; send `escalate: true` to hand over to a person."
    )

    @classmethod
    def from_reply(cls, reply: Reply) -> AskResponse:
        """The JSON both ``POST /v1/ask`` and ``answerdesk ask --json`` return."""
        return cls(
            **reply.answer.model_dump(),
            conversation_id=reply.conversation_id,
            escalation_id=reply.escalation_id,
            escalation_offered=reply.escalation_offered,
        )


class DocumentSummary(BaseModel):
    document_id: str
    title: str
    language: str
    kind: str
    source: str
    version: int
    chunks: int
    updated_at: str
    audience: str = "public"
    product: str = ""

    @classmethod
    def fields_from(cls, record: DocumentRecord) -> dict[str, Any]:
        """The summary fields of a registry record (subclasses add their own)."""
        return {
            "document_id": local_id(record.document_id),
            "title": record.title,
            "language": record.language,
            "kind": record.kind,
            "source": shown_source(record.document_id, record.source),
            "version": record.version,
            "chunks": len(record.chunk_ids),
            "updated_at": record.updated_at,
            "audience": record.extra.get("audience", "public"),
            "product": record.extra.get("product", ""),
        }


class DocumentList(BaseModel):
    total: int
    documents: list[DocumentSummary]


DOCUMENT_FORMATS = {"markdown": ".md", "text": ".txt", "html": ".html", "csv": ".csv", "json": ".json", "yaml": ".yaml"}


class DocumentText(BaseModel):
    """A document sent as JSON text instead of a file upload."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "document_id": "en/faq-invoices",
                    "format": "markdown",
                    "content": "---\ntitle: Invoices FAQ\ntype: faq\n---\n## Can I get a PDF invoice?\nYes.",
                }
            ]
        },
    )

    document_id: str = Field(min_length=1, description="Id of the new document, e.g. en/faq-invoices.")
    format: Literal["markdown", "text", "html", "csv", "json", "yaml"] = "markdown"
    content: str = Field(min_length=1, description="The document's text in that format.")


class DocumentReplacement(BaseModel):
    """A new version of a document, sent as JSON text (its id comes from the URL)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["markdown", "text", "html", "csv", "json", "yaml"] = "markdown"
    content: str = Field(min_length=1)


class ChunkView(BaseModel):
    chunk_id: str
    position: int
    section: str
    kind: str
    text: str


class DocumentDetail(DocumentSummary):
    metadata: dict[str, str] = Field(default_factory=dict, description="Front matter: audience, product, tags.")
    chunk_details: list[ChunkView] = Field(default_factory=list, description="The live chunks, in reading order.")


class FileOutcome(BaseModel):
    """What happened to one uploaded file."""

    file: str
    outcome: Literal["added", "updated", "unchanged", "removed", "failed"]
    document_id: str
    version: int = 0
    chunks: int = 0
    code: str = Field(default="", description="Stable error code when the file failed.")
    error: str = ""
    note: str = ""


class JobView(BaseModel):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: str
    finished_at: str
    files_total: int
    files_done: int
    results: list[FileOutcome]


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody
