"""``answerdesk privacy``: erase a customer's data, and purge what is older than the retention period.

Examples::

    answerdesk privacy erase --customer-id cus_4711              # every tenant
    answerdesk privacy erase --customer-id cus_4711 --tenant acme
    answerdesk privacy erase --conversation 9f1c… --tenant acme
    ANSWERDESK_RETENTION_DAYS=90 answerdesk privacy purge        # run daily (cron, systemd timer)

What is erased, and what is kept, is described in docs/privacy.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from retrieval.config import Settings
    from support.store import Erasure, SupportStore

console = Console()
errors = Console(stderr=True)

privacy_app = typer.Typer(help="Personal data: erasure by customer or conversation, retention.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


def _report(what: str, erased: Erasure) -> None:
    from dataclasses import asdict

    counts = ", ".join(f"{table} {count}" for table, count in asdict(erased).items())
    console.print(f"{what}: deleted {counts}", highlight=False)


def _store() -> tuple[Settings, SupportStore]:
    from common.sql import private_dir
    from retrieval.config import get_settings
    from support.store import SupportStore

    settings = get_settings()
    private_dir(settings.data_dir)
    return settings, SupportStore(settings.support_database_url or settings.database_url)


@privacy_app.command("erase")
def erase(
    customer_id: Annotated[str | None, typer.Option(help="The customer id sent as customer.customer_id.")] = None,
    conversation: Annotated[str | None, typer.Option(help="One conversation's id.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only in this tenant (default: every tenant).")] = None,
) -> None:
    """Erase conversations with their turns, audit rows, feedback, escalations, FAQ candidates and
    undelivered webhook messages (every audience: the command line is the operator's)."""
    if not customer_id and not conversation:
        raise _fail("name what to erase: --customer-id or --conversation")
    _, store = _store()
    try:
        erased = store.erase(tenant=tenant, customer_id=customer_id or None, conversation_id=conversation or None)
    finally:
        store.close()
    _report("erased", erased)
    if not erased.conversations:
        errors.print("nothing matched (already erased, or another tenant?)", highlight=False)


@privacy_app.command("purge")
def purge(
    days: Annotated[
        int | None, typer.Option(min=1, help="Keep this many days (default: ANSWERDESK_RETENTION_DAYS).")
    ] = None,
) -> None:
    """Erase conversations idle for longer than the retention period, and older audit rows, feedback
    and webhook messages. Run it daily."""
    settings, store = _store()
    keep = days or settings.retention_days
    if keep is None:
        store.close()
        raise _fail("no retention period: set ANSWERDESK_RETENTION_DAYS or pass --days")
    cutoff = (datetime.now(UTC) - timedelta(days=keep)).isoformat(timespec="milliseconds")
    try:
        erased = store.purge(cutoff)
    finally:
        store.close()
    _report(f"purged data older than {keep} days (before {cutoff})", erased)
