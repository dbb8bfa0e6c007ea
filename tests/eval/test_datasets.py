from __future__ import annotations

from pathlib import Path

import pytest

from eval.datasets import DatasetMissingError, load_suite, subsample
from eval.suite import SuiteError
from retrieval.config import Settings


@pytest.fixture
def settings(public_data: Path) -> Settings:
    return Settings(eval_data_dir=public_data)


def test_xquad_cross_lingual_gold_is_the_parallel_paragraph(settings: Settings) -> None:
    suite = load_suite("xquad-r:ru-en", settings)
    assert {document.language for document in suite.documents} == {"en"}
    assert len(suite.documents) == 6
    first = suite.cases[0]
    assert (first.language, first.question) == ("ru", "Что извергают вулканы?")
    assert first.gold_document_ids == ["xquad-r/00/0"]
    assert suite.documents[0].document_id == "xquad-r/00/0"
    assert suite.documents[0].title == "Volcanoes"


def test_xquad_abstain_holds_out_articles_zero_mod_five(settings: Settings) -> None:
    suite = load_suite("xquad-r-abstain:en-en", settings)
    assert [document.document_id for document in suite.documents] == [f"xquad-r/0{i}/0" for i in (1, 2, 3, 4)]
    abstaining = [case.id for case in suite.cases if case.should_abstain]
    assert abstaining == ["q0", "q5"]
    assert all(not case.gold_document_ids for case in suite.cases if case.should_abstain)


def test_squad2_unanswerable_questions_must_abstain(settings: Settings) -> None:
    suite = load_suite("squad2", settings)
    assert len(suite.documents) == 2
    assert [(case.id, case.should_abstain, case.gold_document_ids) for case in suite.cases] == [
        ("s1", False, ["squad2/00/000"]),
        ("s2", True, []),
        ("s3", False, ["squad2/00/001"]),
    ]


@pytest.mark.parametrize("kind", ["nomiracl", "nomiracl-pooled"])
@pytest.mark.parametrize(
    ("language", "cases", "passages", "english_abstains"),
    [("", 3, 3, [False, True]), (":en", 2, 2, [False, True]), (":de", 1, 1, [])],
)
def test_nomiracl_pools_passages_per_language(
    settings: Settings, kind: str, language: str, cases: int, passages: int, english_abstains: list[bool]
) -> None:
    suite = load_suite(kind + language, settings)
    assert len(suite.cases) == cases
    assert len(suite.documents) == passages  # d2 is shared by two English queries, stored once
    assert [case.should_abstain for case in suite.cases if case.language == "en"] == english_abstains


def test_nomiracl_per_query_limits_each_case_to_its_own_passages(settings: Settings) -> None:
    per_query = {case.id: case.allowed_document_ids for case in load_suite("nomiracl", settings).cases}
    assert per_query == {
        "en/1": ["nomiracl/en/d1", "nomiracl/en/d2"],
        "en/2": ["nomiracl/en/d2"],
        "de/3": ["nomiracl/de/d1"],
    }
    assert all(case.allowed_document_ids is None for case in load_suite("nomiracl-pooled", settings).cases)


@pytest.mark.parametrize(("language", "questions"), [("en", 2), ("de", 1)])
def test_covid_faq_uses_similar_pairs_with_a_known_gold(settings: Settings, language: str, questions: int) -> None:
    suite = load_suite(f"covid-faq:{language}", settings)
    assert len(suite.cases) == questions
    ids = {document.document_id for document in suite.documents}
    assert all(set(case.gold_document_ids) <= ids for case in suite.cases)
    assert all(document.kind == "faq" and document.language == language for document in suite.documents)


def test_clinc150_out_of_scope_queries_must_abstain(settings: Settings) -> None:
    suite = load_suite("clinc150", settings)
    assert [(case.should_abstain, case.gold_document_ids) for case in suite.cases] == [
        (False, ["clinc150/freeze_account"]),
        (True, []),
    ]


@pytest.mark.parametrize("name", ["xquad-r:en-lv", "xquad-r:en", "nomiracl:lv", "covid-faq:fr", "squad3", "sample:x"])
def test_unknown_suites_are_named(settings: Settings, name: str) -> None:
    with pytest.raises(SuiteError, match=r"suite|language"):
        load_suite(name, settings)


def test_missing_data_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError, match="ANSWERDESK_EVAL_DATA_DIR"):
        load_suite("squad2", Settings(eval_data_dir=tmp_path))


def test_sample_suite_reads_our_kb_and_eval_sets() -> None:
    suite = load_suite("sample", Settings())
    assert len(suite.cases) > 200
    ids = {document.document_id for document in suite.documents}
    assert "en/faq-refunds" in ids
    assert any(case.should_abstain for case in suite.cases)


def test_mlqa_dev_pairs_questions_with_the_english_paragraph_of_their_id(settings: Settings) -> None:
    suite = load_suite("mlqa-dev:de-en", settings)
    assert suite.name == "mlqa-dev:de-en" and "dev" in suite.protocol
    assert {document.language for document in suite.documents} == {"en"} and len(suite.documents) == 6
    assert [case.id for case in suite.cases] == ["q0", "q1", "q2", "q3", "q4"]  # q5 is excluded
    first = suite.cases[0]
    assert first.language == "de" and first.question == "Что извергают вулканы?"
    by_id = {document.document_id: document for document in suite.documents}
    assert "Volcanoes erupt" in by_id[first.gold_document_ids[0]].sections[0].blocks[0]
    with pytest.raises(SuiteError, match="mlqa-dev:Q-en"):
        load_suite("mlqa-dev:en-de", settings)


def test_sample_crosslingual_keeps_non_english_questions_with_english_only_gold() -> None:
    full = load_suite("sample", Settings())
    suite = load_suite("sample-crosslingual", Settings())
    assert suite.documents == full.documents and 0 < len(suite.cases) < len(full.cases)
    assert {case.language for case in suite.cases} == {"lv", "ru", "zh"}
    assert all(gold.startswith("en/") for case in suite.cases for gold in case.gold_document_ids)


def test_subsample_is_fixed_and_keeps_order(settings: Settings) -> None:
    cases = load_suite("xquad-r:en-en", settings).cases
    picked = subsample(cases, 3)
    assert picked == subsample(cases, 3)
    assert [cases.index(case) for case in picked] == sorted(cases.index(case) for case in picked)
    assert subsample(cases, None) == cases
