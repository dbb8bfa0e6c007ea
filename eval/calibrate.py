"""Fit the answerability model (retrieval/answerability.py) on labelled suites.

Every case is run through the engine and its retrieval features are recorded with the label
"answering would be right": the case is answerable and, when its gold documents are known, the top
hit is one of them (answering from another document would be a wrong answer). A scikit-learn
``LogisticRegression`` over standardised features gives the coefficients the profile stores. Each
suite weighs the same in the fit whatever its size, so squad2's 6,078 cases do not drown our
221-case sample set.

Held-out figures, never only in-sample: out-of-fold probabilities of a stratified k-fold
cross-validation, and leave-one-suite-out (fit on the other suites, score this one), which is how
the model would fare on a knowledge base it has never seen.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import tomli_w
from numpy.typing import NDArray
from tqdm import tqdm

from eval.metrics import expected_calibration_error
from eval.suite import Suite
from retrieval.answerability import FEATURE_NAMES, AnswerabilityModel, Features, extract_features
from retrieval.config import RetrievalProfile
from retrieval.embedding import Embedder
from retrieval.scope import Scope
from retrieval.verify import Verifier

# L2 strength of the logistic regression (sklearn's C): mild, the features are few and standardised.
REGULARISATION_C = 1.0


@dataclass(frozen=True)
class LabelledCase:
    """One case's retrieval features and whether answering it from the top hit would be right."""

    suite: str
    case_id: str
    features: Features
    should_abstain: bool
    right: bool


def collect_cases(
    suite: Suite,
    profile: RetrievalProfile,
    embedder: Embedder,
    workdir: Any,
    show_progress: bool = True,
    verifier: Verifier | None = None,
) -> list[LabelledCase]:
    """Run ``suite`` through the engine (a scratch index in ``workdir``) and label every case."""
    from eval.answerer import BuildContext
    from eval.systems import build_answerdesk

    engine = build_answerdesk(suite.documents, BuildContext(embedder, profile, workdir, show_progress, verifier)).engine
    labelled = []
    for case in tqdm(suite.cases, desc=f"features {suite.name}", unit="q", disable=not show_progress):
        scope = None
        if case.allowed_document_ids is not None:
            scope = Scope.everything().narrowed(document_ids=case.allowed_document_ids)
        query = engine.query(case.question, scope=scope)
        assessment = engine.examine(query)
        hits = assessment.hits
        if not hits:
            continue  # nothing retrieved: the engine abstains without asking the model
        features = extract_features(query.language, hits, assessment.evidence, assessment.verifier)
        gold = case.gold_document_ids
        right = not case.should_abstain and (not gold or hits[0].chunk.document_id in gold)
        labelled.append(LabelledCase(suite.name, case.id, features, case.should_abstain, right))
    return labelled


def feature_matrix(cases: Sequence[LabelledCase], names: Sequence[str] = FEATURE_NAMES) -> NDArray[np.float64]:
    return np.array([[case.features.as_dict()[name] for name in names] for case in cases], dtype=np.float64)


def suite_weights(cases: Sequence[LabelledCase]) -> NDArray[np.float64]:
    """Sample weights giving every suite the same total weight (mean weight 1)."""
    sizes: dict[str, int] = defaultdict(int)
    for case in cases:
        sizes[case.suite] += 1
    weights = np.array([1.0 / sizes[case.suite] for case in cases])
    return np.asarray(weights * len(cases) / weights.sum(), dtype=np.float64)


def fit_model(cases: Sequence[LabelledCase], fitted_on: str = "") -> AnswerabilityModel:
    """The logistic model over the features that vary in ``cases`` (a constant or always unknown
    one, such as the lexical score without a lexical leg, carries no information and is left out)."""
    from sklearn.linear_model import LogisticRegression

    labels = np.array([case.right for case in cases])
    if len(set(labels.tolist())) < 2:
        raise ValueError("calibration needs cases that should be answered and cases that should not")
    matrix = feature_matrix(cases)
    # Unknown values (NaN, e.g. no lexical scores) sit at the mean, as the model reads them later.
    known = ~np.isnan(matrix)
    varying = np.array([known[:, j].any() and np.nanstd(matrix[:, j]) > 1e-9 for j in range(matrix.shape[1])])
    names = [name for name, keep in zip(FEATURE_NAMES, varying, strict=True) if keep]
    matrix = matrix[:, varying]
    means, scales = np.nanmean(matrix, axis=0), np.nanstd(matrix, axis=0)
    standardised = np.where(np.isnan(matrix), 0.0, (matrix - means) / scales)
    regression = LogisticRegression(C=REGULARISATION_C, max_iter=1000)
    regression.fit(standardised, labels, sample_weight=suite_weights(cases))
    return AnswerabilityModel(
        features=tuple(names),
        means=tuple(float(value) for value in means),
        scales=tuple(float(value) for value in scales),
        coefficients=tuple(float(value) for value in regression.coef_[0]),
        intercept=float(regression.intercept_[0]),
        fitted_on=fitted_on,
    )


