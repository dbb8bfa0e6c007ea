"""Upload jobs in SQL (issue #14): any replica answers GET /v1/jobs/{id}, and a job survives a restart.

``upload_jobs`` holds a job, ``upload_job_files`` its files: the uploaded bytes, and each file's result
as soon as it is written, so a resumed job skips the files already done. On PostgreSQL this also
installs Procrastinate's schema (the queue ``answerdesk worker`` takes jobs from, ingest/queue.py),
so one ``answerdesk db upgrade`` prepares both, once, under Alembic's version table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_jobs",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("finished_at", sa.String(length=40), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("document_id", sa.String(), nullable=True),
        sa.Column("must_be_new", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
        sa.Index("ix_upload_jobs_status", "status"),
    )
    op.create_table(
        "upload_job_files",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("started", sa.Boolean(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["upload_jobs.job_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "position"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        # Procrastinate's documented schema (what its `schema --apply` runs), in our transaction; a
        # later Procrastinate version that changes it comes with a migration of ours.
        bind.connection.driver_connection.execute(SchemaManager.get_schema())  # type: ignore[union-attr]
