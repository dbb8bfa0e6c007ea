"""Stage timings of one question: how long embedding, search, verification, evidence and the
decision took, filled by the answer pipeline (retrieval/pipeline.py) as it runs.

A plain record the caller hands in and reads back: the API turns it into the
``answerdesk_stage_seconds`` histogram and, when tracing is on, into child spans (api/metrics.py,
api/tracing.py). Nothing here knows about Prometheus or OpenTelemetry (retrieval/ never imports
api/), and nothing is global, so concurrent questions never mix their figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The stages, in the order a question meets them.
EMBED = "embed"  # the question's embedding (and a follow-up's contextual reading's)
SEARCH = "search"  # hybrid retrieval: the dense and lexical legs and their fusion
VERIFY = "verify"  # the trained verifier's rerank and sentence windows (only with verify_depth > 0)
EVIDENCE = "evidence"  # sentence scoring of the first hits
DECIDE = "decide"  # the answerability decision, quotes and citations
STAGES = (EMBED, SEARCH, VERIFY, EVIDENCE, DECIDE)


@dataclass(frozen=True)
class StageRun:
    """One run of a stage: its wall-clock start (ns since the epoch, what trace spans need) and
    its duration measured on the monotonic clock."""

    stage: str
    started_ns: int
    seconds: float

    @property
    def ended_ns(self) -> int:
        return self.started_ns + int(self.seconds * 1e9)


@dataclass
class StageTimings:
    """The stage runs of one question, in order (a follow-up may search more than once)."""

    runs: list[StageRun] = field(default_factory=list)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Time the block as one run of ``stage`` (recorded even when it raises)."""
        started_ns, started = time.time_ns(), time.perf_counter()
        try:
            yield
        finally:
            self.runs.append(StageRun(stage, started_ns, time.perf_counter() - started))

    def totals(self) -> dict[str, float]:
        """Seconds per stage that ran, summed over its runs."""
        totals: dict[str, float] = {}
        for run in self.runs:
            totals[run.stage] = totals.get(run.stage, 0.0) + run.seconds
        return totals
