"""Any Unicode path-derived id works in every documents route: percent-encoded in URLs, NFC everywhere (issue #16)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.keys import bearer, issue_key, unlimited

IDS = [
    "en/Licenses and payment/Refund policy",
    "ru/Лицензии и оплата/Политика возврата средств",
    "zh/许可证与支付/退款政策",
    "en/Emoji 🎉 release notes",
    "en/Obsidian 1.5: what's new? #1 & more",
]
BODY = "# {title}\n\nRefunds reach the original card within 5–10 business days.\n"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = unlimited(Settings(data_dir=tmp_path / "data"))
    with TestClient(
        create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))
    ) as test_client:
        yield test_client


def _url(document_id: str) -> str:
    return "/v1/documents/" + quote(document_id, safe="/")


@pytest.mark.parametrize("document_id", IDS)
def test_create_replace_get_delete_round_trip(client: TestClient, document_id: str) -> None:
    content = BODY.format(title="Refund policy")
    created = client.post("/v1/documents", json={"document_id": document_id, "format": "markdown", "content": content})
    assert created.status_code == 201, created.text
    assert created.json()["document_id"] == document_id

    got = client.get(_url(document_id))
    assert got.status_code == 200, got.text
    assert got.json()["document_id"] == document_id and got.json()["title"] == "Refund policy"

    replaced = client.put(_url(document_id), json={"format": "markdown", "content": content.replace("5–10", "3–5")})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2
    assert "3–5" in client.get(_url(document_id)).json()["chunk_details"][0]["text"]
    assert document_id in [item["document_id"] for item in client.get("/v1/documents").json()["documents"]]

    assert client.delete(_url(document_id)).status_code == 204
    assert client.get(_url(document_id)).status_code == 404


def test_multipart_upload_with_a_unicode_file_name(client: TestClient) -> None:
    name = "ru/Лицензии и оплата/Политика возврата средств.md"
    created = client.post("/v1/documents", files=[("file", (name, BODY.format(title="Возврат").encode()))])
    assert created.status_code == 201, created.text
    assert created.json()["document_id"] == name.removesuffix(".md")
    assert client.get(_url(name.removesuffix(".md"))).status_code == 200


def test_decomposed_ids_are_the_same_document(client: TestClient) -> None:
    """macOS writes file names decomposed (NFD): an id sent either way names one document."""
    composed = "ru/Настройки/Удаление аккаунта й"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    content = BODY.format(title="Удаление")
    created = client.post("/v1/documents", json={"document_id": decomposed, "format": "markdown", "content": content})
    assert created.status_code == 201, created.text
    assert created.json()["document_id"] == composed
    assert client.get(_url(decomposed)).json()["document_id"] == composed
    again = client.post("/v1/documents", json={"document_id": composed, "format": "markdown", "content": content})
    assert again.status_code == 409
    assert (
        client.put(_url(decomposed), json={"format": "markdown", "content": content + "\nMore.\n"}).status_code == 200
    )
    assert client.delete(_url(decomposed)).status_code == 204
