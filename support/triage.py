"""Triage: which customer messages go to a person at once, and why.

A message escalates when the customer asks for a person, sounds strongly angry or says it is
urgent, or touches a configured sensitive topic (legal threat, security incident, chargeback,
account takeover, cancellation threat…). Each trigger is a short stable reason code followed by a
human-readable detail, e.g. ``sensitive_topic: chargeback``.

The main signal is a multilingual classifier: logistic heads over the message's e5 embedding
(support/message_classifier.py), trained on examples in eleven languages; its probability is
written into the reason (``sensitive_topic: chargeback (p=0.93)``). Beside it stay only precise
phrase rules (keywords such as "chargeback", "转人工", "срочно"; shouting; custom TOML topics): a
rule or the classifier firing is enough. Every lexicon is applied whatever language was detected,
since short messages are often misdetected; the phrases cover en, ru, lv and zh.

A conversation also escalates after ``N`` abstentions in a row, and the caller can force it.

Custom topics come from a TOML file (``ANSWERDESK_TRIAGE_RULES_PATH``)::

    [topics.gdpr_request]
    patterns = ['\\bGDPR\\b', 'data subject (access )?request', 'запрос субъекта данных']
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import regex

from common.errors import AnswerDeskError
from retrieval.embedding import Embedder, Vector
from retrieval.records import Reason
from support.message_classifier import MessageHeads, MessageReader, default_heads

logger = logging.getLogger(__name__)

HUMAN = "customer_requested_human"
EMOTION = "strong_emotion"
URGENT = "urgent"
SENSITIVE = "sensitive_topic"
REPEATED_ABSTENTION = "repeated_abstention"
CALLER = "caller_requested"
ALREADY = "already_escalated"

# ---- the lexicons ---------------------------------------------------------------------------------
# Latin-script patterns use \b; Chinese has no word boundaries, so its patterns are plain substrings.
_PEOPLE_EN = (
    r"(?:real |live |actual |human |support |customer service )?"
    r"(?:human|person|people|agent|someone|somebody|representative|rep|operator|manager|supervisor|staff)"
)
HUMAN_PATTERNS: Mapping[str, Sequence[str]] = {
    "en": (
        rf"\b(?:talk|speak|chat)(?:ing)? (?:to|with) (?:a |an |some |your )?{_PEOPLE_EN}\b",
        rf"\b(?:connect|transfer|put|pass) me (?:to|through to|with) (?:a |an |the |some |your )?{_PEOPLE_EN}\b",
        r"\b(?:get|give|need|want) (?:me )?(?:a |an |to )?(?:real |live )?"
        r"(?:human|person|manager|supervisor|operator|representative|agent)\b",
        r"\b(?:human|live|real) (?:agent|person|support|being|operator)\b",
        r"\bnot (?:a|the|with a) (?:bot|robot|machine)\b",
        r"\bescalate (?:this|my|it)\b",
    ),
    "ru": (
        r"\bживо\w* (?:человек|сотрудник|оператор|специалист)\w*",
        r"\b(?:соедин|переключ|перевед)\w* (?:меня )?(?:с|на) (?:оператор|человек|сотрудник|специалист|менеджер)\w*",
        r"\b(?:поговорить|связаться|общаться|пообщаться) с (?:\w+ )?"
        r"(?:человеком|сотрудником|менеджером|специалистом|консультантом)",
        r"\bне (?:с )?(?:бот|робот|автоответчик)\w*",
        r"\b(?:можно|дайте|нужен|хочу) (?:мне )?(?:живого )?(?:человека|оператора|сотрудника|менеджера)\b",
    ),
    "lv": (
        r"\bdzīv\w* (?:cilvēk|darbiniek|operator)\w*",
        r"\b(?:savienojiet|pārslēdziet|savienot|pārslēgt) (?:mani )?(?:ar|uz) "
        r"(?:cilvēk|darbiniek|operator|konsultant)\w*",
        r"\bnevis (?:ar )?(?:robot|bot)\w*",
    ),
    "zh": (
        r"人工(?!智能)",
        r"真人",
        r"不要机器人|不是机器人|别用机器人",
    ),
}
EMOTION_PATTERNS: Mapping[str, Sequence[str]] = {
    "en": (
        r"\b(?:furious|outraged|livid|infuriat\w*|disgust\w*|pissed|fed up|sick and tired)\b",
        r"\b(?:unacceptable|ridiculous|outrageous|pathetic|disgrace\w*|scam\w*|rip-?off)\b",
        r"\b(?:worst|terrible|horrible|awful) (?:service|support|company|experience|app|product)\b",
        r"\b(?:fuck\w*|shit\w*|wtf|bullshit)\b",
        r"\bthis is a joke\b|\b(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) time (?:i'?m |i am |i'?ve |i have )?"
        r"(?:ask|writ|contact|email|call|chas)\w*",
    ),
    "ru": (
        r"\bбезобрази\w*",
        r"\bвозмут\w*",
        r"\bв бешенстве\b|\bбесит\b|\bбешен\w*",
        r"\bмошенни\w*|\bобман\w*",
        r"\b(?:ужасн|отвратительн|кошмарн|мерзк)\w* (?:сервис|поддержк|служб|обслуживани|компани)\w*",
        r"\bдостали\b|\bнадоели\b|\bхрен\w*|\bбля\w*|\bиздева\w*",
        r"\b(?:второй|третий|четв[её]ртый|пятый|\d+-?й) раз (?:пишу|спрашиваю|обращаюсь|звоню)",
    ),
    "lv": (
        r"\bnepieņemam\w*",
        r"\b(?:ļoti |šausmīgi )?dusmīg\w*",
        r"\bkrāpniek\w*|\bkrāpšan\w*",
        r"\b(?:šausmīg|briesmīg|pretīg|drausmīg)\w* (?:serviss|servis|atbalst|uzņēmum|apkalpošan)\w*",
        r"\bapnicis\b|\bapnika\b|\bsasodīt\w*",
        r"\b(?:otro|trešo|ceturto|piekto) reizi (?:rakstu|jautāju|sazinos|zvanu)",
    ),
    "zh": (
        r"气死|太差|垃圾|骗子|愤怒|恶心|无耻|坑人|受够了|他妈|妈的|太过分|离谱|开玩笑",
        r"第[二三四五六七八九十\d]+次(?:问|联系|找|写|打)",
    ),
}
URGENT_PATTERNS: Mapping[str, Sequence[str]] = {
    "en": (
        r"\burgent(?:ly)?\b",
        r"\basap\b",
        r"\bemergency\b",
        r"\bas soon as possible\b",
        r"\b(?:need|want|fix|help|respond|answer|solve|sort)\w*\b[^.?!]{0,40}\b(?:immediately|right now|right away)\b",
        r"\b(?:immediately|right now)\s*!",
        r"\bplease hurry\b|\bhurry up\b",
        r"\b(?:production|prod|site|app|workspace|service|everything|system) "
        r"(?:is|went|has gone|are) (?:down|offline)\b",
    ),
    "ru": (
        r"\bсрочн\w*",
        r"\bэкстренн\w*",
        r"\bкак можно скорее\b",
        r"\b(?:нужн|помоги|верни|сделай|исправь|ответь|реши)\w*\b[^.?!]{0,40}\b(?:немедленно|прямо сейчас)\b",
        r"\bнемедленно\s*!",
    ),
    "lv": (
        r"\bsteidzam\w*|\bsteidzīg\w*",
        r"\bārkārtas\b",
        r"\bcik ātri vien iespējams\b",
        r"\b(?:vajag|nepieciešam|palīdz|salabo|atbild|atrisin)\w*\b[^.?!]{0,40}\b(?:nekavējoties|tūlīt pat|tūlīt)\b",
        r"\bnekavējoties\s*!",
    ),
    "zh": (
        r"紧急|加急|十万火急|急需|很急|非常急|着急|急死",
        r"(?:马上|立刻|立即|尽快)(?:给我)?(?:处理|解决|回复|帮|修复|退)",
        r"(?:马上|立刻|立即)[！!]",
        r"^\s*急[！!，,]",
    ),
}
# The default sensitive topics; settings choose which are on (all by default).
SENSITIVE_TOPICS: Mapping[str, Mapping[str, Sequence[str]]] = {
    # Words like "lawyer", "юрист", "hacked" or "泄露" also fill ordinary questions about contracts
    # and security policy ("our lawyers ask for a DPA"), so they are left to the classifier; only
    # phrases that are a threat by themselves stay. Security incidents: the classifier alone.
    "legal_threat": {
        "en": (
            r"\b(?:lawsuit|legal action|legal proceedings|small claims)\b",
            r"\b(?:sue|suing)\b",
            r"\b(?:take|taking) you to court\b",
        ),
        "ru": (r"\bв суд\b|\bсудебн\w*|\bсудом\b", r"\bпрокуратур\w*|\bроспотребнадзор\w*"),
        "lv": (r"\btiesā\b|\btiesu\b", r"\bprasīb\w* tiesā|\bPTAC\b"),
        "zh": (r"起诉|诉讼|法律行动|告你们|投诉到消协",),
    },
    "security_incident": {},
    "chargeback": {
        "en": (
            r"\bcharge ?backs?\b",
            r"\bdisput\w* (?:the |this |a |my )?(?:charge|payment|transaction)",
            r"\b(?:reverse|reversing|cancel) (?:the |this )?(?:charge|payment) "
            r"(?:with|through|via) (?:my|the) (?:bank|card)",
        ),
        "ru": (r"\bчарджб[эе]к\w*", r"\b(?:оспор|опротест)\w* (?:\w+ ){0,2}(?:плат[её]ж|списани|транзакци|оплат)\w*"),
        "lv": (r"\bchargeback\w*", r"\bapstrīd\w* (?:\w+ ){0,2}(?:maksājum|darījum|norakstīj)\w*"),
        "zh": (
            r"拒付|退单申诉|信用卡争议|争议扣款|银行撤销|向银行申诉",
            r"(?:信用卡|银行|发卡行)[^。！？]{0,12}(?:退单|撤销|争议|申诉)",
        ),
    },
    "account_takeover": {
        "en": (
            r"\bsomeone (?:else )?(?:logged|got|broke|signed) (?:in|into)\b",
            r"\b(?:account|login) (?:was|has been|got) (?:hacked|stolen|taken over|compromised|hijacked)\b",
            r"\b(?:took|taken|take) over my account\b",
            r"\bunauthori[sz]ed (?:login|log-in|access|sign-in)\b",
            r"\bchanged my (?:password|email|e-mail) without\b",
        ),
        "ru": (
            r"\bкто-то (?:за|во|по)ш[её]л\w* в (?:мой |мою )?(?:аккаунт|акк|учетн|учётн|профил)\w*",
            r"\b(?:украли|угнали|взломали) (?:мой |мою )?(?:аккаунт|акк|учетн|учётн|профил)\w*",
            r"\b(?:аккаунт|учетн\w* запис\w*|учётн\w* запис\w*) (?:\w+ )?(?:взломали|украли|угнали)",
            r"\bнесанкционирован\w*",
            r"^(?=.*\bкто-то\b)(?=.*\b(?:вош|заш|залез|проник)\w*)(?=.*\b(?:аккаунт|акк|учетн|учётн|профил)\w*)",
        ),
        "lv": (
            r"\bkāds (?:ir )?(?:ielogoj|pieslēdz|ielauz)\w* (?:manā |mūsu )?kont\w*",
            r"\b(?:nozagt|uzlauzt)\w* (?:manu |mans )?kont\w*|\bkont\w* (?:ir )?(?:nozagts|uzlauzts)",
            r"\bnesankcionēt\w*",
        ),
        "zh": (r"(?:账号|账户|帐号|帐户)被盗|盗号|有人登录了我的|被人登录|未经授权",),
    },
    # "We'll switch to a competitor unless…": no phrase is precise enough, the classifier alone decides.
    "cancellation_threat": {},
}
# A shouted message: mostly capitals over enough letters, with an exclamation mark.
_LETTERS = regex.compile(r"[\p{Lu}\p{Ll}]")
_UPPER = regex.compile(r"\p{Lu}")
_SHOUT_MIN_LETTERS = 12
_SHOUT_RATIO = 0.7


@dataclass(frozen=True)
class Trigger:
    """Why a message should go to a person: a stable ``code`` and a human-readable ``detail``;
    ``probability`` is the classifier's when it fired (None when only a phrase rule did)."""

    code: str
    detail: str
    probability: float | None = None

    @property
    def reason(self) -> Reason:
        shown = f" (p={self.probability:.2f})" if self.probability is not None else ""
        return Reason(self.code, f"{self.detail}{shown}")


