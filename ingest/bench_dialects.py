"""Ingest speed on the help-centre fixture sites (issue #16): every dialect, embeds, HTML exports.

Prints, in one run: Markdown parse time per file through our path (markdown-it with the dialect
plugins, then unstructured's HTML partitioner) beside unstructured's own ``partition_md`` on the
same files (which leaves the dialects as noise), as a ratio; then a full ingest of ``--copies``
copies of the sites with the configured embedder (documents/s, passages/s, stage split), an
unchanged re-ingest, and a re-ingest after one embedded page changed (the pages embedding it are
re-indexed, nothing else). Not a test: it prints figures.

Example::

    python -m ingest.bench_dialects --copies 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from ingest.bench import _run
from ingest.parse import parse_bytes
from ingest.pipeline import build_ingestor
from retrieval.config import get_settings
from retrieval.pipeline import build_components

SITES = Path(__file__).resolve().parent.parent / "tests" / "ingest" / "fixtures" / "sites"


def parse_speed(files: list[Path], rounds: int) -> None:
    """Seconds per Markdown file: our dialect-aware path beside unstructured's partition_md."""
    import frontmatter
    from unstructured.partition.md import partition_md

    from ingest.parse import _from_elements, _unstructured

    _unstructured()  # imports and the spaCy stand-in, outside the timing
    texts = [(path, path.read_bytes()) for path in files]
    started = time.perf_counter()
    for _ in range(rounds):
        for path, raw in texts:
            parse_bytes(raw, path, path.stem)
    ours = (time.perf_counter() - started) / (rounds * len(texts))
    started = time.perf_counter()
    for _ in range(rounds):
        for path, raw in texts:  # the parser before issue #16: partition_md, then the same sectioning
            post = frontmatter.loads(raw.decode("utf-8"))
            _from_elements(path, partition_md(text=post.content, languages=[""]), dict(post.metadata), path.stem)
    plain = (time.perf_counter() - started) / (rounds * len(texts))
    print(
        f"parse, {len(texts)} Markdown files × {rounds}: ours {ours * 1000:.2f} ms/file, "
        f"before (unstructured partition_md) {plain * 1000:.2f} ms/file (ratio {ours / plain:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20, help="copies of the fixture sites to ingest")
    parser.add_argument("--rounds", type=int, default=20, help="parse rounds for the parse-only timing")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    markdown = sorted(path for path in SITES.rglob("*") if path.suffix == ".md")
    parse_speed(markdown, args.rounds)

    settings = get_settings()
    profile = settings.load_profile()
    with tempfile.TemporaryDirectory(prefix="answerdesk-bench-dialects-") as scratch:
        corpus = Path(scratch) / "sites"
        for copy in range(args.copies):
            shutil.copytree(SITES, corpus / f"copy-{copy:03d}")
        files = sum(1 for path in corpus.rglob("*") if path.is_file())
        isolated = settings.model_copy(
            update={"data_dir": Path(scratch) / "data", "model_dir": settings.resolved_model_dir}
        )
        embedder, store, registry = build_components(isolated)
        embedder.warm_up()
        print(f"corpus: {files} files ({args.copies} copies of {SITES.relative_to(SITES.parents[3])})")
        ingestor = build_ingestor(isolated, profile, embedder, store, registry)
        _run("fresh ingest", ingestor, corpus)
        _run("unchanged re-ingest", ingestor, corpus)
        regions = corpus / "copy-000" / "obsidian" / "en" / "Shared" / "Regions.md"
        regions.write_text(regions.read_text(encoding="utf-8").replace("Japan", "Japan, Korea"), encoding="utf-8")
        _run("after editing one embedded page", ingestor, corpus)


if __name__ == "__main__":
    main()
