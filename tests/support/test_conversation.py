"""Follow-up detection and anchoring (the retrieval side is tested with the real model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.conversations import FollowUp, PriorTurn, contextualize, follow_up_kind


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


@pytest.mark.parametrize(
    ("question", "classified", "kind"),
    [
        ("How much is it?", FollowUp.CERTAIN, FollowUp.CERTAIN),  # the classifier is sure
        ("Can I get it as a PDF invoice instead of email?", FollowUp.NONE, FollowUp.NONE),  # pronoun, stand-alone
        ("Can I get it as a PDF invoice instead of email?", FollowUp.POSSIBLE, FollowUp.POSSIBLE),
        ("How do I cancel?", FollowUp.NONE, FollowUp.POSSIBLE),  # short: both readings are still tried
        ("and how long does it take?", FollowUp.NONE, FollowUp.CERTAIN),  # a connective is enough
    ],
)
def test_the_classifier_replaces_the_pronoun_rule(question: str, classified: FollowUp, kind: FollowUp) -> None:
    assert follow_up_kind(question, classified) == kind


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("how much would that be per month?", True),
        ("А на сколько пользователей это рассчитано?", True),
        ("Vai to var izdarīt arī mobilajā lietotnē?", True),
        ("那个呢？", True),
        ("¿Y eso también vale para el plan de empresa?", True),
        ("Which payment methods do you accept for annual plans?", False),
        ("Как настроить интеграцию с Google Calendar для всей команды?", False),
        ("Kāda ir jūsu SLA pieejamības garantija Business plānam?", False),
        ("如何在项目里设置任务的截止日期提醒？", False),
    ],
)
def test_the_follow_up_head_in_many_languages(model_dir: Path, question: str, follow_up: bool) -> None:
    from retrieval.embedding import OnnxEmbedder
    from support.message_classifier import MessageReader, default_heads

    reader = MessageReader(default_heads(), OnnxEmbedder(model_dir, threads=1))
    kind = reader.follow_up(reader.probabilities(question))
    assert (kind != FollowUp.NONE) == follow_up, kind
