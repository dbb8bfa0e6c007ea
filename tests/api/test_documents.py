"""The document API for editors: upload, replace, read, delete, jobs; with the fast hashing embedder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import bearer, issue_key, unlimited
from tests.ingest.samples import make_docx, make_pdf

FAQ = "---\ntitle: Invoices FAQ\ntype: faq\n---\n## Can I get a PDF invoice?\nYes, from the Billing page.\n"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data", max_file_bytes=60_000, max_request_bytes=300_000, sync_upload_bytes=5_000
    )
    settings = unlimited(settings)
    app = create_app(settings, embedder=HashingEmbedder())
    with TestClient(app, headers=bearer(issue_key(settings))) as test_client:
        yield test_client


def _upload(client: TestClient, *files: tuple[str, bytes]) -> Any:
    return client.post("/v1/documents", files=[("file", (name, data)) for name, data in files])


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _wait(client: TestClient, job_id: str) -> dict[str, Any]:
    for _ in range(200):
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in {"succeeded", "failed"}:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_upload_read_replace_delete(client: TestClient) -> None:
    created = _upload(client, ("en/faq-invoices.md", FAQ.encode()))
    assert created.status_code == 201, created.text
    assert created.json() | {"file": ""} == {
        "file": "",
        "outcome": "added",
        "document_id": "en/faq-invoices",
        "version": 1,
        "chunks": 1,
        "code": "",
        "error": "",
        "note": "",
    }
    document = client.get("/v1/documents/en/faq-invoices").json()
    assert (document["title"], document["version"], document["kind"]) == ("Invoices FAQ", 1, "faq")
    assert document["chunk_details"][0]["text"] == "Can I get a PDF invoice?\nYes, from the Billing page."

    assert _error(_upload(client, ("en/faq-invoices.md", FAQ.encode())), 409)["code"] == "document_exists"

    replaced = client.put(
        "/v1/documents/en/faq-invoices", json={"format": "markdown", "content": FAQ.replace("Billing", "Invoices")}
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["outcome"], replaced.json()["version"]) == ("updated", 2)
    document = client.get("/v1/documents/en/faq-invoices").json()
    assert document["version"] == 2 and "Invoices page" in document["chunk_details"][0]["text"]
    assert len(document["chunk_details"]) == 1  # the old version's chunk is gone

    assert client.delete("/v1/documents/en/faq-invoices").status_code == 204
    assert _error(client.get("/v1/documents/en/faq-invoices"), 404)["code"] == "document_not_found"
    assert _error(client.delete("/v1/documents/en/faq-invoices"), 404)["code"] == "document_not_found"


def test_json_text_document(client: TestClient) -> None:
    response = client.post(
        "/v1/documents", json={"document_id": "en/contact", "format": "text", "content": "Contact\n\nWrite to us."}
    )
    assert response.status_code == 201, response.text
    assert client.get("/v1/documents/en/contact").json()["title"] == "Contact"
    invalid = _error(client.post("/v1/documents", json={"document_id": "x", "format": "pptx", "content": "a"}), 422)
    assert invalid["code"] == "invalid_request" and invalid["details"][0]["field"] == "format"


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("renamed.md", b"\x7fELF\x02\x01\x01" + b"\0" * 64, 422, "content_mismatch"),
        ("empty.md", b"", 422, "empty_file"),
        ("latin1.md", b"Caf\xe9", 422, "invalid_utf8"),
        ("scan.pdf", make_pdf([[]]), 422, "no_text_layer"),
        ("faq.csv", b"question\nWhy?\n", 422, "missing_columns"),
        ("slides.pptx", b"PK\x03\x04", 422, "unsupported_type"),
        ("../escape.md", b"# Hi\n\nText.", 422, "invalid_filename"),
        ("big.md", b"# Big\n\n" + b"word " * 15_000, 413, "too_large"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(
    client: TestClient, name: str, data: bytes, status: int, code: str
) -> None:
    error = _error(_upload(client, (name, data)), status)
    assert error["code"] == code
    assert name.rsplit("/", 1)[-1] in error["message"]
    assert client.get("/v1/documents").json()["total"] == 0


def test_request_and_media_type_limits(client: TestClient) -> None:
    too_big = client.post("/v1/documents", content=b"x" * 300_001, headers={"content-type": "application/json"})
    assert _error(too_big, 413)["code"] == "payload_too_large"
    plain = client.post("/v1/documents", content=b"hello", headers={"content-type": "text/plain"})
    assert _error(plain, 415)["code"] == "unsupported_media_type"


def test_put_refuses_a_front_matter_id_that_differs_from_the_url(client: TestClient) -> None:
    content = "---\nid: en/other\n---\n# Title\n\nText."
    response = client.put("/v1/documents/en/faq", json={"content": content})
    assert _error(response, 422)["code"] == "id_mismatch"


def test_several_files_run_as_a_job_with_per_file_results(client: TestClient, tmp_path: Path) -> None:
    docx = make_docx(tmp_path / "policy.docx").read_bytes()
    response = _upload(
        client,
        ("en/policy.docx", docx),
        ("en/guide.pdf", make_pdf([["Setup guide", "Install the app and sign in."]])),
        ("en/faq.md", FAQ.encode()),
        ("en/faq.json", b'{"faqs": [{"question": "Why?", "answer": "Because."}]}'),
        ("en/broken.md", b"\x89PNG\r\n\x1a\n" + b"\0" * 16),
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['job_id']}"
    job = _wait(client, response.json()["job_id"])
    outcomes = {result["file"].rsplit("/", 1)[-1]: (result["outcome"], result["code"]) for result in job["results"]}
    assert outcomes == {
        "policy.docx": ("added", ""),
        "guide.pdf": ("added", ""),
        "faq.md": ("added", ""),
        "faq.json": ("failed", "duplicate_id"),  # en/faq again
        "broken.md": ("failed", "content_mismatch"),
    }
    assert (job["status"], job["files_total"], job["files_done"]) == ("failed", 5, 5)
    assert client.get("/v1/documents/en/policy").json()["title"] == "Refund policy"
    assert _error(client.get("/v1/jobs/nope"), 404)["code"] == "job_not_found"


def test_a_large_single_upload_runs_as_a_job(client: TestClient) -> None:
    text = "# Long guide\n\n" + "\n\n".join(f"Paragraph {n} explains step {n} of the setup." for n in range(200))
    response = _upload(client, ("en/long.md", text.encode()))
    assert response.status_code == 202, response.text
    job = _wait(client, response.json()["job_id"])
    assert job["status"] == "succeeded" and job["results"][0]["document_id"] == "en/long"
