"""Fixtures for the support tests: a tiny knowledge base on the hashing embedder, and a real webhook
receiver on 127.0.0.1 that verifies signatures and deduplicates by idempotency key."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from support.outbox import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, SignatureError, verify
from tests.api.small_kb import FAQ, GUIDE, PROFILE

SECRET = "test-secret-do-not-use"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``condition`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.fixture(scope="session")
def fake_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knowledge-base folder (two documents)."""
    root = tmp_path_factory.mktemp("support-kb")
    (root / "en").mkdir()
    (root / "en" / "faq-refunds.md").write_text(FAQ, encoding="utf-8")
    (root / "en" / "guide-passwords.md").write_text(GUIDE, encoding="utf-8")
    return root


@pytest.fixture
def fake_settings(tmp_path: Path, fake_kb: Path) -> Settings:
    """Settings for a fresh data dir holding the tiny KB, ingested with the hashing embedder."""
    from ingest.pipeline import build_ingestor
    from retrieval.pipeline import build_components

    profile_path = tmp_path / "profile.toml"
    profile_path.write_text(PROFILE, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", profile_path=profile_path)
    embedder, store, registry = build_components(settings, HashingEmbedder())
    build_ingestor(settings, settings.load_profile(), embedder, store, registry).ingest([fake_kb])
    return settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Receiver:
    """A webhook receiver as a helpdesk would write one: verify, deduplicate, acknowledge."""

    port: int
    secret: str = SECRET
    requests: list[dict[str, Any]] = field(default_factory=list)  # every request, accepted or not
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key → body, once
    rejected: int = 0
    hang_first: bool = False  # hold the first request without answering (a crash mid-delivery)
    status: int = 200
    release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def received_per_key(self) -> Counter[str]:
        return Counter(request["key"] for request in self.requests)

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                key = self.headers.get(IDEMPOTENCY_HEADER, "")
                with receiver._lock:
                    first = not receiver.requests
                    receiver.requests.append({"key": key, "headers": dict(self.headers), "body": body})
                if receiver.hang_first and first:
                    receiver.release.wait(30)
                    return  # the sender has been killed; no response
                try:
                    verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER, ""))
                except SignatureError:
                    with receiver._lock:
                        receiver.rejected += 1
                    self._reply(401)
                    return
                with receiver._lock:
                    receiver.processed.setdefault(key, json.loads(body))  # a duplicate is acknowledged, not redone
                self._reply(receiver.status)

            def _reply(self, status: int) -> None:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver on a free port, not started: tests start it (or leave it down)."""
    instance = Receiver(free_port())
    yield instance
    instance.stop()
