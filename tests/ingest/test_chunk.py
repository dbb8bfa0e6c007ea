from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.chunk import Chunker
from retrieval.records import Document, Section


def count_words(text: str) -> int:
    return len(text.split())


def _document(sections: list[Section]) -> Document:
    return Document(
        document_id="en/doc", title="Doc title", source="doc.md", kind="policy", language="en", sections=sections
    )


words = st.text(alphabet=st.sampled_from("abcdefghij"), min_size=1, max_size=8)
sentence = st.lists(words, min_size=1, max_size=20).map(lambda ws: " ".join(ws) + ".")
block = st.lists(sentence, min_size=1, max_size=12).map(" ".join)
section = st.builds(
    Section,
    path=st.lists(words, min_size=0, max_size=3).map(tuple),
    blocks=st.lists(block, min_size=1, max_size=6).map(tuple),
    is_faq=st.booleans(),
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(st.lists(section, min_size=1, max_size=5))
def test_chunks_lose_no_text_and_respect_the_limit(sections: list[Section]) -> None:
    chunker = Chunker(count_words, target_tokens=40, max_tokens=60, overlap_tokens=8)
    document = _document(sections)
    chunks = chunker.chunk(document)
    for item in sections:
        chunk_words = {word for chunk in chunks if chunk.section_path == item.path for word in chunk.text.split()}
        assert {word for text in item.blocks for word in text.split()} <= chunk_words
    assert all(count_words(chunk.embedding_text) <= 60 for chunk in chunks)
    assert [chunk.chunk_id for chunk in chunker.chunk(document)] == [chunk.chunk_id for chunk in chunks]
    assert len({chunk.chunk_id for chunk in chunks}) == len(chunks)


def test_faq_pair_is_one_chunk_with_its_question() -> None:
    faq = Section(path=("How do I cancel?",), blocks=("Open Settings.", "Click Cancel."), is_faq=True)
    [chunk] = Chunker(count_words).chunk(_document([faq]))
    assert chunk.kind == "faq"
    assert chunk.text == "How do I cancel?\nOpen Settings.\nClick Cancel."
    assert chunk.embedding_text == "Doc title\nHow do I cancel?\nOpen Settings.\nClick Cancel."
    assert chunk.section == "How do I cancel?"


def test_long_faq_answer_is_split_and_each_piece_keeps_the_question() -> None:
    answer = " ".join(f"Step {i} is done like this." for i in range(40))
    faq = Section(path=("How?",), blocks=(answer,), is_faq=True)
    chunks = Chunker(count_words, target_tokens=30, max_tokens=40, overlap_tokens=5).chunk(_document([faq]))
    assert len(chunks) > 1
    assert all(chunk.text.startswith("How?\n") for chunk in chunks)


def test_policy_chunk_embeds_its_heading_path() -> None:
    policy = Section(path=("Refunds", "Annual plans"), blocks=("Cancel within 60 days.",))
    [chunk] = Chunker(count_words).chunk(_document([policy]))
    assert chunk.embedding_text == "Doc title > Refunds > Annual plans\nCancel within 60 days."
    assert chunk.section == "Refunds > Annual plans"


def test_repeated_passages_get_distinct_ids() -> None:
    same = Section(path=("A",), blocks=("Same text.",))
    chunks = Chunker(count_words).chunk(_document([same, same]))
    assert chunks[0].chunk_id != chunks[1].chunk_id


def test_chunk_ids_change_with_content() -> None:
    first = Chunker(count_words).chunk(_document([Section(path=("A",), blocks=("One.",))]))
    second = Chunker(count_words).chunk(_document([Section(path=("A",), blocks=("Two.",))]))
    assert first[0].chunk_id != second[0].chunk_id


@pytest.mark.parametrize(("target", "maximum", "overlap"), [(10, 5, 0), (10, 20, 10), (10, 20, -1)])
def test_invalid_sizes_are_rejected(target: int, maximum: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        Chunker(count_words, target_tokens=target, max_tokens=maximum, overlap_tokens=overlap)
