"""Decide and compose: answer extractively from retrieved chunks, or abstain.

The answer is made only of sentences copied from retrieved chunks, each followed by its citation
marker, so it can never state what no source says.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import regex

from retrieval.config import RetrievalProfile
from retrieval.messages import ABSTAINED, DISCLOSURE, localized
from retrieval.sentences import sentence_spans
from retrieval.types import Answer, Citation, Hit, Status

_WORD = regex.compile(r"\p{Han}|[\p{L}\p{N}]+")
_STEM_LENGTH = 5  # crude stemming that works across en/ru/lv: compare word prefixes


def confidence_from_score(score: float, midpoint: float, scale: float) -> float:
    """Map a top similarity score to 0..1; 0.5 exactly at ``midpoint``."""
    return 1.0 / (1.0 + math.exp(-(score - midpoint) / scale))


def _terms(text: str) -> set[str]:
    return {word.lower()[:_STEM_LENGTH] for word in _WORD.findall(text) if len(word) >= 3 or not word.isascii()}


@dataclass(frozen=True)
class Evidence:
    """A contiguous run of sentences in one retrieved chunk."""

    hit: Hit
    start: int
    end: int
    sentences: tuple[str, ...]

    @property
    def quote(self) -> str:
        return self.hit.chunk.text[self.start : self.end]


def select_evidence(question: str, hit: Hit, max_sentences: int) -> Evidence:
    """The sentences of ``hit`` that best answer ``question``.

    A FAQ answer is quoted from its start (its question line is skipped). In a policy section the
    quote starts at the sentence sharing most words with the question, or at the top when none do
    (as with a question in another language).
    """
    text = hit.chunk.text
    spans = sentence_spans(text)
    if hit.chunk.kind == "faq" and len(spans) > 1:
        question_line_end = text.find("\n")
        spans = [span for span in spans if span[0] > question_line_end] or spans
    question_terms = _terms(question)
    overlaps = [len(question_terms & _terms(text[start:end])) for start, end in spans]
    first = 0
    if hit.chunk.kind != "faq" and overlaps and max(overlaps) > 0:
        first = overlaps.index(max(overlaps))
    chosen = spans[first : first + max_sentences]
    return Evidence(
        hit=hit,
        start=chosen[0][0],
        end=chosen[-1][1],
        sentences=tuple(text[start:end] for start, end in chosen),
    )


def compose_answer(question: str, language: str, hits: Sequence[Hit], profile: RetrievalProfile) -> Answer:
    """Answer from ``hits`` (best first) or abstain when the best one is not convincing."""
    answer_id = uuid.uuid4().hex
    disclosure = localized(DISCLOSURE, language)
    if not hits:
        return Answer(
            answer_id=answer_id,
            status=Status.ABSTAINED,
            answer=localized(ABSTAINED, language),
            confidence=0.0,
            reasons=["no_sources: nothing in the knowledge base matched"],
            language=language,
            disclosure=disclosure,
        )
    top = hits[0]
    confidence = confidence_from_score(top.score, profile.score_midpoint, profile.score_scale)
    if confidence < profile.min_confidence:
        reason = (
            f"low_confidence: best source scored {top.score:.3f}, below the answer threshold "
            f"{profile.score_midpoint:.3f}"
        )
        return Answer(
            answer_id=answer_id,
            status=Status.ABSTAINED,
            answer=localized(ABSTAINED, language),
            confidence=round(confidence, 4),
            reasons=[reason],
            language=language,
            disclosure=disclosure,
        )

    evidence = [select_evidence(question, top, profile.max_answer_sentences)]
    runner_up = next((hit for hit in hits[1:] if hit.chunk.document_id != top.chunk.document_id), None)
    if runner_up and top.score - runner_up.score <= profile.second_source_margin:
        evidence.append(select_evidence(question, runner_up, max(1, profile.max_answer_sentences - 1)))

    reasons = [f"confident_match: best source scored {top.score:.3f} (threshold {profile.score_midpoint:.3f})"]
    if len(evidence) > 1:
        reasons.append(f"second_source: another document scored within {profile.second_source_margin:.3f}")
    source_languages = sorted({item.hit.chunk.language for item in evidence} - {language})
    if source_languages:
        reasons.append(f"cross_lingual: sources are in {', '.join(source_languages)}")

    parts = [f"{sentence} [{number}]" for number, item in enumerate(evidence, 1) for sentence in item.sentences]
    citations = [
        Citation(
            document_id=item.hit.chunk.document_id,
            title=item.hit.chunk.title,
            section=item.hit.chunk.section,
            chunk_id=item.hit.chunk.chunk_id,
            quote=item.quote,
            score=round(item.hit.score, 4),
            source=item.hit.chunk.source,
            language=item.hit.chunk.language,
            version=item.hit.chunk.version,
            updated_at=item.hit.chunk.updated_at,
        )
        for item in evidence
    ]
    return Answer(
        answer_id=answer_id,
        status=Status.ANSWERED,
        answer=" ".join(parts),
        citations=citations,
        confidence=round(confidence, 4),
        reasons=reasons,
        language=language,
        disclosure=disclosure,
    )
