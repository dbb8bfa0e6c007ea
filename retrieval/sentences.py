"""Sentence spans for quoting.

Written here rather than taken from nltk/pysbd because quotes must be exact substrings of the chunk
(we need character offsets, untouched whitespace) and the splitter must treat CJK full-width
punctuation and Cyrillic/Latvian capitals alike without downloading any data.
"""

from __future__ import annotations

import regex

# A sentence ends at . ! ? … followed by space and a capital/digit/opening quote, after CJK
# terminal punctuation, or at a line break (list items, table rows, headings). A clause number at
# the start of a line ("2.1. Monthly availability is …") belongs to its sentence.
_BOUNDARY = regex.compile(
    r"(?<=[.!?…])(?<!(?:^|\n)[ \t]*\d{1,3}(?:\.\d{1,3})*\.)\s+(?=[\p{Lu}\p{N}\"'«„“(\[*-])"
    r"|(?<=[。！？；])\s*"
    r"|\s*\n\s*"
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the non-empty sentences of ``text``, trimmed of surrounding space."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        _append_trimmed(text, start, match.start(), spans)
        start = match.end()
    _append_trimmed(text, start, len(text), spans)
    return spans


def split_sentences(text: str) -> list[str]:
    r"""The sentences of ``text``, as exact substrings.

    >>> split_sentences("Refunds take 5 days. Annual plans: 60 days.\n2.1. Uptime is 99.9%.\n退款需要五天。请稍候")
    ['Refunds take 5 days.', 'Annual plans: 60 days.', '2.1. Uptime is 99.9%.', '退款需要五天。', '请稍候']
    """
    return [text[start:end] for start, end in sentence_spans(text)]


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))
