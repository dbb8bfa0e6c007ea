from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedding import HashingEmbedder, Matrix, Vector
from retrieval.embedding_cache import CachingEmbedder, cache_key


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        super().__init__(dimension=32)
        self.documents: list[str] = []
        self.queries: list[str] = []

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        self.documents.extend(texts)
        return super().embed_documents(texts)

    def embed_query(self, text: str) -> Vector:
        self.queries.append(text)
        return super().embed_query(text)


def test_second_run_reads_everything_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    first_inner = CountingEmbedder()
    first = CachingEmbedder(first_inner, path, "model-a")
    vectors = first.embed_documents(["refund policy", "billing day", "refund policy"])
    assert first_inner.documents == ["refund policy", "billing day"]  # a repeat in one call is embedded once
    first.close()

    second_inner = CountingEmbedder()
    second = CachingEmbedder(second_inner, path, "model-a")
    again = second.embed_documents(["billing day", "refund policy", "new text"])
    assert second_inner.documents == ["new text"]
    np.testing.assert_array_equal(again[:2], vectors[[1, 0]])
    np.testing.assert_allclose(again[2], HashingEmbedder(32).embed_documents(["new text"])[0])
    assert (second.hits, second.misses) == (2, 1)


def test_model_and_role_are_part_of_the_key(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    inner = CountingEmbedder()
    CachingEmbedder(inner, path, "model-a").embed_documents(["refund"])
    CachingEmbedder(inner, path, "model-b").embed_documents(["refund"])
    CachingEmbedder(inner, path, "model-a").embed_query("refund")
    assert inner.documents == ["refund", "refund"]
    assert inner.queries == ["refund"]
    assert len({cache_key("a", "query: ", "x"), cache_key("a", "passage: ", "x"), cache_key("b", "query: ", "x")}) == 3


def test_queries_can_bypass_the_cache() -> None:
    inner = CountingEmbedder()
    embedder = CachingEmbedder(inner, None, "model-a", cache_queries=False)
    embedder.embed_query("refund")
    embedder.embed_query("refund")
    assert inner.queries == ["refund", "refund"]


def test_empty_input_and_protocol_passthrough() -> None:
    embedder = CachingEmbedder(CountingEmbedder(), None, "model-a")
    assert embedder.embed_documents([]).shape == (0, 32)
    assert embedder.count_tokens("two words") == 4
    assert embedder.dimension == 32


@pytest.mark.parametrize("texts", [["a"], ["a", "b", "c", "a", "b"], [f"text {i}" for i in range(1200)]])
def test_cached_vectors_equal_computed_ones(texts: list[str]) -> None:
    embedder = CachingEmbedder(HashingEmbedder(32), None, "m")
    expected = HashingEmbedder(32).embed_documents(texts)
    np.testing.assert_allclose(embedder.embed_documents(texts), expected)
    np.testing.assert_allclose(embedder.embed_documents(texts), expected)
