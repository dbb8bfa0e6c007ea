"""A/B experiments of answer profiles (admins): start, list, compare, stop, promote
(support/experiments.py says how conversations are split and compared).

Variant B's profile is named from ``<data dir>/profiles/<name>.toml`` (operators put profiles there,
e.g. one written by ``answerdesk eval calibrate``); the API never takes a path. ``/v1/ask`` calls
:func:`experiment_turn`, which answers a conversation with its variant's engine and records the
variant of every answer while the tenant has an experiment.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from access.keys import Permission
from api.auth import Caller, require
from api.deps import SupportDep
from api.errors import ApiError, ConflictError, NotReadyError
from api.models import AskRequest, AskResponse, ErrorResponse
from api.routes_support import answer_turn
from retrieval.config import Settings
from retrieval.pipeline import AnswerPipeline, build_pipeline
from retrieval.timings import StageTimings
from support.desk import SupportDesk
from support.experiments import (
    CONTROL,
    METRICS,
    Experiment,
    ExperimentConflictError,
    ExperimentError,
    ExperimentStore,
    compare_variants,
    load_named_profile,
    profile_names,
)

logger = logging.getLogger(__name__)
ExperimentsCaller = Annotated[Caller, Depends(require(Permission.EXPERIMENTS))]
CONFIDENCE = 0.95
_READ_BATCH = 500  # answer ids per IN (...) query

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No API key, or an unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "Only admin keys run experiments."},
    404: {"model": ErrorResponse, "description": "No such experiment in this tenant."},
    409: {"model": ErrorResponse, "description": "Another experiment runs, or this one is over."},
    422: {"model": ErrorResponse, "description": "The request is invalid; the body names the field."},
    429: {"model": ErrorResponse, "description": "Too many requests for this key; see Retry-After."},
}


class Lab:
    """The experiment store and, per profile, the engine that answers variant B (built on first use
    over the server's embedder, vector store and registry; rebuilt when the profile file changes)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ExperimentStore(settings.support_database_url or settings.database_url)
        self.profiles_dir: Path = settings.data_dir / "profiles"
        self._engines: dict[str, tuple[float, AnswerPipeline]] = {}
        self._lock = threading.Lock()

    def engine_for(self, profile: str, control: AnswerPipeline, request: Request) -> AnswerPipeline:
        path = self.profiles_dir / f"{profile}.toml"
        stamp = path.stat().st_mtime if path.exists() else math.nan
        with self._lock:
            cached = self._engines.get(profile)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            loaded = load_named_profile(self.profiles_dir, profile)
            engine = build_pipeline(self.settings, loaded, control.embedder, control.store, request.app.state.registry)
            self._engines[profile] = (stamp, engine)
            return engine


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings  # create_app sets it: one configuration per app
    lab = await run_in_threadpool(Lab, settings)
    app.state.experiments = lab
    yield
    lab.store.close()


router = APIRouter(tags=["experiments"], lifespan=_lifespan)


def get_lab(request: Request) -> Lab:
    lab: Lab | None = getattr(request.app.state, "experiments", None)
    if lab is None:
        raise NotReadyError("experiments are still starting")
    return lab


LabDep = Annotated[Lab, Depends(get_lab)]


async def experiment_turn(
    http: Request, request: AskRequest, engine: AnswerPipeline, desk: SupportDesk, caller: Caller,
    timings: StageTimings | None = None,
) -> AskResponse:
    """One ``/v1/ask`` turn, answered by the engine of the conversation's variant when the tenant
    has an experiment (and the variant recorded), else by ``engine``."""
    lab: Lab | None = getattr(http.app.state, "experiments", None)
    experiment = await run_in_threadpool(lab.store.active, caller.tenant) if lab is not None else None
    if lab is None or experiment is None or not await run_in_threadpool(_new_since, desk, request, caller, experiment):
        return await answer_turn(request, engine, desk, caller.scope, caller.key_id, timings)
    # The variant follows the conversation, so its id is needed before the desk would create one.
    request = request.model_copy(update={"conversation_id": request.conversation_id or uuid.uuid4().hex})
    variant = experiment.variant_of(str(request.conversation_id))
    chosen = engine
    if variant != CONTROL:
        try:
            chosen = await run_in_threadpool(lab.engine_for, experiment.profile, engine, http)
        except (ExperimentError, OSError) as exc:  # the profile file went away or broke: answer, do not count
            logger.warning(
                "experiment %s: profile %r unusable (%s); answered with A",
                experiment.experiment_id,
                experiment.profile,
                exc,
            )
            return await answer_turn(request, engine, desk, caller.scope, caller.key_id, timings)
    response = await answer_turn(request, chosen, desk, caller.scope, caller.key_id, timings)
    await run_in_threadpool(lab.store.record, experiment, response.answer_id, response.conversation_id, variant)
    return response


def _new_since(desk: SupportDesk, request: AskRequest, caller: Caller, experiment: Experiment) -> bool:
    """Whether this turn's conversation takes part: one started before the experiment stays on A
    (unrecorded), so only new conversations are split."""
    if request.conversation_id is None:
        return True
    known = desk.store.conversation(request.conversation_id, caller.tenant)
    return known is None or known.created_at >= experiment.created_at


# ---- request and response bodies -----------------------------------------------------------------


class ExperimentRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "calibrated threshold", "profile": "dev-calibrated", "share": 0.5}]},
    )

    name: str = Field(min_length=1, max_length=200)
    profile: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="A profile in <data dir>/profiles.")
    share: float = Field(
        default=0.5, gt=0, le=1, description="Share of new conversations answered with the profile (B)."
    )


