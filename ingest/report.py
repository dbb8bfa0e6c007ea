"""What an editor sees of an ingest run: progress bars per stage and a final summary."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from types import TracebackType

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
