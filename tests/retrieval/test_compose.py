from __future__ import annotations

from collections.abc import Sequence

from retrieval.answerability import AnswerabilityModel
from retrieval.cite import compose_answer
from retrieval.config import RetrievalProfile
from retrieval.embedding import HashingEmbedder
from retrieval.evidence import SentenceScorer
from retrieval.records import Answer, Chunk, Hit, Reason, Status
from retrieval.sentences import split_sentences

# The former threshold rule as a model: confidence = sigmoid((dense_top - 0.8) / 0.01).
THRESHOLD_MODEL = AnswerabilityModel(
    features=("dense_top",), means=(0.8,), scales=(0.01,), coefficients=(1.0,), intercept=0.0
)
PROFILE = RetrievalProfile(answerability=THRESHOLD_MODEL, min_confidence=0.5, second_source_margin=0.02)


def _hit(text: str, score: float, document_id: str = "en/doc", kind: str = "section", language: str = "en") -> Hit:
    chunk = Chunk(
        chunk_id=f"{document_id}#{abs(hash(text))}",
        document_id=document_id,
        text=text,
        title="Refund Policy",
        section_path=("Annual plans",),
        kind=kind,
        language=language,
    )
    return Hit(chunk=chunk, score=score)


def _compose(question: str, language: str, hits: Sequence[Hit], profile: RetrievalProfile = PROFILE) -> Answer:
    embedder = HashingEmbedder()
    evidence = SentenceScorer(embedder).score(
        question, embedder.embed_query(question), hits[: profile.evidence_chunks]
    )
    return compose_answer(question, language, hits, profile, evidence)


def test_answer_is_built_from_verbatim_quotes_with_markers() -> None:
    hit = _hit("Refunds are paid in 5–10 business days. They go to the original card. Contact us.", 0.85)
    answer = _compose("how long do refunds take", "en", [hit])
    assert answer.status == Status.ANSWERED
    assert answer.citations[0].quote in hit.chunk.text
    assert answer.citations[0].chunk_id == hit.chunk.chunk_id
    assert answer.answer.startswith("Refunds are paid in 5–10 business days. [1]")
    quoted = split_sentences(answer.citations[0].quote)
    assert answer.answer == " ".join(f"{sentence} [1]" for sentence in quoted)
    assert answer.confidence == 0.9933  # sigmoid((0.85 - 0.8) / 0.01)
    assert str(answer.reasons[0]).startswith("confident_match: answerability 0.99")


def test_the_quote_is_the_answering_sentence_not_the_start_of_the_chunk() -> None:
    text = "Monthly plans renew each month. Annual plans can be refunded within 60 days. Credits never expire."
    answer = _compose("refund of annual plans", "en", [_hit(text, 0.9)])
    assert answer.citations[0].quote == "Annual plans can be refunded within 60 days."
    assert answer.answer == "Annual plans can be refunded within 60 days. [1]"


def test_low_confidence_abstains_without_source_text_and_says_why() -> None:
    hit = _hit("Our office is in Riga.", 0.78)
    answer = _compose("Do you sell hardware?", "en", [hit])
    assert answer.status == Status.ABSTAINED
    assert answer.citations == []
    assert "Riga" not in answer.answer
    assert str(answer.reasons[0]).startswith("low_confidence: answerability 0.12, below the threshold 0.50")
    assert str(answer.reasons[1]) == "weak_match: the best source scored 0.780"
    assert answer.confidence < 0.5


def test_no_hits_abstains() -> None:
    answer = compose_answer("anything", "ru", [], PROFILE, [])
    assert answer.status == Status.ABSTAINED
    assert answer.reasons == [Reason("no_sources", "nothing in the knowledge base matched")]
    assert "ИИ" in answer.disclosure


def test_faq_quote_skips_the_question_line() -> None:
    hit = _hit("How do I reset my password?\nClick Forgot password. The link is valid for 1 hour.", 0.9, kind="faq")
    answer = _compose("reset password", "en", [hit], PROFILE.model_copy(update={"quote_margin": 1.0}))
    assert answer.citations[0].quote == "Click Forgot password. The link is valid for 1 hour."


def test_second_source_is_cited_only_when_close_and_from_another_document() -> None:
    top = _hit("Refunds take 5 days.", 0.86, "en/policy-refunds")
    same_doc = _hit("Refunds go to the card.", 0.859, "en/policy-refunds")
    close = _hit("Billing refunds are processed by finance.", 0.85, "en/faq-billing")
    far = _hit("Something else entirely.", 0.80, "en/other")
    assert [c.document_id for c in _compose("refund", "en", [top, same_doc, close]).citations] == [
        "en/policy-refunds",
        "en/faq-billing",
    ]
    assert len(_compose("refund", "en", [top, far]).citations) == 1
    # A close document beyond the chunks with scored sentences is not quoted.
    narrow = PROFILE.model_copy(update={"evidence_chunks": 2})
    assert len(_compose("refund", "en", [top, same_doc, close], narrow).citations) == 1


def test_cross_lingual_answer_says_the_source_language() -> None:
    answer = _compose("Как вернуть деньги?", "ru", [_hit("Refunds take 5 days.", 0.9)])
    assert Reason("cross_lingual", "sources are in en") in answer.reasons
