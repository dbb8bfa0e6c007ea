"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.errors import NotReadyError
from ingest.service import DocumentService
from retrieval.config import Settings
from retrieval.pipeline import AnswerPipeline
from retrieval.registry import DocumentRegistry
from support.desk import SupportDesk


def get_engine(request: Request) -> AnswerPipeline:
    engine: AnswerPipeline | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise NotReadyError("the answer engine is still starting")
    return engine


def get_registry(request: Request) -> DocumentRegistry:
    registry: DocumentRegistry | None = getattr(request.app.state, "registry", None)
    if registry is None:
        raise NotReadyError("the answer engine is still starting")
    return registry


def get_documents(request: Request) -> DocumentService:
    service: DocumentService | None = getattr(request.app.state, "documents", None)
    if service is None:
        raise NotReadyError("the answer engine is still starting")
    return service


def get_desk(request: Request) -> SupportDesk:
    desk: SupportDesk | None = getattr(request.app.state, "support", None)
    if desk is None:
        raise NotReadyError("the support desk is still starting")
    return desk


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


EngineDep = Annotated[AnswerPipeline, Depends(get_engine)]
RegistryDep = Annotated[DocumentRegistry, Depends(get_registry)]
DocumentsDep = Annotated[DocumentService, Depends(get_documents)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SupportDep = Annotated[SupportDesk, Depends(get_desk)]
