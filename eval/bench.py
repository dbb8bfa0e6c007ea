"""Speed: ingest throughput and query latency, AnswerDesk vs the LlamaIndex peer, interleaved in one process.

- Ingest: the same real passages (public eval corpora) go to both systems in ``rounds`` slices, the
  order alternating each round; the embedder is the real one, uncached. Parsing files is left out for
  both (passages come in memory); chunking, embedding and writing to Chroma are timed.
- Query latency at N chunks: embedding 100k passages is out of reach on 2 cores, so each store is
  filled with the real passage embeddings from the ingest step, repeated with Gaussian noise
  (σ = ``NOISE`` per dimension, cosine ≈ 0.93 to the source vector) and re-normalised. Questions are
  real eval questions, embedded live. Both systems take each question in turn, alternating who
  goes first. "search" times the vector store query alone with a precomputed question vector;
  "retrieve" the /v1/ask retrieval path: language detection, question embedding and the retriever
  (AnswerDesk: dense + lexical legs, fusion, localized versions; the peer: its retriever).
- AnswerDesk writes through the Publisher into Chroma, the registry and the lexical index, as
  ingestion does, so its reads pay for the live-version checks and the lexical leg.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eval.datasets import load_suite
from eval.metrics import percentile
from eval.systems import chunk_documents
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import Embedder, Matrix, load_embedder
from retrieval.records import Chunk, Document

logger = logging.getLogger(__name__)

NOISE = 0.02
SEED = 11
_ADD_BATCH = 5000


def real_passages(settings: Settings, count: int) -> tuple[list[Document], list[str]]:
    """``count`` passages and the questions, round-robin over xquad-r (5 languages), squad2 and nomiracl:en."""
    names = [f"xquad-r:{lang}-{lang}" for lang in ("en", "de", "es", "ru", "zh")] + ["squad2", "nomiracl:en"]
    suites = [load_suite(name, settings) for name in names]
    pools = [suite.documents for suite in suites]
    documents: list[Document] = []
    for position in range(max(len(pool) for pool in pools)):
        documents.extend(pool[position] for pool in pools if position < len(pool))
        if len(documents) >= count:
            break
    # 50 questions from each xquad-r language, spread over the file.
    questions = [
        suite.cases[position * 23 % len(suite.cases)].question for position in range(50) for suite in suites[:5]
    ]
    return documents[:count], questions


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class _AnswerDeskSide:
    def __init__(self, workdir: Path, embedder: Embedder, profile: RetrievalProfile) -> None:
        from retrieval.embedding_cache import CachingEmbedder
        from retrieval.evidence import SentenceScorer
        from retrieval.lexical import LexicalIndex
        from retrieval.pipeline import AnswerPipeline
        from retrieval.publish import Publisher
        from retrieval.registry import DocumentRegistry
        from retrieval.vector_store import ChromaStore

        self.embedder = embedder
        self.profile = profile
        self.store = ChromaStore(workdir / "answerdesk", "bench")
        self.registry = DocumentRegistry(f"sqlite:///{workdir / 'answerdesk-registry.db'}")
        self.lexical = LexicalIndex(workdir / "answerdesk-lexical", background_rebuild=False)
        self.publisher = Publisher(self.registry, [self.store, self.lexical])
        # Sentence evidence comes from a cache filled at ingestion, as in production (ingest/pipeline.py).
        sentences = CachingEmbedder(embedder, workdir / "sentences.sqlite3", f"bench:{type(embedder).__name__}")
        self.sentences = SentenceScorer(sentences)
        self.engine = AnswerPipeline(
            embedder, self.store, profile, self.registry, lexical=self.lexical, sentence_embedder=sentences
        )
        self.embeddings: list[Matrix] = []

    def ingest(self, documents: Sequence[Document]) -> None:
        chunks = chunk_documents(documents, self.embedder, self.profile)
        vectors = self.embedder.embed_documents([chunk.embedding_text for chunk in chunks])
        self.sentences.warm(chunks)
        self._publish(chunks, vectors)
        self.embeddings.append(vectors)

    def add_vectors(self, chunks: Sequence[Chunk], vectors: Matrix) -> None:
        self._publish(chunks, vectors)

    def _publish(self, chunks: Sequence[Chunk], vectors: Matrix) -> None:
        """Version 1 of each chunk's document, through the Publisher (store, registry, lexical index)."""
        from retrieval.publish import Publication
        from retrieval.registry import DocumentRecord

        rows: dict[str, list[int]] = {}
        for row, chunk in enumerate(chunks):
            rows.setdefault(chunk.document_id, []).append(row)
        self.publisher.publish(
            [
                Publication(
                    DocumentRecord(
                        document_id=document_id,
                        title="",
                        source="",
                        language=chunks[ids[0]].language,
                        kind="text",
                        content_hash="",
                        version=1,
                        chunk_ids=[chunks[row].chunk_id for row in ids],
                        updated_at="",
                    ),
                    [replace(chunks[row], version=1) for row in ids],
                    vectors[ids],
                )
                for document_id, ids in rows.items()
            ]
        )

    def ask(self, question: str) -> None:
        self.engine.ask(question)

    def retrieve(self, question: str) -> None:
        from retrieval.language import resolve_language

        self.engine.retriever.retrieve(question, resolve_language(question))

    def refresh(self) -> None:
        self.lexical.refresh()

    def search(self, vector: np.ndarray) -> None:
        self.store.query(vector.astype(np.float32), self.profile.top_k * 3)

    def count(self) -> int:
        return self.store.count()


