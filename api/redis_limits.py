"""Per-key rate limits shared by every replica, in Redis (``ANSWERDESK_REDIS_URL``), through the
``limits`` library; without a Redis URL each process keeps its own buckets (api/limits.py).

``limits`` has no token bucket, so the bucket's two numbers map onto a moving window: at most
``burst`` requests in any ``burst / rate`` seconds (rounded up to whole seconds). That keeps the
burst and the long-run rate, and the window is exact across replicas (one sorted set per key in
Redis, updated atomically by a Lua script).

When Redis does not answer, requests are let through and an error is logged (once a minute): a
limiter outage must not take the API down with it, and the next request after Redis is back is
limited again, without a restart.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

logger = logging.getLogger(__name__)

# Redis that does not answer costs a request at most this long per call.
REDIS_TIMEOUT_S = 1.0
_LOG_EVERY_S = 60.0


class RedisRateLimiter:
    """The :class:`api.limits.RateLimiter` interface over a moving window in Redis."""

    def __init__(self, url: str, prefix: str, name: str, rate: float, burst: int) -> None:
        self.rate = rate
        window = math.ceil(max(burst, 1) / rate) if rate > 0 else 1
        self.item: RateLimitItem = RateLimitItemPerSecond(max(burst, 1), window, namespace=name)
        self.storage = RedisStorage(
            url,
            key_prefix=prefix,
            wrap_exceptions=True,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
        self.limiter = MovingWindowRateLimiter(self.storage)
        self._logged_at = -_LOG_EVERY_S

    def waiting(self, key_id: str) -> float:
        """The seconds until ``key_id`` may make a request (0.0: now), without counting one."""
        if self.rate <= 0:
            return 0.0
        try:
            if self.limiter.test(self.item, key_id):
                return 0.0
            return self._until_reset(key_id)
        except StorageError as exc:
            self._unavailable(exc)
            return 0.0

    def retry_after(self, key_id: str) -> float:
        """0.0 when ``key_id`` may make a request now (and counts it), else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        try:
            if self.limiter.hit(self.item, key_id):
                return 0.0
            return self._until_reset(key_id)
        except StorageError as exc:
            self._unavailable(exc)
            return 0.0

    def _until_reset(self, key_id: str) -> float:
        # The oldest request in the window leaves it at reset_time (epoch seconds).
        return max(self.limiter.get_window_stats(self.item, key_id).reset_time - time.time(), 0.001)

    def _unavailable(self, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:
            self._logged_at = now
            logger.error("rate limits not enforced: Redis does not answer (%s)", exc.storage_error)
