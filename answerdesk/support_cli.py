"""Support commands: ``audit``, ``report gaps|triage``, ``escalations …`` and ``outbox …``.

Examples::

    answerdesk audit --status abstained --since 2025-06-01
    answerdesk report gaps --html reports/gaps.html
    answerdesk report triage data/eval/triage_labelled.jsonl
    answerdesk escalations list --status open --reason sensitive_topic
    answerdesk escalations schema
    answerdesk outbox deliver --until-empty
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from retrieval.config import Settings
    from support.store import SupportStore

console = Console()
errors = Console(stderr=True)

report_app = typer.Typer(help="Reports for editors: knowledge-base gaps, triage accuracy.", no_args_is_help=True)
escalations_app = typer.Typer(help="Escalations handed to people.", no_args_is_help=True)
outbox_app = typer.Typer(help="The webhook outbox: status, delivery, retries.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the support commands to the main ``answerdesk`` app."""
    app.command("audit")(audit)
    app.add_typer(report_app, name="report")
    app.add_typer(escalations_app, name="escalations")
    app.add_typer(outbox_app, name="outbox")


def _store() -> tuple[Settings, SupportStore]:
    from common.sql import private_dir
    from retrieval.config import get_settings
    from support.store import SupportStore

    settings = get_settings()
    private_dir(settings.data_dir)
    return settings, SupportStore(settings.support_database_url or settings.database_url)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


# ---- audit ---------------------------------------------------------------------------------------


def audit(
    status: Annotated[list[str] | None, typer.Option(help="answered, abstained or escalated (repeatable).")] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code.")] = None,
    conversation: Annotated[str | None, typer.Option(help="One conversation's answers.")] = None,
    since: Annotated[str | None, typer.Option(help="From this UTC time on (ISO 8601, e.g. 2025-06-01).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, every field.")] = False,
    full: Annotated[bool, typer.Option(help="Show questions unredacted.")] = False,
) -> None:
    """Query the audit log: answers with retrieved chunks and scores, status, confidence, profile, latency."""
    from dataclasses import asdict

    from common.redact import redact_text

    allowed = {"answered", "abstained", "escalated"}
    unknown = sorted(set(status or []) - allowed)
    if unknown:
        raise _fail(f"unknown status {unknown[0]!r}; choose from {', '.join(sorted(allowed))}")
    _, store = _store()
    try:
        records = store.audit(
            statuses=status or (), language=language, conversation_id=conversation, since=since, limit=limit
        )
    finally:
        store.close()
    show = (lambda text: text) if full else redact_text
    if as_json:
        for record in records:
            row = asdict(record)
            row["question"], row["query"] = show(record.question), show(record.query)
            print(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title=f"audit log ({len(records)} answers, newest first)")
    for column in ("time (UTC)", "answer id", "status", "conf.", "lang", "ms", "profile", "question", "top chunks"):
        table.add_column(column, overflow="fold")
    for record in records:
        chunks = "\n".join(f"{item['chunk_id']} {item['score']:.3f}" for item in record.retrieved[:3])
        table.add_row(
            record.created_at[:19].replace("T", " "),
            record.answer_id[:12],
            record.status,
            f"{record.confidence:.2f}",
            record.language,
            f"{record.latency_ms:.0f}",
            record.profile,
            show(record.question),
            chunks,
        )
    console.print(table)


# ---- reports -------------------------------------------------------------------------------------


@report_app.command("gaps")
def report_gaps(
    since: Annotated[str | None, typer.Option(help="From this UTC time on (ISO 8601).")] = None,
    html: Annotated[Path | None, typer.Option(help="HTML page to write (<data dir>/reports/gaps.html).")] = None,
    distance: Annotated[float, typer.Option(min=0.01, max=1.0, help="Max average cosine distance in a cluster.")] = (
        0.14
    ),
    examples: Annotated[int, typer.Option(min=1, max=20, help="Example questions per cluster.")] = 3,
    limit: Annotated[int, typer.Option(min=1, help="At most this many recent answers are read.")] = 5000,
) -> None:
    """Cluster abstained and escalated questions: count, examples in their languages, nearest document."""
    from retrieval.pipeline import build_components
    from support.gaps import gap_clusters, render_html

    settings, store = _store()
    try:
        records = store.audit(statuses=("abstained", "escalated"), since=since, limit=limit)
    finally:
        store.close()
    embedder, chunks, registry = build_components(settings)
    clusters = gap_clusters(records, embedder, chunks, registry, max_distance=distance, examples=examples)
    table = Table(title=f"knowledge-base gaps: {sum(c.size for c in clusters)} unanswered questions")
    for column in ("#", "count", "languages", "example questions", "nearest document (score)"):
        table.add_column(column, overflow="fold")
    for number, cluster in enumerate(clusters, 1):
        nearest = (
            f"{cluster.nearest.title} ({cluster.nearest.document_id}, {cluster.nearest.score:.3f})"
            if cluster.nearest
            else "-"
        )
        table.add_row(
            str(number),
            str(cluster.size),
            ", ".join(f"{language} {count}" for language, count in cluster.languages.items()),
            "\n".join(f"[{language}] {question}" for language, question in cluster.examples),
            nearest,
        )
    console.print(table, markup=False)
    target = html or settings.data_dir / "reports" / "gaps.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    subtitle = f"{len(clusters)} clusters" + (f" since {since}" if since else "")
    target.write_text(render_html(clusters, subtitle=subtitle), encoding="utf-8")
    console.print(f"wrote {target}")


