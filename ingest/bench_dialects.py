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
from ingest.markdown_dialects import leftover_markup
from ingest.parse import parse_bytes
from ingest.pipeline import build_ingestor
from retrieval.config import get_settings
from retrieval.pipeline import build_components
from retrieval.records import Document

SITES = Path(__file__).resolve().parent.parent / "tests" / "ingest" / "fixtures" / "sites"


def parse_speed(files: list[Path], rounds: int) -> None:
    """Seconds per Markdown file: our dialect-aware path beside unstructured's partition_md."""
    import frontmatter
    from unstructured.partition.md import partition_md

    from ingest.parse import _from_elements, _unstructured

    _unstructured()  # imports and the spaCy stand-in, outside the timing

    def before(path: Path, raw: bytes) -> Document:  # the parser before issue #16: partition_md, same sectioning
        post = frontmatter.loads(raw.decode("utf-8"))
        return _from_elements(path, partition_md(text=post.content, languages=[""]), dict(post.metadata), path.stem)

    texts = [(path, path.read_bytes()) for path in files]
    seconds: dict[str, float] = {}
    marked: dict[str, str] = {}
    for name, parse in (("ours", lambda path, raw: parse_bytes(raw, path, path.stem)), ("before", before)):
        documents = [parse(path, raw) for path, raw in texts]  # warm-up: imports, parser set-up
        started = time.perf_counter()
        for _ in range(rounds):
            documents = [parse(path, raw) for path, raw in texts]
        seconds[name] = (time.perf_counter() - started) / (rounds * len(texts))
        sections = [section for document in documents for section in document.sections]
        noisy = sum(1 for section in sections if leftover_markup([*section.path, *section.blocks]))
        marked[name] = f"{noisy}/{len(sections)} ({noisy / len(sections):.0%})"
    print(
        f"parse, {len(texts)} Markdown files × {rounds}: ours {seconds['ours'] * 1000:.2f} ms/file, "
        f"before (unstructured partition_md) {seconds['before'] * 1000:.2f} ms/file "
        f"(ratio {seconds['ours'] / seconds['before']:.2f}); sections with leftover markup: "
        f"ours {marked['ours']}, before {marked['before']} (parse only, without transclusion)"
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
