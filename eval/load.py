"""A bounded load test of ``/v1/ask`` on loopback: throughput, latency percentiles, errors.

It creates a reader key with ``answerdesk keys create``, starts ``answerdesk serve`` on a free
127.0.0.1 port against an ingested data dir, waits for ``/readyz``, then runs N concurrent
clients (httpx, asyncio) for D seconds, each asking questions from data/eval one after another.
Any non-200 answer or transport error counts as an error, and the exit code is 1 when there was one.
The server's per-key rate limit is switched off unless ``--keep-rate-limit`` (one key would
otherwise be throttled long before the server is). The key is revoked and the server stopped at the end.

Example::

    python -m eval.load --clients 50 --duration 60        # or: make load-test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
QUESTION_FILES = ("sample_qa_faq.jsonl", "sample_qa_policy.jsonl")


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)  # successful requests
    errors: Counter[str] = field(default_factory=Counter)  # "HTTP 503", "ReadTimeout", …
    statuses: Counter[str] = field(default_factory=Counter)  # answered / abstained / escalated

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    def summary(self) -> str:
        lines = [
            f"requests   {self.requests} in {self.seconds:.1f} s: {self.requests / self.seconds:.1f} req/s",
            f"errors     {sum(self.errors.values())}" + (f" ({dict(self.errors)})" if self.errors else ""),
        ]
        if self.latencies_ms:
            p50, p95, p99 = np.percentile(self.latencies_ms, [50, 95, 99])
            worst = max(self.latencies_ms)
            lines.append(f"latency    p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms")
        lines.append(f"answers    {dict(self.statuses)}")
        return "\n".join(lines)


def load_questions(eval_dir: Path = REPO / "data" / "eval") -> list[str]:
    questions = []
    for name in QUESTION_FILES:
        for line in (eval_dir / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(str(json.loads(line)["question"]))
    return questions


async def run_clients(
    base_url: str, key: str, questions: Sequence[str], clients: int, duration: float, timeout: float
) -> LoadResult:
    """``clients`` loops asking ``questions`` in turn until ``duration`` seconds have passed."""
    result = LoadResult(seconds=duration)
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, limits=limits) as http:

        async def client(number: int) -> None:
            turn = number
            while time.monotonic() < deadline:
                question = questions[turn % len(questions)]
                turn += clients
                started = time.perf_counter()
                try:
                    response = await http.post("/v1/ask", json={"question": question})
                except httpx.HTTPError as exc:
                    result.errors[type(exc).__name__] += 1
                    continue
                if response.status_code != 200:
                    result.errors[f"HTTP {response.status_code}"] += 1
                    continue
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.statuses[str(response.json().get("status"))] += 1

        started = time.monotonic()
        await asyncio.gather(*(client(number) for number in range(clients)))
        result.seconds = time.monotonic() - started
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answerdesk() -> list[str]:
    return [sys.executable, "-m", "answerdesk"]


def create_key(env: dict[str, str]) -> tuple[str, str]:
    """A new reader key through the CLI: (key id, secret)."""
    done = subprocess.run(
        [*_answerdesk(), "keys", "create", "--role", "reader", "--name", "load-test"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    found = re.search(r"created key (\S+)", done.stderr)
    return (found.group(1) if found else ""), done.stdout.strip().splitlines()[-1]


def wait_ready(base_url: str, server: subprocess.Popen[bytes], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before it was ready")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"the server was not ready after {timeout:.0f} s")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load-test /v1/ask of a local `answerdesk serve`.")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--data-dir", type=Path, default=None, help="ingested data dir (default: the settings')")
    parser.add_argument("--port", type=int, default=0, help="port for the server (default: a free one)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for /readyz")
    parser.add_argument("--keep-rate-limit", action="store_true", help="keep the server's per-key rate limit")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    if args.data_dir is not None:
        env["ANSWERDESK_DATA_DIR"] = str(args.data_dir)
    if not args.keep_rate_limit:
        env["ANSWERDESK_RATE_LIMIT_PER_SECOND"] = "0"
    env["ANSWERDESK_LOG_LEVEL"] = "WARNING"  # one access line per request would dominate the log
    port = args.port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    questions = load_questions()
    key_id, key = create_key(env)
    log = tempfile.NamedTemporaryFile(prefix="answerdesk-load-", suffix=".log", delete=False)  # noqa: SIM115
    server = subprocess.Popen(
        [*_answerdesk(), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        wait_ready(base_url, server, args.ready_timeout)
        print(f"{args.clients} clients, {args.duration:.0f} s, {base_url}/v1/ask, {len(questions)} questions")
        result = asyncio.run(run_clients(base_url, key, questions, args.clients, args.duration, args.timeout))
    finally:
        stop(server)
        log.close()
        if key_id:
            subprocess.run([*_answerdesk(), "keys", "revoke", key_id], env=env, capture_output=True, timeout=120)
    print(result.summary())
    print(f"server log: {log.name}")
    return 1 if result.errors or not result.latencies_ms else 0


if __name__ == "__main__":
    sys.exit(main())
