"""Fit the message heads (support/message_classifier.py) and measure triage on labelled messages.

Training examples are ours (``data/triage/*.jsonl``, written for this purpose in en ru lv zh de es
fr it pl pt uk); the dev sets in ``data/eval/triage_*.jsonl`` are only ever measured. Each head is
a logistic regression over the standardised e5 query embedding; its threshold is chosen on
out-of-fold probabilities (stratified K-fold over the training examples), then the head is refit
on all examples. Fixed seed and deterministic solvers: the same data gives the same file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from retrieval.embedding import Embedder
from support.message_classifier import DEFAULT_HEADS_PATH, FOLLOW_UP, MessageHeads

REPO = Path(__file__).resolve().parents[1]
TRAINING_DIR = REPO / "data" / "triage"
TRIAGE_TRAINING = TRAINING_DIR / "triage_train.jsonl"
FOLLOW_UP_TRAINING = TRAINING_DIR / "follow_up_train.jsonl"
TRIAGE_LABELS = (
    "customer_requested_human",
    "strong_emotion",
    "urgent",
    "legal_threat",
    "chargeback",
    "security_incident",
    "account_takeover",
    "cancellation_threat",
)
SEED = 13
FOLDS = 5
C_GRID = (0.25, 1.0, 4.0)
# A follow-up head's "certain" threshold must be right this often out of fold; its "possible"
# threshold must find this share of the follow-ups.
FOLLOW_UP_PRECISION = 0.95
FOLLOW_UP_RECALL = 0.95

Matrix = NDArray[np.float64]


class TrainingDataError(ValueError):
    """A training file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    text: str
    language: str
    labels: frozenset[str]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TrainingDataError(f"cannot read {path}: {exc}") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{path}:{number}: {exc}") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise TrainingDataError(f"{path}:{number}: each line needs a non-empty 'text'")
        rows.append(row)
    return rows


def load_examples(triage_path: Path = TRIAGE_TRAINING, follow_up_path: Path = FOLLOW_UP_TRAINING) -> list[Example]:
    """Every training message with its labels; triage messages are stand-alone (not follow-ups)."""
    examples = []
    for row in read_jsonl(triage_path):
        labels = row.get("labels")
        if not isinstance(labels, list) or any(label not in TRIAGE_LABELS for label in labels):
            raise TrainingDataError(f"{triage_path}: {row['text']!r}: labels must be a list of {TRIAGE_LABELS}")
        examples.append(Example(row["text"], str(row.get("language", "")), frozenset(labels)))
    for row in read_jsonl(follow_up_path):
        if not isinstance(row.get("follow_up"), bool):
            raise TrainingDataError(f"{follow_up_path}: {row['text']!r}: 'follow_up' must be true or false")
        labels = frozenset([FOLLOW_UP]) if row["follow_up"] else frozenset()
        examples.append(Example(row["text"], str(row.get("language", "")), labels))
    return examples


def embed_all(
    embedder: Embedder, texts: Sequence[str], progress: Callable[[Iterable[str]], Iterable[str]] = iter
) -> Matrix:
    """Query embeddings, as the desk computes them for a customer message."""
    return np.stack([embedder.embed_query(text) for text in progress(texts)]).astype(np.float64)


