"""``report.html``: the metrics table and four plots (PNG, embedded): risk–coverage, recall@k,
reliability diagram and per-language bars."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.metrics import reliability_bins, risk_coverage

if TYPE_CHECKING:
    from eval.run import CaseResult

LANGUAGE_METRICS = ("recall@1", "mrr@10", "hallucination_rate", "error_rate")


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5, 3.6))


def plot_risk_coverage(results: Sequence[CaseResult], aurc: float) -> str:
    figure, axes = _figure()
    coverage, risk = risk_coverage([r.confidence for r in results], [r.correct_if_answered for r in results])
    axes.plot(coverage, risk, drawstyle="steps-post")
    axes.set(xlabel="coverage (share answered)", ylabel="risk (share wrong)", xlim=(0, 1), ylim=(0, 1))
    axes.set_title(f"risk–coverage (AURC {aurc:.3f})")
    axes.grid(alpha=0.3)
    return _png(figure)


def plot_recall_curve(curve: Sequence[float]) -> str:
    figure, axes = _figure()
    axes.plot(range(1, len(curve) + 1), curve, marker="o")
    axes.set(xlabel="k", ylabel="recall@k", ylim=(0, 1.02), title="recall@k")
    axes.grid(alpha=0.3)
    return _png(figure)


def plot_reliability(results: Sequence[CaseResult], ece: float) -> str:
    figure, axes = _figure()
    bins = 10
    table = reliability_bins([r.confidence for r in results], [r.correct_if_answered for r in results], bins)
    centers = [(min(int(c * bins), bins - 1) + 0.5) / bins for c, _, _ in table]
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axes.bar(centers, [a for _, a, _ in table], width=0.9 / bins, alpha=0.6, label="accuracy per bin")
    axes.plot([c for c, _, _ in table], [a for _, a, _ in table], "o", color="black", label="at mean confidence")
    axes.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=f"reliability (ECE {ece:.3f})")
    axes.legend(loc="upper left")
    return _png(figure)


def plot_languages(per_language: dict[str, dict[str, Any]]) -> str:
    figure, axes = _figure()
    languages = list(per_language)
    width = 0.8 / len(LANGUAGE_METRICS)
    for offset, metric in enumerate(LANGUAGE_METRICS):
        values = [_number(per_language[language].get(metric)) for language in languages]
        positions = [i + offset * width for i in range(len(languages))]
        axes.bar(positions, values, width=width, label=metric)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(languages))], languages)
    axes.set(ylim=(0, 1.35), title="per language")
    axes.legend(fontsize="small", loc="upper center", ncol=2)
    return _png(figure)


def _number(value: Any) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def write_report(path: Path, metrics: dict[str, Any], results: Sequence[CaseResult]) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{_fmt(value)}</td></tr>"
        for key, value in metrics.items()
        if isinstance(value, int | float | str)
    )
    images = [
        plot_risk_coverage(results, metrics["aurc"]),
        plot_recall_curve([_number(v) for v in metrics["recall_curve"]]),
        plot_reliability(results, metrics["ece"]),
        plot_languages(metrics["per_language"]),
    ]
    figures = "".join(f'<img alt="plot" src="data:image/png;base64,{image}">' for image in images)
    title = html.escape(f"{metrics.get('suite', '')} · {metrics.get('system', '')} · {metrics.get('profile', '')}")
    path.write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 10px}img{margin:6px}</style>"
        f"<h1>{title}</h1><div>{figures}</div><table>{rows}</table>\n",
        encoding="utf-8",
    )
