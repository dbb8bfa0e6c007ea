from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from answerdesk.cli import app
from eval.calibrate import (
    LabelledCase,
    calibrate,
    cross_validated,
    fit_model,
    fit_threshold,
    leave_one_suite_out,
    model_to_toml,
    profile_to_toml,
    suite_weights,
)
from retrieval.answerability import Features, load_model
from retrieval.config import RetrievalProfile

BASE = Features(
    dense_top=0.85,
    dense_margin=0.01,
    document_margin=0.01,
    lexical_top=0.0,
    agreement=0.0,
    term_coverage=0.3,
    evidence=0.85,
    evidence_top=0.85,
    language_match=1.0,
)


def _cases(suite: str, n: int, seed: int) -> list[LabelledCase]:
    """Cases whose chance of being right rises with the best sentence's similarity; the rest is noise."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(n):
        evidence = float(rng.uniform(0.78, 0.92))
        right = bool(rng.random() < 1 / (1 + np.exp(-(evidence - 0.85) / 0.01)))
        features = replace(
            BASE,
            evidence_top=evidence,
            evidence=evidence,
            dense_top=float(rng.uniform(0.8, 0.9)),
            term_coverage=float(rng.uniform(0, 1)),
        )
        cases.append(LabelledCase(suite, f"{suite}/{index}", features, should_abstain=not right, right=right))
    return cases


CASES = _cases("a", 400, 1) + _cases("b", 100, 2)


@pytest.mark.parametrize(
    ("scores", "correct", "target", "expected"),
    [
        ([0.9, 0.8, 0.7, 0.6], [True, True, False, False], 1.0, 0.8),
        ([0.9, 0.8, 0.7, 0.6], [True, True, False, False], 0.6, 0.7),  # 2 of 3 right
        ([0.9, 0.8, 0.7, 0.6], [True, True, False, False], 0.5, 0.6),
        ([0.9, 0.8], [False, False], 0.5, None),
        ([0.8, 0.8, 0.7], [True, False, True], 0.6, 0.7),  # ties count together: 0.8 alone is 1/2
    ],
)
def test_fit_threshold(scores: list[float], correct: list[bool], target: float, expected: float | None) -> None:
    assert fit_threshold(scores, correct, target) == expected


def test_fit_threshold_weighs_cases() -> None:
    # The wrong case at 0.8 weighs 3: 0.9 and 0.8 together are right only 1/4 of the time.
    assert fit_threshold([0.9, 0.8, 0.7], [True, False, True], 0.5, weights=[1, 3, 1]) == 0.9
    assert fit_threshold([0.9, 0.8, 0.7], [True, False, True], 0.5) == 0.7


def test_suites_weigh_the_same_whatever_their_size() -> None:
    weights = suite_weights(CASES)
    assert weights[:400].sum() == pytest.approx(weights[400:].sum())
    assert weights.mean() == pytest.approx(1.0)


def test_the_fitted_model_finds_the_informative_feature_and_drops_constant_ones() -> None:
    model = fit_model(CASES)
    assert "lexical_top" not in model.features and "agreement" not in model.features
    coefficients = dict(zip(model.features, model.coefficients, strict=True))
    assert coefficients["evidence_top"] + coefficients["evidence"] > 1.0
    assert abs(coefficients["term_coverage"]) < 0.5
    low, high = replace(BASE, evidence=0.8, evidence_top=0.8), replace(BASE, evidence=0.9, evidence_top=0.9)
    assert model.probability(low) < 0.2 < 0.8 < model.probability(high)


def test_unknown_values_are_fitted_as_typical() -> None:
    # Half the cases have lexical scores that track the label, half have none (NaN).
    cases = [
        replace(case, features=replace(case.features, lexical_top=(3.0 if case.right else 1.0) if i % 2 else math.nan))
        for i, case in enumerate(CASES)
    ]
    model = fit_model(cases)
    coefficients = dict(zip(model.features, model.coefficients, strict=True))
    assert coefficients["lexical_top"] > 0.5
    assert all(math.isfinite(value) for value in (*model.means, *model.scales, *model.coefficients))


def test_one_label_only_cannot_be_fitted() -> None:
    with pytest.raises(ValueError, match="should be answered and cases that should not"):
        fit_model([case for case in CASES if case.right])


def test_held_out_probabilities_cover_every_case() -> None:
    out_of_fold = cross_validated(CASES, folds=4)
    transfer = leave_one_suite_out(CASES)
    assert transfer is not None
    for probabilities in (out_of_fold, transfer):
        assert probabilities.shape == (len(CASES),)
        assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert leave_one_suite_out(CASES[:400]) is None


@pytest.mark.slow
def test_calibrate_reports_held_out_figures_and_can_move_the_threshold() -> None:
    result = calibrate(CASES, RetrievalProfile(), "fitted", folds=4)
    assert result.profile.name == "fitted"
    assert result.profile.min_confidence == 0.5
    assert "a, b (500 cases, suites weighted equally)" in result.profile.answerability.fitted_on
    for section in ("In-sample", "4-fold cross-validation", "Leave-one-suite-out"):
        assert section in result.report
    strict = calibrate(CASES, RetrievalProfile(), "strict", folds=4, target_precision=0.95)
    assert strict.profile.min_confidence > 0.5


def test_profiles_and_models_round_trip_through_toml(tmp_path: Path) -> None:
    profile = calibrate(CASES, RetrievalProfile(), "fitted \"quoted\"", folds=3).profile
    path = tmp_path / "fitted.toml"
    path.write_text(profile_to_toml(profile, comment="line one\nline two"), encoding="utf-8")
    assert RetrievalProfile.from_toml(path) == profile
    model_path = tmp_path / "model.toml"
    model_path.write_text(model_to_toml(profile.answerability, comment="fitted"), encoding="utf-8")
    assert load_model(model_path) == profile.answerability


@pytest.mark.parametrize(
    "suite", ["nomiracl", "nomiracl:de", "nomiracl-pooled:en", "xquad-r-abstain:de-en", "squad2", "clinc150"]
)
def test_calibrate_refuses_the_test_set(tmp_path: Path, suite: str) -> None:
    result = CliRunner().invoke(
        app, ["eval", "calibrate", "--suite", "sample", "--suite", suite, "--out", str(tmp_path / "x.toml")]
    )
    assert result.exit_code == 2
    assert "is a public eval (test) set" in " ".join(result.output.split())
    assert not (tmp_path / "x.toml").exists()
