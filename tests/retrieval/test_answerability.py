from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from retrieval.answerability import (
    FEATURE_NAMES,
    MARGIN_CAP,
    AnswerabilityModel,
    Features,
    abstain_reasons,
    default_model,
    extract_features,
    load_model,
)
from retrieval.embedding import HashingEmbedder
from retrieval.evidence import ChunkEvidence, SentenceScorer
from retrieval.records import Chunk, Hit


def _hit(document_id: str, score: float, language: str = "en", lexical: float = 0.0, text: str = "") -> Hit:
    chunk = Chunk(
        chunk_id=f"{document_id}#{score}",
        document_id=document_id,
        text=text or f"Text of {document_id}.",
        title=document_id,
        language=language,
    )
    return Hit(chunk, score, lexical_score=lexical)


def _evidence(question: str, hits: list[Hit]) -> list[ChunkEvidence]:
    embedder = HashingEmbedder()
    return SentenceScorer(embedder).score(question, embedder.embed_query(question), hits)


FEATURES = Features(
    dense_top=0.86,
    dense_margin=0.01,
    document_margin=0.02,
    lexical_top=1.5,
    agreement=1.0,
    term_coverage=0.5,
    evidence=0.87,
    evidence_top=0.87,
    language_match=1.0,
)


def test_features_of_a_retrieval() -> None:
    hits = [
        _hit("en/faq-refunds", 0.88, lexical=3.0, text="Refunds take five days. Contact billing."),
        _hit("en/faq-refunds", 0.87),
        _hit("ru/faq-refunds", 0.865, language="ru"),  # a translation of the top document: not a rival
        _hit("en/faq-billing", 0.84, lexical=1.0),
    ]
    features = extract_features("en", hits, _evidence("how many days do refunds take", hits[:2]))
    assert features.dense_top == 0.88
    assert features.dense_margin == pytest.approx(0.01)
    assert features.document_margin == pytest.approx(0.04)
    assert features.lexical_top == pytest.approx(math.log1p(3.0))
    assert features.agreement == 1.0
    assert features.term_coverage == pytest.approx(3 / 5)  # of how, many, days, refun(ds), take
    assert features.evidence >= features.evidence_top > 0
    assert features.language_match == 1.0


def test_features_without_rivals_or_lexical_support() -> None:
    hits = [_hit("de/agb", 0.82, language="de")]
    features = extract_features("en", hits, [])
    assert (features.dense_margin, features.document_margin) == pytest.approx((MARGIN_CAP, MARGIN_CAP))
    assert math.isnan(features.lexical_top) and math.isnan(features.agreement)  # unknown: no lexical scores
    assert features.language_match == 0.0
    assert (features.evidence, features.evidence_top, features.term_coverage) == (0.0, 0.0, 0.0)


def test_without_another_article_the_margin_runs_to_the_last_hit() -> None:
    hits = [_hit("en/faq-refunds", 0.88), _hit("lv/faq-refunds", 0.87, language="lv"), _hit("en/faq-refunds", 0.85)]
    features = extract_features("en", hits, [])
    assert features.dense_margin == pytest.approx(0.01)
    assert features.document_margin == pytest.approx(0.03)  # a lower bound: any rival scores below 0.85


def test_agreement_asks_about_the_best_dense_hit() -> None:
    # Ordered by fusion, the top hit is not the best dense one; only the latter's lexical support counts.
    hits = [_hit("en/a", 0.84, lexical=5.0), _hit("en/b", 0.86)]
    assert extract_features("en", hits, []).agreement == 0.0


def test_no_hits_is_an_error() -> None:
    with pytest.raises(ValueError, match="no hits"):
        extract_features("en", [], [])


def _model(**coefficients: float) -> AnswerabilityModel:
    names = tuple(coefficients)
    return AnswerabilityModel(
        features=names,
        means=tuple(getattr(FEATURES, name) for name in names),
        scales=(0.01,) * len(names),
        coefficients=tuple(coefficients.values()),
        intercept=0.0,
    )


def test_probability_is_a_logistic_of_standardised_features() -> None:
    model = _model(dense_top=1.0, evidence_top=2.0)
    assert model.probability(FEATURES) == pytest.approx(0.5)
    better = replace(FEATURES, evidence_top=FEATURES.evidence_top + 0.01)
    assert model.probability(better) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert model.contributions(better) == pytest.approx({"dense_top": 0.0, "evidence_top": 2.0})


