"""Usage figures over a period, for the lead's dashboard (``GET /v1/stats``, console/).

Everything is counted from the audit rows the desk writes for every ``/v1/ask`` turn, the
escalations and the answer feedback (support/store.py), so the dashboard shows exactly
what the support database holds: one audited answer is one question.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from support.store import AuditRecord, Escalation, Feedback

STATUSES = ("answered", "abstained", "escalated")


@dataclass(frozen=True)
class Period:
    """Whole UTC days from ``since`` to ``until``, both included."""

    since: date
    until: date

    @property
    def start(self) -> str:
        """The first instant, in the ISO form the support database stores (text comparison works)."""
        return self.since.isoformat()

    @property
    def end(self) -> str:
        """The day after the last one: rows are inside when ``created_at < end``."""
        return (self.until + timedelta(days=1)).isoformat()

    def days(self) -> list[str]:
        count = (self.until - self.since).days + 1
        return [(self.since + timedelta(days=offset)).isoformat() for offset in range(count)]

    def holds(self, created_at: str) -> bool:
        return self.start <= created_at < self.end


@dataclass
class StatusCounts:
    answered: int = 0
    abstained: int = 0
    escalated: int = 0

    def add(self, status: str) -> None:
        if status in STATUSES:
            setattr(self, status, getattr(self, status) + 1)

    @property
    def total(self) -> int:
        return self.answered + self.abstained + self.escalated


@dataclass
class FeedbackCounts:
    helpful: int = 0
    not_helpful: int = 0


@dataclass
class UsageStats:
    period: Period
    totals: StatusCounts
    per_day: dict[str, StatusCounts]
    per_language: dict[str, StatusCounts]
    escalations: int
    escalations_resolved: int
    feedback_per_day: dict[str, FeedbackCounts]
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    profiles: dict[str, int] = field(default_factory=dict)

    @property
    def escalation_rate(self) -> float | None:
        """Share of questions handed to a person."""
        return self.totals.escalated / self.totals.total if self.totals.total else None

    @property
    def resolution_rate(self) -> float | None:
        """Share of the period's escalations an agent has resolved."""
        return self.escalations_resolved / self.escalations if self.escalations else None

    @property
    def feedback(self) -> FeedbackCounts:
        return FeedbackCounts(
            helpful=sum(day.helpful for day in self.feedback_per_day.values()),
            not_helpful=sum(day.not_helpful for day in self.feedback_per_day.values()),
        )


def usage_stats(
    period: Period,
    records: Iterable[AuditRecord],
    escalations: Iterable[Escalation],
    feedback: Iterable[Feedback],
) -> UsageStats:
    """Count ``records`` (audited answers), ``escalations`` and ``feedback`` created inside ``period``.

    Several feedback rows on one answer count once, the latest (as the support store keeps them).
    """
    per_day = {day: StatusCounts() for day in period.days()}
    per_language: dict[str, StatusCounts] = {}
    totals = StatusCounts()
    latencies: list[float] = []
    profiles: Counter[str] = Counter()
    for record in records:
        if not period.holds(record.created_at):
            continue
        totals.add(record.status)
        per_day[record.created_at[:10]].add(record.status)
        per_language.setdefault(record.language, StatusCounts()).add(record.status)
        latencies.append(record.latency_ms)
        profiles[record.profile] += 1
    in_period = [row for row in escalations if period.holds(row.created_at)]
    latest: dict[str, Feedback] = {}
    for row in sorted(feedback, key=lambda item: item.feedback_id):
        latest[row.answer_id] = row
    feedback_per_day = {day: FeedbackCounts() for day in period.days()}
    for row in latest.values():
        if period.holds(row.created_at):
            counts = feedback_per_day[row.created_at[:10]]
            if row.helpful:
                counts.helpful += 1
            else:
                counts.not_helpful += 1
    return UsageStats(
        period=period,
        totals=totals,
        per_day=per_day,
        per_language=dict(sorted(per_language.items(), key=lambda item: (-item[1].total, item[0]))),
        escalations=len(in_period),
        escalations_resolved=sum(1 for row in in_period if row.status == "resolved"),
        feedback_per_day=feedback_per_day,
        latency_p50_ms=_percentile(latencies, 50),
        latency_p95_ms=_percentile(latencies, 95),
        profiles=dict(profiles.most_common()),
    )


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None
