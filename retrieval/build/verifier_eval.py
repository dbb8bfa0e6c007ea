"""Held-out figures for the verifier: AUC and accuracy at 0.5 per language and kind, and its speed."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.table import Table

from retrieval.build.verifier_data import SEED, Pair
from retrieval.verifier import Verifier


@dataclass
class EvalResult:
    pairs: list[Pair]
    scores: np.ndarray
    seconds: float

    @property
    def ms_per_pair(self) -> float:
        return 1000 * self.seconds / max(len(self.pairs), 1)


def evaluate_pairs(verifier: Verifier, pairs: Sequence[Pair], limit: int | None = None) -> EvalResult:
    """Score ``pairs``; with ``limit``, a fixed random sample of at most that many per language."""
    chosen = list(pairs)
    if limit is not None:
        by_lang: dict[str, list[Pair]] = defaultdict(list)
        for pair in chosen:
            by_lang[pair.lang].append(pair)
        rng = random.Random(SEED)
        chosen = [p for lang in sorted(by_lang) for p in rng.sample(by_lang[lang], min(limit, len(by_lang[lang])))]
    started = time.perf_counter()
    scores = verifier.score_pairs([(p.question, p.text) for p in chosen])
    return EvalResult(chosen, scores, time.perf_counter() - started)


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if len(set(labels.tolist())) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def _rows(result: EvalResult, key: str) -> list[tuple[str, int, float | None, float]]:
    """Per group: pairs, AUC, accuracy at 0.5. A group of one label (a kind) gets the AUC against
    every pair of the other label: e.g. ``bm25`` = how well gold texts are ranked above BM25 negatives."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, pair in enumerate(result.pairs):
        groups[getattr(pair, key)].append(index)
    groups["all"] = list(range(len(result.pairs)))
    all_labels = np.array([pair.label for pair in result.pairs])
    rows = []
    for name, indices in sorted(groups.items()):
        labels = all_labels[indices]
        scores = result.scores[indices]
        accuracy = float(np.mean((scores >= 0.5) == (labels == 1)))
        if len(set(labels.tolist())) == 1:
            indices = indices + [int(i) for i in np.flatnonzero(all_labels != labels[0])]
        rows.append((name, len(groups[name]), auc(all_labels[indices], result.scores[indices]), accuracy))
    return rows


def report_tables(result: EvalResult) -> list[Table]:
    tables = []
    for key in ("lang", "kind"):
        table = Table(key, "pairs", "AUC", "acc@0.5", title=f"verifier on held-out pairs, by {key}")
        for name, count, area, accuracy in _rows(result, key):
            table.add_row(name, str(count), "-" if area is None else f"{area:.3f}", f"{accuracy:.3f}")
        tables.append(table)
    speed = Table("pairs", "seconds", "ms/pair", title="speed (batches of 16, int8 ONNX)")
    speed.add_row(str(len(result.pairs)), f"{result.seconds:.1f}", f"{result.ms_per_pair:.1f}")
    tables.append(speed)
    return tables
