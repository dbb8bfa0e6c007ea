"""The handoff: escalated replies keep the answer's shape; docs/webhooks.md documents the real payload
and a signature check that works."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from retrieval.records import Answer, Citation, Status
from support.handoff import EscalationPayload, escalated_answer, offer_escalation
from support.outbox import sign

WEBHOOKS_DOC = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text(encoding="utf-8")


def _answer(status: Status, language: str = "ru") -> Answer:
    citation = Citation(
        document_id="ru/faq-refunds", title="t", section="s", chunk_id="c", quote="q", score=0.9, source="",
        language="ru",
    )
    return Answer(
        answer_id="a1",
        status=status,
        answer="Деньги вернутся за 5–10 дней. [1]",
        citations=[citation] if status == Status.ANSWERED else [],
        confidence=0.9,
        reasons=["confident_match: x"],
        language=language,
        disclosure="d",
    )


def test_escalated_reply_keeps_a_confident_answer_under_the_handoff_note() -> None:
    reply = escalated_answer(_answer(Status.ANSWERED), ["customer_requested_human: asked"])
    assert reply.status == Status.ESCALATED and reply.answer_id == "a1"
    assert reply.answer.startswith("Я передал этот разговор") and reply.answer.endswith("[1]")
    assert reply.citations and str(reply.reasons[0]) == "customer_requested_human: asked"
    abstained = escalated_answer(_answer(Status.ABSTAINED, "zh"), ["urgent: x"])
    assert abstained.citations == [] and abstained.answer.startswith("我已将此对话转交")


def test_offer_is_in_the_question_language() -> None:
    assert "просто попросите" in offer_escalation(_answer(Status.ABSTAINED)).answer


def test_documented_schema_is_the_payload_schema() -> None:
    block = WEBHOOKS_DOC.split("<!-- escalation-schema:start -->", 1)[1].split("<!-- escalation-schema:end -->", 1)[0]
    documented = json.loads(block.strip().removeprefix("```json").removesuffix("```"))
    assert documented == EscalationPayload.model_json_schema()


def test_documented_signature_check_accepts_our_signature_and_rejects_a_forgery() -> None:
    code = re.search(r"```python\n(import hashlib, hmac, time.*?)```", WEBHOOKS_DOC, re.DOTALL)
    assert code, "docs/webhooks.md's verify() example is missing"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # the documented receiver code, as a helpdesk would paste it
    body = b'{"event":"escalation.created"}'
    header = sign("s3cret", body, int(time.time()))
    assert namespace["verify"](b"s3cret", body, header)
    assert not namespace["verify"](b"s3cret", body + b"x", header)
    assert not namespace["verify"](b"s3cret", body, sign("s3cret", body, int(time.time()) - 1000))
