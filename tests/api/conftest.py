"""Fixtures of the API tests: an empty data dir on the hashing embedder, with tenants' clients
(tests/helpers.py ``Tenant``). Modules that need another setting define their own ``settings``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import TENANCY_PROFILE, Tenant, issue_key, unlimited


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    profile = tmp_path / "profile.toml"
    profile.write_text(TENANCY_PROFILE, encoding="utf-8")
    return unlimited(Settings(data_dir=tmp_path / "data", profile_path=profile))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as test_client:
        yield test_client


@pytest.fixture
def acme(client: TestClient, settings: Settings) -> Tenant:
    return Tenant(client, issue_key(settings, tenant="acme"))


@pytest.fixture
def globex(client: TestClient, settings: Settings) -> Tenant:
    return Tenant(client, issue_key(settings, tenant="globex"))
