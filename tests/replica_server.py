"""Real processes of a deployment for tests: API replicas (``answerdesk serve``), workers, Chroma
servers and a private Redis, on loopback (the processes themselves: eval/fleet.py, shared with the
load test). Each replica and worker gets a data dir of its own, so nothing it needs can come from
another's local disk; they share the database, the Chroma servers, Redis and the model dir.

A service that is not installed or not reachable skips the test loudly (tests/conftest.py), never
silently. :meth:`Fleet.logs` gives every process's log tail, for the failure report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eval.fleet import ApiReplica, RedisServer, Service, Worker, venv_command
from tests.conftest import service_unreachable


def require_command(service: str, command: str) -> None:
    if venv_command(command) is None:
        service_unreachable(service, f"the {command} command is not installed")


def private_redis_server(folder: Path) -> RedisServer:
    """A started ``redis-server`` of the test's own (stop and start it without disturbing other tests)."""
    if shutil.which("redis-server") is None:
        service_unreachable("Redis", "redis-server is not installed")
    server = RedisServer(folder)
    server.start(timeout=30)
    return server


class Fleet:
    """Replicas and workers sharing one set of settings (``env``), each in its own folder under ``root``."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.replicas: dict[str, ApiReplica] = {}
        self.workers: list[Worker] = []
        self.others: list[Service] = []  # Chroma servers, Redis: stopped last

    def add_replica(self, name: str) -> ApiReplica:
        """A replica, launched (``wait_ready`` it, or several at once)."""
        replica = self.replicas[name] = ApiReplica(name, self.root / name / "data", self.env)
        replica.launch()
        return replica

    def add_worker(self) -> Worker:
        name = f"worker-{len(self.workers) + 1}"
        worker = Worker(name, self.root / name / "data", self.env)
        worker.launch()
        self.workers.append(worker)
        return worker

    @property
    def worker(self) -> Worker:
        """The newest worker."""
        return self.workers[-1]

    def logs(self) -> str:
        everyone: list[Service] = [*self.replicas.values(), *self.workers, *self.others]
        return "\n".join(f"{service.name} (exit {service.returncode}):\n{service.log_tail()}" for service in everyone)

    def close(self) -> None:
        for service in [*self.replicas.values(), *self.workers, *self.others]:
            service.kill()


@contextmanager
def logs_on_failure(request: pytest.FixtureRequest, fleet: Fleet) -> Iterator[None]:
    """Print the fleet's logs after a test that failed (pytest shows them in its report)."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        print(fleet.logs())


def service_env(database_url: str, chroma_urls: str, redis_url: str, model_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of every replica and worker: the shared services, and nothing else of the test's."""
    return {
        **os.environ,
        "ANSWERDESK_DATABASE_URL": database_url,
        "ANSWERDESK_CHROMA_URLS": chroma_urls,
        "ANSWERDESK_REDIS_URL": redis_url,
        "ANSWERDESK_MODEL_DIR": str(model_dir),
        "ANSWERDESK_JOB_RUNNER": "auto",
        "ANSWERDESK_LOG_LEVEL": "WARNING",
        **extra,
    }

