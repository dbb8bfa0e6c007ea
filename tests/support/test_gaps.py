"""Gap clustering maths and the HTML page (hashing embedder; the real-model check is an integration test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retrieval.embedding import HashingEmbedder
from retrieval.records import Reason
from retrieval.vector_store import ChromaStore
from support.gaps import cluster_vectors, gap_clusters, is_unanswered, render_html
from support.store import AuditRecord


def _record(answer_id: str, question: str, status: str = "abstained", reasons: list[str] | None = None) -> AuditRecord:
    return AuditRecord(
        answer_id=answer_id,
        conversation_id="c",
        created_at="2025-01-01T00:00:00",
        question=question,
        query=question,
        language="en",
        status=status,
        confidence=0.1,
        answer="",
        reasons=[Reason.parse(reason) for reason in reasons or ["low_confidence: x"]],
        retrieved=[],
        cited_documents=[],
        profile="default@x",
        latency_ms=1.0,
    )


def test_cluster_vectors_groups_near_duplicates_largest_first() -> None:
    vectors = np.array([[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0, 0.98, 0.1], [0.01, 0.99, 0.05]], dtype=np.float32)
    assert cluster_vectors(vectors, 0.05) == [[2, 3, 4], [0, 1]]
    assert cluster_vectors(vectors[:1]) == [[0]]
    assert cluster_vectors(np.zeros((0, 3), dtype=np.float32)) == []


def test_only_unanswered_questions_count() -> None:
    assert is_unanswered(_record("a", "q"))
    assert is_unanswered(_record("b", "q", "escalated", ["customer_requested_human: x", "low_confidence: y"]))
    assert not is_unanswered(_record("c", "q", "escalated", ["customer_requested_human: x", "confident_match: y"]))
    assert not is_unanswered(_record("d", "q", "answered", ["confident_match: y"]))


def test_examples_are_redacted_and_the_page_escaped(tmp_path: Path) -> None:
    records = [
        _record("1", "gift cards for sale? mail anna@example.com"),
        _record("2", "gift cards for sale?"),
        _record("3", "<script>alert(1)</script> gift cards for sale"),
        _record("4", "answered one", "answered", ["confident_match: y"]),
    ]
    store = ChromaStore(tmp_path / "chroma", "empty")
    clusters = gap_clusters(records, HashingEmbedder(), store, max_distance=0.9)
    assert sum(cluster.size for cluster in clusters) == 3
    page = render_html(clusters)
    assert "anna@example.com" not in page and "[EMAIL]" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
