from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.sentences import sentence_spans, split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two!", ["One.", "Two!"]),
        ("Use e.g. the menu. Then save.", ["Use e.g. the menu.", "Then save."]),
        ("Plans cost EUR 8.50 per user. Billed monthly.", ["Plans cost EUR 8.50 per user.", "Billed monthly."]),
        ("Откройте настройки. Нажмите «Сохранить».", ["Откройте настройки.", "Нажмите «Сохранить»."]),
        ("Atveriet iestatījumus. Ēkas adrese ir Rīgā.", ["Atveriet iestatījumus.", "Ēkas adrese ir Rīgā."]),
        ("打开设置。点击保存！完成", ["打开设置。", "点击保存！", "完成"]),
        ("Question?\nAnswer line one.\n- item", ["Question?", "Answer line one.", "- item"]),
        ("   ", []),
        ("2.1. Uptime is measured monthly. Credits apply.", ["2.1. Uptime is measured monthly.", "Credits apply."]),
        ("Intro.\n3. Refunds take 5 days. Ask us.", ["Intro.", "3. Refunds take 5 days.", "Ask us."]),
        ("We support version 2. Then update.", ["We support version 2.", "Then update."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@given(st.text(alphabet=st.sampled_from("ab .!?。\n Ā"), max_size=80))
def test_spans_are_ordered_trimmed_substrings(text: str) -> None:
    previous_end = 0
    for start, end in sentence_spans(text):
        assert previous_end <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()
        previous_end = end
