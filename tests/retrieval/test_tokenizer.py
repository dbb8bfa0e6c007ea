"""e5's tokenizer on sentencepiece gives the ids tokenizers gives for the prepared tokenizer.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retrieval.tokenizer import (
    ENCODER_FILE,
    NORMALIZER_FILE,
    TOKENIZER_JSON,
    HuggingFaceTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
)

REPO = Path(__file__).resolve().parents[2]
EDGE_CASES = [
    "",
    " ",
    "  leading spaces",
    "trailing spaces  ",
    " 彦吉玛是谁？",  # a leading space before a word with no "▁word" piece
    "a\n\nb\tc\r\nd",
    "x     y",
    "\u3000ideographic\u3000space",
    "\u00a0no-break space, \u200bzero width, \u2028line separator",
    "ﬁ ligature, ① circled, ＦＵＬＬ width, Ⅻ",
    "emoji 😀🙈 and a lone surrogate-free astral 𝔘",
    "\x00control\x07chars\x1f",
    "query: Как сменить пароль? Wie lösche ich mein Konto? ¿Cómo cancelo? Kā atcelt abonementu?",
    "passage: " + "Возврат средств поступает в течение 5–10 рабочих дней. " * 40,
]


@pytest.fixture(scope="module")
def folder(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the prepared tokenizer.json alone: the sentencepiece models are derived from it here."""
    copy = tmp_path_factory.mktemp("tokenizer")
    shutil.copy(model_dir / "onnx" / TOKENIZER_JSON, copy / TOKENIZER_JSON)
    return copy


def _texts() -> list[str]:
    """Every paragraph of the sample KB and our test KB, and every question of our eval sets."""
    texts = list(EDGE_CASES)
    for path in sorted((REPO / "data").rglob("*")):
        if path.suffix in {".md", ".txt", ".html", ".csv", ".yaml", ".yml"} and path.is_file():
            texts += [part for part in path.read_text(encoding="utf-8").split("\n\n") if part.strip()]
        elif path.suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            texts += [str(json.loads(line).get("question", "")) for line in lines]
    return texts


def test_same_ids_as_tokenizers(folder: Path) -> None:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(folder / TOKENIZER_JSON))
    reference.no_truncation()
    tokenizer = load_tokenizer(folder)
    assert isinstance(tokenizer, SentencePieceTokenizer)
    texts = _texts()
    assert len(texts) > 1_000
    different = [text for text in texts if tokenizer.ids(text) != reference.encode(text).ids]
    # Where two segmentations score the same (a run of dashes: "-" + "----------" or the reverse), each
    # library keeps another: the same pieces in another order. Nothing else may differ.
    reordered = [text for text in different if sorted(tokenizer.ids(text)) == sorted(reference.encode(text).ids)]
    assert different == reordered
    assert len(reordered) <= 5
    assert tokenizer.pad_id == reference.token_to_id("<pad>")


def test_the_derived_models_are_saved_and_used(folder: Path) -> None:
    expected = load_tokenizer(folder).ids(EDGE_CASES[-2])
    assert (folder / ENCODER_FILE).is_file() and (folder / NORMALIZER_FILE).is_file()
    (folder / TOKENIZER_JSON).rename(folder / "moved.json")  # the saved models alone must do
    try:
        assert load_tokenizer(folder).ids(EDGE_CASES[-2]) == expected
    finally:
        (folder / "moved.json").rename(folder / TOKENIZER_JSON)


def test_another_tokenizer_shape_falls_back_to_tokenizers(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    other = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "refund": 2}, unk_token="[UNK]"))
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    other.save(str(tmp_path / TOKENIZER_JSON))
    tokenizer = load_tokenizer(tmp_path)
    assert isinstance(tokenizer, HuggingFaceTokenizer)
    assert tokenizer.ids("refund policy") == [2, 0]
    assert not (tmp_path / ENCODER_FILE).exists()


def test_models_older_than_tokenizer_json_are_derived_again(folder: Path) -> None:
    import os

    load_tokenizer(folder)
    stale = b"not a sentencepiece model"
    (folder / ENCODER_FILE).write_bytes(stale)
    spec = folder / TOKENIZER_JSON
    later = (folder / ENCODER_FILE).stat().st_mtime_ns + 1_000_000_000
    os.utime(spec, ns=(later, later))  # tokenizer.json replaced after the models were saved
    assert load_tokenizer(folder).ids("query: refund")[0] == 0
    assert (folder / ENCODER_FILE).read_bytes() != stale
