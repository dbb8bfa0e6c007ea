"""SQLAlchemy helpers shared by our stores: opening a database, and copying between frozen
dataclass records and rows whose columns share their field names."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

RecordT = TypeVar("RecordT")


class DatabaseGoneError(RuntimeError):
    """A SQLite file deleted or replaced while open: writing on would go to an unlinked file and be lost."""


class FileGuard:
    """Notices when a SQLite file is deleted or replaced under a process that has it open.

    An open connection keeps working on the unlinked file, so without this every later write is
    silently lost (and a restart starts from an empty database). The file's identity (device,
    inode) is taken when first seen; :meth:`check` raises DatabaseGoneError once it is gone or
    another file has taken its place. One ``stat`` per check.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None

    def check(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._identity is None:
                return  # not created yet
            raise DatabaseGoneError(f"{self.path} was deleted while in use; restore it and restart") from None
        identity = (stat.st_dev, stat.st_ino)
        if self._identity is None:
            self._identity = identity
        elif identity != self._identity:
            raise DatabaseGoneError(f"{self.path} was replaced while in use; restart to open the new file")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    database = make_url(url).database if url.startswith("sqlite") else None
    return Path(database) if database and database != ":memory:" else None


def open_database(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout, so the API and the CLI can share it,
    and a :class:`FileGuard` checked whenever a connection is taken from the pool."""
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    path = sqlite_path(url)
    if path is not None:
        guard = FileGuard(path)
        event.listen(engine, "do_connect", lambda *_: guard.check())  # before a new connection creates a file
        event.listen(engine, "checkout", lambda *_: guard.check())
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
