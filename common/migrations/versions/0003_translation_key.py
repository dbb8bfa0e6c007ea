"""Documents carry the key that links their translations (issue #16: front matter or a map).

A database whose documents table already has the column (made by a build between the two changes)
is left as it is.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "translation_key" not in {column["name"] for column in inspector.get_columns("documents")}:
        op.add_column("documents", sa.Column("translation_key", sa.String(), server_default="", nullable=False))
    if "ix_documents_translation_key" not in {index["name"] for index in inspector.get_indexes("documents")}:
        op.create_index("ix_documents_translation_key", "documents", ["translation_key"])
