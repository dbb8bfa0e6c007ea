"""One access-log line per request, a request id on every response, and the answer line of /v1/ask.

The request id is the caller's ``X-Request-ID`` when it is a sane token (letters, digits, ``._:-``,
at most 128), else a new one; it is echoed in the response header and tagged onto every log line
written while the request is served (common/logs.py). The access line carries method, path,
status, duration and, when authentication put a caller on ``request.state.caller``, its key id.
Lines are JSON and redacted once the entry point has called ``configure_logging``.

A pure ASGI middleware rather than ``@app.middleware("http")``: it sees the status of every
response, streamed ones included, without wrapping the body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.logs import request_context
from retrieval.records import Answer

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_logger = logging.getLogger("api.access")
answer_logger = logging.getLogger("api.answers")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        status = 500  # what the client gets when the app raises before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with request_context(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                fields: dict[str, Any] = {
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                }
                key_id = getattr(scope.get("state", {}).get("caller"), "key_id", None)
                if key_id is not None:
                    fields["key_id"] = key_id
                access_logger.info("%s %s %d", scope["method"], scope["path"], status, extra=fields)


def log_answer(question: str, answer: Answer, log_questions: bool) -> None:
    """The outcome of one /v1/ask; the question and answer text only when ``log_questions`` is on
    (ANSWERDESK_LOG_QUESTIONS), and redacted even then."""
    fields: dict[str, Any] = {
        "answer_id": answer.answer_id,
        "answer_status": answer.status.value,
        "confidence": round(answer.confidence, 4),
        "language": answer.language,
        "question_chars": len(question),
        "cited_documents": [citation.document_id for citation in answer.citations],
    }
    if log_questions:
        fields["question"] = question
        fields["answer"] = answer.answer
    answer_logger.info("answer %s: %s", answer.answer_id, answer.status.value, extra=fields)
