"""Linear heads over the e5 query embedding that read one customer message.

One logistic head per label: the escalation kinds triage knows (a request for a person, anger,
urgency, a legal threat, a chargeback, a security incident, an account takeover, a cancellation
threat) and ``follow_up`` (the message leans on the previous turn). They are fitted on examples we
wrote in many languages (``data/triage/``) by ``answerdesk eval triage-fit``, which also chooses
each head's threshold on held-out folds of those examples; the weights live in
``support/triage_model.npz`` (a few hundred KB). Reading a message costs one matrix-vector product
over the embedding the desk already computed for retrieval.

Example::

    heads = default_heads()
    heads.probabilities(embedder.embed_query("I'd like to speak to someone on your team"))
    # {"customer_requested_human": 0.97, "strong_emotion": 0.02, …}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from common.errors import AnswerDeskError
from retrieval.embedding import Embedder, Vector
from support.conversations import FollowUp

logger = logging.getLogger(__name__)

DEFAULT_HEADS_PATH = Path(__file__).with_name("triage_model.npz")
FOLLOW_UP = "follow_up"


class MessageHeadsError(AnswerDeskError, ValueError):
    """A heads file that cannot be used; the message names the file and the problem."""

    code = "invalid_triage_model"


@dataclass(frozen=True)
class MessageHeads:
    """``labels[i]`` fires when ``sigmoid(weights[i] · v + bias[i]) >= thresholds[i]``.

    ``possible_follow_up`` is the lower threshold of the ``follow_up`` head: at or above it a
    question may be a follow-up (both readings are retrieved), at or above its threshold it is one.
    ``model`` names the embedder the heads read (vectors of another model mean nothing to them).
    """

    labels: tuple[str, ...]
    weights: NDArray[np.float32]
    bias: NDArray[np.float32]
    thresholds: NDArray[np.float32]
    possible_follow_up: float
    model: str

    @property
    def dimension(self) -> int:
        return int(self.weights.shape[1])

    def probabilities(self, vector: Vector) -> dict[str, float]:
        """Every head's probability for one embedded message."""
        logits = self.weights @ np.asarray(vector, dtype=np.float32) + self.bias
        probabilities = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        return {label: float(p) for label, p in zip(self.labels, probabilities, strict=True)}

    def threshold(self, label: str) -> float:
        """The head's threshold; 1.0 (never) for a label without a head, e.g. a custom topic."""
        return float(self.thresholds[self.labels.index(label)]) if label in self.labels else 1.0

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            labels=np.array(self.labels),
            weights=self.weights,
            bias=self.bias,
            thresholds=self.thresholds,
            possible_follow_up=np.float32(self.possible_follow_up),
            model=np.array(self.model),
        )

    @classmethod
    def load(cls, path: Path) -> MessageHeads:
        try:
            with np.load(path, allow_pickle=False) as data:
                heads = cls(
                    labels=tuple(str(label) for label in data["labels"]),
                    weights=np.asarray(data["weights"], dtype=np.float32),
                    bias=np.asarray(data["bias"], dtype=np.float32),
                    thresholds=np.asarray(data["thresholds"], dtype=np.float32),
                    possible_follow_up=float(data["possible_follow_up"]),
                    model=str(data["model"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise MessageHeadsError(f"cannot read message heads {path}: {exc}") from exc
        count = len(heads.labels)
        if heads.weights.ndim != 2 or heads.weights.shape[0] != count or heads.bias.shape != (count,):
            raise MessageHeadsError(f"{path}: weights, bias and labels disagree in size")
        if heads.thresholds.shape != (count,):
            raise MessageHeadsError(f"{path}: one threshold per label is needed")
        return heads


@cache
def default_heads() -> MessageHeads:
    """The committed heads (``support/triage_model.npz``), loaded once."""
    return MessageHeads.load(DEFAULT_HEADS_PATH)


@dataclass
class MessageReader:
    """The heads plus the embedder they read: probabilities for a message, from a vector already
    computed with that very embedder when the caller has one, else embedding the message itself."""

    heads: MessageHeads
    embedder: Embedder | None = None

    def probabilities(self, message: str, vector: Vector | None = None) -> Mapping[str, float]:
        """Every head's probability; empty when there is neither a usable vector nor an embedder."""
        if vector is None or len(vector) != self.heads.dimension:
            if self.embedder is None:
                return {}
            vector = self.embedder.embed_query(message)
            if len(vector) != self.heads.dimension:
                logger.warning("heads read %d dimensions, the embedder gives %d", self.heads.dimension, len(vector))
                return {}
        return self.heads.probabilities(vector)

    def threshold(self, label: str) -> float:
        return self.heads.threshold(label)

    def follow_up(self, probabilities: Mapping[str, float]) -> FollowUp | None:
        """The ``follow_up`` head's reading: CERTAIN, POSSIBLE or NONE; None when it was not read."""
        probability = probabilities.get(FOLLOW_UP)
        if probability is None:
            return None
        if probability >= self.heads.threshold(FOLLOW_UP):
            return FollowUp.CERTAIN
        return FollowUp.POSSIBLE if probability >= self.heads.possible_follow_up else FollowUp.NONE

    def reads(self, embedder: Embedder) -> bool:
        """Whether vectors from ``embedder`` are what the heads read (the same embedder object)."""
        return embedder is self.embedder
