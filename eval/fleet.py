"""The processes of a deployment, started on loopback for the load test (eval/load.py) and the replica
tests (tests/replica_server.py): ``answerdesk serve`` replicas, ``answerdesk worker``, ``chroma run``
and a private ``redis-server``. Each is a subprocess with a log file of its own, waited for until it
answers, and stopped (SIGTERM) or killed (SIGKILL) at will; a stopped one starts again on the same
port. Every child gets SIGTERM from the kernel when the process that started it dies, even by
SIGKILL, so none is left holding a port and a model's memory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parents[1]
LOG_TAIL_CHARS = 4000


class ServiceError(RuntimeError):
    """A process that exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answerdesk_command(*args: str) -> list[str]:
    """``answerdesk ARGS`` with this interpreter (the venv's, even when its bin is not on PATH)."""
    return [sys.executable, "-m", "answerdesk", *args]


def venv_command(name: str) -> str | None:
    """A console script of this interpreter's venv (``chroma``), else the one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def _die_with_parent() -> None:
    """In the child: the kernel sends it SIGTERM when its parent dies (Linux's PR_SET_PDEATHSIG)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM (a clean stop: uvicorn finishes its requests, a worker its file), SIGKILL after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


class Service:
    """One process of the deployment; subclasses say how to tell it answers (:meth:`answers`)."""

    def __init__(self, name: str, command: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.name, self.command, self.log = name, command, log
        self.env = dict(env if env is not None else os.environ)
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process without waiting for it (start several, then :meth:`wait_ready` each)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def answers(self) -> bool:
        return True

    def wait_ready(self, timeout: float = 300.0, interval: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if not self.running:
                raise ServiceError(f"{self.name} exited with {self.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} did not answer within {timeout:.0f} s\n{self.log_tail()}")
            time.sleep(interval)

    def start(self, timeout: float = 300.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def stop(self, timeout: float = 20.0) -> int | None:
        """A clean stop (SIGTERM); its exit code."""
        return stop_process(self.process, timeout) if self.process is not None else None

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost machine would stop it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            return f"--- {self.log} (last {chars} characters) ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return f"--- {self.log}: no log ---"


def _answers_http(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


class ApiReplica(Service):
    """``answerdesk serve`` on a free loopback port with ``data_dir`` of its own; ready when ``/readyz`` is 200."""

    def __init__(
        self, name: str, data_dir: Path, env: Mapping[str, str], port: int | None = None, log: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = answerdesk_command("serve", "--host", "127.0.0.1", "--port", str(self.port))
        log = log or data_dir.parent / f"{name}.log"
        super().__init__(name, command, log, {**env, "ANSWERDESK_DATA_DIR": str(data_dir)})

    def answers(self) -> bool:
        return _answers_http(f"{self.url}/readyz")


class Worker(Service):
    """``answerdesk worker`` with ``data_dir`` of its own (it has no port: ready once started)."""

    def __init__(self, name: str, data_dir: Path, env: Mapping[str, str]) -> None:
        command = answerdesk_command("worker")
        super().__init__(name, command, data_dir.parent / f"{name}.log", {**env, "ANSWERDESK_DATA_DIR": str(data_dir)})


class ChromaServer(Service):
    """``chroma run`` (shipped in the chromadb package) keeping its data in ``folder``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        command = venv_command("chroma")
        assert command is not None, "the chroma command is missing (chromadb not installed?)"
        self.folder, self.port = folder, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            f"chroma-{self.port}",
            [command, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(self.port)],
            folder.parent / f"{folder.name}.log",
            {**os.environ, "ANONYMIZED_TELEMETRY": "False", "RUST_LOG": "warn"},  # not a line per request
        )

    def answers(self) -> bool:
        return _answers_http(f"{self.url}/api/v2/heartbeat")


class RedisServer(Service):
    """A ``redis-server`` of its own on a free loopback port, keeping nothing on disk (a restart empties it)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        folder.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(folder)]
        super().__init__(f"redis-{self.port}", command, folder / f"redis-{self.port}.log")

    def answers(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


# ----------------------------------------------------------------- a throwaway PostgreSQL database


def create_database(admin_url: str, prefix: str = "answerdesk_") -> str:
    """A new, empty database with a random name on ``admin_url``'s server; returns its URL."""
    name = f"{prefix}{secrets.token_hex(6)}"
    _run_as_admin(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    _run_as_admin(admin_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def admin_engine(url: str) -> Engine:
    """An engine whose statements run outside a transaction (CREATE/DROP DATABASE cannot run in one)."""
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


def _run_as_admin(admin_url: str, statement: str) -> None:
    admin = admin_engine(admin_url)
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()
