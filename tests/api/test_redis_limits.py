"""Rate limits shared in Redis (api/redis_limits.py) against a real Redis server: one key's burst
across two app instances is one bucket, and a Redis outage neither takes the API down nor needs a
restart to recover from."""

from __future__ import annotations

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


def test_a_redis_outage_lets_requests_through_and_limits_resume_when_it_is_back(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    settings = _settings(tmp_path, redis_url=private_redis.url, redis_prefix="outage-test")
    token = issue_key(settings, role="editor")
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        assert _burst([client], token, each=BURST + 1) == Counter({200: BURST, 429: 1})
        private_redis.kill()
        started = time.monotonic()
        assert _burst([client], token, each=3) == Counter({200: 3})  # not enforced, not failed
        assert time.monotonic() - started < 10  # each Redis call gives up within its timeout
        private_redis.start()  # empty again (nothing saved): a fresh bucket, enforced
        assert _burst([client], token, each=BURST + 1) == Counter({200: BURST, 429: 1})
