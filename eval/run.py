"""Run a suite through a system in an isolated scratch index and summarise the metrics.

Single questions go to the system's ``ask``. Dialogs and escalation requests go through the support desk
(support/desk.py, the path of ``/v1/ask``) around the answerdesk engine, one conversation per case;
other systems have no desk and skip them.

``DIR/metrics.json`` holds flat metrics and a per-language breakdown; ``DIR/cases.jsonl`` one row per
case (what ``eval compare`` bootstraps over); ``DIR/report.html`` the plots.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from eval.answerer import Answerer, BuildContext
from eval.cases import EvalCase
from eval.metrics import (
    abstention_scores,
    area_under_risk_coverage,
    citation_precision,
    error_rate,
    expected_calibration_error,
    hallucination_rate,
    mean,
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
)
from eval.suite import Suite
from eval.systems import SYSTEMS, AnswerDeskSystem
from eval.targets import grouped_targets, targets_markdown
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import Embedder
from retrieval.embedding_cache import CachingEmbedder
from retrieval.records import Reason, Status
from retrieval.verify import Verifier

if TYPE_CHECKING:
    from support.desk import SupportDesk

logger = logging.getLogger(__name__)

RECALL_KS = (1, 3, 5, 10)
CURVE_KS = tuple(range(1, 11))


@dataclass(frozen=True)
class CaseResult:
    """One case as a system handled it."""

    case: EvalCase
    answered: bool
    ranked_documents: list[str]
    cited_documents: list[str]
    cited_chunks: list[str]
    top_score: float
    confidence: float
    latency_ms: float
    quotes: list[str] = field(default_factory=list)
    escalated: bool = False
    reasons: list[Reason] = field(default_factory=list)

    @property
    def has_gold(self) -> bool:
        return bool(self.case.gold_document_ids) and not self.case.should_abstain

    @property
    def correct_if_answered(self) -> bool:
        """Would an answer be right: never for should-abstain cases, else the top document is gold.

        Answerable cases without gold ids (NoMIRACL's relevant queries) count as right.
        """
        if self.case.should_abstain:
            return False
        if not self.case.gold_document_ids:
            return True
        return bool(self.ranked_documents) and self.ranked_documents[0] in self.case.gold_document_ids

    def row(self) -> dict[str, Any]:
        """The per-case record written to cases.jsonl."""
        gold = self.case.gold_document_ids
        values: dict[str, Any] = {
            "id": self.case.id,
            "language": self.case.language,
            "should_abstain": self.case.should_abstain,
            "answered": self.answered,
            "correct_if_answered": self.correct_if_answered,
            "has_gold": self.has_gold,
            "top_score": self.top_score if math.isfinite(self.top_score) else None,
            "confidence": self.confidence,
            "latency_ms": round(self.latency_ms, 3),
            "ranked_documents": self.ranked_documents[:10],
            "cited_documents": self.cited_documents,
            "escalated": self.escalated,
            "quotes": self.quotes,
        }
        for k in CURVE_KS:
            values[f"recall@{k}"] = recall_at_k(self.ranked_documents, gold, k) if self.has_gold else None
        values["rr@10"] = reciprocal_rank(self.ranked_documents, gold) if self.has_gold else None
        values["ndcg@10"] = ndcg_at_k(self.ranked_documents, gold) if self.has_gold else None
        return values


def run_cases(
    answerer: Answerer, cases: Sequence[EvalCase], show_progress: bool = True, workdir: Path | None = None
) -> list[CaseResult]:
    """Each case through ``answerer``; dialogs and escalation requests through a desk in ``workdir``."""
    desk = _desk(answerer, workdir) if any(case.through_desk for case in cases) else None
    results = []
    for case in tqdm(cases, desc="questions", unit="q", disable=not show_progress):
        if case.through_desk:
            if desk is not None and isinstance(answerer, AnswerDeskSystem):
                results.append(_through_desk(answerer, desk, case))
            continue
        started = time.perf_counter()
        prediction = answerer.ask(case.question, case.allowed_document_ids)
        elapsed_ms = (time.perf_counter() - started) * 1000
        results.append(
            CaseResult(
                case=case,
                answered=prediction.answered,
                ranked_documents=prediction.ranked_documents,
                cited_documents=prediction.cited_document_ids,
                cited_chunks=prediction.cited_chunk_ids,
                top_score=prediction.top_score,
                confidence=prediction.confidence,
                latency_ms=elapsed_ms,
                quotes=prediction.quotes,
            )
        )
    if desk is not None:
        desk.close()
    return results


def _desk(answerer: Answerer, workdir: Path | None) -> SupportDesk | None:
    """The API's desk (triage rules and abstention limit from the settings) over a scratch database."""
    from support.desk import build_desk

    if not isinstance(answerer, AnswerDeskSystem) or workdir is None:
        logger.warning("dialogs and escalation requests need the answerdesk system; skipped")
        return None
    settings = Settings(support_database_url=f"sqlite:///{workdir / 'support.db'}", webhook_urls=[])
    # The engine's embedder, so triage runs its classifier as in the API (support/desk.py).
    return build_desk(settings, start_worker=False, embedder=answerer.engine.embedder)


def _through_desk(system: AnswerDeskSystem, desk: SupportDesk, case: EvalCase) -> CaseResult:
    """The case's turns as one conversation; the result is the last turn's reply."""
    started = time.perf_counter()
    conversation = f"eval-{case.id}"
    for turn in [*case.history, case.question]:
        answer = desk.ask(system.engine, turn, conversation_id=conversation).answer
    return CaseResult(
        case=case,
        answered=answer.status == Status.ANSWERED,
        ranked_documents=[],
        cited_documents=[citation.document_id for citation in answer.citations],
        cited_chunks=[citation.chunk_id for citation in answer.citations],
        top_score=-math.inf,
        confidence=answer.confidence,
        latency_ms=(time.perf_counter() - started) * 1000,
        quotes=[citation.quote for citation in answer.citations],
        escalated=answer.status == Status.ESCALATED,
        reasons=list(answer.reasons),
    )


def summarize(results: Sequence[CaseResult]) -> dict[str, Any]:
    """Flat metrics over single questions, the same per language, and the issue's target figures."""
    single = [result for result in results if not result.case.through_desk]
    metrics = _metrics(single)
    by_language: dict[str, list[CaseResult]] = defaultdict(list)
    for result in single:
        by_language[result.case.language].append(result)
    metrics["per_language"] = {language: _metrics(group) for language, group in sorted(by_language.items())}
    metrics["targets"] = grouped_targets(results)
    return metrics


def _metrics(results: Sequence[CaseResult]) -> dict[str, Any]:
    with_gold = [r for r in results if r.has_gold]
    answerable = [r for r in results if not r.case.should_abstain]
    answered = [r for r in results if r.answered]
    should_abstain = [r.case.should_abstain for r in results]
    made = [r.answered for r in results]
    metrics: dict[str, Any] = {
        "cases": len(results),
        "answerable": len(answerable),
        "should_abstain": len(results) - len(answerable),
    }
    for k in RECALL_KS:
        metrics[f"recall@{k}"] = mean([recall_at_k(r.ranked_documents, r.case.gold_document_ids, k) for r in with_gold])
    metrics["mrr@10"] = mean([reciprocal_rank(r.ranked_documents, r.case.gold_document_ids) for r in with_gold])
    metrics["ndcg@10"] = mean([ndcg_at_k(r.ranked_documents, r.case.gold_document_ids) for r in with_gold])
    metrics["hallucination_rate"] = hallucination_rate(should_abstain, made)
    metrics["error_rate"] = error_rate(should_abstain, made)
    metrics["answered_rate"] = mean([1.0 if r.answered else 0.0 for r in answerable])
    metrics["answered_precision"] = mean([1.0 if r.correct_if_answered else 0.0 for r in answered])
    # Only answered cases with known gold: a citation on a should-abstain case is a hallucination instead.
    cited = [r for r in answered if r.has_gold]
    metrics["citation_precision"] = citation_precision(
        [r.cited_chunks if r.case.gold_chunk_ids else r.cited_documents for r in cited],
        [r.case.gold_chunk_ids or r.case.gold_document_ids for r in cited],
    )
    metrics.update(abstention_scores(should_abstain, [not m for m in made]))
    confidence = [r.confidence for r in results]
    correct = [r.correct_if_answered for r in results]
    metrics["aurc"] = area_under_risk_coverage(confidence, correct)
    metrics["ece"] = expected_calibration_error(confidence, correct)
    latencies = [r.latency_ms for r in results]
    metrics["latency_p50_ms"] = percentile(latencies, 50)
    metrics["latency_p95_ms"] = percentile(latencies, 95)
    metrics["recall_curve"] = [
        mean([recall_at_k(r.ranked_documents, r.case.gold_document_ids, k) for r in with_gold]) for k in CURVE_KS
    ]
    return metrics


def build_embedder(settings: Settings, cache_queries: bool = False) -> CachingEmbedder:
    """The configured embedder behind the content-hash cache in ``<data dir>/cache``."""
    from retrieval.embedding import load_embedder

    inner = load_embedder(
        settings.embedding_backend,
        settings.embedding_model,
        settings.resolved_model_dir,
        batch_size=settings.embedding_batch_size,
    )
    model_id = f"{settings.embedding_backend}:{settings.embedding_model}"
    path = settings.data_dir / "cache" / "embeddings.sqlite3"
    return CachingEmbedder(inner, path, model_id, cache_queries=cache_queries)


def run_suite(
    suite: Suite,
    system: str,
    profile: RetrievalProfile,
    embedder: Embedder,
    out_dir: Path | None = None,
    show_progress: bool = True,
    verifier: Verifier | None = None,
) -> tuple[dict[str, Any], list[CaseResult]]:
    """Build ``system`` over the suite's documents in a scratch folder, answer its cases, summarise."""
    builder = SYSTEMS[system]
    with tempfile.TemporaryDirectory(prefix=f"answerdesk-eval-{system}-") as scratch:
        context = BuildContext(embedder, profile, Path(scratch), show_progress, verifier)
        started = time.perf_counter()
        answerer = builder(suite.documents, context)
        build_seconds = time.perf_counter() - started
        results = run_cases(answerer, suite.cases, show_progress, Path(scratch))
    metrics = summarize(results)
    metrics["suite"] = suite.name
    metrics["system"] = system
    metrics["profile"] = profile.name
    metrics["protocol"] = suite.protocol
    metrics["documents"] = len(suite.documents)
    metrics["index_seconds"] = round(build_seconds, 2)
    if out_dir:
        write_run(out_dir, metrics, results)
    return metrics, results


def write_run(out_dir: Path, metrics: dict[str, Any], results: Sequence[CaseResult]) -> None:
    from eval.report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(_json_safe(metrics), indent=2, ensure_ascii=False) + "\n")
    with (out_dir / "cases.jsonl").open("w", encoding="utf-8") as fh:
        for result in results:
            fh.write(json.dumps(_json_safe(result.row()), ensure_ascii=False) + "\n")
    write_report(out_dir / "report.html", metrics, results)
    (out_dir / "targets.md").write_text(targets_markdown(metrics["targets"]), encoding="utf-8")


def _json_safe(value: Any) -> Any:
    """NaN becomes null, so the files are strict JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value