class ExperimentView(BaseModel):
    experiment_id: str
    name: str
    profile: str
    share: float
    status: Literal["running", "stopped", "promoted"]
    created_at: str
    ended_at: str | None = None

    @classmethod
    def of(cls, experiment: Experiment) -> ExperimentView:
        return cls.model_validate(experiment, from_attributes=True)


class ExperimentList(BaseModel):
    experiments: list[ExperimentView]
    profiles: list[str] = Field(description="Profiles an experiment may use (<data dir>/profiles/*.toml).")


class VariantView(BaseModel):
    variant: Literal["A", "B"]
    profile: str
    conversations: int
    answers: int
    feedback: int = Field(description="Answers with helpful / not helpful feedback.")
    answered_rate: float | None
    abstained_rate: float | None
    escalated_rate: float | None
    helpful_rate: float | None
    latency_p50_ms: float | None


class DifferenceView(BaseModel):
    metric: str
    a: float | None
    b: float | None
    difference: float | None = Field(description="B − A.")
    low: float | None
    high: float | None
    verdict: str = Field(description="B better / B worse / B higher / B lower / no clear difference / n/a.")


class ExperimentDetail(ExperimentView):
    confidence: float
    variants: list[VariantView]
    differences: list[DifferenceView]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


# ---- routes ----------------------------------------------------------------------------------------


@router.get("/v1/experiments", response_model=ExperimentList, responses=_ERRORS)
async def list_experiments(caller: ExperimentsCaller, lab: LabDep) -> ExperimentList:
    """The tenant's experiments, newest first, and the profiles one may use."""
    experiments = await run_in_threadpool(lab.store.experiments, caller.tenant)
    return ExperimentList(
        experiments=[ExperimentView.of(item) for item in experiments], profiles=profile_names(lab.profiles_dir)
    )


