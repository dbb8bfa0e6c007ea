"""Exact-search benchmark; prints figures (ms), not a test.

1. The cost of scoring a question and its centred form over a snapshot of ``--rows`` unit vectors
   (384-d, e5's size), as two passes over the matrix and as one pass plus the kept product with the
   language's shift (``Snapshot.shifted_scores``); also BLAS on one thread vs its default (medians
   of ``--repeat``).
2. The float32 pass against the int8 prefilter with exact rescoring (``Int8Prefilter``,
   ``Scores.top``) at each of ``--sizes`` rows, on vectors made as ``answerdesk eval bench`` makes
   them (copies of a few hundred base vectors plus N(0, 0.02) noise, renormalised): p50 / p95 of a
   question's top 10 and of a question with its centred form, the recall@10 of the prefilter path
   against the exact one (and of the int8 scores alone, without rescoring), and the memory the
   prefilter adds. Both sides run interleaved, question by question, so machine noise hits both.

Example::

    python -m retrieval.bench_exact --rows 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from retrieval import exact_search
from retrieval.exact_search import Int8Prefilter, Snapshot, one_blas_thread

DIMS = 384
BASES = 300  # passages the bench's synthetic chunks are copied from
NOISE = 0.02  # eval/bench.py NOISE


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e3, 2)


def _unit(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    return np.asarray(vectors / np.linalg.norm(vectors, axis=-1, keepdims=True), dtype=np.float32)


def two_passes_vs_one(rows: int, repeat: int) -> None:
    """Part 1 (module docstring)."""
    rng = np.random.default_rng(0)
    matrix = _unit(rng.normal(size=(rows, DIMS)).astype(np.float32))
    snapshot = _snapshot(matrix, None)
    question = matrix[0]
    shift = np.asarray(0.1 * rng.normal(size=DIMS), dtype=np.float32)
    norm = float(np.linalg.norm(question + shift))
    centred = np.asarray((question + shift) / norm, dtype=np.float32)

    def one_pass() -> np.ndarray:
        return snapshot.shifted_scores(snapshot.scores(question), shift, norm).approximate

    def default_blas() -> object:
        return matrix @ question

    def one_thread() -> object:
        with one_blas_thread():
            return matrix @ question

    for _ in range(2):  # both sides interleaved, twice, so machine noise hits both
        figures = {
            "rows": rows,
            "two_passes_ms": _median_ms(lambda: (snapshot.product(question), snapshot.product(centred)), repeat),
            "one_pass_and_shift_ms": _median_ms(one_pass, repeat),
            "blas_default_threads_ms": _median_ms(default_blas, repeat),
            "blas_one_thread_ms": _median_ms(one_thread, repeat),
            "max_abs_score_difference": float(np.abs(one_pass() - snapshot.product(centred)).max()),
        }
        print(json.dumps(figures))


def _snapshot(matrix: NDArray[np.float32], prefilter: Int8Prefilter | None) -> Snapshot:
    rows = len(matrix)
    ids = [str(row) for row in range(rows)]
    return Snapshot((0, 0), ids, matrix, [""] * rows, [{}] * rows, prefilter=prefilter)


def _ms(times: list[float], quantile: float) -> float:
    return round(float(np.quantile(times, quantile)) * 1e3, 2)


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def _peak_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def bench_vectors(rows: int, rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Base vectors sharing a common direction (pairwise cosine ~0.6, as e5's are), and ``rows`` noisy copies."""
    common = rng.normal(size=DIMS)
    bases = _unit(0.8 * _unit(common) + 0.6 * _unit(rng.normal(size=(BASES, DIMS))))
    matrix = np.empty((rows, DIMS), dtype=np.float32)
    for start in range(0, rows, 10_000):
        stop = min(start + 10_000, rows)
        copies = bases[np.arange(start, stop) % BASES]
        matrix[start:stop] = _unit(copies + rng.normal(0.0, NOISE, size=copies.shape).astype(np.float32))
    return bases, matrix