@dataclass(frozen=True)
class Rule:
    """Patterns (any language) that, when one matches, raise ``trigger``."""

    trigger: Trigger
    patterns: tuple[regex.Pattern[str], ...]

    def matches(self, text: str) -> bool:
        return any(pattern.search(text) for pattern in self.patterns)


class TriageRulesError(AnswerDeskError, ValueError):
    """A custom rules file or topic list that cannot be used; the message names the problem."""

    code = "invalid_triage_rules"


def _compile(patterns: Iterable[str], where: str) -> tuple[regex.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(regex.compile(pattern, regex.IGNORECASE))
        except regex.error as exc:
            raise TriageRulesError(f"{where}: bad pattern {pattern!r}: {exc}") from exc
    return tuple(compiled)


def _rule(code: str, detail: str, lexicon: Mapping[str, Sequence[str]]) -> Rule:
    patterns = [pattern for language_patterns in lexicon.values() for pattern in language_patterns]
    return Rule(Trigger(code, detail), _compile(patterns, code))


class Triage:
    """Finds escalation triggers in one customer message (:meth:`detect`).

    ``reader`` (the classifier and the embedder it reads) is optional: without it only the phrase
    rules apply. A rule's trigger also fires when the classifier head of the same name (its topic,
    or its code for the others) reaches its threshold.
    """

    def __init__(self, rules: Sequence[Rule], reader: MessageReader | None = None) -> None:
        self.rules = tuple(rules)
        self.reader = reader

    def read(self, message: str, vector: Vector | None = None) -> Mapping[str, float]:
        """The classifier's probabilities for ``message`` (``vector``: its embedding by the reader's
        embedder, when the caller has it); empty without a classifier."""
        return self.reader.probabilities(message, vector) if self.reader else {}

    def reads(self, embedder: Embedder) -> bool:
        """Whether a vector from ``embedder`` can be passed to :meth:`detect` and :meth:`read`."""
        return self.reader is not None and self.reader.reads(embedder)

    def detect(
        self, message: str, vector: Vector | None = None, probabilities: Mapping[str, float] | None = None
    ) -> list[Trigger]:
        """The triggers ``message`` raises, in rule order, each once.

        Give ``probabilities`` from :meth:`read`, or ``vector`` to have them computed; with neither,
        the reader embeds ``message`` itself."""
        if probabilities is None:
            probabilities = self.read(message, vector)
        found = []
        for rule in self.rules:
            head = rule.trigger.detail if rule.trigger.code == SENSITIVE else rule.trigger.code
            probability = probabilities.get(head)
            fired = probability is not None and self.reader is not None and probability >= self.reader.threshold(head)
            if fired or rule.matches(message):
                found.append(replace(rule.trigger, probability=probability) if fired else rule.trigger)
        if not any(trigger.code == EMOTION for trigger in found) and is_shouting(message):
            found.append(Trigger(EMOTION, "the customer sounds angry"))
        return found


def is_shouting(message: str) -> bool:
    """Mostly capital letters, with an exclamation mark: ``WHY WAS I CHARGED TWICE!!!``."""
    letters = len(_LETTERS.findall(message))
    if letters < _SHOUT_MIN_LETTERS or ("!" not in message and "！" not in message):
        return False
    return len(_UPPER.findall(message)) / letters >= _SHOUT_RATIO


def build_triage(
    sensitive_topics: Sequence[str] | None = None,
    rules_path: Path | None = None,
    *,
    embedder: Embedder | None = None,
    heads: MessageHeads | None = None,
) -> Triage:
    """The default rules, the chosen sensitive topics (all when ``None``) and custom topics from TOML,
    with the classifier (``heads``, default the committed ones) when ``embedder`` is given: the
    embedder the heads were trained on (multilingual-e5-small); another one (of another size) is
    refused with a warning and triage keeps to the phrase rules."""
    custom = load_custom_topics(rules_path) if rules_path else {}
    topics: dict[str, Mapping[str, Sequence[str]]] = {**SENSITIVE_TOPICS, **custom}
    chosen = list(topics) if sensitive_topics is None else list(dict.fromkeys([*sensitive_topics, *custom]))
    unknown = [name for name in chosen if name not in topics]
    if unknown:
        raise TriageRulesError(f"unknown sensitive topic {unknown[0]!r}; known: {', '.join(sorted(topics))}")
    rules = [
        _rule(HUMAN, "the customer asked for a person", HUMAN_PATTERNS),
        _rule(EMOTION, "the customer sounds angry", EMOTION_PATTERNS),
        _rule(URGENT, "the customer says it is urgent", URGENT_PATTERNS),
        *(_rule(SENSITIVE, name, topics[name]) for name in chosen),
    ]
    if embedder is None:
        return Triage(rules)
    heads = heads or default_heads()
    if embedder.dimension != heads.dimension:
        logger.warning(
            "triage classifier off: it reads %d-dimension %s vectors, the embedder gives %d",
            heads.dimension, heads.model, embedder.dimension,
        )
        return Triage(rules)
    return Triage(rules, MessageReader(heads, embedder))


def load_custom_topics(path: Path) -> dict[str, Mapping[str, Sequence[str]]]:
    """``[topics.NAME] patterns = [...]`` from a TOML file; patterns are case-insensitive regexes."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TriageRulesError(f"cannot read triage rules {path}: {exc}") from exc
    topics: dict[str, Mapping[str, Sequence[str]]] = {}
    for name, body in dict(data.get("topics", {})).items():
        patterns = body.get("patterns") if isinstance(body, dict) else None
        if not regex.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
            raise TriageRulesError(f"{path}: topic name {name!r} must be lower_snake_case")
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
            raise TriageRulesError(f"{path}: topics.{name}.patterns must be a non-empty list of strings")
        _compile(patterns, f"{path}: topics.{name}")
        topics[name] = {"any": tuple(patterns)}
    return topics


def decide(
    triggers: Sequence[Trigger],
    *,
    abstained: bool,
    abstentions_in_a_row: int,
    abstention_limit: int,
    forced: bool,
) -> list[Trigger]:
    """Everything that sends this turn to a person; empty means answer (or abstain) as usual.

    ``abstentions_in_a_row`` counts the earlier turns of the conversation; with this one abstaining
    too, reaching ``abstention_limit`` (0 = never) escalates.
    """
    reasons = list(triggers)
    if abstained and abstention_limit > 0 and abstentions_in_a_row + 1 >= abstention_limit:
        reasons.append(
            Trigger(REPEATED_ABSTENTION, f"{abstentions_in_a_row + 1} answers in a row found no reliable source")
        )
    if forced:
        reasons.append(Trigger(CALLER, "escalation requested by the caller"))
    return reasons


def triage_label(trigger: Trigger) -> str:
    """The label a labelled set uses: the code, with the topic for sensitive topics."""
    return f"{trigger.code}:{trigger.detail}" if trigger.code == SENSITIVE else trigger.code
