"""Decide: answer from the top hit, or abstain.

The decision is the answerability model's probability (retrieval/answerability.py) that answering
from the top hit is right, against the profile's ``min_confidence``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from retrieval.answerability import Features, VerifierSignals, abstain_reasons, extract_features
from retrieval.config import RetrievalProfile
from retrieval.content import has_meaningful_content
from retrieval.evidence import ChunkEvidence
from retrieval.records import Hit, Reason


@dataclass(frozen=True)
class Decision:
    """Whether to answer, how sure, and why (the reasons the answer will carry)."""

    answer: bool
    confidence: float
    reasons: list[Reason] = field(default_factory=list)
    features: Features | None = None


def decide(
    question: str,
    language: str,
    hits: Sequence[Hit],
    profile: RetrievalProfile,
    evidence: Sequence[ChunkEvidence],
    verifier: VerifierSignals | None = None,
) -> Decision:
    """Answer from ``hits`` (best first) only when answering is likely to be right."""
    if not has_meaningful_content(question):  # nothing to answer, whatever retrieval found for it
        return Decision(False, 0.0, [Reason("no_meaningful_content", "the question holds no words to look up")])
    if not hits:
        return Decision(False, 0.0, [Reason("no_sources", "nothing in the knowledge base matched")])
    top = hits[0]
    model = profile.answerability
    features = extract_features(language, hits, evidence, verifier)
    confidence = model.probability(features)
    if confidence < profile.min_confidence:
        low = Reason(
            "low_confidence",
            f"answerability {confidence:.2f}, below the threshold {profile.min_confidence:.2f} "
            f"(best source scored {top.score:.3f})",
        )
        return Decision(False, confidence, [low, *abstain_reasons(model, features)], features)
    verified = f", verifier {verifier.top:.2f}" if verifier else ""
    match = Reason(
        "confident_match",
        f"answerability {confidence:.2f} (threshold {profile.min_confidence:.2f}); "
        f"best source scored {top.score:.3f}, best sentence {features.evidence_top:.3f}{verified}",
    )
    return Decision(True, confidence, [match], features)
