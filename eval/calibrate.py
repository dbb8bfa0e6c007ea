"""Fit the abstention threshold to a target answered-precision, and the confidence slope to the data.

The engine answers when ``sigmoid((top_score − score_midpoint) / score_scale) ≥ min_confidence``.
Calibration keeps ``min_confidence`` and sets ``score_midpoint`` to the lowest top score at which the
answered cases are right at least ``target`` of the time (the most coverage that meets the target), and
``score_scale`` to the slope of a logistic fit of "right" on the top score, so confidence rises as
steeply as accuracy does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from retrieval.config import RetrievalProfile


def fit_threshold(scores: Sequence[float], correct: Sequence[bool], target: float) -> float | None:
    """The lowest score ``t`` such that the cases scoring ≥ ``t`` are right ≥ ``target`` of the time.

    None when no threshold reaches the target.
    """
    if len(scores) != len(correct):
        raise ValueError("scores and correct differ in length")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    best: float | None = None
    right = 0
    for position, index in enumerate(order, start=1):
        right += 1 if correct[index] else 0
        is_last_of_tie = position == len(order) or scores[order[position]] != scores[index]
        if is_last_of_tie and right / position >= target:
            best = scores[index]
    return best


def fit_logistic(scores: Sequence[float], correct: Sequence[bool]) -> tuple[float, float] | None:
    """``(midpoint, scale)`` of P(right) = sigmoid((score − midpoint) / scale) by maximum likelihood.

    None when the fit has no increasing slope (e.g. all cases right, or all wrong).
    """
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if len(x) < 2 or y.min() == y.max():
        return None
    center, spread = float(x.mean()), float(x.std()) or 1.0
    z = (x - center) / spread

    def loss(params: np.ndarray) -> float:
        logits = params[0] * z + params[1]
        return float(np.mean(np.logaddexp(0.0, logits) - y * logits))

    slope, intercept = minimize(loss, x0=np.array([1.0, 0.0]), method="L-BFGS-B").x
    if slope <= 1e-6:
        return None
    scale = spread / slope
    return center - intercept * scale, scale


@dataclass(frozen=True)
class Fit:
    profile: RetrievalProfile
    cases: int
    target: float
    coverage: float
    precision: float
    logistic_midpoint: float | None

    def describe(self) -> str:
        midpoint = "n/a" if self.logistic_midpoint is None else f"{self.logistic_midpoint:.4f}"
        return (
            f"fitted on {self.cases} cases: score_midpoint {self.profile.score_midpoint:.4f} answers "
            f"{self.coverage:.1%} of them with precision {self.precision:.3f} (target {self.target:.2f}); "
            f"score_scale {self.profile.score_scale:.4f} (logistic 50% point {midpoint})"
        )


def fit_profile(
    base: RetrievalProfile, scores: Sequence[float], correct: Sequence[bool], target: float, name: str
) -> Fit:
    threshold = fit_threshold(scores, correct, target)
    if threshold is None:
        raise ValueError(f"no threshold reaches answered-precision {target}")
    logistic = fit_logistic(scores, correct)
    scale = base.score_scale if logistic is None else min(max(logistic[1], 1e-4), 1.0)
    # The engine answers at confidence >= min_confidence; put that point exactly on the threshold.
    offset = 0.0 if base.min_confidence == 0.5 else scale * math.log(base.min_confidence / (1 - base.min_confidence))
    profile = base.model_copy(update={"name": name, "score_midpoint": threshold - offset, "score_scale": scale})
    answered = [ok for score, ok in zip(scores, correct, strict=True) if score >= threshold]
    return Fit(
        profile=RetrievalProfile.model_validate(profile.model_dump()),
        cases=len(scores),
        target=target,
        coverage=len(answered) / len(scores),
        precision=sum(answered) / len(answered),
        logistic_midpoint=None if logistic is None else logistic[0],
    )


def profile_to_toml(profile: RetrievalProfile, comment: str = "") -> str:
    """The profile as a TOML file (every knob, so the file says exactly what it runs)."""
    lines = [f"# {line}" for line in comment.splitlines()]
    for key, value in profile.model_dump().items():
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        else:
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"
