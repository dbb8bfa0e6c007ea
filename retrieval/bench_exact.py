"""Exact-search benchmark: the cost of scoring a question and its centred form over a snapshot of
``--rows`` unit vectors (384-d, e5's size), as two passes over the matrix (before) and as one pass
plus the kept product with the language's shift (``Snapshot.shifted_scores``), side by side in one
run; also BLAS on one thread vs its default. Prints figures (ms, median of ``--repeat``); not a test.

Example::

    python -m retrieval.bench_exact --rows 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from retrieval.exact_search import Snapshot, one_blas_thread


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e3, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(args.rows, 384)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ids = [str(row) for row in range(args.rows)]
    snapshot = Snapshot(stamp=(0, 0), ids=ids, matrix=matrix, texts=[""] * args.rows, metadatas=[{}] * args.rows)
    question = matrix[0]
    shift = np.asarray(0.1 * rng.normal(size=384), dtype=np.float32)
    norm = float(np.linalg.norm(question + shift))
    centred = np.asarray((question + shift) / norm, dtype=np.float32)

    def one_pass() -> np.ndarray:
        return snapshot.shifted_scores(snapshot.scores([question])[0], shift, norm)

    def default_blas() -> object:
        return matrix @ question

    def one_thread() -> object:
        with one_blas_thread():
            return matrix @ question

    for _ in range(2):  # both sides interleaved, twice, so machine noise hits both
        figures = {
            "rows": args.rows,
            "two_passes_ms": _median_ms(lambda: snapshot.scores([question, centred]), args.repeat),
            "one_pass_and_shift_ms": _median_ms(one_pass, args.repeat),
            "blas_default_threads_ms": _median_ms(default_blas, args.repeat),
            "blas_one_thread_ms": _median_ms(one_thread, args.repeat),
            "max_abs_score_difference": float(np.abs(one_pass() - snapshot.scores([centred])[0]).max()),
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
