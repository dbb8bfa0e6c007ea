"""One error tree for the API; a single set of handlers turns each into JSON with a stable code.

ApiError
├── AuthenticationError    401 missing_api_key, invalid_api_key (with WWW-Authenticate: Bearer)
├── ForbiddenError         403 forbidden_role
├── RateLimitedError       429 rate_limited (with Retry-After)
├── NotReadyError          503 not_ready
├── WriterBusyApiError     503 writer_busy (with Retry-After)
├── NotFoundError          404 document_not_found, job_not_found, conversation_not_found (lookups in the routes)
├── ConflictError          409 escalation_already_resolved
├── PayloadTooLargeError   413 payload_too_large (also api/limits.py BodySizeLimit)
├── UnsupportedMediaError  415 unsupported_media_type
└── DocumentRejectedError  a file the ingester refused: 409 document_exists, 413 too_large,
                           503 store_unavailable, store_error (nothing written),
                           422 with the file's own code (content_mismatch, invalid_utf8, corrupt_pdf, …)
AnswerDeskError            by its code (DOMAIN_STATUS, the one table for domain errors; their message is the
                           client's): store_unavailable, database_gone 503; *_not_found 404; …
(SQLite/SQL DatabaseError) 503 database_unavailable (damaged, unreadable, or a database server down or
                         timing out; integrity errors stay 500; the next request after recovery works)
(request validation)     422 invalid_request (also a body that cannot be parsed, which FastAPI makes a 400)
(HTTP errors: 404, 405…) their status, code from the status
(anything else)          500 internal_error, logged, no trace to the client
"""

from __future__ import annotations

import logging
import sqlite3
from typing import ClassVar

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.metrics import count_store_error
from api.models import ErrorBody, ErrorDetail, ErrorResponse
from common.errors import AnswerDeskError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class AuthenticationError(ApiError):
    """No API key (``missing_api_key``), or one that is unknown or revoked (``invalid_api_key``)."""

    status_code = 401

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})
        self.code = code


class ForbiddenError(ApiError):
    """The key is valid but its role may not do this."""

    status_code = 403
    code = "forbidden_role"


class AudienceForbiddenError(ForbiddenError):
    """The key asks to grant an audience it does not have (a public admin minting an internal key)."""

    code = "audience_not_allowed"


class RateLimitedError(ApiError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: str) -> None:
        super().__init__(message, headers={"Retry-After": retry_after})


class NotReadyError(ApiError):
    status_code = 503
    code = "not_ready"


class WriterBusyApiError(ApiError):
    """A write that could not start before its deadline; nothing was changed."""

    status_code = 503
    code = "writer_busy"

    def __init__(self, message: str, retry_after: str) -> None:
        super().__init__(message, headers={"Retry-After": retry_after})


class NotFoundError(ApiError):
    status_code = 404

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class ConflictError(ApiError):
    """The request clashes with the resource's state (e.g. resolving a resolved escalation)."""

    status_code = 409

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class PayloadTooLargeError(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaError(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class DocumentRejectedError(ApiError):
    """An uploaded document the ingester refused; ``code`` is the per-file code (stable)."""

    _STATUS: ClassVar[dict[str, int]] = {
        "document_exists": 409,
        "too_large": 413,
        "store_error": 503,
        "store_unavailable": 503,  # the tenant's vector store (its Chroma server) is down: nothing written
        "audience_not_allowed": 403,
    }

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = self._STATUS.get(code, 422)


# Domain errors (common/errors.py) that reach the API, by code; any other code is a 500.
DOMAIN_STATUS: dict[str, int] = {
    "conversation_not_found": 404,
    "escalation_not_found": 404,
    "answer_not_found": 404,
    "key_not_found": 404,
    "experiment_not_found": 404,
    "escalation_already_resolved": 409,
    "job_finished": 409,
    "job_not_failed": 409,
    "invalid_id": 422,
    "invalid_scope": 422,
    "invalid_key_spec": 422,
    "store_unavailable": 503,
    "database_gone": 503,
    "writer_busy": 503,
}
_SERVER_MESSAGES = {
    "store_unavailable": "the knowledge base is temporarily unavailable",
    "database_gone": "a database file was deleted or replaced while the server ran; nothing was written",
    "writer_busy": "other writes are still running; retry shortly",
}


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details or []))
    return JSONResponse(status_code=status_code, content=body.model_dump(), headers=headers)


def _field_name(location: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for error in exc.errors():
            problem = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
            if error.get("type") == "extra_forbidden":
                problem = "is not a known field"
            details.append(ErrorDetail(field=_field_name(tuple(error.get("loc", ()))), problem=problem))
        message = "; ".join(f"{detail.field}: {detail.problem}" for detail in details) or "invalid request"
        return error_response(422, "invalid_request", message, details)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.code == "store_unavailable":  # a write refused because the tenant's vector store is down
            count_store_error(request, exc.code)
        return error_response(exc.status_code, exc.code, exc.message, headers=exc.headers or None)

    @app.exception_handler(AnswerDeskError)
    async def _domain(request: Request, exc: AnswerDeskError) -> JSONResponse:
        status = DOMAIN_STATUS.get(exc.code)
        if status is None:
            return await _unexpected(request, exc)
        if status >= 500:  # the detail may name server paths: logged, and the client gets a fixed text
            if exc.code in ("store_unavailable", "database_gone"):
                count_store_error(request, exc.code)
            logger.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc)
            return error_response(status, exc.code, _SERVER_MESSAGES.get(exc.code, "temporarily unavailable"))
        return error_response(status, exc.code, str(exc))

    @app.exception_handler(sqlalchemy.exc.DatabaseError)
    @app.exception_handler(sqlalchemy.exc.TimeoutError)  # no pooled connection in time: the server is stuck
    @app.exception_handler(sqlite3.DatabaseError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, sqlalchemy.exc.IntegrityError | sqlite3.IntegrityError):
            return await _unexpected(request, exc)  # a bug, not a damaged store
        logger.error("database unusable on %s %s: %s", request.method, request.url.path, exc)
        count_store_error(request, "database_unavailable")
        return error_response(503, "database_unavailable", "a database is damaged or unreadable; see /readyz")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; it has been logged")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body FastAPI cannot parse (not UTF-8, broken multipart): like invalid JSON
            problem = f"cannot be parsed ({exc.detail})"
            details = [ErrorDetail(field="body", problem=problem)]
            return error_response(422, "invalid_request", f"body: {problem}", details)
        codes = {404: "not_found", 405: "method_not_allowed", 413: PayloadTooLargeError.code}
        code = codes.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None)
