"""GET /metrics: answers by status and language, /v1/ask latency, ingestion, outbox and job depths
and store errors, read back with prometheus-client's own parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from api.app import create_app
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import FAQ, bearer, issue_key, small_kb_settings

pytestmark = pytest.mark.sql  # each test also runs on PostgreSQL (tests/conftest.py)


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Webhooks to a port nobody listens on: escalations' messages stay pending in the outbox.
    return small_kb_settings(
        tmp_path, webhook_urls=["http://127.0.0.1:9/hooks"], webhook_secret=SecretStr("metrics-test-secret")
    )


def test_answers_latency_ingestion_and_outbox_are_counted(settings: Settings) -> None:
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        before = _samples(client)
        assert before.get(("answerdesk_answers_total", (("language", "en"), ("status", "answered")))) is None

        assert client.post("/v1/ask", json={"question": "How long does a refund take?"}).json()["status"] == "answered"
        escalated = client.post("/v1/ask", json={"question": "Connect me to a person please", "escalate": True})
        assert escalated.json()["status"] == "escalated"
        billing = FAQ.replace("Refunds", "Billing")
        upload = client.post("/v1/documents", files=[("file", ("en/faq-billing.md", billing))])
        assert upload.status_code in (200, 201), upload.text

        after = _samples(client)
        assert after[("answerdesk_answers_total", (("language", "en"), ("status", "answered")))] == 1
        assert after[("answerdesk_answers_total", (("language", "en"), ("status", "escalated")))] == 1
        for stage in ("wait", "answer", "total"):
            assert after[("answerdesk_ask_seconds_count", (("stage", stage),))] == 2
        assert after[("answerdesk_ask_seconds_sum", (("stage", "total"),))] > 0
        for stage in ("embed", "search", "evidence", "decide"):  # measured inside the engine
            assert before.get(("answerdesk_stage_seconds_count", (("stage", stage),))) is None
            assert after[("answerdesk_stage_seconds_count", (("stage", stage),))] == 2, stage
            assert after[("answerdesk_stage_seconds_sum", (("stage", stage),))] > 0, stage
        # No verifier in this profile (verify_depth 0): the stage is not run, so not counted.
        assert ("answerdesk_stage_seconds_count", (("stage", "verify"),)) not in after
        assert after[("answerdesk_ingested_files_total", (("outcome", "added"),))] == 1
        assert after[("answerdesk_ingest_seconds_count", ())] == 1
        assert after[("answerdesk_outbox_messages", (("status", "pending"),))] >= 1


@pytest.mark.sqlite_only  # the verifier's timing does not depend on the database
def test_the_verifier_stage_is_timed(tmp_path: Path, model_dir: Path) -> None:
    from retrieval.build.embedder import prepare_verifier

    if prepare_verifier(model_dir) is None:
        pytest.skip("no verifier adapter committed")
    settings = small_kb_settings(tmp_path, model_dir=model_dir)
    assert settings.profile_path is not None  # the verifier reranks the first two hits
    settings.profile_path.write_text("verify_depth = 2\n" + settings.profile_path.read_text(), encoding="utf-8")
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        assert client.app.state.engine.verifier is not None  # type: ignore[attr-defined]
        assert client.post("/v1/ask", json={"question": "How long does a refund take?"}).status_code == 200
        samples = _samples(client)
    assert samples[("answerdesk_stage_seconds_count", (("stage", "verify"),))] == 1
    assert samples[("answerdesk_stage_seconds_sum", (("stage", "verify"),))] > 0


@pytest.mark.sqlite_only  # it deletes the SQLite file under the server
def test_store_errors_are_counted_by_code(settings: Settings) -> None:
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        Path(settings.database_url.removeprefix("sqlite:///")).unlink()
        for _ in range(2):
            response = client.post("/v1/ask", json={"question": "How long does a refund take?"})
            assert response.json()["error"]["code"] == "database_gone"
        samples = _samples(client)  # the scrape itself still answers, without the outbox depth
        assert samples[("answerdesk_store_errors_total", (("code", "database_gone"),))] == 2
        assert not any(name == "answerdesk_outbox_messages" for name, _ in samples)
        # A depth that could not be read is counted (shown from the next scrape on).
        assert _samples(client)[("answerdesk_store_errors_total", (("code", "scrape_failed"),))] >= 1
