"""The ``/v1`` endpoints the console (console/) needs beyond the others; any client may use them.

- ``GET /v1/me``: the calling key's role, tenant, audience and permissions (the console shows each
  role its screens; the API still checks every call).
- ``POST /v1/preview`` (editors): answer a question as a customer with this key's tenant and
  audience would be answered, with every candidate passage the decision saw and why the ones not
  cited lost. Nothing is recorded: a preview is not a customer question (the dashboard stays true).
- ``GET /v1/stats`` (admins): questions per day by status and language, escalation and resolution
  rates, feedback over time, latency p50/p95 (support/usage_stats.py).
- ``GET /v1/gaps`` (admins): the period's unanswered questions clustered, with the nearest document
  (support/gaps.py, the same report as ``answerdesk report gaps``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from access.keys import ROLE_PERMISSIONS, Permission
from api.auth import Caller, DocumentsCaller, authenticate, require
from api.deps import EngineDep, RegistryDep, SettingsDep, SupportDep
from api.errors import ApiError
from api.limits import check_question_length
from api.models import MAX_QUESTION_CHARS, AskRequest, ErrorResponse
from retrieval.evidence import ChunkEvidence
from retrieval.pipeline import AnswerPipeline
from retrieval.records import Answer, Hit
from retrieval.registry import DocumentRegistry
from retrieval.scope import Scope, local_id
from support.desk import SupportDesk
from support.gaps import gap_clusters
from support.usage_stats import STATUSES, Period, StatusCounts, UsageStats, usage_stats

router = APIRouter()
StatsCaller = Annotated[Caller, Depends(require(Permission.STATS))]
AnyCaller = Annotated[Caller, Depends(authenticate)]

MAX_PERIOD_DAYS = 366
DEFAULT_PERIOD_DAYS = 30
PREVIEW_CANDIDATES = 8  # the passages shown under a preview: the decision sees top_k (8 by default)
_ESCALATIONS_READ = 100_000  # a period's escalations are counted in one read

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No API key, or an unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "The key's role may not use this endpoint."},
    422: {"model": ErrorResponse, "description": "The request is invalid; the body names the field."},
    429: {"model": ErrorResponse, "description": "Too many requests for this key; see Retry-After."},
    503: {"model": ErrorResponse, "description": "The engine is starting."},
}


class InvalidPeriodError(ApiError):
    status_code = 422
    code = "invalid_request"


# ---- who am I -------------------------------------------------------------------------------------


class Me(BaseModel):
    key_id: str
    role: str
    tenant: str
    audience: str
    permissions: list[str]


@router.get("/v1/me", response_model=Me, responses=_ERRORS, tags=["keys"])
async def me(caller: AnyCaller) -> Me:
    """The calling key: its role, tenant, audience and what its role may do (never its secret)."""
    return Me(
        key_id=caller.key_id,
        role=caller.role.value,
        tenant=caller.tenant,
        audience=caller.audience,
        permissions=sorted(permission.value for permission in ROLE_PERMISSIONS[caller.role]),
    )


# ---- preview ---------------------------------------------------------------------------------------


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"question": "Kā atgūt naudu?"}]})

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return AskRequest._not_blank(value)  # the same rule as /v1/ask


class Candidate(BaseModel):
    """A passage the decision saw, in the order it saw them."""

    rank: int
    document_id: str
    chunk_id: str
    title: str
    section: str = Field(description="The heading path inside the document.")
    language: str
    text: str = Field(description="The chunk's text exactly as the engine has it.")
    score: float = Field(description="Dense similarity (the figure citations show).")
    lexical_score: float
    fused_score: float
    best_sentence: float | None = Field(description="Its best sentence's score; None when not read by sentence")
    cited: bool
    why: str = Field(description="Why it was cited, or why it lost.")


class PreviewResponse(BaseModel):
    answer: Answer
    candidates: list[Candidate]


@router.post("/v1/preview", response_model=PreviewResponse, responses=_ERRORS, tags=["documents"])
async def preview(
    body: PreviewRequest, caller: DocumentsCaller, engine: EngineDep, app_settings: SettingsDep
) -> PreviewResponse:
    """Try a question as this key's tenant and audience would be answered, with the candidate
    passages and why each lost; nothing is recorded (editors checking their documents)."""
    check_question_length(body.question, app_settings.max_question_chars)
    return await run_in_threadpool(_preview, engine, body.question, body.language, caller.scope)


def _preview(engine: AnswerPipeline, question: str, language: str | None, scope: Scope) -> PreviewResponse:
    query = engine.query(question, language, scope)
    assessment = engine.examine(query)
    answer = engine.compose(query, assessment)
    evidence = {item.hit.chunk.chunk_id: item for item in assessment.evidence}
    cited = {citation.chunk_id for citation in answer.citations}
    hits = assessment.hits[:PREVIEW_CANDIDATES]
    winner = next((hit for hit in hits if local_id(hit.chunk.chunk_id) in cited), None)
    candidates = []
    for rank, hit in enumerate(hits, 1):
        chunk = hit.chunk
        sentences = evidence.get(chunk.chunk_id)
        best = sentences.best.score if sentences is not None and sentences.best is not None else None
        is_cited = local_id(chunk.chunk_id) in cited
        candidates.append(
            Candidate(
                rank=rank,
                document_id=local_id(chunk.document_id),
                chunk_id=local_id(chunk.chunk_id),
                title=chunk.title,
                section=chunk.section,
                language=chunk.language,
                text=chunk.text,
                score=round(hit.score, 4),
                lexical_score=round(hit.lexical_score, 4),
                fused_score=round(hit.fused_score, 4),
                best_sentence=round(best, 4) if best is not None else None,
                cited=is_cited,
                why=_why(answer, hit, rank, is_cited, winner, sentences, evidence, engine.profile.evidence_chunks),
            )
        )
    return PreviewResponse(answer=answer, candidates=candidates)


def _why(
    answer: Answer,
    hit: Hit,
    rank: int,
    is_cited: bool,
    winner: Hit | None,
    sentences: ChunkEvidence | None,
    evidence: dict[str, ChunkEvidence],
    evidence_chunks: int,
) -> str:
    """One plain sentence: why this passage was cited, or why it lost."""
    if is_cited:
        return f"cited: ranked {rank}, and its sentences answer the question best"
    if winner is None:
        first = answer.reasons[0].code if answer.reasons else answer.status.value
        return f"not used: the engine {answer.status.value} ({first}), so no passage was quoted"
    if sentences is None:
        return (
            f"ranked {rank} (fused score {hit.fused_score:.3f} against {winner.fused_score:.3f} for the cited one); "
            f"only the first {evidence_chunks} passages are read sentence by sentence"
        )
    won = evidence.get(winner.chunk.chunk_id)
    mine = sentences.best.score if sentences.best is not None else 0.0
    theirs = won.best.score if won is not None and won.best is not None else 0.0
    return f"ranked {rank}; its best sentence scored {mine:.3f}, below the quoted one's {theirs:.3f}"


# ---- stats and gaps --------------------------------------------------------------------------------


class StatusCountsView(BaseModel):
    answered: int
    abstained: int
    escalated: int
    total: int

    @classmethod
    def of(cls, counts: StatusCounts) -> StatusCountsView:
        return cls(
            answered=counts.answered, abstained=counts.abstained, escalated=counts.escalated, total=counts.total
        )


class DayView(StatusCountsView):
    day: str
    helpful: int = 0
    not_helpful: int = 0


class LanguageView(StatusCountsView):
    language: str


class StatsResponse(BaseModel):
    since: str
    until: str
    totals: StatusCountsView
    days: list[DayView] = Field(description="Every day of the period, oldest first, with its feedback.")
    languages: list[LanguageView] = Field(description="Most asked first.")
    escalations: int = Field(description="Escalations created in the period.")
    escalations_resolved: int
    escalation_rate: float | None = Field(description="Escalated questions / questions (None without questions).")
    resolution_rate: float | None = Field(description="Resolved escalations / escalations (None without any).")
    helpful: int
    not_helpful: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    profiles: dict[str, int] = Field(description="Questions per answer profile version.")


def _period(since: date | None, until: date | None) -> Period:
    until = until or datetime.now(UTC).date()
    since = since or until - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if since > until:
        raise InvalidPeriodError(f"since: {since} is after until {until}")
    if (until - since).days >= MAX_PERIOD_DAYS:
        raise InvalidPeriodError(f"since: the period is over {MAX_PERIOD_DAYS} days")
    return Period(since, until)


Since = Annotated[date | None, Query(description="First day (UTC, YYYY-MM-DD); default 29 days before `until`.")]
Until = Annotated[date | None, Query(description="Last day (UTC, YYYY-MM-DD), included; default today.")]


@router.get("/v1/stats", response_model=StatsResponse, responses=_ERRORS, tags=["stats"])
async def stats(caller: StatsCaller, desk: SupportDep, since: Since = None, until: Until = None) -> StatsResponse:
    """Usage over a period (admins): questions per day by status and per language, escalation and
    resolution rates, helpful / not helpful feedback per day, answer latency p50 / p95."""
    period = _period(since, until)
    figures = await run_in_threadpool(_usage, desk, period, caller)
    feedback = figures.feedback_per_day
    return StatsResponse(
        since=period.since.isoformat(),
        until=period.until.isoformat(),
        totals=StatusCountsView.of(figures.totals),
        days=[
            DayView(
                day=day,
                **StatusCountsView.of(counts).model_dump(),
                helpful=feedback[day].helpful,
                not_helpful=feedback[day].not_helpful,
            )
            for day, counts in figures.per_day.items()
        ],
        languages=[
            LanguageView(language=language, **StatusCountsView.of(counts).model_dump())
            for language, counts in figures.per_language.items()
        ],
        escalations=figures.escalations,
        escalations_resolved=figures.escalations_resolved,
        escalation_rate=_rate(figures.escalation_rate),
        resolution_rate=_rate(figures.resolution_rate),
        helpful=figures.feedback.helpful,
        not_helpful=figures.feedback.not_helpful,
        latency_p50_ms=figures.latency_p50_ms,
        latency_p95_ms=figures.latency_p95_ms,
        profiles=figures.profiles,
    )


def _rate(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _usage(desk: SupportDesk, period: Period, caller: Caller) -> UsageStats:
    records = [
        record
        for record in desk.store.audit(since=period.start, limit=None, tenant=caller.tenant)
        if record.audience in caller.scope.audiences and period.holds(record.created_at)
    ]
    _, escalations = desk.store.escalations(
        limit=_ESCALATIONS_READ, tenant=caller.tenant, audiences=caller.scope.audiences
    )
    answer_ids = [record.answer_id for record in records]
    feedback = [
        row for start in range(0, len(answer_ids), 500) for row in desk.store.feedback(answer_ids[start : start + 500])
    ]
    return usage_stats(period, records, escalations, feedback)


class NearestView(BaseModel):
    document_id: str
    title: str
    section: str
    score: float


class GapView(BaseModel):
    size: int
    languages: dict[str, int]
    examples: list[dict[str, str]] = Field(description="[{language, question}], personal data redacted.")
    nearest: NearestView | None = Field(description="The document to extend, or to write the new one beside.")


class GapsResponse(BaseModel):
    since: str
    until: str
    unanswered: int
    clusters: list[GapView]


@router.get("/v1/gaps", response_model=GapsResponse, responses=_ERRORS, tags=["stats"])
async def gaps(
    caller: StatsCaller,
    desk: SupportDep,
    engine: EngineDep,
    registry: RegistryDep,
    since: Since = None,
    until: Until = None,
) -> GapsResponse:
    """The period's unanswered questions grouped by need, each with the nearest existing document:
    the articles to write (admins)."""
    period = _period(since, until)
    clusters = await run_in_threadpool(_gaps, desk, engine, registry, period, caller)
    return GapsResponse(
        since=period.since.isoformat(),
        until=period.until.isoformat(),
        unanswered=sum(cluster.size for cluster in clusters),
        clusters=clusters,
    )


def _gaps(
    desk: SupportDesk, engine: AnswerPipeline, registry: DocumentRegistry, period: Period, caller: Caller
) -> list[GapView]:
    records = [
        record
        for record in desk.store.audit(
            statuses=[status for status in STATUSES if status != "answered"],
            since=period.start,
            limit=None,
            tenant=caller.tenant,
        )
        if record.audience in caller.scope.audiences and period.holds(record.created_at)
    ]
    clusters = gap_clusters(records, engine.embedder, engine.store, registry, scope=caller.scope)
    return [
        GapView(
            size=cluster.size,
            languages=cluster.languages,
            examples=[{"language": language, "question": question} for language, question in cluster.examples],
            nearest=(
                NearestView(
                    document_id=local_id(cluster.nearest.document_id),
                    title=cluster.nearest.title,
                    section=cluster.nearest.section,
                    score=cluster.nearest.score,
                )
                if cluster.nearest
                else None
            ),
        )
        for cluster in clusters
    ]
