"""The verifier: its data recipe (on a made-up training folder), a toy training run, the export."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from retrieval.build import verifier_data as vd
from retrieval.config import Settings
from retrieval.verifier import load_verifier
from retrieval.verifier_model import ADAPTER_DIR, VerifierConfig, has_adapter

EXCLUDED_QID = "bad-1"


def _gz_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(obj, fh)


def _squad(title: str, paragraphs: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    return {"data": [{"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs]}]}


def _qa(qid: str, question: str, context: str, answer: str | None) -> dict[str, Any]:
    if answer is None:
        return {"id": qid, "question": question, "answers": [], "is_impossible": True}
    return {"id": qid, "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}],
            "is_impossible": False}


ALPS = "The Alps are a mountain range. Mont Blanc is the highest peak at 4,808 metres. Skiing is popular there."
ALPS2 = "Glaciers in the Alps are shrinking. The Aletsch Glacier is the largest glacier of the range."
ALPS3 = "The Alps span eight countries. Tourism in the Alps grew in the nineteenth century."
ZH = "长城是中国古代的军事防御工程。它的总长度超过两万公里。每年有很多游客参观。"
DE = "Die Alpen sind ein Gebirge. Der höchste Gipfel ist der Mont Blanc mit 4808 Metern."


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stand-in for ../shared/data/train: every file the recipe reads, a few made-up rows."""
    root = tmp_path_factory.mktemp("train")
    _gz_json(root / "squad2-train-first10" / "train-v2.0.first10.json.gz", _squad("Alps", [
        (ALPS, [_qa("s1", "What is the highest peak of the Alps?", ALPS, "Mont Blanc"),
                _qa("s2", "What is the lowest valley of the Alps?", ALPS, None)]),
        (ALPS2, [_qa("s3", "Which is the largest glacier of the Alps?", ALPS2, "Aletsch Glacier")]),
        (ALPS3, [_qa("s4", "How many countries do the Alps span?", ALPS3, "eight")]),
    ]))
    zh = _squad("长城", [(ZH, [_qa("z1", "长城的总长度是多少？", ZH, "两万公里")])])
    for folder, name in (("cmrc2018-dev-trial", "cmrc2018_dev"), ("cmrc2018-dev-trial", "cmrc2018_trial"),
                         ("drcd-dev-test", "DRCD_dev"), ("drcd-dev-test", "DRCD_test")):
        _gz_json(root / folder / f"{name}.json.gz", zh)
    _gz_json(root / "mlqa-dev" / "en.json.gz", _squad("Alps", [
        (ALPS, [_qa("m1", "How high is Mont Blanc?", ALPS, "4,808 metres"),
                _qa(EXCLUDED_QID, "Is skiing popular?", ALPS, "Skiing")]),
    ]))
    _gz_json(root / "mlqa-dev" / "de.json.gz", _squad("Alpen", [
        (DE, [_qa("m1", "Wie hoch ist der Mont Blanc?", DE, "4808 Metern")])]))
    for lang in ("es", "zh"):
        _gz_json(root / "mlqa-dev" / f"{lang}.json.gz", {"data": []})
    for name in ("selqa-ass-dev.json", "selqa-ass-test.json"):
        _gz_json(root / "selqa-ass" / f"{name}.gz", [{
            "question": "Where is the Aletsch Glacier?", "article": "Aletsch", "section": "Intro",
            "candidates": ["The Aletsch Glacier is in Switzerland.", "It is 23 km long.", "Ice melts."],
            "answers": [0],
        }])
    rows = [{"sentence1": ALPS, "sentence2": "Is Mont Blanc the highest peak?", "label": "YES", "PassageID": 1},
            {"sentence1": ALPS, "sentence2": "Did it snow in 1900?", "label": "DON'T KNOW", "PassageID": 1},
            {"sentence1": ALPS2, "sentence2": "Is the glacier growing?", "label": "NO", "PassageID": 9}]
    (root / "condaqa").mkdir()
    for name in ["condaqa_dev", *(f"conda_fewshot_test_{i}" for i in range(1, 6))]:
        with gzip.open(root / "condaqa" / f"{name}.json.gz", "wt", encoding="utf-8") as fh:
            fh.write("\n".join(json.dumps(row) for row in rows) + "\n")
    header = "dataset\tfile\tid_type\tid\taction\treason\ttitle\n"
    (root / vd.EXCLUDE_FILE).write_text(
        header + f"mlqa-dev\ten.json\tquestion_id\t{EXCLUDED_QID}\texclude\toverlap\tAlps\n"
        "condaqa\t(all files)\tPassageID\t9\texclude\toverlap\t\n"
        "squad2-train-first10\ttrain-v2.0.json\tquestion_id\ts4\tkeep (low overlap)\tx\tAlps\n",
        encoding="utf-8",
    )
    return root


def test_recipe_builds_every_kind_and_applies_the_exclusions(train_dir: Path) -> None:
    pairs = vd.build_pairs(train_dir)
    kinds = {(p.kind, p.label) for p in pairs}
    assert {("gold_passage", 1), ("gold_sentence", 1), ("unanswerable", 0), ("same_passage_sentence", 0),
            ("bm25", 0), ("same_article", 0)} <= kinds
    # The excluded MLQA question takes its whole paragraph with it, in every language direction.
    assert not any(p.source == "mlqa" and "Skiing" in p.text for p in pairs)
    assert not any(p.question == "Is the glacier growing?" for p in pairs)  # CondaQA passage 9
    assert any(p.question == "What is the lowest valley of the Alps?" and p.label == 0 for p in pairs)
    # Negatives never contain the answer; gold sentence windows do.
    for pair in pairs:
        if pair.question == "What is the highest peak of the Alps?":
            assert ("Mont Blanc" in pair.text) == (pair.label == 1), pair
    assert vd.build_pairs(train_dir) == pairs  # reproducible


