"""Rate limits shared in Redis (api/redis_limits.py) against a real Redis server: one key's burst
across two app instances is one bucket, and a Redis outage, restart or hang neither takes the API
down (requests are let through, within the Redis timeouts) nor needs a restart to recover from."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import bearer, issue_key, small_kb_settings

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own on a free loopback port, to stop and start at will."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, cwd=self.folder, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def restart(self) -> None:
        """Killed and started again on the same port: empty (nothing is saved), and every connection
        the clients had is dead."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        from tests.conftest import service_unreachable

        service_unreachable("Redis", "redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def spent(tmp_path: Path, private_redis: PrivateRedis) -> Iterator[tuple[TestClient, str]]:
    """An app whose limits live in the private Redis, and a key whose burst was just spent there."""
    settings = _settings(tmp_path, redis_url=private_redis.url, redis_prefix="private")
    token = issue_key(settings, role="editor")
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        assert _burst([client], token, each=BURST + 1) == Counter({200: BURST, 429: 1})
        yield client, token


def test_a_redis_outage_lets_requests_through_and_limits_resume_when_it_is_back(
    spent: tuple[TestClient, str], private_redis: PrivateRedis
) -> None:
    client, token = spent
    private_redis.stop()
    started = time.monotonic()
    assert _burst([client], token, each=3) == Counter({200: 3})  # not enforced, not failed
    assert time.monotonic() - started < 10  # each Redis call gives up within its timeout
    private_redis.start()  # empty again (nothing saved): a fresh bucket, enforced
    assert _burst([client], token, each=BURST + 1) == Counter({200: BURST, 429: 1})


def test_a_redis_restart_between_two_requests_is_limited_from_the_first_request_after_it(
    spent: tuple[TestClient, str], private_redis: PrivateRedis
) -> None:
    client, token = spent
    private_redis.restart()  # no request meanwhile: the pooled connections are stale
    # The first request after it already counts (redis-py's pool finds its connections closed and
    # opens new ones): one fresh bucket, enforced, nothing let through unlimited.
    assert _burst([client], token, each=BURST + 1) == Counter({200: BURST, 429: 1})


def test_a_redis_that_hangs_lets_requests_through_within_its_timeout_and_the_bucket_is_kept(
    spent: tuple[TestClient, str], private_redis: PrivateRedis
) -> None:
    client, token = spent
    assert private_redis.process is not None
    os.kill(private_redis.process.pid, signal.SIGSTOP)  # accepts, never answers
    try:
        started = time.monotonic()
        assert _burst([client], token, each=2) == Counter({200: 2})  # fail open, as when it is down
        elapsed = time.monotonic() - started
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    assert elapsed < 6, elapsed  # two Redis calls a request, each given up after REDIS_TIMEOUT_S (1 s)
    # Back: the bucket it kept is still spent, so the very next request is limited again.
    assert _burst([client], token, each=1) == Counter({429: 1})
