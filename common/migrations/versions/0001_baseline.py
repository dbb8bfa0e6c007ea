"""Baseline: the registry, support and API key tables as they were when migrations began.

A database made before migrations (its tables created by the stores themselves) is adopted: tables
it lacks are created, support tables from before tenants are rebuilt with a ``tenant`` column (every
old row is the default tenant's; a rebuild because the conversations' primary key changes, which
SQLite cannot alter), and columns added since (audience, owner, customer id, file hash) are added
with their defaults. The tables are frozen here, not imported from the stores, so later model
changes never change what this step does. Names in the SQL come from these definitions, never from
input.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

logger = logging.getLogger(__name__)
DEFAULT_TENANT = "default"
metadata = sa.MetaData()

sa.Table(
    "documents",
    metadata,
    sa.Column("document_id", sa.String(), nullable=False),
    sa.Column("title", sa.String(), nullable=False),
    sa.Column("source", sa.String(), nullable=False),
    sa.Column("language", sa.String(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("content_hash", sa.String(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("chunk_ids", sa.JSON(), nullable=False),
    sa.Column("extra", sa.JSON(), nullable=False),
    sa.Column("updated_at", sa.String(), nullable=False),
    sa.Column("file_hash", sa.String(), server_default="", nullable=False),
    sa.PrimaryKeyConstraint("document_id"),
    sa.Index("ix_documents_source", "source"),
)
sa.Table(
    "chunk_journal",
    metadata,
    sa.Column("entry_id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("document_id", sa.String(), nullable=False),
    sa.Column("chunk_ids", sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint("entry_id"),
)
sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(length=16), nullable=False),
    sa.Column("secret_hash", sa.String(length=64), nullable=False),
    sa.Column("name", sa.String(length=100), nullable=False),
    sa.Column("role", sa.String(length=16), nullable=False),
    sa.Column("tenant", sa.String(length=64), nullable=False),
    sa.Column("audience", sa.String(length=16), nullable=False),
    sa.Column("created_at", sa.String(length=40), nullable=False),
    sa.Column("revoked_at", sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint("key_id"),
    sa.Index("ix_api_keys_tenant", "tenant"),
)
sa.Table(
    "support_conversations",
    metadata,
    sa.Column("tenant", sa.String(length=64), nullable=False),
    sa.Column("conversation_id", sa.String(length=128), nullable=False),
    sa.Column("created_at", sa.String(length=40), nullable=False),
    sa.Column("updated_at", sa.String(length=40), nullable=False),
    sa.Column("language", sa.String(length=16), nullable=False),
    sa.Column("customer", sa.JSON(), nullable=False),
    sa.Column("audience", sa.String(length=16), server_default="internal", nullable=False),
    sa.Column("owner", sa.String(length=64), nullable=True),
    sa.Column("customer_id", sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint("tenant", "conversation_id"),
    sa.Index("ix_support_conversations_customer_id", "customer_id"),
)
sa.Table(
    "support_turns",
    metadata,
    sa.Column("turn_id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("tenant", sa.String(length=64), nullable=False),
    sa.Column("conversation_id", sa.String(length=128), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("question", sa.Text(), nullable=False),
    sa.Column("query", sa.Text(), nullable=False),
    sa.Column("follow_up", sa.Boolean(), nullable=False),
    sa.Column("answer_id", sa.String(length=64), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("answer", sa.Text(), nullable=False),
    sa.Column("language", sa.String(length=16), nullable=False),
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("escalation_id", sa.String(length=64), nullable=True),
    sa.Column("created_at", sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint("turn_id"),
    sa.UniqueConstraint("answer_id"),
    sa.UniqueConstraint("tenant", "conversation_id", "position"),
    sa.Index("ix_support_turns_conversation_id", "conversation_id"),
)
sa.Table(
    "support_escalations",
    metadata,
    sa.Column("escalation_id", sa.String(length=64), nullable=False),
    sa.Column("tenant", sa.String(length=64), nullable=False),
    sa.Column("conversation_id", sa.String(length=128), nullable=False),
    sa.Column("answer_id", sa.String(length=64), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("reason_codes", sa.String(length=400), nullable=False),
    sa.Column("language", sa.String(length=16), nullable=False),
    sa.Column("created_at", sa.String(length=40), nullable=False),
    sa.Column("record", sa.JSON(), nullable=False),
    sa.Column("redacted", sa.JSON(), nullable=False),
    sa.Column("audience", sa.String(length=16), server_default="internal", nullable=False),
    sa.Column("resolved_at", sa.String(length=40), nullable=True),
    sa.Column("resolution", sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint("escalation_id"),
    sa.Index("ix_support_escalations_conversation_id", "conversation_id"),
    sa.Index("ix_support_escalations_created_at", "created_at"),
    sa.Index("ix_support_escalations_language", "language"),
    sa.Index("ix_support_escalations_status", "status"),
    sa.Index("ix_support_escalations_tenant", "tenant"),
)
sa.Table(
    "support_outbox",
    metadata,
    sa.Column("message_id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("escalation_id", sa.String(length=64), nullable=False),
    sa.Column("event", sa.String(length=64), nullable=False),
    sa.Column("url", sa.String(length=2000), nullable=False),
    sa.Column("idempotency_key", sa.String(length=128), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", sa.Float(), nullable=False),
    sa.Column("locked_until", sa.Float(), nullable=True),
    sa.Column("last_error", sa.String(length=500), nullable=False),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.Column("delivered_at", sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint("message_id"),
    sa.UniqueConstraint("url", "idempotency_key"),
    sa.Index("ix_support_outbox_escalation_id", "escalation_id"),
    sa.Index("ix_support_outbox_due", "status", "next_attempt_at"),
)
sa.Table(
    "support_feedback",
    metadata,
    sa.Column("feedback_id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("tenant", sa.String(length=64), nullable=False),
    sa.Column("answer_id", sa.String(length=64), nullable=False),
    sa.Column("helpful", sa.Boolean(), nullable=False),
    sa.Column("comment", sa.Text(), nullable=True),
    sa.Column("created_at", sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint("feedback_id"),
    sa.Index("ix_support_feedback_answer_id", "answer_id"),
)
sa.Table(
    "support_audit",
    metadata,
    sa.Column("answer_id", sa.String(length=64), nullable=False),
    sa.Column("tenant", sa.String(length=64), nullable=False),
    sa.Column("conversation_id", sa.String(length=128), nullable=False),
    sa.Column("created_at", sa.String(length=40), nullable=False),
    sa.Column("question", sa.Text(), nullable=False),
    sa.Column("query", sa.Text(), nullable=False),
    sa.Column("language", sa.String(length=16), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("answer", sa.Text(), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
    sa.Column("retrieved", sa.JSON(), nullable=False),
    sa.Column("cited_documents", sa.JSON(), nullable=False),
    sa.Column("profile", sa.String(length=200), nullable=False),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("escalation_id", sa.String(length=64), nullable=True),
    sa.Column("audience", sa.String(length=16), server_default="internal", nullable=False),
    sa.PrimaryKeyConstraint("answer_id"),
    sa.Index("ix_support_audit_conversation_id", "conversation_id"),
    sa.Index("ix_support_audit_created_at", "created_at"),
    sa.Index("ix_support_audit_language", "language"),
    sa.Index("ix_support_audit_status", "status"),
    sa.Index("ix_support_audit_tenant", "tenant"),
)


def upgrade() -> None:
    bind = op.get_bind()
    _add_tenants(bind)
    metadata.create_all(bind, checkfirst=True)
    _add_columns(bind)


def _add_tenants(bind: sa.Connection) -> None:
    """Support tables from before tenants: rebuilt with the tenant column (SQLite only: no other
    database ever held them)."""
    present = set(sa.inspect(bind).get_table_names())
    quote = bind.dialect.identifier_preparer.quote
    for table in metadata.sorted_tables:
        if table.name not in present or "tenant" not in table.columns or not table.name.startswith("support_"):
            continue
        columns = [column["name"] for column in sa.inspect(bind).get_columns(table.name)]
        if "tenant" in columns:
            continue
        logger.warning("adding a tenant column to %s (existing rows: tenant %r)", table.name, DEFAULT_TENANT)
        name, old = quote(table.name), quote(f"{table.name}_before_tenants")
        names = ", ".join(quote(column) for column in columns)
        bind.execute(sa.text(f"ALTER TABLE {name} RENAME TO {old}"))
        for index in sa.inspect(bind).get_indexes(f"{table.name}_before_tenants"):
            bind.execute(sa.text(f"DROP INDEX {quote(str(index['name']))}"))
        table.create(bind)
        bind.execute(
            sa.text(f"INSERT INTO {name} ({names}, tenant) SELECT {names}, :tenant FROM {old}"),
            {"tenant": DEFAULT_TENANT},
        )
        bind.execute(sa.text(f"DROP TABLE {old}"))


def _add_columns(bind: sa.Connection) -> None:
    """Columns added to a table after it was first made get added in place; old rows get the
    column's server default (audience ``internal``: readable only by internal keys)."""
    quote = bind.dialect.identifier_preparer.quote
    for table in metadata.sorted_tables:
        have = {column["name"] for column in sa.inspect(bind).get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            logger.warning("adding a %s column to %s", column.name, table.name)
            kind = column.type.compile(bind.dialect)
            server_default = getattr(column.server_default, "arg", None)
            default = f" DEFAULT '{server_default}'" if server_default is not None else ""
            required = " NOT NULL" if server_default is not None and not column.nullable else ""
            bind.execute(
                sa.text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}{default}{required}")
            )
            for index in table.indexes:
                if column.name in index.columns:
                    index.create(bind)
