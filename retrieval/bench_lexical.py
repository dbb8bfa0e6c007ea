"""Lexical index benchmark: rebuilding the BM25 matrices from the rows in SQL, and the generation
check a search makes, on the database at ``--url`` (SQLite or PostgreSQL).

Fills ``lexical_chunks`` with ``--rows`` synthetic chunks (``--terms`` Zipf-distributed terms each,
over a 50k-term vocabulary, five tenants; inserted directly, without analysis, which is not what is
measured), then times ``--repeat`` full rebuilds (rows read + matrices built) and a fresh generation
read (one SQL round trip) against a throttled one. The rows are removed at the end. Not a test: it
prints figures.

Example::

    python -m retrieval.bench_lexical --rows 100000 --url postgresql+psycopg://root@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import delete, insert

from retrieval import generations
from retrieval.lexical import GENERATION, LexicalIndex, _ChunkRow

_VOCABULARY = 50_000
_BATCH = 5_000


def fill(index: LexicalIndex, rows: int, terms: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    words = [f"w{number}" for number in range(_VOCABULARY)]
    with index.engine.begin() as connection:
        connection.execute(delete(_ChunkRow))
        for start in range(0, rows, _BATCH):
            batch = []
            for number in range(start, min(start + _BATCH, rows)):
                drawn = np.minimum(rng.zipf(1.3, terms), _VOCABULARY) - 1
                tenant = f"t{number % 5}"
                batch.append(
                    {
                        "chunk_id": f"{tenant}:doc{number}#v1-0", "document_id": f"{tenant}:doc{number}",
                        "version": 1, "tenant": tenant, "audience": "public", "language": "en", "product": "",
                        "tags": json.dumps([]), "terms": " ".join(words[i] for i in drawn),
                    }
                )
            connection.execute(insert(_ChunkRow), batch)
        generations.bump(connection, GENERATION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="database URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--terms", type=int, default=120, help="terms per chunk")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'bench.db'}"
        index = LexicalIndex(url, background_rebuild=False)
        try:
            started = time.perf_counter()
            fill(index, args.rows, args.terms)
            print(f"{index.engine.dialect.name}: {args.rows} rows filled in {time.perf_counter() - started:.1f} s")
            times = []
            for _ in range(args.repeat):
                index._snapshot = None  # a process that has not built yet, or whose generation changed
                started = time.perf_counter()
                index.refresh()
                times.append(time.perf_counter() - started)
            print(f"rebuild (read rows + build matrices): median {statistics.median(times):.2f} s, "
                  f"min {min(times):.2f} s over {args.repeat}")
            checks = generations.Generations(index.engine)
            fresh = _per_call(lambda: checks.fresh(GENERATION))
            throttled = _per_call(lambda: checks.current(GENERATION))
            print(f"generation check: fresh read {fresh * 1e6:.0f} us, throttled {throttled * 1e6:.1f} us "
                  f"(ratio {fresh / throttled:.0f}x; a search reads at most every {generations.MAX_AGE_S} s)")
        finally:
            with index.engine.begin() as connection:
                connection.execute(delete(_ChunkRow))
                generations.bump(connection, GENERATION)
            index.close()


def _per_call(call: object, calls: int = 2000) -> float:
    assert callable(call)
    call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


if __name__ == "__main__":
    main()
