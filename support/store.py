"""Durable support state (SQLite by default, any SQLAlchemy URL): conversations and their turns,
escalations, the webhook outbox, answer feedback and the audit log.

Everything a customer or an agent can read belongs to a tenant: a conversation is keyed by
``(tenant, conversation_id)``, so two tenants may use the same id without meeting, and every read the
API makes names the caller's tenant, so another tenant's id behaves exactly like an unknown one.

One ``/v1/ask`` exchange is written in one transaction (turn, audit row, and when it escalates the
escalation with its outbox messages), so an escalation is never stored without its deliveries nor
delivered without being stored (the transactional-outbox pattern).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from common.clock import utc_now as utc_now  # re-exported for support/desk.py
from common.errors import AnswerDeskError
from common.schema import require_current
from common.sql import SqlStore, columns_of, record_from_row
from retrieval.records import Reason
from retrieval.scope import DEFAULT_TENANT, INTERNAL, PUBLIC

logger = logging.getLogger(__name__)

OPEN = "open"
RESOLVED = "resolved"
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
# The customer metadata key that names the person (conversation binding, erasure by customer id).
CUSTOMER_ID_KEY = "customer_id"


class _Base(DeclarativeBase):
    pass


class _ConversationRow(_Base):
    __tablename__ = "support_conversations"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(16))
    customer: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Who may read it (the creating key's audience; rows from before audiences: internal only),
    # who may continue it (the creating key's id) and whose it is (erasure).
    audience: Mapped[str] = mapped_column(String(16), server_default=INTERNAL)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    customer_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)


class _TurnRow(_Base):
    __tablename__ = "support_turns"
    __table_args__ = (UniqueConstraint("tenant", "conversation_id", "position"),)

    turn_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
    follow_up: Mapped[bool] = mapped_column(Boolean)
    answer_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    answer: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    escalation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))


class _EscalationRow(_Base):
    __tablename__ = "support_escalations"

    escalation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    answer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # "|code|code|" so one reason code is found with a bound LIKE parameter.
    reason_codes: Mapped[str] = mapped_column(String(400))
    language: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[str] = mapped_column(String(40), index=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    redacted: Mapped[dict[str, Any]] = mapped_column(JSON)
    audience: Mapped[str] = mapped_column(String(16), server_default=INTERNAL)
    resolved_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class _OutboxRow(_Base):
    __tablename__ = "support_outbox"
    __table_args__ = (
        UniqueConstraint("url", "idempotency_key"),
        Index("ix_support_outbox_due", "status", "next_attempt_at"),
    )

    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    escalation_id: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)  # exactly the bytes sent (UTF-8), already redacted
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class _FeedbackRow(_Base):
    __tablename__ = "support_feedback"

    feedback_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    answer_id: Mapped[str] = mapped_column(String(64), index=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))


class _AuditRow(_Base):
    __tablename__ = "support_audit"

    answer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[str] = mapped_column(String(40), index=True)
    question: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    answer: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    retrieved: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    cited_documents: Mapped[list[str]] = mapped_column(JSON)
    profile: Mapped[str] = mapped_column(String(200))
    latency_ms: Mapped[float] = mapped_column(Float)
    escalation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    audience: Mapped[str] = mapped_column(String(16), server_default=INTERNAL)


# ---- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One question of a conversation and what the engine did with it."""

    position: int
    question: str
    query: str
    follow_up: bool
    answer_id: str
    status: str
    answer: str
    language: str
    confidence: float
    escalation_id: str | None
    created_at: str


@dataclass(frozen=True)
class AuditRecord:
    """Everything about one answer: what was asked, retrieved, answered, how sure and how fast."""

    answer_id: str
    conversation_id: str
    created_at: str
    question: str
    query: str
    language: str
    status: str
    confidence: float
    answer: str
    reasons: list[Reason]  # stored as their "code: detail" text
    retrieved: list[dict[str, Any]]  # [{"chunk_id", "document_id", "score"}], best first
    cited_documents: list[str]
    profile: str
    latency_ms: float
    escalation_id: str | None = None
    tenant: str = DEFAULT_TENANT
    audience: str = PUBLIC


@dataclass(frozen=True)
class Escalation:
    """A stored escalation: the full record (internal), its redacted copy, and the agent's resolution."""

    escalation_id: str
    conversation_id: str
    answer_id: str
    status: str
    reason_codes: list[str]
    language: str
    created_at: str
    record: dict[str, Any]
    redacted: dict[str, Any]
    resolved_at: str | None = None
    resolution: dict[str, Any] | None = None
    tenant: str = DEFAULT_TENANT
    audience: str = PUBLIC


