"""Helpers shared by the tests: API keys, a tiny knowledge base on the hashing embedder, waiting,
a webhook receiver, API error bodies, and which questions our eval sets hold.

One module, so a helper is written once; test modules import from here, never from each other.
"""

from __future__ import annotations

import atexit
import csv
import functools
import gzip
import io
import json
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import regex
from fastapi.testclient import TestClient

from access.keys import build_key_store
from eval.datasets import eval_data_dir
from eval.fleet import free_port as free_port  # re-exported: tests take it from here
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from support.outbox import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, SignatureError, verify

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------- keys


def issue_key(settings: Settings, role: str = "admin", tenant: str = "default", audience: str = "internal") -> str:
    """A new key in ``settings``' database (admin of the default tenant, sees internal documents)."""
    store = build_key_store(settings)
    try:
        return store.create(role, tenant, audience, name="test")[1]
    finally:
        store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unlimited(settings: Settings) -> Settings:
    """The same settings without rate limiting (tests send requests, and wrong keys, back to back)."""
    return settings.model_copy(update={"rate_limit_per_second": 0.0, "failed_auth_per_second": 0.0})


def api_error(response: Any, status: int) -> dict[str, Any]:
    """The ``error`` object of a JSON error response, after checking its status."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def ask(client: Any, question: str, **extra: Any) -> dict[str, Any]:
    """POST /v1/ask and the JSON body of its 200 response."""
    response = client.post("/v1/ask", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --------------------------------------------------------------- tenants at the API

# The hashing embedder's cosines are far below e5's, so the profile moves the threshold to match.
TENANCY_PROFILE = 'name = "hashing"\nscore_midpoint = 0.45\n'
ACME_FAQ = """---
title: Acme refunds
type: faq
---
## How long does an Acme refund take?
Acme refunds reach your card within 7 business days.
"""
GLOBEX_FAQ = """---
title: Globex shipping
type: faq
---
## How long does Globex shipping take?
Globex ships parcels within 3 business days.
"""
INTERNAL_FAQ = """---
title: Acme refund exceptions
type: faq
audience: internal
---
## When may agents refund after 90 days?
Agents may refund after 90 days only with approval from a team lead.
"""


class Tenant:
    """A client that always sends one tenant's key."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = bearer(token)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers=self.headers, **kwargs)

    def ask(self, question: str, **extra: Any) -> dict[str, Any]:
        response = self.request("POST", "/v1/ask", json={"question": question, **extra})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def upload(self, name: str, text: str) -> Any:
        return self.request("POST", "/v1/documents", files=[("file", (name, text.encode()))])


def assert_like_unknown(response: Any, unknown: Any, their_id: str, unknown_id: str) -> None:
    """``response`` (to another tenant's id) is the very response an unknown id gets."""
    assert response.status_code == unknown.status_code == 404, (response.text, unknown.text)
    assert response.json() == _with_id(unknown.json(), unknown_id, their_id)