@router.post("/v1/experiments", status_code=201, response_model=ExperimentView, responses=_ERRORS)
async def start_experiment(body: ExperimentRequest, caller: ExperimentsCaller, lab: LabDep) -> ExperimentView:
    """Send ``share`` of the tenant's new conversations to ``profile`` (B); the rest stay on the
    server's profile (A). One experiment per tenant at a time."""
    try:
        await run_in_threadpool(load_named_profile, lab.profiles_dir, body.profile)
        experiment = await run_in_threadpool(lab.store.start, caller.tenant, body.name, body.profile, body.share)
    except ExperimentConflictError as exc:
        raise ConflictError(str(exc), "experiment_running") from exc
    except ExperimentError as exc:
        raise InvalidExperimentError(str(exc)) from exc
    return ExperimentView.of(experiment)


@router.get("/v1/experiments/{experiment_id}", response_model=ExperimentDetail, responses=_ERRORS)
async def get_experiment(
    experiment_id: Annotated[str, PathParam(max_length=64)], caller: ExperimentsCaller, lab: LabDep, desk: SupportDep
) -> ExperimentDetail:
    """The experiment and its comparison: per variant the answered, abstained and escalated rates,
    the helpful rate and the median latency; B − A with a 95% bootstrap interval over conversations."""
    experiment = await run_in_threadpool(_find, lab, caller, experiment_id)
    figures, differences = await run_in_threadpool(_compare, lab, desk, experiment, caller)
    return ExperimentDetail(
        **ExperimentView.of(experiment).model_dump(),
        confidence=CONFIDENCE,
        variants=[
            VariantView(
                variant="A" if item.variant == CONTROL else "B",
                profile="(server default)" if item.variant == CONTROL else experiment.profile,
                conversations=item.conversations,
                answers=item.answers,
                feedback=item.feedback,
                **{metric: _number(item.values[metric]) for metric in METRICS},
            )
            for item in figures
        ],
        differences=[
            DifferenceView(
                metric=item.metric,
                a=_number(item.a),
                b=_number(item.b),
                difference=_number(item.difference),
                low=_number(item.low),
                high=_number(item.high),
                verdict=item.verdict,
            )
            for item in differences
        ],
    )


@router.post("/v1/experiments/{experiment_id}/stop", response_model=ExperimentView, responses=_ERRORS)
async def stop_experiment(
    experiment_id: Annotated[str, PathParam(max_length=64)], caller: ExperimentsCaller, lab: LabDep
) -> ExperimentView:
    """End the split (or a promotion): every new conversation is answered with the server's profile."""
    return await _change(lab.store.stop, caller, experiment_id)


@router.post("/v1/experiments/{experiment_id}/promote", response_model=ExperimentView, responses=_ERRORS)
async def promote_experiment(
    experiment_id: Annotated[str, PathParam(max_length=64)], caller: ExperimentsCaller, lab: LabDep
) -> ExperimentView:
    """Send every new conversation of the tenant to B's profile (until the promotion is stopped)."""
    return await _change(lab.store.promote, caller, experiment_id)


class InvalidExperimentError(ApiError):
    status_code = 422
    code = "invalid_request"


async def _change(action: Any, caller: Caller, experiment_id: str) -> ExperimentView:
    try:
        experiment = await run_in_threadpool(action, caller.tenant, experiment_id)
    except ExperimentConflictError as exc:
        raise ConflictError(str(exc), "experiment_over") from exc
    return ExperimentView.of(experiment)


def _find(lab: Lab, caller: Caller, experiment_id: str) -> Experiment:
    return lab.store.get(caller.tenant, experiment_id)


def _compare(lab: Lab, desk: SupportDesk, experiment: Experiment, caller: Caller) -> tuple[Any, Any]:
    assignments = lab.store.answers(experiment.experiment_id)
    ids = [item.answer_id for item in assignments]
    records = []
    feedback = []
    for start in range(0, len(ids), _READ_BATCH):
        batch = ids[start : start + _READ_BATCH]
        records += desk.store.audit(answer_ids=batch, limit=None, tenant=caller.tenant)
        feedback += desk.store.feedback(batch)
    visible = [record for record in records if record.audience in caller.scope.audiences]
    return compare_variants(assignments, visible, feedback, CONFIDENCE)
