"""Triage: escalation triggers in en/ru/lv/zh (classifier over the real e5 model plus precise rules),
sensitive-topic configuration, and the decision rules."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from retrieval.embedding import OnnxEmbedder
from support.triage import (
    CALLER,
    HUMAN,
    REPEATED_ABSTENTION,
    SENSITIVE,
    Triage,
    TriageRulesError,
    Trigger,
    build_triage,
    decide,
    is_shouting,
    triage_label,
)

REPO = Path(__file__).resolve().parents[2]
LABELLED = [REPO / "data" / "eval" / "triage_labelled.jsonl", REPO / "data" / "eval" / "triage_holdout.jsonl"]
RULES_ONLY = build_triage()


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(model_dir, threads=1)


@pytest.fixture(scope="module")
def triage(embedder: OnnxEmbedder) -> Triage:
    """Triage as the desk builds it: the classifier over the real model, and the precise rules."""
    return build_triage(embedder=embedder)


def _labels(triage: Triage, text: str) -> set[str]:
    return {triage_label(trigger) for trigger in triage.detect(text)}


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Can I speak to a human please?", "customer_requested_human"),
        ("Позовите живого человека", "customer_requested_human"),
        ("Vai varu runāt ar cilvēku?", "customer_requested_human"),
        ("转人工", "customer_requested_human"),
        ("This is unacceptable, I'm furious", "strong_emotion"),
        ("Это возмутительно!", "strong_emotion"),
        ("Tas ir nepieņemami!", "strong_emotion"),
        ("你们的服务太差了", "strong_emotion"),
        ("URGENT, please!", "urgent"),
        ("Срочно нужна помощь", "urgent"),
        ("Steidzami vajadzīga palīdzība", "urgent"),
        ("紧急情况", "urgent"),
        ("My lawyer will contact you", "sensitive_topic:legal_threat"),
        ("Подам в суд", "sensitive_topic:legal_threat"),
        ("Vērsīšos tiesā", "sensitive_topic:legal_threat"),
        ("我要起诉你们", "sensitive_topic:legal_threat"),
        ("We found malware in an attachment", "sensitive_topic:security_incident"),
        ("Произошла утечка данных", "sensitive_topic:security_incident"),
        ("Notikusi datu noplūde", "sensitive_topic:security_incident"),
        ("数据泄露了", "sensitive_topic:security_incident"),
        ("I'll do a chargeback", "sensitive_topic:chargeback"),
        ("Оспорю списание в банке", "sensitive_topic:chargeback"),
        ("Apstrīdēšu maksājumu bankā", "sensitive_topic:chargeback"),
        ("我要申请拒付", "sensitive_topic:chargeback"),
        ("Someone logged into my account from abroad", "sensitive_topic:account_takeover"),
        ("Угнали аккаунт", "sensitive_topic:account_takeover"),
        ("Kāds ielogojās manā kontā", "sensitive_topic:account_takeover"),
        ("我的账号被盗了", "sensitive_topic:account_takeover"),
    ],
)
def test_trigger_phrases_in_four_languages(triage: Triage, text: str, label: str) -> None:
    assert label in _labels(triage, text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I add a person to my project?",
        "Is cancellation effective immediately?",
        "Как работает поиск по задачам?",  # "иск" inside "поиск" is not a lawsuit
        "Kā pievienot darbiniekus projektam?",
        "你们会用客户数据训练人工智能模型吗？",  # 人工智能 is AI, not a human agent
        "退款会马上到账吗？",
        # Neutral mentions of words the rules and the classifier watch for.
        "Our lawyer asks whether you sign a data processing agreement.",
        "How do I cancel my plan at the end of the month?",
        "Kā nomainīt paroli, ja esmu to aizmirsis?",
        "如果出现数据泄露，你们的通知流程是什么？",
    ],
)
def test_routine_questions_do_not_escalate(triage: Triage, text: str) -> None:
    assert _labels(triage, text) == set()
    assert _labels(RULES_ONLY, text) == set()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        # Ordinary phrasings no phrase rule covers, in languages with no rules at all too.
        ("Is there somebody from your team I could discuss this with?", "customer_requested_human"),
        ("Vai kāds no jūsu komandas var ar mani sazināties?", "customer_requested_human"),
        ("我想跟你们公司的人直接谈", "customer_requested_human"),
        ("Ich möchte bitte mit jemandem aus Ihrem Team reden", "customer_requested_human"),
        ("Jūsu serviss ir vienkārši briesmīgs, esmu ļoti vīlies un dusmīgs", "strong_emotion"),
        ("Mans jurists sagatavos prasību pret jums", "sensitive_topic:legal_threat"),
        ("我已经让信用卡公司把这笔钱撤回了", "sensitive_topic:chargeback"),
        ("Kāds svešs pieslēdzās manam profilam un nomainīja e-pastu", "sensitive_topic:account_takeover"),
        ("Si esto sigue así, cancelamos el contrato y nos vamos a otra empresa", "sensitive_topic:cancellation_threat"),
    ],
)
def test_the_classifier_finds_what_no_phrase_rule_does(triage: Triage, text: str, label: str) -> None:
    assert label in _labels(triage, text)
    fired = [trigger for trigger in triage.detect(text) if triage_label(trigger) == label]
    assert fired[0].probability is not None and "(p=" in str(fired[0].reason)


def test_precise_rules_work_without_the_classifier() -> None:
    """With no embedder (another model configured), the precise phrases still escalate."""
    # "суд" inside "судя" is not a court. (The classifier does read this one as a legal threat,
    # p≈0.7: a known false escalation, see docs/triage.md.)
    assert _labels(RULES_ONLY, "Судя по счёту, списали НДС") == set()
    assert "customer_requested_human" in _labels(RULES_ONLY, "转人工")
    assert "sensitive_topic:chargeback" in _labels(RULES_ONLY, "I'll do a chargeback")
    assert "urgent" in _labels(RULES_ONLY, "Срочно нужна помощь")
    [trigger] = RULES_ONLY.detect("I'll do a chargeback")
    assert trigger.probability is None and str(trigger.reason) == "sensitive_topic: chargeback"


def test_a_vector_of_another_embedder_is_refused(embedder: OnnxEmbedder) -> None:
    from retrieval.embedding import HashingEmbedder

    assert build_triage(embedder=HashingEmbedder()).reader is None  # 256 dimensions: rules only
    triage = build_triage(embedder=embedder)
    assert triage.reads(embedder) and not triage.reads(HashingEmbedder(384))
    # Given the message's own vector, triage does not embed it again: same triggers either way.
    text = "Is there somebody from your team I could discuss this with?"
    assert triage.detect(text, embedder.embed_query(text)) == triage.detect(text)


def test_labelled_sets_accuracy(triage: Triage) -> None:
    """≥ 40 labelled messages in four languages; escalate-or-not must be right on nearly all.

    Exact reason sets: ≥ 0.90 (was 0.95 with phrase rules alone, tuned on these very sets): the
    classifier sometimes adds a second plausible reason ("urgent" beside a data leak), which
    changes nothing for the customer, who is escalated either way."""
    per_language: dict[str, list[bool]] = defaultdict(list)
    exact = []
    for path in LABELLED:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            got = _labels(triage, row["text"])
            per_language[row["language"]].append(bool(got) == bool(row["expected"]))
            exact.append(got == set(row["expected"]))
    assert set(per_language) == {"en", "ru", "lv", "zh"}
    assert sum(map(len, per_language.values())) >= 40
    for language, results in per_language.items():
        assert sum(results) / len(results) >= 0.90, language
    assert sum(exact) / len(exact) >= 0.90


def test_shouting() -> None:
    assert is_shouting("WHY WAS I CHARGED TWICE!!!")
    assert not is_shouting("WHY WAS I CHARGED TWICE?")
    assert not is_shouting("OK!")


def test_sensitive_topics_are_configurable(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    only_legal = build_triage(["legal_threat"])
    assert only_legal.detect("I'll do a chargeback") == []
    # Topics that are off stay off for the classifier too.
    with_classifier = build_triage(["legal_threat"], embedder=embedder)
    assert SENSITIVE not in {t.code for t in with_classifier.detect("I'll ask my bank to reverse your charge")}
    rules = tmp_path / "rules.toml"
    rules.write_text("[topics.gdpr_request]\npatterns = ['\\bGDPR\\b', 'запрос субъекта данных']\n", encoding="utf-8")
    custom = build_triage(None, rules)
    assert "sensitive_topic:gdpr_request" in {triage_label(t) for t in custom.detect("This is a GDPR request")}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[topics.x]\npatterns = ['(unclosed']\n", "bad pattern"),
        ("[topics.Bad-Name]\npatterns = ['x']\n", "lower_snake_case"),
        ("[topics.x]\npatterns = []\n", "non-empty list"),
        ("not toml [", "cannot read"),
    ],
)
def test_bad_rules_files_are_refused(tmp_path: Path, content: str, match: str) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(content, encoding="utf-8")
    with pytest.raises(TriageRulesError, match=match):
        build_triage(None, rules)


def test_unknown_topic_is_refused() -> None:
    with pytest.raises(TriageRulesError, match="unknown sensitive topic 'weather'"):
        build_triage(["weather"])


@pytest.mark.parametrize(
    ("abstained", "in_a_row", "limit", "forced", "codes"),
    [
        (False, 5, 2, False, []),
        (True, 0, 2, False, []),
        (True, 1, 2, False, [REPEATED_ABSTENTION]),
        (True, 1, 0, False, []),  # 0 disables
        (True, 0, 1, False, [REPEATED_ABSTENTION]),
        (False, 0, 2, True, [CALLER]),
    ],
)
def test_decide(abstained: bool, in_a_row: int, limit: int, forced: bool, codes: list[str]) -> None:
    reasons = decide([], abstained=abstained, abstentions_in_a_row=in_a_row, abstention_limit=limit, forced=forced)
    assert [reason.code for reason in reasons] == codes


def test_reason_strings_carry_a_stable_code() -> None:
    trigger = Trigger(HUMAN, "the customer asked for a person")
    assert str(trigger.reason) == "customer_requested_human: the customer asked for a person"
    assert trigger.reason.code == HUMAN
