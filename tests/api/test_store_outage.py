"""The vector store going away: /readyz and /v1/ask answer 503 ``store_unavailable``, and the same
app serves again once the store is back (no restart)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from chromadb.errors import InvalidArgumentError
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.embedding import HashingEmbedder
from retrieval.vector_store import ChromaStore, StoreUnavailableError
from tests.helpers import bearer, issue_key, small_kb_settings

QUESTION = {"question": "How long does a refund take?"}


def _unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "store_unavailable"


def test_a_store_moved_away_is_unavailable_and_the_app_recovers_when_it_returns(tmp_path: Path) -> None:
    settings = small_kb_settings(tmp_path)
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        before = client.post("/v1/ask", json=QUESTION)
        assert before.status_code == 200, before.text
        assert client.get("/readyz").status_code == 200

        aside = settings.chroma_dir.with_name("chroma-aside")
        settings.chroma_dir.rename(aside)  # an unmounted volume, a restore in progress
        _unavailable(client.get("/readyz"))
        _unavailable(client.post("/v1/ask", json=QUESTION))
        assert not settings.chroma_dir.exists(), "the outage must not create an empty store in its place"

        aside.rename(settings.chroma_dir)
        assert client.get("/readyz").json()["status"] == "ready"
        after = client.post("/v1/ask", json=QUESTION)
        assert after.status_code == 200, after.text
        assert {key: after.json()[key] for key in ("status", "citations")} == {
            key: before.json()[key] for key in ("status", "citations")
        }


def test_a_failing_chroma_call_makes_the_store_unavailable_and_the_next_call_reopens_it(tmp_path: Path) -> None:
    settings = small_kb_settings(tmp_path)
    store = ChromaStore(settings.chroma_dir, settings.collection)
    assert store.count() == 3
    broken = store.collection._target  # the raw Chroma collection behind the guard

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    broken.count = fail
    with pytest.raises(StoreUnavailableError, match="disk I/O error"):
        store.ping()
    store.ping()  # a fresh client and collection: the broken one was dropped
    assert store.collection._target is not broken
    assert store.count() == 3


def test_a_bad_argument_is_a_bug_not_an_outage(tmp_path: Path) -> None:
    store = ChromaStore(small_kb_settings(tmp_path).chroma_dir)
    collection = store.collection
    with pytest.raises(InvalidArgumentError, match="where"):
        collection.get(where={"$nonsense": 1})
    assert store.collection is collection  # nothing was reset
