"""Ingest one big generated Markdown file and print where the time goes (docs/ingest-profile.md).

The file has ``--sections`` short ``##`` sections of a few sentences and a list, about 700 bytes
each (4,450 sections ≈ 3.1 MB, the size of the slow upload in issue 17). Not a test: it prints
figures. ``--hashing`` uses the fast hashing embedder, to time our own code without the model.

Example::

    python -m ingest.bench_big_file --sections 445
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from ingest.pipeline import build_ingestor
from ingest.report import timing_line
from retrieval.config import get_settings
from retrieval.embedding import HashingEmbedder
from retrieval.pipeline import build_components

_WORDS = (
    "account",
    "invoice",
    "refund",
    "plan",
    "billing",
    "export",
    "report",
    "team",
    "member",
    "password",
    "login",
    "device",
    "browser",
    "upgrade",
    "downgrade",
    "trial",
    "seat",
    "license",
    "workspace",
    "project",
    "folder",
    "file",
    "upload",
    "limit",
    "storage",
    "backup",
    "restore",
    "sync",
    "calendar",
    "reminder",
    "webhook",
    "token",
    "integration",
    "admin",
    "role",
    "permission",
    "audit",
    "region",
)


def big_markdown(sections: int, seed: int = 17) -> str:
    """A Markdown page with ``sections`` varied sections (deterministic for a ``seed``)."""
    rng = random.Random(seed)
    parts = ["# Product manual\n"]
    for number in range(1, sections + 1):
        topic = " ".join(rng.sample(_WORDS, 3))
        sentences = [
            f"The {rng.choice(_WORDS)} {rng.choice(_WORDS)} keeps {rng.randint(2, 90)} {rng.choice(_WORDS)}s "
            f"for each {rng.choice(_WORDS)} and {' '.join(rng.sample(_WORDS, 5))}."
            for _ in range(rng.randint(3, 6))
        ]
        items = [f"- {' '.join(rng.sample(_WORDS, 4))}" for _ in range(rng.randint(1, 3))]
        parts.append(f"## {number}. {topic.capitalize()}\n\n{' '.join(sentences)}\n\n" + "\n".join(items) + "\n")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=445)
    parser.add_argument("--hashing", action="store_true", help="use the hashing embedder (no model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "kb"
        folder.mkdir()
        page = folder / "manual.md"
        page.write_text(big_markdown(args.sections), encoding="utf-8")
        settings = get_settings().model_copy(update={"data_dir": Path(scratch) / "data"})
        if settings.model_dir is None:
            settings = settings.model_copy(update={"model_dir": get_settings().resolved_model_dir})
        embedder, store, registry = build_components(settings, HashingEmbedder() if args.hashing else None)
        ingestor = build_ingestor(settings, settings.load_profile(), embedder, store, registry)
        started = time.perf_counter()
        [result] = ingestor.ingest([page])
        elapsed = time.perf_counter() - started
        size = page.stat().st_size / 1e6
        print(
            f"{args.sections} sections, {size:.2f} MB: {result.outcome.value}, {result.chunks} chunks, {elapsed:.1f} s"
        )
        print(timing_line(ingestor.times, [result]))


if __name__ == "__main__":
    main()
