"""Sentence-level evidence: which sentences of the retrieved chunks answer the question.

Each candidate sentence is embedded as a passage with its context in front (the FAQ question or
section heading, else the document title) and compared with the question's embedding; a small bonus
for the share of the question's words it contains breaks near ties. A quote grows from the best
sentence to neighbours scoring within ``quote_margin`` of it, and is always a verbatim span of the
chunk (offsets from retrieval/sentences.py). Sentence embeddings come from a content-keyed cache that
:meth:`SentenceScorer.warm` fills at ingestion. Why, with measurements: docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import regex

from retrieval.config import Settings
from retrieval.embedding import Embedder, Vector
from retrieval.embedding_cache import CachingEmbedder
from retrieval.records import Chunk, Hit
from retrieval.sentences import sentence_spans

_WORD = regex.compile(r"\p{Han}|[\p{L}\p{N}]+")
_STEM_LENGTH = 5  # crude stemming that works across en/ru/lv/de: compare word prefixes
_CELL_SEPARATOR = " | "


def question_terms(text: str) -> set[str]:
    """Content-ish words of ``text``: lowercased 5-letter prefixes of words of 3+ letters, each Han character."""
    return {word.lower()[:_STEM_LENGTH] for word in _WORD.findall(text) if len(word) >= 3 or not word.isascii()}


def term_coverage(terms: set[str], text: str) -> float:
    """Share of ``terms`` that occur in ``text`` (0 when there are no terms)."""
    return _coverage(terms, question_terms(text))


def _coverage(terms: set[str], found: frozenset[str] | set[str]) -> float:
    return len(terms & found) / len(terms) if terms else 0.0


@dataclass(frozen=True)
class ScoredSentence:
    """One sentence of a chunk: its offsets and how well it matches the question."""

    start: int
    end: int
    similarity: float  # cosine of the question and the sentence (with its context)
    score: float  # similarity plus the word-overlap bonus; what sentences are ranked by


@dataclass(frozen=True)
class ChunkEvidence:
    """The scored sentences of one retrieved chunk, in text order."""

    hit: Hit
    sentences: tuple[ScoredSentence, ...]
    term_coverage: float = 0.0  # share of the question's words found anywhere in the chunk

    @property
    def best(self) -> ScoredSentence | None:
        return max(self.sentences, key=lambda sentence: sentence.score, default=None)

    @property
    def best_similarity(self) -> float:
        return max((sentence.similarity for sentence in self.sentences), default=0.0)


@dataclass(frozen=True)
class Quote:
    """A contiguous run of sentences of one chunk, quoted verbatim."""

    hit: Hit
    start: int
    end: int
    sentences: tuple[str, ...]

    @property
    def text(self) -> str:
        return self.hit.chunk.text[self.start : self.end]


def candidate_spans(chunk: Chunk) -> list[tuple[int, int]]:
    """Sentence offsets that may be quoted: a FAQ chunk's question line is not part of its answer."""
    spans = sentence_spans(chunk.text)
    if chunk.kind == "faq" and len(spans) > 1:
        question_line_end = chunk.text.find("\n")
        spans = [span for span in spans if span[0] > question_line_end] or spans
    return spans


def sentence_context(chunk: Chunk) -> str:
    """What goes before each sentence when it is embedded: the FAQ question or heading, else the title."""
    return chunk.section_path[-1] if chunk.section_path else chunk.title


def embedding_texts(chunk: Chunk) -> list[str]:
    """What is embedded for each candidate sentence: its context, a table row's header, the sentence."""
    return _embedding_texts(chunk, candidate_spans(chunk))


def _embedding_texts(chunk: Chunk, spans: Iterable[tuple[int, int]]) -> list[str]:
    context = sentence_context(chunk)
    texts = []
    for start, end in spans:
        sentence = chunk.text[start:end]
        # A table row says little without its column names ("Business | 99,9%").
        header = table_header(chunk.text, start)
        if header:
            sentence = f"{header}\n{sentence}"
        texts.append(f"{context}: {sentence}" if context else sentence)
    return texts


def table_header(text: str, start: int) -> str | None:
    """The first row of the table holding the line at ``start``, when that line is a later row.

    Chunks keep tables as lines of cells joined by `` | `` (ingest/chunk.py).
    """
    lines_before = text[:start].split("\n")
    line = lines_before[-1] + text[start:].split("\n", 1)[0]
    if _CELL_SEPARATOR not in line:
        return None
    rows = lines_before[:-1]
    header = None
    while rows and _CELL_SEPARATOR in rows[-1]:
        header = rows.pop()
    return header.strip() if header else None


@dataclass(frozen=True)
class ChunkSentences:
    """What every question needs of one chunk's sentences, worked out once per chunk: their offsets,
    the texts embedded for them (:func:`embedding_texts`), their words and the whole chunk's words."""

    spans: tuple[tuple[int, int], ...]
    texts: tuple[str, ...]
    terms: tuple[frozenset[str], ...]
    chunk_terms: frozenset[str]


