"""Cite: the answer made extractively from retrieved chunks, or the abstention (retrieval/decide.py decides).

The answer is made only of the sentences that best match the question
(retrieval/evidence.py), copied from the chunks and each followed by its citation marker, so it can
never state what no source says.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from retrieval.answerability import VerifierSignals
from retrieval.config import RetrievalProfile
from retrieval.decide import decide
from retrieval.evidence import ChunkEvidence, select_quote
from retrieval.messages import ABSTAINED, DISCLOSURE, localized
from retrieval.records import Answer, Citation, Hit, Reason, Status
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

    def abstain(confidence: float, reasons: list[Reason]) -> Answer:
        return Answer(
            answer_id=answer_id,
            status=Status.ABSTAINED,
            answer=localized(ABSTAINED, language),
            confidence=round(confidence, 4),
            reasons=reasons,
            language=language,
            disclosure=disclosure,
        )

    decision = decide(question, language, hits, profile, evidence, verifier)
    if not decision.answer:
        return abstain(decision.confidence, decision.reasons)
    top, confidence = hits[0], decision.confidence

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

    reasons = list(decision.reasons)
    if len(quotes) > 1:
        reasons.append(Reason("second_source", f"another document scored within {profile.second_source_margin:.3f}"))
    source_languages = sorted({quote.hit.chunk.language for quote in quotes} - {language})
    if source_languages:
        reasons.append(Reason("cross_lingual", f"sources are in {', '.join(source_languages)}"))

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
