"""``answerdesk keys``: create, list and revoke API keys; ``bootstrap`` the local admin key.

Examples::

    answerdesk keys create --role reader --tenant default --name help-widget
    answerdesk keys create --role editor --tenant acme --audience internal
    answerdesk keys list
    answerdesk keys revoke 3f9c0a51d2e84b7a
    answerdesk keys bootstrap        # what `make run` does: var/admin.key on first start
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from access.keys import KeyStore
    from retrieval.config import Settings

console = Console()
errors = Console(stderr=True)

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
ADMIN_KEY_FILE = "admin.key"


def _store() -> tuple[Settings, KeyStore]:
    from access.keys import build_key_store
    from retrieval.config import get_settings

    settings = get_settings()
    return settings, build_key_store(settings)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(2)


@keys_app.command("create")
def create(
    role: Annotated[str, typer.Option(help="reader (ask, feedback), editor (documents), agent (escalations), admin.")],
    tenant: Annotated[str, typer.Option(help="The tenant whose documents and conversations the key may use.")] = (
        "default"
    ),
    audience: Annotated[str, typer.Option(help="public, or internal to see internal documents too.")] = "public",
    name: Annotated[str, typer.Option(help="What the key is for (shown in `keys list`).")] = "",
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from access.keys import KeySpecError

    _, store = _store()
    try:
        key, token = store.create(role, tenant, audience, name)
    except KeySpecError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    errors.print(
        f"created key {key.key_id} (role {key.role}, tenant {key.tenant}, audience {key.audience}); "
        "it is shown only now, store it safely:",
        highlight=False,
    )
    print(token)


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
) -> None:
    """Every key with its role, tenant and audience (never a secret)."""
    _, store = _store()
    try:
        keys = store.keys(tenant)
    finally:
        store.close()
    table = Table(title=f"API keys ({len(keys)})")
    table.add_column("key id", no_wrap=True, min_width=16)
    for column in ("name", "role", "tenant", "audience", "created (UTC)", "revoked (UTC)"):
        table.add_column(column, overflow="fold")
    for key in keys:
        created, revoked = _minutes(key.created_at), _minutes(key.revoked_at or "")
        table.add_row(key.key_id, key.name, key.role, key.tenant, key.audience, created, revoked)
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id from `keys list`.")]) -> None:
    """Revoke a key: its next request gets 401 invalid_api_key."""
    from access.keys import KeyNotFoundError

    _, store = _store()
    try:
        key = store.revoke(key_id)
    except KeyNotFoundError as exc:
        raise _fail(f"no key {key_id!r}; `answerdesk keys list` shows the ids") from exc
    finally:
        store.close()
    console.print(f"revoked key {key.key_id} ({key.role}, tenant {key.tenant}) at {key.revoked_at}", highlight=False)


@keys_app.command("bootstrap")
def bootstrap(
    path: Annotated[Path | None, typer.Option(help="Where the admin key goes (default <data dir>/admin.key).")] = None,
) -> None:
    """Create the local admin key once, in a file only you can read; later runs say where it is."""
    settings, store = _store()
    target = path or settings.data_dir / ADMIN_KEY_FILE
    try:
        if target.exists():
            known = store.authenticate(target.read_text(encoding="utf-8").strip()) is not None
            console.print(f"admin key: {target} (created earlier)", highlight=False)
            if not known:
                errors.print(
                    f"[yellow]warning:[/yellow] the key in {target} is revoked or unknown to this data dir; "
                    f"delete the file and run `answerdesk keys bootstrap` again for a new one",
                    highlight=False,
                )
        else:
            key, token = store.create("admin", "default", "internal", "local admin")
            _write_private(target, token + "\n")
            console.print(f"created admin key {key.key_id} in {target} (readable only by you):", highlight=False)
            console.print(token, highlight=False, soft_wrap=True)
    finally:
        store.close()
    console.print(
        f'try:  curl -s http://{settings.host}:{settings.port}/v1/ask -H "authorization: Bearer $(cat {target})" '
        "-H 'content-type: application/json' -d '{\"question\": \"How long does a refund take?\"}'\n"
        "a key for your help widget:  answerdesk keys create --role reader --tenant default --name widget",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _minutes(stamp: str) -> str:
    return stamp[:16].replace("T", " ")


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable and writable by the owner only; never overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
