"""No text we train or calibrate on is an eval question: the verifier's training items, our own
Latvian/Russian training questions and the calibration suites (`train-…`) against our dev and test
sets and every public eval set."""

from __future__ import annotations

import pytest

from eval.datasets import load_suite, train_data_dir
from retrieval.build.verifier_data import (
    chinese_items,
    load_exclusions,
    mlqa_items,
    our_questions,
    selqa_items,
    squad2_items,
)
from retrieval.config import Settings
from tests.helpers import dev_and_test_questions, normalise, public_eval_questions

CALIBRATION_SUITES = ("train-squad2", "train-mlqa:de-en", "train-mlqa:zh-en", "train-mlqa:en-en", "train-cmrc")


@pytest.fixture(scope="module")
def trained_on() -> set[str]:
    data_dir = train_data_dir(Settings())
    if not data_dir.is_dir():
        pytest.skip(f"no training data in {data_dir}")
    excluded = load_exclusions(data_dir)
    squad = squad2_items(data_dir, excluded)
    items = [*squad, *our_questions(squad), *mlqa_items(data_dir, excluded), *chinese_items(data_dir, excluded)]
    items += selqa_items(data_dir, excluded)
    questions = {normalise(item.question) for item in items}
    for name in CALIBRATION_SUITES:
        questions |= {normalise(case.question) for case in load_suite(name, Settings()).cases}
    assert len(questions) > 10_000
    return questions


@pytest.mark.slow
def test_no_training_or_calibration_question_is_one_of_ours(trained_on: set[str]) -> None:
    ours = dev_and_test_questions()
    assert len(ours) > 400
    assert not trained_on & ours, sorted(trained_on & ours)[:10]


@pytest.mark.slow
def test_no_training_or_calibration_question_is_a_public_eval_question(trained_on: set[str]) -> None:
    public = public_eval_questions()
    if not public:
        pytest.skip("no public eval data in ../shared/data")
    overlap = trained_on & public
    assert not overlap, sorted(overlap)[:10]
