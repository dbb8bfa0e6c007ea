"""``answerdesk eval``: run eval suites and print their metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from retrieval.config import ProfileError, load_settings

eval_app = typer.Typer(help="Evaluate retrieval and answering on eval sets.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

DEFAULT_EVAL_SETS = sorted(Path("data/eval").glob("*.jsonl"))


@eval_app.command("run")
def eval_run(
    suite: Annotated[str, typer.Option(help="Suite name; 'sample' is our own KB and eval sets.")] = "sample",
    profile: Annotated[Path | None, typer.Option(help="Retrieval profile (TOML).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json.")] = None,
    kb: Annotated[Path, typer.Option(help="Knowledge base folder for the sample suite.")] = Path("data/kb"),
    cases: Annotated[list[Path] | None, typer.Option(help="Eval JSONL files (default: data/eval/*.jsonl).")] = None,
) -> None:
    """Run an eval suite in an isolated temporary index and print its metrics."""
    from eval.cases import EvalSetError, load_cases
    from eval.run import run_suite_on_kb

    if suite != "sample":
        errors.print(f"[red]error:[/red] unknown suite {suite!r}; available: sample")
        raise typer.Exit(2)
    try:
        settings, retrieval_profile = load_settings(profile)
    except ProfileError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    case_files = cases or DEFAULT_EVAL_SETS
    try:
        loaded = load_cases(*case_files)
    except (OSError, EvalSetError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    metrics = run_suite_on_kb(settings, retrieval_profile, kb, loaded, out)
    _print_metrics(metrics)


def _print_metrics(metrics: dict[str, Any]) -> None:
    per_language = metrics.get("per_language", {})
    keys = [key for key, value in metrics.items() if isinstance(value, float | int)]
    table = Table(title="eval metrics")
    table.add_column("metric")
    table.add_column("all", justify="right")
    for language in per_language:
        table.add_column(language, justify="right")
    for key in keys:
        row = [_fmt(metrics[key])] + [_fmt(per_language[language].get(key)) for language in per_language]
        table.add_row(key, *row)
    console.print(table)
    if "ingest" in metrics:
        console.print("ingest: " + json.dumps({k: round(v, 2) for k, v in metrics["ingest"].items()}))


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
