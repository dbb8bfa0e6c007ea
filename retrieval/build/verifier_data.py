"""The verifier's training data: (question, passage or sentence window, label) pairs.

The recipe (docs/verifier.md) reads the public sets under ``../shared/data/train`` (never copied
into the repository), drops every item listed as ``exclude`` in ``EXCLUDE_eval_overlap.tsv``
(its whole paragraph, so the text is not used as a negative either) and builds, per question:

* positives: the gold passage window (sentences around the answer, ~one production chunk) and
  the gold sentence window (the answer sentence, sometimes with the next one);
* hard negatives: adversarial unanswerables with their own passage (SQuAD 2.0, CondaQA
  DON'T KNOW), other sentences of the gold paragraph, BM25-retrieved paragraphs of the same
  language pool that do not contain the answer, another paragraph of the same article.

MLQA gives cross-lingual pairs both ways (de/es/zh question with the English paragraph and the
English question with the de/es/zh paragraph). ``verifier_questions.tsv`` holds Latvian and Russian
questions we wrote over SQuAD 2.0 train paragraphs (translations of their questions, answerable
and unanswerable alike); they pair with the English paragraph. Everything is seeded; the
train/dev split is by article or passage (``group``), so dev paragraphs are unseen in training.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import AnswerDeskError
from retrieval.analysis import analyze
from retrieval.sentences import sentence_spans

logger = logging.getLogger(__name__)

SEED = 13
DEV_SHARE = 0.1
EXCLUDE_FILE = "EXCLUDE_eval_overlap.tsv"
OUR_QUESTIONS = Path(__file__).with_name("verifier_questions.tsv")
# Passage windows: about one production chunk, so the answer is never truncated away at 192 tokens.
WINDOW_CHARS = {"zh": 260}
DEFAULT_WINDOW_CHARS = 650
BM25_TOP_K = 12
NEGATIVES_PER_KIND = {"same_passage_sentence": 2, "bm25": 2, "same_article": 1}
CONDAQA_POSITIVES = 1500  # yes/no negation QA is auxiliary: a small share of the mix

POSITIVE_KINDS = ("gold_passage", "gold_sentence")
NEGATIVE_KINDS = ("unanswerable", "same_passage_sentence", "bm25", "same_article")


class DataError(AnswerDeskError, ValueError):
    """The training data folder is missing or malformed."""

    code = "invalid_training_data"


@dataclass(frozen=True)
class Pair:
    """One training or dev example."""

    question: str
    text: str
    label: int  # 1 = the text answers the question
    lang: str  # question language, or "q>p" (e.g. "lv>en") when the passage is in another one
    kind: str  # one of POSITIVE_KINDS / NEGATIVE_KINDS
    source: str
    group: str  # split key: article or passage


@dataclass
class Item:
    """A question over one paragraph, in a common shape for every source set."""

    source: str
    qid: str
    question: str
    qlang: str
    context: str
    plang: str
    answers: list[tuple[str, int]]  # (text, start); empty for an unanswerable question
    group: str
    article: str
    spans: list[tuple[int, int]] = field(default_factory=list)  # sentence offsets in context
    # English twin of a cross-lingual item: its question retrieves the BM25 negatives of the pool.
    pool_question: str | None = None

    @property
    def lang(self) -> str:
        return self.qlang if self.qlang == self.plang else f"{self.qlang}>{self.plang}"


def default_data_dir() -> Path:
    """``../shared/data/train`` beside the repository."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "train"


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"missing training file {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _load_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"missing training file {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_exclusions(data_dir: Path) -> set[tuple[str, str]]:
    """(dataset, id) pairs whose rows must not be used (action ``exclude``)."""
    path = data_dir / EXCLUDE_FILE
    if not path.is_file():
        raise DataError(f"missing {path}: the eval-overlap exclusions must be applied")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    # SelQA ids are array indices, so they are only unique per file.
    return {
        (row["dataset"], f"{row['file']}:{row['id']}" if row["id_type"] == "array_index" else row["id"])
        for row in rows
        if row["action"] == "exclude"
    }


def _squad_items(
    path: Path, source: str, dataset: str, lang: str, excluded: set[tuple[str, str]], by_article: bool
) -> Iterator[Item]:
    for a_index, article in enumerate(_load_json(path)["data"]):
        title = str(article.get("title") or article.get("id") or a_index)
        for p_index, paragraph in enumerate(article["paragraphs"]):
            context: str = paragraph["context"]
            qas = paragraph["qas"]
            if any((dataset, qa["id"]) in excluded for qa in qas):
                continue  # the paragraph overlaps an eval text: drop all of it
            spans = _mlqa_spans(paragraph) or sentence_spans(context)
            group = f"{source}:{title}" if by_article else f"{source}:{title}:{p_index}"
            for qa in qas:
                answers = [] if qa.get("is_impossible") else [(a["text"], a["answer_start"]) for a in qa["answers"]]
                yield Item(source, qa["id"], qa["question"], lang, context, lang, answers, group,
                           f"{source}:{title}", spans)


def _mlqa_spans(paragraph: dict[str, Any]) -> list[tuple[int, int]]:
    return [(int(start), int(end)) for start, end in paragraph.get("sentence_breaks", [])]


def squad2_items(data_dir: Path, excluded: set[tuple[str, str]]) -> list[Item]:
    # Only 10 articles: split by paragraph.
    return list(_squad_items(data_dir / "squad2-train-first10" / "train-v2.0.first10.json.gz",
                             "squad2", "squad2-train-first10", "en", excluded, by_article=False))


def chinese_items(data_dir: Path, excluded: set[tuple[str, str]]) -> list[Item]:
    items: list[Item] = []
    for name in ("cmrc2018_dev.json.gz", "cmrc2018_trial.json.gz"):
        path = data_dir / "cmrc2018-dev-trial" / name
        items += _squad_items(path, "cmrc2018", "cmrc2018", "zh", excluded, by_article=True)
    for name in ("DRCD_dev.json.gz", "DRCD_test.json.gz"):
        items += _squad_items(data_dir / "drcd-dev-test" / name, "drcd", "drcd", "zh", excluded, by_article=True)
    return items


def mlqa_items(data_dir: Path, excluded: set[tuple[str, str]]) -> list[Item]:
    """Monolingual MLQA items plus cross-lingual ones (x question ↔ English paragraph, both ways)."""
    per_lang: dict[str, dict[str, Item]] = {}
    for lang in ("en", "de", "es", "zh"):
        path = data_dir / "mlqa-dev" / f"{lang}.json.gz"
        per_lang[lang] = {item.qid: item for item in _squad_items(path, "mlqa", "mlqa-dev", lang, excluded, True)}
    english = per_lang["en"]
    # One split group per English article, shared by every language version of its questions.
    for lang_items in per_lang.values():
        for qid, item in lang_items.items():
            if qid in english:
                item.group = english[qid].group
    out = [item for lang_items in per_lang.values() for item in lang_items.values()]
    for lang in ("de", "es", "zh"):
        for qid, item in per_lang[lang].items():
            twin = english.get(qid)
            if twin is None:
                continue
            out.append(Item("mlqa", qid, item.question, lang, twin.context, "en", twin.answers, twin.group,
                            twin.article, twin.spans, pool_question=twin.question))
            out.append(Item("mlqa", qid, twin.question, "en", item.context, lang, item.answers, twin.group,
                            item.article, item.spans, pool_question=item.question))
    return out


def selqa_items(data_dir: Path, excluded: set[tuple[str, str]]) -> list[Item]:
    """SelQA sections as paragraphs; each answer sentence is an answer span."""
    items: list[Item] = []
    for name in ("selqa-ass-dev.json", "selqa-ass-test.json"):
        for index, row in enumerate(_load_json(data_dir / "selqa-ass" / f"{name}.gz")):
            if ("selqa-ass", f"{name}:{index}") in excluded:
                continue
            spans: list[tuple[int, int]] = []
            offset = 0
            for sentence in row["candidates"]:
                spans.append((offset, offset + len(sentence)))
                offset += len(sentence) + 1
            context = " ".join(row["candidates"])
            answers = [(row["candidates"][i], spans[i][0]) for i in row["answers"]]
            article = f"selqa:{row['article']}"
            items.append(Item("selqa", f"{name}:{index}", row["question"], "en", context, "en", answers,
                              article, article, spans))
    return items


def our_questions(squad: Sequence[Item], path: Path = OUR_QUESTIONS) -> list[Item]:
    """Our Latvian/Russian questions over SQuAD 2.0 paragraphs (columns: squad id, lang, question)."""
    by_id = {item.qid: item for item in squad}
    items: list[Item] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            twin = by_id.get(row["squad_id"])
            if twin is None:
                continue  # its paragraph was excluded
            items.append(Item("ours", f"{row['lang']}:{twin.qid}", row["question"], row["lang"], twin.context, "en",
                              twin.answers, twin.group, twin.article, twin.spans, pool_question=twin.question))
    return items


def condaqa_pairs(data_dir: Path, excluded: set[tuple[str, str]], rng: random.Random) -> list[Pair]:
    """CondaQA: DON'T KNOW rows are hard negatives with their own passage; a sample of the rest positives."""
    rows: list[dict[str, Any]] = []
    rows += _load_jsonl(data_dir / "condaqa" / "condaqa_dev.json.gz")
    for i in range(1, 6):
        rows += _load_jsonl(data_dir / "condaqa" / f"conda_fewshot_test_{i}.json.gz")
    rows = [row for row in rows if ("condaqa", str(row["PassageID"])) not in excluded]
    negatives = [row for row in rows if row["label"] == "DON'T KNOW"]
    positives = [row for row in rows if row["label"] != "DON'T KNOW"]
    rng.shuffle(positives)

    def pair(row: dict[str, Any], label: int) -> Pair:
        kind = "gold_passage" if label else "unanswerable"
        return Pair(row["sentence2"], row["sentence1"], label, "en", kind, "condaqa", f"condaqa:{row['PassageID']}")

    return [pair(row, 0) for row in negatives] + [pair(row, 1) for row in positives[:CONDAQA_POSITIVES]]


def _window(context: str, spans: Sequence[tuple[int, int]], center: int, budget: int) -> str:
    """Whole sentences around sentence ``center``, growing both ways while under ``budget`` chars."""
    lo = hi = center
    while True:
        grown = False
        if lo > 0 and spans[hi][1] - spans[lo - 1][0] <= budget:
            lo, grown = lo - 1, True
        if hi + 1 < len(spans) and spans[hi + 1][1] - spans[lo][0] <= budget:
            hi, grown = hi + 1, True
        if not grown:
            return context[spans[lo][0] : spans[hi][1]]


def _sentence_of(spans: Sequence[tuple[int, int]], offset: int) -> int | None:
    for index, (start, end) in enumerate(spans):
        if start <= offset < end:
            return index
    return None


def _contains_answer(text: str, answers: Iterable[tuple[str, int]]) -> bool:
    folded = text.casefold()
    return any(answer.strip().casefold() in folded for answer, _ in answers if answer.strip())


def _best_sentence(spans: Sequence[tuple[int, int]], context: str, terms: set[str], lang: str) -> int:
    """The sentence sharing most analysed terms with the question (where a retriever would look)."""
    overlaps = [len(terms & set(analyze(context[s:e], lang))) for s, e in spans]
    return max(range(len(spans)), key=overlaps.__getitem__) if spans else 0


class _Pool:
    """BM25 over the distinct paragraphs of one language."""

    def __init__(self, lang: str, contexts: Sequence[str]) -> None:
        import bm25s

        self.lang = lang
        self.contexts = list(dict.fromkeys(contexts))
        self.index = bm25s.BM25()
        self.index.index([analyze(text, lang) or ["∅"] for text in self.contexts], show_progress=False)

    def search(self, query: str, k: int) -> list[str]:
        terms = analyze(query, self.lang)
        if not terms:
            return []
        k = min(k, len(self.contexts))
        docs, _ = self.index.retrieve([terms], k=k, show_progress=False, n_threads=1)
        return [self.contexts[int(i)] for i in docs[0]]


def _item_pairs(item: Item, pools: dict[str, _Pool], articles: dict[str, list[Item]], rng: random.Random) -> list[Pair]:
    budget = WINDOW_CHARS.get(item.plang, DEFAULT_WINDOW_CHARS)
    terms = set(analyze(item.question if item.qlang == item.plang else item.pool_question or "", item.plang))
    spans = item.spans or [(0, len(item.context))]

    def make(text: str, label: int, kind: str) -> Pair:
        return Pair(item.question, text, label, item.lang, kind, item.source, item.group)

    def spans_of(context: str) -> list[tuple[int, int]]:
        return sentence_spans(context) or [(0, len(context))]

    if not item.answers:  # adversarial unanswerable: its own, on-topic passage and best sentence
        best = _best_sentence(spans, item.context, terms, item.plang)
        s, e = spans[best]
        return [make(_window(item.context, spans, best, budget), 0, "unanswerable"),
                make(item.context[s:e], 0, "unanswerable")]
    gold = sorted({i for _, start in item.answers if (i := _sentence_of(spans, start)) is not None})
    if not gold:
        return []
    pairs = [make(_window(item.context, spans, gold[0], budget), 1, "gold_passage")]
    first = gold[0]
    # Sentence windows: the answer sentence, and at times the next one with it (production quotes 1-2).
    end = spans[first + 1][1] if first + 1 < len(spans) and rng.random() < 0.3 else spans[first][1]
    pairs.append(make(item.context[spans[first][0] : end], 1, "gold_sentence"))
    others = [i for i in range(len(spans)) if i not in gold
              and not _contains_answer(item.context[spans[i][0] : spans[i][1]], item.answers)]
    others.sort(key=lambda i: -len(terms & set(analyze(item.context[spans[i][0] : spans[i][1]], item.plang))))
    for i in others[: NEGATIVES_PER_KIND["same_passage_sentence"]]:
        pairs.append(make(item.context[spans[i][0] : spans[i][1]], 0, "same_passage_sentence"))
    pool = pools.get(item.plang)
    query = item.question if item.qlang == item.plang else item.pool_question
    if pool is not None and query:
        found = 0
        for context in pool.search(query, BM25_TOP_K):
            if context == item.context or _contains_answer(context, item.answers):
                continue
            cspans = spans_of(context)
            pairs.append(make(_window(context, cspans, _best_sentence(cspans, context, terms, item.plang), budget),
                              0, "bm25"))
            found += 1
            if found == NEGATIVES_PER_KIND["bm25"]:
                break
    siblings = [other.context for other in articles.get(item.article, [])
                if other.context != item.context and not _contains_answer(other.context, item.answers)]
    if siblings:
        context = rng.choice(sorted(set(siblings)))
        cspans = spans_of(context)
        pairs.append(make(_window(context, cspans, _best_sentence(cspans, context, terms, item.plang), budget),
                          0, "same_article"))
    return pairs


def build_pairs(data_dir: Path | None = None, seed: int = SEED) -> list[Pair]:
    """Every pair of the recipe, in a fixed order (same data and seed → same list)."""
    data_dir = data_dir or default_data_dir()
    if not data_dir.is_dir():
        raise DataError(f"training data folder {data_dir} does not exist")
    rng = random.Random(seed)
    excluded = load_exclusions(data_dir)
    squad = squad2_items(data_dir, excluded)
    items = squad + chinese_items(data_dir, excluded) + mlqa_items(data_dir, excluded) + selqa_items(data_dir, excluded)
    items += our_questions(squad)
    contexts: dict[str, list[str]] = defaultdict(list)
    articles: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        contexts[item.plang].append(item.context)
        articles[item.article].append(item)
    pools = {lang: _Pool(lang, texts) for lang, texts in contexts.items()}
    pairs = condaqa_pairs(data_dir, excluded, rng)
    for item in items:
        pairs += _item_pairs(item, pools, articles, rng)
    return pairs


def is_dev(pair: Pair) -> bool:
    """Held-out split by group (article or passage), stable across runs and machines."""
    return is_dev_group(pair.group)


def is_dev_group(group: str) -> bool:
    """Whether an article or passage group is held out of training (calibration uses only these)."""
    digest = hashlib.sha256(group.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < DEV_SHARE


def split(pairs: Sequence[Pair]) -> tuple[list[Pair], list[Pair]]:
    train = [pair for pair in pairs if not is_dev(pair)]
    dev = [pair for pair in pairs if is_dev(pair)]
    return train, dev


def counts(pairs: Iterable[Pair]) -> dict[tuple[str, str, int], int]:
    """Pairs per (language, kind, label)."""
    return dict(sorted(Counter((p.lang, p.kind, p.label) for p in pairs).items()))


def save_pairs(pairs: Iterable[Pair], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair.__dict__, ensure_ascii=False) + "\n")


def load_pairs(path: Path) -> list[Pair]:
    if not path.is_file():
        raise DataError(f"missing pairs file {path}")
    with path.open(encoding="utf-8") as fh:
        try:
            return [Pair(**json.loads(line)) for line in fh if line.strip()]
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: not a pairs file ({exc})") from exc
