"""A real Chroma server (``chroma run``, shipped in the chromadb package) on a free loopback port, for
tests that stop and start it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chroma_command() -> str | None:
    beside = Path(sys.executable).with_name("chroma")  # the venv's, even when it is not on PATH
    return str(beside) if beside.exists() else shutil.which("chroma")


class ChromaServer:
    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        command = chroma_command()
        assert command is not None, "the chroma command is missing (chromadb not installed?)"
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder.parent / f"chroma-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [command, "run", "--path", str(self.folder), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1):
                    return
            except OSError:
                assert self.process.poll() is None, f"chroma run exited ({self.folder.parent})"
                assert time.monotonic() < deadline, "chroma run did not answer in time"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class SilentServer:
    """A TCP server on a free loopback port that accepts connections and never answers (a hung
    Chroma server, or a firewall that black-holes replies); closing it drops every connection."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted.append(connection)  # held open, never read from or written to

    def __enter__(self) -> SilentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()
        self.thread.join(timeout=5)