def prefilter_vs_float32(sizes: list[int], questions: int) -> None:
    """Part 2 (module docstring)."""
    rng = np.random.default_rng(1)
    bases, matrix = bench_vectors(max(sizes), rng)
    # A question: a base vector moved off it (cosine ~0.85), so several bases' copies compete.
    asked = _unit(bases[rng.integers(BASES, size=questions)] + rng.normal(0, 0.03, size=(questions, DIMS)))
    shift = np.asarray(0.1 * rng.normal(size=DIMS), dtype=np.float32)
    for rows in sorted(sizes, reverse=True):  # the biggest first: its memory is measured on a fresh heap
        part = matrix[:rows]
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here
        before, started = _rss_mb(), time.perf_counter()
        prefilter = Int8Prefilter(part)
        build_s, added, peak = time.perf_counter() - started, _rss_mb() - before, _peak_mb() - before
        exact, fast = _snapshot(part, None), _snapshot(part, prefilter)
        timings: dict[str, list[float]] = {"float32": [], "int8": [], "float32_centred": [], "int8_centred": []}
        found = found_unrescored = 0
        rescored: list[int] = []  # rows the int8 path rescored per top 10
        worst_score_difference = 0.0
        for question in asked:
            norm = float(np.linalg.norm(question + shift))
            for name, snapshot in (("float32", exact), ("int8", fast)):
                started = time.perf_counter()
                scored = snapshot.scores(question)
                top = scored.top(10)
                timings[name].append(time.perf_counter() - started)
                if name == "int8":
                    rescored.append(len(scored._rescored[10][0]))
                started = time.perf_counter()
                scores = snapshot.scores(question)
                both = scores.top(10), snapshot.shifted_scores(scores, shift, norm).top(10)
                timings[f"{name}_centred"].append(time.perf_counter() - started)
                if name == "float32":
                    expected, expected_centred = top, both[1]
            found += len({row for row, _ in expected} & {row for row, _ in top})
            found += len({row for row, _ in expected_centred} & {row for row, _ in both[1]})
            int8_only = np.argpartition(-prefilter.scores(question), 10)[:10]
            found_unrescored += len({row for row, _ in expected} & set(int8_only.tolist()))
            if [row for row, _ in top] == [row for row, _ in expected]:
                pairs = zip(top, expected, strict=True)
                worst_score_difference = max(worst_score_difference, *(abs(a[1] - b[1]) for a, b in pairs))

        figures: dict[str, object] = {"rows": rows}
        for name in ("", "_centred"):
            for label, quantile in (("p50", 0.5), ("p95", 0.95)):
                slow, quick = (_ms(timings[f"{side}{name}"], quantile) for side in ("float32", "int8"))
                figures[f"{label}{name}_ms float32 / int8 / ratio"] = [slow, quick, round(quick / slow, 3)]
        figures |= {
            "recall_at_10_vs_exact": found / (20 * questions),
            "recall_at_10_int8_without_rescoring": found_unrescored / (10 * questions),
            "max_score_difference_same_ranking": worst_score_difference,
            "prefilter_error": round(prefilter.error, 5),
            "rows_rescored_mean / max": [round(float(np.mean(rescored)), 1), max(rescored)],
            "prefilter_build_s": round(build_s, 2),
            "prefilter_rss_added_mb": round(added, 1),
            "prefilter_build_peak_over_before_mb": round(peak, 1),
            "float32_matrix_mb": round(part.nbytes / 2**20, 1),
        }
        print(json.dumps(figures))
        del exact, fast, prefilter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="part 1's rows")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--sizes", default="10000,20000,50000,100000", help="part 2's rows, comma-separated")
    parser.add_argument("--questions", type=int, default=200)
    args = parser.parse_args()
    prefilter_vs_float32([int(size) for size in args.sizes.split(",")], args.questions)
    two_passes_vs_one(args.rows, args.repeat)
    print(json.dumps({"prefilter_rows": exact_search.PREFILTER_ROWS}))


if __name__ == "__main__":
    main()
