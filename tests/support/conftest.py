"""Fixtures for the support tests: a tiny knowledge base on the hashing embedder, and a real webhook
receiver on 127.0.0.1 that verifies signatures and deduplicates by idempotency key (tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.config import Settings
from tests.helpers import Receiver, free_port, small_kb_settings, write_kb


@pytest.fixture(scope="session")
def fake_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knowledge-base folder (two documents)."""
    return write_kb(tmp_path_factory.mktemp("support-kb"))


@pytest.fixture
def fake_settings(tmp_path: Path) -> Settings:
    """Settings for a fresh data dir holding the tiny KB, ingested with the hashing embedder."""
    return small_kb_settings(tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver on a free port, not started: tests start it (or leave it down)."""
    instance = Receiver(free_port())
    yield instance
    instance.stop()
