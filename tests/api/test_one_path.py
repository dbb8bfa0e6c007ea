"""One answer path: the API and the CLI answer through the same desk and pipeline, and a question is
embedded once per request (with the fast hashing embedder)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from answerdesk.cli import app as cli
from api.app import create_app
from retrieval.config import get_settings
from retrieval.embedding import HashingEmbedder, Matrix, Vector
from tests.helpers import bearer, issue_key, small_kb_settings


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting how often each query text is embedded."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: Counter[str] = Counter()

    def embed_query(self, text: str) -> Vector:
        self.queries[text] += 1
        return super().embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        return super().embed_documents(texts)


def test_a_question_is_embedded_once_per_request(tmp_path: Path) -> None:
    settings = small_kb_settings(tmp_path)
    embedder = CountingEmbedder()
    with TestClient(create_app(settings, embedder), headers=bearer(issue_key(settings))) as client:
        first = client.post("/v1/ask", json={"question": "How long does a refund take?"})
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "answered"
        assert embedder.queries == Counter({"How long does a refund take?": 1})

        embedder.queries.clear()  # a follow-up: its own text and its contextual reading, once each
        follow = {"question": "and for an annual plan?", "conversation_id": first.json()["conversation_id"]}
        second = client.post("/v1/ask", json=follow)
        assert second.status_code == 200, second.text
        assert embedder.queries["and for an annual plan?"] == 1
        assert all(count == 1 for count in embedder.queries.values()), embedder.queries


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The reply without what is new on every call."""
    return {key: value for key, value in body.items() if key not in {"answer_id", "conversation_id"}}


@pytest.mark.parametrize("question", ["How long does a refund take?", "Do you sell gift cards on Mars?"])
def test_cli_ask_json_is_the_api_reply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, question: str) -> None:
    settings = small_kb_settings(tmp_path)
    public = issue_key(settings, audience="public")  # the CLI answers from public documents by default
    with TestClient(create_app(settings, HashingEmbedder()), headers=bearer(public)) as client:
        api = client.post("/v1/ask", json={"question": question})
    assert api.status_code == 200, api.text

    monkeypatch.setenv("ANSWERDESK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ANSWERDESK_PROFILE_PATH", str(settings.profile_path))
    monkeypatch.setattr("retrieval.pipeline.load_embedder", lambda *args, **kwargs: HashingEmbedder())
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["ask", question, "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert _comparable(json.loads(result.stdout)) == _comparable(api.json())
