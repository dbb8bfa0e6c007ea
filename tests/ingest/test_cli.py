"""`answerdesk ingest`: summary table, dry run, exit codes (with the fast hashing embedder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from answerdesk.cli import app
from retrieval.config import get_settings
from retrieval.embedding import HashingEmbedder


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ANSWERDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("retrieval.pipeline.load_embedder", lambda *args, **kwargs: HashingEmbedder())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_ingest_summary_and_exit_codes(runner: CliRunner, tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "faq.md").write_text("---\ntype: faq\n---\n# FAQ\n\n## Why?\nBecause.\n", encoding="utf-8")
    first = runner.invoke(app, ["ingest", str(kb), "--sync"])
    assert first.exit_code == 0, first.output
    assert "ingest summary" in first.output and "faq.md" in first.output and "added" in first.output

    (kb / "broken.md").write_bytes(b"\xff\xfe broken")
    (kb / "faq.md").unlink()
    dry = runner.invoke(app, ["ingest", str(kb), "--sync", "--dry-run"])
    assert dry.exit_code == 1  # broken.md fails even in a dry run
    assert "nothing was written" in dry.output and "removed" in dry.output
    assert "broken.md" in dry.output and "invalid_utf8" in dry.output

    failed = runner.invoke(app, ["ingest", str(kb), "--sync"])
    assert failed.exit_code == 1
    assert runner.invoke(app, ["check"]).exit_code == 0
    assert runner.invoke(app, ["ingest", str(kb / "missing.md")]).exit_code == 1


def test_ingest_json_gives_one_object_per_file_and_a_summary(runner: CliRunner, tmp_path: Path) -> None:
    import json

    kb = tmp_path / "vault"
    (kb / "en").mkdir(parents=True)
    (kb / "en" / "Refund policy.md").write_text(
        "# Refund policy\n\nRefunds take 5 days. ![[Missing page#Section]]\n\nA stray [[ bracket stays.\n",
        encoding="utf-8",
    )
    (kb / "en" / "Invoices.md").write_text("# Invoices\n\nSee [[Refund policy|refunds]].\n", encoding="utf-8")
    (kb / "en" / "broken.md").write_bytes(b"\xff\xfe broken")
    result = runner.invoke(app, ["ingest", str(kb), "--json"])
    assert result.exit_code == 1, result.output  # broken.md failed
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    files, summary = lines[:-1], lines[-1]
    by_id = {entry["document_id"]: entry for entry in files if entry["document_id"]}
    assert {entry["outcome"] for entry in files} == {"added", "failed"}
    kinds = [warning["kind"] for warning in by_id["en/Refund policy"]["warnings"]]
    assert kinds == ["leftover_markup_wikilink", "dangling_embed"]
    assert "Missing page" in by_id["en/Refund policy"]["warnings"][1]["message"]
    assert by_id["en/Invoices"]["warnings"] == []
    assert next(entry for entry in files if entry["outcome"] == "failed")["code"] == "invalid_utf8"
    assert summary["summary"] is True and (summary["added"], summary["failed"]) == (2, 1)
    assert summary["warnings"] == {"dangling_embed": 1, "leftover_markup_wikilink": 1}
    assert summary["seconds"]["total"] > 0
