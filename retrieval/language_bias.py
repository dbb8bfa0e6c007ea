"""How much e5 favours a passage for being in the question's language, per question.

multilingual-e5-small scores any passage in the question's own language higher than an equally
(un)related passage in another: on FLORES-200 sentences (6-way parallel, so the content is the same
in every language), a Chinese question's mean cosine to unrelated Chinese sentences is 0.077 above its
mean cosine to unrelated English ones; Russian 0.026, Latvian 0.018. A constant bonus for other-language
passages cannot fit all of these at once. So each language ``P`` has a centroid ``c_P`` (the mean e5
passage vector of those parallel sentences), and a passage in ``P`` found for a question ``q`` in ``L``
is scored ``cos(q, p) + q·(c_L − c_P)``: what ``q`` gains from ``p`` being in its language is given to
passages in other languages too. Same-language scores are unchanged.

The centroids ship in ``language_centroids.npz`` (built by ``python -m retrieval.language_bias``
from ``shared/data/train/flores200-sib200``, training split, first 300 sentences per language); they
belong to the model they were computed with and are not used with another one.
"""

from __future__ import annotations

import csv
import gzip
import sys
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

from retrieval.embedding import Vector

CENTROIDS_FILE = Path(__file__).with_name("language_centroids.npz")
CENTROIDS_MODEL = "intfloat/multilingual-e5-small"  # what the shipped centroids were computed with
FLORES_FOLDERS = {
    "en": "eng_Latn",
    "lv": "lvs_Latn",
    "ru": "rus_Cyrl",
    "zh": "zho_Hans",
    "de": "deu_Latn",
    "es": "spa_Latn",
}
SENTENCES_PER_LANGUAGE = 300


class LanguageBias:
    """The per-question correction for a passage's language (see the module docstring)."""

    def __init__(self, centroids: Mapping[str, Vector]) -> None:
        self.centroids = dict(centroids)
        self._shifts: dict[str, Vector] = {}

    def covers(self, language: str) -> bool:
        return language in self.centroids

    def shift(self, language: str) -> Vector:
        """What moves a question in ``language`` (which must have a centroid) off its language's
        centroid onto the mean of all of them: ``mean(c) − c_L``, the centred query's offset."""
        shifts = self._shifts
        if language not in shifts:
            mean = np.mean(list(self.centroids.values()), axis=0)
            shifts[language] = np.asarray(mean - self.centroids[language], dtype=np.float32)
        return shifts[language]

    def offsets(self, vector: Vector, language: str) -> dict[str, float]:
        """``q·(c_L − c_P)`` for every language ``P`` with a centroid; empty when ``language`` has none."""
        own = self.centroids.get(language)
        if own is None:
            return {}
        mine = float(np.dot(vector, own))
        return {other: mine - float(np.dot(vector, centroid)) for other, centroid in self.centroids.items()}


def bias_for(model: str, dimension: int) -> LanguageBias | None:
    """The shipped centroids for an embedder of ``model`` giving ``dimension``-d vectors, or None (an
    embedder put in its place, e.g. a test's hashing fake, is another model)."""
    bias = shipped_bias(model)
    return bias if bias is not None and all(len(c) == dimension for c in bias.centroids.values()) else None


@lru_cache
def shipped_bias(model: str) -> LanguageBias | None:
    """The shipped centroids, when they belong to ``model`` (None otherwise: the constant bonus applies)."""
    if model != CENTROIDS_MODEL or not CENTROIDS_FILE.is_file():
        return None
    with np.load(CENTROIDS_FILE) as data:
        return LanguageBias({language: np.asarray(data[language], dtype=np.float32) for language in data.files})


def build_centroids(flores_dir: Path, model_dir: Path, out: Path = CENTROIDS_FILE) -> None:
    """Embed the first sentences of each language's training split as passages and save their means."""
    from retrieval.embedding import OnnxEmbedder

    embedder = OnnxEmbedder(model_dir)
    centroids = {}
    for language, folder in FLORES_FOLDERS.items():
        with gzip.open(flores_dir / folder / "train.tsv.gz", "rt", encoding="utf-8") as fh:
            texts = [row["text"] for row in csv.DictReader(fh, delimiter="\t")][:SENTENCES_PER_LANGUAGE]
        centroids[language] = embedder.embed_documents(texts).mean(axis=0).astype(np.float32)
    np.savez(out, **centroids)


if __name__ == "__main__":  # python -m retrieval.language_bias FLORES_DIR MODEL_DIR
    build_centroids(Path(sys.argv[1]), Path(sys.argv[2]))
