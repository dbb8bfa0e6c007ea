"""Eval suites: a corpus of documents plus the cases asked against it.

Our own ``sample`` suite is the sample KB with ``data/eval/*.jsonl`` (the development set) and ``test``
the same KB with ``data/test/*.jsonl``, a held-out set nothing may be tuned on (data/test/README.md).
The public sets are read from ``ANSWERDESK_EVAL_DATA_DIR`` (default ``../shared/data`` beside the repo) and never
copied into it; each folder's README documents its license and protocol. Suite names::

    sample                    data/kb + data/eval/sample_qa_*.jsonl (development)
    test                      data/kb + data/test/*.jsonl (held out: report only, never tune)
    sample-crosslingual       the sample suite's questions not in English whose gold documents are all English
    mlqa-dev:Q-en             MLQA dev questions in Q (de, es, zh) against the English paragraphs (a dev
                              set from the training folder, ``train/mlqa-dev``; eval-overlap exclusions applied)
    xquad-r:Q-C               questions in Q against the 240 paragraphs in C (gold = the paragraph)
    xquad-r-abstain:Q-C       as above, articles with index ≡ 0 mod 5 removed; their questions must abstain
    nomiracl[:LANG]           each query against its own 10 judged passages; non-relevant must abstain (a test set)
    nomiracl-pooled[:LANG]    every judged passage in one corpus, retrieved from for each query (a test set)
    squad2                    646 paragraphs; unanswerable questions must abstain
    covid-faq:LANG            FAQ entries (en or de), paraphrased questions; gold = the matching entry
    clinc150                  one FAQ entry per in-scope intent from its training utterances; OOS must abstain
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from eval.cases import EvalCase, load_cases
from eval.suite import Suite, SuiteError, passage_document
from eval.train_suites import load_train_suite
from retrieval.config import Settings
from retrieval.records import Document, Section

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
# Other files in data/eval hold other kinds of labels (e.g. triage), not question/answer cases.
SAMPLE_CASES = "sample_qa_*.jsonl"
XQUAD_LANGUAGES = ("en", "de", "es", "ru", "zh")
NOMIRACL_LANGUAGES = ("en", "ru", "zh", "de", "es")
COVID_LANGUAGES = ("en", "de")
MLQA_LANGUAGES = ("de", "es", "zh")
# Suites fitted on by `eval calibrate` must not include these: every public eval set and our own
# test set (data/test) are test sets.
# Calibrate on our dev set (`sample`) and the training data's held-out groups (`train-…`).
TEST_ONLY_PREFIXES = ("nomiracl", "xquad-r", "squad2", "covid-faq", "clinc150", "test")
EXAMPLE_SUITES = (
    "sample",
    "test",
    "xquad-r:en-en",
    "xquad-r:ru-en",
    "xquad-r-abstain:zh-en",
    "nomiracl:de",
    "squad2",
    "covid-faq:en",
    "clinc150",
)


class DatasetMissingError(FileNotFoundError):
    """The public data a suite needs is not there; the message says where it was looked for."""


def eval_data_dir(settings: Settings) -> Path:
    return settings.eval_data_dir or REPO.parent / "shared" / "data"


def train_data_dir(settings: Settings) -> Path:
    """The public training data (``../shared/data/train``): the verifier's and calibration's only source."""
    return settings.train_data_dir or eval_data_dir(settings) / "train"


def load_suite(
    name: str, settings: Settings, kb_dir: Path | None = None, case_files: list[Path] | None = None
) -> Suite:
    """The suite called ``name``; raises SuiteError for bad names and DatasetMissingError for absent data."""
    kind, _, arg = name.partition(":")
    root = eval_data_dir(settings)
    if kind in ("sample", "sample-crosslingual") and not arg:
        sample = _sample(
            kb_dir or REPO / "data" / "kb", case_files or sorted((REPO / "data" / "eval").glob(SAMPLE_CASES))
        )
        return _crosslingual(sample) if kind == "sample-crosslingual" else sample
    if kind == "mlqa-dev":
        question_lang, _, corpus_lang = arg.partition("-")
        if question_lang not in MLQA_LANGUAGES or corpus_lang != "en":
            raise SuiteError(f"{name!r}: expected mlqa-dev:Q-en with Q from {', '.join(MLQA_LANGUAGES)}")
        return _mlqa(root / "train", question_lang)
    if kind == "test" and not arg:
        suite = _sample(kb_dir or REPO / "data" / "kb", case_files or sorted((REPO / "data" / "test").glob("*.jsonl")))
        return replace(suite, name="test", protocol="our held-out test set (data/test): report only, never tune")
    if kind in ("xquad-r", "xquad-r-abstain"):
        question_lang, corpus_lang = _pair(name, arg)
        return _xquad(root / "xquad-r", question_lang, corpus_lang, abstain=kind == "xquad-r-abstain")
    if kind in ("nomiracl", "nomiracl-pooled"):
        languages = (_one_of(name, arg, NOMIRACL_LANGUAGES),) if arg else NOMIRACL_LANGUAGES
        return _nomiracl(root / "nomiracl-subset", languages, name, per_query=kind == "nomiracl")
    if kind == "squad2" and not arg:
        return _squad2(root / "squad2-dev-cs224n")
    if kind == "covid-faq":
        return _covid_faq(root / "covid-faq-deepset", _one_of(name, arg, COVID_LANGUAGES))
    if kind == "clinc150" and not arg:
        return _clinc150(root / "clinc150-oos")
    if kind.startswith("train-"):
        return load_train_suite(name, train_data_dir(settings))
    raise SuiteError(f"unknown suite {name!r}; for example: {', '.join(EXAMPLE_SUITES)}")


def subsample(cases: list[EvalCase], limit: int | None, seed: int = 13) -> list[EvalCase]:
    """At most ``limit`` cases, a fixed random choice kept in the original order."""
    if limit is None or limit >= len(cases):
        return cases
    chosen = set(random.Random(seed).sample(range(len(cases)), limit))
    return [case for index, case in enumerate(cases) if index in chosen]


def _pair(name: str, arg: str) -> tuple[str, str]:
    question_lang, _, corpus_lang = arg.partition("-")
    if question_lang not in XQUAD_LANGUAGES or corpus_lang not in XQUAD_LANGUAGES:
        raise SuiteError(f"{name!r}: expected LANG-LANG with languages from {', '.join(XQUAD_LANGUAGES)}")
    return question_lang, corpus_lang


def _one_of(name: str, arg: str, allowed: tuple[str, ...]) -> str:
    if arg not in allowed:
        raise SuiteError(f"{name!r}: language must be one of {', '.join(allowed)}")
    return arg


def _need(path: Path) -> Path:
    if not path.exists():
        raise DatasetMissingError(
            f"{path} not found: public eval data is read from ANSWERDESK_EVAL_DATA_DIR (default ../shared/data)"
        )
    return path


def _read_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(_need(path), "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with gzip.open(_need(path), "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _faq_entry(document_id: str, title: str, question: str, answer: str, language: str, source: str) -> Document:
    return Document(document_id, title, source, "faq", language, [Section((question,), (answer,), is_faq=True)])


def _sample(kb_dir: Path, case_files: list[Path]) -> Suite:
    from ingest.parse import ParseError, parse_file
    from ingest.pipeline import discover
    from retrieval.scope import PUBLIC

    files, problems = discover([kb_dir])
    if problems:
        raise DatasetMissingError(f"{problems[0].source}: {problems[0].error}")
    documents = []
    for path, root in files:
        try:
            document = parse_file(path, root)
        except ParseError as exc:
            raise ValueError(f"{path}: {exc.problem}") from exc
        # The questions are a customer's, so every system sees only what a customer may see.
        if document.metadata.get("audience", PUBLIC) == PUBLIC:
            documents.append(document)
    return Suite("sample", documents, load_cases(*case_files), "our sample KB (public documents) and data/eval")


def _crosslingual(sample: Suite) -> Suite:
    """The cases a same-language document must not win: a question not in English whose answer is
    only in English articles (a Latvian, Russian or Chinese question must find the English one)."""
    cases = [
        case
        for case in sample.cases
        if case.language != "en"
        and case.gold_document_ids
        and all(gold.startswith("en/") for gold in case.gold_document_ids)
    ]
    return Suite(
        "sample-crosslingual", sample.documents, cases, sample.protocol + "; non-English questions, English-only gold"
    )


def _mlqa(train: Path, question_lang: str) -> Suite:
    """MLQA dev: the English record with a question's id holds its answer, so (question in Q, English
    paragraph) is a cross-lingual pair. Ids the training folder excludes for eval overlap are left out."""
    excluded = {row["id"] for row in _read_csv(train / "EXCLUDE_eval_overlap.tsv", "\t") if row["action"] == "exclude"}
    documents = []
    gold: dict[str, str] = {}
    for a, article in enumerate(_read_json(train / "mlqa-dev" / "en.json.gz")["data"]):
        for p, paragraph in enumerate(article["paragraphs"]):
            document_id = f"mlqa-dev/{a:03d}/{p}"
            documents.append(
                passage_document(document_id, article["title"], paragraph["context"], "en", "mlqa-dev/en.json.gz")
            )
            gold.update((qa["id"], document_id) for qa in paragraph["qas"])
    cases = [
        EvalCase(
            id=qa["id"],
            question=qa["question"],
            language=question_lang,
            gold_document_ids=[gold[qa["id"]]],
            answer_spans=[answer["text"] for answer in qa["answers"]],
        )
        for article in _read_json(train / "mlqa-dev" / f"{question_lang}.json.gz")["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
        if qa["id"] in gold and qa["id"] not in excluded
    ]
    protocol = f"dev (training folder): {question_lang} questions vs the English paragraphs"
    return Suite(f"mlqa-dev:{question_lang}-en", documents, cases, protocol)


def _xquad(folder: Path, question_lang: str, corpus_lang: str, abstain: bool) -> Suite:
    """Paragraph ids are shared across languages (``xquad-r/AA/P``), so cross-lingual gold comes for free."""
    corpus = _read_json(folder / f"{corpus_lang}.json.gz")["data"]
    questions = _read_json(folder / f"{question_lang}.json.gz")["data"]
    held_out = {index for index in range(len(corpus)) if abstain and index % 5 == 0}
    documents = [
        passage_document(
            f"xquad-r/{a:02d}/{p}",
            article["title"].replace("_", " "),
            paragraph["context"],
            corpus_lang,
            f"xquad-r/{corpus_lang}.json.gz",
        )
        for a, article in enumerate(corpus)
        if a not in held_out
        for p, paragraph in enumerate(article["paragraphs"])
    ]
    cases = [
        EvalCase(
            id=qa["id"],
            question=qa["question"],
            language=question_lang,
            gold_document_ids=[] if a in held_out else [f"xquad-r/{a:02d}/{p}"],
            answer_spans=[answer["text"] for answer in qa["answers"]],
            should_abstain=a in held_out,
        )
        for a, article in enumerate(questions)
        for p, paragraph in enumerate(article["paragraphs"])
        for qa in paragraph["qas"]
    ]
    kind = "xquad-r-abstain" if abstain else "xquad-r"
    protocol = f"{question_lang} questions vs {corpus_lang} paragraphs" + (
        "; articles with index ≡ 0 mod 5 held out, their questions must abstain" if abstain else ""
    )
    return Suite(f"{kind}:{question_lang}-{corpus_lang}", documents, cases, protocol)


def _nomiracl(folder: Path, languages: tuple[str, ...], name: str, per_query: bool) -> Suite:
    """Every judged passage in one corpus; relevant queries have unknown gold passages.

    Per query (the dataset's main use), a case may only be answered from its own 10 passages, the
    "retrieved context" the paper hands its models; pooled, each query retrieves from all of them.
    """
    documents: dict[str, Document] = {}
    cases = []
    for row in _read_jsonl(folder / "nomiracl_test_5lang_with_text.jsonl.gz"):
        language = row["lang"]
        if language not in languages:
            continue
        passage_ids = []
        for passage in row["passages"]:
            document_id = f"nomiracl/{language}/{passage['docid']}"
            passage_ids.append(document_id)
            if document_id not in documents:
                documents[document_id] = passage_document(document_id, "", passage["text"], language, "nomiracl")
        cases.append(
            EvalCase(
                id=f"{language}/{row['query_id']}",
                question=row["query"],
                language=language,
                should_abstain=not row["answer_in_passages"],
                allowed_document_ids=passage_ids if per_query else None,
            )
        )
    protocol = (
        "test set: each query answers from its own 10 judged passages or abstains (non-relevant queries must)"
        if per_query
        else "test set: retrieve from the pooled judged passages; abstain on non-relevant queries"
    )
    return Suite(name, list(documents.values()), cases, protocol)


def _squad2(folder: Path) -> Suite:
    data = _read_json(folder / "dev-v2.0.json.gz")["data"]
    documents = []
    cases = []
    for a, article in enumerate(data):
        for p, paragraph in enumerate(article["paragraphs"]):
            document_id = f"squad2/{a:02d}/{p:03d}"
            title = article["title"].replace("_", " ")
            documents.append(passage_document(document_id, title, paragraph["context"], "en", "squad2"))
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible"))
                cases.append(
                    EvalCase(
                        id=qa["id"],
                        question=qa["question"],
                        language="en",
                        gold_document_ids=[] if impossible else [document_id],
                        answer_spans=[answer["text"] for answer in qa["answers"]] or None,
                        should_abstain=impossible,
                    )
                )
    return Suite("squad2", documents, cases, "646 paragraphs; unanswerable (adversarial) questions must abstain")


def _covid_faq(folder: Path, language: str) -> Suite:
    if language == "en":
        rows = _read_csv(folder / "faq_covidbert.csv", ",")
    else:
        rows = [row for row in _read_csv(folder / "faq_200327.tsv", "\t") if row["lang"] == language]
    documents = []
    by_question: dict[str, str] = {}
    for number, row in enumerate(rows):
        question = row["question"].strip()
        if not question or question in by_question:
            continue
        document_id = f"covid-faq/{language}/{number:04d}"
        by_question[question] = document_id
        title = (row.get("name") or row.get("source") or "FAQ").strip()
        documents.append(_faq_entry(document_id, title, question, row["answer"].strip(), language, "covid-faq"))
    cases = []
    pairs = _read_csv(folder / f"eval_question_similarity_{language}.csv", ",")
    for number, pair in enumerate(pairs):
        gold = by_question.get(pair["question_1"].strip())
        if pair["similar"].strip() != "1" or gold is None:
            continue
        cases.append(
            EvalCase(
                id=f"covid-faq/{language}/{number:04d}",
                question=pair["question_2"].strip(),
                language=language,
                gold_document_ids=[gold],
            )
        )
    return Suite(f"covid-faq:{language}", documents, cases, f"{language} FAQ entries; paraphrased questions")


def _clinc150(folder: Path) -> Suite:
    """One FAQ-style entry per in-scope intent (question: the intent name; answer: 20 training utterances)."""
    data = _read_json(folder / "data_full.json.gz")
    examples: dict[str, list[str]] = defaultdict(list)
    for utterance, intent in data["train"]:
        examples[intent].append(utterance)
    documents = []
    for intent, texts in sorted(examples.items()):
        label = intent.replace("_", " ")
        documents.append(_faq_entry(f"clinc150/{intent}", label, label, "\n".join(texts[:20]), "en", "clinc150"))
    cases = [
        EvalCase(id=f"clinc150/{number:04d}", question=text, language="en", gold_document_ids=[f"clinc150/{intent}"])
        for number, (text, intent) in enumerate(data["test"])
    ] + [
        EvalCase(id=f"clinc150/oos-{number:04d}", question=text, language="en", should_abstain=True)
        for number, (text, _) in enumerate(data["oos_test"])
    ]
    return Suite("clinc150", documents, cases, "in-scope intents as FAQ entries; out-of-scope queries must abstain")


def _read_csv(path: Path, delimiter: str) -> list[dict[str, str]]:
    with _need(path).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))
