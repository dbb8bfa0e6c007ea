"""Webhook delivery from the durable outbox: signed, retried with exponential backoff, never lost.

Every attempt POSTs the stored body (JSON, UTF-8) with these headers:

- ``AnswerDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
- ``Idempotency-Key``: the same on every retry of one event; receivers deduplicate on it.
- ``AnswerDesk-Event``: ``escalation.created`` or ``escalation.resolved``.

Delivery is at-least-once: a message is marked delivered only after a 2xx, so a crash between the
receiver's 2xx and our bookkeeping resends it with the same idempotency key. A worker claims a
message with a lease before sending, so two workers (or processes) never send it at the same time.
Backoff state lives in the table, not in a sleeping thread, so it survives restarts; that is why
this is a small function here rather than tenacity, whose retry loops sleep in-process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from common.errors import AnswerDeskError
from support.store import OutboxMessage, SupportStore

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "AnswerDesk-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "AnswerDesk-Event"
DEFAULT_TOLERANCE_SECONDS = 300
# Client errors that retrying may fix; any other 4xx means the receiver refuses this body for good.
_RETRYABLE_4XX = frozenset({408, 409, 423, 425, 429})


class SignatureError(AnswerDeskError, ValueError):
    """A webhook signature that does not verify; the message says why."""

    code = "invalid_signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``AnswerDesk-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a received signature header; returns its timestamp or raises :class:`SignatureError`.

    Receivers should also drop an ``Idempotency-Key`` they have already processed: together with the
    timestamp window this makes a captured request useless for replay.
    """
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError) as exc:
        raise SignatureError("no timestamp in the signature header") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance window (replayed or clock skew)")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", [])):
        raise SignatureError("signature does not match the body")
    return timestamp


def backoff_delay(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, capped, with jitter in [½, 1]."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling * (0.5 + 0.5 * rng())


@dataclass
class DeliveryStats:
    """What one pass over the outbox did."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0


class OutboxDispatcher:
    """Sends due outbox messages (one public verb: :meth:`deliver_due`)."""

    def __init__(
        self,
        store: SupportStore,
        secret: str,
        *,
        timeout: float = 5.0,
        max_attempts: int = 10,
        backoff_base: float = 2.0,
        backoff_max: float = 900.0,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = store
        self.secret = secret
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.clock = clock
        self.transport = transport

    def deliver_due(self, limit: int = 50) -> DeliveryStats:
        """Try every message that is due now, once each."""
        stats = DeliveryStats()
        due = self.store.due_messages(self.clock(), limit)
        if not due:
            return stats
        with httpx.Client(timeout=self.timeout, transport=self.transport, follow_redirects=False) as client:
            for message in due:
                if not self.store.claim(message.message_id, self.clock(), lease_seconds=self.timeout * 2 + 1):
                    continue
                stats.attempted += 1
                outcome = self._attempt(client, message)
                setattr(stats, outcome, getattr(stats, outcome) + 1)
        return stats

    def _attempt(self, client: httpx.Client, message: OutboxMessage) -> str:
        attempts = message.attempts + 1
        body = message.body.encode("utf-8")
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body, int(self.clock())),
            IDEMPOTENCY_HEADER: message.idempotency_key,
            EVENT_HEADER: message.event,
            "user-agent": "AnswerDesk-Webhooks/1",
        }
        retry_after: float | None = None
        try:
            response = client.post(message.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.is_success:
                self.store.mark_delivered(message.message_id, attempts, self.clock())
                logger.info(
                    "delivered outbox message %d (%s) after %d attempt(s)", message.message_id, message.event, attempts
                )
                return "delivered"
            error = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX:
                self.store.mark_dead(message.message_id, attempts, error)
                logger.error("outbox message %d refused by the receiver (%s); not retried", message.message_id, error)
                return "dead"
            retry_after = _retry_after(response)
        if attempts >= self.max_attempts:
            self.store.mark_dead(message.message_id, attempts, error)
            logger.error("outbox message %d gave up after %d attempts: %s", message.message_id, attempts, error)
            return "dead"
        delay = backoff_delay(attempts, self.backoff_base, self.backoff_max)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.backoff_max)
        self.store.mark_retry(message.message_id, attempts, self.clock() + delay, error)
        logger.warning(
            "outbox message %d attempt %d failed (%s); retry in %.1fs", message.message_id, attempts, error, delay
        )
        return "retrying"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class DeliveryWorker:
    """A background thread that drains the outbox: woken when a message is added, else polling."""

    def __init__(self, dispatcher: OutboxDispatcher, poll_seconds: float = 5.0) -> None:
        self.dispatcher = dispatcher
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="answerdesk-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Deliver now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake() during the pass below triggers the next pass at once
            try:
                self.dispatcher.deliver_due()
            except Exception:  # the worker must outlive a bad pass (e.g. the database restarting)
                logger.exception("outbox delivery pass failed")
            self._wake.wait(self._sleep_seconds())

    def _sleep_seconds(self) -> float:
        try:
            due = self.dispatcher.store.next_due_at()
        except Exception:
            logger.exception("cannot read the outbox schedule")
            return self.poll_seconds
        if due is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.05, due - self.dispatcher.clock()))
