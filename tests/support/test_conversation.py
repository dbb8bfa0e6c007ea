"""Follow-up detection and anchoring (the retrieval side is tested with the real model)."""

from __future__ import annotations

import pytest

from retrieval.conversation import FollowUp, PriorTurn, contextualize, follow_up_kind


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("and how long does it take?", FollowUp.CERTAIN),
        ("What about monthly plans?", FollowUp.CERTAIN),
        ("А сколько это занимает времени?", FollowUp.CERTAIN),
        ("Un kas notiks ar maniem datiem?", FollowUp.CERTAIN),
        ("那需要多长时间？", FollowUp.CERTAIN),
        ("Can I get it as a PDF invoice instead of email?", FollowUp.POSSIBLE),
        ("Можно ли получить это в виде PDF-файла на почту?", FollowUp.POSSIBLE),
        ("How do I cancel?", FollowUp.POSSIBLE),
        ("这个需要额外付费吗？", FollowUp.POSSIBLE),
        ("Which payment methods do you accept for annual plans?", FollowUp.NONE),
        ("Kāda ir jūsu SLA pieejamības garantija Business plānam?", FollowUp.NONE),
        ("I want to talk to a human about my duplicate charge", FollowUp.NONE),
    ],
)
def test_follow_up_kind(question: str, kind: FollowUp) -> None:
    assert follow_up_kind(question) == kind


def test_follow_ups_are_anchored_on_the_last_standalone_question() -> None:
    history = [PriorTurn("How do refunds work?", False), PriorTurn("and for annual plans?", True)]
    context = contextualize("and how long does it take?", history)
    assert context.anchor == "How do refunds work?"
    assert context.contextual == "How do refunds work? and how long does it take?"
    assert contextualize("and how long?", []).kind == FollowUp.NONE
    assert contextualize("Which payment methods do you accept for annual plans?", history).anchor is None
