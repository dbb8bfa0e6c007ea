"""The bench's verifier-on latency: measured on the side's own engine, which is left as it was."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from eval import bench
from retrieval.config import RetrievalProfile


class _Side:
    def __init__(self, verifier: object | None) -> None:
        self.engine = SimpleNamespace(verifier=verifier, profile=RetrievalProfile())
        self.settings = SimpleNamespace()
        self.depths: list[tuple[int, object | None]] = []

    def ask(self, question: str) -> None:
        self.depths.append((self.engine.profile.verify_depth, self.engine.verifier))


def test_asks_with_the_verifier_at_its_depth_then_restores_the_engine() -> None:
    verifier = object()
    side = _Side(verifier)
    figures = bench._verifier_latency(side, ["a", "b", "c"], depth=4)
    assert figures is not None and figures["verify_depth"] == 4
    assert figures["ask_p50_ms"] >= 0 and figures["ask_p95_ms"] >= figures["ask_p50_ms"]
    assert side.depths == [(4, verifier)] * 4  # one untimed warm-up, then each question
    assert side.engine.verifier is verifier and side.engine.profile.verify_depth == 0


def test_no_exported_verifier_gives_no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    import retrieval.verifier

    def load_verifier(settings: Any) -> None:
        return None

    monkeypatch.setattr(retrieval.verifier, "load_verifier", load_verifier)
    side = _Side(None)
    assert bench._verifier_latency(side, ["a"]) is None
    assert side.depths == []