@report_app.command("triage")
def report_triage(
    files: Annotated[list[Path], typer.Argument(help="Labelled JSONL: {id, language, text, expected: [codes]}.")],
) -> None:
    """Triage accuracy on labelled messages: escalate-or-not and exact reason set, per language."""
    from support.triage import build_triage, triage_label

    triage = build_triage()
    totals: dict[str, list[int]] = {}
    misses = []
    for path in files:
        try:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as exc:
            raise _fail(f"{path}: {exc}") from exc
        for row in rows:
            got = sorted({triage_label(trigger) for trigger in triage.detect(row["text"])})
            expected = sorted(row["expected"])
            counts = totals.setdefault(row["language"], [0, 0, 0])
            counts[0] += 1
            counts[1] += bool(got) == bool(expected)
            counts[2] += got == expected
            if got != expected:
                misses.append((row["id"], expected, got))
    table = Table(title="triage accuracy")
    for column in ("language", "messages", "escalate-or-not", "exact reasons"):
        table.add_column(column, justify="right")
    overall = [sum(values[i] for values in totals.values()) for i in range(3)]
    for language, (count, binary, exact) in [*sorted(totals.items()), ("all", overall)]:
        table.add_row(language, str(count), f"{binary / max(count, 1):.3f}", f"{exact / max(count, 1):.3f}")
    console.print(table)
    for case_id, expected, got in misses:
        console.print(f"  {case_id}: expected {expected}, got {got}", markup=False)


# ---- escalations ---------------------------------------------------------------------------------


@escalations_app.command("list")
def escalations_list(
    status: Annotated[str | None, typer.Option(help="open or resolved.")] = None,
    reason: Annotated[str | None, typer.Option(help="A reason code, e.g. sensitive_topic.")] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """Escalations, newest first (questions redacted)."""
    if status not in (None, "open", "resolved"):
        raise _fail("--status must be open or resolved")
    _, store = _store()
    try:
        total, rows = store.escalations(status=status, reason=reason, language=language, limit=limit)
    finally:
        store.close()
    table = Table(title=f"escalations ({len(rows)} of {total})")
    for column in ("created (UTC)", "id", "status", "lang", "reasons", "question"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.created_at[:19].replace("T", " "),
            row.escalation_id,
            row.status,
            row.language,
            ", ".join(row.reason_codes),
            str(row.redacted.get("question", "")),
        )
    console.print(table, markup=False)


@escalations_app.command("show")
def escalations_show(
    escalation_id: Annotated[str, typer.Argument(help="The escalation's id.")],
    full: Annotated[bool, typer.Option(help="Unredacted record (personal data).")] = False,
) -> None:
    """One escalation's handoff record as JSON."""
    from support.store import EscalationNotFoundError

    _, store = _store()
    try:
        row = store.escalation(escalation_id)
    except EscalationNotFoundError as exc:
        raise _fail(f"no escalation {escalation_id!r}") from exc
    finally:
        store.close()
    record: dict[str, Any] = row.record if full else row.redacted
    print(json.dumps({**record, "status": row.status, "resolution": row.resolution}, ensure_ascii=False, indent=2))


@escalations_app.command("schema")
def escalations_schema() -> None:
    """JSON schemas of the webhook bodies (escalation.created, escalation.resolved)."""
    from support.handoff import payload_schemas

    print(json.dumps(payload_schemas(), ensure_ascii=False, indent=2))


# ---- outbox --------------------------------------------------------------------------------------


@outbox_app.command("status")
def outbox_status() -> None:
    """How many webhook messages are pending, delivered and dead; the latest failures."""
    _, store = _store()
    try:
        counts = store.outbox_counts()
        failing = [message for message in store.outbox(limit=200) if message.last_error][:10]
    finally:
        store.close()
    console.print("  ".join(f"{status}: {count}" for status, count in counts.items()))
    for message in failing:
        console.print(
            f"  #{message.message_id} {message.status} {message.event} → {message.url}: "
            f"{message.attempts} attempt(s), last error {message.last_error}",
            markup=False,
        )


@outbox_app.command("deliver")
def outbox_deliver(
    until_empty: Annotated[bool, typer.Option(help="Keep going until nothing is pending (waiting for retries).")] = (
        False
    ),
    max_seconds: Annotated[float, typer.Option(min=0, help="Give up waiting after this long.")] = 300.0,
) -> None:
    """Deliver due webhook messages now (the API server does this in the background)."""
    from support.desk import SupportConfigError, build_dispatcher

    settings, store = _store()
    try:
        dispatcher = build_dispatcher(settings, store)
    except SupportConfigError as exc:
        raise _fail(str(exc)) from exc
    if dispatcher is None:
        raise _fail("no webhooks configured (ANSWERDESK_WEBHOOK_URLS)")
    deadline = time.monotonic() + max_seconds
    delivered = attempted = 0
    try:
        while True:
            stats = dispatcher.deliver_due()
            delivered += stats.delivered
            attempted += stats.attempted
            next_due = store.next_due_at()
            if not until_empty or next_due is None or time.monotonic() >= deadline:
                break
            time.sleep(min(max(0.05, next_due - time.time()), max(0.0, deadline - time.monotonic()), 5.0))
        counts = store.outbox_counts()
    finally:
        store.close()
    summary = ", ".join(f"{status} {count}" for status, count in counts.items())
    console.print(f"{attempted} attempt(s), {delivered} delivered; now {summary}")
    if until_empty and counts["pending"]:
        raise typer.Exit(1)


@outbox_app.command("retry-dead")
def outbox_retry_dead() -> None:
    """Put messages that gave up (or that a receiver refused) back in the queue."""
    _, store = _store()
    try:
        count = store.requeue_dead(time.time())
    finally:
        store.close()
    console.print(f"{count} message(s) queued again")
