"""ANSWERDESK_CHROMA_URLS against two real Chroma servers: tenants are placed on servers (recorded in
SQL), and a server that is down fails only its own tenants' requests that need it (503
store_unavailable; questions are answered from the replica's exact-search snapshot meanwhile), which
work again once it is back, without a restart; a server that accepts but never answers fails its
tenants within ANSWERDESK_CHROMA_TIMEOUT_S while the others keep answering."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.embedding import HashingEmbedder
from retrieval.placement import PlacementStore
from tests.chroma_server import ChromaServer, SilentServer, chroma_command
from tests.helpers import FAQ, bearer, issue_key, small_kb_settings, wait_until

pytestmark = pytest.mark.sql  # each test also runs on PostgreSQL (tests/conftest.py)
QUESTION = {"question": "How long does a refund take?"}


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
    settings = small_kb_settings(tmp_path, chroma_urls=f"{first.url}, {second.url}")
    assert not (settings.data_dir / "chroma").exists()  # nothing embedded on local disk
    default_reader = bearer(issue_key(settings, role="reader", tenant="default"))
    acme_editor = bearer(issue_key(settings, role="editor", tenant="acme"))
    acme_reader = bearer(issue_key(settings, role="reader", tenant="acme"))
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        upload = client.post("/v1/documents", headers=acme_editor, files=[("file", ("en/faq-refunds.md", FAQ))])
        assert upload.status_code in (200, 201), upload.text
        placements = PlacementStore(settings.database_url)
        assert placements.placements() == {"default": first.url, "acme": second.url}  # the least loaded
        placements.close()
        for headers in (default_reader, acme_reader):
            assert client.post("/v1/ask", json=QUESTION, headers=headers).json()["status"] == "answered"

        second.kill()  # as a crash would
        files = [("file", ("en/faq-billing.md", FAQ.replace("Refunds", "Invoices")))]
        down = client.post("/v1/documents", headers=acme_editor, files=files)
        assert down.status_code >= 400 and "Traceback" not in down.text, down.text  # not written
        # Questions need no vector server once the tenant's vectors are in this replica's memory
        # (exact search, retrieval/exact_search.py): the generation in SQL says they are current.
        assert client.post("/v1/ask", json=QUESTION, headers=acme_reader).json()["status"] == "answered"
        assert client.post("/v1/ask", json=QUESTION, headers=default_reader).json()["status"] == "answered"
        assert client.get("/readyz").status_code == 200  # the replica still serves the other tenants

        second.start()  # same folder, same port: its data is back
        upload = client.post("/v1/documents", headers=acme_editor, files=files)
        assert upload.status_code in (200, 201), upload.text


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
