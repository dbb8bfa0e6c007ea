from __future__ import annotations

import json
from pathlib import Path

from eval.bench import _snapshots_built


def _line(message: str) -> str:
    return json.dumps({"level": "INFO", "logger": "retrieval.exact_search", "message": message})


def test_the_bench_waits_for_the_servers_snapshots_in_its_log(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    log.write_text(
        _line("loaded ONNX embedder")
        + "\n"
        + _line("exact search: 100000 vectors of tenant default in memory (21.0 s)")
        + "\n"
    )
    assert _snapshots_built(log, expected=2, timeout=0.0) == 1  # the USE snapshot is not there yet
    with log.open("a") as handle:
        handle.write(_line("exact search: 100000 vectors of tenant default in memory (9.5 s)") + "\n")
    assert _snapshots_built(log, expected=2, timeout=5.0) == 2