def test_recipe_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(vd.DataError, match=r"EXCLUDE_eval_overlap\.tsv"):
        vd.build_pairs(tmp_path)


def test_windows_keep_whole_sentences_within_budget() -> None:
    text = "One two. Three four five. Six. Seven eight nine ten."
    spans = vd.sentence_spans(text)
    assert vd._window(text, spans, 1, 25) == "One two. Three four five."
    assert vd._window(text, spans, 3, 5) == "Seven eight nine ten."  # a long sentence is kept whole


def test_split_keeps_a_group_on_one_side() -> None:
    pairs = [vd.Pair("q", f"t{i}", i % 2, "en", "bm25", "x", f"g{i % 50}") for i in range(500)]
    train, dev = vd.split(pairs)
    assert dev and train
    assert not {p.group for p in train} & {p.group for p in dev}


def test_our_questions_point_at_squad_paragraphs() -> None:
    rows = vd.OUR_QUESTIONS.read_text(encoding="utf-8").splitlines()[1:]
    langs = {row.split("\t")[1] for row in rows}
    assert langs == {"lv", "ru"} and len(rows) >= 100


def test_toy_training_saves_an_adapter_that_reloads(model_dir: Path, tmp_path: Path) -> None:
    import torch

    from retrieval.build.verifier_train import TrainOptions, pair_tokenizer, train
    from retrieval.verifier_model import load_trained

    pairs = [vd.Pair("Where is the Aletsch Glacier?", "The Aletsch Glacier is in Switzerland.", 1, "en",
                     "gold_sentence", "toy", "g"),
             vd.Pair("Where is the Aletsch Glacier?", "Ice melts.", 0, "en", "same_passage_sentence", "toy", "g")] * 8
    options = TrainOptions(st_dir=model_dir / "st", out_dir=tmp_path / "adapter", layers=1, max_len=32, batch_size=4,
                           max_steps=3, show_progress=False)
    config = train(pairs, options)
    assert config.trained["steps"] == 3 and config.trained["stopped"] == "max steps"
    assert VerifierConfig.load(tmp_path / "adapter").layers == 1
    network, _ = load_trained(model_dir / "st", tmp_path / "adapter", merge=False)
    merged, _ = load_trained(model_dir / "st", tmp_path / "adapter", merge=True)
    tokenizer = pair_tokenizer(model_dir / "st", 32)
    enc = tokenizer.encode("query: Where is it?", "passage: In Switzerland.")
    ids, mask = torch.tensor([enc.ids]), torch.tensor([enc.attention_mask])
    with torch.no_grad():
        assert torch.allclose(network(ids, mask), merged(ids, mask), atol=1e-4)  # merging changes nothing


def test_load_verifier_is_none_without_an_export(tmp_path: Path) -> None:
    assert load_verifier(Settings(model_dir=tmp_path / "models" / "e5")) is None


def test_prepare_verifier_skips_without_an_adapter(tmp_path: Path) -> None:
    from retrieval.build.embedder import prepare_verifier

    assert prepare_verifier(tmp_path / "e5", adapter_dir=tmp_path / "no-adapter") is None


@pytest.mark.integration
@pytest.mark.skipif(not has_adapter(ADAPTER_DIR), reason="no verifier adapter committed")
def test_exported_verifier_ranks_the_answer_above_a_topical_non_answer(model_dir: Path) -> None:
    from retrieval.build.embedder import prepare_verifier
    from retrieval.verifier import Verifier

    folder = prepare_verifier(model_dir)
    assert folder is not None
    verifier = Verifier(folder, threads=int(os.environ.get("ANSWERDESK_VERIFIER_THREADS", "2")))
    scores = verifier.score("When was the Eiffel Tower completed?", [
        "The Eiffel Tower was completed in March 1889 for the World's Fair in Paris.",
        "The Eiffel Tower is repainted every seven years and attracts millions of visitors.",
    ])
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    assert scores[0] > scores[1]


def test_eval_rows_give_each_negative_kind_an_auc_against_the_positives() -> None:
    import numpy as np

    from retrieval.build.verifier_eval import EvalResult, _rows

    pairs = [vd.Pair("q", "a", 1, "en", "gold_sentence", "x", "g"), vd.Pair("q", "b", 0, "en", "bm25", "x", "g"),
             vd.Pair("q", "c", 0, "de", "same_article", "x", "g"), vd.Pair("q", "d", 1, "de", "gold_passage", "x", "g")]
    result = EvalResult(pairs, np.array([0.9, 0.2, 0.95, 0.6]), 1.0)
    by_kind = {name: (count, area, acc) for name, count, area, acc in _rows(result, "kind")}
    assert by_kind["bm25"] == (1, 1.0, 1.0)
    assert by_kind["same_article"][1] == 0.0 and by_kind["same_article"][2] == 0.0  # ranked above both positives
    assert by_kind["all"][0] == 4 and result.ms_per_pair == 250.0
