"""Crash safety: ``kill -9`` in the middle of ingesting 1,000 documents, then a rerun.

After the rerun every document must be present exactly once, in its newest version, with no orphan
or duplicate chunks, and the registry, the vector store and the lexical index must agree. The worker process uses the
hashing embedder, so the test measures the write protocol, not the model.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.chunk import Chunker
from ingest.pipeline import Ingestor, Outcome
from retrieval.embedding import HashingEmbedder
from retrieval.lexical import LexicalIndex
from retrieval.registry import DocumentRegistry
from retrieval.vector_store import ChromaStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = 1000
WORKER = """
import sys
from pathlib import Path
from tests.ingest.test_crash import ingestor
ingestor(Path(sys.argv[1])).ingest([Path(sys.argv[2])], sync=True)
"""


def ingestor(data: Path) -> Ingestor:
    """The ingestor the worker and the test share: hashing embedder, small publish batches."""
    data.mkdir(parents=True, exist_ok=True)
    embedder = HashingEmbedder()
    return Ingestor(
        embedder,
        ChromaStore(data / "chroma"),
        DocumentRegistry(f"sqlite:///{data / 'registry.db'}"),
        Chunker(embedder.count_tokens),
        batch_passages=24,
        lock_path=data / "ingest.lock",
        lexical=LexicalIndex(f"sqlite:///{data / 'registry.db'}"),
    )


def _write_corpus(root: Path, edition: int) -> None:
    for number in range(DOCUMENTS):
        path = root / f"topic-{number // 100}" / f"doc-{number:04d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"---\ntitle: Article {number}\nlocale: en\n---\n# Article {number}\n\n"
            f"## Overview\n\nEdition {edition} of article {number} explains feature {number} in detail.\n\n"
            f"## Steps\n\n- Open settings for feature {number}.\n- Turn it on (edition {edition}).\n",
            encoding="utf-8",
        )


def _registered(data: Path, version: int) -> int:
    """How many documents the registry holds at ``version`` or later (read-only, while a worker writes)."""
    try:
        with sqlite3.connect(f"file:{data / 'registry.db'}?mode=ro", uri=True, timeout=1) as connection:
            query = "SELECT COUNT(*) FROM documents WHERE version >= ?"
            return int(connection.execute(query, (version,)).fetchone()[0])
    except sqlite3.Error:
        return 0


def _run_and_kill(data: Path, corpus: Path, after_documents: int, version: int) -> int:
    """Start an ingest in a worker process and SIGKILL it once ``after_documents`` reached ``version``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(data), str(corpus)], cwd=REPO, env=env)
    deadline = time.monotonic() + 240
    while worker.poll() is None and time.monotonic() < deadline:
        if _registered(data, version) >= after_documents:
            break
        time.sleep(0.02)
    assert worker.poll() is None, "the worker finished before it could be killed"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    registered = _registered(data, version)
    # What the crash left behind (shown with -s): journal entries, orphan or missing chunks.
    print(f"killed with {registered} documents at version {version}: {ingestor(data).audit() or 'consistent'}")
    return registered


def _assert_whole(data: Path, edition: int) -> None:
    ingest = ingestor(data)
    registry, store = ingest.registry, ingest.store
    records = {record.document_id: record for record in registry.all()}
    assert len(records) == DOCUMENTS
    stored = store.collection.get(include=["documents", "metadatas"])
    live = {chunk_id for record in records.values() for chunk_id in record.chunk_ids}
    assert len(stored["ids"]) == len(set(stored["ids"])) == len(live)  # no orphans, no duplicates
    assert set(stored["ids"]) == live
    assert ingest.lexical is not None
    lexical = ingest.lexical.inventory()
    assert set(lexical) == live
    assert all(version == records[document_id].version for document_id, version in lexical.values())
    for chunk_id, text, meta in zip(stored["ids"], stored["documents"], stored["metadatas"], strict=True):
        record = records[str(meta["document_id"])]
        assert meta["version"] == record.version, chunk_id
        if "Edition" in text:
            assert f"Edition {edition} " in text, chunk_id
    assert ingest.audit() == []


def test_kill_9_mid_ingest_then_rerun_leaves_every_document_exactly_once(tmp_path: Path) -> None:
    corpus, data = tmp_path / "kb", tmp_path / "data"
    _write_corpus(corpus, edition=1)
    killed_at = _run_and_kill(data, corpus, after_documents=300, version=1)
    assert 0 < killed_at < DOCUMENTS
    results = ingestor(data).ingest([corpus], sync=True)
    assert not [result for result in results if result.outcome == Outcome.FAILED]
    _assert_whole(data, edition=1)

    # Now every document changes, and the crash hits while versions are being replaced.
    _write_corpus(corpus, edition=2)
    replaced = _run_and_kill(data, corpus, after_documents=300, version=2)
    assert 0 < replaced < DOCUMENTS
    rerun = ingestor(data)
    results = rerun.ingest([corpus], sync=True)
    assert not [result for result in results if result.outcome == Outcome.FAILED]
    assert {result.outcome for result in results} <= {Outcome.UPDATED, Outcome.UNCHANGED}
    _assert_whole(data, edition=2)
