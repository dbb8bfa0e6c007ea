"""Our held-out test set (data/test) is consistent with the KB it asks about."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from eval.cases import EvalCase, load_cases
from eval.metrics import normalized
from ingest.parse import parse_file

REPO = Path(__file__).resolve().parents[2]
KB = REPO / "data" / "kb"
CASES = load_cases(*sorted((REPO / "data" / "test").glob("*.jsonl")))
LANGUAGES = {"en", "ru", "lv", "zh", "de", "es"}


@pytest.fixture(scope="module")
def kb_text() -> dict[str, str]:
    """Each KB document's parsed text (headings and blocks), folded as the fact check folds quotes."""
    texts = {}
    for path in sorted(p for p in KB.rglob("*") if p.is_file()):
        document = parse_file(path, KB)
        parts = [" ".join((*section.path, *section.blocks)) for section in document.sections]
        texts[document.document_id] = normalized(" ".join(parts))
    return texts


def test_the_set_has_every_kind_of_case_in_every_language() -> None:
    assert 250 <= len(CASES) <= 300
    assert {case.language for case in CASES} == LANGUAGES
    for kind in (_answerable, _unanswerable, _escalation):
        assert {case.language for case in CASES if kind(case)} == LANGUAGES
    assert {case.language for case in CASES if case.cross_lingual} == LANGUAGES - {"en"}
    assert {case.language for case in CASES if case.history} == {"en", "ru", "lv", "zh"}
    tags = Counter(tag for case in CASES for tag in case.tags)
    assert tags["near_miss"] >= 15 and tags["out_of_domain"] >= 15


@pytest.mark.parametrize("case", [c for c in CASES if c.answer_contains], ids=lambda c: c.id)
def test_every_gold_document_states_the_asked_fact(case: EvalCase, kb_text: dict[str, str]) -> None:
    facts = [normalized(fact) for fact in case.answer_contains or []]
    for gold in case.gold_document_ids:
        assert gold in kb_text, f"{gold} is not in data/kb"
        assert not gold.startswith("internal/"), "customers never see internal documents"
        assert any(fact in kb_text[gold] for fact in facts), f"{gold} does not state {case.answer_contains}"
    for fact in facts:
        assert any(fact in kb_text[gold] for gold in case.gold_document_ids), f"{fact!r} is in no gold document"


def test_cross_lingual_ids_mark_english_only_answers() -> None:
    marked = [case for case in CASES if "-xl-" in case.id]
    assert marked and all(case.cross_lingual for case in marked)


def test_no_question_is_copied_from_the_dev_set() -> None:
    dev = load_cases(*sorted((REPO / "data" / "eval").glob("sample_qa_*.jsonl")))
    dev_questions = {normalized(case.question) for case in dev}
    assert not [case.id for case in CASES if normalized(case.question) in dev_questions]


def _answerable(case: EvalCase) -> bool:
    return bool(case.gold_document_ids) and not case.history


def _unanswerable(case: EvalCase) -> bool:
    return case.should_abstain


def _escalation(case: EvalCase) -> bool:
    return case.escalation_reasons is not None
