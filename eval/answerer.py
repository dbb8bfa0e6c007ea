"""What every eval system is: built from a context, it answers one question at a time with a Prediction."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from eval.metrics import unique_in_order
from retrieval.config import RetrievalProfile
from retrieval.embedding import Embedder
from retrieval.records import Hit
from retrieval.verify import Verifier


@dataclass(frozen=True)
class Prediction:
    """What a system did with one question."""

    answered: bool
    ranked_chunks: list[Hit]
    cited_chunk_ids: list[str]
    cited_document_ids: list[str]
    confidence: float
    quotes: list[str] = field(default_factory=list)  # what each citation quotes; a whole chunk for simple systems

    @property
    def ranked_documents(self) -> list[str]:
        return unique_in_order([hit.chunk.document_id for hit in self.ranked_chunks])

    @property
    def top_score(self) -> float:
        return self.ranked_chunks[0].score if self.ranked_chunks else -math.inf


class Answerer(Protocol):
    """A system, built and ready for questions."""

    def ask(self, question: str, document_ids: Collection[str] | None = None) -> Prediction:
        """Answer or abstain on one question, only from ``document_ids`` when given."""
        ...


@dataclass(frozen=True)
class BuildContext:
    """What every system is built with: the shared embedder, the profile and a scratch folder."""

    embedder: Embedder
    profile: RetrievalProfile
    workdir: Path
    show_progress: bool = True
    verifier: Verifier | None = None  # the trained verifier (retrieval/verify.py); None = off
    use_vectors: bool = True  # compute USE vectors for the engine's USE leg (retrieval/use_encoder.py)
