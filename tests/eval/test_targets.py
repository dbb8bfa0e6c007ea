"""The issue's target figures, on hand-made results; and the desk path of the runner."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from eval.cases import EvalCase
from eval.datasets import load_suite
from eval.run import CaseResult, run_suite
from eval.suite import Suite
from eval.targets import CROSS_LINGUAL, grouped_targets, reason_labels, target_figures, targets_markdown
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import HashingEmbedder
from retrieval.records import Document, Reason, Section

REFUNDS = ["en/faq-refunds", "ru/faq-refunds"]


def _case(**fields: Any) -> EvalCase:
    return EvalCase(id=fields.pop("id", "c"), question=fields.pop("question", "q?"), **fields)


def _result(case: EvalCase, answered: bool = True, cited: list[str] | None = None, **fields: Any) -> CaseResult:
    return CaseResult(case, answered, [], cited or [], [], 0.0, 0.5, 1.0, **fields)


def test_answerable_figures_count_gold_citations_facts_and_wrong_answers() -> None:
    case = _case(language="en", gold_document_ids=REFUNDS, answer_contains=["14 days", "14 дней"])
    results = [
        _result(case, cited=["ru/faq-refunds"], quotes=["Возврат в течение **14 дней**"]),  # right, fact in Russian
        _result(
            case, cited=["en/faq-refunds"], quotes=["Refunds take 5–10 business days."]
        ),  # right doc, wrong sentence
        _result(case, cited=["en/faq-billing"], quotes=["within 14 days"]),  # wrong document
        _result(case, answered=False),
    ]
    figures = target_figures(results)
    assert figures["answered_with_gold_citation"] == {"value": 0.5, "cases": 4}
    assert figures["quote_contains_fact"] == {"value": 0.5, "cases": 4}
    assert figures["wrong"] == {"value": 0.25, "cases": 4}
    assert math.isnan(figures["escalations_escalated"]["value"])
    assert figures["escalations_escalated"]["cases"] == 0


def test_the_fact_figure_is_not_available_without_answer_contains() -> None:
    figures = target_figures([_result(_case(language="en", gold_document_ids=REFUNDS), cited=REFUNDS[:1])])
    assert figures["answered_with_gold_citation"]["value"] == 1.0
    assert figures["quote_contains_fact"]["cases"] == 0
    assert "n/a" in targets_markdown({"all": figures})


def test_unanswerable_figures_split_near_misses_from_other_products() -> None:
    near = _case(id="n", language="lv", should_abstain=True, tags=["near_miss"])
    other = _case(id="o", language="lv", should_abstain=True, tags=["out_of_domain"])
    figures = target_figures([_result(near, answered=False), _result(other, cited=REFUNDS), _result(near)])
    assert figures["unanswerable_abstained"] == {"value": 1 / 3, "cases": 3}
    assert figures["near_miss_abstained"] == {"value": 0.5, "cases": 2}
    assert figures["out_of_domain_abstained"] == {"value": 0.0, "cases": 1}
    assert figures["wrong"]["cases"] == 0  # an answered unanswerable case is a hallucination, not "wrong"


def test_escalations_count_when_escalated_and_the_reason_when_expected() -> None:
    chargeback = _case(language="zh", escalation_reasons=["sensitive_topic:chargeback"])
    results = [
        _result(
            chargeback,
            answered=False,
            escalated=True,
            reasons=[Reason("sensitive_topic", "chargeback"), Reason("low", "x")],
        ),
        _result(
            chargeback, answered=False, escalated=True, reasons=[Reason("strong_emotion", "the customer sounds angry")]
        ),
        _result(chargeback, answered=False),
    ]
    figures = target_figures(results)
    assert figures["escalations_escalated"] == {"value": 2 / 3, "cases": 3}
    assert figures["escalation_reason_right"] == {"value": 1 / 3, "cases": 3}
    assert reason_labels(
        [Reason("sensitive_topic", "account_takeover"), Reason("customer_requested_human", "asked")]
    ) == {
        "sensitive_topic:account_takeover",
        "customer_requested_human",
    }


def test_follow_ups_and_cross_lingual_cases_get_their_own_figures() -> None:
    follow_up = _case(id="f", language="ru", history=["Как вернуть деньги?"], gold_document_ids=["en/policy-refunds"])
    cross = _case(id="x", language="lv", gold_document_ids=["en/guide-api-and-webhooks"])
    local = _case(id="l", language="lv", gold_document_ids=["lv/faq-refunds", "en/faq-refunds"])
    targets = grouped_targets([_result(follow_up, cited=["en/policy-refunds"]), _result(cross), _result(local)])
    assert targets["ru"]["followups_right"] == {"value": 1.0, "cases": 1}
    assert targets["ru"]["answered_with_gold_citation"]["cases"] == 0  # a dialog is not a single question
    assert targets["lv"]["answered_with_gold_citation"] == {"value": 0.0, "cases": 2}
    assert targets[CROSS_LINGUAL]["answered_with_gold_citation"] == {"value": 0.0, "cases": 1}
    assert targets[CROSS_LINGUAL]["followups_right"] == {"value": 1.0, "cases": 1}
    assert list(targets) == ["all", "lv", "ru", CROSS_LINGUAL]


def test_dialogs_and_escalation_requests_run_through_the_support_desk(tmp_path: Path) -> None:
    refunds = Document(
        "en/refunds",
        "Refunds",
        "refunds.md",
        "faq",
        "en",
        [Section(("How long does a refund take?",), ("Refunds reach your card within 5-10 business days.",), True)],
    )
    cases = [
        _case(id="single", language="en", question="How long does a refund take?", gold_document_ids=["en/refunds"]),
        _case(
            id="person",
            language="en",
            question="Can I talk to a real person please?",
            escalation_reasons=["customer_requested_human"],
        ),
        _case(
            id="dialog",
            language="en",
            history=["How long does a refund take?"],
            question="and to my card?",
            gold_document_ids=["en/refunds"],
        ),
    ]
    profile = RetrievalProfile(score_midpoint=0.3, cross_lingual_bonus=0.0)
    metrics, results = run_suite(
        Suite("mini", [refunds], cases, ""), "answerdesk", profile, HashingEmbedder(), tmp_path, show_progress=False
    )
    by_id = {result.case.id: result for result in results}
    assert by_id["person"].escalated and "customer_requested_human" in reason_labels(by_id["person"].reasons)
    assert not by_id["dialog"].escalated
    assert metrics["cases"] == 1  # the classic metrics stay over single questions
    assert metrics["targets"]["all"]["escalations_escalated"] == {"value": 1.0, "cases": 1}
    assert metrics["targets"]["all"]["followups_right"]["cases"] == 1
    assert (tmp_path / "targets.md").read_text().startswith("| figure | all | en | cross-lingual |")


def test_the_test_suite_is_our_kb_with_the_held_out_cases() -> None:
    suite = load_suite("test", Settings())
    assert suite.name == "test"
    assert {document.document_id for document in suite.documents} >= {"en/faq-refunds", "lv/policy-sla"}
    assert not any(document.document_id.startswith("internal/") for document in suite.documents)
    assert sum(case.through_desk for case in suite.cases) > 40