@pytest.mark.parametrize("feature", ["dense_top", "evidence_top", "term_coverage"])
def test_probability_rises_with_a_positive_coefficient(feature: str) -> None:
    model = _model(**{feature: 1.5})
    values = [getattr(FEATURES, feature) + step * 0.01 for step in range(-3, 4)]
    probabilities = [model.probability(replace(FEATURES, **{feature: value})) for value in values]
    assert probabilities == sorted(probabilities) and probabilities[0] < probabilities[-1]


def test_an_unknown_value_counts_as_typical() -> None:
    model = _model(dense_top=1.0, lexical_top=2.0)
    unknown = replace(FEATURES, dense_top=0.87, lexical_top=math.nan)
    assert model.probability(unknown) == model.probability(replace(unknown, lexical_top=FEATURES.lexical_top))
    assert model.contributions(unknown)["lexical_top"] == 0.0
    reasons = abstain_reasons(model, replace(unknown, dense_top=0.8))
    assert [str(reason) for reason in reasons] == ["weak_match: the best source scored 0.800"]


def test_extreme_logits_do_not_overflow() -> None:
    model = _model(dense_top=1.0)
    assert model.probability(replace(FEATURES, dense_top=-1e6)) == 0.0
    assert model.probability(replace(FEATURES, dense_top=1e6)) == 1.0


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"features": ("dense_top",), "means": (0.0, 1.0)}, "same length"),
        ({"features": ("colour",)}, "unknown answerability features"),
        ({"scales": (0.0,)}, "positive"),
    ],
)
def test_bad_models_are_refused(fields: dict[str, object], problem: str) -> None:
    values: dict[str, object] = {
        "features": ("dense_top",),
        "means": (0.8,),
        "scales": (0.01,),
        "coefficients": (1.0,),
        "intercept": 0.0,
    }
    with pytest.raises(ValueError, match=problem):
        AnswerabilityModel.model_validate(values | fields)


def test_abstain_reasons_name_the_strongest_pulls_once_per_code() -> None:
    model = _model(dense_top=1.0, evidence=2.0, evidence_top=3.0, language_match=0.05)
    weak = replace(FEATURES, dense_top=0.85, evidence=0.85, evidence_top=0.83, language_match=0.0)
    reasons = abstain_reasons(model, weak)
    assert [reason.code for reason in reasons] == ["weak_evidence", "cross_lingual", "weak_match"]
    assert "0.830" in reasons[0].detail  # the top chunk's best sentence, the strongest pull


def test_no_reasons_when_nothing_pulls_down() -> None:
    assert abstain_reasons(_model(dense_top=1.0), FEATURES) == []


def test_a_strong_value_is_never_a_reason_even_with_a_negative_coefficient() -> None:
    # dense_top standing in for a correlated feature: a high score lowers the logit but explains nothing.
    model = _model(dense_top=-1.0, evidence_top=1.0)
    reasons = abstain_reasons(model, replace(FEATURES, dense_top=0.9, evidence_top=0.86))
    assert [reason.code for reason in reasons] == ["weak_evidence"]


def test_the_shipped_model_loads_and_rewards_a_better_match() -> None:
    model = default_model()
    assert set(model.features) <= set(FEATURE_NAMES)
    assert all(math.isfinite(value) for value in (*model.coefficients, *model.means, model.intercept))
    # A uniformly closer match (passage and its sentences) must never lower the confidence.
    stronger = replace(FEATURES, dense_top=0.89, evidence=0.9, evidence_top=0.9)
    assert model.probability(stronger) > model.probability(FEATURES)
    # More of the question's words in the source never lowers it either.
    assert model.probability(replace(FEATURES, term_coverage=0.9)) >= model.probability(FEATURES)


def test_a_model_table_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "model.toml"
    path.write_text(
        '[answerability]\nfeatures = ["dense_top"]\nmeans = [0.8]\nscales = [0.01]\ncoefficients = [2.0]\n'
        "intercept = -1.0\n",
        encoding="utf-8",
    )
    model = load_model(path)
    assert model.probability(replace(FEATURES, dense_top=0.8)) == pytest.approx(1 / (1 + math.e))
