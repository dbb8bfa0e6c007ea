"""Rate limits shared in Redis (api/redis_limits.py) against a real Redis server: one key's burst
across two app instances is one bucket, and a Redis outage, restart or hang neither takes the API
down (requests are let through, within the Redis timeouts) nor needs a restart to recover from."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from eval.fleet import RedisServer
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import bearer, issue_key, small_kb_settings
from tests.replica_server import private_redis_server

BURST = 4


def _settings(tmp_path: Path, **redis: object) -> Settings:
    # A slow refill (one request per 4 s, window 16 s) so a burst sent now cannot refill meanwhile.
    return small_kb_settings(tmp_path, rate_limit_per_second=0.25, rate_limit_burst=BURST, **redis)


def _burst(clients: list[TestClient], token: str, each: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    for _ in range(each):
        for client in clients:
            response = client.get("/v1/documents", headers=bearer(token))
            statuses[response.status_code] += 1
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert response.json()["error"]["code"] == "rate_limited"
    return statuses


def test_one_keys_burst_across_two_instances_is_one_bucket(tmp_path: Path, redis_settings: dict[str, str]) -> None:
    settings = _settings(tmp_path, **redis_settings)
    token = issue_key(settings, role="editor")
    with (
        TestClient(create_app(settings, embedder=HashingEmbedder())) as first,
        TestClient(create_app(settings, embedder=HashingEmbedder())) as second,
    ):
        assert _burst([first, second], token, each=BURST) == Counter({200: BURST, 429: BURST})


def test_without_redis_each_instance_has_its_own_bucket(tmp_path: Path) -> None:
    """The contrast: in-process buckets let each instance through a whole burst."""
    settings = _settings(tmp_path)
    token = issue_key(settings, role="editor")
    with (
        TestClient(create_app(settings, embedder=HashingEmbedder())) as first,
        TestClient(create_app(settings, embedder=HashingEmbedder())) as second,
    ):
        assert _burst([first, second], token, each=BURST) == Counter({200: 2 * BURST})


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = private_redis_server(tmp_path / "redis")
    yield server
    server.kill()


@pytest.fixture
def spent(tmp_path: Path, private_redis: RedisServer) -> Iterator[tuple[TestClient, str]]:
    """An app whose limits live in the private Redis, and a key whose burst was just spent there."""
    settings = _settings(tmp_path, redis_url=private_redis.url, redis_prefix="private")
    token = issue_key(settings, role="editor")
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        assert _burst([client], token, each=BURST + 1) == Counter({200: BURST, 429: 1})
        yield client, token


def test_a_redis_outage_lets_requests_through_and_limits_resume_when_it_is_back(
    spent: tuple[TestClient, str], private_redis: RedisServer
) -> None:
    client, token = spent
    private_redis.kill()
    started = time.monotonic()
    assert _burst([client], token, each=3) == Counter({200: 3})  # not enforced, not failed
    assert time.monotonic() - started < 10  # each Redis call gives up within its timeout
    private_redis.start(timeout=30)  # empty again (nothing saved): a fresh bucket, enforced
    assert _burst([client], token, each=BURST + 1) == Counter({200: BURST, 429: 1})


def test_a_redis_restart_between_two_requests_is_limited_from_the_first_request_after_it(
    spent: tuple[TestClient, str], private_redis: RedisServer
) -> None:
    client, token = spent
    private_redis.kill()
    private_redis.start(timeout=30)  # no request meanwhile: the pooled connections are stale
    # The first request after it already counts (redis-py's pool finds its connections closed and
    # opens new ones): one fresh bucket, enforced, nothing let through unlimited.
    assert _burst([client], token, each=BURST + 1) == Counter({200: BURST, 429: 1})


def test_a_redis_that_hangs_lets_requests_through_within_its_timeout_and_the_bucket_is_kept(
    spent: tuple[TestClient, str], private_redis: RedisServer
) -> None:
    client, token = spent
    os.kill(private_redis.pid, signal.SIGSTOP)  # accepts, never answers
    try:
        started = time.monotonic()
        assert _burst([client], token, each=2) == Counter({200: 2})  # fail open, as when it is down
        elapsed = time.monotonic() - started
    finally:
        os.kill(private_redis.pid, signal.SIGCONT)
    assert elapsed < 6, elapsed  # two Redis calls a request, each given up after REDIS_TIMEOUT_S (1 s)
    # Back: the bucket it kept is still spent, so the very next request is limited again.
    assert _burst([client], token, each=1) == Counter({429: 1})
