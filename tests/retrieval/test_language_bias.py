"""e5's same-language preference, corrected per question by language centroids (retrieval/language_bias.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.config import DEFAULT_MODEL
from retrieval.dense import DenseRetriever
from retrieval.embedding import HashingEmbedder, OnnxEmbedder
from retrieval.language_bias import LanguageBias, bias_for, shipped_bias
from retrieval.records import Chunk
from retrieval.vector_store import ChromaStore

DIMENSION = 4
LATVIAN, ENGLISH, TOPIC, OTHER = np.eye(DIMENSION, dtype=np.float32)


def unit(vector: np.ndarray) -> np.ndarray:
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float32)


# Centroids: each language's passages lean towards their own direction.
BIAS = LanguageBias({"lv": 0.6 * LATVIAN, "en": 0.6 * ENGLISH})


def test_offsets_give_other_languages_what_the_question_gains_from_its_own() -> None:
    question = unit(0.8 * LATVIAN + 0.6 * TOPIC)
    offsets = BIAS.offsets(question, "lv")
    assert offsets["lv"] == pytest.approx(0.0)
    assert offsets["en"] == pytest.approx(0.8 * 0.6)
    assert BIAS.offsets(question, "ja") == {}  # no centroid for the question's language: nothing known


def test_adjusted_uses_the_offsets_and_falls_back_to_the_constant_bonus(tmp_path: Path) -> None:
    dense = DenseRetriever(HashingEmbedder(), ChromaStore(tmp_path / "chroma"), 3, 0.02, bias=BIAS)
    offsets = {"lv": 0.0, "en": 0.1}
    assert dense.adjusted(0.5, "lv", "lv", offsets) == 0.5
    assert dense.adjusted(0.5, "en", "lv", offsets) == pytest.approx(0.6)
    assert dense.adjusted(0.5, "ru", "lv", offsets) == pytest.approx(0.52)


def store_with(tmp_path: Path) -> ChromaStore:
    """Three off-topic Latvian passages, near the Latvian direction, and the English answer."""
    store = ChromaStore(tmp_path / "chroma")
    rows = [
        ("lv/a", "lv", unit(LATVIAN + 0.1 * OTHER)),
        ("lv/b", "lv", unit(LATVIAN + 0.2 * OTHER)),
        ("lv/c", "lv", unit(LATVIAN + 0.3 * OTHER)),
        ("en/answer", "en", unit(ENGLISH + TOPIC)),
    ]
    chunks = [Chunk(f"{doc}#v1-0", doc, doc, "", language=language, version=1) for doc, language, _ in rows]
    store.upsert(chunks, np.stack([vector for _, _, vector in rows]))
    return store


@pytest.mark.parametrize("centred_query", [False, True])
def test_the_centred_question_reaches_the_english_answer(tmp_path: Path, centred_query: bool) -> None:
    dense = DenseRetriever(HashingEmbedder(), store_with(tmp_path), 1, 0.0, bias=BIAS, centred_query=centred_query)
    question = unit(LATVIAN + 0.7 * TOPIC)
    found = [hit.chunk.document_id for hit in dense.candidates(question, "lv", None, 2)]
    if centred_query:
        assert found[0] == "en/answer"  # fetched by the centred question, then ranked first by its offset
    else:
        assert "en/answer" not in found  # the two nearest are Latvian: the correction never sees it


def test_shipped_centroids_belong_to_the_default_model_only() -> None:
    assert shipped_bias("another/model") is None
    assert bias_for(DEFAULT_MODEL, 384) is not None and bias_for(DEFAULT_MODEL, 256) is None  # a fake in its place
    bias = shipped_bias(DEFAULT_MODEL)
    assert bias is not None and {"en", "lv", "ru", "zh", "de", "es"} <= set(bias.centroids)


@pytest.mark.integration
def test_shipped_centroids_measure_e5s_same_language_preference(model_dir: Path) -> None:
    bias = shipped_bias(DEFAULT_MODEL)
    assert bias is not None
    embedder = OnnxEmbedder(model_dir)
    chinese = bias.offsets(embedder.embed_query("退款需要多长时间？"), "zh")
    english = bias.offsets(embedder.embed_query("How long does a refund take?"), "en")
    assert chinese["en"] > 0.03  # a Chinese question prefers Chinese passages by far more than the old 0.02
    assert english["en"] == 0.0
