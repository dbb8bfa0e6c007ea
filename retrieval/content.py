"""Whether a question has content to answer: words in some script, not noise.

A question is read as ingestion reads a page: markup is not text (tags are dropped, and so are
scripts and styles with their content). What is left must hold at least one word, and words,
numbers and their marks must make up at least half of its visible characters. A word is a run of
letters (with their combining marks) of at least two distinct letters, or one logographic
character (Han, kana, Hangul), since those carry meaning one by one. So "x" * 2000, a wall of emoji,
combining marks stacked on letters ("zalgo") or a bare ``<script>`` hold no question, while
"refund?", "退款？" and "Kā atcelt?" do. Nothing here depends on a list of phrases.
"""

from __future__ import annotations

import unicodedata
from html.parser import HTMLParser

import regex

# Runs of letters, combining marks and digits: the text of a question, as opposed to symbols,
# punctuation and emoji.
_TEXT_RUN = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_LOGOGRAPHIC = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
MIN_TEXT_SHARE = 0.5
# More combining marks than this per letter is not writing in any script (Indic vowel signs and
# Vietnamese tone marks stay well under it).
MAX_MARKS_PER_LETTER = 2


class _VisibleText(HTMLParser):
    """The text a browser would show: tags dropped, and scripts and styles with their content."""

    _HIDDEN = frozenset({"script", "style", "template", "noscript"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def visible_text(question: str) -> str:
    parser = _VisibleText()
    parser.feed(question)
    parser.close()
    return " ".join(parser.parts)


def has_meaningful_content(question: str) -> bool:
    """Whether ``question`` holds at least one word and is mostly text (see the module docstring)."""
    text = unicodedata.normalize("NFKC", visible_text(question)).casefold()
    words = [run for run in _TEXT_RUN.findall(text) if _is_word(run)]
    if not words:
        return False
    visible = sum(1 for char in text if not char.isspace())
    in_text = sum(len(run) for run in _TEXT_RUN.findall(text))
    return in_text >= MIN_TEXT_SHARE * visible


def _is_word(run: str) -> bool:
    letters = [char for char in run if char.isalpha()]
    marks = sum(1 for char in run if unicodedata.category(char).startswith("M"))
    if not letters or marks > MAX_MARKS_PER_LETTER * len(letters):
        return False
    return bool(_LOGOGRAPHIC.search(run)) or len(set(letters)) >= 2
