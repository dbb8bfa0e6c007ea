"""A question without meaningful content abstains (issue 17, item 13): the content rule itself."""

from __future__ import annotations

import pytest

from retrieval.content import has_meaningful_content

NOISE = {
    "one letter repeated": "x" * 2000,
    "letters apart": "x x x x x x x x",
    "emoji": "😀" * 2000,
    "emoji and a mark": "🙂🙂🙂 ?",
    "combining marks alone": "\u0301" * 2000,
    "marks stacked on a letter": "a" + "\u0301" * 1999,
    "zalgo": "Z̷̢̛a̸̡͝l̵̰̓g̴̣̈́o̵͚͊ ̶̼̓t̷̞̄e̸̤͝x̵̣̃t̶̞̋",
    "a script": "<script>alert(1)</script>",
    "a question inside a script": '<script>alert("How do I get a refund?")</script>',
    "a style": "<style>body { color: red }</style>",
    "punctuation": "!!!???... --- ***",
    "digits": "1234567890",
    "a word in a wall of emoji": "refund " + "😀" * 1990,
    "Cyrillic letter repeated": "ж" * 500,
    "Arabic letter repeated": "ش" * 500,
}
QUESTIONS = {
    "en": "refund?",
    "zh": "退款？",
    "lv": "Kā atcelt?",
    "ru": "Как вернуть деньги?",
    "ja": "返金できますか？",
    "ko": "환불?",
    "hi": "रिफंड कैसे मिलेगा?",
    "vi": "Hoàn tiền như thế nào?",
    "th": "คืนเงินอย่างไร",
    "de": "Wie kündige ich?",
    "with numbers": "What is 2+2?",
    "with markup": "<b>refund</b>?",
    "with a less-than": "Is 3<5 true?",
    "with an emoji": "How do I get a refund for my annual plan? 🙂",
}


@pytest.mark.parametrize("question", NOISE.values(), ids=NOISE.keys())
def test_noise_has_no_meaningful_content(question: str) -> None:
    assert not has_meaningful_content(question)


@pytest.mark.parametrize("question", QUESTIONS.values(), ids=QUESTIONS.keys())
def test_short_questions_in_any_script_have_content(question: str) -> None:
    assert has_meaningful_content(question)
