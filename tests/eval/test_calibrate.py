from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.calibrate import fit_logistic, fit_profile, fit_threshold, profile_to_toml
from retrieval.compose import confidence_from_score
from retrieval.config import RetrievalProfile


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


def test_fit_logistic_recovers_a_known_curve() -> None:
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.78, 0.95, size=4000)
    probability = 1 / (1 + np.exp(-(scores - 0.86) / 0.012))
    correct = rng.random(4000) < probability
    fitted = fit_logistic(scores.tolist(), correct.tolist())
    assert fitted is not None
    midpoint, scale = fitted
    assert midpoint == pytest.approx(0.86, abs=0.003)
    assert scale == pytest.approx(0.012, rel=0.15)


def test_fit_logistic_without_both_outcomes_is_none() -> None:
    assert fit_logistic([0.8, 0.9], [True, True]) is None


@pytest.mark.parametrize("min_confidence", [0.5, 0.7])
def test_fitted_profile_answers_exactly_at_the_threshold(tmp_path: Path, min_confidence: float) -> None:
    base = RetrievalProfile(min_confidence=min_confidence)
    scores = [0.95, 0.9, 0.88, 0.86, 0.84, 0.82, 0.8]
    correct = [True, True, True, False, True, False, False]
    fit = fit_profile(base, scores, correct, target=0.8, name="fitted")
    assert fit.coverage == pytest.approx(5 / 7)
    assert fit.precision == pytest.approx(0.8)
    profile = fit.profile
    at = confidence_from_score(0.84, profile.score_midpoint, profile.score_scale)
    below = confidence_from_score(0.8399, profile.score_midpoint, profile.score_scale)
    assert at >= min_confidence - 1e-9 > below
    path = tmp_path / "fitted.toml"
    path.write_text(profile_to_toml(profile, comment=fit.describe()), encoding="utf-8")
    assert RetrievalProfile.from_toml(path) == profile


def test_unreachable_target_is_an_error() -> None:
    with pytest.raises(ValueError, match="no threshold"):
        fit_profile(RetrievalProfile(), [0.9, 0.8], [False, False], 0.9, "x")
