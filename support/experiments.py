"""A/B experiments of answer profiles on live traffic.

An admin starts an experiment for a tenant: a share of new conversations (variant B) is answered
with another retrieval profile, the rest (A) with the server's own. The variant depends only on the
experiment id and the conversation id (a hash), so every turn of a conversation, and every process
serving it, picks the same one. While an experiment runs, each answer of the tenant is recorded with
its variant (table ``experiment_answers``; the audit row also names the profile version that
answered). The comparison reads those answers' audit rows and feedback: per variant the answered,
abstained and escalated rates, the helpful rate among answers with feedback and the median latency,
and B − A with a bootstrap interval over conversations (common/bootstrap.py, the maths of
``answerdesk eval compare``; unpaired, since each conversation saw one variant).

Stopping ends the split (everyone gets A again); promoting sends every new conversation of the
tenant to B until the promotion is stopped. One experiment per tenant is running or promoted at a time.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Float, Select, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from common.bootstrap import bootstrap_median_difference, unpaired_bootstrap, verdict
from common.clock import utc_now
from common.errors import AnswerDeskError
from common.schema import require_current
from common.sql import SqlStore, record_from_row
from retrieval.config import RetrievalProfile
from support.store import AuditRecord, Feedback

RUNNING, STOPPED, PROMOTED = "running", "stopped", "promoted"
CONTROL, TREATMENT = "A", "B"
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ExperimentError(ValueError):
    """A request an experiment cannot honour; the message says why."""


class ExperimentConflictError(ExperimentError):
    """Another experiment of the tenant is running or promoted, or this one is over."""


class ExperimentNotFoundError(AnswerDeskError, LookupError):
    """No experiment with this id in the tenant."""

    code = "experiment_not_found"


class _Base(DeclarativeBase):
    pass


class _ExperimentRow(_Base):
    __tablename__ = "experiments"

    experiment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    profile: Mapped[str] = mapped_column(String(64))  # variant B's profile name (profiles folder)
    share: Mapped[float] = mapped_column(Float)  # of new conversations sent to B
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[str] = mapped_column(String(40))
    ended_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class _AnswerRow(_Base):
    __tablename__ = "experiment_answers"

    answer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(String(32), index=True)
    conversation_id: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str] = mapped_column(String(1))


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    tenant: str
    name: str
    profile: str
    share: float
    status: str
    created_at: str
    ended_at: str | None = None

    def variant_of(self, conversation_id: str) -> str:
        """A or B for this conversation: a running experiment splits by hash, a promoted one sends all to B."""
        if self.status == PROMOTED:
            return TREATMENT
        if self.status != RUNNING:
            return CONTROL
        digest = hashlib.sha256(f"{self.experiment_id}:{conversation_id}".encode()).digest()
        return TREATMENT if int.from_bytes(digest[:8], "big") / 2**64 < self.share else CONTROL


@dataclass(frozen=True)
class ExperimentAnswer:
    answer_id: str
    experiment_id: str
    conversation_id: str
    variant: str


class ExperimentStore(SqlStore):
    """Experiments and the variant of each answer, in the support database."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        require_current(self.engine)  # the schema is Alembic's (migration 0006, common/schema.py)

    def start(self, tenant: str, name: str, profile: str, share: float) -> Experiment:
        if not 0 < share <= 1:
            raise ExperimentError(f"share: {share} is not in (0, 1]")
        with self._session() as session:
            if session.scalars(self._live_query(tenant)).first() is not None:
                raise ExperimentConflictError("another experiment of this tenant is running or promoted: stop it first")
            row = _ExperimentRow(
                experiment_id=uuid.uuid4().hex,
                tenant=tenant,
                name=name,
                profile=profile,
                share=share,
                status=RUNNING,
                created_at=utc_now(),
            )
            session.add(row)
            session.flush()
            return record_from_row(Experiment, row)

    def active(self, tenant: str) -> Experiment | None:
        """The tenant's running or promoted experiment."""
        with Session(self.engine) as session:
            row = session.scalars(self._live_query(tenant)).first()
            return record_from_row(Experiment, row) if row is not None else None

    def get(self, tenant: str, experiment_id: str) -> Experiment:
        with Session(self.engine) as session:
            row = session.get(_ExperimentRow, experiment_id)
            if row is None or row.tenant != tenant:
                raise ExperimentNotFoundError(f"no experiment {experiment_id!r}")
            return record_from_row(Experiment, row)

    def experiments(self, tenant: str) -> list[Experiment]:
        """The tenant's experiments, newest first."""
        query = select(_ExperimentRow).where(_ExperimentRow.tenant == tenant).order_by(_ExperimentRow.created_at.desc())
        with Session(self.engine) as session:
            return [record_from_row(Experiment, row) for row in session.scalars(query)]

    def stop(self, tenant: str, experiment_id: str) -> Experiment:
        """End the split (or the promotion): new conversations get A again."""
        return self._set_status(tenant, experiment_id, STOPPED, {RUNNING, PROMOTED})

    def promote(self, tenant: str, experiment_id: str) -> Experiment:
        """Send every new conversation of the tenant to B (only a running experiment)."""
        return self._set_status(tenant, experiment_id, PROMOTED, {RUNNING})

    def record(self, experiment: Experiment, answer_id: str, conversation_id: str, variant: str) -> None:
        with self._session() as session:
            session.merge(
                _AnswerRow(
                    answer_id=answer_id,
                    experiment_id=experiment.experiment_id,
                    conversation_id=conversation_id,
                    variant=variant,
                )
            )

    def answers(self, experiment_id: str) -> list[ExperimentAnswer]:
        query = select(_AnswerRow).where(_AnswerRow.experiment_id == experiment_id)
        with Session(self.engine) as session:
            return [record_from_row(ExperimentAnswer, row) for row in session.scalars(query)]

    def _live_query(self, tenant: str) -> Select[_ExperimentRow]:
        return select(_ExperimentRow).where(
            _ExperimentRow.tenant == tenant, _ExperimentRow.status.in_([RUNNING, PROMOTED])
        )

    def _set_status(self, tenant: str, experiment_id: str, status: str, allowed_from: set[str]) -> Experiment:
        with self._session() as session:
            row = session.get(_ExperimentRow, experiment_id)
            if row is None or row.tenant != tenant:
                raise ExperimentNotFoundError(f"no experiment {experiment_id!r}")
            if row.status not in allowed_from:
                raise ExperimentConflictError(f"the experiment is {row.status}: it cannot be {status} now")
            row.status = status
            row.ended_at = utc_now() if status == STOPPED else row.ended_at
            session.flush()
            return record_from_row(Experiment, row)


