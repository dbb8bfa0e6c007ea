"""The figures issue #11 sets targets for, per language and for cross-lingual questions.

- ``answered_with_gold_citation``: answerable questions answered with at least one citation of a gold document;
- ``quote_contains_fact``: answerable questions answered with a quote that contains the asked fact
  (``answer_contains``; n/a where no case names one, as in the dev set);
- ``wrong``: answerable questions answered without any gold citation;
- ``unanswerable_abstained`` (and its ``near_miss`` / ``out_of_domain`` parts): should-abstain questions not answered;
- ``escalations_escalated``: escalation requests that went to a person, and ``escalation_reason_right`` those
  that did so for one of the expected reasons;
- ``followups_right``: the last turn of a dialog answered with a gold citation.

Answerable and unanswerable questions are single questions to the engine; dialogs and escalation requests
go through the support desk (see eval/run.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from eval.metrics import contains_fact, mean
from retrieval.records import Reason
from support.triage import SENSITIVE

if TYPE_CHECKING:
    from eval.run import CaseResult

CROSS_LINGUAL = "cross-lingual"
FIGURES = (
    "answered_with_gold_citation",
    "quote_contains_fact",
    "wrong",
    "unanswerable_abstained",
    "near_miss_abstained",
    "out_of_domain_abstained",
    "escalations_escalated",
    "escalation_reason_right",
    "followups_right",
)

Figure = tuple[Callable[["CaseResult"], bool], Callable[["CaseResult"], bool]]


def gold_cited(result: CaseResult) -> bool:
    return result.answered and bool(set(result.cited_documents) & set(result.case.gold_document_ids))


def reason_labels(reasons: Sequence[Reason]) -> set[str]:
    """Triage labels of an answer's reasons: sensitive_topic with detail chargeback → ``sensitive_topic:chargeback``."""
    return {f"{SENSITIVE}:{reason.detail}" if reason.code == SENSITIVE else reason.code for reason in reasons}


def _single(result: CaseResult) -> bool:
    return not result.case.through_desk


def _answerable(result: CaseResult) -> bool:
    return _single(result) and result.has_gold


def _unanswerable(tag: str | None) -> Callable[[CaseResult], bool]:
    return lambda r: _single(r) and r.case.should_abstain and (tag is None or tag in r.case.tags)


def _escalation(result: CaseResult) -> bool:
    return result.case.escalation_reasons is not None


def _follow_up(result: CaseResult) -> bool:
    return bool(result.case.history) and result.case.escalation_reasons is None


def _reason_right(result: CaseResult) -> bool:
    return result.escalated and bool(reason_labels(result.reasons) & set(result.case.escalation_reasons or []))


# Each figure: which cases it is over, and what counts as a hit.
_DEFINITIONS: dict[str, Figure] = {
    "answered_with_gold_citation": (_answerable, gold_cited),
    "quote_contains_fact": (
        lambda r: _answerable(r) and bool(r.case.answer_contains),
        lambda r: r.answered and contains_fact(r.quotes, r.case.answer_contains or []),
    ),
    "wrong": (_answerable, lambda r: r.answered and not gold_cited(r)),
    "unanswerable_abstained": (_unanswerable(None), lambda r: not r.answered),
    "near_miss_abstained": (_unanswerable("near_miss"), lambda r: not r.answered),
    "out_of_domain_abstained": (_unanswerable("out_of_domain"), lambda r: not r.answered),
    "escalations_escalated": (_escalation, lambda r: r.escalated),
    "escalation_reason_right": (_escalation, _reason_right),
    "followups_right": (_follow_up, gold_cited),
}


def target_figures(results: Sequence[CaseResult]) -> dict[str, dict[str, float]]:
    """Each figure as its share of hits (``value``, NaN without cases) and the ``cases`` it is over."""
    figures = {}
    for name in FIGURES:
        over, hit = _DEFINITIONS[name]
        chosen = [r for r in results if over(r)]
        figures[name] = {"value": mean([1.0 if hit(r) else 0.0 for r in chosen]), "cases": len(chosen)}
    return figures


def grouped_targets(results: Sequence[CaseResult]) -> dict[str, dict[str, dict[str, float]]]:
    """The figures over all cases, per question language, and over cross-lingual cases."""
    groups = {"all": list(results)}
    for language in sorted({r.case.language for r in results}):
        groups[language] = [r for r in results if r.case.language == language]
    groups[CROSS_LINGUAL] = [r for r in results if r.case.cross_lingual]
    return {name: target_figures(members) for name, members in groups.items()}


def targets_markdown(targets: dict[str, dict[str, dict[str, float]]]) -> str:
    """Figures as rows, groups as columns, each cell ``share (cases)``; n/a where a group has none."""
    groups = list(targets)
    lines = ["| figure | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for name in FIGURES:
        cells = [_cell(targets[group][name]) for group in groups]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(figure: dict[str, float]) -> str:
    value, cases = figure["value"], int(figure["cases"])
    return "n/a" if cases == 0 or math.isnan(value) else f"{value:.2f} ({cases})"
