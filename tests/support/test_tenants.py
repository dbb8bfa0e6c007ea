"""Support data per tenant in the store itself, and the upgrade of a database made before tenants."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from support.store import (
    AnswerNotFoundError,
    AuditRecord,
    EscalationNotFoundError,
    Exchange,
    SupportStore,
    Turn,
)

# The support tables as the first release created them (no tenant anywhere).
SCHEMA_BEFORE_TENANTS = """
CREATE TABLE support_conversations (
    conversation_id VARCHAR(128) NOT NULL, created_at VARCHAR(40) NOT NULL, updated_at VARCHAR(40) NOT NULL,
    language VARCHAR(16) NOT NULL, customer JSON NOT NULL, PRIMARY KEY (conversation_id));
CREATE TABLE support_turns (
    turn_id INTEGER NOT NULL, conversation_id VARCHAR(128) NOT NULL, position INTEGER NOT NULL,
    question TEXT NOT NULL, "query" TEXT NOT NULL, follow_up BOOLEAN NOT NULL, answer_id VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL, answer TEXT NOT NULL, language VARCHAR(16) NOT NULL, confidence FLOAT NOT NULL,
    escalation_id VARCHAR(64), created_at VARCHAR(40) NOT NULL, PRIMARY KEY (turn_id),
    UNIQUE (conversation_id, position), UNIQUE (answer_id));
CREATE INDEX ix_support_turns_conversation_id ON support_turns (conversation_id);
CREATE TABLE support_feedback (
    feedback_id INTEGER NOT NULL, answer_id VARCHAR(64) NOT NULL, helpful BOOLEAN NOT NULL, comment TEXT,
    created_at VARCHAR(40) NOT NULL, PRIMARY KEY (feedback_id));
CREATE INDEX ix_support_feedback_answer_id ON support_feedback (answer_id);
CREATE TABLE support_audit (
    answer_id VARCHAR(64) NOT NULL, conversation_id VARCHAR(128) NOT NULL, created_at VARCHAR(40) NOT NULL,
    question TEXT NOT NULL, "query" TEXT NOT NULL, language VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL,
    confidence FLOAT NOT NULL, answer TEXT NOT NULL, reasons JSON NOT NULL, retrieved JSON NOT NULL,
    cited_documents JSON NOT NULL, profile VARCHAR(200) NOT NULL, latency_ms FLOAT NOT NULL,
    escalation_id VARCHAR(64), PRIMARY KEY (answer_id));
CREATE INDEX ix_support_audit_conversation_id ON support_audit (conversation_id);
INSERT INTO support_conversations VALUES ('c1', '2025-01-01', '2025-01-01', 'en', '{"plan": "team"}');
INSERT INTO support_turns VALUES (1, 'c1', 0, 'Old question?', 'Old question?', 0, 'a1', 'answered', 'Old answer.',
    'en', 0.9, NULL, '2025-01-01');
INSERT INTO support_audit VALUES ('a1', 'c1', '2025-01-01', 'Old question?', 'Old question?', 'en', 'answered', 0.9,
    'Old answer.', '[]', '[]', '[]', 'default@x', 12.0, NULL);
INSERT INTO support_feedback VALUES (1, 'a1', 1, NULL, '2025-01-02');
"""


def _exchange(tenant: str, conversation_id: str, answer_id: str, question: str) -> Exchange:
    turn = Turn(0, question, question, False, answer_id, "answered", "An answer.", "en", 0.9, None, "2025-02-01")
    audit = AuditRecord(
        answer_id, conversation_id, "2025-02-01", question, question, "en", "answered", 0.9, "An answer.",
        [], [], [], "default@x", 10.0,
    )
    return Exchange(conversation_id, {"tenant_note": tenant}, turn, audit, tenant=tenant)


def test_a_database_from_before_tenants_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "support.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA_BEFORE_TENANTS)
    store = SupportStore(f"sqlite:///{path}")
    try:
        # Old rows belong to the default tenant, with nothing lost.
        assert [turn.question for turn in store.turns("c1")] == ["Old question?"]
        assert store.customer("c1") == {"plan": "team"}
        [record] = store.audit(tenant="default")
        assert record.answer_id == "a1" and record.tenant == "default"
        assert [feedback.answer_id for feedback in store.feedback()] == ["a1"]
        # The new keys work: another tenant may now use the same conversation id.
        store.record_exchange(_exchange("acme", "c1", "a2", "Acme question?"), now=0.0)
        assert [turn.question for turn in store.turns("c1", "acme")] == ["Acme question?"]
        assert [turn.question for turn in store.turns("c1")] == ["Old question?"]
    finally:
        store.close()
    again = SupportStore(f"sqlite:///{path}")  # a second start changes nothing
    try:
        assert len(again.audit()) == 2
    finally:
        again.close()


def test_store_reads_name_the_tenant(tmp_path: Path) -> None:
    store = SupportStore(f"sqlite:///{tmp_path / 'support.db'}")
    try:
        store.record_exchange(_exchange("acme", "c1", "a1", "Acme?"), now=0.0)
        store.record_exchange(_exchange("globex", "c1", "a2", "Globex?"), now=0.0)
        assert [turn.question for turn in store.turns("c1", "acme")] == ["Acme?"]
        assert store.customer("c1", "globex") == {"tenant_note": "globex"}
        assert store.turns("c1") == []  # the default tenant has no such conversation
        assert [record.answer_id for record in store.audit(tenant="globex")] == ["a2"]
        with pytest.raises(AnswerNotFoundError):
            store.add_feedback("a1", True, None, tenant="globex")
        assert store.add_feedback("a1", True, None, tenant="acme").answer_id == "a1"
        with pytest.raises(EscalationNotFoundError):
            store.escalation("nope", tenant="acme")
    finally:
        store.close()
