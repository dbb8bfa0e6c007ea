"""The FastAPI application: ``create_app(settings)`` builds it; routes validate, call the engine, shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.concurrency import run_in_threadpool

from answerdesk import __version__
from api.deps import EngineDep, RegistryDep
from api.documents import router as documents_router
from api.errors import install_error_handlers
from api.models import AskRequest, AskResponse, DocumentList, DocumentSummary, ErrorResponse
from api.routes_support import SupportDep, answer_turn
from api.routes_support import router as support_router
from ingest.pipeline import build_ingestor
from ingest.service import DocumentService
from retrieval.config import Settings, get_settings
from retrieval.embedding import Embedder
from retrieval.engine import AnswerEngine, build_components

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorResponse, "description": "The request is invalid; the body names the field."},
    503: {"model": ErrorResponse, "description": "The engine or its store is not ready."},
}


def create_app(settings: Settings | None = None, embedder: Embedder | None = None) -> FastAPI:
    """The API app; ``embedder`` replaces the configured one (tests pass a fast fake)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded, store, registry = build_components(settings, embedder)
        profile = settings.load_profile()
        await run_in_threadpool(loaded.warm_up)
        app.state.settings = settings
        app.state.engine = AnswerEngine(loaded, store, profile, registry)
        app.state.registry = registry
        documents = DocumentService(build_ingestor(settings, profile, loaded, store, registry), settings.uploads_dir)
        await run_in_threadpool(documents.recover)
        app.state.documents = documents
        logger.info("answer engine ready: %d chunks in the store", store.count())
        yield
        documents.close()

    app = FastAPI(
        title="AnswerDesk",
        version=__version__,
        summary="Answers customer questions only from the knowledge base, with citations, or abstains.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(documents_router)
    app.include_router(support_router)

    @app.post("/v1/ask", response_model=AskResponse, responses=_ERRORS, tags=["answers"])
    async def ask(request: AskRequest, engine: EngineDep, desk: SupportDep) -> AskResponse:
        """Answer a question from the knowledge base, with citations, or abstain; hands the
        conversation to a person when triage (or ``escalate``) says so (api/routes_support.py)."""
        return await answer_turn(request, engine, desk)

    @app.get("/v1/documents", response_model=DocumentList, responses=_ERRORS, tags=["documents"])
    async def list_documents(
        registry: RegistryDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DocumentList:
        """The ingested documents, ordered by id."""
        records = await run_in_threadpool(registry.all)
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
    async def readyz(engine: EngineDep) -> dict[str, object]:
        """The model is loaded and the store answers."""
        await run_in_threadpool(engine.store.ping)
        return {"status": "ready", "chunks": engine.store.count()}

    return app
