"""A tiny stand-in for ../shared/data: the same folder layout and formats, a few made-up rows each."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

TOPICS = [
    ("Volcanoes", "Volcanoes erupt molten lava and ash from the mantle.", "What do volcanoes erupt?"),
    ("Glaciers", "Glaciers are slow rivers of ice that carve valleys.", "What carves valleys slowly?"),
    ("Bees", "Bees collect nectar and pollen to make honey in hives.", "What do bees make in hives?"),
    ("Tides", "Tides rise and fall twice a day because of the moon.", "Why do tides rise and fall?"),
    ("Deserts", "Deserts receive little rain and have sand dunes.", "Which places have sand dunes?"),
    ("Coral", "Coral reefs grow in warm shallow seas and shelter fish.", "Where do coral reefs grow?"),
]
RUSSIAN = [
    ("Вулканы", "Вулканы извергают лаву и пепел.", "Что извергают вулканы?"),
    ("Ледники", "Ледники медленно прорезают долины.", "Что прорезают ледники?"),
    ("Пчёлы", "Пчёлы делают мёд в ульях.", "Что делают пчёлы?"),
    ("Приливы", "Приливы зависят от луны.", "От чего зависят приливы?"),
    ("Пустыни", "В пустынях мало дождей и много песка.", "Где мало дождей?"),
    ("Кораллы", "Коралловые рифы растут в тёплых морях.", "Где растут рифы?"),
]


def _xquad(rows: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "version": "1.0",
        "data": [
            {
                "title": title.replace(" ", "_"),
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [{"id": f"q{a}", "question": question, "answers": [{"text": "x", "answer_start": 0}]}],
                    }
                ],
            }
            for a, (title, context, question) in enumerate(rows)
        ],
    }


def _write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)


def _write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="session")
def public_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shared-data")
    _write_gz(root / "xquad-r" / "en.json.gz", json.dumps(_xquad(TOPICS)))
    _write_gz(root / "xquad-r" / "ru.json.gz", json.dumps(_xquad(RUSSIAN), ensure_ascii=False))

    squad = {
        "data": [
            {
                "title": "Bees",
                "paragraphs": [
                    {
                        "context": TOPICS[2][1],
                        "qas": [
                            {"id": "s1", "question": "What do bees make?", "answers": [{"text": "honey"}]},
                            {"id": "s2", "question": "What do bees sell?", "answers": [], "is_impossible": True},
                        ],
                    },
                    {
                        "context": TOPICS[0][1],
                        "qas": [{"id": "s3", "question": "What do volcanoes erupt?", "answers": [{"text": "lava"}]}],
                    },
                ],
            }
        ]
    }
    _write_gz(root / "squad2-dev-cs224n" / "dev-v2.0.json.gz", json.dumps(squad))

    nomiracl = [
        {"lang": "en", "subset": "relevant", "answer_in_passages": True, "query_id": "1", "query": TOPICS[3][2],
         "passages": [{"docid": "d1", "text": f"Tides: {TOPICS[3][1]}"}, {"docid": "d2", "text": "Bees: honey."}]},
        {"lang": "en", "subset": "non_relevant", "answer_in_passages": False, "query_id": "2",
         "query": "Who painted the ceiling?", "passages": [{"docid": "d2", "text": "Bees: honey."}]},
        {"lang": "de", "subset": "relevant", "answer_in_passages": True, "query_id": "3", "query": "Was ist Honig?",
         "passages": [{"docid": "d1", "text": "Honig: Bienen machen Honig."}]},
    ]  # fmt: skip
    _write_gz(
        root / "nomiracl-subset" / "nomiracl_test_5lang_with_text.jsonl.gz",
        "".join(json.dumps(row) + "\n" for row in nomiracl),
    )

    faq = [
        {"question": "How does the virus spread?", "answer": "Through droplets.", "name": "CDC", "lang": "en"},
        {"question": "Should I wear a mask?", "answer": "Yes, indoors.", "name": "CDC", "lang": "en"},
        {"question": "Wie verbreitet sich das Virus?", "answer": "Durch Tröpfchen.", "name": "RKI", "lang": "de"},
    ]
    _write_csv(root / "covid-faq-deepset" / "faq_covidbert.csv", faq[:2])
    _write_csv(root / "covid-faq-deepset" / "faq_200327.tsv", faq, delimiter="\t")
    _write_csv(
        root / "covid-faq-deepset" / "eval_question_similarity_en.csv",
        [
            {"question_1": "How does the virus spread?", "question_2": "How is the virus spreading?", "similar": "1"},
            {"question_1": "Should I wear a mask?", "question_2": "Is a mask sensible?", "similar": "1"},
            {"question_1": "Should I wear a mask?", "question_2": "Can my cat get it?", "similar": "0"},
            {"question_1": "Not in the FAQ?", "question_2": "Dropped, its gold is missing", "similar": "1"},
        ],
    )
    _write_csv(
        root / "covid-faq-deepset" / "eval_question_similarity_de.csv",
        [{"question_1": faq[2]["question"], "question_2": "Wie wird das Virus übertragen?", "similar": "1"}],
    )

    clinc = {
        "train": [["freeze my card", "freeze_account"], ["what is my balance", "balance"]],
        "test": [["please freeze my account", "freeze_account"]],
        "oos_test": [["tell me a joke about cats", "oos"]],
    }
    _write_gz(root / "clinc150-oos" / "data_full.json.gz", json.dumps(clinc))

    # MLQA dev in the training folder: the Russian rows stand in for a question language (ids q0..q5
    # shared with English), q5 is excluded for eval overlap.
    _write_gz(root / "train" / "mlqa-dev" / "en.json.gz", json.dumps(_xquad(TOPICS)))
    _write_gz(root / "train" / "mlqa-dev" / "de.json.gz", json.dumps(_xquad(RUSSIAN), ensure_ascii=False))
    _write_csv(
        root / "train" / "EXCLUDE_eval_overlap.tsv",
        [
            {"dataset": "mlqa-dev", "file": "en.json", "id_type": "question_id", "id": "q5", "action": "exclude"},
            {"dataset": "mlqa-dev", "file": "en.json", "id_type": "question_id", "id": "q4", "action": "keep (low)"},
        ],
        delimiter="\t",
    )
    return root
