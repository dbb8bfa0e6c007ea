"""Calibrated answerability: the probability that answering from the top hit is right.

Features over the retrieval (dense score, margins, lexical support, query-term coverage, the best
sentence's similarity, language match) go through a logistic model whose standardisation and
coefficients live in the retrieval profile (fitted by ``answerdesk eval calibrate``). That
probability is the ``confidence`` of an answer; the engine abstains below ``min_confidence``, and
the features that pulled the probability down become the reasons.

The default model is the packaged ``answerability.toml`` beside this module, written by
``answerdesk eval calibrate --write-default``; its header says what it was fitted on.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, model_validator

from retrieval.records import Hit, Reason
from retrieval.translations import same_article as same_chunk_article

if TYPE_CHECKING:
    from retrieval.evidence import ChunkEvidence

DEFAULT_MODEL_PATH = Path(__file__).with_name("answerability.toml")
# Margins are capped here: beyond it a rival is simply far away.
MARGIN_CAP = 0.1
# A feature whose pull on the logit is below this is named among the reasons for abstaining.
REASON_PULL = -0.25


@dataclass(frozen=True)
class Features:
    """What the answerability model sees about one retrieval (see :func:`extract_features`)."""

    dense_top: float  # dense cosine of the top hit (after the cross-lingual correction)
    # With no rival among the hits, a margin is measured to the last hit: the rival is at least that far.
    dense_margin: float  # top hit minus the next hit
    document_margin: float  # top hit minus the best hit of another article (translations are one article)
    # The lexical pair is NaN ("unknown": the model counts it as typical) when no hit has a BM25
    # score: no lexical leg, a follow-up retrieved by a blended vector, or no question word anywhere.
    lexical_top: float  # log(1 + BM25 score) of the top hit
    agreement: float  # 1 when the best dense hit was also found by the lexical leg
    term_coverage: float  # share of the question's words present in the top chunk
    evidence: float  # best sentence similarity over the evidence chunks
    evidence_top: float  # best sentence similarity in the top chunk
    language_match: float  # 1 when the top chunk is in the question's language
    # The trained verifier's probabilities (retrieval/verify.py); NaN ("unknown") without a verifier.
    verifier_top: float = math.nan  # the top chunk answers the question
    verifier_sentence: float = math.nan  # the best sentence of the top chunk answers it

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


FEATURE_NAMES: tuple[str, ...] = tuple(Features.__dataclass_fields__)

# Reason code and explanation for each feature, used when it pulls towards abstaining.
_REASONS: dict[str, tuple[str, str]] = {
    "dense_top": ("weak_match", "the best source scored {value:.3f}"),
    # Margins are the best-ranked hit's score minus the next one's: negative when fusion ranked a
    # lower-scoring hit first.
    "dense_margin": ("ambiguous", "the next source's score differs from the best one's by only {value:+.3f}"),
    "document_margin": ("ambiguous", "another document's score differs from the best one's by only {value:+.3f}"),
    "lexical_top": ("no_lexical_support", "few of the question's words are in the best source"),
    "agreement": ("no_lexical_support", "keyword search did not find the best source"),
    "term_coverage": ("low_term_coverage", "{value:.0%} of the question's words are in the best source"),
    "evidence": ("weak_evidence", "no sentence matches the question well (best {value:.3f})"),
    "evidence_top": ("weak_evidence", "no sentence of the best source matches well (best {value:.3f})"),
    "language_match": ("cross_lingual", "the best source is in another language"),
    "verifier_top": ("not_answered", "the verifier reads no answer in the best source ({value:.2f})"),
    "verifier_sentence": ("weak_evidence", "the verifier finds no sentence that answers ({value:.2f})"),
}


@dataclass(frozen=True)
class VerifierSignals:
    """The verifier's probabilities for the top chunk and its best sentence (retrieval/verify.py)."""

    top: float
    sentence: float