def profile_names(folder: Path) -> list[str]:
    """The profiles an experiment may use: ``<name>.toml`` files in ``folder`` (``<data dir>/profiles``)."""
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.toml") if PROFILE_NAME.match(path.stem))


def load_named_profile(folder: Path, name: str) -> RetrievalProfile:
    """The profile ``name`` of ``folder``; ExperimentError when it is not there or does not load."""
    if not PROFILE_NAME.match(name) or name not in profile_names(folder):
        raise ExperimentError(
            f"profile: no profile {name!r} in the profiles folder ({', '.join(profile_names(folder)) or 'empty'})"
        )
    try:
        return RetrievalProfile.from_toml(folder / f"{name}.toml")
    except (OSError, ValueError) as exc:
        raise ExperimentError(f"profile: {name!r} does not load: {exc}") from exc


# ---- comparison ----------------------------------------------------------------------------------

# metric → higher is better? (None: neither; abstaining is right when the KB has no answer)
METRICS: dict[str, bool | None] = {
    "answered_rate": True,
    "abstained_rate": None,
    "escalated_rate": False,
    "helpful_rate": True,
    "latency_p50_ms": False,
}


_STATUS_COLUMN = {"answered": 1, "abstained": 2, "escalated": 3}
# Below this many conversations in an arm, a bootstrap interval is too narrow to trust (with 3
# conversations that all answered, every resample answers): no verdict is given.
MIN_CONVERSATIONS = 10