# Chunks are immutable and the same few hundred come back question after question: splitting and
# word-matching them again cost ~1.5 ms of a ~36 ms answer at 10k chunks (pyinstrument, docs/benchmarks.md).
@lru_cache(maxsize=1024)
def chunk_sentences(chunk: Chunk) -> ChunkSentences:
    spans = tuple(candidate_spans(chunk))
    return ChunkSentences(
        spans=spans,
        texts=tuple(_embedding_texts(chunk, spans)),
        terms=tuple(frozenset(question_terms(chunk.text[start:end])) for start, end in spans),
        chunk_terms=frozenset(question_terms(chunk.text)),
    )


def quote_window(scores: Sequence[float], best: int, max_sentences: int, margin: float) -> tuple[int, int]:
    """``(first, last)`` sentence indices of the quote around ``best``.

    Neighbours join, the better one first, while they score within ``margin`` of the best sentence,
    up to ``max_sentences``: a sentence that continues the answer is kept, an unrelated one is not.
    """
    first = last = best
    floor = scores[best] - margin
    while last - first + 1 < max_sentences:
        neighbours = [index for index in (first - 1, last + 1) if 0 <= index < len(scores) and scores[index] >= floor]
        if not neighbours:
            break
        chosen = max(neighbours, key=lambda index: scores[index])
        first, last = min(first, chosen), max(last, chosen)
    return first, last


def sentence_cache(embedder: Embedder, settings: Settings) -> CachingEmbedder:
    """The process's sentence-embedding cache: ``<data dir>/cache/sentences.sqlite3``, keyed by content.

    Pass it as the engine's ``sentence_embedder`` and warm it at ingestion (:meth:`SentenceScorer.warm`).
    """
    path = settings.data_dir / "cache" / "sentences.sqlite3"
    # The embedder's class is part of the key, so a test's fake embedder never fills a real cache.
    model_id = f"{type(embedder).__name__}:{settings.embedding_backend}:{settings.embedding_model}"
    return CachingEmbedder(embedder, path, model_id)


class SentenceScorer:
    """Scores the sentences of retrieved chunks against the question with the embedder.

    Example::

        scorer = SentenceScorer(CachingEmbedder(embedder, cache_path, model_id))
        evidence = scorer.score(question, embedder.embed_query(question), hits[:3])
    """

    def __init__(self, embedder: Embedder, term_weight: float = 0.05) -> None:
        self.embedder = embedder
        self.term_weight = term_weight

    def score(self, question: str, query_vector: Vector, hits: Sequence[Hit]) -> list[ChunkEvidence]:
        """Scored sentences of each hit, in the order of ``hits``; one embedding call for all of them."""
        per_hit = [(hit, chunk_sentences(hit.chunk)) for hit in hits]
        texts = [text for _, sentences in per_hit for text in sentences.texts]
        terms = question_terms(question)
        if not texts:
            return [ChunkEvidence(hit, (), _coverage(terms, sentences.chunk_terms)) for hit, sentences in per_hit]
        similarities = self.embedder.embed_documents(texts) @ np.asarray(query_vector, dtype=np.float32)
        evidence = []
        offset = 0
        for hit, sentences in per_hit:
            scored = []
            for (start, end), found in zip(sentences.spans, sentences.terms, strict=True):
                similarity = float(similarities[offset])
                bonus = self.term_weight * _coverage(terms, found)
                scored.append(ScoredSentence(start, end, similarity, similarity + bonus))
                offset += 1
            evidence.append(ChunkEvidence(hit, tuple(scored), _coverage(terms, sentences.chunk_terms)))
        return evidence

    def warm(self, chunks: Iterable[Chunk]) -> int:
        """Embed every chunk's sentences now (a caching embedder keeps them); returns how many."""
        texts = [text for chunk in chunks for text in embedding_texts(chunk)]
        if texts:
            self.embedder.embed_documents(texts)
        return len(texts)


def select_quote(evidence: ChunkEvidence, max_sentences: int, margin: float) -> Quote:
    """The run of sentences of one chunk that best answers the question (see :func:`quote_window`)."""
    hit, sentences = evidence.hit, evidence.sentences
    text = hit.chunk.text
    if not sentences:  # a chunk with no sentence at all (only whitespace) is quoted whole
        return Quote(hit, 0, len(text), (text,))
    scores = [sentence.score for sentence in sentences]
    best = int(np.argmax(scores))
    first, last = quote_window(scores, best, max_sentences, margin)
    chosen = sentences[first : last + 1]
    return Quote(
        hit=hit,
        start=chosen[0].start,
        end=chosen[-1].end,
        sentences=tuple(text[sentence.start : sentence.end] for sentence in chosen),
    )