def probabilities(model: AnswerabilityModel, cases: Sequence[LabelledCase]) -> NDArray[np.float64]:
    return np.array([model.probability(case.features) for case in cases])


def cross_validated(cases: Sequence[LabelledCase], folds: int = 5, seed: int = 13) -> NDArray[np.float64]:
    """Out-of-fold probabilities: each case is scored by a model fitted without its fold.

    Folds are stratified by suite and label, so every fold sees every suite.
    """
    from sklearn.model_selection import StratifiedKFold

    strata = [f"{case.suite}/{case.right}" for case in cases]
    out = np.zeros(len(cases))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(cases)), strata):
        model = fit_model([cases[i] for i in train])
        out[test] = probabilities(model, [cases[i] for i in test])
    return out


def leave_one_suite_out(cases: Sequence[LabelledCase]) -> NDArray[np.float64] | None:
    """Each suite scored by a model fitted on the other suites; None with fewer than two suites."""
    suites = sorted({case.suite for case in cases})
    if len(suites) < 2:
        return None
    out = np.zeros(len(cases))
    for suite in suites:
        inside = [i for i, case in enumerate(cases) if case.suite == suite]
        others = [case for case in cases if case.suite != suite]
        try:
            model = fit_model(others)
        except ValueError:
            out[inside] = np.nan
            continue
        out[inside] = probabilities(model, [cases[i] for i in inside])
    return out


@dataclass(frozen=True)
class SuiteScore:
    """How a set of probabilities decides one suite's cases at a threshold."""

    suite: str
    cases: int
    auc: float  # ranking quality of the probability for "right"
    answered_precision: float
    hallucination_rate: float  # should-abstain cases answered
    error_rate: float  # answerable cases abstained
    ece: float


def score_suites(cases: Sequence[LabelledCase], probs: NDArray[np.float64], threshold: float) -> list[SuiteScore]:
    """Per suite (and "all"): the decisions the probabilities make at ``threshold``."""
    from sklearn.metrics import roc_auc_score

    groups: dict[str, list[int]] = defaultdict(list)
    for index, case in enumerate(cases):
        groups[case.suite].append(index)
    groups["all"] = list(range(len(cases)))
    scores = []
    for suite, members in groups.items():
        right = [cases[i].right for i in members]
        p = [float(probs[i]) for i in members]
        answered = [i for i in members if probs[i] >= threshold]
        abstainers = [i for i in members if cases[i].should_abstain]
        answerable = [i for i in members if not cases[i].should_abstain]
        scores.append(
            SuiteScore(
                suite=suite,
                cases=len(members),
                auc=float(roc_auc_score(right, p)) if len(set(right)) == 2 else math.nan,
                answered_precision=_share(answered, lambda i: cases[i].right),
                hallucination_rate=_share(abstainers, lambda i: probs[i] >= threshold),
                error_rate=_share(answerable, lambda i: probs[i] < threshold),
                ece=expected_calibration_error(p, right),
            )
        )
    return scores


def _share(indices: Sequence[int], test: Callable[[int], Any]) -> float:
    return sum(1 for i in indices if test(i)) / len(indices) if indices else math.nan


def fit_threshold(
    scores: Sequence[float], correct: Sequence[bool], target: float, weights: Sequence[float] | None = None
) -> float | None:
    """The lowest score ``t`` such that the cases scoring ≥ ``t`` are right ≥ ``target`` of the time
    (weighted by ``weights``); None when no threshold reaches the target."""
    if len(scores) != len(correct):
        raise ValueError("scores and correct differ in length")
    weights = weights if weights is not None else [1.0] * len(scores)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    best: float | None = None
    right = total = 0.0
    for position, index in enumerate(order, start=1):
        right += weights[index] if correct[index] else 0.0
        total += weights[index]
        is_last_of_tie = position == len(order) or scores[order[position]] != scores[index]
        if is_last_of_tie and right / total >= target:
            best = scores[index]
    return best


