"""The SQL schema's version: Alembic migrations (``common/migrations/``) bring a database to the
revision the code needs. Stores never change a schema; they call :func:`require_current` when opened.

- ``answerdesk db upgrade`` (:func:`upgrade`) migrates; running it again does nothing, and two at
  once are safe: on PostgreSQL the upgrade holds a transaction-scoped advisory lock (the second one
  waits, then finds the schema current; PostgreSQL's DDL is transactional, so a failed upgrade leaves
  nothing half done), on SQLite a lock file beside the database.
- A **SQLite** file (the embedded default) that is behind is upgraded when it is first opened: it
  belongs to one machine, so there is no deployment step to order, and the CLI, the server, eval and
  tests all open it without a separate step (the lock file keeps a CLI and a server starting together
  apart).
- Any **other** database (PostgreSQL) is only checked: a schema behind the code raises
  :class:`SchemaOutdatedError` naming ``answerdesk db upgrade``. Replicas share it, so the schema
  changes in one explicit deployment step, never because some replica happened to start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from common.errors import AnswerDeskError
from common.sql import private_file, sqlite_path, unbounded

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key of schema upgrades (any constant; "adsk" in ASCII).
_UPGRADE_LOCK = 0x6164736B


class SchemaOutdatedError(AnswerDeskError, RuntimeError):
    """The database's schema is not the one the code needs (and is not upgraded automatically)."""

    code = "schema_outdated"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@cache
def head() -> str:
    """The revision this code needs."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, "no migrations found"
    return revision


def current(connection: Connection) -> str | None:
    """The database's revision; None for a database never upgraded (new, or made before migrations)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to :func:`head`; returns (revision before, revision after). Idempotent."""
    # Unbounded: the lock waits for another process's upgrade, and a migration may take long.
    with _exclusive(engine), engine.begin() as connection, unbounded(connection):
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
        before = current(connection)
        if before != head():
            # A new database is quietly made; changing an existing one is worth a warning in the log.
            log = logger.info if before is None else logger.warning
            log("upgrading the schema of %s from %s to %s", _shown(engine), before, head())
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return before, current(connection) or ""


def require_current(engine: Engine) -> None:
    """Return when the schema is current; upgrade a SQLite file that is behind; else raise
    :class:`SchemaOutdatedError` naming the command that fixes it."""
    with engine.connect() as connection:
        revision = current(connection)
    if revision == head():
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    state = f"is at schema revision {revision}" if revision else "has no AnswerDesk schema"
    raise SchemaOutdatedError(
        f"the database {_shown(engine)} {state}; this version needs {head()}: run `answerdesk db upgrade`"
    )


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """One upgrade at a time on a SQLite file (PostgreSQL's lock is taken inside the transaction)."""
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is None:
        yield
        return
    with FileLock(private_file(path.with_name(path.name + ".upgrade-lock"))):
        yield


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
