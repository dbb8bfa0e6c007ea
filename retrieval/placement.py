"""Tenants placed on Chroma servers (``ANSWERDESK_CHROMA_URLS``), recorded in SQL so every replica
sends a tenant to the same server, and the fleet grows by adding servers for new tenants.

A tenant is placed the first time it is used, on the server holding the fewest tenants (ties: the
first listed), and stays there: moving one is an operator's job (copy its collections, then update
its row; every replica follows within :data:`PLACEMENT_TTL_S`, no restart). Two replicas placing the
same new tenant at once both end up with the first row written.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from sqlalchemy import String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from common.clock import utc_now
from common.schema import require_current
from common.sql import SqlStore

# A placement read is kept this long: the hot path reads SQL once per tenant per period, and an
# operator's move reaches every replica within it.
PLACEMENT_TTL_S = 30.0


class _Base(DeclarativeBase):
    pass


class _PlacementRow(_Base):
    __tablename__ = "chroma_placements"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    server: Mapped[str] = mapped_column(String(500), index=True)
    placed_at: Mapped[str] = mapped_column(String(40))


class PlacementStore(SqlStore):
    """Tenant → server; each placement read is kept for ``ttl_s`` seconds."""

    def __init__(self, url: str, ttl_s: float = PLACEMENT_TTL_S) -> None:
        super().__init__(url)
        require_current(self.engine)  # the schema is Alembic's (common/schema.py)
        self.ttl_s = ttl_s
        self._known: dict[str, tuple[float, str]] = {}  # tenant → (monotonic time read, server)
        self._lock = threading.Lock()

    def server_of(self, tenant: str, servers: list[str]) -> str:
        """The server of ``tenant``, placing it on the least-loaded of ``servers`` when new."""
        known = self._known.get(tenant)
        if known is not None and time.monotonic() - known[0] < self.ttl_s:
            return known[1]
        with self._lock:
            server = self._read(tenant) or self._place(tenant, servers)
            self._known[tenant] = (time.monotonic(), server)
            return server

    def placements(self) -> dict[str, str]:
        with Session(self.engine) as session:
            return {row.tenant: row.server for row in session.scalars(select(_PlacementRow))}

    def _read(self, tenant: str) -> str | None:
        with Session(self.engine) as session:
            row = session.get(_PlacementRow, tenant)
            return row.server if row else None

    def _place(self, tenant: str, servers: list[str]) -> str:
        with Session(self.engine) as session:
            query = select(_PlacementRow.server, func.count()).group_by(_PlacementRow.server)
            load = Counter({server: count for server, count in session.execute(query)})
        chosen = min(servers, key=lambda server: (load[server], servers.index(server)))
        try:
            with self._session() as session:
                session.add(_PlacementRow(tenant=tenant, server=chosen, placed_at=utc_now()))
        except IntegrityError:  # another replica placed it first: use its choice
            pass
        placed = self._read(tenant)
        assert placed is not None
        return placed
