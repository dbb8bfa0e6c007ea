"""OpenTelemetry traces of /v1/ask (api/tracing.py): off by default; on, one span per question with
a child per engine stage, GenAI semantic-convention names; exported over real OTLP/HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from api.app import create_app
from api.tracing import Tracing
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import bearer, issue_key, small_kb_settings

QUESTION = {"question": "How long does a refund take?"}
ENGINE_STAGES = {"answerdesk.embed", "answerdesk.search", "answerdesk.evidence", "answerdesk.decide"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return small_kb_settings(tmp_path)


def test_tracing_is_off_by_default(settings: Settings) -> None:
    assert settings.otel is False
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        assert client.app.state.tracing is None  # type: ignore[attr-defined]  # no provider, no exporter
        assert client.post("/v1/ask", json=QUESTION).json()["status"] == "answered"


def test_an_ask_is_one_span_with_a_child_per_stage(settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        client.app.state.tracing = Tracing(provider, settings)  # type: ignore[attr-defined]
        body = client.post("/v1/ask", json=QUESTION, headers={"X-Request-ID": "trace-test-1"}).json()

    spans = exporter.get_finished_spans()
    [ask] = [span for span in spans if span.name == "answerdesk.ask"]
    assert ask.attributes is not None and ask.context is not None
    assert ask.attributes["answerdesk.request_id"] == "trace-test-1"
    assert ask.attributes["answerdesk.tenant"] == "default"
    assert ask.attributes["answerdesk.answer.status"] == "answered"
    assert ask.attributes["answerdesk.answer.language"] == "en"
    assert ask.attributes["gen_ai.conversation.id"] == body["conversation_id"]
    assert ask.attributes["gen_ai.response.id"] == body["answer_id"]
    assert all(QUESTION["question"] not in str(value) for value in ask.attributes.values())  # no question text

    children = {span.name: span for span in spans if span.parent is not None}
    assert children.keys() >= ENGINE_STAGES
    for child in children.values():
        assert child.parent is not None and child.parent.span_id == ask.context.span_id
        assert child.start_time is not None and child.end_time is not None and child.end_time >= child.start_time
    embed, search = children["answerdesk.embed"].attributes, children["answerdesk.search"].attributes
    assert embed is not None and search is not None
    assert embed["gen_ai.operation.name"] == "embeddings"
    assert embed["gen_ai.request.model"] == settings.embedding_model
    assert search["gen_ai.operation.name"] == "retrieval"
    assert search["gen_ai.data_source.id"] == settings.collection


def test_a_failed_ask_is_an_error_span_that_still_shows_the_stages_that_ran(settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        client.app.state.tracing = Tracing(provider, settings)  # type: ignore[attr-defined]
        settings.chroma_dir.rename(settings.chroma_dir.with_name("chroma-aside"))  # the vector store is gone
        response = client.post("/v1/ask", json=QUESTION)
        assert response.status_code == 503 and response.json()["error"]["code"] == "store_unavailable"

    spans = exporter.get_finished_spans()
    [ask] = [span for span in spans if span.name == "answerdesk.ask"]
    assert ask.status.status_code == StatusCode.ERROR
    assert any(event.name == "exception" for event in ask.events)
    # The embedding ran; the search failed in the store, and is shown with the time it took to fail.
    assert {span.name for span in spans if span.parent is not None} == {"answerdesk.embed", "answerdesk.search"}


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []  # each fixture's subclass has its own

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A tiny OTLP/HTTP receiver on a free loopback port: it keeps what is posted to it."""
    received: ClassVar[list[tuple[str, str, bytes]]] = []  # each fixture's subclass has its own
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_spans_are_posted_to_the_otlp_http_endpoint(
    settings: Settings, collector: tuple[str, list[tuple[str, str, bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)  # the standard variable
    monkeypatch.setenv("OTEL_SERVICE_NAME", "answerdesk-test")
    settings = settings.model_copy(update={"otel": True})
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        assert client.post("/v1/ask", json=QUESTION).json()["status"] == "answered"
    # Leaving the client shut the app down, which flushes the batch to the receiver.

    assert received, "nothing was posted to the OTLP endpoint"
    names: set[str] = set()
    services: set[str] = set()
    for path, content_type, body in received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            services.update(
                attribute.value.string_value
                for attribute in resource_spans.resource.attributes
                if attribute.key == "service.name"
            )
            names.update(span.name for scope in resource_spans.scope_spans for span in scope.spans)
    assert services == {"answerdesk-test"}
    assert {"answerdesk.ask", *ENGINE_STAGES} <= names
