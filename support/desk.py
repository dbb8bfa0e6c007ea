"""The support desk: one customer turn → follow-up context → answer → triage → (handoff) → stored.

``SupportDesk.ask`` wraps the answer engine with everything a conversation needs: it reads the
question with the conversation's earlier turns, escalates when triage says so (writing the
escalation and its webhook messages in the same transaction as the turn and its audit row), and
wakes the delivery worker.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from common.errors import AnswerDeskError
from common.logs import request_id_var
from common.redact import redact_text
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import Embedder
from retrieval.pipeline import AnswerPipeline
from retrieval.query import Context, Query
from retrieval.records import Answer, Hit, Reason, Status
from retrieval.scope import Scope
from retrieval.timings import StageTimings
from support.conversations import FollowUp, PriorTurn, contextualize
from support.handoff import (
    CREATED,
    RESOLVED,
    EscalationPayload,
    ResolutionPayload,
    TranscriptEntry,
    attempted_from,
    candidates_from,
    escalated_answer,
    idempotency_key,
    offer_escalation,
    redacted_copy,
)
from support.message_classifier import default_heads
from support.outbox import DeliveryWorker, OutboxDispatcher
from support.store import (
    OPEN,
    AuditRecord,
    ConversationNotFoundError,
    Escalation,
    Exchange,
    NewMessage,
    SupportStore,
    Turn,
    dumps,
    may_continue,
    utc_now,
)
from support.triage import ALREADY, Triage, Trigger, build_triage, decide

logger = logging.getLogger(__name__)

# A possible follow-up keeps the blended reading unless it matches clearly worse than the question alone.
POSSIBLE_FOLLOW_UP_MARGIN = 0.005


@dataclass(frozen=True)
class Reply:
    """What ``/v1/ask`` returns besides the answer."""

    answer: Answer
    conversation_id: str
    escalation_id: str | None = None
    escalation_offered: bool = False


@dataclass(frozen=True)
class Retrieval:
    """The hits an answer is composed from, and the query they were retrieved for."""

    hits: list[Hit]
    query: Query

    @property
    def follow_up(self) -> bool:
        return self.query.context is not None


@dataclass
class SupportDesk:
    """Conversations, triage and handoff around an :class:`AnswerPipeline`."""

    store: SupportStore
    triage: Triage
    webhook_urls: Sequence[str] = ()
    abstention_limit: int = 2
    worker: DeliveryWorker | None = None
    clock: Callable[[], float] = time.time
    # Off by default: questions are stored (once, in the turn) with e-mails, cards, IBANs and phone
    # numbers masked; the raw text lives only in memory while it is answered.
    store_raw_questions: bool = False
    _profile_versions: dict[int, str] = field(default_factory=dict)

    def ask(
        self,
        pipeline: AnswerPipeline,
        question: str,
        *,
        conversation_id: str | None = None,
        language: str | None = None,
        escalate: bool = False,
        customer: Mapping[str, Any] | None = None,
        scope: Scope | None = None,
        owner: str | None = None,
        timings: StageTimings | None = None,
    ) -> Reply:
        """Answer one customer turn, escalating when triage (or the caller) says so.

        ``scope`` (the caller's tenant and audiences) limits retrieval, and the conversation is the
        scope's tenant's: the same id in another tenant is another conversation. A conversation
        belongs to the key (``owner``) that started it, and to its customer id when it has one;
        anyone else continuing it gets :class:`ConversationNotFoundError`. The pipeline's stage
        timings go to ``timings`` (retrieval/timings.py) when given.
        """
        started = time.perf_counter()
        scope = scope or Scope()
        tenant = scope.tenant
        question = question.strip()
        conversation_id = conversation_id or uuid.uuid4().hex
        known = self.store.conversation(conversation_id, tenant)
        if known is not None and not may_continue(known, owner, dict(customer or {})):
            raise ConversationNotFoundError(f"no conversation {conversation_id!r}")
        history = self.store.turns(conversation_id, tenant)

        # Embedded once: for retrieval, sentence evidence, and the triage and follow-up classifier
        # (when it reads this embedder's vectors; else triage embeds with its own).
        query = pipeline.query(question, language, scope, timings)
        language = query.language
        reads = self.triage.reads(pipeline.embedder)
        probabilities = self.triage.read(question, query.vector if reads else None)
        classified = self.triage.reader.follow_up(probabilities) if self.triage.reader else None
        retrieval = self._retrieve(pipeline, query, history, classified)
        attempt = pipeline.answer(retrieval.query, retrieval.hits)
        if retrieval.follow_up:
            attempt.reasons.append(Reason("follow_up", "read together with the conversation's earlier question"))

        triggers = decide(
            self.triage.detect(question, probabilities=probabilities),
            abstained=attempt.status == Status.ABSTAINED,
            abstentions_in_a_row=_abstentions_in_a_row(history),
            abstention_limit=self.abstention_limit,
            forced=escalate,
        )
        escalation: Escalation | None = None
        messages: list[NewMessage] = []
        escalation_id: str | None = None
        offered = False
        answer = attempt
        if triggers:
            existing = self.store.open_escalation(conversation_id, tenant)
            if existing:
                escalation_id = existing
                triggers = [Trigger(ALREADY, "a person is already handling this conversation"), *triggers]
            else:
                escalation_id = uuid.uuid4().hex
            answer = escalated_answer(attempt, [trigger.reason for trigger in triggers])
            if not existing:
                escalation, messages = self._escalation(
                    escalation_id,
                    conversation_id,
                    question,
                    attempt,
                    retrieval.hits,
                    triggers,
                    history,
                    {**self.store.customer(conversation_id, tenant), **dict(customer or {})},
                    scope,
                )
        elif attempt.status == Status.ABSTAINED:
            answer, offered = offer_escalation(attempt), True

        stamp = utc_now()
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        turn = Turn(
            position=len(history),
            question=self._kept(question),
            query=self._kept(retrieval.query.reading),
            follow_up=retrieval.follow_up,
            answer_id=answer.answer_id,
            status=answer.status.value,
            answer=answer.answer,
            language=language,
            confidence=answer.confidence,
            escalation_id=escalation_id,
            created_at=stamp,
        )
        audit = AuditRecord(
            answer_id=answer.answer_id,
            conversation_id=conversation_id,
            created_at=stamp,
            question=turn.question,
            query=turn.query,
            language=language,
            status=answer.status.value,
            confidence=answer.confidence,
            answer=answer.answer,
            reasons=list(answer.reasons),
            retrieved=[
                {"chunk_id": hit.chunk.chunk_id, "document_id": hit.chunk.document_id, "score": round(hit.score, 4)}
                for hit in retrieval.hits
            ],
            cited_documents=[citation.document_id for citation in answer.citations],
            profile=self.profile_version(pipeline.profile),
            latency_ms=latency_ms,
            escalation_id=escalation_id,
            tenant=tenant,
            audience=scope.audience,
        )
        exchange = Exchange(
            conversation_id, dict(customer or {}), turn, audit, escalation, messages, tenant, scope.audience, owner
        )
        self.store.record_exchange(exchange, self.clock())
        if escalation is not None:
            logger.info(
                "escalation %s opened (%s), %d webhook message(s) queued",
                escalation.escalation_id,
                ", ".join(escalation.reason_codes),
                len(messages),
            )
        if messages and self.worker is not None:
            self.worker.wake()
        return Reply(answer, conversation_id, escalation_id, offered)

    def resolve(
        self,
        escalation_id: str,
        answer: str,
        *,
        agent: str | None = None,
        offer_as_faq: bool = False,
        document_ids: Sequence[str] = (),
        kb_gap: bool = False,
        tenant: str | None = None,
        audiences: Collection[str] | None = None,
    ) -> Escalation:
        """Record the agent's answer; an ``escalation.resolved`` webhook goes out with it.

        With ``tenant`` (and ``audiences``), another tenant's escalation (or one of another audience)
        is not found (EscalationNotFoundError)."""
        current = self.store.escalation(escalation_id, tenant, audiences)
        resolved_at = utc_now()
        resolution = {
            "answer": answer,
            "agent": agent,
            "offer_as_faq": offer_as_faq,
            "document_ids": list(document_ids),
            "kb_gap": kb_gap,
            "resolved_at": resolved_at,
        }
        key = idempotency_key(RESOLVED, escalation_id)
        body = ResolutionPayload(
            idempotency_key=key,
            escalation_id=escalation_id,
            conversation_id=current.conversation_id,
            resolved_at=resolved_at,
            answer=redact_text(answer),
            offer_as_faq=offer_as_faq,
        )
        messages = [NewMessage(RESOLVED, url, key, dumps(body.model_dump(mode="json"))) for url in self.webhook_urls]
        resolved = self.store.resolve(escalation_id, resolution, messages, tenant, audiences)
        if messages and self.worker is not None:
            self.worker.wake()
        return resolved

    def profile_version(self, profile: RetrievalProfile) -> str:
        """``name@hash`` of every knob, so audited answers say exactly which profile made them."""
        key = id(profile)
        if key not in self._profile_versions:
            digest = hashlib.sha256(profile.model_dump_json().encode("utf-8")).hexdigest()[:10]
            self._profile_versions[key] = f"{profile.name}@{digest}"
        return self._profile_versions[key]

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.store.close()

    # ---- internals -------------------------------------------------------------------------------

    def _kept(self, text: str) -> str:
        """What is stored of a customer's text: redacted unless raw storage was turned on."""
        return text if self.store_raw_questions else redact_text(text)

    def _retrieve(
        self, pipeline: AnswerPipeline, query: Query, history: Sequence[Turn], classified: FollowUp | None
    ) -> Retrieval:
        context = contextualize(
            query.text, [PriorTurn(turn.question, turn.follow_up) for turn in history], classified
        )
        if context.kind == FollowUp.NONE or context.anchor is None:
            return Retrieval(pipeline.retrieve(query), query)
        contextual = pipeline.embed(context.contextual, query.timings)
        follow_up = replace(query, context=Context(context.contextual, contextual))
        blended = pipeline.retrieve(follow_up)
        if context.kind == FollowUp.POSSIBLE:
            alone = pipeline.retrieve(query)
            best_alone = alone[0].score if alone else float("-inf")
            best_blended = blended[0].score if blended else float("-inf")
            same_best = bool(alone and blended) and alone[0].chunk.chunk_id == blended[0].chunk.chunk_id
            if same_best or best_blended < best_alone - POSSIBLE_FOLLOW_UP_MARGIN:
                return Retrieval(alone, query)  # it stands on its own
        return Retrieval(blended, follow_up)

    def _escalation(
        self,
        escalation_id: str,
        conversation_id: str,
        question: str,
        attempt: Answer,
        hits: Sequence[Hit],
        triggers: Sequence[Trigger],
        history: Sequence[Turn],
        customer: dict[str, Any],
        scope: Scope,
    ) -> tuple[Escalation, list[NewMessage]]:
        created_at = utc_now()
        key = idempotency_key(CREATED, escalation_id)
        question = self._kept(question)
        transcript = [entry for turn in history for entry in _transcript_entries(turn)]
        transcript.append(TranscriptEntry(role="customer", text=question, at=created_at))
        payload = EscalationPayload(
            idempotency_key=key,
            escalation_id=escalation_id,
            conversation_id=conversation_id,
            created_at=created_at,
            language=attempt.language,
            reason_codes=list(dict.fromkeys(trigger.code for trigger in triggers)),
            reasons=[trigger.reason for trigger in triggers],
            question=question,
            confidence=attempt.confidence,
            attempted_answer=attempted_from(attempt),
            candidates=candidates_from(hits),
            transcript=transcript,
            customer=customer,
            redacted=False,
            request_id=request_id_var.get(),  # set by the API's access log middleware (api/access_log.py)
        )
        redacted = redacted_copy(payload)
        body = dumps(redacted.model_dump(mode="json"))
        escalation = Escalation(
            escalation_id=escalation_id,
            conversation_id=conversation_id,
            answer_id=attempt.answer_id,
            status=OPEN,
            reason_codes=payload.reason_codes,
            language=attempt.language,
            created_at=created_at,
            record=payload.model_dump(mode="json"),
            redacted=redacted.model_dump(mode="json"),
            tenant=scope.tenant,
            audience=scope.audience,
        )
        return escalation, [NewMessage(CREATED, url, key, body) for url in self.webhook_urls]


def _transcript_entries(turn: Turn) -> list[TranscriptEntry]:
    return [
        TranscriptEntry(role="customer", text=turn.question, at=turn.created_at),
        TranscriptEntry(
            role="assistant", text=turn.answer, at=turn.created_at, answer_id=turn.answer_id, status=turn.status
        ),
    ]


def _abstentions_in_a_row(history: Sequence[Turn]) -> int:
    count = 0
    for turn in reversed(history):
        if turn.status != Status.ABSTAINED.value:
            break
        count += 1
    return count


class SupportConfigError(AnswerDeskError, ValueError):
    """Support settings that cannot work together (e.g. webhooks without a secret)."""

    code = "invalid_support_config"


def build_desk(settings: Settings, *, start_worker: bool = True, embedder: Embedder | None = None) -> SupportDesk:
    """The desk, its store, triage and (when webhooks are configured) the delivery worker.

    ``embedder`` is the engine's: when it is the model the triage classifier was trained on, triage
    reads the vectors the desk computes anyway; otherwise (another model, or none) triage keeps to
    its phrase rules."""
    store = SupportStore(settings.support_database_url or settings.database_url)
    triage_embedder = embedder if settings.embedding_model == default_heads().model else None
    triage = build_triage(settings.sensitive_topics, settings.triage_rules_path, embedder=triage_embedder)
    worker = None
    try:
        dispatcher = build_dispatcher(settings, store)
    except SupportConfigError:
        store.close()
        raise
    if dispatcher is not None:
        worker = DeliveryWorker(dispatcher, settings.outbox_poll_seconds)
        if start_worker:
            worker.start()
    return SupportDesk(
        store=store,
        triage=triage,
        webhook_urls=tuple(settings.webhook_urls),
        abstention_limit=settings.escalate_after_abstentions,
        worker=worker,
        store_raw_questions=settings.store_raw_questions,
    )


def build_dispatcher(settings: Settings, store: SupportStore) -> OutboxDispatcher | None:
    """The outbox dispatcher for the configured webhooks (None when there are none)."""
    if not settings.webhook_urls:
        return None
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise SupportConfigError("ANSWERDESK_WEBHOOK_SECRET must be set when ANSWERDESK_WEBHOOK_URLS is")
    for url in settings.webhook_urls:
        if not url.startswith(("http://", "https://")):
            raise SupportConfigError(f"webhook URL {url!r} must start with http:// or https://")
    return OutboxDispatcher(
        store,
        settings.webhook_secret.get_secret_value(),
        timeout=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        backoff_base=settings.webhook_backoff_seconds,
        backoff_max=settings.webhook_backoff_max_seconds,
    )
