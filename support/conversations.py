"""Follow-up questions: read "and how long does it take?" together with the question it follows.

A follow-up opens with a connective ("and", "what about", "а", "un", "那"), or the classifier's
``follow_up`` head (support/message_classifier.py, trained on examples in eleven languages) says
the message leans on the turn before ("how much is it?", "а сколько это стоит?", "那个呢？"), or it
is very short. Without the classifier, a pronoun ("it", "это", "tas", "它") stands in for it.
The retrieval query is then the conversation's last stand-alone question followed by the
follow-up, so the embedder sees the topic. Short or "possible" questions are ambiguous ("Is it
possible to export to CSV?" and "How do I cancel?" stand on their own), so for those the caller
retrieves both readings and keeps the one the knowledge base matches better (support/desk.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import regex

_CONNECTIVE = regex.compile(
    r"^\s*(?:"
    r"(?:and|also|but|or|so|then|plus|what about|how about|what if|and if)\b"
    r"|(?:а|и|но|ещё|еще|также|тогда|а если|а что|а как|а сколько|и ещё)\b"
    r"|(?:un|bet|kā ar|tad|turklāt|un ja|bet ja|un cik|un kā)\b"
    r"|(?:那|那么|还有|另外|而且|如果|那如果|那要|那么如果)"
    r")",
    regex.IGNORECASE,
)
_PRONOUN = regex.compile(
    r"\b(?:it|its|that|this|those|these|they|them)\b"
    r"|\b(?:это|этого|этом|этим|его|её|ее|их|они|он|она|оно|тот|та|те|такой|такая|такие|там)\b"
    # Latvian "to" and "tie" are left out: they are English words too.
    r"|\b(?:tas|tā|tās|tam|tai|šis|šī|šo|tur)\b"
    r"|它|这个|那个|这样|那样|这些|那些|这里|那里",
    regex.IGNORECASE,
)
_WORD = regex.compile(r"[\p{L}\p{N}]+")
_HAN = regex.compile(r"\p{Han}")
SHORT_WORDS = 4  # "how long?" "and for teams?" — too little to stand alone
SHORT_HAN = 6


class FollowUp(StrEnum):
    """How strongly a question leans on the one before it."""

    NONE = "none"
    CERTAIN = "certain"  # opens with a connective: always read with context
    POSSIBLE = "possible"  # short, or leans on a pronoun: retrieve both readings and keep the better


def follow_up_kind(question: str, classified: FollowUp | None = None) -> FollowUp:
    """Whether ``question`` continues an earlier one; ``classified`` is the classifier's reading
    (None when there is none: the pronoun rule stands in)."""
    text = question.strip()
    if _CONNECTIVE.search(text) or classified == FollowUp.CERTAIN:
        return FollowUp.CERTAIN
    han = len(_HAN.findall(text))
    words = len(_WORD.findall(text)) if han == 0 else han
    leans = classified == FollowUp.POSSIBLE if classified is not None else bool(_PRONOUN.search(text))
    if words <= (SHORT_HAN if han else SHORT_WORDS) or leans:
        return FollowUp.POSSIBLE
    return FollowUp.NONE


@dataclass(frozen=True)
class ContextualQuestion:
    """What to retrieve with: the question alone, or read together with its anchor."""

    question: str
    kind: FollowUp
    anchor: str | None  # the earlier stand-alone question it follows

    @property
    def contextual(self) -> str:
        return f"{self.anchor} {self.question.strip()}" if self.anchor else self.question.strip()


@dataclass(frozen=True)
class PriorTurn:
    """What contextualising needs of an earlier turn."""

    question: str
    follow_up: bool


def contextualize(
    question: str, history: Sequence[PriorTurn], classified: FollowUp | None = None
) -> ContextualQuestion:
    """Pair ``question`` with the latest stand-alone question of ``history`` when it is a follow-up
    (``classified``: the classifier's reading, see :func:`follow_up_kind`).

    Only the turn right before counts: a follow-up of a follow-up is anchored on the same
    stand-alone question as the one before it.
    """
    if not history:
        return ContextualQuestion(question, FollowUp.NONE, None)
    kind = follow_up_kind(question, classified)
    if kind == FollowUp.NONE:
        return ContextualQuestion(question, kind, None)
    anchor = next((turn.question for turn in reversed(history) if not turn.follow_up), None)
    return ContextualQuestion(question, kind, anchor) if anchor else ContextualQuestion(question, FollowUp.NONE, None)

