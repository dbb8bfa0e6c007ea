"""SQLAlchemy helpers shared by our stores: opening a database, and copying between frozen
dataclass records and rows whose columns share their field names."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from common.errors import AnswerDeskError

RecordT = TypeVar("RecordT")


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner may open (state holds customers' data): created 0700, and
    an existing one loses its group and other permissions."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(mode & 0o700)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner may read and write: created 0600 (folders above it 0700 when
    they are new), an existing one loses its group and other permissions."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(mode & 0o600)
    return path


class DatabaseGoneError(AnswerDeskError, RuntimeError):
    """A SQLite file deleted or replaced while open: writing on would go to an unlinked file and be lost."""

    code = "database_gone"


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
    its file is private to the owner (SQLite gives the -wal and -shm files the same mode), and a
    :class:`FileGuard` is checked whenever a connection is taken from the pool."""
    path = sqlite_path(url)
    if path is not None and not str(path).startswith("file:"):
        private_file(path)
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
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
    cursor.execute("PRAGMA secure_delete=ON")  # erased customer data is overwritten, not left in free pages
    cursor.close()


def columns_of(record: Any) -> dict[str, Any]:
    """A record's fields as column values; lists and dicts are copied so the row never shares them."""
    return {field.name: copy.copy(getattr(record, field.name)) for field in fields(record)}


def record_from_row(cls: type[RecordT], row: Any) -> RecordT:
    """The ``cls`` record read from ``row`` (extra row columns are ignored)."""
    return cls(**{field.name: copy.copy(getattr(row, field.name)) for field in fields(cls)})  # type: ignore[arg-type]
