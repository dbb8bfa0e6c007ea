"""Chroma servers for tests: the real one (``chroma run``, eval/fleet.py's ChromaServer, on a free
loopback port, to kill and start again) and a silent one that accepts connections and never answers."""

from __future__ import annotations

import socket
import threading

from eval.fleet import ChromaServer, venv_command

__all__ = ["ChromaServer", "SilentServer", "chroma_command"]


def chroma_command() -> str | None:
    return venv_command("chroma")


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
