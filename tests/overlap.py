"""Which questions our eval sets hold, so tests can check that no training or calibration text is one.

Questions are compared after :func:`normalise` (case, punctuation and spacing do not make a question new).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import regex

from eval.datasets import eval_data_dir
from retrieval.config import Settings

REPO = Path(__file__).resolve().parents[1]
_NOT_WORD = regex.compile(r"[^\p{L}\p{N}]+")


def normalise(text: str) -> str:
    """Case, punctuation and spacing do not make a question new."""
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if len(value) <= 500:  # questions and utterances, not passages
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def eval_strings(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    name = path.name.removesuffix(".gz")
    with opener(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    if name.endswith(".jsonl"):
        for line in text.splitlines():
            if line.strip():
                yield from _strings(json.loads(line))
    elif name.endswith(".json"):
        try:
            yield from _strings(json.loads(text))
        except json.JSONDecodeError:  # some ".json" files hold one object a line
            for line in text.splitlines():
                if line.strip():
                    yield from _strings(json.loads(line))
    elif name.endswith((".csv", ".tsv")):
        for row in csv.reader(io.StringIO(text), delimiter="\t" if name.endswith(".tsv") else ","):
            yield from (cell for cell in row if len(cell) <= 500)



def dev_and_test_questions() -> set[str]:
    """Every question of our dev set (data/eval) and test set (data/test), normalised."""
    files = sorted((REPO / "data" / "eval").glob("*.jsonl")) + sorted((REPO / "data" / "test").glob("*.jsonl"))
    return {normalise(text) for path in files for text in eval_strings(path)} - {""}


def public_eval_questions() -> set[str]:
    """Every short string (questions, utterances) of the public eval sets in ../shared/data, normalised;
    empty when that data is absent."""
    root = eval_data_dir(Settings())
    sets = [folder for folder in sorted(root.glob("*")) if folder.is_dir() and folder.name != "train"]
    suffixes = (".json", ".jsonl", ".csv", ".tsv", ".json.gz", ".jsonl.gz")
    files = [path for folder in sets for path in folder.rglob("*") if path.name.endswith(suffixes)]
    return {normalise(text) for path in files for text in eval_strings(path)} - {""}
