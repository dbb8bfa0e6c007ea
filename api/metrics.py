"""Prometheus metrics (``GET /metrics``, prometheus-client's text format).

One registry per app (not the library's global one), so several apps in one process (tests, two
replicas in a test) never share counters. Counts are updated where things happen (the ask route,
the error handlers, the document writer); depths (outbox by status, upload jobs by status) are read
from their stores when scraped, so they are right on every replica that shares the database.

Labels are bounded sets: answer status, language code, outcome and error codes. Nothing about a
caller, a tenant or a question is ever a label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# /v1/ask takes ~50 ms to a few seconds on 2 cores (queueing included under load).
ASK_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# One stage of an answer: ~1 ms (lexical search, the decision) to ~1 s (the verifier on a busy box).
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
INGEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _Depths(Collector):
    """Gauges read at scrape time: ``source()`` returns {label value: count}; a failing source is
    counted as a store error and the gauge left out (the scrape itself still answers)."""

    def __init__(
        self, name: str, documentation: str, label: str, source: Callable[[], Mapping[str, int]],
        on_error: Callable[[], None],
    ) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.source, self.on_error = source, on_error

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            counts = self.source()
        except Exception:
            self.on_error()
            return
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in sorted(counts.items()):
            family.add_metric([value], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "answerdesk_answers", "Answers from /v1/ask by status and language.",
            ["status", "language"], registry=self.registry,
        )
        self.ask_seconds = Histogram(
            "answerdesk_ask_seconds", "Time of /v1/ask per stage: wait (for an answer slot), answer "
            "(engine and support desk), total.", ["stage"], buckets=ASK_BUCKETS, registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "answerdesk_stage_seconds", "Time of the answer engine's stages per /v1/ask question: embed, "
            "search (dense and lexical legs, fused), verify, evidence, decide (retrieval/timings.py).",
            ["stage"], buckets=STAGE_BUCKETS, registry=self.registry,
        )
        self.ingested = Counter(
            "answerdesk_ingested_files", "Files written through the document API, by outcome.",
            ["outcome"], registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "answerdesk_ingest_seconds", "Time to write one uploaded file (parse, chunk, embed, store).",
            buckets=INGEST_BUCKETS, registry=self.registry,
        )
        self.store_errors = Counter(
            "answerdesk_store_errors", "Requests that failed on a store, by code (store_unavailable, "
            "database_unavailable, database_gone) and scrapes that could not read a depth (scrape_failed).",
            ["code"], registry=self.registry,
        )

    def depth(self, name: str, documentation: str, label: str, source: Callable[[], Mapping[str, int]]) -> None:
        """Register a gauge read from ``source`` at each scrape."""
        self.registry.register(
            _Depths(name, documentation, label, source, lambda: self.store_errors.labels("scrape_failed").inc())
        )

    def answered(
        self, status: str, language: str, wait: float, answer: float, stages: Mapping[str, float] | None = None
    ) -> None:
        """Count one answer; ``stages`` are its engine stages' seconds (StageTimings.totals())."""
        self.answers.labels(status, language).inc()
        for stage, seconds in (stages or {}).items():
            self.stage_seconds.labels(stage).observe(seconds)
        self.ask_seconds.labels("wait").observe(wait)
        self.ask_seconds.labels("answer").observe(answer)
        self.ask_seconds.labels("total").observe(wait + answer)

    def file_written(self, outcome: str, seconds: float) -> None:
        self.ingested.labels(outcome).inc()
        self.ingest_seconds.observe(seconds)

    def store_error(self, code: str) -> None:
        self.store_errors.labels(code).inc()


def count_store_error(request: Request, code: str) -> None:
    """Count a store error on ``request``'s app (the error handlers call this)."""
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.store_error(code)


router = APIRouter()


@router.get("/metrics", tags=["health"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics (text format): answers, /v1/ask latency and its engine stages, ingestion,
    outbox and job depths, store errors. Open like /healthz: counts only, no caller, tenant or question."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