@dataclass(frozen=True)
class Conversation:
    """Who a conversation belongs to: its tenant and audience, the key that created it, the customer."""

    tenant: str
    conversation_id: str
    audience: str
    owner: str | None
    customer_id: str | None
    customer: dict[str, Any]
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Erasure:
    """How many rows an erasure or a retention purge deleted, per table."""

    conversations: int = 0
    turns: int = 0
    audit: int = 0
    feedback: int = 0
    escalations: int = 0
    outbox: int = 0


@dataclass(frozen=True)
class OutboxMessage:
    """One webhook delivery: the body is signed afresh on every attempt."""

    message_id: int
    escalation_id: str
    event: str
    url: str
    idempotency_key: str
    body: str
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str = ""
    delivered_at: float | None = None


@dataclass(frozen=True)
class NewMessage:
    """An outbox message to enqueue with an escalation."""

    event: str
    url: str
    idempotency_key: str
    body: str


@dataclass(frozen=True)
class Feedback:
    feedback_id: int
    answer_id: str
    helpful: bool
    comment: str | None
    created_at: str


@dataclass(frozen=True)
class Exchange:
    """Everything one ``/v1/ask`` call writes."""

    conversation_id: str
    customer: dict[str, Any]
    turn: Turn
    audit: AuditRecord
    escalation: Escalation | None = None
    messages: list[NewMessage] = field(default_factory=list)
    tenant: str = DEFAULT_TENANT
    audience: str = PUBLIC
    owner: str | None = None  # the API key id that asked; None for operators and tests


def customer_id_of(customer: Any) -> str | None:
    """The customer id in caller metadata (``customer_id``), as text; None when absent."""
    value = customer.get(CUSTOMER_ID_KEY) if isinstance(customer, dict) else None
    return None if value is None or value == "" else str(value)


class ConversationNotFoundError(AnswerDeskError, LookupError):
    """No conversation with this id that the caller may read or continue."""

    code = "conversation_not_found"


class EscalationNotFoundError(AnswerDeskError, LookupError):
    """No escalation with this id."""

    code = "escalation_not_found"


class EscalationResolvedError(AnswerDeskError, RuntimeError):
    """The escalation was resolved already."""

    code = "escalation_already_resolved"


class AnswerNotFoundError(AnswerDeskError, LookupError):
    """No audited answer with this id."""

    code = "answer_not_found"


# ---- the store -----------------------------------------------------------------------------------


