"""A real `answerdesk serve` on loopback with the real model, and Debian's Chromium driven by Playwright.

The browser is never downloaded: Playwright's bundled driver launches /usr/bin/chromium, which the
project's test setup installs (`make test`: the `chromium` step of the Makefile). Without it these
tests skip, saying so loudly. Screenshots of every screen go to var/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from retrieval.config import Settings
from tests.console.browser import Console, screenshot
from tests.helpers import REPO, issue_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
START_SECONDS = 600.0  # a busy 2-core machine (the rest of the suite beside) once took over 180 s

# What the server starts with, uploaded through the API as an editor would: English, Russian and
# Chinese documents of the default tenant, and one document of another tenant, "acme".
SEED_DEFAULT = ["en/faq-refunds.md", "en/faq-billing.md", "ru/faq-refunds.md", "zh/faq-refunds.md"]
ACME_DOCUMENT = """---
title: Acme warehouse badges
locale: en
type: faq
---
## How do I get a warehouse badge?
Acme staff collect warehouse badges from the Riverside security desk on Mondays.
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Console]:
    """`answerdesk serve` on a fresh data dir, seeded through the API, with a key per role; it
    stops after the module (1.4 GB of memory the rest of the suite should not carry)."""
    data_dir = tmp_path_factory.mktemp("console-data")
    settings = Settings(data_dir=data_dir, model_dir=model_dir)
    keys = {
        "admin": issue_key(settings, "admin", "default", "internal"),
        "editor": issue_key(settings, "editor", "default", "public"),
        "agent": issue_key(settings, "agent", "default", "public"),
        "reader": issue_key(settings, "reader", "default", "public"),
        "acme-editor": issue_key(settings, "editor", "acme", "public"),
    }
    # A profile an experiment can try (variant B): the former fixed-threshold decision.
    (data_dir / "profiles").mkdir()
    shutil.copy(REPO / "eval" / "profiles" / "threshold.toml", data_dir / "profiles" / "threshold.toml")
    port = _free_port()
    env = {
        **os.environ,
        "ANSWERDESK_DATA_DIR": str(data_dir),
        "ANSWERDESK_MODEL_DIR": str(model_dir),
        "ANSWERDESK_RATE_LIMIT_PER_SECOND": "0",
        "ANSWERDESK_FAILED_AUTH_PER_SECOND": "0",
        "ANSWERDESK_LOG_LEVEL": "WARNING",
    }
    log = (data_dir / "serve.log").open("w")
    command = [sys.executable, "-m", "answerdesk", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, preexec_fn=_die_with_parent
    )
    server = Console(f"http://127.0.0.1:{port}", keys)
    try:
        _wait_ready(server, process, data_dir)
        _seed(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _die_with_parent() -> None:
    """In the server's process: the kernel sends it SIGTERM when pytest dies, even by SIGKILL (an
    out-of-memory kill would otherwise leave a server holding a port and 1.4 GB)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_ready(server: Console, process: subprocess.Popen[bytes], data_dir: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"answerdesk serve exited: {(data_dir / 'serve.log').read_text()[-2000:]}")
        try:
            if httpx.get(server.url + "/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"answerdesk serve not ready after {START_SECONDS:.0f} s")


def _seed(server: Console) -> None:
    # Sent with their folder (en/…, ru/…): the ids keep it, as `answerdesk ingest` would.
    files = [("file", (name, (REPO / "data" / "kb" / name).read_bytes())) for name in SEED_DEFAULT]
    reply = server.api("admin", "POST", "/v1/documents", files=files)
    assert reply.status_code in (201, 202), reply.text
    if reply.status_code == 202:
        job = reply.json()
        while job["status"] not in ("succeeded", "failed"):
            time.sleep(0.3)
            job = server.api("admin", "GET", f"/v1/jobs/{job['job_id']}").json()
        failed = [result for result in job["results"] if result["outcome"] == "failed"]
        assert not failed, failed
    acme = server.api("acme-editor", "POST", "/v1/documents", files=[("file", ("badges.md", ACME_DOCUMENT.encode()))])
    assert acme.status_code == 201, acme.text


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = (
            f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing. Install Debian's chromium "
            "(`apt-get install chromium`, which `make test` does when run as root)."
        )
        warnings.warn(message, stacklevel=1)
        print(f"\n*** {message} ***\n", file=sys.stderr)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)  # the page fixture screenshots a failed test
    return report


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Any, console: Console) -> Iterator[Any]:
    """A fresh tab (its own session storage) that fails the test on any script error; a failed
    test leaves a screenshot of where it stopped (var/screenshots/FAILED-<test>.png)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.set_default_timeout(30_000)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        screenshot(tab, f"FAILED-{request.node.name}")
    context.close()
    assert not errors, errors
