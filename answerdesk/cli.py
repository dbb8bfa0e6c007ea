"""The ``answerdesk`` command line.

Examples::

    answerdesk ingest data/kb --sync
    answerdesk ask "How do I get a refund?"
    answerdesk serve --port 8000
    answerdesk worker
    answerdesk eval run --suite sample --out eval-out/sample
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from answerdesk.db_cli import db_app
from answerdesk.keys_cli import keys_app
from answerdesk.privacy_cli import privacy_app
from answerdesk.support_cli import register as register_support_commands
from answerdesk.verifier_cli import verifier_app
from eval.cli import eval_app
from retrieval.config import ProfileError, RetrievalProfile, Settings, get_settings, load_settings
from retrieval.scope import AUDIENCES, DEFAULT_TENANT, PUBLIC, Scope, ScopeError

app = typer.Typer(
    help="AnswerDesk: answers customer questions from your knowledge base, with citations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(eval_app, name="eval")
register_support_commands(app)  # audit, report, escalations, outbox (answerdesk/support_cli.py)
app.add_typer(db_app, name="db")  # answerdesk/db_cli.py
app.add_typer(keys_app, name="keys")  # answerdesk/keys_cli.py
app.add_typer(privacy_app, name="privacy")  # answerdesk/privacy_cli.py
app.add_typer(verifier_app, name="verifier")  # answerdesk/verifier_cli.py
console = Console()
errors = Console(stderr=True)


def _settings(profile: Path | None = None) -> tuple[Settings, RetrievalProfile]:
    try:
        return load_settings(profile)
    except ProfileError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False) -> None:
    from common.logs import configure_logging

    configure_logging(logging.DEBUG if verbose else logging.WARNING)  # JSON lines on stderr, redacted


@app.command("prepare-model")
def prepare_model() -> None:
    """Build the default offline embedding model and the verifier export (once; later runs reuse them)."""
    from retrieval.build.embedder import prepare_default_model, prepare_verifier

    settings = get_settings()
    path = prepare_default_model(settings.resolved_model_dir)
    console.print(f"model ready in {path}")
    verifier = prepare_verifier(path)
    console.print(f"verifier ready in {verifier}" if verifier else "verifier skipped: no adapter committed")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    sync: Annotated[bool, typer.Option(help="Remove documents whose files are gone from these folders.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    tenant: Annotated[str, typer.Option(help="The tenant the documents belong to.")] = DEFAULT_TENANT,
    audience: Annotated[
        str, typer.Option(help="Audience of documents whose front matter names none: public or internal.")
    ] = PUBLIC,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per file, then a summary object (JSON Lines).")
    ] = False,
) -> None:
    """Parse, chunk, embed and store documents; unchanged ones are skipped.

    Exits with 1 when any file failed (each failure is listed with its reason), else 0.
    """
    from ingest.pipeline import Outcome, Placement, build_ingestor
    from ingest.report import (
        ProgressBars,
        file_json,
        summary_json,
        summary_tables,
        timing_line,
        warnings_line,
    )
    from retrieval.pipeline import build_components

    try:
        placement = Placement(tenant, audience)
    except ScopeError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    settings, profile = _settings()
    embedder, store, registry = build_components(settings)
    ingestor = build_ingestor(settings, profile, embedder, store, registry)
    if as_json:
        results = ingestor.ingest(paths, sync=sync, dry_run=dry_run, placement=placement)
        for result in results:
            typer.echo(json.dumps(file_json(result), ensure_ascii=False))
        typer.echo(json.dumps(summary_json(results, None if dry_run else ingestor.times, dry_run), ensure_ascii=False))
    else:
        with ProgressBars() as bars:
            results = ingestor.ingest(paths, sync=sync, dry_run=dry_run, progress=bars, placement=placement)
        for table in summary_tables(results, dry_run=dry_run):
            console.print(table)
        if not dry_run:
            console.print(timing_line(ingestor.times, results))
        console.print(warnings_line(results))
        console.print(f"{store.count()} chunks from {len(registry.all())} documents in {settings.data_dir}")
    if any(result.outcome == Outcome.FAILED for result in results):
        raise typer.Exit(1)


@app.command()
def check(
    repair: Annotated[
        bool, typer.Option("--repair", help="Rebuild the lexical index from the vector store when it is damaged.")
    ] = False,
) -> None:
    """Check every store of the data dir, and that the registry and the chunk indexes agree (exit 1
    when something is wrong). A damaged store is reported, never a traceback."""
    from retrieval.storage import check_data_dir

    settings, profile = _settings()
    faults = check_data_dir(settings, thorough=True)
    if repair and any(fault.store == "lexical index" for fault in faults):
        _rebuild_lexical_index(settings)
        faults = check_data_dir(settings, thorough=True)
    for fault in faults:
        errors.print(f"[red]damaged[/red] {fault.store}: {fault.code}: {fault.problem}", markup=True)
        if fault.detail:
            errors.print(f"  {fault.detail}", markup=False)
    if faults:
        if any(fault.store == "lexical index" for fault in faults) and not repair:
            errors.print("the lexical index's rows can be rebuilt from the vector store: answerdesk check --repair"
                         " (a missing table: restore the database)")
        raise typer.Exit(1)
    from ingest.pipeline import build_ingestor
    from retrieval.pipeline import build_components

    embedder, store, registry = build_components(settings)
    ingestor = build_ingestor(settings, profile, embedder, store, registry)
    problems = ingestor.audit()
    if repair and any(problem.startswith("LexicalIndex") for problem in problems):
        ingestor.recover()  # adds the live chunks the lexical index lacks, drops the stale ones
        problems = ingestor.audit()
    for problem in problems:
        errors.print(f"[red]inconsistent[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(f"consistent: {len(registry.all())} documents, {store.count()} chunks")
    coverage = ingestor.use_coverage()
    if coverage is not None:
        # Chunks in languages USE does not cover (Latvian) never get one; older ones get one on the next ingest.
        console.print(f"USE vectors: {coverage[0]} of {coverage[1]} live chunks")


def _rebuild_lexical_index(settings: Settings) -> None:
    """Empty the damaged lexical index's rows; the recovery refills them from the vector store."""
    from ingest.pipeline import build_ingestor
    from retrieval.lexical import LexicalIndex
    from retrieval.pipeline import build_components

    try:
        index = LexicalIndex(settings.database_url)
        index.clear()
        index.close()
    except Exception as exc:  # the table itself is gone: only restoring the database brings it back
        errors.print(f"[red]cannot repair[/red] the lexical index: {type(exc).__name__}: {exc}", markup=True)
        errors.print("its table is missing or unreadable: restore the database from a backup")
        raise typer.Exit(1) from exc
    embedder, store, registry = build_components(settings)
    build_ingestor(settings, settings.load_profile(), embedder, store, registry).recover()
    console.print(f"lexical index rebuilt from the vector store: {store.count()} chunks (restart a running server)")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: $PORT or 8000).")] = None,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api.app import create_app
    from common.logs import configure_logging
    from retrieval.storage import check_data_dir, describe

    settings = get_settings()
    configure_logging(settings.log_level)
    if faults := check_data_dir(settings):  # say what is wrong, not a traceback from the app's start
        errors.print(f"[red]error:[/red] cannot serve: {describe(faults)}", markup=True)
        raise typer.Exit(2)
    # Our JSON handler gets uvicorn's records too (log_config=None); api/access_log.py writes the access log.
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run upload jobs from the queue (PostgreSQL) until SIGTERM: loads the embedder once, one job at
    a time. Start as many as you like, on any machine sharing the database and the model dir."""
    from rich.markup import escape
    from sqlalchemy.exc import SQLAlchemyError

    from common.errors import AnswerDeskError
    from common.logs import configure_logging
    from ingest.jobs import JobStore
    from ingest.pipeline import build_ingestor
    from ingest.queue import run_worker
    from ingest.service import DocumentService
    from retrieval.pipeline import build_components

    settings, profile = _settings()
    configure_logging(settings.log_level)
    if not settings.jobs_in_worker:
        errors.print(
            "[red]error:[/red] `answerdesk worker` needs ANSWERDESK_DATABASE_URL=postgresql+psycopg://… "
            "(with SQLite, or ANSWERDESK_JOB_RUNNER=api, the API process runs upload jobs itself)"
        )
        raise typer.Exit(2)
    try:  # the database first: a wrong URL or an old schema is said before the model loads
        jobs = JobStore(settings.database_url)
        embedder, store, registry = build_components(settings)
    except (AnswerDeskError, SQLAlchemyError) as exc:
        errors.print(f"[red]error:[/red] cannot start the worker: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    embedder.warm_up()  # loaded once, before the first job
    service = DocumentService(build_ingestor(settings, profile, embedder, store, registry), settings.uploads_dir, jobs)
    try:
        run_worker(service, settings.database_url, settings.worker_stalled_seconds)
    finally:
        service.close()


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly the API's JSON.")] = False,
    language: Annotated[str | None, typer.Option(help="The question's language (ISO 639-1).")] = None,
    tenant: Annotated[str, typer.Option(help="Answer from this tenant's documents.")] = DEFAULT_TENANT,
    internal: Annotated[bool, typer.Option(help="Also use internal documents (as an agent would).")] = False,
    conversation_id: Annotated[str | None, typer.Option(help="Continue this conversation (a follow-up).")] = None,
) -> None:
    """Answer one question from the ingested knowledge base (public documents unless ``--internal``).

    The same path as ``POST /v1/ask``: the support desk (follow-ups, triage, handoff, audit) around
    the answer pipeline."""
    from pydantic import ValidationError

    from api.models import AskRequest, AskResponse
    from retrieval.pipeline import build_components, build_pipeline
    from support.desk import build_desk
    from support.store import ConversationNotFoundError

    try:
        request = AskRequest(question=question, language=language)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        errors.print(f"[red]error:[/red] {problems}")
        raise typer.Exit(2) from exc
    settings, profile = _settings()
    embedder, store, registry = build_components(settings)
    scope = Scope(tenant=tenant, audiences=frozenset(AUDIENCES if internal else (PUBLIC,)))
    pipeline = build_pipeline(settings, profile, embedder, store, registry)
    desk = build_desk(settings, start_worker=False, embedder=embedder)  # the server's worker delivers webhooks
    try:
        reply = desk.ask(
            pipeline, request.question, conversation_id=conversation_id, language=request.language, scope=scope
        )
    except ConversationNotFoundError as exc:
        errors.print(f"[red]error:[/red] no conversation {conversation_id!r} for this tenant")
        raise typer.Exit(2) from exc
    finally:
        desk.close()
    response = AskResponse.from_reply(reply)
    answer = reply.answer
    if as_json:
        print(response.model_dump_json(indent=2))
        return
    console.print(f"[bold]{answer.status.value}[/bold] (confidence {answer.confidence:.2f})")
    console.print(answer.answer, markup=False)
    for number, citation in enumerate(answer.citations, 1):
        console.print(
            f"  [{number}] {citation.title} › {citation.section} ({citation.document_id}, score {citation.score:.3f})",
            markup=False,
        )
    console.print(f"[dim]{answer.disclosure}[/dim]")
    console.print(f"[dim]reasons: {'; '.join(map(str, answer.reasons))}[/dim]")
