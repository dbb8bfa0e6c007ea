"""Verification: our trained cross-encoder reads (question, passage) and scores "this answers it".

The bi-encoder ranks by topic; the verifier (retrieval/verifier.py, trained by
``answerdesk verifier train``) reads the question and the passage together, so it tells "mentions the
topic" from "answers the question". Three uses, each a profile knob:

- rerank: the first ``verify_depth`` hits are reordered by the verifier's probability; the rest
  keep their order behind them;
- quote: the sentences of the top chunk are scored as windows of ``verify_window`` sentences and
  the quote starts from the best one;
- decide: the top chunk's and best sentence's probabilities are answerability features.

A question-language version of the top article stays first when the verifier scores it within
``localized_margin`` of the top (translations answer equally; the asker reads their own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from retrieval.evidence import ChunkEvidence, ScoredSentence
from retrieval.records import Chunk, Hit


class Verifier(Protocol):
    """Scores how likely each passage answers the question (probabilities in [0, 1])."""

    def score(self, question: str, passages: Sequence[str]) -> NDArray[np.float32]: ...


def passage_text(chunk: Chunk) -> str:
    """What the verifier reads for a chunk: its title and heading path, then the text."""
    return chunk.embedding_text


@dataclass(frozen=True)
class Verified:
    """Verifier probabilities of the reranked hits (``None`` beyond the verified depth)."""

    hits: list[Hit]
    probabilities: list[float | None]

    @property
    def top(self) -> float | None:
        return self.probabilities[0] if self.probabilities else None


def rerank(
    verifier: Verifier, question: str, hits: Sequence[Hit], language: str, depth: int, localized_margin: float
) -> Verified:
    """The first ``depth`` hits ordered by the verifier's probability, then the rest unchanged."""
    head, tail = list(hits[:depth]), list(hits[depth:])
    if not head:
        return Verified(list(hits), [None] * len(hits))
    scores = verifier.score(question, [passage_text(hit.chunk) for hit in head])
    order = sorted(range(len(head)), key=lambda index: (-float(scores[index]), index))
    best = order[0]
    if head[best].chunk.language != language:
        # The same article in the asker's language, nearly as good, goes first.
        local = next(
            (
                index
                for index in order[1:]
                if head[index].chunk.language == language
                and head[index].chunk.document_id != head[best].chunk.document_id
                and _same_article(head[index].chunk, head[best].chunk)
                and float(scores[index]) >= float(scores[best]) - localized_margin
            ),
            None,
        )
        if local is not None:
            order.remove(local)
            order.insert(0, local)
    reranked = [head[index] for index in order] + tail
    probabilities: list[float | None] = [float(scores[index]) for index in order]
    return Verified(reranked, probabilities + [None] * len(tail))


def _same_article(a: Chunk, b: Chunk) -> bool:
    from retrieval.translations import same_article

    return same_article(a, b)


def sentence_windows(evidence: ChunkEvidence, window: int) -> list[str]:
    """For each sentence, the text of it and the next ``window - 1`` sentences, after the chunk's context."""
    chunk, sentences = evidence.hit.chunk, evidence.sentences
    context = chunk.section_path[-1] if chunk.section_path else chunk.title
    texts = []
    for index, sentence in enumerate(sentences):
        last = sentences[min(index + window, len(sentences)) - 1]
        body = chunk.text[sentence.start : last.end]
        texts.append(f"{context}\n{body}" if context else body)
    return texts


def verify_sentences(verifier: Verifier, question: str, evidence: ChunkEvidence, window: int) -> ChunkEvidence:
    """``evidence`` with each sentence's ranking score replaced by the verifier's probability of
    the window it starts (similarity kept as it was, for the answerability features)."""
    if not evidence.sentences:
        return evidence
    scores = verifier.score(question, sentence_windows(evidence, window))
    sentences = tuple(
        ScoredSentence(sentence.start, sentence.end, sentence.similarity, float(score))
        for sentence, score in zip(evidence.sentences, scores, strict=True)
    )
    return replace(evidence, sentences=sentences)
