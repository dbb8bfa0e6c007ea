"""Exact search over the in-memory snapshot (retrieval/exact_search.py) against Chroma's own answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval import exact_search
from retrieval.exact_search import Int8Prefilter, Scores, best_candidates, build_snapshot, top_rows
from retrieval.records import Chunk, Hit
from retrieval.scope import Scope
from retrieval.use_encoder import use_store_beside
from retrieval.vector_store import ChromaStore

ROWS = 300


def _unit(rng: np.random.Generator, rows: int) -> np.ndarray:
    vectors = rng.normal(size=(rows, 32)).astype(np.float32)
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)


@pytest.fixture
def filled(tmp_path: Path) -> tuple[ChromaStore, np.ndarray]:
    store = ChromaStore(tmp_path / "chroma")
    vectors = _unit(np.random.default_rng(3), ROWS)
    chunks = [
        Chunk(
            chunk_id=f"doc{i // 3}#{i}",
            document_id=f"doc{i // 3}",
            text=f"text {i}",
            title="t",
            language="de" if i % 4 == 0 else "en",
        )
        for i in range(ROWS)
    ]
    store.upsert(chunks, vectors)
    return store, vectors


def _ids(store: ChromaStore, vector: np.ndarray, k: int, scope: Scope | None = None) -> list[str]:
    return [hit.chunk.chunk_id for hit in store.query(vector, k, scope)]


def test_exact_search_returns_what_chroma_returns(filled: tuple[ChromaStore, np.ndarray]) -> None:
    store, vectors = filled
    query = vectors[7] + 0.05 * _unit(np.random.default_rng(4), 1)[0]
    query /= np.linalg.norm(query)
    exact = store.query(query, 10)
    snapshot = store.snapshots.ready("default")
    assert snapshot is not None and snapshot.prefilter is None  # a small collection: read in line, float32 only
    store.exact_search = False
    chroma = store.query(query, 10)
    assert [hit.chunk for hit in exact] == [hit.chunk for hit in chroma]
    assert [hit.score for hit in exact] == pytest.approx([hit.score for hit in chroma], abs=1e-5)
    store.exact_search = True
    german = Scope.everything().narrowed(languages=["de"])  # a quarter of the rows: the search widens
    found = _ids(store, query, 10, german)
    store.exact_search = False
    assert found == _ids(store, query, 10, german)


def test_embedded_reads_the_snapshot(filled: tuple[ChromaStore, np.ndarray]) -> None:
    store, vectors = filled
    store.query(vectors[0], 1)
    from_memory = sorted(store.embedded(["doc1#3", "doc0#1", "missing#0"]), key=lambda item: item[0].chunk_id)
    store.exact_search = False
    from_chroma = sorted(store.embedded(["doc1#3", "doc0#1", "missing#0"]), key=lambda item: item[0].chunk_id)
    assert [chunk for chunk, _ in from_memory] == [chunk for chunk, _ in from_chroma]
    for (_, a), (_, b) in zip(from_memory, from_chroma, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_write_here_or_by_another_process_is_seen_at_once(filled: tuple[ChromaStore, np.ndarray]) -> None:
    store, vectors = filled
    query = vectors[11]
    assert _ids(store, query, 1) == ["doc3#11"]
    store.upsert([Chunk(chunk_id="near#0", document_id="near", text="n", title="", language="en")], query[None])
    assert _ids(store, query, 2)[0] in {"near#0", "doc3#11"} and "near#0" in _ids(store, query, 2)
    # Another process (here another store object) writes: the file stamp changes, the snapshot is dropped.
    other = ChromaStore(store.path, exact_search=False)
    other.delete(["near#0", "doc3#11"])
    assert "near#0" not in _ids(store, query, 5) and "doc3#11" not in _ids(store, query, 5)


def test_a_snapshot_read_in_pages_equals_one_read_whole(filled: tuple[ChromaStore, np.ndarray]) -> None:
    store, _ = filled
    collection = store.collection_of("default")
    paged, whole = build_snapshot(collection, (0, 0), batch=64), build_snapshot(collection, (0, 0), batch=ROWS * 2)
    assert paged.ids == whole.ids and paged.texts == whole.texts and paged.metadatas == whole.metadatas
    assert paged.matrix.shape == (ROWS, 32) and np.array_equal(paged.matrix, whole.matrix)


def test_the_use_snapshot_shares_the_e5_snapshots_texts_and_metadata(
    filled: tuple[ChromaStore, np.ndarray],
) -> None:
    store, _ = filled
    use_store = use_store_beside(store)
    stored = store.embedded([f"doc{i // 3}#{i}" for i in range(ROWS)])
    chunks = [chunk for chunk, _ in stored]
    use_store.upsert(chunks, _unit(np.random.default_rng(5), ROWS))
    probe = _unit(np.random.default_rng(6), 1)[0]
    store.query(probe, 5)
    use_store.query(probe, 5)
    e5, use = store.snapshots.ready("default"), use_store.snapshots.ready("default")
    assert e5 is not None and use is not None and use.ids
    for chunk_id, row in use.rows.items():
        assert use.texts[row] is e5.texts[e5.rows[chunk_id]]
        assert use.metadatas[row] is e5.metadatas[e5.rows[chunk_id]]
    assert not np.array_equal(use.matrix[use.rows[chunks[0].chunk_id]], e5.matrix[e5.rows[chunks[0].chunk_id]])


def test_the_shifted_query_equals_searching_the_moved_vector(filled: tuple[ChromaStore, np.ndarray]) -> None:
    store, vectors = filled
    rng = np.random.default_rng(5)
    query, shift = vectors[11], 0.6 * _unit(rng, 1)[0]
    moved = (query + shift) / np.linalg.norm(query + shift)
    for _ in range(2):  # the second time the shift's product comes from the snapshot's memo
        nearest, shifted = store.query_shifted(query, shift, 10)
        assert store.snapshots.ready("default") is not None
        assert [hit.chunk for hit in shifted] == [hit.chunk for hit in store.query(moved, 10)]
        assert [hit.chunk for hit in nearest] == [hit.chunk for hit in store.query(query, 10)]
        expected = [float(np.dot(moved, vectors[int(hit.chunk.chunk_id.split("#")[1])])) for hit in shifted]
        assert [hit.score for hit in shifted] == pytest.approx(expected, abs=1e-5)
    store.exact_search = False  # through Chroma: the moved vector searched as it is
    through_chroma = store.query_shifted(query, shift, 10)[1]
    assert [hit.chunk for hit in through_chroma] == [hit.chunk for hit in store.query(moved, 10)]


@pytest.fixture
def near_duplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ChromaStore, np.ndarray]:
    """Copies of 10 vectors with a little noise (eval/bench.py's chunks, smaller), and a snapshot
    that takes the int8 path (prefilter from 0 rows)."""
    monkeypatch.setattr(exact_search, "PREFILTER_ROWS", 0)
    rng = np.random.default_rng(7)
    copies = _unit(rng, 10)[np.arange(ROWS) % 10] + rng.normal(0, 0.003, size=(ROWS, 32)).astype(np.float32)
    vectors = np.asarray(copies / np.linalg.norm(copies, axis=1, keepdims=True), dtype=np.float32)
    store = ChromaStore(tmp_path / "chroma")
    languages = ["fr" if i % 20 == 0 else "en" for i in range(ROWS)]  # French: 15 rows, a narrow scope
    chunks = [
        Chunk(chunk_id=f"doc{i}#{i}", document_id=f"doc{i}", text=f"text {i}", title="t", language=language)
        for i, language in enumerate(languages)
    ]
    store.upsert(chunks, vectors)
    return store, vectors


def _exact(vectors: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray) -> list[tuple[str, float]]:
    scores = vectors[rows] @ query
    best = rows[np.argsort(-scores, kind="stable")[:k]]
    return [(f"doc{row}#{row}", float(vectors[row] @ query)) for row in best]


def _found(hits: list[Hit]) -> list[tuple[str, float]]:
    return [(hit.chunk.chunk_id, hit.score) for hit in hits]


def _assert_same(found: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [chunk_id for chunk_id, _ in found] == [chunk_id for chunk_id, _ in expected]
    assert [score for _, score in found] == pytest.approx([score for _, score in expected], abs=1e-6)


def test_the_int8_prefilter_returns_the_exact_neighbours_and_scores(
    near_duplicates: tuple[ChromaStore, np.ndarray],
) -> None:
    store, vectors = near_duplicates
    every_row, french = np.arange(ROWS), np.arange(0, ROWS, 20)
    rng = np.random.default_rng(8)
    for copy_of in (3, 4, 10):  # 30 copies of the base nearest the question: rescoring orders them
        query = vectors[copy_of] + 0.01 * _unit(rng, 1)[0]
        query /= np.linalg.norm(query)
        _assert_same(_found(store.query(query, 10)), _exact(vectors, query, 10, every_row))
        snapshot = store.snapshots.ready("default")
        assert snapshot is not None and snapshot.prefilter is not None
        # The int8 scores alone misorder the near-duplicates: without rescoring this test fails.
        approximate = snapshot.prefilter.scores(query)
        exact_rows = [int(chunk_id.split("#")[1]) for chunk_id, _ in _exact(vectors, query, 10, every_row)]
        assert list(np.argsort(-approximate)[:10]) != exact_rows
        scope = Scope.everything().narrowed(languages=["fr"])  # 15 rows of 300: widens to every row in scope
        _assert_same(_found(store.query(query, 10, scope)), _exact(vectors, query, 10, french))
        shift = 0.5 * _unit(rng, 1)[0]
        moved = (query + shift) / np.linalg.norm(query + shift)
        nearest, shifted = store.query_shifted(query, shift, 10, scope)
        _assert_same(_found(nearest), _exact(vectors, query, 10, french))
        _assert_same(_found(shifted), _exact(vectors, moved, 10, french))
        nearest, shifted = store.query_shifted(query, shift, 10)
        _assert_same(_found(shifted), _exact(vectors, moved, 10, every_row))


def test_int8_scores_are_close_to_the_exact_ones() -> None:
    rng = np.random.default_rng(9)
    matrix = _unit(rng, 2_000)
    prefilter = Int8Prefilter(matrix)
    for query in _unit(rng, 20):
        approximate = prefilter.scores(query)
        assert approximate.dtype == np.float32 and approximate.shape == (2_000,)
        assert np.abs(approximate - matrix @ query).max() <= min(prefilter.error, 0.01)


@pytest.mark.parametrize("noise", ["uniform", "worst"])
def test_rows_near_the_nth_best_approximate_score_are_rescored(noise: str) -> None:
    """Whatever the approximate scores' errors within ``error`` (spread evenly, or all at the bound
    against the true best rows), the exact top n is found among 2,000 near-duplicates (scores a few
    thousandths apart), rescoring far fewer rows than there are."""
    rng = np.random.default_rng(12)
    copies = _unit(rng, 1)[np.zeros(2_000, dtype=int)] + rng.normal(0, 0.02, size=(2_000, 32))
    matrix = np.vstack([copies / np.linalg.norm(copies, axis=1, keepdims=True), _unit(rng, 3_000)]).astype(np.float32)
    vector = matrix[0]
    exact = matrix @ vector
    error = 0.001
    best = {row for row, _ in top_rows(exact, 10)}
    if noise == "uniform":
        shift = rng.uniform(-error, error, size=len(exact))
    else:
        shift = np.where(np.isin(np.arange(len(exact)), list(best)), -error, error)
    scores = Scores(matrix, vector, np.asarray(exact + shift, dtype=np.float32), exact=False, error=error)
    found, expected = scores.top(10), top_rows(exact, 10)
    assert [row for row, _ in found] == [row for row, _ in expected]
    assert [score for _, score in found] == pytest.approx([score for _, score in expected], abs=1e-6)
    assert len(scores._rescored[10][0]) < len(matrix) // 10


def test_snapshots_prepared_at_start_share_rows_even_when_built_at_once(
    filled: tuple[ChromaStore, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare_snapshots (the server's warm-up) starts the e5 and USE builds together in the
    background; the second waits for the first and shares its texts and metadata."""
    import threading
    import time

    from retrieval import exact_search

    store, _ = filled
    use_store = use_store_beside(store)
    use_store_beside(store)  # the server makes another one beside it (its ingestor's)
    use_store.upsert(
        [chunk for chunk, _ in store.embedded([f"doc{i // 3}#{i}" for i in range(ROWS)])],
        _unit(np.random.default_rng(5), ROWS),
    )
    read = exact_search.build_snapshot

    def slow(*args: object, **kwargs: object) -> exact_search.Snapshot:
        time.sleep(0.3)  # long enough for the two builds to overlap unless one waits
        return read(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(exact_search, "build_snapshot", slow)
    monkeypatch.setattr(exact_search, "SYNC_BUILD_ROWS", 0)  # both big: built in the background
    store.prepare_snapshots()
    use_store.prepare_snapshots()
    for thread in [thread for thread in threading.enumerate() if thread.name.startswith("exact-search-")]:
        thread.join(10)
    e5, use = store.snapshots.ready("default"), use_store.snapshots.ready("default")
    assert e5 is not None and use is not None
    assert all(use.texts[row] is e5.texts[e5.rows[chunk_id]] for chunk_id, row in use.rows.items())
    assert all(use.metadatas[row] is e5.metadatas[e5.rows[chunk_id]] for chunk_id, row in use.rows.items())


def test_a_snapshot_holds_each_metadata_key_and_repeated_value_once(filled: tuple[ChromaStore, np.ndarray]) -> None:
    store, _ = filled
    snapshot = build_snapshot(store.collection_of("default"), (0, 0))
    first, other = snapshot.metadatas[0], snapshot.metadatas[4]
    assert first["language"] == other["language"] == "de"
    assert {id(key) for key in first} == {id(key) for key in other}  # the same key objects
    assert first["language"] is other["language"] and first["tenant"] is other["tenant"]


@pytest.mark.parametrize("layout", ["random", "periodic", "tied"])
def test_best_candidates_hold_the_best_rows(layout: str) -> None:
    """Every row among the ``wanted`` best is picked, in ascending order, and not many more: also when
    the rows repeat a few hundred values in order (the bench's copies, which fooled a strided sample)
    and when every score is equal (the bound keeps all rows; argpartition then picks exactly ``wanted``)."""
    rng = np.random.default_rng(11)
    rows, wanted = 100_000, 1_000
    if layout == "random":
        scores = rng.normal(size=rows).astype(np.float32)
    elif layout == "periodic":
        scores = (rng.normal(size=300)[np.arange(rows) % 300] + rng.normal(0, 0.01, size=rows)).astype(np.float32)
    else:
        scores = np.ones(rows, dtype=np.float32)
    picked = best_candidates(scores, wanted)
    assert np.all(np.diff(picked) > 0)
    assert wanted <= len(picked) <= 3 * wanted
    assert (len(picked) == wanted) == (layout == "tied")  # else the sampled bound, not argpartition, picked
    bound = np.sort(scores)[-wanted]
    assert set(np.flatnonzero(scores > bound)) <= set(picked.tolist())
    assert len(best_candidates(scores[:500], wanted)) == 500
    few = best_candidates(scores, 10)  # a question's top 10: the sampled bound keeps ~120 rows
    assert set(np.argsort(-scores, kind="stable")[:10].tolist()) <= set(few.tolist()) or layout == "tied"
    assert (len(few) == 10) == (layout == "tied")
