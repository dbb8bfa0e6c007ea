"""Decide and compose: answer extractively from retrieved chunks, or abstain.

The decision is the answerability model's probability (retrieval/answerability.py) against
``min_confidence``. The answer is made only of the sentences that best match the question
(retrieval/evidence.py), copied from the chunks and each followed by its citation marker, so it can
never state what no source says.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from retrieval.answerability import VerifierSignals, abstain_reasons, extract_features
from retrieval.config import RetrievalProfile
from retrieval.content import has_meaningful_content
from retrieval.evidence import ChunkEvidence, select_quote
from retrieval.messages import ABSTAINED, DISCLOSURE, localized
from retrieval.records import Answer, Citation, Hit, Status
from retrieval.scope import local_id, shown_source


def compose_answer(
    question: str,
    language: str,
    hits: Sequence[Hit],
    profile: RetrievalProfile,
    evidence: Sequence[ChunkEvidence],
    verifier: VerifierSignals | None = None,
) -> Answer:
    """Answer from ``hits`` (best first) or abstain when answering is not likely to be right.

    ``evidence`` holds the scored sentences of the first hits (``SentenceScorer.score``), best first;
    with ``verifier`` signals, the top chunk's sentences carry the verifier's scores (retrieval/verify.py).
    """
    answer_id = uuid.uuid4().hex
    disclosure = localized(DISCLOSURE, language)

    def abstain(confidence: float, reasons: list[str]) -> Answer:
        return Answer(
            answer_id=answer_id,
            status=Status.ABSTAINED,
            answer=localized(ABSTAINED, language),
            confidence=round(confidence, 4),
            reasons=reasons,
            language=language,
            disclosure=disclosure,
        )

    if not has_meaningful_content(question):  # nothing to answer, whatever retrieval found for it
        return abstain(0.0, ["no_meaningful_content: the question holds no words to look up"])
    if not hits:
        return abstain(0.0, ["no_sources: nothing in the knowledge base matched"])
    top = hits[0]
    model = profile.answerability
    features = extract_features(language, hits, evidence, verifier)
    confidence = model.probability(features)
    if confidence < profile.min_confidence:
        decision = (
            f"low_confidence: answerability {confidence:.2f}, below the threshold {profile.min_confidence:.2f} "
            f"(best source scored {top.score:.3f})"
        )
        return abstain(confidence, [decision, *abstain_reasons(model, features)])

    # Only chunks with scored sentences are quoted: the top hit always is one (the engine scores
    # the first ``evidence_chunks`` hits); a runner-up further down is not cited.
    scored = [item for item in evidence if item.sentences]
    top_evidence = next((item for item in scored if item.hit.chunk.chunk_id == top.chunk.chunk_id), None)
    if top_evidence is None:
        raise ValueError("the top hit has no scored sentences: pass the evidence of the first hits")
    top_margin = profile.verify_quote_margin if verifier else profile.quote_margin
    quotes = [select_quote(top_evidence, profile.max_answer_sentences, top_margin)]
    runner_up = next((item for item in scored if item.hit.chunk.document_id != top.chunk.document_id), None)
    if runner_up and top.score - runner_up.hit.score <= profile.second_source_margin:
        quotes.append(select_quote(runner_up, max(1, profile.max_answer_sentences - 1), profile.quote_margin))

    verified = f", verifier {verifier.top:.2f}" if verifier else ""
    reasons = [
        f"confident_match: answerability {confidence:.2f} (threshold {profile.min_confidence:.2f}); "
        f"best source scored {top.score:.3f}, best sentence {features.evidence_top:.3f}{verified}"
    ]
    if len(quotes) > 1:
        reasons.append(f"second_source: another document scored within {profile.second_source_margin:.3f}")
    source_languages = sorted({quote.hit.chunk.language for quote in quotes} - {language})
    if source_languages:
        reasons.append(f"cross_lingual: sources are in {', '.join(source_languages)}")

    parts = [f"{sentence} [{number}]" for number, quote in enumerate(quotes, 1) for sentence in quote.sentences]
    citations = [
        Citation(
            # Ids as the caller's tenant knows them and the file below its folder, never a server path.
            document_id=local_id(quote.hit.chunk.document_id),
            title=quote.hit.chunk.title,
            section=quote.hit.chunk.section,
            chunk_id=local_id(quote.hit.chunk.chunk_id),
            quote=quote.text,
            score=round(quote.hit.score, 4),
            source=shown_source(quote.hit.chunk.document_id, quote.hit.chunk.source),
            language=quote.hit.chunk.language,
            version=quote.hit.chunk.version,
            updated_at=quote.hit.chunk.updated_at,
        )
        for quote in quotes
    ]
    return Answer(
        answer_id=answer_id,
        status=Status.ANSWERED,
        answer=" ".join(parts),
        citations=citations,
        confidence=round(confidence, 4),
        reasons=reasons,
        language=language,
        disclosure=disclosure,
    )
