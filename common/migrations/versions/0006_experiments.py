"""A/B experiments' tables (support/experiments.py) under Alembic: the store used to create them
itself at start, and two replicas starting at once raced on CREATE TABLE on PostgreSQL.

A database where a store already made them keeps them (same columns and index names): only a
database without them gets them here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "experiments" not in existing:
        op.create_table(
            "experiments",
            sa.Column("experiment_id", sa.String(length=32), nullable=False),
            sa.Column("tenant", sa.String(length=64), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("profile", sa.String(length=64), nullable=False),
            sa.Column("share", sa.Float(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("created_at", sa.String(length=40), nullable=False),
            sa.Column("ended_at", sa.String(length=40), nullable=True),
            sa.PrimaryKeyConstraint("experiment_id"),
            sa.Index("ix_experiments_tenant", "tenant"),
            sa.Index("ix_experiments_status", "status"),
        )
    if "experiment_answers" not in existing:
        op.create_table(
            "experiment_answers",
            sa.Column("answer_id", sa.String(length=64), nullable=False),
            sa.Column("experiment_id", sa.String(length=32), nullable=False),
            sa.Column("conversation_id", sa.String(length=128), nullable=False),
            sa.Column("variant", sa.String(length=1), nullable=False),
            sa.PrimaryKeyConstraint("answer_id"),
            sa.Index("ix_experiment_answers_experiment_id", "experiment_id"),
        )
