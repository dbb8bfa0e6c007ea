"""The lexical index's rows in SQL (issue #14), and the generation counters replicas' caches follow.

``lexical_chunks`` holds one row per chunk (its analysed terms and the metadata a scope checks) that
was in ``<data dir>/lexical/chunks.sqlite3``; every replica sharing the database now searches the
same rows. ``cache_generations`` holds counters bumped with each write (``lexical``, and
``vectors:<tenant>`` for exact-search snapshots on Chroma servers): retrieval/generations.py. An
old data dir's lexical file is not read: the recovery at the next start (or ingest) fills the table
from the vector store (ingest/pipeline.py ``_sync_lexical``); the file can then be deleted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lexical_chunks",
        sa.Column("chunk_id", sa.String(), nullable=False),
        sa.Column("document_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("audience", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("product", sa.String(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("chunk_id"),
        sa.Index("ix_lexical_chunks_tenant", "tenant"),
    )
    op.create_table(
        "cache_generations",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
