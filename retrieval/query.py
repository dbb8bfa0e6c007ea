"""The query: what one question becomes before retrieval, built once per question.

The text, its e5 vector (embedded once, then used for retrieval, sentence evidence and triage), its
language and the caller's scope; a follow-up also carries its reading with the conversation's
earlier question (support/conversations.py), embedded once too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from retrieval.embedding import Vector
from retrieval.scope import Scope
from retrieval.timings import StageTimings

if TYPE_CHECKING:
    from retrieval.hybrid import TextLegs

# A follow-up is retrieved with a blend of its own embedding (this weight) and the embedding of its
# contextual reading (weight 1): the earlier question brings the topic, the follow-up what is asked
# about it ("and how long does it take?" → refund timing, not refunds in general).
FOLLOW_UP_WEIGHT = 2.0


@dataclass(frozen=True)
class Context:
    """A follow-up read together with its conversation's earlier question."""

    text: str
    vector: Vector


@dataclass(frozen=True)
class Query:
    text: str
    vector: Vector
    language: str
    scope: Scope
    context: Context | None = None
    # Filled as the pipeline answers; shared by the follow-up reading made from this query (replace()).
    timings: StageTimings = field(default_factory=StageTimings, compare=False, repr=False)
    # The legs that need only the text (USE, lexical), begun while e5 embedded it (retrieval/hybrid.py).
    legs: TextLegs | None = field(default=None, compare=False, repr=False)

    @property
    def reading(self) -> str:
        """The text answered: the contextual reading of a follow-up, else the question."""
        return self.context.text if self.context else self.text

    @property
    def reading_vector(self) -> Vector:
        return self.context.vector if self.context else self.vector