def _with_id(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    error = dict(body["error"])
    error["message"] = error["message"].replace(old, new)
    return {"error": error}


# ------------------------------------------------------------------------ a tiny knowledge base

FAQ = """---
title: Refunds FAQ
locale: en
type: faq
---
## How long does a refund take?
Refunds reach your card within 5-10 business days after approval.

## Can I get a refund for an annual plan?
Annual plans can be refunded within 60 days of purchase, pro rata.
"""
GUIDE = """---
title: Passwords
locale: en
type: guide
---
# Resetting your password
Click Forgot password on the login page and follow the link we e-mail you.
"""
# The hashing embedder's cosines are far below e5's, so the profile decides on the dense score
# alone: answerability = sigmoid((score - 0.45) / 0.05).
PROFILE = (
    'name = "hashing"\nscore_midpoint = 0.45\n[answerability]\nfeatures = ["dense_top"]\nmeans = [0.45]\n'
    "scales = [0.05]\ncoefficients = [1.0]\nintercept = 0.0\n"
)


def write_kb(root: Path, documents: dict[str, str] | None = None) -> Path:
    """``documents`` (relative path → text; default: a refunds FAQ and a password guide) under ``root``."""
    for relative, text in (documents or {"en/faq-refunds.md": FAQ, "en/guide-passwords.md": GUIDE}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def small_kb_settings(tmp_path: Path, documents: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Settings for a fresh data dir holding ``documents``, ingested with the hashing embedder;
    per-key rate limiting is off (tests send requests back to back). ``overrides`` change settings
    that do not affect ingestion.

    The default two documents are ingested once per test process and the data dir copied: ingesting
    them anew took most of the time of the many API and support tests that use them.
    """
    profile_path = tmp_path / "profile.toml"
    profile_path.write_text(PROFILE, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", profile_path=profile_path, rate_limit_per_second=0.0)
    # The copy holds a SQLite registry and an embedded store: a database server (the PostgreSQL pass
    # sets ANSWERDESK_DATABASE_URL) or Chroma servers need the documents ingested into them.
    local = settings.database_url_setting is None and not (overrides.keys() & _WHERE_DOCUMENTS_LIVE)
    if documents is None and local:
        shutil.copytree(_default_kb_data(), settings.data_dir)
        return settings.model_copy(update=overrides)
    settings = settings.model_copy(update=overrides)
    _ingest(settings, write_kb(tmp_path / "kb", documents))
    return settings


_WHERE_DOCUMENTS_LIVE = {"database_url_setting", "support_database_url", "chroma_urls"}


@functools.cache
def _default_kb_data() -> Path:
    root = Path(tempfile.mkdtemp(prefix="answerdesk-small-kb-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    profile_path = root / "profile.toml"
    profile_path.write_text(PROFILE, encoding="utf-8")
    data = root / "data"  # always SQLite here, whatever the environment says
    settings = Settings(
        data_dir=data, profile_path=profile_path, database_url_setting=f"sqlite:///{data / 'answerdesk.db'}"
    )
    _ingest(settings, write_kb(root / "kb"))
    return settings.data_dir


def _ingest(settings: Settings, kb: Path) -> None:
    from ingest.pipeline import build_ingestor
    from retrieval.pipeline import build_components

    embedder, store, registry = build_components(settings, HashingEmbedder())
    try:
        build_ingestor(settings, settings.load_profile(), embedder, store, registry).ingest([kb])
    finally:
        store.reset()  # closed, so a copy of the data dir holds everything written
        registry.engine.dispose()


# ----------------------------------------- the sample KB (data/kb): questions for the real model

# Questions phrased unlike the articles, with the article stems (any language version) that answer them.
# The bench (`answerdesk eval run --suite sample`) measures rates over all of data/eval; these pin down
# end-to-end behaviour in each language.
ANSWERABLE = [
    ("How long does it take until a refund shows up on my card?", {"faq-refunds", "policy-refunds"}),
    ("I forgot my password and can't log in, what do I do?", {"faq-account-login", "faq-passwords-2fa"}),
    (
        "Do you offer a discount for non-profit organisations?",
        {"faq-nonprofit-education", "policy-nonprofit-and-education"},
    ),
    ("Сколько дней действует гарантия возврата денег для месячного тарифа?", {"faq-refunds", "policy-refunds"}),
    pytest.param(
        "Как включить двухфакторную аутентификацию?",
        # guide-getting-started's "7. Защитите аккаунт" says where to turn it on (Profile → Security).
        {"policy-security", "faq-passwords-2fa", "guide-two-factor-authentication", "guide-getting-started"},
        # The USE leg (use_weight 0.5) puts faq-account-login's "lost the authenticator phone" first;
        # with use_weight 0 it passes. Strict: this test tells when retrieval gets it right again.
        marks=pytest.mark.xfail(strict=True, reason="USE leg ranks the lost-2FA-phone answer first"),
    ),
    ("Kā es varu atcelt abonementu?", {"faq-cancellation", "guide-managing-your-subscription"}),
    pytest.param(
        "Kāda ir jūsu SLA pieejamības garantija Business plānam?",
        {"policy-sla", "faq-support-sla"},
        # The answer is a table row ("Business | 99,9%") whose sentence matches less well than the
        # pricing FAQ's "Business – 16 EUR …", so the answerability model (0.33) abstains; the English
        # question answers at 0.98. Strict: this test tells when evidence learns to read tables.
        marks=pytest.mark.xfail(strict=True, reason="abstains: the answering table row scores below another sentence"),
    ),
    ("年度套餐可以退款吗？", {"policy-refunds", "faq-refunds"}),
    ("忘记密码怎么办？", {"faq-account-login", "faq-passwords-2fa"}),
]
UNANSWERABLE = [
    "Do you have an on-premise version we can host ourselves?",
    "Is Tasklane HIPAA compliant and will you sign a BAA?",
    "Есть ли у вас партнёрская программа для реселлеров?",
    "Есть ли у вас сертификат FedRAMP?",
    "Vai jums ir Apple Watch lietotne?",
    "Vai jūs piedāvājat partneru programmu tālākpārdevējiem?",
    "你们的办公室招聘实习生吗？",
    pytest.param(
        "你们有 FedRAMP 认证吗？",
        # Abstained after the refit for cross-lingual top hits, a near-miss: since issue #16 parses
        # Markdown as CommonMark, a list right after a paragraph ("There are four plans:\n- Free …",
        # faq-plans-pricing, faq-support-sla) is list items instead of one glued paragraph, and this
        # question now answers with en/faq-security's SOC 2 / ISO sentences. The dev set does not move
        # (eval compare old vs new parser: no clear difference on any metric). Strict: tells when it abstains.
        marks=pytest.mark.xfail(strict=True, reason="answers from the SOC 2 / ISO sentences since lists are split"),
    ),
]


# ---------------------------------------------------------------------- waiting and webhooks

SECRET = "test-secret-do-not-use"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``condition`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


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


# ----------------------------------------------------------------------- eval-set questions

_NOT_WORD = regex.compile(r"[^\p{L}\p{N}]+")


def normalise(text: str) -> str:
    """Case, punctuation and spacing do not make a question new."""
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if len(value) <= 500:  # questions and utterances, not passages
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def eval_strings(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    name = path.name.removesuffix(".gz")
    with opener(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    if name.endswith(".jsonl"):
        for line in text.splitlines():
            if line.strip():
                yield from _strings(json.loads(line))
    elif name.endswith(".json"):
        try:
            yield from _strings(json.loads(text))
        except json.JSONDecodeError:  # some ".json" files hold one object a line
            for line in text.splitlines():
                if line.strip():
                    yield from _strings(json.loads(line))
    elif name.endswith((".csv", ".tsv")):
        for row in csv.reader(io.StringIO(text), delimiter="\t" if name.endswith(".tsv") else ","):
            yield from (cell for cell in row if len(cell) <= 500)


def dev_and_test_questions() -> set[str]:
    """Every question of our dev set (data/eval) and test set (data/test), normalised."""
    files = sorted((REPO / "data" / "eval").glob("*.jsonl")) + sorted((REPO / "data" / "test").glob("*.jsonl"))
    return {normalise(text) for path in files for text in eval_strings(path)} - {""}


def public_eval_questions() -> set[str]:
    """Every short string (questions, utterances) of the public eval sets in ../shared/data, normalised;
    empty when that data is absent."""
    root = eval_data_dir(Settings())
    sets = [folder for folder in sorted(root.glob("*")) if folder.is_dir() and folder.name != "train"]
    suffixes = (".json", ".jsonl", ".csv", ".tsv", ".json.gz", ".jsonl.gz")
    files = [path for folder in sets for path in folder.rglob("*") if path.name.endswith(suffixes)]
    return {normalise(text) for path in files for text in eval_strings(path)} - {""}
