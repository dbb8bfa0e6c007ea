"""Which Chroma server holds each tenant's collections (ANSWERDESK_CHROMA_URLS).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chroma_placements",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("server", sa.String(length=500), nullable=False),
        sa.Column("placed_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
        sa.Index("ix_chroma_placements_server", "server"),
    )
