"""Support routes: the agent API for escalations, answer feedback, conversations, FAQ candidates.

The router's lifespan builds the :class:`~support.desk.SupportDesk` (and starts the webhook
delivery worker) after the app's own lifespan has built the engine; ``/v1/ask`` in api/app.py calls
:func:`answer_turn`.

Escalations are shown redacted unless ``view=full`` is asked for (agents who must contact the
customer); webhooks always carry the redacted copy.

Every route reads only the API key's tenant's data of the audiences its key may see (api/auth.py,
the same rule as retrieval, retrieval/scope.py): another tenant's escalation, answer or
conversation id, and one written for an internal key when the caller's key is public, gets the same
404 as an id that does not exist. A conversation is continued only by the key that started it.

Erasure (docs/privacy.md): agents delete a conversation (``DELETE /v1/conversations/{id}``), admins
everything about a customer id (``DELETE /v1/customers/{id}``), within their tenant and audience.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query
from fastapi.concurrency import run_in_threadpool

from api.auth import ConversationsCaller, ErasureCaller, EscalationsCaller, FaqCaller, FeedbackCaller
from api.deps import SupportDep
from api.errors import NotFoundError
from api.models import AskRequest, AskResponse, ErrorResponse
from api.support_models import (
    ConversationView,
    Erased,
    EscalationDetail,
    EscalationList,
    EscalationSummary,
    FaqCandidate,
    FaqCandidateList,
    FeedbackRequest,
    FeedbackResponse,
    Resolution,
    ResolveRequest,
    TurnView,
)
from common.redact import redact_metadata, redact_text
from retrieval.config import Settings
from retrieval.pipeline import AnswerPipeline
from retrieval.scope import Scope
from retrieval.timings import StageTimings
from support.desk import SupportDesk, build_desk
from support.handoff import EscalationPayload
from support.store import (
    Erasure,
    Escalation,
)

logger = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings  # create_app sets it: one configuration per app
    engine: AnswerPipeline | None = getattr(app.state, "engine", None)
    # Triage reads the question vectors the engine's embedder computes anyway (support/desk.py).
    embedder = engine.embedder if engine is not None else None
    desk = await run_in_threadpool(build_desk, settings, embedder=embedder)
    app.state.support = desk
    yield
    await run_in_threadpool(desk.close)


router = APIRouter(tags=["support"], lifespan=_lifespan)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No API key, or an unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "The key's role may not use this endpoint."},
    429: {"model": ErrorResponse, "description": "Too many requests for this key; see Retry-After."},
    404: {"model": ErrorResponse, "description": "No such escalation, answer or conversation."},
    409: {"model": ErrorResponse, "description": "The escalation is resolved already."},
    422: {"model": ErrorResponse, "description": "The request is invalid; the body names the field."},
}
EscalationId = Annotated[str, Path(max_length=64, description="The escalation's id.")]
View = Annotated[Literal["redacted", "full"], Query(description="`full` shows personal data (agents only).")]




async def answer_turn(
    request: AskRequest, engine: AnswerPipeline, desk: SupportDesk, scope: Scope, owner: str | None = None,
    timings: StageTimings | None = None,
) -> AskResponse:
    """One ``/v1/ask`` turn through the desk, within the caller's ``scope``, in a conversation of
    key ``owner``: context, answer, triage, handoff, audit; the engine's stage timings go to ``timings``."""
    reply = await run_in_threadpool(
        desk.ask,
        engine,
        request.question,
        conversation_id=request.conversation_id,
        language=request.language,
        escalate=request.escalate,
        customer=request.customer,
        scope=scope,
        owner=owner,
        timings=timings,
    )
    return AskResponse.from_reply(reply)


