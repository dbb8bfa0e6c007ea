"""The answer engine: question → retrieve → decide → answer with citations."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from retrieval.analysis import set_cache_dir as set_analysis_cache_dir
from retrieval.analysis import warm_up as warm_up_analysis
from retrieval.answerability import VerifierSignals
from retrieval.compose import compose_answer
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import Embedder, Vector, load_embedder
from retrieval.evidence import ChunkEvidence, SentenceScorer, sentence_cache
from retrieval.fusion import fuse_ranks, ranks_of
from retrieval.language import UNKNOWN, detect_language
from retrieval.language_bias import LanguageBias, bias_for
from retrieval.lexical import LexicalIndex, LexicalMatch, LexicalRetriever
from retrieval.locale import translation_id
from retrieval.registry import DocumentRegistry
from retrieval.rows import private_dir
from retrieval.scope import Scope
from retrieval.store import ChromaStore, scope_metadata
from retrieval.types import Answer, Hit
from retrieval.use_encoder import UseEncoder, shared_use_encoder, use_covers, use_store_beside
from retrieval.verify import Verifier, rerank, verify_sentences

logger = logging.getLogger(__name__)


class DenseRetriever:
    """Top-k chunks by cosine similarity of e5 embeddings, corrected for same-language bias.

    multilingual-e5 scores a passage in the question's own language higher than an equally relevant
    one in another language, so an off-topic localized article outranks the right English one. With a
    ``bias`` (language centroids, retrieval/language_bias.py), a passage in another language gets what
    this question gains from its own language's centroid over the passage's (0.02-0.08 for Latvian,
    Russian, Chinese questions) in the ranking; languages without a centroid get the constant
    ``cross_lingual_bonus``, and so does ``Hit.score`` (the answerability model's scale).
    With ``centred_query``, the question moved off its own language's centroid fetches ``depth`` more
    neighbours: otherwise, when the nearest are all in its language (a Latvian question, a KB with
    Latvian articles on other topics), the English answer never reaches the candidates to be corrected.

    With a ``registry``, only chunks of each document's live version are returned, so a document
    being replaced is seen whole, old or new (retrieval/publish.py).

    With a USE leg (``use``: the encoder and the store of its vectors, retrieval/use_encoder.py) and
    the question's text, both encoders find their own ``depth`` neighbours; each candidate's cosine
    under each encoder is z-scored over the candidates, and candidates are ordered by
    ``(1 - use_weight)·z_e5 + use_weight·z_use``. A candidate without a USE vector (its language is
    not covered, or it was ingested before the leg existed) is ordered by its e5 z-score alone, and a
    question in a language USE does not cover skips the leg. ``Hit.score`` stays the e5 cosine.
    """

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        top_k: int,
        cross_lingual_bonus: float,
        registry: DocumentRegistry | None = None,
        use: UseLeg | None = None,
        use_weight: float = 0.0,
        bias: LanguageBias | None = None,
        centred_query: bool = False,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.top_k = top_k
        self.cross_lingual_bonus = cross_lingual_bonus
        self.registry = registry
        self.bias = bias
        self.centred_query = centred_query
        self.use = use
        self.use_weight = use_weight
        self._warned_no_use = False

    def retrieve(self, question: str, language: str, scope: Scope | None = None) -> list[Hit]:
        """The best chunks for ``question`` inside ``scope`` (default: the default tenant's public documents)."""
        return self.retrieve_by_vector(self.embedder.embed_query(question), language, scope, question)

    def retrieve_by_vector(
        self, vector: Vector, language: str, scope: Scope | None = None, text: str | None = None
    ) -> list[Hit]:
        """Like :meth:`retrieve` for a query already embedded (e.g. a follow-up blended with its topic);
        the USE leg runs only with its ``text``."""
        return self.candidates(vector, language, scope, self.top_k * 3, text)[: self.top_k]

    def candidates(
        self, vector: Vector, language: str, scope: Scope | None, depth: int, text: str | None = None
    ) -> list[Hit]:
        """The ``depth`` nearest live chunks, corrected for language and re-sorted (fused with the USE
        leg's neighbours when there is one and ``text``).

        Over-fetching lets the correction promote passages from just below the cut.
        """
        scope = scope or Scope()
        offsets = self.language_offsets(vector, language)
        hits = self._live(self.store.query(vector, depth, scope))
        if self.centred_query and offsets and self.bias is not None:
            hits = self._with_centred_neighbours(hits, vector, language, scope, depth)
        # Ranked by the per-question correction; Hit.score keeps the constant bonus, the scale the
        # answerability model was fitted on (with the offsets as scores it answered far more wrongly).
        ranking = {hit.chunk.chunk_id: self.adjusted(hit.score, hit.chunk.language, language, offsets) for hit in hits}
        adjusted = [replace(hit, score=self.adjusted(hit.score, hit.chunk.language, language)) for hit in hits]
        adjusted.sort(key=lambda hit: ranking[hit.chunk.chunk_id], reverse=True)
        if self.use is not None and text and self.use_weight > 0 and use_covers(language):
            return self._fused_with_use(self.use, adjusted, ranking, vector, text, language, scope, depth, offsets)
        return adjusted

    def language_offsets(self, vector: Vector, language: str) -> dict[str, float]:
        """What ``vector`` (a question in ``language``) gains per passage language, for :meth:`adjusted`."""
        return self.bias.offsets(vector, language) if self.bias is not None else {}

    def _with_centred_neighbours(
        self, hits: list[Hit], vector: Vector, language: str, scope: Scope, depth: int
    ) -> list[Hit]:
        """``hits`` and the neighbours of the question moved off its language's centroid, so passages
        in other languages reach the candidates even when the nearest ``depth`` are all in its own."""
        assert self.bias is not None
        centroids = self.bias.centroids
        centred = vector - centroids[language] + np.mean(list(centroids.values()), axis=0)
        centred = np.asarray(centred / max(float(np.linalg.norm(centred)), 1e-12), dtype=np.float32)
        known = {hit.chunk.chunk_id for hit in hits}
        extra = [hit for hit in self._live(self.store.query(centred, depth, scope)) if hit.chunk.chunk_id not in known]
        for chunk, embedding in self.store.embedded([hit.chunk.chunk_id for hit in extra]):
            hits.append(Hit(chunk, float(np.dot(embedding, vector))))  # scored by the question itself
        return hits

    def _live(self, hits: list[Hit]) -> list[Hit]:
        if self.registry is None:
            return hits
        live = self.registry.live_versions({hit.chunk.document_id for hit in hits})
        return [hit for hit in hits if live.get(hit.chunk.document_id) == hit.chunk.version]

    def _fused_with_use(
        self,
        use: UseLeg,
        dense: list[Hit],
        ranking: dict[str, float],
        vector: Vector,
        text: str,
        language: str,
        scope: Scope,
        depth: int,
        offsets: Mapping[str, float],
    ) -> list[Hit]:
        use_vector = use.encoder.embed_query(text)
        use_scores = {hit.chunk.chunk_id: hit.score for hit in self._live(use.store.query(use_vector, depth, scope))}
        if not use_scores:
            if not self._warned_no_use:  # once per process: every question would say the same
                logger.info("USE leg skipped: no USE vectors in scope (re-ingest to compute them)")
                self._warned_no_use = True
            return dense
        by_id = {hit.chunk.chunk_id: hit for hit in dense}
        found_by_use = [chunk_id for chunk_id in use_scores if chunk_id not in by_id]
        for chunk, embedding in self.store.embedded(found_by_use):
            if scope.allows(scope_metadata(chunk)):
                cosine = float(np.dot(embedding, vector))
                ranking[chunk.chunk_id] = self.adjusted(cosine, chunk.language, language, offsets)
                by_id[chunk.chunk_id] = Hit(chunk, self.adjusted(cosine, chunk.language, language))
        found_by_e5 = [chunk_id for chunk_id, hit in by_id.items() if chunk_id not in use_scores]
        for chunk, embedding in use.store.embedded(found_by_e5):
            use_scores[chunk.chunk_id] = float(np.dot(embedding, use_vector))
        hits = list(by_id.values())
        e5 = _z_scores(np.array([ranking[hit.chunk.chunk_id] for hit in hits]))
        covered = np.array([hit.chunk.chunk_id in use_scores and use_covers(hit.chunk.language) for hit in hits])
        fused = e5.copy()
        if covered.any():
            cosines = np.array([use_scores.get(hit.chunk.chunk_id, 0.0) for hit in hits])
            use_z = np.zeros_like(e5)
            use_z[covered] = _z_scores(cosines[covered])
            fused[covered] = (1 - self.use_weight) * e5[covered] + self.use_weight * use_z[covered]
        order = np.argsort(-fused, kind="stable")
        return [hits[i] for i in order]

    def adjusted(
        self, cosine: float, passage_language: str, language: str, offsets: Mapping[str, float] | None = None
    ) -> float:
        """The cosine corrected for the passage's language: the question's own per-language offset
        (retrieval/language_bias.py) when known, else ``cross_lingual_bonus`` for another language."""
        if passage_language == language:
            return cosine
        if offsets and passage_language in offsets:
            return cosine + offsets[passage_language]
        return cosine + self.cross_lingual_bonus


@dataclass(frozen=True)
class UseLeg:
    """The second dense encoder and the store of its chunk vectors (retrieval/use_encoder.py)."""

    encoder: UseEncoder
    store: ChromaStore

    @classmethod
    def beside(cls, store: ChromaStore, encoder: UseEncoder | None = None) -> UseLeg:
        """The USE leg whose vectors live beside ``store`` (its ``-use`` collections)."""
        return cls(encoder or shared_use_encoder(), use_store_beside(store))


def _z_scores(values: np.ndarray) -> np.ndarray:
    """``values`` centred and scaled to unit deviation (all equal: all zero)."""
    deviation = float(values.std())
    return (values - values.mean()) / deviation if deviation > 0 else np.zeros_like(values)


class HybridRetriever:
    """Dense and lexical rankings fused by weighted reciprocal rank (retrieval/fusion.py).

    Each leg ranks ``top_k * candidate_factor`` chunks inside the scope, of live versions only. Every
    hit carries its dense cosine (``score``, with the cross-lingual correction; computed from the
    stored embedding for chunks only the lexical leg found), its BM25 score (``lexical_score``, 0
    when the lexical leg missed it) and the ``fused_score`` hits are ordered by. With
    ``prefer_localized``, the question-language version of the best document goes first
    (retrieval/locale.py). Without a lexical index, or with ``lexical_weight`` 0, it is the dense
    ranking with fused scores.

    Words rarely match across languages, so in a KB with articles in several languages the lexical
    leg favours the question's language: a Russian question shares words with an off-topic Russian
    article, never with the right English one (the bias ``cross_lingual_bonus`` corrects in the dense
    leg). So when any candidate is in the question's language, a candidate in another language gets
    the better of its lexical rank and its dense rank in the lexical ranking: the lexical leg cannot
    judge it, so it neither lifts nor sinks it. On the sample set this took recall@1 from 0.710 (plain
    fusion) to 0.733 (dense alone 0.693, Russian questions 0.703 → 0.811). When no candidate is in the
    question's language (an English KB asked in Russian), the lexical ranks stand: names and numbers
    then match across languages on an equal footing.
    """

    def __init__(
        self,
        dense: DenseRetriever,
        lexical: LexicalRetriever | None,
        profile: RetrievalProfile,
    ) -> None:
        self.dense = dense
        self.lexical = lexical
        self.profile = profile
        self.top_k = profile.top_k
        self.cross_lingual_bonus = dense.cross_lingual_bonus
        self.registry = dense.registry

    def retrieve(self, question: str, language: str, scope: Scope | None = None) -> list[Hit]:
        """The best chunks for ``question`` inside ``scope`` (default: the default tenant's public documents)."""
        return self.retrieve_by_vector(self.dense.embedder.embed_query(question), language, scope, question)

    def retrieve_by_vector(
        self, vector: Vector, language: str, scope: Scope | None = None, text: str | None = None
    ) -> list[Hit]:
        """Like :meth:`retrieve` for a query already embedded; the lexical leg runs only with its ``text``."""
        scope = scope or Scope()
        depth = self.top_k * self.profile.candidate_factor
        dense = self.dense.candidates(vector, language, scope, depth, text)
        matches: list[LexicalMatch] = []
        if self.lexical is not None and text and self.profile.lexical_weight > 0:
            matches = self.lexical.retrieve(text, language, depth, scope)
        dense_ranks = ranks_of([hit.chunk.chunk_id for hit in dense])
        lexical_ranks = _language_fair_ranks(dense, matches, dense_ranks, language)
        fused = fuse_ranks(
            [dense_ranks, lexical_ranks], [self.profile.dense_weight, self.profile.lexical_weight], self.profile.rrf_k
        )[: self.top_k]
        by_id = {hit.chunk.chunk_id: hit for hit in dense}
        lexical_scores = {match.chunk_id: match.score for match in matches}
        missing = [chunk_id for chunk_id, _ in fused if chunk_id not in by_id]
        for chunk, embedding in self.dense.store.embedded(missing):
            if scope.allows(scope_metadata(chunk)):  # the lexical index checked it; so does the store copy
                cosine = float(np.dot(embedding, vector))
                by_id[chunk.chunk_id] = Hit(chunk, self.dense.adjusted(cosine, chunk.language, language))
        hits = [
            replace(by_id[chunk_id], lexical_score=lexical_scores.get(chunk_id, 0.0), fused_score=fused_score)
            for chunk_id, fused_score in fused
            if chunk_id in by_id
        ]
        if self.profile.prefer_localized and hits:
            hits = self.localized_first(hits, vector, language, scope)
        return hits

    def localized_first(self, hits: list[Hit], vector: Vector, language: str, scope: Scope) -> list[Hit]:
        """``hits`` with the question-language version of the best document first, when the KB has one
        in scope whose best passage scores within ``localized_margin`` of the best hit. It takes the
        place (and fused score) of the hit it localizes; that hit moves down one."""
        top = hits[0]
        sibling = translation_id(top.chunk, language, self.registry) if self.registry is not None else None
        if sibling is None or self.registry is None:
            return hits
        record = self.registry.get(sibling)
        if record is None:
            return hits
        passages = [
            (chunk, float(np.dot(embedding, vector)))
            for chunk, embedding in self.dense.store.embedded(record.chunk_ids)
            if chunk.version == record.version and scope.allows(scope_metadata(chunk))
        ]
        if not passages:
            return hits
        chunk, cosine = max(passages, key=lambda passage: passage[1])
        if cosine < top.score - self.profile.localized_margin:
            return hits
        known = next((hit for hit in hits if hit.chunk.chunk_id == chunk.chunk_id), None)
        localized = Hit(chunk, cosine, known.lexical_score if known else 0.0, top.fused_score)
        rest = [hit for hit in hits if hit.chunk.chunk_id != chunk.chunk_id]
        return [localized, *rest][: self.top_k]


def _language_fair_ranks(
    dense: Sequence[Hit], matches: Sequence[LexicalMatch], dense_ranks: dict[str, int], language: str
) -> dict[str, int]:
    """The lexical leg's ranks, where a candidate in another language than the question gets the
    better of its lexical and dense rank when some candidate is in the question's language
    (see :class:`HybridRetriever`)."""
    ranks = ranks_of([match.chunk_id for match in matches])
    languages = {hit.chunk.chunk_id: hit.chunk.language for hit in dense}
    languages.update({match.chunk_id: match.language for match in matches})
    if language not in languages.values():
        return ranks
    for chunk_id, rank in dense_ranks.items():
        if languages[chunk_id] != language:
            ranks[chunk_id] = min(ranks.get(chunk_id, rank), rank)
    return ranks


@dataclass(frozen=True)
class Assessment:
    """What the decision sees: the hits (reranked by the verifier when there is one), the scored
    sentences of the first of them, and the verifier's signals."""

    hits: list[Hit]
    evidence: list[ChunkEvidence]
    verifier: VerifierSignals | None = None


class AnswerEngine:
    """Answers questions only from the knowledge base, or abstains."""

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        profile: RetrievalProfile,
        registry: DocumentRegistry | None = None,
        sentence_embedder: Embedder | None = None,
        lexical: LexicalIndex | None = None,
        use: UseLeg | None = None,
        bias: LanguageBias | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.profile = profile
        self.verifier = verifier
        dense = DenseRetriever(
            embedder,
            store,
            profile.top_k,
            profile.cross_lingual_bonus,
            registry,
            use,
            profile.use_weight,
            bias if profile.language_centring else None,
            profile.centred_query,
        )
        self.retriever = HybridRetriever(dense, LexicalRetriever(lexical, registry) if lexical else None, profile)
        # Sentences are embedded as passages; give a content-hash cache (retrieval/embedding_cache.py)
        # filled at ingestion, or each question pays 25-200 ms to embed them (retrieval/evidence.py).
        self.scorer = SentenceScorer(sentence_embedder or embedder, profile.evidence_term_weight)

    def warm_up(self) -> None:
        """Load now what the first question would wait for: the word segmenter and stemmers, and the
        lexical index's matrices (seconds at 100k chunks)."""
        warm_up_analysis()
        if self.retriever.dense.use is not None and self.profile.use_weight > 0:
            self.retriever.dense.use.encoder.warm_up()
        if self.retriever.lexical is not None:
            self.retriever.lexical.index.refresh()

    def ask(self, question: str, language: str | None = None, scope: Scope | None = None) -> Answer:
        """Answer ``question`` from the chunks ``scope`` allows (default: the default tenant's public
        documents); ``language`` (ISO 639-1) overrides detection."""
        return self.ask_with_hits(question, language, scope)[0]

    def ask_with_hits(
        self, question: str, language: str | None = None, scope: Scope | None = None
    ) -> tuple[Answer, list[Hit]]:
        """The answer and every hit it was chosen from, in the order the decision saw them (for
        evaluation and audit)."""
        question, language, assessment = self.examine(question, language, scope)
        return self.compose(question, language, assessment), assessment.hits

    def examine(
        self, question: str, language: str | None = None, scope: Scope | None = None
    ) -> tuple[str, str, Assessment]:
        """Retrieve and assess ``question``: the cleaned question, its language and the assessment."""
        question = question.strip()
        detected = language or detect_language(question)
        language = "en" if detected == UNKNOWN else detected
        vector = self.embedder.embed_query(question)  # once, for retrieval and sentence evidence
        hits = self.retriever.retrieve_by_vector(vector, language, scope, question)
        return question, language, self.assess(question, language, hits, vector)

    def evidence(self, question: str, hits: Sequence[Hit], vector: Vector | None = None) -> list[ChunkEvidence]:
        """The scored sentences of the first ``evidence_chunks`` hits (``vector``: the embedded question)."""
        if not hits:
            return []
        vector = self.embedder.embed_query(question) if vector is None else vector
        return self.scorer.score(question, vector, hits[: self.profile.evidence_chunks])

    def assess(self, question: str, language: str, hits: Sequence[Hit], vector: Vector | None = None) -> Assessment:
        """Rerank ``hits`` with the verifier (when there is one) and score the sentences of the first."""
        hits = list(hits)
        depth = self.profile.verify_depth
        if self.verifier is None or depth == 0 or not hits:
            return Assessment(hits, self.evidence(question, hits, vector))
        verified = rerank(self.verifier, question, hits, language, depth, self.profile.localized_margin)
        evidence = self.evidence(question, verified.hits, vector)
        evidence[0] = verify_sentences(self.verifier, question, evidence[0], self.profile.verify_window)
        best_sentence = max((sentence.score for sentence in evidence[0].sentences), default=0.0)
        signals = VerifierSignals(verified.top or 0.0, best_sentence)
        return Assessment(verified.hits, evidence, signals)

    def compose(self, question: str, language: str, assessment: Assessment) -> Answer:
        return compose_answer(
            question, language, assessment.hits, self.profile, assessment.evidence, assessment.verifier
        )

    def answer(self, question: str, language: str, hits: Sequence[Hit], vector: Vector | None = None) -> Answer:
        """Decide and compose from ``hits`` retrieved for ``question``: answer with quotes, or abstain."""
        return self.compose(question, language, self.assess(question, language, hits, vector))


def build_components(
    settings: Settings, embedder: Embedder | None = None
) -> tuple[Embedder, ChromaStore, DocumentRegistry]:
    """The embedder, store and registry a process needs, all configured from ``settings``
    (``embedder`` replaces the configured one, e.g. a fake in tests)."""
    private_dir(settings.data_dir)
    set_analysis_cache_dir(settings.data_dir / "cache")
    embedder = embedder or load_embedder(
        settings.embedding_backend,
        settings.embedding_model,
        settings.resolved_model_dir,
        batch_size=settings.embedding_batch_size,
        threads=settings.embedding_threads,
    )
    store = ChromaStore(settings.chroma_dir, settings.collection)
    registry = DocumentRegistry(settings.database_url)
    return embedder, store, registry


def build_engine(
    settings: Settings, profile: RetrievalProfile, embedder: Embedder, store: ChromaStore, registry: DocumentRegistry
) -> AnswerEngine:
    """A process's answer engine: hybrid retrieval over the data dir's lexical index, sentence
    evidence read from the cache that ingestion fills (retrieval/evidence.py), and the trained
    verifier when the profile uses it and ``prepare-model`` exported one (retrieval/verify.py)."""
    from retrieval.verifier import load_verifier

    """A process's answer engine: hybrid retrieval over the data dir's lexical index and USE vectors,
    and sentence evidence read from the cache that ingestion fills (retrieval/evidence.py)."""
    return AnswerEngine(
        embedder,
        store,
        profile,
        registry,
        lexical=LexicalIndex(settings.lexical_dir),
        sentence_embedder=sentence_cache(embedder, settings),
        use=UseLeg.beside(store) if settings.use_vectors else None,
        bias=bias_for(settings.embedding_model, embedder.dimension),
        verifier=load_verifier(settings) if profile.verify_depth > 0 else None,
    )
