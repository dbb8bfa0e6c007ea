"""SQLAlchemy helpers shared by our stores: opening a database, and copying between frozen
dataclass records and rows whose columns share their field names."""

from __future__ import annotations

import copy
import math
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, create_engine, event, make_url
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


_engines: weakref.WeakValueDictionary[tuple[str, str], Engine] = weakref.WeakValueDictionary()
_engines_lock = threading.Lock()


def open_database(url: str, options: DatabaseOptions | None = None) -> Engine:
    """The engine for ``url`` in this process: every store on one database shares it (and its pool)
    while any of them lives, so a replica holds one pool per database, not one per store (7 stores
    on PostgreSQL at 15 connections each would be over its default ``max_connections`` of 100 with
    one replica). Disposing it only closes its idle connections; the others open new ones on demand.

    SQLite gets WAL and a busy timeout, so the API and the CLI can share it, its file is private to
    the owner (SQLite gives the -wal and -shm files the same mode), and a :class:`FileGuard` is
    checked whenever a connection is taken from the pool. A PostgreSQL server gets the pool and
    timeouts of ``options`` (default: from the environment)."""
    options = options or DatabaseOptions()
    key = (url, options.model_dump_json())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _new_engine(url, options)
        return engine


def _new_engine(url: str, options: DatabaseOptions) -> Engine:
    path = sqlite_path(url)
    if path is not None and not str(path).startswith("file:"):
        private_file(path)
    if url.startswith("sqlite"):
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, **_server_options(url, options))
        if engine.dialect.driver == "psycopg":
            event.listen(engine, "do_connect", _bounded_connect(options.timeout_s))
    if path is not None:
        guard = FileGuard(path)
        event.listen(engine, "do_connect", lambda *_: guard.check())  # before a new connection creates a file
        event.listen(engine, "checkout", lambda *_: guard.check())
    return engine


class DatabaseOptions(BaseSettings):
    """How this process talks to a database server (``ANSWERDESK_DATABASE_*``; SQLite ignores them).

    The stores of one process share one engine per database (:func:`open_database`), so a process
    holds up to ``databases × (pool_size + pool_max_overflow)`` connections plus the job queue's
    (docs/operations.md, Databases): keep that, times the replicas and workers, under the server's
    ``max_connections``."""

    model_config = SettingsConfigDict(env_prefix="ANSWERDESK_DATABASE_", extra="ignore")

    # The longest the server may take to accept a connection or to answer one round trip (a
    # statement, a commit); then the connection is closed and the request gets 503. A ``connect_timeout``
    # in the URL's query wins for connecting.
    timeout_s: float = Field(default=10.0, gt=0)
    pool_size: int = Field(default=5, ge=1)
    pool_max_overflow: int = Field(default=10, ge=0)
    pool_timeout_s: float = Field(default=10.0, gt=0)  # waiting for a free pooled connection


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that gives up on a server that does not answer.

    libpq has no read timeout, and neither TCP keepalives nor ``tcp_user_timeout`` notice a server
    process that is stopped or stuck (its kernel still acknowledges every packet), nor can the
    server's own ``statement_timeout`` fire in it (docs/operations.md, Databases). So each wait for
    the server is bounded here: psycopg waits for the socket in Python (``Connection.wait``), with a
    timeout that ends in an error (``_WaitTimeout``, psycopg 3.3.9); the connection, left in the
    middle of the protocol, is closed, which SQLAlchemy takes for a disconnect (the pool drops it).
    """

    timeout_s: float | None = None  # None: wait as long as it takes (see :func:`unbounded`)

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is not None or self.timeout_s is None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.timeout_s)
        except psycopg.errors._WaitTimeout as exc:
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database server did not answer within {self.timeout_s:g} s (ANSWERDESK_DATABASE_TIMEOUT_S)"
            ) from exc


@contextmanager
def unbounded(connection: Connection) -> Iterator[Connection]:
    """Lift the answer timeout on ``connection`` while it waits on purpose (a lock another process
    may hold for minutes, a schema upgrade)."""
    driver = connection.connection.driver_connection
    if not isinstance(driver, BoundedConnection):
        yield connection
        return
    kept, driver.timeout_s = driver.timeout_s, None
    try:
        yield connection
    finally:
        driver.timeout_s = kept


def _server_options(url: str, options: DatabaseOptions) -> dict[str, Any]:
    """A database server (PostgreSQL) that does not answer fails a request within
    ``options.timeout_s`` (twice that when a pooled connection is found dead and a new one is
    tried) instead of hanging it; each checkout is pinged first, so connections broken by a restart
    are replaced and the next request after an outage works without restarting the process."""
    query = make_url(url).query
    connect_args = {} if "connect_timeout" in query else {"connect_timeout": max(math.ceil(options.timeout_s), 2)}
    return {
        "pool_pre_ping": True,
        "pool_timeout": options.pool_timeout_s,
        "pool_size": options.pool_size,
        "max_overflow": options.pool_max_overflow,
        "connect_args": connect_args,
    }


def _bounded_connect(timeout_s: float) -> Any:
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> BoundedConnection:
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.timeout_s = timeout_s
        return connection

    return connect


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