@router.get("/v1/escalations", response_model=EscalationList, responses=_ERRORS)
async def list_escalations(
    caller: EscalationsCaller,
    desk: SupportDep,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    reason: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$", description="A reason code.")] = None,
    language: Annotated[str | None, Query(pattern=r"^[a-z]{2,3}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> EscalationList:
    """Escalations, newest first, filtered by status, reason code and language (questions redacted)."""
    total, rows = await run_in_threadpool(
        desk.store.escalations,
        status=status,
        reason=reason,
        language=language,
        limit=limit,
        offset=offset,
        tenant=caller.tenant,
        audiences=caller.scope.audiences,
    )
    return EscalationList(total=total, escalations=[_summary(row) for row in rows])


@router.get("/v1/escalations/{escalation_id}", response_model=EscalationDetail, responses=_ERRORS)
async def get_escalation(
    escalation_id: EscalationId, caller: EscalationsCaller, desk: SupportDep, view: View = "redacted"
) -> EscalationDetail:
    """One escalation with its whole handoff record: transcript, attempted answer, sources, metadata."""
    row = await run_in_threadpool(_find, desk, escalation_id, caller.scope)
    return _detail(row, view)


@router.post("/v1/escalations/{escalation_id}/resolve", response_model=EscalationDetail, responses=_ERRORS)
async def resolve_escalation(
    escalation_id: EscalationId, body: ResolveRequest, caller: EscalationsCaller, desk: SupportDep
) -> EscalationDetail:
    """Record the agent's answer; with ``offer_as_faq`` it becomes a FAQ candidate for editors."""
    row = await run_in_threadpool(
        desk.resolve,
        escalation_id,
        body.answer,
        agent=body.agent,
        offer_as_faq=body.offer_as_faq,
        document_ids=body.document_ids,
        kb_gap=body.kb_gap,
        tenant=caller.tenant,
        audiences=caller.scope.audiences,
    )
    return _detail(row, "redacted")


@router.get("/v1/faq-candidates", response_model=FaqCandidateList, responses=_ERRORS)
async def faq_candidates(
    caller: FaqCaller,
    desk: SupportDep,
    language: Annotated[str | None, Query(pattern=r"^[a-z]{2,3}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FaqCandidateList:
    """Agents' answers offered as FAQ entries, with a Markdown FAQ draft editors can review and ingest."""
    rows = await run_in_threadpool(desk.store.faq_candidates, limit, caller.tenant, caller.scope.audiences)
    candidates = [_candidate(row) for row in rows if language is None or row.language == language]
    return FaqCandidateList(candidates=candidates, markdown=faq_markdown(candidates, language or "und"))


@router.post("/v1/answers/{answer_id}/feedback", status_code=201, response_model=FeedbackResponse, responses=_ERRORS)
async def answer_feedback(
    answer_id: Annotated[str, Path(max_length=64)], body: FeedbackRequest, caller: FeedbackCaller, desk: SupportDep
) -> FeedbackResponse:
    """Was this answer helpful? Feedback feeds `answerdesk eval import-audit` and the gap report."""
    feedback = await run_in_threadpool(
        desk.store.add_feedback, answer_id, body.helpful, body.comment, caller.tenant, caller.scope.audiences
    )
    return FeedbackResponse(
        feedback_id=feedback.feedback_id,
        answer_id=feedback.answer_id,
        helpful=feedback.helpful,
        comment=feedback.comment,
        created_at=feedback.created_at,
    )


@router.get("/v1/conversations/{conversation_id}", response_model=ConversationView, responses=_ERRORS)
async def get_conversation(
    conversation_id: Annotated[str, Path(max_length=128)],
    caller: ConversationsCaller,
    desk: SupportDep,
    view: View = "redacted",
) -> ConversationView:
    """A conversation's turns, oldest first."""
    conversation = await run_in_threadpool(desk.store.conversation, conversation_id, caller.tenant)
    if conversation is None or not caller.scope.covers(conversation.tenant, conversation.audience):
        raise _no_conversation(conversation_id)
    turns = await run_in_threadpool(desk.store.turns, conversation_id, caller.tenant)
    if not turns:
        raise _no_conversation(conversation_id)
    customer = conversation.customer
    full = view == "full"
    return ConversationView(
        conversation_id=conversation_id,
        customer=customer if full else redact_metadata(customer),
        turns=[
            TurnView(
                position=turn.position,
                question=turn.question if full else redact_text(turn.question),
                answer_id=turn.answer_id,
                status=turn.status,
                answer=turn.answer,
                language=turn.language,
                confidence=turn.confidence,
                follow_up=turn.follow_up,
                escalation_id=turn.escalation_id,
                created_at=turn.created_at,
            )
            for turn in turns
        ],
    )


@router.delete("/v1/conversations/{conversation_id}", response_model=Erased, responses=_ERRORS)
async def delete_conversation(
    conversation_id: Annotated[str, Path(max_length=128)], caller: ConversationsCaller, desk: SupportDep
) -> Erased:
    """Erase a conversation and everything written about it: turns, audit rows, feedback, escalations
    (with FAQ candidates) and webhook messages not yet delivered."""
    erased = await run_in_threadpool(
        desk.store.erase, tenant=caller.tenant, conversation_id=conversation_id, audiences=caller.scope.audiences
    )
    if not erased.conversations:
        raise _no_conversation(conversation_id)
    logger.info("erased conversation on request of key %s", caller.key_id)
    return _erased(erased)


@router.delete("/v1/customers/{customer_id}", response_model=Erased, responses=_ERRORS)
async def erase_customer(
    customer_id: Annotated[str, Path(min_length=1, max_length=200)], caller: ErasureCaller, desk: SupportDep
) -> Erased:
    """Erase every conversation whose customer metadata names this ``customer_id`` (admins only), with
    everything written about them; asking again erases nothing more (all counts 0)."""
    erased = await run_in_threadpool(
        desk.store.erase, tenant=caller.tenant, customer_id=customer_id, audiences=caller.scope.audiences
    )
    logger.info("erased %d conversation(s) of a customer on request of key %s", erased.conversations, caller.key_id)
    return _erased(erased)


def faq_markdown(candidates: list[FaqCandidate], locale: str) -> str:
    """The candidates as a FAQ document in the knowledge base's Markdown format."""
    lines = ["---", "title: FAQ candidates from resolved escalations", f"locale: {locale}", "type: faq", "---", ""]
    for candidate in candidates:
        question = " ".join(candidate.question.split())
        lines += [f"## {question}", "", candidate.answer.strip(), ""]
    return "\n".join(lines)


def _no_conversation(conversation_id: str) -> NotFoundError:
    return NotFoundError(f"no conversation {conversation_id!r}", "conversation_not_found")


def _erased(erased: Erasure) -> Erased:
    return Erased.model_validate(erased, from_attributes=True)


def _find(desk: SupportDesk, escalation_id: str, scope: Scope) -> Escalation:
    return desk.store.escalation(escalation_id, scope.tenant, scope.audiences)


def _summary(row: Escalation) -> EscalationSummary:
    return EscalationSummary(
        escalation_id=row.escalation_id,
        conversation_id=row.conversation_id,
        status="resolved" if row.status == "resolved" else "open",
        reason_codes=row.reason_codes,
        language=row.language,
        created_at=row.created_at,
        question=str(row.redacted.get("question", "")),
        confidence=float(row.redacted.get("confidence", 0.0)),
        resolved_at=row.resolved_at,
    )


def _detail(row: Escalation, view: Literal["redacted", "full"]) -> EscalationDetail:
    record = EscalationPayload.model_validate(row.record if view == "full" else row.redacted)
    resolution = Resolution.model_validate(row.resolution) if row.resolution else None
    if resolution is not None and view != "full":
        resolution.answer = redact_text(resolution.answer)
    return EscalationDetail(**_summary(row).model_dump(), view=view, record=record, resolution=resolution)


def _candidate(row: Escalation) -> FaqCandidate:
    resolution = row.resolution or {}
    return FaqCandidate(
        escalation_id=row.escalation_id,
        language=row.language,
        question=str(row.redacted.get("question", "")),
        # Meant for the knowledge base, where no customer's contact details belong.
        answer=redact_text(str(resolution.get("answer", ""))),
        agent=resolution.get("agent"),
        resolved_at=row.resolved_at or "",
    )
