"""A bounded load test of ``/v1/ask`` on loopback: throughput, latency percentiles, errors.

It creates a reader key with ``answerdesk keys create``, starts ``answerdesk serve`` on a free
127.0.0.1 port against an ingested data dir, waits for ``/readyz``, then runs N concurrent
clients (httpx, asyncio) for D seconds, each asking questions from data/eval one after another.
Any non-200 answer or transport error counts as an error, and the exit code is 1 when there was one.
The server's per-key rate limit is switched off unless ``--keep-rate-limit`` (one key would
otherwise be throttled long before the server is). The key is revoked and the server stopped at the end.

With ``--replicas N`` it runs the production set-up instead (eval/fleet.py): a throwaway PostgreSQL
database (``answerdesk db upgrade``, ``answerdesk ingest data/kb``; dropped at the end), one Chroma
server and a private Redis, or the ones given by ``--database-url``, ``--chroma-urls`` and
``--redis-url``; N replicas, each with an empty data dir of its own, and client ``i`` sends its
questions to replica ``i mod N``.

Example::

    python -m eval.load --clients 50 --duration 60        # or: make load-test
    python -m eval.load --clients 50 --duration 60 --replicas 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
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

from eval.fleet import (
    ApiReplica,
    ChromaServer,
    RedisServer,
    Service,
    answerdesk_command,
    create_database,
    drop_database,
)

REPO = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
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
    base_urls: Sequence[str], key: str, questions: Sequence[str], clients: int, duration: float, timeout: float
) -> LoadResult:
    """``clients`` loops asking ``questions`` in turn until ``duration`` seconds have passed; client
    ``i`` asks the server ``base_urls[i % len(base_urls)]``."""
    result = LoadResult(seconds=duration)
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    pools = [
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, limits=limits) for base_url in base_urls
    ]
    try:

        async def client(number: int) -> None:
            http = pools[number % len(pools)]
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
    finally:
        for pool in pools:
            await pool.aclose()
    return result


def create_key(env: dict[str, str]) -> tuple[str, str]:
    """A new reader key through the CLI: (key id, secret)."""
    done = subprocess.run(
        answerdesk_command("keys", "create", "--role", "reader", "--name", "load-test"),
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    found = re.search(r"created key (\S+)", done.stderr)
    return (found.group(1) if found else ""), done.stdout.strip().splitlines()[-1]


def _run(env: dict[str, str], *args: str) -> None:
    """``answerdesk ARGS``, its output shown; a failure stops the load test."""
    started = time.monotonic()
    subprocess.run(answerdesk_command(*args), env=env, check=True, timeout=3600)
    print(f"answerdesk {' '.join(args)}: {time.monotonic() - started:.0f} s")


def _warm_up(urls: Sequence[str], key: str, questions: Sequence[str], each: int = 3) -> None:
    """A few questions per replica before the clocks start: their first answers load lazy parts."""
    headers = {"Authorization": f"Bearer {key}"}
    for url in urls:
        for question in questions[:each]:
            httpx.post(f"{url}/v1/ask", json={"question": question}, headers=headers, timeout=120)


def _load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def load_fleet(args: argparse.Namespace, env: dict[str, str], questions: Sequence[str]) -> LoadResult:
    """``args.replicas`` replicas on PostgreSQL, Chroma servers and Redis (started here unless given)."""
    root = Path(tempfile.mkdtemp(prefix="answerdesk-load-"))
    services: list[Service] = []
    chroma_urls, redis_url = args.chroma_urls, args.redis_url
    if not chroma_urls:
        chroma = ChromaServer(root / "chroma")
        services.append(chroma)
        chroma_urls = chroma.url
    if not redis_url:
        redis = RedisServer(root / "redis")
        services.append(redis)
        redis_url = redis.url
    for service in services:
        service.start(args.ready_timeout)
    database = args.database_url or create_database(args.postgres, prefix="answerdesk_load_")
    env |= {
        "ANSWERDESK_DATABASE_URL": database,
        "ANSWERDESK_CHROMA_URLS": chroma_urls,
        "ANSWERDESK_REDIS_URL": redis_url,
        "ANSWERDESK_DATA_DIR": str(root / "cli"),
    }
    replicas = [ApiReplica(f"api-{n + 1}", root / f"api-{n + 1}" / "data", env) for n in range(args.replicas)]
    key_id = ""
    try:
        if not args.database_url:  # a fresh database: its schema, then the sample KB
            _run(env, "db", "upgrade")
            _run(env, "ingest", str(REPO / "data" / "kb"), "--sync")
        key_id, key = create_key(env)
        for replica in replicas:
            replica.launch()
        for replica in replicas:
            replica.wait_ready(args.ready_timeout)
        urls = [replica.url for replica in replicas]
        _warm_up(urls, key, questions)
        print(f"{args.clients} clients, {args.duration:.0f} s, {len(urls)} replicas ({', '.join(urls)})")
        print(f"{len(questions)} questions, before the load: {_load_average()}")
        result = asyncio.run(run_clients(urls, key, questions, args.clients, args.duration, args.timeout))
        print(f"after the load: {_load_average()}")
        return result
    finally:
        for replica in replicas:
            replica.stop()
        if key_id:
            subprocess.run(answerdesk_command("keys", "revoke", key_id), env=env, capture_output=True, timeout=120)
        for service in services:
            service.stop()
        if not args.database_url:
            drop_database(args.postgres, database)
        for folder in root.iterdir():  # the logs stay
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
        print(f"logs: {root}")


def load_one(args: argparse.Namespace, env: dict[str, str], questions: Sequence[str]) -> LoadResult:
    """One ``answerdesk serve`` on the data dir of the settings (or ``--data-dir``)."""
    log = Path(tempfile.mkstemp(prefix="answerdesk-load-", suffix=".log")[1])
    data_dir = Path(env.get("ANSWERDESK_DATA_DIR", "var")).resolve()
    server = ApiReplica("serve", data_dir, env, port=args.port or None, log=log)
    key_id, key = create_key(env)
    try:
        server.start(args.ready_timeout)
        _warm_up([server.url], key, questions)
        print(f"{args.clients} clients, {args.duration:.0f} s, {server.url}/v1/ask, {len(questions)} questions")
        print(f"before the load: {_load_average()}")
        result = asyncio.run(run_clients([server.url], key, questions, args.clients, args.duration, args.timeout))
        print(f"after the load: {_load_average()}")
        return result
    finally:
        server.stop()
        if key_id:
            subprocess.run(answerdesk_command("keys", "revoke", key_id), env=env, capture_output=True, timeout=120)
        print(f"server log: {log}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load-test /v1/ask of a local `answerdesk serve`.")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--data-dir", type=Path, default=None, help="ingested data dir (default: the settings')")
    parser.add_argument("--port", type=int, default=0, help="port for the server (default: a free one)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for /readyz")
    parser.add_argument("--keep-rate-limit", action="store_true", help="keep the server's per-key rate limit")
    parser.add_argument(
        "--replicas", type=int, default=0,
        help="run N replicas on PostgreSQL, a Chroma server and Redis, clients spread over them (default: "
        "one server on the data dir)",
    )
    parser.add_argument("--postgres", default=POSTGRES, help="with --replicas: the server of a throwaway database")
    parser.add_argument("--database-url", help="with --replicas: an upgraded, ingested database to use instead")
    parser.add_argument("--chroma-urls", help="with --replicas: the Chroma servers of --database-url's vectors")
    parser.add_argument("--redis-url", help="with --replicas: a Redis to use instead of a private redis-server")
    args = parser.parse_args(argv)
    if args.database_url and not args.chroma_urls:
        parser.error("--database-url needs --chroma-urls (the vectors of its documents)")

    env = dict(os.environ)
    if args.data_dir is not None:
        env["ANSWERDESK_DATA_DIR"] = str(args.data_dir)
    if not args.keep_rate_limit:
        env["ANSWERDESK_RATE_LIMIT_PER_SECOND"] = "0"
    env["ANSWERDESK_LOG_LEVEL"] = "WARNING"  # one access line per request would dominate the log
    questions = load_questions()
    result = load_fleet(args, env, questions) if args.replicas else load_one(args, env, questions)
    print(result.summary())
    return 1 if result.errors or not result.latencies_ms else 0


if __name__ == "__main__":
    sys.exit(main())
