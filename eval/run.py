"""Run eval cases through the answer engine and summarise the metrics."""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.cases import EvalCase
from eval.metrics import abstention_scores, mean, percentile, recall_at_k, reciprocal_rank, unique_in_order
from ingest.pipeline import Outcome, build_ingestor
from retrieval.config import RetrievalProfile, Settings
from retrieval.engine import AnswerEngine, build_components
from retrieval.types import Status

RECALL_KS = (1, 3, 5, 10)


@dataclass(frozen=True)
class CaseResult:
    case: EvalCase
    status: Status
    ranked_documents: list[str]
    cited_documents: list[str]
    confidence: float
    latency_ms: float


def run_cases(engine: AnswerEngine, cases: Sequence[EvalCase], show_progress: bool = True) -> list[CaseResult]:
    results = []
    for case in tqdm(cases, desc="questions", unit="q", disable=not show_progress):
        started = time.perf_counter()
        answer, hits = engine.ask_with_hits(case.question)
        elapsed_ms = (time.perf_counter() - started) * 1000
        results.append(
            CaseResult(
                case=case,
                status=answer.status,
                ranked_documents=unique_in_order([hit.chunk.document_id for hit in hits]),
                cited_documents=[citation.document_id for citation in answer.citations],
                confidence=answer.confidence,
                latency_ms=elapsed_ms,
            )
        )
    return results


def summarize(results: Sequence[CaseResult]) -> dict[str, Any]:
    """Flat metrics over all cases, plus the same per language."""
    metrics = _metrics(results)
    by_language: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_language[result.case.language].append(result)
    metrics["per_language"] = {language: _metrics(group) for language, group in sorted(by_language.items())}
    return metrics


def _metrics(results: Sequence[CaseResult]) -> dict[str, Any]:
    answerable = [result for result in results if not result.case.should_abstain]
    answered = [result for result in answerable if result.status == Status.ANSWERED]
    metrics: dict[str, Any] = {"cases": len(results), "answerable": len(answerable)}
    for k in RECALL_KS:
        metrics[f"recall@{k}"] = mean(
            [recall_at_k(r.ranked_documents, r.case.gold_document_ids, k) for r in answerable]
        )
    metrics["mrr@10"] = mean([reciprocal_rank(r.ranked_documents, r.case.gold_document_ids) for r in answerable])
    metrics["answered_rate"] = len(answered) / len(answerable) if answerable else float("nan")
    # Of the answerable questions we answered, how many cite at least one gold document.
    metrics["answered_cites_gold"] = mean(
        [1.0 if set(r.cited_documents) & set(r.case.gold_document_ids) else 0.0 for r in answered]
    )
    metrics.update(
        abstention_scores([r.case.should_abstain for r in results], [r.status != Status.ANSWERED for r in results])
    )
    latencies = [r.latency_ms for r in results]
    metrics["latency_p50_ms"] = percentile(latencies, 50)
    metrics["latency_p95_ms"] = percentile(latencies, 95)
    return metrics


def run_suite_on_kb(
    settings: Settings, profile: RetrievalProfile, kb_dir: Path, cases: Sequence[EvalCase], out_dir: Path | None
) -> dict[str, Any]:
    """Ingest ``kb_dir`` into a fresh temporary store, answer ``cases`` and summarise."""
    with tempfile.TemporaryDirectory(prefix="answerdesk-eval-") as scratch:
        isolated = settings.model_copy(update={"data_dir": Path(scratch), "model_dir": settings.resolved_model_dir})
        embedder, store, registry = build_components(isolated)
        ingestor = build_ingestor(isolated, profile, embedder, store, registry)
        started = time.perf_counter()
        ingested = ingestor.ingest([kb_dir])
        ingest_seconds = time.perf_counter() - started
        failures = [r for r in ingested if r.outcome == Outcome.FAILED]
        if failures:
            raise RuntimeError(
                f"{len(failures)} KB files failed to ingest, first: {failures[0].source}: {failures[0].error}"
            )
        engine = AnswerEngine(embedder, store, profile)
        metrics = summarize(run_cases(engine, cases))
        chunks = sum(r.chunks for r in ingested)
        metrics["ingest"] = {
            "documents": len(ingested),
            "chunks": chunks,
            "seconds": ingest_seconds,
            "chunks_per_second": chunks / ingest_seconds if ingest_seconds else float("nan"),
        }
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return metrics
