"""What an editor sees of an ingest run: progress bars per stage and a final summary."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from rich.table import Table
from tqdm import tqdm

from ingest.pipeline import FileResult, Outcome, StageTimes

_STAGES = {"parse": "files", "chunk": "files", "embed": "passages"}
MAX_LISTED = 50  # above this many changed files, only failures are listed one by one


class ProgressBars:
    """One tqdm bar per stage (parse, chunk, embed); use as the ingestor's ``progress`` callback.

    The bars are hidden when stderr is not a terminal, so logs stay readable.
    """

    def __init__(self) -> None:
        disable = not sys.stderr.isatty()
        self.bars = {
            stage: tqdm(total=0, desc=f"{stage:<5}", unit=unit, position=number, disable=disable, leave=True)
            for number, (stage, unit) in enumerate(_STAGES.items())
        }

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars[stage]
        if total:
            bar.total = (bar.total or 0) + total
            bar.refresh()
        if done:
            bar.update(done)

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for bar in self.bars.values():
            bar.close()


def summary_tables(results: Sequence[FileResult], dry_run: bool = False) -> list[Table]:
    """The counts per outcome, then one row per changed or failed file with its reason."""
    counts = Counter(result.outcome for result in results)
    title = "dry run: what would change (nothing was written)" if dry_run else "ingest summary"
    totals = Table(title=title)
    for outcome in Outcome:
        totals.add_column(outcome.value, justify="right")
    totals.add_row(*(str(counts.get(outcome, 0)) for outcome in Outcome))

    changed = [result for result in results if result.outcome != Outcome.UNCHANGED]
    if len(changed) > MAX_LISTED:
        changed = [result for result in changed if result.outcome == Outcome.FAILED or result.note]
    if not changed:
        return [totals]
    files = Table(title="files")
    for column in ("file", "outcome", "document", "version", "chunks", "reason"):
        files.add_column(column, overflow="fold")
    for result in changed:
        label = f"[red]{result.outcome.value}[/red]" if result.outcome == Outcome.FAILED else result.outcome.value
        reason = f"{result.code}: {result.error}" if result.error else result.note
        version = str(result.version) if result.version else ""
        files.add_row(result.source, label, result.document_id, version, str(result.chunks or ""), reason)
    return [totals, files]


def warning_kind(warning: str) -> str:
    return warning.split(":", 1)[0].strip()


def warning_counts(results: Sequence[FileResult]) -> Counter[str]:
    """How many files got each kind of warning (leftover_markup_wikilink, dangling_embed, …)."""
    return Counter(kind for result in results for kind in {warning_kind(warning) for warning in result.warnings})


def warnings_line(results: Sequence[FileResult]) -> str:
    counts = warning_counts(results)
    if not counts:
        return "no warnings"
    return "warnings (files): " + ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))


def file_json(result: FileResult) -> dict[str, Any]:
    """One file's result for ``answerdesk ingest --json``."""
    return {
        "file": result.source,
        "outcome": result.outcome.value,
        "document_id": result.document_id,
        "version": result.version,
        "chunks": result.chunks,
        "code": result.code,
        "error": result.error,
        "warnings": [{"kind": warning_kind(warning), "message": warning} for warning in result.warnings],
    }


def summary_json(results: Sequence[FileResult], times: StageTimes | None, dry_run: bool = False) -> dict[str, Any]:
    """The run's summary for ``answerdesk ingest --json``: counts per outcome and per warning kind."""
    counts = Counter(result.outcome for result in results)
    summary: dict[str, Any] = {
        "summary": True,
        "dry_run": dry_run,
        **{outcome.value: counts.get(outcome, 0) for outcome in Outcome},
        "warnings": dict(sorted(warning_counts(results).items())),
    }
    if times is not None:
        summary["seconds"] = {
            "parse": round(times.parse, 3),
            "chunk": round(times.chunk, 3),
            "embed": round(times.embed, 3),
            "store": round(times.store, 3),
            "total": round(times.total, 3),
        }
    return summary


def timing_line(times: StageTimes, results: Sequence[FileResult]) -> str:
    """Stage times and throughput of the run."""
    documents = sum(1 for result in results if result.outcome in {Outcome.ADDED, Outcome.UPDATED})
    passages = times.passages_embedded + times.passages_reused
    seconds = times.total or float("nan")
    rate = f", {documents / seconds:.1f} documents/s, {passages / seconds:.1f} passages/s"
    return (
        f"parse {times.parse:.1f}s, chunk {times.chunk:.1f}s, embed {times.embed:.1f}s "
        f"(USE {times.use_embed:.1f}s), store {times.store:.1f}s; "
        f"total {times.total:.1f}s{rate} ({times.passages_embedded} passages embedded, "
        f"{times.passages_reused} reused)"
    )