def _fit_one(x: Matrix, y: NDArray[np.bool_], c: float) -> tuple[NDArray[np.float64], float]:
    """A logistic head on standardised features, folded back to raw-vector weights and bias."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    model.fit((x - mean) / scale, y)
    weights = model.coef_[0] / scale
    return weights, float(model.intercept_[0] - weights @ mean)


def _out_of_fold(x: Matrix, y: NDArray[np.bool_], c: float, groups: Sequence[str]) -> NDArray[np.float64]:
    from sklearn.model_selection import StratifiedKFold

    probabilities = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    for train, held in folds.split(x, groups):
        weights, bias = _fit_one(x[train], y[train], c)
        probabilities[held] = 1.0 / (1.0 + np.exp(-(x[held] @ weights + bias)))
    return probabilities


def best_f1_threshold(probabilities: NDArray[np.float64], y: NDArray[np.bool_]) -> tuple[float, float]:
    """The best F1 and a threshold for it: the middle of the thresholds within 0.01 of that F1, so
    one lucky example in a small fold does not pull it to an edge."""
    scores = []
    for threshold in _candidates(probabilities):
        predicted = probabilities >= threshold
        tp = int((predicted & y).sum())
        scores.append((threshold, 2 * tp / max(int(predicted.sum()) + int(y.sum()), 1)))
    best = max(f1 for _, f1 in scores)
    near = [threshold for threshold, f1 in scores if f1 >= best - 0.01]
    return float(np.median(near)), best


def _candidates(probabilities: NDArray[np.float64]) -> list[float]:
    values = np.unique(probabilities)
    return [float(v) for v in (values[:-1] + values[1:]) / 2] or [0.5]


def precision_threshold(probabilities: NDArray[np.float64], y: NDArray[np.bool_], target: float) -> float:
    """The lowest threshold whose positives are right at least ``target`` of the time."""
    for threshold in _candidates(probabilities):
        predicted = probabilities >= threshold
        if predicted.any() and (predicted & y).sum() / predicted.sum() >= target:
            return threshold
    return 1.0


def recall_threshold(probabilities: NDArray[np.float64], y: NDArray[np.bool_], target: float) -> float:
    """The highest threshold that still finds at least ``target`` of the positives."""
    best = 0.0
    for threshold in _candidates(probabilities):
        if ((probabilities >= threshold) & y).sum() >= target * y.sum():
            best = threshold
    return best


@dataclass(frozen=True)
class FitResult:
    heads: MessageHeads
    report: str


def fit_heads(examples: Sequence[Example], vectors: Matrix, model: str) -> FitResult:
    """One head per label: C and threshold from out-of-fold probabilities, then refit on everything."""
    labels = (*TRIAGE_LABELS, FOLLOW_UP)
    weights, biases, thresholds = [], [], []
    lines = ["| head | positives | C | threshold | out-of-fold precision | recall | F1 |", "|---" * 7 + "|"]
    possible = 0.5
    for label in labels:
        y = np.array([label in example.labels for example in examples])
        # Stratify by label and language, so every fold holds each language's positives.
        groups = [f"{int(flag)}:{example.language}" for flag, example in zip(y, examples, strict=True)]
        groups = [g if groups.count(g) >= FOLDS else f"{g[0]}:rare" for g in groups]
        scored = [
            (best_f1_threshold(probabilities, y), c, probabilities)
            for c in C_GRID
            for probabilities in [_out_of_fold(vectors, y, c, groups)]
        ]
        (threshold, f1), c, probabilities = max(scored, key=lambda item: (item[0][1], -item[1]))
        if label == FOLLOW_UP:
            threshold = precision_threshold(probabilities, y, FOLLOW_UP_PRECISION)
            possible = min(recall_threshold(probabilities, y, FOLLOW_UP_RECALL), threshold)
        predicted = probabilities >= threshold
        precision = (predicted & y).sum() / max(predicted.sum(), 1)
        recall = (predicted & y).sum() / max(y.sum(), 1)
        figures = f"{threshold:.3f} | {precision:.3f} | {recall:.3f} | {f1:.3f}"
        lines.append(f"| {label} | {int(y.sum())} | {c:g} | {figures} |")
        w, b = _fit_one(vectors, y, c)
        weights.append(w)
        biases.append(b)
        thresholds.append(threshold)
    heads = MessageHeads(
        labels=labels,
        weights=np.asarray(weights, dtype=np.float32),
        bias=np.asarray(biases, dtype=np.float32),
        thresholds=np.asarray(thresholds, dtype=np.float32),
        possible_follow_up=float(possible),
        model=model,
    )
    lines.append(f"\nfollow_up: certain at p >= {heads.threshold(FOLLOW_UP):.3f}, possible at p >= {possible:.3f}")
    return FitResult(heads, "\n".join(lines))


# ---- measuring triage on labelled messages ---------------------------------------------------------


@dataclass
class TriageCounts:
    """Per language: escalation messages and how many escalated; ordinary ones and how many escalated."""

    escalations: int = 0
    escalated: int = 0
    exact: int = 0
    ordinary: int = 0
    false_escalations: int = 0


def triage_table(
    labelled: Iterable[tuple[str, str, list[str]]], detect: Callable[[str], set[str]]
) -> tuple[dict[str, TriageCounts], list[tuple[str, list[str], list[str]]]]:
    """Counts per language for ``(language, text, expected labels)`` rows, and the misses."""
    counts: dict[str, TriageCounts] = defaultdict(TriageCounts)
    misses = []
    for language, text, expected in labelled:
        got = detect(text)
        row = counts[language]
        if expected:
            row.escalations += 1
            row.escalated += bool(got)
            row.exact += got == set(expected)
        else:
            row.ordinary += 1
            row.false_escalations += bool(got)
        if bool(got) != bool(expected):
            misses.append((text, sorted(expected), sorted(got)))
    return dict(counts), misses


# ---- commands ----------------------------------------------------------------------------------------

DEV_SETS = (REPO / "data" / "eval" / "triage_labelled.jsonl", REPO / "data" / "eval" / "triage_holdout.jsonl")
ORDINARY_GLOB = "sample_qa_*.jsonl"


def _settings() -> Any:
    from retrieval.config import load_settings

    return load_settings(None)[0]


def triage_fit_command(
    out: Annotated[Path, typer.Option(help="Heads file to write.")] = DEFAULT_HEADS_PATH,
    triage_data: Annotated[Path, typer.Option(help="Escalation examples (JSONL).")] = TRIAGE_TRAINING,
    follow_up_data: Annotated[Path, typer.Option(help="Follow-up examples (JSONL).")] = FOLLOW_UP_TRAINING,
) -> None:
    """Fit the triage and follow-up heads on our written examples (thresholds from held-out folds)."""
    from tqdm import tqdm

    from eval.run import build_embedder

    try:
        examples = load_examples(triage_data, follow_up_data)
    except TrainingDataError as exc:
        raise _fail(str(exc)) from exc
    settings = _settings()
    embedder = build_embedder(settings, cache_queries=True)
    vectors = embed_all(embedder, [example.text for example in examples], lambda texts: tqdm(texts, desc="embed"))
    result = fit_heads(examples, vectors, settings.embedding_model)
    result.heads.save(out)
    console.print(result.report, markup=False)
    console.print(f"wrote {out} ({len(examples)} examples)")


def labelled_rows(files: Sequence[Path], ordinary: Sequence[Path]) -> list[tuple[str, str, list[str]]]:
    """``(language, text, expected)`` from triage sets, plus sample questions that must not escalate."""
    rows = []
    for path in files:
        for row in read_jsonl(path):
            expected = row.get("expected")
            if not isinstance(expected, list):
                raise TrainingDataError(f"{path}: {row['text']!r}: 'expected' must be a list of labels")
            rows.append((str(row.get("language", "?")), row["text"], [str(label) for label in expected]))
    for path in ordinary:
        for row in _questions(path):
            rows.append((f"{row.get('language', '?')} (sample)", row["question"], []))
    return rows


def _questions(path: Path) -> list[dict[str, Any]]:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainingDataError(f"{path}: {exc}") from exc
    return [row for row in rows if isinstance(row, dict) and isinstance(row.get("question"), str)]


def triage_command(
    files: Annotated[list[Path] | None, typer.Argument(help="Labelled JSONL: {language, text, expected}.")] = None,
    rules_only: Annotated[bool, typer.Option(help="Phrase rules alone, without the classifier.")] = False,
    sample: Annotated[bool, typer.Option(help="Also count the sample Q&A questions as must-not-escalate.")] = True,
    show_misses: Annotated[bool, typer.Option(help="List every miss.")] = True,
) -> None:
    """Escalation recall and false escalations per language, on labelled messages (default: the dev sets)."""
    from eval.run import build_embedder
    from support.triage import build_triage, triage_label

    ordinary = sorted((REPO / "data" / "eval").glob(ORDINARY_GLOB)) if sample else []
    try:
        rows = labelled_rows(files or DEV_SETS, ordinary)
    except TrainingDataError as exc:
        raise _fail(str(exc)) from exc
    embedder = None if rules_only else build_embedder(_settings(), cache_queries=True)
    triage = build_triage(embedder=embedder)
    counts, misses = triage_table(rows, lambda text: {triage_label(t) for t in triage.detect(text)})
    table = Table(title="triage: " + ("phrase rules only" if rules_only else "classifier + precise rules"))
    for column in ("language", "escalations", "escalated", "exact reasons", "ordinary", "false escalations"):
        table.add_column(column, justify="right")
    total = TriageCounts()
    for language, row in sorted(counts.items()):
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(row, name))
        table.add_row(language, *_cells(row))
    table.add_row("all", *_cells(total))
    console.print(table)
    if show_misses:
        for text, expected, got in misses:
            console.print(f"  expected {expected}, got {got}: {text}", markup=False)


def _cells(row: TriageCounts) -> list[str]:
    def share(part: int, whole: int) -> str:
        return f"{part / whole:.3f}" if whole else "-"

    return [
        str(row.escalations),
        share(row.escalated, row.escalations),
        share(row.exact, row.escalations),
        str(row.ordinary),
        share(row.false_escalations, row.ordinary),
    ]


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


console = Console()
