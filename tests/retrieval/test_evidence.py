from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.embedding import HashingEmbedder
from retrieval.embedding_cache import CachingEmbedder
from retrieval.evidence import (
    SentenceScorer,
    candidate_spans,
    chunk_sentences,
    embedding_texts,
    question_terms,
    quote_window,
    select_quote,
    table_header,
    term_coverage,
)
from retrieval.records import Chunk, Hit

POLICY = (
    "Monthly plans renew on the same day each month. "
    "Annual plans can be refunded in full within 30 days of purchase. "
    "After 30 days, annual plans are refunded pro rata for the unused months. "
    "Credits on your account never expire."
)


def _hit(text: str, kind: str = "section", section: tuple[str, ...] = ("Refunds",), score: float = 0.85) -> Hit:
    chunk = Chunk(
        chunk_id=f"en/policy#{abs(hash(text))}",
        document_id="en/policy-refunds",
        text=text,
        title="Refund Policy",
        section_path=section,
        kind=kind,
        language="en",
    )
    return Hit(chunk, score)


def _scored(question: str, hit: Hit, embedder: HashingEmbedder | None = None) -> list:  # type: ignore[type-arg]
    embedder = embedder or HashingEmbedder()
    return SentenceScorer(embedder).score(question, embedder.embed_query(question), [hit])


@pytest.mark.parametrize(
    ("scores", "best", "max_sentences", "margin", "expected"),
    [
        ([0.5, 0.9, 0.2], 1, 1, 1.0, (1, 1)),  # one sentence allowed
        ([0.5, 0.9, 0.2], 1, 3, 0.1, (1, 1)),  # neighbours too weak
        ([0.85, 0.9, 0.2], 1, 3, 0.1, (0, 1)),  # the previous sentence joins
        ([0.85, 0.9, 0.88], 1, 2, 0.1, (1, 2)),  # the better neighbour joins first
        ([0.85, 0.9, 0.88], 1, 3, 0.1, (0, 2)),
        ([0.9, 0.89, 0.88, 0.87], 0, 3, 0.05, (0, 2)),  # grows forward from the first sentence
        ([0.9], 0, 3, 0.1, (0, 0)),
    ],
)
def test_quote_window(
    scores: list[float], best: int, max_sentences: int, margin: float, expected: tuple[int, int]
) -> None:
    assert quote_window(scores, best, max_sentences, margin) == expected


def test_the_answering_sentence_of_a_policy_section_is_quoted() -> None:
    hit = _hit(POLICY)
    (evidence,) = _scored("Is the refund pro rata for unused months?", hit)
    quote = select_quote(evidence, max_sentences=1, margin=0.0)
    assert quote.text == "After 30 days, annual plans are refunded pro rata for the unused months."
    assert quote.text in hit.chunk.text


@pytest.mark.integration
@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("I bought a yearly plan last week, do I get all my money back?", 1),
        ("Do I lose my account credit if I don't use it?", 3),
        ("Как вернуть деньги за годовой тариф через два месяца?", 2),
    ],
)
def test_the_model_quotes_the_sentence_that_answers(model_dir: Path, question: str, answer: int) -> None:
    from retrieval.embedding import OnnxEmbedder

    embedder = OnnxEmbedder(model_dir)
    hit = _hit(POLICY)
    (evidence,) = SentenceScorer(embedder).score(question, embedder.embed_query(question), [hit])
    start, end = candidate_spans(hit.chunk)[answer]
    assert select_quote(evidence, max_sentences=1, margin=0.0).text == POLICY[start:end]


def test_a_quote_never_starts_at_the_top_just_because_it_is_first() -> None:
    hit = _hit(POLICY)
    (evidence,) = _scored("Do credits on my account expire?", hit)
    quote = select_quote(evidence, max_sentences=3, margin=0.05)
    assert quote.sentences[0] == "Credits on your account never expire."


def test_faq_question_line_is_never_quoted() -> None:
    text = "How do I reset my password?\nClick Forgot password. The link is valid for 1 hour."
    hit = _hit(text, kind="faq", section=("Account", "How do I reset my password?"))
    assert [text[start:end] for start, end in candidate_spans(hit.chunk)] == [
        "Click Forgot password.",
        "The link is valid for 1 hour.",
    ]
    (evidence,) = _scored("reset my password", hit)
    quote = select_quote(evidence, max_sentences=3, margin=1.0)
    assert quote.text == "Click Forgot password. The link is valid for 1 hour."


def test_scores_follow_the_hits_and_carry_term_coverage() -> None:
    first, second = _hit(POLICY), _hit("Our office is in Riga. We open at nine.", score=0.8)
    embedder = HashingEmbedder()
    question = "annual plans refunded"
    evidence = SentenceScorer(embedder).score(question, embedder.embed_query(question), [first, second])
    assert [item.hit for item in evidence] == [first, second]
    assert len(evidence[0].sentences) == 4 and len(evidence[1].sentences) == 2
    assert evidence[0].best_similarity > evidence[1].best_similarity
    assert evidence[0].term_coverage == 1.0 and evidence[1].term_coverage == 0.0