@dataclass(frozen=True)
class Calibration:
    """A fitted profile and the report of how well its model does, in and out of sample."""

    profile: RetrievalProfile
    header: str
    report: str


def calibrate(
    cases: Sequence[LabelledCase],
    base: RetrievalProfile,
    name: str,
    folds: int = 5,
    target_precision: float | None = None,
) -> Calibration:
    """Fit the model on ``cases`` into a copy of ``base``, with held-out figures.

    ``target_precision`` moves ``min_confidence`` to the lowest probability whose answers are right
    that often, measured on out-of-fold probabilities with suites weighted equally.
    """
    if not cases:
        raise ValueError("no cases to calibrate on")
    model = fit_model(cases)
    strata: dict[str, int] = defaultdict(int)
    for case in cases:
        strata[f"{case.suite}/{case.right}"] += 1
    usable_folds = min(folds, *strata.values())
    held_out = cross_validated(cases, usable_folds) if usable_folds >= 2 else None
    threshold = base.min_confidence
    if target_precision is not None:
        ranking = held_out if held_out is not None else probabilities(model, cases)
        weights = suite_weights(cases).tolist()
        found = fit_threshold(ranking.tolist(), [case.right for case in cases], target_precision, weights)
        if found is None:
            raise ValueError(f"no threshold reaches answered-precision {target_precision}")
        threshold = round(found, 4)

    report = [
        scores_markdown(
            f"In-sample (threshold {threshold:.2f})", score_suites(cases, probabilities(model, cases), threshold)
        )
    ]
    if held_out is not None:
        title = f"{usable_folds}-fold cross-validation, out-of-fold (threshold {threshold:.2f})"
        report.append(scores_markdown(title, score_suites(cases, held_out, threshold)))
    else:
        report.append("Cross-validation skipped: some suite has fewer than 2 cases of one label.\n")
    transfer = leave_one_suite_out(cases)
    if transfer is not None:
        title = f"Leave-one-suite-out: each suite scored by a model fitted on the others (threshold {threshold:.2f})"
        report.append(scores_markdown(title, score_suites(cases, transfer, threshold)))

    suites = list(dict.fromkeys(case.suite for case in cases))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    fitted_on = f"{', '.join(suites)} ({len(cases)} cases, suites weighted equally), {stamp}"
    update = {
        "name": name,
        "answerability": model.model_copy(update={"fitted_on": fitted_on}),
        "min_confidence": threshold,
    }
    profile = RetrievalProfile.model_validate(base.model_copy(update=update).model_dump())
    header = f"Answerability fitted by `answerdesk eval calibrate` on {fitted_on}; min_confidence {threshold}."
    weights = ", ".join(
        f"{feature} {coefficient:+.2f}" for feature, coefficient in zip(model.features, model.coefficients, strict=True)
    )
    body = "\n".join(report)
    return Calibration(profile, header, f"{header}\n\nCoefficients (standardised): {weights}\n\n{body}")


def scores_markdown(title: str, scores: Sequence[SuiteScore]) -> str:
    lines = [
        f"{title}",
        "",
        "| suite | cases | AUC | answered prec. | halluc. rate | error rate | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in scores:
        values = [row.auc, row.answered_precision, row.hallucination_rate, row.error_rate, row.ece]
        lines.append(f"| {row.suite} | {row.cases} | " + " | ".join(_fmt(value) for value in values) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def profile_to_toml(profile: RetrievalProfile, comment: str = "") -> str:
    """The profile as a TOML file (every knob, so the file says exactly what it runs)."""
    return _comment_lines(comment) + tomli_w.dumps(profile.model_dump())


def model_to_toml(model: AnswerabilityModel, comment: str = "") -> str:
    """Just the ``[answerability]`` table (the packaged default model file)."""
    return _comment_lines(comment) + tomli_w.dumps({"answerability": model.model_dump()})


def _comment_lines(comment: str) -> str:
    """``comment`` as TOML comment lines, for the head of a written file (tomli-w writes no comments)."""
    return "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
