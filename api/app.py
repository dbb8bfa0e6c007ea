"""The FastAPI application: ``create_app(settings)`` builds it; routes validate, call the engine, shape."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from importlib.metadata import version
from typing import Annotated

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from access.keys import build_key_store
from api.access_log import AccessLogMiddleware, log_answer
from api.auth import AskCaller, DocumentsCaller
from api.deps import EngineDep, RegistryDep, SettingsDep, SupportDep
from api.errors import error_response, install_error_handlers
from api.limits import BodySizeLimit, build_limiter, check_question_length
from api.metrics import Metrics
from api.metrics import router as metrics_router
from api.models import AskRequest, AskResponse, DocumentList, DocumentSummary, ErrorDetail, ErrorResponse
from api.routes_console import router as console_router
from api.routes_documents import is_document_upload, visible_to
from api.routes_documents import router as documents_router
from api.routes_experiments import experiment_turn
from api.routes_experiments import router as experiments_router
from api.routes_keys import router as keys_router
from api.routes_support import router as support_router
from api.tracing import AskTrace, Tracing, build_tracing
from console.mount import mount_console
from ingest.jobs import JobStore
from ingest.pipeline import build_ingestor
from ingest.queue import ProcrastinateQueue
from ingest.service import DocumentService
from retrieval.config import Settings, get_settings
from retrieval.embedding import Embedder
from retrieval.pipeline import build_components, build_pipeline
from retrieval.storage import StorageError, check_data_dir, check_stores
from retrieval.timings import StageTimings
from support.store import SupportStore

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "No API key (`missing_api_key`), or an unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "The key's role may not use this endpoint (`forbidden_role`)."},
    413: {"model": ErrorResponse, "description": "The request body is over the size limit (`payload_too_large`)."},
    429: {"model": ErrorResponse, "description": "Too many requests for this key (`rate_limited`); see Retry-After."},
    422: {"model": ErrorResponse, "description": "The request is invalid; the body names the field."},
    503: {"model": ErrorResponse, "description": "The engine is starting or a store is damaged; `code` names it."},
}


def create_app(settings: Settings | None = None, embedder: Embedder | None = None) -> FastAPI:
    """The API app; ``embedder`` replaces the configured one (tests pass a fast fake)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A damaged store, or a registry lost beside a full vector store, stops the start with a
        # message instead of serving on it (an empty registry: every document invisible, keys 401).
        if faults := await run_in_threadpool(check_data_dir, settings):
            raise StorageError(faults)
        loaded, store, registry = build_components(settings, embedder)
        profile = settings.load_profile()
        app.state.settings = settings
        app.state.engine = build_pipeline(settings, profile, loaded, store, registry)
        # The models and the lexical matrices load (in parallel, AnswerPipeline.warm_up) while the rest is set up.
        warming = asyncio.create_task(run_in_threadpool(app.state.engine.warm_up))
        app.state.registry = registry
        app.state.keys = await run_in_threadpool(build_key_store, settings)
        ingestor = build_ingestor(settings, profile, loaded, store, registry)
        jobs = await run_in_threadpool(JobStore, settings.database_url)
        queue = ProcrastinateQueue(settings.database_url) if settings.jobs_in_worker else None
        documents = DocumentService(ingestor, settings.uploads_dir, jobs, queue)
        documents.on_file_written = app.state.metrics.file_written
        await warming
        await run_in_threadpool(documents.recover)  # also fills a lexical index that lacks chunks
        await run_in_threadpool(app.state.engine.warm_up)  # only what recovery changed (the lexical index)
        app.state.documents = documents
        app.state.tracing = build_tracing(settings)  # None unless ANSWERDESK_OTEL (api/tracing.py)
        logger.info("answer engine ready: %d chunks in the store", store.count())
        yield
        documents.close()
        app.state.keys.close()
        if app.state.tracing is not None:
            app.state.tracing.shutdown()

    app = FastAPI(
        title="AnswerDesk",
        version=version("answerdesk"),
        summary="Answers customer questions only from the knowledge base, with citations, or abstains.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics = Metrics()  # GET /metrics (api/metrics.py)
    app.state.tracing = None  # set by the lifespan when ANSWERDESK_OTEL is on (api/tracing.py)
    metrics.depth(
        "answerdesk_outbox_messages", "Webhook outbox messages by status (pending: still to deliver; dead: "
        "gave up).", "status", lambda: _support_store(app).outbox_counts() if hasattr(app.state, "support") else {},
    )
    metrics.depth(
        "answerdesk_upload_jobs", "Upload jobs in the database, by status (the same on every replica).", "status",
        lambda: app.state.documents.job_counts() if hasattr(app.state, "documents") else {},
    )
    redis = (settings.redis_url or None, settings.redis_prefix)  # shared by all replicas when set
    app.state.rate_limiter = build_limiter("keys", settings.rate_limit_per_second, settings.rate_limit_burst, *redis)
    app.state.auth_failure_limiter = build_limiter(
        "failed-auth", settings.failed_auth_per_second, settings.failed_auth_burst, *redis
    )
    # Answering is CPU-bound (embedding): more questions at once than cores only thrash them, and the
    # unlucky ones starve (50 clients on 2 cores: p99 over 30 s). Extra ones wait in line instead.
    answer_slots = anyio.CapacityLimiter(settings.max_concurrent_answers or os.cpu_count() or 2)
    app.add_middleware(
        BodySizeLimit,
        json_bytes=settings.max_json_bytes,
        upload_bytes=settings.max_request_bytes,
        is_upload=is_document_upload,
    )
    install_error_handlers(app)
    app.add_middleware(AccessLogMiddleware)  # access log line and X-Request-ID (api/access_log.py)
    app.include_router(documents_router)
    app.include_router(support_router)
    app.include_router(keys_router)
    app.include_router(metrics_router)
    app.include_router(console_router)  # /v1/me, /v1/preview, /v1/stats, /v1/gaps
    app.include_router(experiments_router)  # /v1/experiments: A/B of answer profiles
    mount_console(app)  # the web console at /console (console/)

    @app.post("/v1/ask", response_model=AskResponse, responses=_ERRORS, tags=["answers"])
    async def ask(
        request: AskRequest,
        caller: AskCaller,
        engine: EngineDep,
        desk: SupportDep,
        app_settings: SettingsDep,
        http: Request,
    ) -> AskResponse:
        """Answer a question from the knowledge base, with citations, or abstain; hands the
        conversation to a person when triage (or ``escalate``) says so (api/routes_support.py).

        Only documents of the key's tenant and audience are used."""
        check_question_length(request.question, app_settings.max_question_chars)
        timings = StageTimings()  # filled by the engine: embed, search, verify, evidence, decide
        tracing: Tracing | None = http.app.state.tracing
        trace: AbstractContextManager[AskTrace | None] = (
            tracing.ask(caller.tenant, timings) if tracing else nullcontext()
        )
        with trace as span:
            queued = time.perf_counter()
            async with answer_slots:  # first come, first served once the cores are busy
                started = time.perf_counter()
                # With an experiment, the conversation's variant answers (api/routes_experiments.py).
                response = await experiment_turn(http, request, engine, desk, caller, timings)
            if span is not None:
                span.answered(response)
        waited, answered = started - queued, time.perf_counter() - started
        metrics.answered(response.status, response.language, waited, answered, timings.totals())
        log_answer(request.question, response, app_settings.log_questions)
        return response

    @app.get("/v1/documents", response_model=DocumentList, responses=_ERRORS, tags=["documents"])
    async def list_documents(
        caller: DocumentsCaller,
        registry: RegistryDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DocumentList:
        """The key's tenant's documents, ordered by id."""
        everyone = await run_in_threadpool(registry.all)
        records = [record for record in everyone if visible_to(caller, record)]
        page = records[offset : offset + limit]
        return DocumentList(
            total=len(records),
            documents=[
                DocumentSummary(**DocumentSummary.fields_from(record))
                for record in page
            ],
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", responses=_ERRORS, tags=["health"])
    async def readyz(request: Request, engine: EngineDep, registry: RegistryDep) -> JSONResponse:
        """The model is loaded and every store answers: the databases (registry, support, keys), the
        vector store and the lexical index. Else 503, naming each damaged store and its code
        (retrieval/storage.py)."""
        state = request.app.state
        databases = {"support database": state.support.store.engine} if hasattr(state, "support") else {}
        databases["keys"] = state.keys.engine
        lexical = engine.retriever.lexical.index if engine.retriever.lexical is not None else None
        faults = await run_in_threadpool(check_stores, registry, engine.store, lexical, databases)
        if faults:
            details = [ErrorDetail(field=fault.store, problem=f"{fault.code}: {fault.problem}") for fault in faults]
            message = "; ".join(f"{fault.store}: {fault.problem}" for fault in faults)
            return error_response(503, faults[0].code, message, details)
        return JSONResponse({"status": "ready", "chunks": await run_in_threadpool(engine.store.count)})

    return app


def _support_store(app: FastAPI) -> SupportStore:
    store: SupportStore = app.state.support.store
    return store
