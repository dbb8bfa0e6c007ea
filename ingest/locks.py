"""Per-tenant write locks shared by every process on one PostgreSQL database (API replicas, workers,
the CLI): a session advisory lock per tenant, released by the server if its process dies. On SQLite
there is one writing process per data dir, kept alone by the data dir's ingest lock
(ingest/pipeline.py), so these are no-ops there.

Lock order, everywhere: **the tenant's lock first, then the data dir's ingest lock**; a process
waits for at most one tenant's lock at a time. Recovery after a crash (ingest/pipeline.py
``Ingestor.recover``) takes each tenant's lock without waiting and skips a tenant another process is
writing, so a replica that starts never rolls back another replica's write in flight.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine

from common.sql import unbounded


class TenantLocks:
    """The write locks of one database's tenants."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def hold(self, tenant: str, wait: bool = True) -> Iterator[bool]:
        """Hold ``tenant``'s lock; yields whether it is held (always, when ``wait``)."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        key = {"key": f"answerdesk-write:{tenant}"}
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if wait:
                with unbounded(connection):  # another process may write this tenant for minutes
                    connection.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), key)
                held = True
            else:
                held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(hashtext(:key))"), key))
            try:
                yield held
            finally:
                if held:
                    connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), key)
