"""``answerdesk eval``: run suites, compare runs, calibrate and sweep profiles, benchmark speed.

Examples::

    answerdesk eval run --suite sample --out eval-out/sample
    answerdesk eval run --suite xquad-r:ru-en --system all --out eval-out/xquad-ru-en
    answerdesk eval compare eval-out/a eval-out/b
    answerdesk eval calibrate --suite sample --suite train-squad2 --suite train-mlqa:de-en --out fitted.toml
    answerdesk eval sweep --suite xquad-r:de-en --grid top_k=4,8 --grid score_midpoint=0.84,0.86
    answerdesk eval bench --passages 2000
    answerdesk eval triage-fit && answerdesk eval triage
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from eval.suite import Suite
from retrieval.config import ProfileError, RetrievalProfile, Settings, load_settings
from retrieval.verify import Verifier

eval_app = typer.Typer(help="Evaluate retrieval and answering on eval sets.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

SYSTEM_NAMES = ("answerdesk", "llamaindex", "dense", "bm25")
TABLE_METRICS = (
    "recall@1",
    "recall@5",
    "mrr@10",
    "ndcg@10",
    "hallucination_rate",
    "error_rate",
    "abstain_f1",
    "citation_precision",
    "aurc",
    "latency_p50_ms",
)

SuiteOption = Annotated[list[str], typer.Option("--suite", help="Suite name (repeatable), e.g. xquad-r:ru-en.")]
ProfileOption = Annotated[Path | None, typer.Option(help="Retrieval profile (TOML).")]
LimitOption = Annotated[int | None, typer.Option(help="At most this many cases per suite (a fixed random subset).")]


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _load(profile: Path | None) -> tuple[Settings, RetrievalProfile]:
    try:
        return load_settings(profile)
    except ProfileError as exc:
        raise _fail(str(exc)) from exc


def _systems(names: Sequence[str]) -> list[str]:
    from eval.systems import SYSTEMS  # "all" is the four compared systems; the variants are named

    chosen = list(SYSTEM_NAMES) if "all" in names else list(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in SYSTEMS]
    if unknown:
        raise _fail(f"unknown system {unknown[0]!r}; choose from {', '.join(SYSTEMS)} or all")
    return chosen


def _suites(names: Sequence[str], settings: Settings, limit: int | None, **sample: Any) -> list[Suite]:
    """Load each suite; a suite whose public data is missing is skipped with a message."""
    from eval.cases import EvalSetError
    from eval.datasets import DatasetMissingError, load_suite, subsample
    from eval.suite import SuiteError

    loaded = []
    for name in names:
        try:
            suite = load_suite(name, settings, **sample)
        except SuiteError as exc:
            raise _fail(str(exc)) from exc
        except DatasetMissingError as exc:
            errors.print(f"[yellow]skipped {name}:[/yellow] {exc}")
            continue
        except (OSError, EvalSetError) as exc:
            raise _fail(str(exc)) from exc
        loaded.append(replace(suite, cases=subsample(suite.cases, limit)))
    return loaded


@eval_app.command("run")
def eval_run(
    suite: SuiteOption = ["sample"],  # noqa: B006 - typer reads the default, nothing mutates it
    system: Annotated[list[str], typer.Option(help="eval/systems.py names (repeatable); all = the four compared.")] = [  # noqa: B006
        "answerdesk"
    ],
    profile: ProfileOption = None,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json, cases.jsonl and report.html.")] = None,
    limit: LimitOption = None,
    kb: Annotated[Path | None, typer.Option(help="Knowledge base folder for the sample suite.")] = None,
    cases: Annotated[list[Path] | None, typer.Option(help="Eval JSONL files for the sample suite.")] = None,
) -> None:
    """Run suites through systems, each in its own temporary index, and print one table.

    With one suite and one system the files go to OUT; otherwise to OUT/<suite>/<system>.
    """
    from eval.run import build_embedder, run_suite

    settings, retrieval_profile = _load(profile)
    systems = _systems(system)
    suites = _suites(suite, settings, limit, kb_dir=kb, case_files=cases)
    embedder = build_embedder(settings, cache_queries=False)
    verifier = _verifier(settings, retrieval_profile)
    nested = len(suites) * len(systems) > 1
    rows = []
    for loaded in suites:
        for name in systems:
            sizes = f"{len(loaded.documents)} documents, {len(loaded.cases)} cases"
            console.print(f"[bold]{loaded.name}[/bold] · {name}: {sizes}")
            target = out / loaded.name.replace(":", "_") / name if out and nested else out
            metrics, _ = run_suite(loaded, name, retrieval_profile, embedder, target, verifier=verifier)
            rows.append(metrics)
            if not nested:
                _print_metrics(metrics)
            _print_targets(metrics)
    if nested:
        _print_summary(rows)
    if out and rows:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(summary_markdown(rows), encoding="utf-8")


def _verifier(settings: Settings, profile: RetrievalProfile) -> Verifier | None:
    """The exported verifier when the profile uses it (retrieval/verify.py)."""
    from retrieval.verifier import load_verifier

    return load_verifier(settings) if profile.verify_depth > 0 else None


def summary_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one row per suite and system, the headline metrics as columns."""
    header = "| suite | system | cases | " + " | ".join(TABLE_METRICS) + " |"
    lines = [header, "|" + "---|" * (len(TABLE_METRICS) + 3)]
    for row in rows:
        values = " | ".join(_fmt(row.get(key), digits=1 if key.endswith("_ms") else 3) for key in TABLE_METRICS)
        lines.append(f"| {row['suite']} | {row['system']} | {row['cases']} | {values} |")
    return "\n".join(lines) + "\n"


