"""ANSWERDESK_CHROMA_URLS against two real Chroma servers: tenants are placed on servers (recorded in
SQL), and a server that is down fails only its own tenants' requests that need it (503
store_unavailable; questions are answered from the replica's exact-search snapshot meanwhile), which
work again once it is back, without a restart; a server that accepts but never answers fails its
tenants within ANSWERDESK_CHROMA_TIMEOUT_S while the others keep answering."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.embedding import HashingEmbedder
from retrieval.placement import PlacementStore
from retrieval.records import Chunk
from retrieval.registry import DocumentRegistry
from retrieval.vector_store import StoreUnavailableError
from tests.chroma_server import ChromaServer, SilentServer, chroma_command
from tests.helpers import FAQ, bearer, issue_key, small_kb_settings, wait_until

pytestmark = pytest.mark.sql  # each test also runs on PostgreSQL (tests/conftest.py)
QUESTION = {"question": "How long does a refund take?"}
WARRANTY = """---
title: Warranty
type: faq
---
## How long is the warranty on a device?
Every device carries a two-year warranty against manufacturing defects.
"""
WARRANTY_QUESTION = {"question": "warranty against manufacturing defects"}
FAQ_V2 = FAQ.replace("5-10 business days", "3 business days")
BILLING = FAQ.replace("Refunds FAQ", "Billing FAQ")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ChromaServer]]:
    if chroma_command() is None:
        from tests.conftest import service_unreachable

        service_unreachable("Chroma", "the chroma command is not installed")
    started = [ChromaServer(tmp_path / f"chroma-{n}") for n in (1, 2)]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.kill()


def test_a_down_server_fails_only_its_tenants(tmp_path: Path, servers: list[ChromaServer]) -> None:
    first, second = servers
    # The sample KB goes to the default tenant, placed first: on the first server.
    settings = small_kb_settings(tmp_path, chroma_urls=f"{first.url}, {second.url}", job_runner="api")
    assert not (settings.data_dir / "chroma").exists()  # nothing embedded on local disk
    default_editor = bearer(issue_key(settings, role="editor", tenant="default"))
    default_reader = bearer(issue_key(settings, role="reader", tenant="default"))
    acme_editor = bearer(issue_key(settings, role="editor", tenant="acme"))
    acme_reader = bearer(issue_key(settings, role="reader", tenant="acme"))
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        upload = client.post("/v1/documents", headers=acme_editor, files=[("file", ("en/faq-refunds.md", FAQ))])
        assert upload.status_code == 201, upload.text
        placements = PlacementStore(settings.database_url)
        assert placements.placements() == {"default": first.url, "acme": second.url}  # the least loaded
        placements.close()
        for headers in (default_reader, acme_reader):
            assert client.post("/v1/ask", json=QUESTION, headers=headers).json()["status"] == "answered"
        registry = DocumentRegistry(settings.database_url)
        before = registry.get("acme:en/faq-refunds")
        assert before is not None

        second.kill()  # as a crash would
        # acme's writes fail with 503 store_unavailable, and write nothing: a new document, a
        # replacement, a delete, and a job's files.
        refused = [
            client.post("/v1/documents", headers=acme_editor, files=[("file", ("en/warranty.md", WARRANTY))]),
            client.put("/v1/documents/en/faq-refunds", headers=acme_editor, files=[("file", ("x.md", FAQ_V2))]),
            client.delete("/v1/documents/en/faq-refunds", headers=acme_editor),
        ]
        for response in refused:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "store_unavailable", response.text
        job = _finished_job(client, acme_editor, [("en/warranty.md", WARRANTY), ("en/billing.md", BILLING)])
        assert job["status"] == "failed" and {r["code"] for r in job["results"]} == {"store_unavailable"}, job
        assert registry.get("acme:en/faq-refunds") == before
        assert registry.get("acme:en/warranty") is None and registry.get("acme:en/billing") is None
        # A write that gets as far as the store and fails there (the server went down after the
        # checks before it) leaves the tenant's snapshot too; its journal entry waits for the server.
        stray = Chunk("acme:en/stray#v1-0", "acme:en/stray", "Stray text.", "Stray", language="en", version=1)
        registry.stage([(stray.document_id, [stray.chunk_id])])
        with pytest.raises(StoreUnavailableError):
            client.app.state.engine.store.upsert([stray], HashingEmbedder().embed_documents([stray.text]))
        # Questions need no vector server once the tenant's vectors are in this replica's memory
        # (exact search, retrieval/exact_search.py): the generation in SQL says they are current.
        assert client.post("/v1/ask", json=QUESTION, headers=acme_reader).json()["status"] == "answered"
        # The other server's tenant writes and answers as before.
        written = client.post("/v1/documents", headers=default_editor, files=[("file", ("en/warranty.md", WARRANTY))])
        assert written.status_code == 201, written.text
        assert client.post("/v1/ask", json=QUESTION, headers=default_reader).json()["status"] == "answered"
        assert _cited(client, WARRANTY_QUESTION, default_reader) == ["en/warranty"]
        assert client.get("/readyz").status_code == 200  # the replica still serves the other tenants
        # A replica started meanwhile (acme's journal cannot be replayed: left to its next write), and
        # holding no snapshot of acme, cannot answer it: 503, never a 500.
        with TestClient(create_app(settings, embedder=HashingEmbedder())) as other:
            down = other.post("/v1/ask", json=QUESTION, headers=acme_reader)
            assert down.status_code == 503 and down.json()["error"]["code"] == "store_unavailable", down.text
            assert other.post("/v1/ask", json=QUESTION, headers=default_reader).json()["status"] == "answered"

            second.start()  # same folder, same port: its data is back; no restart of either replica
            assert other.post("/v1/ask", json=QUESTION, headers=acme_reader).json()["status"] == "answered"
        files = [("file", ("en/warranty.md", WARRANTY))]
        upload = client.post("/v1/documents", headers=acme_editor, files=files)
        assert upload.status_code == 201, upload.text
        assert _cited(client, WARRANTY_QUESTION, acme_reader) == ["en/warranty"]
        replaced = client.put("/v1/documents/en/faq-refunds", headers=acme_editor, files=[("file", ("x.md", FAQ_V2))])
        assert replaced.status_code == 200 and replaced.json()["version"] == before.version + 1, replaced.text
        assert client.delete("/v1/documents/en/warranty", headers=acme_editor).status_code == 204
        assert registry.journal() == []  # the stray write was cleaned up by acme's next write
        registry.engine.dispose()


def _cited(client: TestClient, question: dict[str, str], headers: dict[str, str]) -> list[str]:
    answer = client.post("/v1/ask", json=question, headers=headers).json()
    assert answer["status"] == "answered", answer
    return sorted({citation["document_id"] for citation in answer["citations"]})


def _finished_job(client: TestClient, headers: dict[str, str], files: list[tuple[str, str]]) -> dict[str, Any]:
    started = client.post("/v1/documents", headers=headers, files=[("file", item) for item in files])
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert wait_until(lambda: client.get(location, headers=headers).json()["status"] not in ("queued", "running"))
    job: dict[str, Any] = client.get(location, headers=headers).json()
    return job


def test_a_server_that_never_answers_fails_only_its_tenants_within_the_timeout(
    tmp_path: Path, servers: list[ChromaServer]
) -> None:
    first = servers[0]
    # Generous bound on each request: without the timeout they would wait forever (the guard fails).
    guard = 60.0
    with ThreadPoolExecutor(4) as pool, SilentServer() as silent:
        settings = small_kb_settings(tmp_path, chroma_urls=f"{first.url}, {silent.url}", chroma_timeout_s=2.0)
        default_reader = bearer(issue_key(settings, role="reader", tenant="default"))
        acme_reader = bearer(issue_key(settings, role="reader", tenant="acme"))
        with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
            try:
                assert client.post("/v1/ask", json=QUESTION, headers=default_reader).json()["status"] == "answered"

                # acme is placed on the silent server (the least loaded) and waits for it...
                hung = pool.submit(client.post, "/v1/ask", json=QUESTION, headers=acme_reader)
                assert wait_until(lambda: len(silent.accepted) >= 1, timeout=guard)
                # ...while the default tenant keeps answering from the first server meanwhile.
                answered = pool.submit(client.post, "/v1/ask", json=QUESTION, headers=default_reader)
                assert answered.result(timeout=guard).json()["status"] == "answered"

                down = hung.result(timeout=guard)
                assert down.status_code == 503 and down.json()["error"]["code"] == "store_unavailable", down.text
                assert pool.submit(client.get, "/readyz").result(timeout=guard).status_code == 200
            finally:
                silent.close()  # a request still hanging (the guard failed) ends, so the client can close
