"""``answerdesk eval import-audit``: turn audited answers, feedback and resolved escalations into eval cases.

Only cases whose label is known are written:

- an answer a customer marked helpful → its cited documents are the gold documents;
- an escalation the agent resolved naming ``document_ids`` → those are the gold documents;
- an escalation the agent resolved as ``kb_gap`` → the knowledge base cannot answer: ``should_abstain``.

Unhelpful answers with no resolution naming the right document are counted but not written (we know
the answer was wrong, not what is right). Questions are PII-redacted, since eval files get shared;
a follow-up is written as its stand-alone reading, because an eval case has no conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.redact import redact_text
from eval.cases import EvalCase
from support.store import AuditRecord, Escalation, Feedback

console = Console()


@dataclass
class ImportSummary:
    helpful: int = 0
    resolved_with_documents: int = 0
    resolved_as_gap: int = 0
    skipped_unhelpful: int = 0
    duplicates: int = 0

    @property
    def written(self) -> int:
        return self.helpful + self.resolved_with_documents + self.resolved_as_gap


def cases_from_audit(
    records: Sequence[AuditRecord], feedback: Sequence[Feedback], escalations: Sequence[Escalation]
) -> tuple[list[EvalCase], ImportSummary]:
    """Eval cases with known labels from the audit log (pure: no I/O)."""
    summary = ImportSummary()
    latest = {item.answer_id: item for item in sorted(feedback, key=lambda item: item.feedback_id)}
    by_answer = {record.answer_id: record for record in records}
    cases: list[EvalCase] = []
    seen: set[str] = set()

    def add(case_id: str, record_question: str, language: str, gold: list[str], abstain: bool) -> bool:
        question = redact_text(" ".join(record_question.split()))
        key = question.casefold()
        if key in seen:
            summary.duplicates += 1
            return False
        seen.add(key)
        cases.append(
            EvalCase(
                id=case_id, question=question, language=language, gold_document_ids=gold, should_abstain=abstain
            )
        )
        return True

    labelled_by_agent: set[str] = set()
    for escalation in escalations:
        resolution = escalation.resolution or {}
        record = by_answer.get(escalation.answer_id)
        question = record.query if record else str(escalation.record.get("question", ""))
        if not question.strip():
            continue
        documents = [str(document) for document in resolution.get("document_ids", [])]
        if documents:
            if add(f"audit-esc-{escalation.escalation_id[:12]}", question, escalation.language, documents, False):
                summary.resolved_with_documents += 1
            labelled_by_agent.add(escalation.answer_id)
        elif resolution.get("kb_gap"):
            if add(f"audit-gap-{escalation.escalation_id[:12]}", question, escalation.language, [], True):
                summary.resolved_as_gap += 1
            labelled_by_agent.add(escalation.answer_id)

    for answer_id, item in latest.items():
        record = by_answer.get(answer_id)
        if record is None or answer_id in labelled_by_agent:
            continue
        if item.helpful and record.status in ("answered", "escalated") and record.cited_documents:
            gold = list(dict.fromkeys(record.cited_documents))
            if add(f"audit-{answer_id[:12]}", record.query, record.language, gold, False):
                summary.helpful += 1
        elif not item.helpful:
            summary.skipped_unhelpful += 1
    return cases, summary


def write_cases(cases: Sequence[EvalCase], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(case.model_dump_json(exclude_none=True) + "\n" for case in cases), encoding="utf-8")


def import_audit_command(
    out: Annotated[Path, typer.Option(help="Eval JSONL file to write.")] = Path("eval-out/audit_cases.jsonl"),
    since: Annotated[str | None, typer.Option(help="Only answers from this UTC time on (ISO 8601).")] = None,
) -> None:
    """Turn audited answers with feedback, and resolved escalations, into eval cases (JSONL).

    Example: ``answerdesk eval import-audit --since 2025-01-01 --out data/eval/audit.jsonl``
    """
    from retrieval.config import get_settings
    from support.store import RESOLVED, SupportStore

    settings = get_settings()
    store = SupportStore(settings.support_database_url or settings.database_url)
    try:
        records = store.audit(since=since, limit=None)
        feedback = store.feedback()
        _, escalations = store.escalations(status=RESOLVED, limit=1_000_000)
    finally:
        store.close()
    if since:
        escalations = [escalation for escalation in escalations if escalation.created_at >= since]
    cases, summary = cases_from_audit(records, feedback, escalations)
    write_cases(cases, out)
    console.print(
        f"wrote {summary.written} cases to {out}: {summary.helpful} from helpful answers, "
        f"{summary.resolved_with_documents} from resolutions naming documents, {summary.resolved_as_gap} gaps "
        f"(should abstain); skipped {summary.skipped_unhelpful} unhelpful answers without a known right "
        f"document and {summary.duplicates} duplicate questions"
    )