def _print_summary(rows: Sequence[dict[str, Any]]) -> None:
    table = Table(title="eval summary")
    for column in ("suite", "system", "cases", *TABLE_METRICS):
        table.add_column(column, justify="left" if column in ("suite", "system") else "right")
    for row in rows:
        table.add_row(row["suite"], row["system"], str(row["cases"]), *(_fmt(row.get(k)) for k in TABLE_METRICS))
    # Piped to a file, rich would squeeze the table into 80 columns.
    (console if console.is_terminal else Console(width=200)).print(table)


def _print_metrics(metrics: dict[str, Any]) -> None:
    per_language = metrics.get("per_language", {})
    keys = [key for key, value in metrics.items() if isinstance(value, float | int)]
    table = Table(title=f"{metrics.get('suite', 'eval')} · {metrics.get('system', '')}")
    table.add_column("metric")
    table.add_column("all", justify="right")
    for language in per_language:
        table.add_column(language, justify="right")
    for key in keys:
        row = [_fmt(metrics[key])] + [_fmt(per_language[language].get(key)) for language in per_language]
        table.add_row(key, *row)
    console.print(table)


def _print_targets(metrics: dict[str, Any]) -> None:
    """The issue's target figures: share (cases) per language and for cross-lingual questions."""
    from eval.targets import targets_markdown

    targets = metrics["targets"]
    table = Table(title=f"{metrics.get('suite', 'eval')} · {metrics.get('system', '')} · target figures")
    table.add_column("figure")
    for group in targets:
        table.add_column(group, justify="right")
    for line in targets_markdown(targets).splitlines()[2:]:
        table.add_row(*[cell.strip() for cell in line.strip("|").split("|")])
    (console if console.is_terminal else Console(width=200)).print(table)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


