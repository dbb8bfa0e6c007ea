"""Webhook delivery against a real HTTP receiver on 127.0.0.1: signatures, outage, restarts, duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from retrieval.pipeline import AnswerPipeline, build_components
from support.desk import SupportConfigError, SupportDesk, build_desk
from support.handoff import EscalationPayload
from support.outbox import OutboxDispatcher, SignatureError, backoff_delay, sign, verify
from support.store import DEAD, DELIVERED, PENDING, SupportStore
from tests.helpers import SECRET, Receiver, wait_until

REPO = Path(__file__).resolve().parents[2]

# Eight escalations: each language, each kind of trigger, and personal data to redact.
ESCALATING = [
    ("I want to talk to a real person, call me on +1 (212) 555-0100", None),
    ("My card 4242 4242 4242 4242 was charged twice, I will file a chargeback", None),
    ("Соедините меня с оператором, моя почта ivan@example.ru", None),
    ("Мой аккаунт взломали!", None),
    ("Lūdzu, savienojiet mani ar operatoru", None),
    ("Steidzami! Visa komanda nevar pieslēgties", None),
    ("我要转人工客服，电话13800138000", None),
    ("How do I export my data?", True),
]


def _settings(base: Settings, receiver: Receiver, **extra: object) -> Settings:
    values: dict[str, object] = {
        "webhook_urls": [receiver.url],
        "webhook_secret": SecretStr(SECRET),
        "webhook_timeout_seconds": 2.0,
        "webhook_backoff_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.2,
        "webhook_max_attempts": 100,
        "outbox_poll_seconds": 0.1,
        **extra,
    }
    return base.model_copy(update=values)


def _engine(settings: Settings) -> AnswerPipeline:
    embedder, store, registry = build_components(settings, HashingEmbedder())
    return AnswerPipeline(embedder, store, settings.load_profile(), registry)


def _escalate_all(desk: SupportDesk, engine: AnswerPipeline) -> list[str]:
    ids = []
    for question, force in ESCALATING:
        reply = desk.ask(engine, question, escalate=bool(force), customer={"email": "anna@example.com", "plan": "team"})
        assert reply.escalation_id, question
        ids.append(reply.escalation_id)
    return ids


# ---- signatures and backoff ----------------------------------------------------------------------


def test_signature_round_trip_and_tampering() -> None:
    body = b'{"event":"escalation.created"}'
    header = sign(SECRET, body, 1_700_000_000)
    assert verify(SECRET, body, header, now=1_700_000_010) == 1_700_000_000
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, body + b" ", header, now=1_700_000_010)
    with pytest.raises(SignatureError, match="does not match"):
        verify("other-secret", body, header, now=1_700_000_010)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, body, header, now=1_700_000_000 + 301)  # a replay after the window
    with pytest.raises(SignatureError, match="no timestamp"):
        verify(SECRET, body, "v1=abc")
    # A rotated secret: the receiver accepts any listed v1 signature.
    both = header + "," + sign("old", body, 1_700_000_000).split(",")[1]
    assert verify(SECRET, body, both, now=1_700_000_000)


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 1.0, 2.0), (2, 2.0, 4.0), (3, 4.0, 8.0), (10, 30.0, 60.0), (50, 30.0, 60.0)]
)
def test_backoff_is_exponential_capped_and_jittered(attempt: int, low: float, high: float) -> None:
    assert backoff_delay(attempt, 2.0, 60.0, rng=lambda: 0.0) == pytest.approx(low)
    assert backoff_delay(attempt, 2.0, 60.0, rng=lambda: 1.0) == pytest.approx(high)


def test_webhooks_need_a_secret(fake_settings: Settings) -> None:
    with pytest.raises(SupportConfigError, match="WEBHOOK_SECRET"):
        build_desk(fake_settings.model_copy(update={"webhook_urls": ["http://127.0.0.1:9/x"]}))
    with pytest.raises(SupportConfigError, match="http"):
        build_desk(fake_settings.model_copy(update={"webhook_urls": ["ftp://x"], "webhook_secret": SecretStr(SECRET)}))


# ---- against the receiver ------------------------------------------------------------------------


def test_delivered_signed_redacted_and_once(fake_settings: Settings, receiver: Receiver) -> None:
    receiver.start()
    settings = _settings(fake_settings, receiver)
    desk = build_desk(settings)
    try:
        ids = _escalate_all(desk, _engine(settings))
        assert wait_until(lambda: len(receiver.processed) == len(ids))
    finally:
        desk.close()
    assert receiver.rejected == 0
    assert set(receiver.received_per_key.values()) == {1}
    for key, body in receiver.processed.items():
        payload = EscalationPayload.model_validate(body)
        assert payload.idempotency_key == key == f"escalation.created:{payload.escalation_id}"
        assert payload.redacted and payload.customer == {"email": "[REDACTED]", "plan": "team"}
        text = json.dumps(body, ensure_ascii=False)
        for secret in ("555-0100", "4242 4242", "ivan@example.ru", "13800138000", "anna@example.com"):
            assert secret not in text
    assert {payload["language"] for payload in receiver.processed.values()} >= {"en", "ru", "lv", "zh"}


def test_receiver_refusing_the_body_is_not_retried_until_requeued(fake_settings: Settings, receiver: Receiver) -> None:
    receiver.status = 400
    receiver.start()
    settings = _settings(fake_settings, receiver)
    desk = build_desk(settings, start_worker=False)
    store = SupportStore(settings.database_url)
    try:
        desk.ask(_engine(settings), "I want to talk to a human")
        dispatcher = OutboxDispatcher(store, SECRET, timeout=2.0, backoff_base=0.01)
        assert dispatcher.deliver_due().dead == 1
        assert store.outbox_counts()[DEAD] == 1
        receiver.status = 200
        assert store.requeue_dead(0.0) == 1
        assert dispatcher.deliver_due().delivered == 1
    finally:
        desk.close()
        store.close()


@pytest.mark.slow
def test_outage_then_crash_mid_delivery_then_restart_delivers_each_escalation_exactly_once(
    fake_settings: Settings, receiver: Receiver
) -> None:
    """Receiver down → messages wait in the outbox → the API process stops → receiver up → a delivery
    process is killed while a request is in flight → a new process delivers everything; the receiver
    processes each escalation once, deduplicating the resent one by its idempotency key."""
    settings = _settings(fake_settings, receiver)
    store = SupportStore(settings.database_url)
    # 1. Receiver down: the API process escalates; its worker retries and fails.
    desk = build_desk(settings)
    ids = _escalate_all(desk, _engine(settings))
    assert wait_until(lambda: all(message.attempts >= 2 for message in store.outbox()))
    desk.close()  # the API process stops
    assert store.outbox_counts() == {PENDING: len(ids), DELIVERED: 0, DEAD: 0}
    failed_attempts = sum(message.attempts for message in store.outbox())

    # 2. Receiver up, but it holds the first request; the delivery process is killed meanwhile.
    receiver.hang_first = True
    receiver.start()
    env = {
        **os.environ,
        "ANSWERDESK_DATA_DIR": str(settings.data_dir),
        "ANSWERDESK_WEBHOOK_URLS": json.dumps([receiver.url]),
        "ANSWERDESK_WEBHOOK_SECRET": SECRET,
        "ANSWERDESK_WEBHOOK_TIMEOUT_SECONDS": "2",
        "ANSWERDESK_WEBHOOK_BACKOFF_SECONDS": "0.05",
        "ANSWERDESK_WEBHOOK_BACKOFF_MAX_SECONDS": "0.2",
    }
    command = [sys.executable, "-m", "answerdesk", "outbox", "deliver", "--until-empty", "--max-seconds", "60"]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: len(receiver.requests) >= 1, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    receiver.hang_first = False
    receiver.release.set()

    # 3. A new process delivers what is left (the held message once its lease expires).
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stdout + second.stderr
    counts = store.outbox_counts()
    per_key = receiver.received_per_key
    duplicates = sum(count - 1 for count in per_key.values())
    figures = {
        "escalations": len(ids),
        "failed_attempts_while_down": failed_attempts,
        "requests_received": len(receiver.requests),
        "processed_once": len(receiver.processed),
        "duplicates_received": duplicates,
        "outbox": counts,
    }
    print("delivery figures:", json.dumps(figures))
    store.close()
    assert counts == {PENDING: 0, DELIVERED: len(ids), DEAD: 0}
    assert set(receiver.processed) == {f"escalation.created:{escalation_id}" for escalation_id in ids}
    assert duplicates >= 1  # the request in flight when the process died was sent again …
    assert all(count <= 2 for count in per_key.values())  # … and only that one
    assert receiver.rejected == 0
