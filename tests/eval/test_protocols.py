from __future__ import annotations

from pathlib import Path

import pytest

from eval.datasets import load_suite
from eval.run import run_suite
from retrieval.answerability import AnswerabilityModel
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import HashingEmbedder

# Hashing cosines are low; a threshold-like model keeps the decisions meaningful.
PROFILE = RetrievalProfile(
    score_midpoint=0.3,
    cross_lingual_bonus=0.0,
    answerability=AnswerabilityModel(
        features=("dense_top",), means=(0.3,), scales=(0.05,), coefficients=(1.0,), intercept=0.0
    ),
)


# The LlamaIndex peer takes seconds to import: slow, so the fast loop keeps the other systems.
@pytest.mark.parametrize("system", ["answerdesk", pytest.param("llamaindex", marks=pytest.mark.slow), "dense", "bm25"])
def test_nomiracl_per_query_ranks_only_the_query_s_own_passages(
    public_data: Path, tmp_path: Path, system: str
) -> None:
    suite = load_suite("nomiracl", Settings(eval_data_dir=public_data))
    _, results = run_suite(suite, system, PROFILE, HashingEmbedder(), tmp_path, show_progress=False)
    for result in results:
        allowed = set(result.case.allowed_document_ids or [])
        assert set(result.ranked_documents) <= allowed
        assert set(result.cited_documents) <= allowed
    ranked = {result.case.id: result.ranked_documents for result in results}
    assert ranked["en/1"][0] == "nomiracl/en/d1"  # restricted, not emptied
    # The English non-relevant query has one passage of its own; pooled, it could see the other one too.
    # (BM25 ranks nothing for it: it shares no word with that passage.)
    assert ranked["en/2"] == ([] if system == "bm25" else ["nomiracl/en/d2"])


def test_nomiracl_pooled_retrieves_from_every_passage(public_data: Path, tmp_path: Path) -> None:
    suite = load_suite("nomiracl-pooled:en", Settings(eval_data_dir=public_data))
    _, results = run_suite(suite, "dense", PROFILE, HashingEmbedder(), tmp_path, show_progress=False)
    assert all(len(result.ranked_documents) == 2 for result in results)


def test_per_language_metrics_are_reported(public_data: Path, tmp_path: Path) -> None:
    suite = load_suite("nomiracl", Settings(eval_data_dir=public_data))
    metrics, _ = run_suite(suite, "answerdesk", PROFILE, HashingEmbedder(), tmp_path, show_progress=False)
    assert set(metrics["per_language"]) == {"de", "en"}
    for language in ("de", "en"):
        assert "error_rate" in metrics["per_language"][language]
    assert "hallucination_rate" in metrics["per_language"]["en"]
