from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from answerdesk.cli import app
from eval.datasets import load_suite
from eval.run import run_suite
from eval.sweep import parse_grid, sweep
from retrieval.config import RetrievalProfile, Settings, get_settings
from retrieval.embedding import HashingEmbedder

# The hashing embedder's cosines are far below e5's, so the threshold moves with it.
HASHING_PROFILE = RetrievalProfile(score_midpoint=0.3, cross_lingual_bonus=0.0)


@pytest.mark.parametrize(
    "system",
    # The LlamaIndex peer takes seconds to import: slow, so the fast loop keeps the other systems.
    ["answerdesk", "answerdesk-dense", "lexical", pytest.param("llamaindex", marks=pytest.mark.slow), "dense", "bm25"],
)
def test_every_system_runs_a_suite_end_to_end(public_data: Path, tmp_path: Path, system: str) -> None:
    suite = load_suite("xquad-r-abstain:en-en", Settings(eval_data_dir=public_data))
    metrics, results = run_suite(suite, system, HASHING_PROFILE, HashingEmbedder(), tmp_path, show_progress=False)
    assert len(results) == 6
    assert metrics["recall@1"] == 1.0  # the 4 kept articles share words with their questions
    assert metrics["should_abstain"] == 2
    for key in ("mrr@10", "ndcg@10", "hallucination_rate", "error_rate", "abstain_precision", "latency_p50_ms"):
        assert key in metrics
    assert set(metrics["per_language"]) == {"en"}
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["system"] == system
    assert len((tmp_path / "cases.jsonl").read_text().splitlines()) == 6
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") == 4


def test_sweep_sorts_by_the_primary_metric(public_data: Path) -> None:
    suite = load_suite("xquad-r-abstain:en-en", Settings(eval_data_dir=public_data))
    axes = parse_grid(["min_confidence=0,1", "chunk_target_tokens=64,250"], HASHING_PROFILE)
    points = sweep([suite], HASHING_PROFILE, axes, HashingEmbedder(), "hallucination_rate", show_progress=False)
    assert len(points) == 4
    assert [point.metrics["hallucination_rate"] for point in points] == [0.0, 0.0, 1.0, 1.0]
    assert points[0].values["min_confidence"] == 1


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("top_k", "expected KNOB"), ("colour=red", "not a profile knob"), ("top_k=0", "greater than or equal")],
)
def test_bad_grids_are_explained(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_grid([spec], RetrievalProfile())


@pytest.fixture
def cli_env(public_data: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ANSWERDESK_EVAL_DATA_DIR", str(public_data))
    monkeypatch.setenv("ANSWERDESK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ANSWERDESK_MODEL_DIR", str(model_dir))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.integration
def test_cli_runs_all_systems_compares_and_calibrates(cli_env: Path) -> None:
    runner = CliRunner()
    out = cli_env / "out"
    result = runner.invoke(
        app, ["eval", "run", "--suite", "xquad-r:ru-en", "--suite", "squad2", "--system", "all", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "eval summary" in result.output
    summary = (out / "summary.md").read_text()
    assert summary.count("| xquad-r:ru-en |") == 4
    for system in ("answerdesk", "llamaindex", "dense", "bm25"):
        assert (out / "xquad-r_ru-en" / system / "metrics.json").is_file()
    metrics = json.loads((out / "xquad-r_ru-en" / "answerdesk" / "metrics.json").read_text())
    assert metrics["recall@1"] >= 0.8  # e5 matches the Russian questions to the English paragraphs

    compared = runner.invoke(app, ["eval", "compare", str(out / "squad2" / "bm25"), str(out / "squad2" / "answerdesk")])
    assert compared.exit_code == 0, compared.output
    assert "recall@1" in compared.output
    assert "verdict" in compared.output

    profile = cli_env / "fitted.toml"
    calibrated = runner.invoke(
        app,
        ["eval", "calibrate", "--suite", "sample", "--limit", "60", "--out", str(profile)],
    )
    assert calibrated.exit_code == 0, calibrated.output
    assert RetrievalProfile.from_toml(profile).name == "calibrated"
    assert "cross-validation" in profile.with_suffix(".md").read_text(encoding="utf-8")

    refused = runner.invoke(app, ["eval", "calibrate", "--suite", "squad2", "--out", str(profile)])
    assert refused.exit_code == 2
    assert "public eval (test) set" in " ".join(refused.output.split())


@pytest.mark.integration  # the CLI prepares the model before it looks for the suite's data
def test_cli_skips_a_suite_whose_data_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSWERDESK_EVAL_DATA_DIR", str(tmp_path / "nowhere"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["eval", "run", "--suite", "squad2", "--system", "bm25"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0
    assert "skipped squad2" in result.output


def test_cli_rejects_unknown_suites_and_systems() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["eval", "run", "--suite", "nope"]).exit_code == 2
    assert runner.invoke(app, ["eval", "run", "--suite", "sample", "--system", "gpt"]).exit_code == 2
