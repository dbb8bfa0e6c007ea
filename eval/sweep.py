"""A grid over profile knobs, run with the answerdesk system; one index per suite and chunking setting."""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval.answerer import BuildContext
from eval.run import run_cases, summarize
from eval.suite import Suite
from eval.systems import build_answerdesk
from retrieval.config import RetrievalProfile
from retrieval.embedding import Embedder

# Knobs that change the chunks, so the index is rebuilt for each of their combinations.
INDEX_KNOBS = ("chunk_target_tokens", "chunk_max_tokens", "chunk_overlap_tokens")
LOWER_IS_BETTER = ("hallucination_rate", "error_rate", "aurc", "ece", "latency_p50_ms", "latency_p95_ms")


@dataclass(frozen=True)
class SweepPoint:
    suite: str
    values: dict[str, Any]
    metrics: dict[str, Any]


def parse_grid(specs: Sequence[str], base: RetrievalProfile) -> dict[str, list[Any]]:
    """``["top_k=4,8", "score_midpoint=0.85,0.86"]`` → knob → values, each checked against the profile."""
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        knob, sep, raw = spec.partition("=")
        knob = knob.strip()
        if not sep or not raw.strip():
            raise ValueError(f"--grid {spec!r}: expected KNOB=V1,V2,…")
        if knob not in RetrievalProfile.model_fields or knob == "name":
            raise ValueError(f"--grid {spec!r}: {knob!r} is not a profile knob")
        values = []
        for item in raw.split(","):
            try:
                checked = RetrievalProfile.model_validate(base.model_dump() | {knob: item.strip()})
            except ValidationError as exc:
                raise ValueError(f"--grid {spec!r}: {exc.errors()[0]['msg']}") from exc
            values.append(getattr(checked, knob))
        axes[knob] = values
    return axes


def grid_points(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    knobs = list(axes)
    return [dict(zip(knobs, combination, strict=True)) for combination in itertools.product(*axes.values())]


def sweep(
    suites: Sequence[Suite],
    base: RetrievalProfile,
    axes: dict[str, list[Any]],
    embedder: Embedder,
    metric: str,
    show_progress: bool = True,
) -> list[SweepPoint]:
    """Every grid point on every suite, best first by ``metric``."""
    points: list[SweepPoint] = []
    index_axes = {knob: values for knob, values in axes.items() if knob in INDEX_KNOBS}
    answer_axes = {knob: values for knob, values in axes.items() if knob not in INDEX_KNOBS}
    for suite in suites:
        for index_values in grid_points(index_axes):
            index_profile = RetrievalProfile.model_validate(base.model_dump() | index_values)
            with tempfile.TemporaryDirectory(prefix="answerdesk-sweep-") as scratch:
                context = BuildContext(embedder, index_profile, Path(scratch), show_progress)
                system = build_answerdesk(suite.documents, context)
                for answer_values in grid_points(answer_axes):
                    values = index_values | answer_values
                    profile = RetrievalProfile.model_validate(index_profile.model_dump() | answer_values)
                    results = run_cases(system.with_profile(profile), suite.cases, show_progress=False)
                    points.append(SweepPoint(suite.name, values, summarize(results)))
    descending = metric not in LOWER_IS_BETTER

    def key(point: SweepPoint) -> float:
        value = point.metrics.get(metric)
        if not isinstance(value, int | float) or math.isnan(value):
            return math.inf
        return -value if descending else value

    return sorted(points, key=key)


def sweep_markdown(points: Sequence[SweepPoint], knobs: Sequence[str], metric: str) -> str:
    columns = [metric, "recall@1", "mrr@10", "hallucination_rate", "error_rate", "answered_precision"]
    columns = list(dict.fromkeys(columns))
    lines = [
        "| suite | " + " | ".join([*knobs, *columns]) + " |",
        "|" + "---|" * (len(knobs) + len(columns) + 1),
    ]
    for point in points:
        cells = [str(point.values[k]) for k in knobs] + [_cell(point.metrics.get(c)) for c in columns]
        lines.append(f"| {point.suite} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"