def extract_features(
    language: str,
    hits: Sequence[Hit],
    evidence: Sequence[ChunkEvidence],
    verifier: VerifierSignals | None = None,
) -> Features:
    """Features of a non-empty retrieval; ``evidence`` scores the sentences of the first hits."""
    if not hits:
        raise ValueError("no hits to extract features from")
    top = hits[0]
    others = hits[1:]
    floor = hits[-1].score if others else top.score - MARGIN_CAP
    next_score = others[0].score if others else floor
    # Language versions of the top document agree with it rather than compete (retrieval/translations.py).
    other_article = max((hit.score for hit in others if not same_article(top, hit)), default=floor)
    best_dense = max(hits, key=lambda hit: hit.score)
    lexical_ran = any(hit.lexical_score > 0 for hit in hits)
    top_evidence = evidence[0] if evidence and evidence[0].hit.chunk.chunk_id == top.chunk.chunk_id else None
    return Features(
        dense_top=top.score,
        dense_margin=min(top.score - next_score, MARGIN_CAP),
        document_margin=min(top.score - other_article, MARGIN_CAP),
        lexical_top=math.log1p(max(top.lexical_score, 0.0)) if lexical_ran else math.nan,
        agreement=(1.0 if best_dense.lexical_score > 0 else 0.0) if lexical_ran else math.nan,
        term_coverage=top_evidence.term_coverage if top_evidence else 0.0,
        evidence=max((item.best_similarity for item in evidence), default=0.0),
        evidence_top=top_evidence.best_similarity if top_evidence else 0.0,
        language_match=1.0 if top.chunk.language == language else 0.0,
        verifier_top=verifier.top if verifier else math.nan,
        verifier_sentence=verifier.sentence if verifier else math.nan,
    )


def same_article(a: Hit, b: Hit) -> bool:
    """The same document, or a language version of it linked by key or id (retrieval/translations.py)."""
    return same_chunk_article(a.chunk, b.chunk)


class AnswerabilityModel(BaseModel):
    """A logistic model: ``P = sigmoid(intercept + Σ coefficient · (value − mean) / scale)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float
    # Where the coefficients came from (suites, date, held-out figures); shown in profile files.
    fitted_on: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> AnswerabilityModel:
        sizes = {len(self.features), len(self.means), len(self.scales), len(self.coefficients)}
        if len(sizes) != 1:
            raise ValueError("features, means, scales and coefficients must have the same length")
        unknown = sorted(set(self.features) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown answerability features {unknown}; known: {', '.join(FEATURE_NAMES)}")
        if any(scale <= 0 for scale in self.scales):
            raise ValueError("feature scales must be positive")
        return self

    def contributions(self, features: Features) -> dict[str, float]:
        """Each feature's term in the logit (positive pushes towards answering); an unknown (NaN)
        value is taken as the mean, so it pushes neither way."""
        values = features.as_dict()
        return {
            name: 0.0 if math.isnan(values[name]) else coefficient * (values[name] - mean) / scale
            for name, mean, scale, coefficient in zip(
                self.features, self.means, self.scales, self.coefficients, strict=True
            )
        }

    def probability(self, features: Features) -> float:
        logit = self.intercept + sum(self.contributions(features).values())
        return _sigmoid(logit)


def _sigmoid(logit: float) -> float:
    # Written for both signs so a very negative logit does not overflow exp().
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    odds = math.exp(logit)
    return odds / (1.0 + odds)


def load_model(path: Path) -> AnswerabilityModel:
    """An ``[answerability]`` table (or a bare model) from a TOML file."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return AnswerabilityModel.model_validate(data.get("answerability", data))


@lru_cache(maxsize=1)
def default_model() -> AnswerabilityModel:
    """The packaged default model (read once)."""
    return load_model(DEFAULT_MODEL_PATH)


def abstain_reasons(model: AnswerabilityModel, features: Features, limit: int = 3) -> list[Reason]:
    """Codes of the features that pulled hardest towards abstaining, most first, one per code.

    Every feature is "higher = more support", so a reason is given only where the value is below
    the fitted mean and the model rewards that feature: a negative coefficient (one feature standing
    in for a correlated one) never turns a strong value into a reason.
    """
    values = features.as_dict()
    means = dict(zip(model.features, model.means, strict=True))
    pulls = sorted(
        (
            (pull, name)
            for name, pull in model.contributions(features).items()
            if pull < REASON_PULL and values[name] < means[name]
        ),
        key=lambda item: item[0],
    )
    reasons: list[Reason] = []
    seen: set[str] = set()
    for _, name in pulls:
        code, explanation = _REASONS[name]
        if code in seen:
            continue
        seen.add(code)
        reasons.append(Reason(code, explanation.format(value=values[name])))
    return reasons[:limit]
