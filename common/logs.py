"""Structured logs: one JSON object per line, personal data redacted, the request id on every line.

Only entry points call :func:`configure_logging` (``answerdesk`` and ``answerdesk serve``); library
modules just use ``logging.getLogger(__name__)``. Every string that reaches the output — the
formatted message, ``extra`` fields, exception text — goes through :func:`common.redact.redact_text`.
That happens in the formatter rather than in a ``logging.Filter`` over ``msg``/``args`` because a
filter would miss tracebacks and ``extra`` fields, which are only rendered when formatting.

A line looks like::

    {"timestamp": "2026-11-21T15:58:02.120+00:00", "level": "INFO", "logger": "api.access",
     "message": "POST /v1/ask 200", "request_id": "5f0c…", "method": "POST", "path": "/v1/ask",
     "status": 200, "duration_ms": 41.7, "key_id": "k_3b9…"}
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from common.redact import redact_text

# The id of the request being served; run_in_threadpool copies it into worker threads.
request_id_var: ContextVar[str | None] = ContextVar("answerdesk_request_id", default=None)
_HANDLER_MARK = "_answerdesk_handler"


def redact_value(value: Any) -> Any:
    """``value`` with every string in it (also inside lists and dicts) redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter with the request id added and every string redacted."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
            json_ensure_ascii=False,
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        request_id = request_id_var.get()
        if request_id is not None and "request_id" not in log_data:
            log_data["request_id"] = request_id

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
        redacted: dict[str, Any] = redact_value(log_data)
        return redacted


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each record: test runners (typer's CliRunner) swap it
    and close the old one, which a handler holding the old stream would then fail on."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: int | str = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as redacted JSON lines; idempotent.

    Replaces the handler an earlier call installed (the CLI configures once, ``serve`` again with
    the server's level) and leaves handlers others installed (pytest's capture) alone.
    """
    root = logging.getLogger()
    for handler in [handler for handler in root.handlers if getattr(handler, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    handler.setFormatter(RedactingJsonFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Tag every log line written inside the block (and its worker threads) with ``request_id``."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)
