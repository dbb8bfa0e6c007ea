"""The triage classifier's training data and fitting: no eval question leaks into training, the
committed heads match the data's labels, and fitting is deterministic and recovers a clear signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.triage import (
    FOLLOW_UP_TRAINING,
    TRIAGE_LABELS,
    TRIAGE_TRAINING,
    Example,
    TrainingDataError,
    fit_heads,
    load_examples,
)
from retrieval.config import Settings
from support.message_classifier import FOLLOW_UP, MessageHeads, MessageHeadsError, default_heads
from tests.helpers import dev_and_test_questions, normalise, public_eval_questions


def _training_texts() -> set[str]:
    return {normalise(example.text) for example in load_examples()}


def test_no_training_example_is_a_dev_eval_question() -> None:
    training = _training_texts()
    questions = dev_and_test_questions()
    assert len(questions) > 300
    assert not training & questions, sorted(training & questions)


@pytest.mark.slow
def test_no_training_example_is_a_public_eval_question() -> None:
    questions = public_eval_questions()
    if not questions:
        pytest.skip("no public eval data in ../shared/data")
    assert len(questions) > 10_000
    training = _training_texts()
    assert not training & questions, sorted(training & questions)


def test_training_data_covers_every_head_in_many_languages() -> None:
    examples = load_examples()
    for label in (*TRIAGE_LABELS, FOLLOW_UP):
        languages = {example.language for example in examples if label in example.labels}
        assert len(languages) >= 8, (label, languages)
    ordinary = [example for example in examples if not example.labels]
    assert len(ordinary) >= 300
    assert len(examples) == len({normalise(example.text) for example in examples}), "duplicate examples"


def test_the_committed_heads_are_the_training_data_labels() -> None:
    heads = default_heads()
    assert heads.labels == (*TRIAGE_LABELS, FOLLOW_UP)
    assert heads.model == Settings().embedding_model and heads.dimension == 384
    assert 0 < heads.possible_follow_up <= heads.threshold(FOLLOW_UP) < 1
    assert all(0 < t < 1 for t in heads.thresholds)


def test_bad_training_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "triage.jsonl"
    bad.write_text('{"text": "hello", "labels": ["weather"]}\n', encoding="utf-8")
    with pytest.raises(TrainingDataError, match="labels must be"):
        load_examples(bad, FOLLOW_UP_TRAINING)
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"triage\.jsonl:1"):
        load_examples(bad, FOLLOW_UP_TRAINING)
    with pytest.raises(TrainingDataError, match="cannot read"):
        load_examples(tmp_path / "missing.jsonl", FOLLOW_UP_TRAINING)
    assert TRIAGE_TRAINING.is_file()


def test_a_broken_heads_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "heads.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(MessageHeadsError, match="cannot read"):
        MessageHeads.load(path)


@pytest.mark.slow
def test_fitting_recovers_a_clear_signal_deterministically(tmp_path: Path) -> None:
    """Toy vectors: each label lives along its own axis; the fit finds it, twice the same."""
    rng = np.random.default_rng(0)
    labels = (*TRIAGE_LABELS, FOLLOW_UP)
    examples, rows = [], []
    for index in range(360):
        label = labels[index % (len(labels) + 1)] if index % (len(labels) + 1) < len(labels) else None
        vector = rng.normal(0, 0.3, 16)
        if label is not None:
            vector[labels.index(label)] += 3.0
        examples.append(Example(f"t{index}", ("en", "ru")[index % 2], frozenset([label] if label else [])))
        rows.append(vector / np.linalg.norm(vector))
    vectors = np.asarray(rows)
    first = fit_heads(examples, vectors, "toy").heads
    second = fit_heads(examples, vectors, "toy").heads
    assert np.array_equal(first.weights, second.weights) and np.array_equal(first.thresholds, second.thresholds)
    first.save(tmp_path / "heads.npz")
    loaded = MessageHeads.load(tmp_path / "heads.npz")
    assert loaded.labels == labels and np.array_equal(loaded.weights, first.weights)
    probe = np.zeros(16)
    probe[labels.index("chargeback")] = 1.0
    probabilities = loaded.probabilities(probe.astype(np.float32))
    assert probabilities["chargeback"] >= loaded.threshold("chargeback")
    assert probabilities["legal_threat"] < loaded.threshold("legal_threat")
