"""The answer verifier: does this passage answer this question? (int8 ONNX cross-encoder)

``answerdesk prepare-model`` merges the committed LoRA adapter (``retrieval/verifier_adapter/``)
into multilingual-e5-small and exports ``<model dir>/../verifier/`` (see
:func:`retrieval.build.embedder.prepare_verifier`). :class:`Verifier` serves that export with
onnxruntime; :func:`load_verifier` returns None when it is absent, so callers can fall back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from retrieval.config import Settings
from retrieval.verifier_model import CONFIG_FILE, PREFIXES

logger = logging.getLogger(__name__)

MODEL_FILE = "verifier_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
READY = "READY"


def verifier_dir(settings: Settings) -> Path:
    """Where the export lives: beside the embedder's folder."""
    return settings.resolved_model_dir.parent / "verifier"


class Verifier:
    """Scores (question, passage) pairs: the probability that the passage answers the question."""

    def __init__(self, folder: Path, threads: int | None = None, batch_size: int = 16) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        self.max_len = int(config["max_len"])
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(self.max_len, strategy="longest_first")
        self.tokenizer.enable_padding(pad_id=1, pad_token="<pad>")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the embedder: CPU is shared
        self.session: Any = ort.InferenceSession(
            str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )

    def score(self, question: str, passages: Sequence[str]) -> NDArray[np.float32]:
        """One probability per passage, in order."""
        return self.score_pairs([(question, passage) for passage in passages])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> NDArray[np.float32]:
        out = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            encodings = self.tokenizer.encode_batch([(PREFIXES[0] + q, PREFIXES[1] + p) for q, p in chunk])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            (logits,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[start : start + len(chunk)] = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        return out


def is_exported(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (READY, MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE))


def load_verifier(settings: Settings) -> Verifier | None:
    """The exported verifier, or None (with a log line) when ``prepare-model`` has not built one."""
    folder = verifier_dir(settings)
    if not is_exported(folder):
        logger.info("no verifier export in %s; answering without the verifier", folder)
        return None
    return Verifier(folder, threads=settings.verifier_threads)
