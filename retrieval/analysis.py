"""Language-aware text analysis for the lexical (BM25) leg: text → index terms.

Text is NFKC-normalised and casefolded, then split into runs of one script:

- Han runs are segmented into words by jieba (its dictionary ships in the wheel; nothing is
  downloaded). Search mode also emits the dictionary words inside a long one ("共和国" inside
  "中华人民共和国"), so a question using the short word still matches.
- Words of the text's own script are stemmed with the Snowball stemmer of the text's language
  (PyStemmer), Latvian with :func:`latvian_stem` (Snowball has none).
- Words of another script are analysed as the language that script most likely is: Latin words in
  Russian or Chinese text (product names, "API", "SSO") as English, Cyrillic words in a Latin-script
  text as Russian.
- Numbers are kept as terms; stopwords are dropped where bm25s ships a list for the language.

Queries are analysed with the question's language and chunks with their own, so "возврат денег"
and "возврата денег" meet at the same stems.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import regex

logger = logging.getLogger(__name__)

# ISO 639-1 → Snowball algorithm in PyStemmer.
SNOWBALL = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "eo": "esperanto",
    "es": "spanish",
    "et": "estonian",
    "eu": "basque",
    "fa": "persian",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "nb": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}
# ISO 639-1 → the name of bm25s's stopword list (bm25s.stopwords.STOPWORDS_<NAME>).
STOPWORD_LISTS = {
    "en": "EN",  # the short list: the longer EN_PLUS drops "can", "do", "my", which cost on our sample set
    "de": "GERMAN",
    "nl": "DUTCH",
    "fr": "FRENCH",
    "es": "SPANISH",
    "pt": "PORTUGUESE",
    "it": "ITALIAN",
    "ru": "RUSSIAN",
    "sv": "SWEDISH",
    "no": "NORWEGIAN",
    "nb": "NORWEGIAN",
    "zh": "CHINESE",
    "tr": "TURKISH",
    "ko": "KOREAN",
    "da": "DANISH",
}
LATIN_LANGUAGES = frozenset(
    {"en", "de", "nl", "fr", "es", "pt", "it", "sv", "no", "nb", "da", "fi", "et", "lv", "lt", "pl", "cs"}
    | {"sk", "sl", "hr", "ro", "hu", "tr", "id", "ca", "eu", "ga", "eo", "sq", "is", "mt"}
)
CYRILLIC_LANGUAGES = frozenset({"ru", "uk", "be", "bg", "mk", "sr", "kk", "ky", "mn", "tg"})

# One alternative per kind of run; a Latin word may hold digits ("2fa", "mp4") but needs a letter.
_RUN = regex.compile(
    r"(?P<han>\p{Han}+)"
    r"|(?P<latin>[\p{Latin}\p{N}\p{M}]*\p{Latin}[\p{Latin}\p{N}\p{M}]*)"
    r"|(?P<cyrillic>[\p{Cyrillic}\p{M}]+)"
    r"|(?P<number>\p{N}+)"
    r"|(?P<other>[\p{L}\p{M}]+)"
)
_HAN_WORD = regex.compile(r"\p{Han}|[\p{L}\p{N}]")

Stem = Callable[[str], str]


def analyze(text: str, language: str) -> list[str]:
    """The index terms of ``text`` written in ``language`` (ISO 639-1; anything else: no stemming)."""
    language = language.split("-")[0].lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    terms: list[str] = []
    for match in _RUN.finditer(text):
        kind = match.lastgroup
        token = match.group()
        if kind == "number":
            terms.append(token)
        elif kind == "han":
            stopwords = _stopwords("zh")
            terms.extend(word for word in _segment(token) if word not in stopwords and _HAN_WORD.search(word))
        else:
            word_language = _word_language(kind or "other", language)
            if token not in _stopwords(word_language):
                terms.append(_stemmer(word_language)(token))
    return terms


def _word_language(kind: str, text_language: str) -> str:
    """The language a word of this script is analysed as, inside a text of ``text_language``."""
    if kind == "latin" and text_language not in LATIN_LANGUAGES:
        return "en"
    if kind == "cyrillic" and text_language not in CYRILLIC_LANGUAGES:
        return "ru"
    return text_language


@cache
def _stemmer(language: str) -> Stem:
    if language == "lv":
        return latvian_stem
    algorithm = SNOWBALL.get(language)
    if algorithm is None:
        return _unchanged
    import Stemmer

    stemmer = Stemmer.Stemmer(algorithm)
    stemmer.maxCacheSize = 100_000
    stem: Stem = stemmer.stemWord
    return stem


def _unchanged(word: str) -> str:
    return word


@cache
def _stopwords(language: str) -> frozenset[str]:
    name = STOPWORD_LISTS.get(language)
    if name is None:
        return frozenset()
    import bm25s.stopwords

    logging.getLogger("bm25s").setLevel(logging.NOTSET)  # bm25s sets DEBUG on import; give it back
    words: tuple[str, ...] = getattr(bm25s.stopwords, f"STOPWORDS_{name}")
    return frozenset(unicodedata.normalize("NFKC", word).casefold() for word in words)


# Latvian inflection endings, longest first. Snowball has no Latvian stemmer, so this is a light
# stemmer in the spirit of Savoy's for other Baltic and Slavic languages: strip one ending of
# nouns, adjectives (incl. definite forms) or verbs, keeping a stem of at least 3 letters. Measured
# on the sample set's Latvian questions (docs/benchmarks.md) against a 5-letter prefix and no stemming.
_LATVIAN_ENDINGS = sorted(
    {
        # definite adjectives
        "ajiem", "ajām", "ajās", "ajos", "ajam", "ajai", "ajā", "ais", "ajo",
        # verbs: reflexive, infinitive, future, past and present persons, participles
        "ties", "aties", "īties", "ēties", "oties", "simies", "sieties",
        "siet", "sim", "šu", "si",
        "jām", "jāt", "jam", "jat", "ju", "ji", "ja",
        "ošs", "oša", "ošu", "oši", "ošas", "ošo", "ams", "ama", "amas", "ami",
        "āt", "īt", "ēt", "ot", "at", "am",
        # noun and adjective cases
        "iem", "ām", "ēm", "īm", "ūm", "ās", "ēs", "os", "us", "is", "as", "es", "ai", "ei", "ie",
        "im", "um", "em",
        "ā", "ē", "ī", "ū", "a", "e", "i", "u", "o", "s", "š", "t",
    },
    key=len,
    reverse=True,
)
_LATVIAN_MIN_STEM = 3


def latvian_stem(word: str) -> str:
    """A Latvian word without its inflection ending ("rēķinus", "rēķini", "rēķinā" → "rēķin")."""
    for ending in _LATVIAN_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= _LATVIAN_MIN_STEM:
            return word[: -len(ending)]
    return word


_JIEBA_LOCK = threading.Lock()
# Where jieba keeps its prefix-dictionary cache (else the shared temp folder): set_cache_dir.
_jieba_cache_dir: list[Path] = []


def set_cache_dir(path: Path) -> None:
    """Keep jieba's dictionary cache in ``path`` (the data dir's cache), not in the shared temp folder,
    so a process writes nothing outside its data dir."""
    _jieba_cache_dir[:] = [path]


@cache
def _jieba() -> Any:
    """jieba's tokenizer, initialised once and quietly (it logs its dictionary loading at DEBUG)."""
    import jieba

    # jieba attaches its own stderr handler at DEBUG on import; route its records through the
    # application's logging instead.
    jieba_logger = logging.getLogger("jieba")
    for handler in list(jieba_logger.handlers):
        jieba_logger.removeHandler(handler)
    jieba_logger.setLevel(logging.NOTSET)
    tokenizer = jieba.Tokenizer()
    if _jieba_cache_dir:
        _jieba_cache_dir[0].mkdir(parents=True, exist_ok=True)
        tokenizer.tmp_dir = str(_jieba_cache_dir[0])
    with _JIEBA_LOCK:
        tokenizer.initialize()
    return tokenizer


def _segment(run: str) -> list[str]:
    tokenizer = _jieba()
    return list(tokenizer.cut_for_search(run))


def warm_up() -> None:
    """Load the segmenter and stemmers now instead of on the first question."""
    analyze("warm up 预热 прогрев", "en")
