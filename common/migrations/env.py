"""Alembic's entry point: runs the migrations on the connection ``common/schema.py`` hands over
(it holds the lock that keeps two upgrades apart), never on a URL of its own."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)  # batch: SQLite alters by copying tables
with context.begin_transaction():
    context.run_migrations()
