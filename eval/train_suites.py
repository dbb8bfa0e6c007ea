"""Calibration suites built from the training data's held-out (dev) groups.

The answer/abstain model must never be fitted on a public test set (XQuAD-R, SQuAD 2.0 dev, NoMIRACL
…). These suites come from ``../shared/data/train`` instead, from the article/passage groups the
verifier's recipe holds out of training (retrieval/build/verifier_data.py, ``is_dev_group``), so the
verifier's scores on them are out-of-sample:

- ``train-squad2``: SQuAD 2.0 train (first 10 articles), English; its adversarial unanswerables abstain;
- ``train-mlqa:LL-en``: MLQA questions in LL (de, es, zh, en) over the English paragraphs;
- ``train-cmrc``: CMRC 2018 (Chinese).

Every paragraph of the set is in the corpus (training-group ones are distractors), except those of
half the dev articles of the answerable-only sets: their questions must abstain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from eval.cases import EvalCase
from eval.suite import Suite, SuiteError, passage_document
from retrieval.build.verifier_data import (
    Item,
    chinese_items,
    is_dev_group,
    load_exclusions,
    mlqa_items,
    squad2_items,
)

MLQA_LANGUAGES = ("en", "de", "es", "zh")


def _held_out(group: str) -> bool:
    """Half of the dev groups, chosen by another part of the hash than the dev split."""
    return hashlib.sha256(f"held-out:{group}".encode()).digest()[0] % 2 == 0


def _document_id(source: str, context: str) -> str:
    return f"{source}/{hashlib.sha1(context.encode('utf-8')).hexdigest()[:12]}"


def _suite(name: str, items: Sequence[Item], corpus: Sequence[Item], hold_out: bool, protocol: str) -> Suite:
    held = {item.group for item in corpus if hold_out and is_dev_group(item.group) and _held_out(item.group)}
    documents = {}
    for item in corpus:
        if item.group not in held:
            document_id = _document_id(item.source, item.context)
            documents[document_id] = passage_document(document_id, item.article, item.context, item.plang, item.source)
    cases = []
    for item in items:
        if not is_dev_group(item.group):
            continue
        abstain = not item.answers or item.group in held
        cases.append(
            EvalCase(
                id=f"{name}/{item.qid}",
                question=item.question,
                language=item.qlang,
                gold_document_ids=[] if abstain else [_document_id(item.source, item.context)],
                answer_spans=[text for text, _ in item.answers] or None,
                should_abstain=abstain,
            )
        )
    return Suite(name, list(documents.values()), cases, protocol)


def load_train_suite(name: str, data_dir: Path) -> Suite:
    """A ``train-…`` suite (see the module docstring); raises SuiteError for unknown names."""
    excluded = load_exclusions(data_dir)
    kind, _, arg = name.partition(":")
    if kind == "train-squad2" and not arg:
        squad = squad2_items(data_dir, excluded)
        return _suite(name, squad, squad, False, "SQuAD 2.0 train dev groups; unanswerables abstain")
    if kind == "train-mlqa":
        question_lang, _, corpus_lang = arg.partition("-")
        if question_lang in MLQA_LANGUAGES and corpus_lang == "en":
            items = [item for item in mlqa_items(data_dir, excluded) if item.plang == "en"]
            asked = [item for item in items if item.qlang == question_lang]
            corpus = [item for item in items if item.qlang == "en"]
            return _suite(name, asked, corpus, True, f"MLQA dev groups, {question_lang} questions vs en paragraphs")
    if kind == "train-cmrc" and not arg:
        items = [item for item in chinese_items(data_dir, excluded) if item.source == "cmrc2018"]
        return _suite(name, items, items, True, "CMRC 2018 dev groups; half the dev articles held out")
    raise SuiteError(
        f"unknown training suite {name!r}; known: train-squad2, train-mlqa:LL-en (LL in en, de, es, zh), train-cmrc"
    )
