"""Optional OpenTelemetry traces of ``/v1/ask`` (``ANSWERDESK_OTEL=true``; off by default).

One span per question (``answerdesk.ask``, kind SERVER) with the request id, tenant, answer status
and language, and one child span per engine stage (``answerdesk.embed``, ``.search``, ``.verify``,
``.evidence``, ``.decide``). The children are made after the answer from the question's
:class:`~retrieval.timings.StageTimings`, with the stages' real start and end times: retrieval/
holds no tracing code, and with tracing off the SDK is not even imported (``build_tracing`` returns
None; the route only checks for None).

Export is OTLP over HTTP/protobuf, batched, configured by the standard variables:
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default
http://localhost:4318), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME`` (default answerdesk).

Attribute names follow the GenAI semantic conventions where one fits (the constants of
opentelemetry-semantic-conventions, not our spelling): ``gen_ai.operation.name`` (``embeddings``
for the question's embedding, ``retrieval`` for the search), ``gen_ai.request.model`` (the embedder,
the verifier), ``gen_ai.data_source.id`` (the collection searched), ``gen_ai.conversation.id`` and
``gen_ai.response.id`` (the answer id). The rest are ``answerdesk.*``. No question or answer text is
ever put on a span (docs/privacy.md), and tenants are ids, never names of people.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_DATA_SOURCE_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_ID,
    GenAiOperationNameValues,
)

from api.models import AskResponse
from common.logs import request_id_var
from retrieval.config import Settings
from retrieval.timings import EMBED, SEARCH, VERIFY, StageTimings

if TYPE_CHECKING:  # only imported for real when tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

VERIFIER_MODEL = "answerdesk-verifier"  # our cross-encoder (retrieval/verifier.py), e5 + a LoRA adapter


class AskTrace:
    """The span of one ``/v1/ask``; the route tells it the outcome."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def answered(self, response: AskResponse) -> None:
        self.span.set_attributes({
            "answerdesk.answer.status": response.status,
            "answerdesk.answer.language": response.language,
            GEN_AI_CONVERSATION_ID: response.conversation_id,
            GEN_AI_RESPONSE_ID: response.answer_id,
        })


class Tracing:
    """Spans of ``/v1/ask`` from ``provider`` (its own, not the process-global one, so two apps in
    one process, such as tests' replicas, never share an exporter)."""

    def __init__(self, provider: TracerProvider, settings: Settings) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("answerdesk", version("answerdesk"))
        self.stage_attributes: dict[str, Mapping[str, str]] = {
            EMBED: {
                GEN_AI_OPERATION_NAME: GenAiOperationNameValues.EMBEDDINGS.value,
                GEN_AI_REQUEST_MODEL: settings.embedding_model,
            },
            SEARCH: {
                GEN_AI_OPERATION_NAME: GenAiOperationNameValues.RETRIEVAL.value,
                GEN_AI_DATA_SOURCE_ID: settings.collection,
            },
            VERIFY: {GEN_AI_REQUEST_MODEL: VERIFIER_MODEL},
        }

    @contextmanager
    def ask(self, tenant: str, timings: StageTimings) -> Iterator[AskTrace]:
        """The span of one question, current inside the block; its stage spans are added on the
        way out (an error still shows the stages that ran, and the exception on the span)."""
        from opentelemetry.trace import SpanKind, set_span_in_context

        attributes = {"answerdesk.tenant": tenant, "answerdesk.request_id": request_id_var.get() or ""}
        with self.tracer.start_as_current_span("answerdesk.ask", kind=SpanKind.SERVER, attributes=attributes) as span:
            try:
                yield AskTrace(span)
            finally:
                parent = set_span_in_context(span)
                for run in timings.runs:
                    child = self.tracer.start_span(
                        f"answerdesk.{run.stage}", context=parent, start_time=run.started_ns,
                        attributes={"answerdesk.stage": run.stage, **self.stage_attributes.get(run.stage, {})},
                    )
                    child.end(end_time=run.ended_ns)

    def shutdown(self) -> None:
        """Export what is still queued and stop the exporter (at the app's shutdown)."""
        self.provider.shutdown()


def build_tracing(settings: Settings) -> Tracing | None:
    """Tracing to the OTLP/HTTP endpoint of the standard variables, or None when ``settings.otel``
    is off (nothing of the SDK is imported then)."""
    if not settings.otel:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "answerdesk")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider, settings)
