"""Language detection with a model that ships inside its package (py3langid), so nothing is downloaded."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import regex

logger = logging.getLogger(__name__)

UNKNOWN = "und"
# Restricting the candidates makes short questions far more reliable; these are the languages our
# customers write in plus their neighbours that are easily confused with them.
CANDIDATES = ("en", "ru", "lv", "zh", "lt", "et", "uk", "de", "es", "fr", "it", "pl", "pt", "nl", "ja", "ko")
_HAN = regex.compile(r"\p{Han}")
_KANA = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
_HANGUL = regex.compile(r"\p{Hangul}")
_LETTER = regex.compile(r"\p{L}")


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(CANDIDATES))
    return identifier


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language, or ``"und"`` when there is nothing to go on.

    >>> detect_language("Как вернуть деньги?"), detect_language("如何导出数据？"), detect_language("12:30")
    ('ru', 'zh', 'und')
    """
    if not _LETTER.search(text):
        return UNKNOWN
    # Scripts decide CJK outright: the statistical model is weakest on short CJK strings.
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    if _HAN.search(text):
        return "zh"
    language, _probability = _identifier().classify(text)
    return str(language)


def resolve_language(text: str, given: str | None = None) -> str:
    """The language a question is answered in: ``given`` (the caller's), else detected, else English.

    >>> resolve_language("12345")
    'en'
    >>> resolve_language("anything", "lv")
    'lv'
    """
    detected = given or detect_language(text)
    return "en" if detected == UNKNOWN else detected