class _PeerSide:
    def __init__(self, workdir: Path, embedder: Embedder, profile: RetrievalProfile) -> None:
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.vector_stores.chroma import ChromaVectorStore

        from eval.peer import LlamaIndexSystem, chroma_collection, llamaindex_embedding

        self.collection = chroma_collection(str(workdir / "llamaindex"), "bench")
        self.store = ChromaVectorStore(chroma_collection=self.collection)
        self.embed_model = llamaindex_embedding(embedder)
        self.index = VectorStoreIndex(
            [],
            storage_context=StorageContext.from_defaults(vector_store=self.store),
            embed_model=self.embed_model,
        )
        self.splitter = SentenceSplitter(
            chunk_size=profile.chunk_max_tokens, chunk_overlap=profile.chunk_overlap_tokens
        )
        self.profile = profile
        self.system: Any = None
        self._system_type = LlamaIndexSystem

    def ingest(self, documents: Sequence[Document]) -> None:
        from eval.peer import llamaindex_documents

        # What VectorStoreIndex.from_documents does: split everything, then embed and add in batches.
        self.index.insert_nodes(self.splitter.get_nodes_from_documents(llamaindex_documents(documents)))

    def add_vectors(self, chunks: Sequence[Chunk], vectors: Matrix) -> None:
        from llama_index.core.schema import BaseNode, TextNode

        nodes: list[BaseNode] = [
            TextNode(
                id_=chunk.chunk_id,
                text=chunk.text,
                embedding=vector.tolist(),
                metadata={"document_id": chunk.document_id},
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        self.store.add(nodes)

    def ask(self, question: str) -> None:
        if self.system is None:
            self.system = self._system_type(self.index, self.profile.top_k, self.profile.score_midpoint)
        self.system.ask(question)

    def retrieve(self, question: str) -> None:
        self.ask(question)  # the peer's question path is its retriever and the cutoff

    def refresh(self) -> None:
        """Nothing to rebuild."""

    def search(self, vector: np.ndarray) -> None:
        from llama_index.core.vector_stores.types import VectorStoreQuery

        self.store.query(VectorStoreQuery(query_embedding=vector.tolist(), similarity_top_k=self.profile.top_k))

    def count(self) -> int:
        return int(self.collection.count())


def _ingest_rounds(sides: dict[str, Any], documents: Sequence[Document], rounds: int) -> dict[str, float]:
    seconds = dict.fromkeys(sides, 0.0)
    names = list(sides)
    for round_number in tqdm(range(rounds), desc="ingest rounds", unit="round"):
        part = documents[round_number::rounds]
        order = names if round_number % 2 == 0 else names[::-1]
        for name in order:
            seconds[name] += _timed(partial(sides[name].ingest, part))
    return {name: len(documents) / spent for name, spent in seconds.items()}


def _synthetic(base: Matrix, texts: Sequence[tuple[str, str]], start: int, stop: int) -> tuple[list[Chunk], Matrix]:
    """Chunks ``start..stop`` made from real vectors plus noise (see the module docstring)."""
    rng = np.random.default_rng((SEED, start))
    rows = np.arange(start, stop) % len(base)
    vectors = base[rows] + rng.normal(0.0, NOISE, size=(stop - start, base.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        Chunk(
            chunk_id=f"bench/{i}",
            document_id=f"bench/{i // 4}",
            text=texts[i % len(texts)][0],
            title="",
            language=texts[i % len(texts)][1],
        )
        for i in range(start, stop)
    ]
    return chunks, vectors.astype(np.float32)


def _fill(side: Any, name: str, base: Matrix, texts: Sequence[tuple[str, str]], size: int) -> None:
    """Add synthetic chunks to ``side`` until it holds ``size``."""
    start = side.count()
    with tqdm(total=max(size - start, 0), desc=f"{name}: filling to {size}", unit="chunk") as bar:
        for batch_start in range(start, size, _ADD_BATCH):
            batch_stop = min(batch_start + _ADD_BATCH, size)
            side.add_vectors(*_synthetic(base, texts, batch_start, batch_stop))
            bar.update(batch_stop - batch_start)
    started = time.perf_counter()
    side.refresh()  # the lexical matrices are rebuilt before timing queries
    logger.info("%s: index refreshed at %d chunks in %.1f s", name, size, time.perf_counter() - started)


def _latencies(sides: dict[str, Any], questions: Sequence[str], embedder: Embedder) -> dict[str, dict[str, float]]:
    names = list(sides)
    ask_ms: dict[str, list[float]] = {name: [] for name in names}
    retrieve_ms: dict[str, list[float]] = {name: [] for name in names}
    search_ms: dict[str, list[float]] = {name: [] for name in names}
    for question in questions[:3]:  # untimed: the first questions load lazy models (language ID)
        for side in sides.values():
            side.ask(question)
    for position, question in enumerate(questions):
        order = names if position % 2 == 0 else names[::-1]
        vector = embedder.embed_query(question)
        for name in order:
            ask_ms[name].append(_timed(partial(sides[name].ask, question)) * 1000)
            retrieve_ms[name].append(_timed(partial(sides[name].retrieve, question)) * 1000)
            search_ms[name].append(_timed(partial(sides[name].search, vector)) * 1000)
    return {
        name: {
            "ask_p50_ms": percentile(ask_ms[name], 50),
            "ask_p95_ms": percentile(ask_ms[name], 95),
            "retrieve_p50_ms": percentile(retrieve_ms[name], 50),
            "retrieve_p95_ms": percentile(retrieve_ms[name], 95),
            "search_p50_ms": percentile(search_ms[name], 50),
            "search_p95_ms": percentile(search_ms[name], 95),
        }
        for name in names
    }


def run_bench(
    settings: Settings,
    profile: RetrievalProfile,
    passages: int,
    sizes: Sequence[int],
    queries: int,
    rounds: int,
) -> dict[str, Any]:
    """Ingest throughput (passages/s) and latency per store size, for both systems, with ratios."""
    documents, questions = real_passages(settings, passages)
    questions = (questions * (queries // max(len(questions), 1) + 1))[:queries]
    embedder = load_embedder(
        settings.embedding_backend,
        settings.embedding_model,
        settings.resolved_model_dir,
        batch_size=settings.embedding_batch_size,
    )
    embedder.warm_up()
    report: dict[str, Any] = {"passages": len(documents), "rounds": rounds, "queries": len(questions), "noise": NOISE}
    with tempfile.TemporaryDirectory(prefix="answerdesk-bench-") as scratch:
        sides: dict[str, Any] = {
            "answerdesk": _AnswerDeskSide(Path(scratch), embedder, profile),
            "llamaindex": _PeerSide(Path(scratch), embedder, profile),
        }
        throughput = _ingest_rounds(sides, documents, rounds)
        report["ingest_passages_per_s"] = throughput
        report["ingest_ratio_answerdesk_over_llamaindex"] = throughput["answerdesk"] / throughput["llamaindex"]
        report["ingested_chunks"] = {name: side.count() for name, side in sides.items()}
        base = np.concatenate(sides["answerdesk"].embeddings)
        texts = [
            (document.sections[0].blocks[0] if document.sections else document.title, document.language)
            for document in documents
        ]
        for size in sorted(sizes):
            for name, side in sides.items():
                _fill(side, name, base, texts, size)
            latency = _latencies(sides, questions, embedder)
            latency["ratio_answerdesk_over_llamaindex"] = {
                key: latency["answerdesk"][key] / latency["llamaindex"][key] for key in latency["answerdesk"]
            }
            report[f"latency_at_{size}"] = latency | {"chunks": {name: side.count() for name, side in sides.items()}}
            logger.info("latency at %d chunks: %s", size, latency)
    return report
