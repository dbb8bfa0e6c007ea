"""Abuse limits: a token bucket per API key, request body sizes, and the question length check."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


# Hand-written: pyrate-limiter (installed with schemathesis) keeps a timestamp per request in a
# sliding-window log, leaks buckets from a background thread and does not say when the next request
# would be allowed, which the Retry-After header needs. A token bucket is a few lines of arithmetic.
@dataclass
class TokenBucket:
    """``burst`` requests at once, refilled at ``rate`` per second."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token: 0.0 when there was one, else the seconds until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


MAX_BUCKETS = 100_000


class Limiter(Protocol):
    """What the routes need of a rate limiter: this module's in-process one, or the Redis one shared
    by every replica (api/redis_limits.py)."""

    def waiting(self, key_id: str) -> float: ...

    def retry_after(self, key_id: str) -> float: ...


def build_limiter(
    name: str, rate: float, burst: int, redis_url: str | None, redis_prefix: str
) -> Limiter:
    """Buckets in Redis when ``redis_url`` is set (all replicas share them), else in this process."""
    if redis_url:
        from api.redis_limits import RedisRateLimiter

        return RedisRateLimiter(redis_url, redis_prefix, name, rate, burst)
    return RateLimiter(rate, burst)


class RateLimiter:
    """One token bucket per API key (or per client address, for failed authentications); ``rate`` 0
    turns limiting off (e.g. for a load test)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}  # one per live key, so it stays small
        self._lock = threading.Lock()

    def waiting(self, key_id: str) -> float:
        """The seconds until ``key_id`` may make a request (0.0: now), without counting one."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                return 0.0
            tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def retry_after(self, key_id: str) -> float:
        """0.0 when ``key_id`` may make a request now (and counts it), else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:  # e.g. many client addresses: forget the refilled ones
                    self._buckets = {
                        key: old
                        for key, old in self._buckets.items()
                        if old.tokens + (now - old.updated) * self.rate < self.burst
                    }
                bucket = self._buckets[key_id] = TokenBucket(self.rate, self.burst, self.burst, now)
            return bucket.take(now)


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1 (Retry-After takes no fractions)."""
    return str(max(1, math.ceil(seconds)))


def check_question_length(question: str, limit: int) -> None:
    """A question over ``Settings.max_question_chars`` is a 422 naming the field, like any invalid field."""
    if len(question) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("body", "question"),
                    "msg": f"String should have at most {limit} characters",
                    "input": None,
                }
            ]
        )


class BodyTooLarge(HTTPException):
    """Raised while the body is read, so FastAPI passes it on (it turns other errors into a 400);
    api/errors.py answers it as 413 ``payload_too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit:,}-byte limit")


class BodySizeLimit:
    """Refuses a request body over its limit with 413 ``payload_too_large``: document uploads
    (``is_upload(method, path)``) may send ``upload_bytes``, every other request ``json_bytes``.

    A declared Content-Length over the limit is refused before the route runs; a body without one is
    counted as it arrives. Hand-written rather than Starlette's ``max_body_size``, which answers a
    declared length over the limit in plain text, replacing the JSON error every client expects.
    """

    def __init__(
        self, app: ASGIApp, json_bytes: int, upload_bytes: int, is_upload: Callable[[str, str], bool]
    ) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes
        self.is_upload = is_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if self.is_upload(scope["method"], scope["path"]) else self.json_bytes
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            from api.errors import PayloadTooLargeError, error_response

            response = error_response(413, PayloadTooLargeError.code, BodyTooLarge(limit).detail)
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, send)
