"""An embedding cache keyed by content: reruns over the same texts never touch the model.

Example::

    embedder = CachingEmbedder(OnnxEmbedder(model_dir), Path("var/cache/embeddings.sqlite3"), "onnx:e5-small")
    embedder.embed_documents(passages)  # computed once, read back on every later run
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrieval.embedding import PASSAGE_PREFIX, QUERY_PREFIX, Embedder, Matrix, Vector

logger = logging.getLogger(__name__)

_Compute = Callable[[list[str]], Matrix]


def cache_key(model_id: str, prefix: str, text: str) -> str:
    """sha256 of model id, prefix and text: a different model or role never shares a vector."""
    return hashlib.sha256(f"{model_id}\x00{prefix}\x00{text}".encode()).hexdigest()


class CachingEmbedder:
    """Wraps an Embedder; vectors live in one SQLite file (``path``), or in memory when ``path`` is None.

    Only misses reach the wrapped embedder, so a fully cached run never loads the model.
    ``cache_queries=False`` embeds every question afresh (for honest query latencies).
    """

    def __init__(self, inner: Embedder, path: Path | None, model_id: str, cache_queries: bool = True) -> None:
        self.inner = inner
        self.path = path
        self.model_id = model_id
        self.cache_queries = cache_queries
        self.dimension = inner.dimension
        self.hits = 0
        self.misses = 0
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            target = str(self.path) if self.path is not None else ":memory:"
            connection = sqlite3.connect(target, check_same_thread=False)
            connection.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
            self._connection = connection
        return self._connection

    def embed_query(self, text: str) -> Vector:
        if not self.cache_queries:
            return self.inner.embed_query(text)
        return np.asarray(self._cached([text], QUERY_PREFIX, lambda texts: self.inner.embed_query(texts[0])[None])[0])

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        return self._cached(list(texts), PASSAGE_PREFIX, self.inner.embed_documents)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def warm_up(self) -> None:
        self.inner.warm_up()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _cached(self, texts: list[str], prefix: str, compute: _Compute) -> Matrix:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        keys = [cache_key(self.model_id, prefix, text) for text in texts]
        found = self._lookup(sorted(set(keys)))
        missing = [i for i, key in enumerate(keys) if key not in found]
        for i, key in enumerate(keys):
            if key in found:
                out[i] = found[key]
        # A text repeated within one call is embedded once.
        unique_missing = list(dict.fromkeys(keys[i] for i in missing))
        if unique_missing:
            first_index = {keys[i]: i for i in reversed(missing)}
            vectors = compute([texts[first_index[key]] for key in unique_missing])
            computed = dict(zip(unique_missing, vectors, strict=True))
            for i in missing:
                out[i] = computed[keys[i]]
            self._store(computed)
        self.hits += len(texts) - len(missing)
        self.misses += len(unique_missing)
        return out

    def _lookup(self, keys: list[str]) -> dict[str, Vector]:
        found: dict[str, Vector] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                batch = keys[start : start + 500]
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", batch)
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape == (self.dimension,):
                        found[key] = vector
        return found

    def _store(self, computed: dict[str, Vector]) -> None:
        rows = [(key, np.asarray(vector, dtype=np.float32).tobytes()) for key, vector in computed.items()]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
