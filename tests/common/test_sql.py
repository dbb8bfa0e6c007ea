"""One engine per database in a process, and the answer timeout of PostgreSQL connections
(common/sql.py, ANSWERDESK_DATABASE_TIMEOUT_S): a statement the server does not answer in time
fails and its connection is dropped, the pool goes on with new ones, and the waits that are long on
purpose (the tenant's write lock) are not cut."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from common.schema import upgrade
from common.sql import DatabaseOptions, open_database
from ingest.jobs import JobStore
from retrieval.lexical import LexicalIndex
from retrieval.registry import DocumentRegistry


def test_a_statement_not_answered_in_time_fails_and_the_pool_goes_on(postgres_url: str) -> None:
    engine = open_database(postgres_url, DatabaseOptions(timeout_s=0.5))
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match=r"did not answer within 0\.5 s"), engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(3)"))
        assert time.monotonic() - started < 2
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_waiting_for_the_tenants_write_lock_is_not_cut_by_the_timeout(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSWERDESK_DATABASE_TIMEOUT_S", "0.5")
    holder, waiter = JobStore(postgres_url), JobStore(postgres_url)  # two processes writing one tenant
    acquired: list[float] = []

    def write() -> None:
        with waiter.write_lock("acme"):
            acquired.append(time.monotonic())

    try:
        with holder.write_lock("acme"):
            thread = threading.Thread(target=write)
            thread.start()
            time.sleep(2)  # four timeouts
            released = time.monotonic()
        thread.join(10)
    finally:
        holder.close()
        waiter.close()
    assert acquired and acquired[0] >= released


def test_the_stores_of_a_process_share_one_engine_per_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(open_database(url))
    stores = [DocumentRegistry(url), LexicalIndex(url), JobStore(url)]
    assert len({id(store.engine) for store in stores}) == 1  # one pool, not one per store
    assert open_database(url, DatabaseOptions(pool_size=2)) is not stores[0].engine  # other options: its own
