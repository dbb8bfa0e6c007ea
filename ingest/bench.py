"""Ingestion benchmark: documents/s, passages/s and the parse/chunk/embed/store split.

Builds a corpus of ``--documents`` files by copying the sample knowledge base (each copy in its
own folder, so every copy is a distinct document), ingests it into a fresh temporary data dir with
the configured embedder, then re-ingests it unchanged (which must write nothing) and once more
after editing a few documents. Not a test: it prints figures.

Example::

    python -m ingest.bench --documents 2000
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ingest.pipeline import Ingestor, Outcome, build_ingestor
from ingest.report import timing_line
from retrieval.config import get_settings
from retrieval.embedding import Matrix
from retrieval.pipeline import build_components
from retrieval.records import Chunk
from retrieval.vector_store import ChromaStore

logger = logging.getLogger(__name__)


def build_corpus(source: Path, target: Path, documents: int) -> int:
    """Copy ``source``'s supported files round-robin into ``target/copy-NNN/`` until ``documents``."""
    from ingest.parse import SUPPORTED_SUFFIXES

    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    for number in range(documents):
        original = files[number % len(files)]
        copy = target / f"copy-{number // len(files):03d}" / original.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original, copy)
    return documents


def _count_writes(store: ChromaStore) -> dict[str, int]:
    """Count the calls that write to the store from now on."""
    calls = {"upsert": 0, "delete": 0}
    upsert, delete = store.upsert, store.delete

    def counted_upsert(chunks: Sequence[Chunk], embeddings: Matrix) -> None:
        calls["upsert"] += 1
        upsert(chunks, embeddings)

    def counted_delete(chunk_ids: Sequence[str]) -> None:
        calls["delete"] += 1
        delete(chunk_ids)

    store.upsert = counted_upsert  # type: ignore[method-assign]
    store.delete = counted_delete  # type: ignore[method-assign]
    return calls


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(name: str, ingestor: Ingestor, corpus: Path) -> None:
    """Ingest ``corpus`` and print outcomes, stage times and CPU use (the machine may be shared)."""
    cpu, load = _cpu_seconds(), os.getloadavg()[0]
    results = ingestor.ingest([corpus], sync=True)
    cpu = _cpu_seconds() - cpu
    outcomes = {outcome.value: sum(1 for r in results if r.outcome == outcome) for outcome in Outcome}
    print(f"{name}: {outcomes}")
    print(f"  {timing_line(ingestor.times, results)}")
    cores = cpu / ingestor.times.total if ingestor.times.total else 0.0
    print(f"  process CPU {cpu:.1f}s ({cores:.2f} cores busy on average); load average before {load:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--kb", type=Path, default=Path("data/kb"))
    parser.add_argument("--edit", type=int, default=20, help="documents to edit for the incremental run")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    settings = get_settings()
    profile = settings.load_profile()
    with tempfile.TemporaryDirectory(prefix="answerdesk-bench-") as scratch:
        corpus = Path(scratch) / "kb"
        build_corpus(args.kb, corpus, args.documents)
        isolated = settings.model_copy(
            update={"data_dir": Path(scratch) / "data", "model_dir": settings.resolved_model_dir}
        )
        embedder, store, registry = build_components(isolated)
        started = time.perf_counter()
        embedder.warm_up()
        embedder.count_tokens("warm up")
        loaded = time.perf_counter() - started
        print(f"corpus: {args.documents} documents from {args.kb}; model loaded in {loaded:.1f}s")
        ingestor = build_ingestor(isolated, profile, embedder, store, registry)

        _run("fresh ingest", ingestor, corpus)

        writes = _count_writes(store)
        _run("unchanged re-ingest", ingestor, corpus)
        print(f"  store writes: {writes}")

        edited = sorted(corpus.rglob("*.md"))[: args.edit]
        for path in edited:
            path.write_text(path.read_text(encoding="utf-8") + "\nEdited for the benchmark.\n", encoding="utf-8")
        _run(f"after editing {len(edited)} documents", ingestor, corpus)
        print(f"  consistency: {ingestor.audit() or 'registry and store agree'}")


if __name__ == "__main__":
    main()
