"""``answerdesk db``: the SQL schema (Alembic migrations, common/schema.py)."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from common.schema import current, head, upgrade
from common.sql import open_database, private_dir
from retrieval.config import get_settings

db_app = typer.Typer(help="The SQL schema: upgrade it, or show its revision.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@db_app.command("upgrade")
def upgrade_command() -> None:
    """Bring every configured database (ANSWERDESK_DATABASE_URL, ANSWERDESK_SUPPORT_DATABASE_URL) to
    this version's schema. Running it again changes nothing; two at once are safe."""
    settings = get_settings()
    private_dir(settings.data_dir)
    for url in settings.database_urls:
        engine = open_database(url)
        shown = engine.url.render_as_string(hide_password=True)
        try:
            before, after = upgrade(engine)
        except SQLAlchemyError as exc:
            errors.print(f"[red]error:[/red] cannot upgrade {shown}: {type(exc).__name__}: {exc.args[0]}")
            raise typer.Exit(1) from exc
        finally:
            engine.dispose()
        change = "already current" if before == after else f"upgraded from {before or 'nothing'}"
        console.print(f"{shown}: schema {after} ({change})")


@db_app.command("current")
def current_command() -> None:
    """Print each configured database's schema revision and the one this version needs; exit 1 if behind."""
    settings = get_settings()
    behind = False
    for url in settings.database_urls:
        engine = open_database(url)
        shown = engine.url.render_as_string(hide_password=True)
        try:
            with engine.connect() as connection:
                revision = current(connection)
        except SQLAlchemyError as exc:
            errors.print(f"[red]error:[/red] cannot read {shown}: {type(exc).__name__}: {exc.args[0]}")
            raise typer.Exit(1) from exc
        finally:
            engine.dispose()
        behind = behind or revision != head()
        console.print(f"{shown}: schema {revision or 'none'} (this version needs {head()})")
    if behind:
        raise typer.Exit(1)