@eval_app.command("compare")
def eval_compare(
    dir_a: Annotated[Path, typer.Argument(help="Run folder A (with cases.jsonl).")],
    dir_b: Annotated[Path, typer.Argument(help="Run folder B.")],
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
) -> None:
    """Side by side: B − A per metric with a paired bootstrap interval and a verdict."""
    from eval.compare import compare_runs, load_rows

    try:
        rows_a, rows_b = load_rows(dir_a), load_rows(dir_b)
        comparisons = compare_runs(rows_a, rows_b, resamples=resamples, confidence=confidence)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    table = Table(title=f"A = {dir_a}   B = {dir_b}   ({len(rows_a)} paired cases)")
    for column in ("metric", "A", "B", "B − A", f"{confidence:.0%} interval", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    for item in comparisons:
        table.add_row(
            item.metric,
            _fmt(item.a),
            _fmt(item.b),
            _fmt(item.difference),
            f"[{_fmt(item.low)}, {_fmt(item.high)}]",
            item.verdict,
        )
    console.print(table)


@eval_app.command("calibrate")
def eval_calibrate(
    suite: SuiteOption,
    out: Annotated[Path, typer.Option(help="Profile file to write (TOML); the held-out report goes beside it (.md).")],
    target_precision: Annotated[
        float | None,
        typer.Option(
            help="Set min_confidence to the lowest probability whose answers are right this often "
            "(on cross-validated probabilities, suites weighted equally). Default: keep the profile's."
        ),
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds for the held-out figures.")] = 5,
    write_default: Annotated[
        bool, typer.Option(help="Also write the fitted model as the packaged default (retrieval/answerability.toml).")
    ] = False,
    profile: ProfileOption = None,
    name: Annotated[str, typer.Option(help="Name of the written profile.")] = "calibrated",
    limit: LimitOption = None,
) -> None:
    """Fit the answerability model (logistic regression over retrieval features) on labelled suites.

    Public eval sets are test sets and are refused: calibrate on our dev set (sample) and the
    training data's held-out groups (train-squad2, train-mlqa:de-en, train-cmrc …).
    """
    import tempfile

    from eval.calibrate import calibrate, collect_cases, model_to_toml, profile_to_toml
    from eval.datasets import TEST_ONLY_PREFIXES
    from eval.run import build_embedder
    from retrieval.answerability import DEFAULT_MODEL_PATH

    forbidden = [name for name in suite if name.startswith(TEST_ONLY_PREFIXES)]
    if forbidden:
        raise _fail(
            f"{forbidden[0]} is a public eval (test) set: calibrate on sample and train-… suites, and only report it"
        )
    if target_precision is not None and not 0 < target_precision < 1:
        raise _fail("--target-precision must be between 0 and 1")
    settings, base = _load(profile)
    embedder = build_embedder(settings, cache_queries=True)
    verifier = _verifier(settings, base)
    cases = []
    for loaded in _suites(suite, settings, limit):
        console.print(f"[bold]{loaded.name}[/bold]: {len(loaded.cases)} cases")
        with tempfile.TemporaryDirectory(prefix="answerdesk-calibrate-") as scratch:
            cases += collect_cases(loaded, base, embedder, Path(scratch), verifier=verifier)
    try:
        result = calibrate(cases, base, name, folds, target_precision)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profile_to_toml(result.profile, comment=result.header), encoding="utf-8")
    report = out.with_suffix(".md")
    report.write_text(result.report, encoding="utf-8")
    if write_default:
        comment = f"{result.header}\nHeld-out figures: {report}."
        DEFAULT_MODEL_PATH.write_text(model_to_toml(result.profile.answerability, comment), encoding="utf-8")
        console.print(f"wrote the default model {DEFAULT_MODEL_PATH}")
    console.print(result.report)
    console.print(f"wrote {out} and {report}")


@eval_app.command("sweep")
def eval_sweep(
    suite: SuiteOption,
    grid: Annotated[list[str], typer.Option(help="KNOB=V1,V2,… over profile fields (repeatable).")],
    profile: ProfileOption = None,
    metric: Annotated[str, typer.Option(help="Primary metric to sort by.")] = "mrr@10",
    limit: LimitOption = None,
    out: Annotated[Path | None, typer.Option(help="Write the table as markdown here.")] = None,
) -> None:
    """Run every grid point on the suites (answerdesk system) and print a table sorted by the metric."""
    from eval.datasets import TEST_ONLY_PREFIXES
    from eval.sweep import parse_grid, sweep, sweep_markdown

    forbidden = [name for name in suite if name.startswith(TEST_ONLY_PREFIXES)]
    if forbidden:
        raise _fail(f"{forbidden[0]} is a test set: sweep on other suites and only report it")
    settings, base = _load(profile)
    try:
        axes = parse_grid(grid, base)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    from eval.run import build_embedder

    embedder = build_embedder(settings, cache_queries=True)
    points = sweep(_suites(suite, settings, limit), base, axes, embedder, metric)
    table = Table(title=f"sweep sorted by {metric}")
    knobs = list(axes)
    for column in (*knobs, "suite", metric, *[m for m in TABLE_METRICS if m != metric]):
        table.add_column(column, justify="right")
    for point in points:
        table.add_row(
            *(str(point.values[k]) for k in knobs),
            point.suite,
            _fmt(point.metrics.get(metric)),
            *(_fmt(point.metrics.get(m)) for m in TABLE_METRICS if m != metric),
        )
    console.print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(sweep_markdown(points, knobs, metric), encoding="utf-8")


@eval_app.command("bench")
def eval_bench(
    passages: Annotated[int, typer.Option(help="Real passages to ingest per system.")] = 2000,
    sizes: Annotated[str, typer.Option(help="Store sizes (chunks) for query latency, comma-separated.")] = (
        "10000,100000"
    ),
    queries: Annotated[int, typer.Option(help="Queries per system and size.")] = 200,
    rounds: Annotated[int, typer.Option(help="Interleaved ingest rounds.")] = 4,
    profile: ProfileOption = None,
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """Speed: ingest throughput and query latency, AnswerDesk vs the LlamaIndex peer, interleaved."""
    from eval.bench import run_bench

    settings, base = _load(profile)
    try:
        store_sizes = [int(size) for size in sizes.split(",") if size.strip()]
    except ValueError as exc:
        raise _fail(f"--sizes: {exc}") from exc
    try:
        report = run_bench(settings, base, passages, store_sizes, queries, rounds)
    except FileNotFoundError as exc:
        errors.print(f"[yellow]skipped:[/yellow] {exc}")
        raise typer.Exit(0) from exc
    console.print_json(json.dumps(report))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


# Turning the audit log into eval cases lives in eval/audit_import.py.
from eval.audit_import import import_audit_command  # noqa: E402

eval_app.command("import-audit")(import_audit_command)

# Per-kind recall and precision of PII redaction on a generated set (eval/redaction.py).
from eval.redaction import redaction_command  # noqa: E402

eval_app.command("redaction")(redaction_command)

# Triage: fit the classifier heads on our written examples; measure on the dev sets (eval/triage.py).
from eval.triage import triage_command, triage_fit_command  # noqa: E402

eval_app.command("triage-fit")(triage_fit_command)
eval_app.command("triage")(triage_command)