class SupportStore(SqlStore):
    """Reads and writes the support tables; safe to share between threads (one engine, short sessions)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url
        require_current(self.engine)  # the schema is Alembic's (common/schema.py)

    # conversations -------------------------------------------------------------------------------

    def turns(self, conversation_id: str, tenant: str = DEFAULT_TENANT) -> list[Turn]:
        """The conversation's turns, oldest first (empty for a new conversation)."""
        query = (
            select(_TurnRow)
            .where(_TurnRow.tenant == tenant, _TurnRow.conversation_id == conversation_id)
            .order_by(_TurnRow.position)
        )
        with Session(self.engine) as session:
            return [record_from_row(Turn, row) for row in session.scalars(query)]

    def customer(self, conversation_id: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        with Session(self.engine) as session:
            row = session.get(_ConversationRow, (tenant, conversation_id))
            return dict(row.customer) if row else {}

    def conversation(self, conversation_id: str, tenant: str = DEFAULT_TENANT) -> Conversation | None:
        """The conversation's owner, audience and customer; None when there is none."""
        with Session(self.engine) as session:
            row = session.get(_ConversationRow, (tenant, conversation_id))
            return record_from_row(Conversation, row) if row else None

    def open_escalation(self, conversation_id: str, tenant: str = DEFAULT_TENANT) -> str | None:
        """The id of the conversation's open escalation, if any."""
        query = (
            select(_EscalationRow.escalation_id)
            .where(
                _EscalationRow.tenant == tenant,
                _EscalationRow.conversation_id == conversation_id,
                _EscalationRow.status == OPEN,
            )
            .order_by(_EscalationRow.created_at.desc())
            .limit(1)
        )
        with Session(self.engine) as session:
            return session.scalars(query).first()

    def record_exchange(self, exchange: Exchange, now: float) -> None:
        """Write one exchange atomically: conversation, turn, audit, escalation and its outbox messages."""
        stamp = exchange.turn.created_at
        tenant = exchange.tenant
        with self._session() as session:
            conversation = session.get(_ConversationRow, (tenant, exchange.conversation_id))
            if conversation is None:
                conversation = _ConversationRow(
                    tenant=tenant,
                    conversation_id=exchange.conversation_id,
                    created_at=stamp,
                    updated_at=stamp,
                    language=exchange.turn.language,
                    customer=dict(exchange.customer),
                    audience=exchange.audience,
                    owner=exchange.owner,
                    customer_id=customer_id_of(exchange.customer),
                )
                session.add(conversation)
            else:
                if not may_continue(record_from_row(Conversation, conversation), exchange.owner, exchange.customer):
                    raise ConversationNotFoundError(f"no conversation {exchange.conversation_id!r}")
                conversation.customer_id = conversation.customer_id or customer_id_of(exchange.customer)
                conversation.updated_at = stamp
                conversation.language = exchange.turn.language
                if exchange.customer:
                    conversation.customer = {**conversation.customer, **exchange.customer}
            session.add(_TurnRow(tenant=tenant, conversation_id=exchange.conversation_id, **columns_of(exchange.turn)))
            # The question is kept once, in the turn; audit() reads it from there.
            audit = {**columns_of(exchange.audit), "tenant": tenant, "question": "", "query": ""}
            audit["reasons"] = [str(reason) for reason in exchange.audit.reasons]
            session.add(_AuditRow(**audit))
            if exchange.escalation is not None:
                escalation = exchange.escalation
                session.add(
                    _EscalationRow(
                        escalation_id=escalation.escalation_id,
                        tenant=tenant,
                        conversation_id=escalation.conversation_id,
                        answer_id=escalation.answer_id,
                        status=escalation.status,
                        reason_codes=_codes_column(escalation.reason_codes),
                        language=escalation.language,
                        created_at=escalation.created_at,
                        record=escalation.record,
                        redacted=escalation.redacted,
                        audience=escalation.audience,
                    )
                )
            for message in exchange.messages:
                session.add(
                    _OutboxRow(
                        escalation_id=exchange.escalation.escalation_id if exchange.escalation else "",
                        event=message.event,
                        url=message.url,
                        idempotency_key=message.idempotency_key,
                        body=message.body,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )

    # escalations ---------------------------------------------------------------------------------

    def escalation(
        self, escalation_id: str, tenant: str | None = None, audiences: Collection[str] | None = None
    ) -> Escalation:
        """One escalation; another tenant's, or one of an audience outside ``audiences``, is not found
        (None: any, for operators)."""
        with Session(self.engine) as session:
            row = session.get(_EscalationRow, escalation_id)
            if row is None or not _readable(row, tenant, audiences):
                raise EscalationNotFoundError(f"no escalation {escalation_id!r}")
            return _escalation(row)

    def escalations(
        self,
        *,
        status: str | None = None,
        reason: str | None = None,
        language: str | None = None,
        limit: int = 50,
        offset: int = 0,
        tenant: str | None = None,
        audiences: Collection[str] | None = None,
    ) -> tuple[int, list[Escalation]]:
        """Escalations matching every given filter, newest first, with the total count."""
        conditions = []
        if tenant is not None:
            conditions.append(_EscalationRow.tenant == tenant)
        if audiences is not None:
            conditions.append(_EscalationRow.audience.in_(sorted(audiences)))
        if status:
            conditions.append(_EscalationRow.status == status)
        if reason:
            conditions.append(_EscalationRow.reason_codes.contains(f"|{reason}|", autoescape=True))
        if language:
            conditions.append(_EscalationRow.language == language)
        with Session(self.engine) as session:
            total = session.scalar(select(func.count()).select_from(_EscalationRow).where(*conditions)) or 0
            query = (
                select(_EscalationRow)
                .where(*conditions)
                .order_by(_EscalationRow.created_at.desc(), _EscalationRow.escalation_id)
                .limit(limit)
                .offset(offset)
            )
            return total, [_escalation(row) for row in session.scalars(query)]

    def resolve(
        self,
        escalation_id: str,
        resolution: dict[str, Any],
        messages: Sequence[NewMessage] = (),
        tenant: str | None = None,
        audiences: Collection[str] | None = None,
    ) -> Escalation:
        """Mark an open escalation resolved with the agent's answer (and enqueue ``messages``)."""
        stamp = utc_now()
        with self._session() as session:
            row = session.get(_EscalationRow, escalation_id, with_for_update=True)
            if row is None or not _readable(row, tenant, audiences):
                raise EscalationNotFoundError(f"no escalation {escalation_id!r}")
            if row.status == RESOLVED:
                raise EscalationResolvedError(f"escalation {escalation_id!r} is resolved already")
            row.status = RESOLVED
            row.resolved_at = stamp
            row.resolution = dict(resolution)
            now = datetime.now(UTC).timestamp()
            for message in messages:
                session.add(
                    _OutboxRow(
                        escalation_id=escalation_id,
                        event=message.event,
                        url=message.url,
                        idempotency_key=message.idempotency_key,
                        body=message.body,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
            session.flush()
            return _escalation(row)

    def faq_candidates(
        self, limit: int = 100, tenant: str | None = None, audiences: Collection[str] | None = None
    ) -> list[Escalation]:
        """Resolved escalations whose agent offered the answer as a FAQ candidate, newest first."""
        query = (
            select(_EscalationRow)
            .where(_EscalationRow.status == RESOLVED)
            .order_by(_EscalationRow.resolved_at.desc())
        )
        if tenant is not None:
            query = query.where(_EscalationRow.tenant == tenant)
        if audiences is not None:
            query = query.where(_EscalationRow.audience.in_(sorted(audiences)))
        with Session(self.engine) as session:
            rows = [_escalation(row) for row in session.scalars(query)]
        return [row for row in rows if (row.resolution or {}).get("offer_as_faq")][:limit]

    # outbox --------------------------------------------------------------------------------------

    def due_messages(self, now: float, limit: int = 50) -> list[OutboxMessage]:
        """Pending messages whose time has come and that no worker holds."""
        query = (
            select(_OutboxRow)
            .where(
                _OutboxRow.status == PENDING,
                _OutboxRow.next_attempt_at <= now,
                or_(_OutboxRow.locked_until.is_(None), _OutboxRow.locked_until < now),
            )
            .order_by(_OutboxRow.next_attempt_at, _OutboxRow.message_id)
            .limit(limit)
        )
        with Session(self.engine) as session:
            return [record_from_row(OutboxMessage, row) for row in session.scalars(query)]

    def claim(self, message_id: int, now: float, lease_seconds: float) -> bool:
        """Hold a message for one delivery attempt; False when another worker got it first."""
        statement = (
            update(_OutboxRow)
            .where(
                _OutboxRow.message_id == message_id,
                _OutboxRow.status == PENDING,
                or_(_OutboxRow.locked_until.is_(None), _OutboxRow.locked_until < now),
            )
            .values(locked_until=now + lease_seconds)
        )
        with self._session() as session:
            return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]

    def mark_delivered(self, message_id: int, attempts: int, now: float) -> None:
        self._update_message(
            message_id, status=DELIVERED, attempts=attempts, delivered_at=now, locked_until=None, last_error=""
        )

    def mark_retry(self, message_id: int, attempts: int, next_attempt_at: float, error: str) -> None:
        self._update_message(
            message_id, attempts=attempts, next_attempt_at=next_attempt_at, locked_until=None, last_error=error[:500]
        )

    def mark_dead(self, message_id: int, attempts: int, error: str) -> None:
        self._update_message(message_id, status=DEAD, attempts=attempts, locked_until=None, last_error=error[:500])

    def _update_message(self, message_id: int, **values: Any) -> None:
        with self._session() as session:
            session.execute(update(_OutboxRow).where(_OutboxRow.message_id == message_id).values(**values))

    def requeue_dead(self, now: float) -> int:
        """Give every dead message a fresh start; returns how many."""
        statement = (
            update(_OutboxRow)
            .where(_OutboxRow.status == DEAD)
            .values(status=PENDING, attempts=0, next_attempt_at=now, locked_until=None)
        )
        with self._session() as session:
            return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]

    def outbox(self, status: str | None = None, limit: int = 100) -> list[OutboxMessage]:
        query = select(_OutboxRow).order_by(_OutboxRow.message_id.desc()).limit(limit)
        if status:
            query = query.where(_OutboxRow.status == status)
        with Session(self.engine) as session:
            return [record_from_row(OutboxMessage, row) for row in session.scalars(query)]

    def outbox_counts(self) -> dict[str, int]:
        query = select(_OutboxRow.status, func.count()).group_by(_OutboxRow.status)
        with Session(self.engine) as session:
            counts = {status: int(count) for status, count in session.execute(query)}
        return {status: counts.get(status, 0) for status in (PENDING, DELIVERED, DEAD)}

    def next_due_at(self) -> float | None:
        """When the earliest pending message is due (None when nothing is pending)."""
        query = select(func.min(_OutboxRow.next_attempt_at)).where(_OutboxRow.status == PENDING)
        with Session(self.engine) as session:
            value = session.scalar(query)
            return float(value) if value is not None else None

    # feedback and audit --------------------------------------------------------------------------

    def add_feedback(
        self,
        answer_id: str,
        helpful: bool,
        comment: str | None,
        tenant: str | None = None,
        audiences: Collection[str] | None = None,
    ) -> Feedback:
        """Store feedback on an audited answer (several per answer are kept; the latest counts);
        only on ``tenant``'s answers of ``audiences`` when given."""
        with self._session() as session:
            answer = session.get(_AuditRow, answer_id)
            if answer is None or not _readable(answer, tenant, audiences):
                raise AnswerNotFoundError(f"no answer {answer_id!r}")
            row = _FeedbackRow(
                tenant=answer.tenant, answer_id=answer_id, helpful=helpful, comment=comment, created_at=utc_now()
            )
            session.add(row)
            session.flush()
            return Feedback(row.feedback_id, row.answer_id, row.helpful, row.comment, row.created_at)

    def feedback(self, answer_ids: Sequence[str] | None = None) -> list[Feedback]:
        """Feedback, oldest first (only on ``answer_ids`` when given)."""
        query = select(_FeedbackRow).order_by(_FeedbackRow.feedback_id)
        if answer_ids is not None:
            query = query.where(_FeedbackRow.answer_id.in_(list(answer_ids)))
        with Session(self.engine) as session:
            return [
                Feedback(row.feedback_id, row.answer_id, row.helpful, row.comment, row.created_at)
                for row in session.scalars(query)
            ]

    def audit(
        self,
        *,
        statuses: Sequence[str] = (),
        language: str | None = None,
        conversation_id: str | None = None,
        since: str | None = None,
        answer_ids: Sequence[str] | None = None,
        limit: int | None = 100,
        tenant: str | None = None,
    ) -> list[AuditRecord]:
        """Audited answers matching every filter, newest first (the question read from its turn)."""
        query = (
            select(_AuditRow, _TurnRow.question, _TurnRow.query)
            .outerjoin(_TurnRow, _TurnRow.answer_id == _AuditRow.answer_id)
            .order_by(_AuditRow.created_at.desc(), _AuditRow.answer_id)
        )
        if tenant is not None:
            query = query.where(_AuditRow.tenant == tenant)
        if statuses:
            query = query.where(_AuditRow.status.in_(list(statuses)))
        if language:
            query = query.where(_AuditRow.language == language)
        if conversation_id:
            query = query.where(_AuditRow.conversation_id == conversation_id)
        if since:
            query = query.where(_AuditRow.created_at >= since)
        if answer_ids is not None:
            query = query.where(_AuditRow.answer_id.in_(list(answer_ids)))
        if limit is not None:
            query = query.limit(limit)
        with Session(self.engine) as session:
            return [
                replace(
                    record_from_row(AuditRecord, row),
                    question=question or row.question,
                    query=asked or row.query,
                    reasons=[Reason.parse(reason) for reason in row.reasons],
                )
                for row, question, asked in session.execute(query)
            ]

    # erasure and retention -----------------------------------------------------------------------

    def erase(
        self,
        *,
        tenant: str | None = None,
        conversation_id: str | None = None,
        customer_id: str | None = None,
        updated_before: str | None = None,
        audiences: Collection[str] | None = None,
    ) -> Erasure:
        """Delete whole conversations matching every given filter, with everything written about them:
        turns, audit rows, feedback, escalations (FAQ candidates too) and their webhook messages.

        The freed pages are zeroed and, on SQLite, the write-ahead log is truncated, so the text is
        not left in the database files either.
        """
        conditions = []
        if tenant is not None:
            conditions.append(_ConversationRow.tenant == tenant)
        if conversation_id is not None:
            conditions.append(_ConversationRow.conversation_id == conversation_id)
        if customer_id is not None:
            conditions.append(_ConversationRow.customer_id == customer_id)
        if updated_before is not None:
            conditions.append(_ConversationRow.updated_at < updated_before)
        if audiences is not None:
            conditions.append(_ConversationRow.audience.in_(sorted(audiences)))
        if not conditions:
            raise ValueError("erase needs at least one filter")
        counts: Counter[str] = Counter()
        with self._session() as session:
            targets = session.execute(
                select(_ConversationRow.tenant, _ConversationRow.conversation_id).where(*conditions)
            ).all()
            for owner_tenant, conversation in targets:
                _erase_conversation(session, owner_tenant, conversation, counts)
        self._truncate_log()
        return Erasure(**counts)

    def purge(self, before: str) -> Erasure:
        """Retention: erase conversations last updated before ``before`` (UTC, ISO 8601), and any
        older audit row, feedback or webhook message left without one."""
        erased = self.erase(updated_before=before)
        cutoff = datetime.fromisoformat(before).timestamp()
        with self._session() as session:
            audit = _count(session.execute(delete(_AuditRow).where(_AuditRow.created_at < before)))
            feedback = _count(session.execute(delete(_FeedbackRow).where(_FeedbackRow.created_at < before)))
            outbox = _count(session.execute(delete(_OutboxRow).where(_OutboxRow.created_at < cutoff)))
        self._truncate_log()
        return replace(
            erased, audit=erased.audit + audit, feedback=erased.feedback + feedback, outbox=erased.outbox + outbox
        )

    def _truncate_log(self) -> None:
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# ---- row ↔ record --------------------------------------------------------------------------------


def may_continue(conversation: Conversation, owner: str | None, customer: Any) -> bool:
    """Whether a turn from key ``owner`` about ``customer`` may join ``conversation``: only the key
    that created it may, and only for the same customer when both name one."""
    asked_for = customer_id_of(customer)
    same_customer = conversation.customer_id is None or asked_for is None or asked_for == conversation.customer_id
    return conversation.owner == owner and same_customer


def _readable(row: _EscalationRow | _AuditRow, tenant: str | None, audiences: Collection[str] | None) -> bool:
    return (tenant is None or row.tenant == tenant) and (audiences is None or row.audience in audiences)


def _count(result: Any) -> int:
    return int(result.rowcount)


def _erase_conversation(session: Session, tenant: str, conversation_id: str, counts: Counter[str]) -> None:
    """Delete one conversation and every row about it (inside the caller's transaction)."""
    in_conversation = (_AuditRow.tenant == tenant, _AuditRow.conversation_id == conversation_id)
    answer_ids = set(session.scalars(select(_AuditRow.answer_id).where(*in_conversation)))
    answer_ids |= set(
        session.scalars(
            select(_TurnRow.answer_id).where(_TurnRow.tenant == tenant, _TurnRow.conversation_id == conversation_id)
        )
    )
    escalation_ids = list(
        session.scalars(
            select(_EscalationRow.escalation_id).where(
                _EscalationRow.tenant == tenant, _EscalationRow.conversation_id == conversation_id
            )
        )
    )
    counts["feedback"] += _count(
        session.execute(
            delete(_FeedbackRow).where(_FeedbackRow.tenant == tenant, _FeedbackRow.answer_id.in_(sorted(answer_ids)))
        )
    )
    counts["outbox"] += _count(session.execute(delete(_OutboxRow).where(_OutboxRow.escalation_id.in_(escalation_ids))))
    counts["escalations"] += _count(
        session.execute(delete(_EscalationRow).where(_EscalationRow.escalation_id.in_(escalation_ids)))
    )
    counts["audit"] += _count(session.execute(delete(_AuditRow).where(*in_conversation)))
    counts["turns"] += _count(
        session.execute(delete(_TurnRow).where(_TurnRow.tenant == tenant, _TurnRow.conversation_id == conversation_id))
    )
    counts["conversations"] += _count(
        session.execute(
            delete(_ConversationRow).where(
                _ConversationRow.tenant == tenant, _ConversationRow.conversation_id == conversation_id
            )
        )
    )


def _codes_column(codes: Sequence[str]) -> str:
    return "|" + "|".join(dict.fromkeys(codes)) + "|"


def _escalation(row: _EscalationRow) -> Escalation:
    return Escalation(
        escalation_id=row.escalation_id,
        conversation_id=row.conversation_id,
        answer_id=row.answer_id,
        status=row.status,
        reason_codes=[code for code in row.reason_codes.split("|") if code],
        language=row.language,
        created_at=row.created_at,
        record=dict(row.record),
        redacted=dict(row.redacted),
        resolved_at=row.resolved_at,
        resolution=dict(row.resolution) if row.resolution is not None else None,
        tenant=row.tenant,
        audience=row.audience,
    )


def dumps(value: Any) -> str:
    """Compact, stable JSON (what goes into an outbox body)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
