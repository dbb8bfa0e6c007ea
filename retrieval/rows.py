"""SQLAlchemy helpers shared by our stores: opening a database, and copying between frozen
dataclass records and rows whose columns share their field names."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

RecordT = TypeVar("RecordT")


def open_database(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout, so the API and the CLI can share it."""
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class SqlStore:
    """Base of our SQL stores: one engine, a short transaction per unit of work, so an instance is
    safe to share between threads."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = open_database(url)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def columns_of(record: Any) -> dict[str, Any]:
    """A record's fields as column values; lists and dicts are copied so the row never shares them."""
    return {field.name: copy.copy(getattr(record, field.name)) for field in fields(record)}


def record_from_row(cls: type[RecordT], row: Any) -> RecordT:
    """The ``cls`` record read from ``row`` (extra row columns are ignored)."""
    return cls(**{field.name: copy.copy(getattr(row, field.name)) for field in fields(cls)})  # type: ignore[arg-type]
