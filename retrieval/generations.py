"""Generation counters in SQL: how one replica's in-memory caches notice another replica's writes.

A cache built from shared state (the lexical index's BM25 matrices, a tenant's exact-search snapshot)
remembers the generation it was built at; every write of that state bumps the generation in SQL, and
a reader whose cache is of an older generation rebuilds it. Reads are throttled per key
(``max_age_s``, default 0.25 s), so a search costs at most four SQL reads a second however busy the
process is, and another replica's write is seen within ``max_age_s`` plus the rebuild.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import BigInteger, Connection, String, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MAX_AGE_S = 0.25


class _Base(DeclarativeBase):
    pass


class _GenerationRow(_Base):
    __tablename__ = "cache_generations"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


def bump(connection: Connection, key: str) -> None:
    """Bump ``key``'s generation inside the caller's transaction (so it commits with the rows it
    stands for); a new key starts at 1. Both SQLite and PostgreSQL take this upsert."""
    connection.execute(
        text(
            "INSERT INTO cache_generations (key, value) VALUES (:key, 1) "
            "ON CONFLICT (key) DO UPDATE SET value = cache_generations.value + 1"
        ),
        {"key": key},
    )


def read(connection: Connection, key: str) -> int:
    """``key``'s generation now (0 when never bumped)."""
    value = connection.scalar(select(_GenerationRow.value).where(_GenerationRow.key == key))
    return int(value or 0)


class Generations:
    """Throttled reads of generations: a value at most ``max_age_s`` old."""

    def __init__(self, engine: Engine, max_age_s: float = MAX_AGE_S) -> None:
        self.engine = engine
        self.max_age_s = max_age_s
        self._seen: dict[str, tuple[float, int]] = {}  # key → (monotonic time read, value)
        self._lock = threading.Lock()

    def current(self, key: str) -> int:
        """``key``'s generation, read from SQL when the last read is older than ``max_age_s``."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.max_age_s:
            return seen[1]
        return self.fresh(key)

    def fresh(self, key: str) -> int:
        """``key``'s generation read from SQL now."""
        with self.engine.connect() as connection:
            value = read(connection, key)
        with self._lock:
            self._seen[key] = (time.monotonic(), value)
        return value

    def bump(self, key: str) -> None:
        """Bump ``key`` in a transaction of its own, and forget the value read."""
        with self.engine.begin() as connection:
            bump(connection, key)
        self.forget(key)

    def forget(self, key: str) -> None:
        """Read ``key`` from SQL next time (this process just bumped it)."""
        with self._lock:
            self._seen.pop(key, None)
