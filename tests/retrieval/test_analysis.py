from __future__ import annotations

import pytest

from retrieval.analysis import analyze, latvian_stem


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        # English: Snowball stems, stopwords dropped, numbers kept.
        ("Refunds are sent within 10 days", "en", ["refund", "sent", "within", "10", "day"]),
        # Russian: inflected forms meet at one stem; Latin words are analysed as English.
        ("возврата денег через API Tasklane", "ru", ["возврат", "денег", "api", "tasklan"]),
        # German: sharp s and compounds survive NFKC + casefold, then the German stemmer.
        ("Rückerstattungen für Straße", "de", ["ruckerstatt", "strass"]),
        # Chinese: jieba words, stopwords ("如何") dropped, Latin words analysed as English.
        ("如何申请退款？Tasklane 支持 SSO", "zh", ["申请", "退款", "tasklan", "支持", "sso"]),
        # Latvian: the light stemmer.
        ("rēķinus rēķini rēķinā", "lv", ["rēķin", "rēķin", "rēķin"]),
        # A Cyrillic word in an English text is analysed as Russian.
        ("the word возвраты", "en", ["word", "возврат"]),
        # Full-width letters and ligatures are folded by NFKC.
        ("ＡＢＣ ﬁles", "en", ["abc", "file"]),
        # A language without a stemmer: words only casefolded.
        ("Hello WORLD", "xx", ["hello", "world"]),
        ("", "en", []),
        ("?!… —", "ru", []),
    ],
)
def test_analyze(text: str, language: str, expected: list[str]) -> None:
    assert analyze(text, language) == expected


def test_inflections_of_one_word_share_a_term() -> None:
    forms = {"ru": ["тариф", "тарифа", "тарифы", "тарифов"], "en": ["invoice", "invoices", "invoiced"]}
    for language, words in forms.items():
        assert len({analyze(word, language)[0] for word in words}) == 1, language


def test_digits_and_alphanumerics_are_kept() -> None:
    assert analyze("2FA codes since 2024, 5–10 days", "en") == ["2fa", "code", "sinc", "2024", "5", "10", "day"]
    assert analyze("2024年", "zh") == ["2024", "年"]


def test_query_and_document_languages_may_differ() -> None:
    """A Latin product name matches across languages: English rules apply to it in a Russian text."""
    assert analyze("Tasklane", "en") == analyze("Tasklane", "ru") == analyze("Tasklane", "zh")


@pytest.mark.parametrize(
    ("word", "stem"),
    [("maksājumi", "maksājum"), ("maksājumu", "maksājum"), ("lielajam", "liel"), ("kas", "kas"), ("es", "es")],
)
def test_latvian_stem(word: str, stem: str) -> None:
    assert latvian_stem(word) == stem
