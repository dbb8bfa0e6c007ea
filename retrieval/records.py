"""The small records that flow through the pipeline: chunks, hits, citations and answers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from retrieval.scope import tenant_of

SECTION_SEPARATOR = " > "


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_chunk_id(document_id: str, text: str, occurrence: int = 0, version: int = 1) -> str:
    """A chunk id derived from its document, version and content, so re-ingesting gives the same ids.

    ``occurrence`` tells apart identical passages repeated inside one document. The version keeps
    the chunks of two versions of a document apart, so a new version can be written beside the
    live one and switched to atomically (retrieval/publish.py).
    """
    digest = content_hash(f"{document_id}\x00{text}\x00{occurrence}")[:16]
    return f"{document_id}#v{version}-{digest}"


def compose_embedding_text(title: str, section_path: tuple[str, ...], text: str, *, is_faq: bool) -> str:
    """What the embedder sees: the heading context helps a short passage match its topic.

    A FAQ chunk's text already starts with its question (the last path element), so it is not repeated.
    """
    context_path = section_path[:-1] if is_faq else section_path
    context = SECTION_SEPARATOR.join(part for part in (title, *context_path) if part)
    return f"{context}\n{text}" if context else text


@dataclass(frozen=True)
class Chunk:
    """A passage of one document, the unit that is embedded, retrieved and cited."""

    chunk_id: str
    document_id: str
    text: str
    title: str
    section_path: tuple[str, ...] = ()
    kind: str = "section"  # "faq" (a question with its answer) or "section" (policy/guide text)
    language: str = "und"
    source: str = ""
    position: int = 0
    document_hash: str = ""
    updated_at: str = ""
    version: int = 0  # the document version this chunk belongs to; 0 = unknown (never live)
    embedding_key: str = ""  # equal keys mean equal embeddings (same text, same model), so they are reused
    audience: str = "public"  # "public" or "internal" (retrieval/scope.py)
    product: str = ""
    tags: frozenset[str] = frozenset()
    # Links the language versions of one article when their ids do not (retrieval/translations.py).
    translation_key: str = ""

    @property
    def section(self) -> str:
        return SECTION_SEPARATOR.join(self.section_path)

    @property
    def tenant(self) -> str:
        """The owning tenant, read from the qualified document id (retrieval/scope.py)."""
        return tenant_of(self.document_id)

    @property
    def embedding_text(self) -> str:
        return compose_embedding_text(self.title, self.section_path, self.text, is_faq=self.kind == "faq")


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its similarity to the question.

    ``score`` is the dense cosine similarity (after the cross-lingual correction), the figure shown
    in citations; ``lexical_score`` is the BM25 score (0 when the lexical leg did not return the
    chunk) and ``fused_score`` the rank-fusion score hits are ordered by (retrieval/fusion.py).
    """

    chunk: Chunk
    score: float
    lexical_score: float = 0.0
    fused_score: float = 0.0


@dataclass(frozen=True)
class Document:
    """A parsed source document, ready to be chunked."""

    document_id: str
    title: str
    source: str
    kind: str  # "faq" or "policy"/"guide"/"text"
    language: str
    sections: list[Section] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    # Things the parser changed that the editor should know about (e.g. scripts removed); not hashed.
    notes: tuple[str, ...] = ()
    # The front matter's scalar fields, for settings that read one (a translation key); not hashed.
    front_matter: dict[str, str] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        # Metadata decide who may see a chunk (audience) and how it is filtered, so they count as content.
        metadata = [f"{key}={value}" for key, value in sorted(self.metadata.items())]
        parts = [self.title, self.kind, self.language, *metadata]
        for section in self.sections:
            parts.append(SECTION_SEPARATOR.join(section.path))
            parts.extend(section.blocks)
        return content_hash("\x1e".join(parts))


@dataclass(frozen=True)
class Section:
    """Text under one heading path; blocks are paragraphs, list items or whole tables."""

    path: tuple[str, ...]
    blocks: tuple[str, ...]
    is_faq: bool = False


def live_key(hit: Hit) -> tuple[str, int]:
    """The (document id, version) of a hit, for ``DocumentRegistry.keep_live``."""
    return hit.chunk.document_id, hit.chunk.version


class Status(StrEnum):
    ANSWERED = "answered"
    ABSTAINED = "abstained"
    ESCALATED = "escalated"


@dataclass(frozen=True)
class Reason:
    """Why the engine or the desk decided as it did: a stable ``code`` (what triage, the gap report
    and eval match on) and a human-readable ``detail``. Shown as ``"code: detail"``.

    >>> str(Reason("low_confidence", "answerability 0.31"))
    'low_confidence: answerability 0.31'
    >>> Reason.parse("sensitive_topic: chargeback")
    Reason(code='sensitive_topic', detail='chargeback')
    """

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"

    @classmethod
    def parse(cls, text: str) -> Reason:
        """The reason a stored ``"code: detail"`` line was written from (audit rows keep the text)."""
        code, _, detail = text.partition(":")
        return cls(code.strip(), detail.strip())


def _reason_in(value: Any) -> Any:
    return Reason.parse(value) if isinstance(value, str) else value


# Typed in Python, the "code: detail" string in JSON (the API's and the webhooks' documented shape).
ReasonField = Annotated[
    Reason,
    BeforeValidator(_reason_in),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]


class Citation(BaseModel):
    """Where a piece of the answer comes from; ``quote`` is a verbatim substring of the chunk."""

    document_id: str
    title: str
    section: str
    chunk_id: str
    quote: str
    score: float
    source: str
    language: str
    version: int = Field(default=0, description="Version of the cited document when it was retrieved.")
    updated_at: str = Field(default="", description="When that version was ingested (UTC, ISO 8601).")


class Answer(BaseModel):
    """The engine's reply. Abstaining is an ordinary outcome, not an exception."""

    answer_id: str
    status: Status
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    confidence: float = Field(ge=0.0, le=1.0)
    reasons: list[ReasonField] = Field(default_factory=list)
    language: str
    disclosure: str
