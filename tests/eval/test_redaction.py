"""The redaction measurement: the generated set is what it claims, the scoring catches mistakes, and
common/redact.py keeps recall and precision above floors (reached: 1.000 for every recall and for
card, e-mail and IBAN precision, 0.952 phone precision, 0.984 decoys kept; `python -m eval.redaction`)."""

from __future__ import annotations

import re

import pytest

from common.redact import iban_valid, luhn_valid, redact_text
from eval.redaction import PII_KINDS, Case, Slot, align, generate_cases, measure, phone_redactor

RECALL_FLOOR = {"email": 0.98, "phone": 0.98, "card": 0.98, "iban": 0.98}
PRECISION_FLOOR = {"email": 0.98, "phone": 0.93, "card": 0.98, "iban": 0.98}
DECOYS_KEPT_FLOOR = 0.96


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return generate_cases()


def test_the_set_is_large_multilingual_deterministic_and_covers_every_kind(cases: list[Case]) -> None:
    assert len(cases) >= 500
    assert {case.language for case in cases} >= {"en", "ru", "lv", "de", "zh"}
    assert [case.text for case in cases] == [case.text for case in generate_cases()]
    kinds = {slot.kind for case in cases for slot in case.slots}
    assert kinds >= {*PII_KINDS, "order", "date", "price", "version", "invalid_card", "tracking"}
    styles = {f"{slot.kind}:{slot.style}" for case in cases for slot in case.slots}
    expected = {"email:plus", "phone:ru-intl-brackets", "phone:de-national", "card:visa-dashes", "card:amex-spaces"}
    assert expected <= styles


def test_generated_values_are_valid_or_invalid_as_labelled(cases: list[Case]) -> None:
    for slot in (slot for case in cases for slot in case.slots):
        digits = re.sub(r"\D", "", slot.value)
        if slot.kind == "card":
            assert luhn_valid(digits), slot
        elif slot.kind == "invalid_card":
            assert not luhn_valid(digits), slot
        elif slot.kind == "iban":
            assert iban_valid(slot.value), slot


def test_alignment_reads_back_what_each_slot_became() -> None:
    case = Case("en", ("mail ", Slot("email", "dot", "a.b@example.com"), " on ", Slot("date", "iso", "2024-01-15")))
    assert align(case, "mail [EMAIL] on 2024-01-15") == ["[EMAIL]", "2024-01-15"]
    assert align(case, "mail [EMAIL] on [PHONE]") == ["[EMAIL]", "[PHONE]"]
    assert align(case, "mail [EMAIL]on 2024-01-15") is None  # a redaction ate the text around a slot


def test_scoring_catches_a_redactor_that_does_nothing_or_masks_every_number(cases: list[Case]) -> None:
    untouched = measure(cases[:100], redactor=lambda text: text)
    assert all(untouched.kinds[kind].recall == 0 for kind in PII_KINDS)
    greedy = measure(cases[:100], redactor=lambda text: re.sub(r"\d[\d ./-]*\d", "[PHONE]", text))
    assert greedy.kinds["phone"].precision < 0.5
    assert greedy.decoys_kept < 0.5


def test_redact_meets_the_recall_and_precision_floors(cases: list[Case]) -> None:
    report = measure(cases)
    for kind in PII_KINDS:
        score = report.kinds[kind]
        assert score.recall >= RECALL_FLOOR[kind], (kind, score)
        assert score.precision >= PRECISION_FLOOR[kind], (kind, score)
    assert report.decoys_kept >= DECOYS_KEPT_FLOOR


def test_the_phone_checks_compared_in_docs_privacy(cases: list[Case]) -> None:
    assert phone_redactor("ours") is redact_text
    sample = cases[:150]
    ours = measure(sample)
    theirs = measure(sample, phone_redactor("phonenumbers"))
    assert theirs.kinds["phone"].precision < ours.kinds["phone"].precision  # IPs and dates taken for phones
    both = measure(sample, phone_redactor("ours+phonenumbers"))
    assert both.kinds["phone"].recall == ours.kinds["phone"].recall
    with pytest.raises(ValueError, match="unknown phone check"):
        phone_redactor("regex")