@dataclass(frozen=True)
class VariantFigures:
    variant: str
    conversations: int
    answers: int
    feedback: int
    values: dict[str, float]


@dataclass(frozen=True)
class MetricDifference:
    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    verdict: str


def compare_variants(
    assignments: Sequence[ExperimentAnswer],
    records: Iterable[AuditRecord],
    feedback: Iterable[Feedback],
    confidence: float = 0.95,
    resamples: int = 2000,
) -> tuple[list[VariantFigures], list[MetricDifference]]:
    """Per-variant figures and B − A with a ``confidence`` bootstrap interval over conversations."""
    by_answer = {record.answer_id: record for record in records}
    latest: dict[str, bool] = {}
    for row in sorted(feedback, key=lambda item: item.feedback_id):
        latest[row.answer_id] = row.helpful
    # Per variant and conversation: [answers, answered, abstained, escalated, with feedback, helpful]
    units: dict[str, dict[str, list[float]]] = {
        CONTROL: defaultdict(lambda: [0.0] * 6),
        TREATMENT: defaultdict(lambda: [0.0] * 6),
    }
    latencies: dict[str, list[float]] = {CONTROL: [], TREATMENT: []}
    for assignment in assignments:
        record = by_answer.get(assignment.answer_id)
        if record is None:  # erased since (privacy): not counted
            continue
        counts = units[assignment.variant][assignment.conversation_id]
        counts[0] += 1
        if record.status in _STATUS_COLUMN:
            counts[_STATUS_COLUMN[record.status]] += 1
        if record.answer_id in latest:
            counts[4] += 1
            counts[5] += float(latest[record.answer_id])
        latencies[assignment.variant].append(record.latency_ms)
    arrays = {
        variant: np.array(list(rows.values()), dtype=np.float64).reshape(-1, 6) for variant, rows in units.items()
    }
    figures = []
    for variant, matrix in arrays.items():
        totals = matrix.sum(axis=0)
        values = {
            "answered_rate": _share(totals[1], totals[0]),
            "abstained_rate": _share(totals[2], totals[0]),
            "escalated_rate": _share(totals[3], totals[0]),
            "helpful_rate": _share(totals[5], totals[4]),
            "latency_p50_ms": float(np.median(latencies[variant])) if latencies[variant] else float("nan"),
        }
        figures.append(VariantFigures(variant, len(matrix), int(totals[0]), int(totals[4]), values))
    a, b = arrays[CONTROL], arrays[TREATMENT]
    columns = {"answered_rate": (1, 0), "abstained_rate": (2, 0), "escalated_rate": (3, 0), "helpful_rate": (5, 4)}
    differences = []
    for metric, direction in METRICS.items():
        if metric == "latency_p50_ms":
            point, low, high = bootstrap_median_difference(
                np.array(latencies[CONTROL]), np.array(latencies[TREATMENT]), resamples, confidence, paired=False
            )
        else:
            num, den = columns[metric]
            point, low, high = unpaired_bootstrap(a[:, num], a[:, den], b[:, num], b[:, den], resamples, confidence)
        too_few = min(len(a), len(b)) < MIN_CONVERSATIONS
        decided = (
            f"too few conversations (under {MIN_CONVERSATIONS} in an arm)" if too_few else verdict(low, high, direction)
        )
        differences.append(
            MetricDifference(metric, figures[0].values[metric], figures[1].values[metric], point, low, high, decided)
        )
    return figures, differences


def _share(part: float, whole: float) -> float:
    return float(part / whole) if whole else float("nan")