def test_term_bonus_breaks_ties_towards_shared_words() -> None:
    hit = _hit("Refunds go back to the card. Refunds take ten days.")
    embedder = HashingEmbedder()
    question = "how many days for refunds"
    plain = SentenceScorer(embedder, term_weight=0.0).score(question, embedder.embed_query(question), [hit])[0]
    boosted = SentenceScorer(embedder, term_weight=0.5).score(question, embedder.embed_query(question), [hit])[0]
    assert [s.similarity for s in plain.sentences] == [s.similarity for s in boosted.sentences]
    assert boosted.sentences[1].score - boosted.sentences[0].score > plain.sentences[1].score - plain.sentences[0].score


@pytest.mark.parametrize(
    ("text", "expected"),
    [("What about annual refunds?", {"what", "about", "annua", "refun"}), ("退款多久", {"退", "款", "多", "久"})],
)
def test_question_terms(text: str, expected: set[str]) -> None:
    assert question_terms(text) == expected


def test_term_coverage_without_terms_is_zero() -> None:
    assert term_coverage(set(), "anything") == 0.0


def test_warmed_sentences_are_not_embedded_again(tmp_path: Path) -> None:
    cache = CachingEmbedder(HashingEmbedder(), tmp_path / "sentences.sqlite3", "hashing")
    scorer = SentenceScorer(cache)
    hits = [_hit(POLICY), _hit("How do I pay?\nBy card or bank transfer.", kind="faq")]
    assert scorer.warm(hit.chunk for hit in hits) == 5
    misses = cache.misses
    scorer.score("annual refunds", HashingEmbedder().embed_query("annual refunds"), hits)
    assert cache.misses == misses


_sentence = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    sentences=st.lists(_sentence, min_size=1, max_size=8),
    separators=st.lists(st.sampled_from([" ", ". ", "\n", "。", "! ", "\n\n  "]), min_size=8, max_size=8),
    question=_sentence,
    max_sentences=st.integers(min_value=1, max_value=4),
    margin=st.floats(min_value=0, max_value=1),
)
def test_quotes_are_verbatim_spans_of_the_chunk(
    sentences: list[str], separators: list[str], question: str, max_sentences: int, margin: float
) -> None:
    text = "".join(sentence + separator for sentence, separator in zip(sentences, separators, strict=False))
    if not text.strip():
        return
    hit = _hit(text)
    (evidence,) = _scored(question, hit)
    quote = select_quote(evidence, max_sentences, margin)
    assert quote.text == text[quote.start : quote.end]
    assert quote.text.strip() == quote.text and quote.text
    assert all(sentence in quote.text for sentence in quote.sentences)
    assert len(quote.sentences) <= max_sentences


def test_the_sentence_cache_lives_in_the_data_dir(tmp_path: Path) -> None:
    from retrieval.config import Settings
    from retrieval.evidence import sentence_cache

    cache = sentence_cache(HashingEmbedder(), Settings(data_dir=tmp_path))
    assert cache.path == tmp_path / "cache" / "sentences.sqlite3"
    cache.embed_documents(["Refund Policy: Refunds take five days."])
    assert cache.path.is_file()


def test_table_rows_are_embedded_with_their_header() -> None:
    text = "Plan | Uptime\nFree | None\nBusiness | 99.9%\nCredits apply below that."
    hit = _hit(text, section=("2. Availability",))
    assert embedding_texts(hit.chunk) == [
        "2. Availability: Plan | Uptime",
        "2. Availability: Plan | Uptime\nFree | None",
        "2. Availability: Plan | Uptime\nBusiness | 99.9%",
        "2. Availability: Credits apply below that.",
    ]
    assert table_header(text, text.index("Business")) == "Plan | Uptime"
    assert table_header(text, 0) is None


@pytest.mark.parametrize("kind", ["section", "faq"])
def test_a_chunks_sentences_are_worked_out_once_and_equal_the_direct_ones(kind: str) -> None:
    text = "How long do refunds take?\n" + POLICY if kind == "faq" else POLICY
    chunk = _hit(text, kind=kind).chunk
    chunk_sentences.cache_clear()
    sentences = chunk_sentences(chunk)
    assert list(sentences.spans) == candidate_spans(chunk)
    assert list(sentences.texts) == embedding_texts(chunk)
    assert list(sentences.terms) == [question_terms(text[start:end]) for start, end in sentences.spans]
    assert sentences.chunk_terms == question_terms(text)
    assert chunk_sentences(chunk) is sentences and chunk_sentences.cache_info().hits == 1
