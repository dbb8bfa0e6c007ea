"""PostgreSQL for tests: one throwaway database per test session (a random name, dropped at the end,
so runs on the same server never meet) and one schema per test in it.

The server is ``ANSWERDESK_TEST_POSTGRES_URL`` (default: the local one, trust auth). When it cannot
be reached, the tests that need it are skipped with the reason, and the run's summary says so in
capitals (tests/conftest.py): never silently.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import make_url, text

from eval import fleet

ADMIN_URL = os.environ.get("ANSWERDESK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class PostgresUnavailableError(RuntimeError):
    """The test server does not answer."""


def create_database() -> str:
    """A new, empty database on the test server; returns its URL."""
    try:
        return fleet.create_database(ADMIN_URL, prefix="answerdesk_test_")
    except Exception as exc:
        raise PostgresUnavailableError(f"{_shown(ADMIN_URL)}: {type(exc).__name__}: {exc}") from exc


def drop_database(url: str) -> None:
    fleet.drop_database(ADMIN_URL, url)


@contextmanager
def schema_in(database_url: str) -> Iterator[str]:
    """A fresh schema in ``database_url``; yields a URL whose connections use only it (search_path)."""
    name = f"t_{secrets.token_hex(6)}"
    admin = fleet.admin_engine(database_url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        url = make_url(database_url).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        admin.dispose()


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
