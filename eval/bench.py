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
- At the largest size, AnswerDesk's question → answer also with the verifier reranking the first
  ``VERIFY_DEPTH`` hits, when ``prepare-model`` exported one (``answerdesk_with_verifier``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eval.datasets import load_suite
from eval.metrics import percentile
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import Embedder, Matrix, load_embedder
from retrieval.records import Chunk, Document
from retrieval.timings import StageTimings

logger = logging.getLogger(__name__)

NOISE = 0.02
# The verifier-on latency is measured with it reranking this many hits (a modest depth: docs/verifier.md).
VERIFY_DEPTH = 3
SEED = 11
_ADD_BATCH = 5000


def real_passages(settings: Settings, count: int) -> tuple[list[Document], list[str]]:
    """``count`` passages and the questions, round-robin over xquad-r (5 languages), squad2 and nomiracl:en."""
    names = [f"xquad-r:{lang}-{lang}" for lang in ("en", "de", "es", "ru", "zh")] + ["squad2", "nomiracl:en"]
    suites = [load_suite(name, settings) for name in names]
    # The XQuAD-R languages share paragraph ids: each suite's ids get its number in front.
    pools = [
        [replace(document, document_id=f"s{number}/{document.document_id}") for document in suite.documents]
        for number, suite in enumerate(suites)
    ]
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
    """AnswerDesk as ``answerdesk serve`` runs it, over a data dir of its own (so a server can be started
    on it): the real Ingestor (passages, sentence evidence, USE vectors, lexical index) and the engine
    ``build_pipeline`` makes (hybrid retrieval, USE leg, language bias; the verifier as the profile says)."""

    def __init__(self, workdir: Path, settings: Settings, embedder: Embedder, profile: RetrievalProfile) -> None:
        from ingest.pipeline import build_ingestor
        from retrieval.pipeline import build_pipeline
        from retrieval.registry import DocumentRegistry
        from retrieval.vector_store import ChromaStore

        self.settings = settings.model_copy(
            update={"data_dir": workdir / "answerdesk", "model_dir": settings.resolved_model_dir}
        )
        self.embedder = embedder
        self.profile = profile
        self.store = ChromaStore(self.settings.chroma_dir, self.settings.collection)
        self.registry = DocumentRegistry(self.settings.database_url)
        self.ingestor = build_ingestor(self.settings, profile, embedder, self.store, self.registry)
        self.ingestor.lock_path = None  # one writer here; the lock file would only cost a syscall
        self.engine = build_pipeline(self.settings, profile, embedder, self.store, self.registry)
        lexical = self.engine.retriever.lexical
        if lexical is not None:
            lexical.index.background_rebuild = False  # rebuilt before timing, as the server's warm-up does
        self.sentences = self.ingestor.sentences
        # Per-stage seconds of each question asked (retrieval/timings.py), for the stage means.
        self.stage_seconds: dict[str, list[float]] = {}
        self.asked = 0
        self.use_store = self.ingestor.use_store
        # One-off costs kept out of the timed ingest, as the peer's are (it opens Chroma here): opening
        # Chroma (its import alone took 8 s on the busy machine), the stemmers and word segmenter.
        from retrieval.analysis import warm_up as warm_up_analysis

        self.store.ping()
        if self.use_store is not None:
            self.use_store.ping()
        warm_up_analysis()

    def ingest(self, documents: Sequence[Document]) -> None:
        failed = [result for result in self.ingestor.ingest_documents(documents) if result.error]
        if failed:
            raise RuntimeError(f"bench ingest failed: {failed[0].error}")

    def base(self) -> _Base:
        """The ingested chunks' texts, languages, e5 and USE vectors (USE rows of uncovered languages are zero)."""
        stored = self.store.embedded(sorted(self.store.inventory()))
        texts = [(chunk.text, chunk.language) for chunk, _ in stored]
        vectors = np.stack([vector for _, vector in stored])
        if self.use_store is None:
            return _Base(texts, vectors, None)
        ids = [chunk.chunk_id for chunk, _ in stored]
        use = {chunk.chunk_id: vector for chunk, vector in self.use_store.embedded(ids)}
        width = next(iter(use.values())).shape[0] if use else 512
        missing = np.zeros(width, dtype=np.float32)
        return _Base(texts, vectors, np.stack([use.get(chunk.chunk_id, missing) for chunk, _ in stored]))

    def add_vectors(self, chunks: Sequence[Chunk], vectors: Matrix, use_vectors: Matrix | None) -> None:
        """Version 1 of each chunk's document, through the Publisher (store, registry, lexical index,
        USE vectors), with the chunks' sentences embedded into the evidence cache as ingestion does
        (only texts not seen before cost anything: the synthetic chunks repeat the real texts)."""
        from retrieval.publish import Publication
        from retrieval.registry import DocumentRecord
        from retrieval.use_encoder import use_covers

        if self.sentences is not None:
            self.sentences.warm(chunks)
        rows: dict[str, list[int]] = {}
        for row, chunk in enumerate(chunks):
            rows.setdefault(chunk.document_id, []).append(row)
        publications = []
        for document_id, ids in rows.items():
            language = chunks[ids[0]].language
            record = DocumentRecord(
                document_id=document_id,
                title="",
                source="",
                language=language,
                kind="text",
                content_hash="",
                version=1,
                chunk_ids=[chunks[row].chunk_id for row in ids],
                updated_at="",
            )
            use = use_vectors[ids] if use_vectors is not None and use_covers(language) else None
            versioned = [replace(chunks[row], version=1) for row in ids]
            publications.append(Publication(record, versioned, vectors[ids], None, use))
        self.ingestor.publisher.publish(publications)

    def ask(self, question: str) -> None:
        timings = StageTimings()
        self.engine.run(self.engine.query(question, timings=timings))
        for stage, seconds in timings.totals().items():
            self.stage_seconds.setdefault(stage, []).append(seconds)
        self.asked += 1

    def retrieve(self, question: str) -> None:
        from retrieval.language import resolve_language

        self.engine.retriever.retrieve(question, resolve_language(question))

    def refresh(self) -> None:
        """What the server loads before its first questions: the lexical matrices, the USE encoder and
        the in-memory snapshots for exact search (built now rather than in the background)."""
        from retrieval.scope import DEFAULT_TENANT

        self.engine.warm_up()
        stores = [self.store] + ([self.engine.retriever.dense.use.store] if self.engine.retriever.dense.use else [])
        for store in stores:
            if store.exact_search:
                store.snapshots.build(DEFAULT_TENANT)

    def search(self, vector: np.ndarray) -> None:
        self.store.query(vector.astype(np.float32), self.profile.top_k * 3)

    def search_hnsw(self, vector: np.ndarray) -> None:
        """The same search on Chroma's HNSW index (as before exact search), for comparison."""
        self.store.exact_search = False
        try:
            self.search(vector)
        finally:
            self.store.exact_search = True

    def search_ids(self, vector: np.ndarray, k: int) -> list[str]:
        return [hit.chunk.chunk_id for hit in self.store.query(vector.astype(np.float32), k)]

    def stored_collection(self) -> Any:
        return self.store.collection

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

    def add_vectors(self, chunks: Sequence[Chunk], vectors: Matrix, use_vectors: Matrix | None = None) -> None:
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

    def search_ids(self, vector: np.ndarray, k: int) -> list[str]:
        from llama_index.core.vector_stores.types import VectorStoreQuery

        result = self.store.query(VectorStoreQuery(query_embedding=vector.tolist(), similarity_top_k=k))
        return [str(node_id) for node_id in result.ids or []]

    def stored_collection(self) -> Any:
        return self.collection

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


@dataclass(frozen=True)
class _Base:
    """What synthetic chunks are made from: real chunks' (text, language), e5 and USE vectors, row for row."""

    texts: list[tuple[str, str]]
    vectors: Matrix
    use_vectors: Matrix | None


def _noisy(vectors: Matrix, rng: np.random.Generator) -> Matrix:
    noisy = vectors + rng.normal(0.0, NOISE, size=vectors.shape).astype(np.float32)
    noisy /= np.maximum(np.linalg.norm(noisy, axis=1, keepdims=True), 1e-12)
    return noisy.astype(np.float32)


def _synthetic(base: _Base, start: int, stop: int) -> tuple[list[Chunk], Matrix, Matrix | None]:
    """Chunks ``start..stop`` made from real chunks: their text and vectors plus noise (module docstring)."""
    rng = np.random.default_rng((SEED, start))
    rows = np.arange(start, stop) % len(base.texts)
    chunks = [
        Chunk(
            chunk_id=f"bench/{i}",
            document_id=f"bench/{i // 4}",
            text=base.texts[row][0],
            title="",
            language=base.texts[row][1],
        )
        for i, row in zip(range(start, stop), rows, strict=True)
    ]
    use = _noisy(base.use_vectors[rows], rng) if base.use_vectors is not None else None
    return chunks, _noisy(base.vectors[rows], rng), use


def _fill(side: Any, name: str, base: _Base, size: int) -> None:
    """Add synthetic chunks to ``side`` until it holds ``size``."""
    start = side.count()
    with tqdm(total=max(size - start, 0), desc=f"{name}: filling to {size}", unit="chunk") as bar:
        for batch_start in range(start, size, _ADD_BATCH):
            batch_stop = min(batch_start + _ADD_BATCH, size)
            side.add_vectors(*_synthetic(base, batch_start, batch_stop))
            bar.update(batch_stop - batch_start)
    started = time.perf_counter()
    side.refresh()  # the lexical matrices are rebuilt before timing queries
    logger.info("%s: index refreshed at %d chunks in %.1f s", name, size, time.perf_counter() - started)


def _latencies(sides: dict[str, Any], questions: Sequence[str], embedder: Embedder) -> dict[str, dict[str, Any]]:
    names = list(sides)
    ask_ms: dict[str, list[float]] = {name: [] for name in names}
    retrieve_ms: dict[str, list[float]] = {name: [] for name in names}
    search_ms: dict[str, list[float]] = {name: [] for name in names}
    hnsw_ms: list[float] = []
    for question in questions[:3]:  # untimed: the first questions load lazy models (language ID)
        for side in sides.values():
            side.ask(question)
    sentences = getattr(sides["answerdesk"].sentences, "embedder", None)
    misses = getattr(sentences, "misses", 0)
    answerdesk = sides["answerdesk"]
    answerdesk.stage_seconds, answerdesk.asked = {}, 0
    for position, question in enumerate(questions):
        order = names if position % 2 == 0 else names[::-1]
        vector = embedder.embed_query(question)
        for name in order:
            ask_ms[name].append(_timed(partial(sides[name].ask, question)) * 1000)
            retrieve_ms[name].append(_timed(partial(sides[name].retrieve, question)) * 1000)
            search_ms[name].append(_timed(partial(sides[name].search, vector)) * 1000)
        hnsw_ms.append(_timed(partial(sides["answerdesk"].search_hnsw, vector)) * 1000)
    figures: dict[str, dict[str, Any]] = {
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
    # Sentences embedded while answering (not found in the evidence cache): each costs the model.
    figures["answerdesk"]["search_on_chroma_hnsw_p50_ms"] = percentile(hnsw_ms, 50)
    figures["answerdesk"]["search_on_chroma_hnsw_p95_ms"] = percentile(hnsw_ms, 95)
    # Mean ms per question of each stage of the answer path (a stage that did not run counts 0); the
    # USE and lexical legs run beside the e5 embedding, so their time shows only as waiting in "search".
    figures["answerdesk"]["stage_mean_ms"] = {
        stage: 1000 * sum(seconds) / max(answerdesk.asked, 1) for stage, seconds in answerdesk.stage_seconds.items()
    }
    figures["answerdesk"]["sentence_cache_misses"] = float(getattr(sentences, "misses", 0) - misses)
    return figures


def _verifier_latency(side: Any, questions: Sequence[str], depth: int = VERIFY_DEPTH) -> dict[str, Any] | None:
    """Question → answer with the verifier reranking the first ``depth`` hits, on the side's own engine
    (issue #13's budget with the verifier on); None when ``prepare-model`` exported no verifier."""
    from retrieval.verifier import load_verifier

    engine = side.engine
    verifier = engine.verifier or load_verifier(side.settings)
    if verifier is None:
        return None
    kept = engine.verifier, engine.profile
    engine.verifier, engine.profile = verifier, engine.profile.model_copy(update={"verify_depth": depth})
    try:
        side.ask(questions[0])  # untimed: the verifier's first run
        ask_ms = [_timed(partial(side.ask, question)) * 1000 for question in questions]
    finally:
        engine.verifier, engine.profile = kept
    return {"verify_depth": depth, "ask_p50_ms": percentile(ask_ms, 50), "ask_p95_ms": percentile(ask_ms, 95)}


def _recall(sides: dict[str, Any], questions: Sequence[str], embedder: Embedder, k: int = 10) -> dict[str, float]:
    """recall@k of each side's vector search against exact search over that side's own stored vectors."""
    vectors = [embedder.embed_query(question) for question in questions]
    recall = {}
    for name, side in sides.items():
        stored = side.stored_collection().get(include=["embeddings"])
        ids = list(stored["ids"])
        matrix = np.asarray(stored["embeddings"], dtype=np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        found = 0
        for vector in vectors:
            exact = {ids[row] for row in np.argsort(-(matrix @ vector))[:k]}
            found += len(exact & set(side.search_ids(vector, k)))
        recall[name] = found / (k * len(vectors))
    return recall


def _serve(side: _AnswerDeskSide, clients: int, seconds: float) -> dict[str, Any]:
    """``answerdesk serve`` on the AnswerDesk side's data dir: seconds to ``/readyz`` 200, RSS after
    warm-up questions, and ``clients`` concurrent /v1/ask clients for ``seconds`` (eval/load.py)."""
    import asyncio
    import os

    import httpx

    from eval.fleet import ApiReplica
    from eval.load import create_key, load_questions, run_clients

    env = dict(os.environ)
    env |= {
        "ANSWERDESK_DATA_DIR": str(side.settings.data_dir),
        "ANSWERDESK_MODEL_DIR": str(side.settings.resolved_model_dir),
        "ANSWERDESK_RATE_LIMIT_PER_SECOND": "0",
        "ANSWERDESK_LOG_LEVEL": "INFO",  # the snapshot builds are read from the log (_snapshots_built)
    }
    _, key = create_key(env)
    questions = load_questions()
    log = Path(tempfile.mkstemp(prefix="answerdesk-bench-serve-", suffix=".log")[1])
    server = ApiReplica("serve", side.settings.data_dir, env, log=log)
    base_url = server.url
    started = time.perf_counter()
    server.launch()
    try:
        server.wait_ready(300, interval=0.05)
        ready = time.perf_counter() - started
        headers = {"Authorization": f"Bearer {key}"}
        for question in questions[:20]:  # every lazy part loaded, as after the first minutes of serving
            httpx.post(f"{base_url}/v1/ask", json={"question": question}, headers=headers, timeout=60)
        rss_early = _rss_bytes(server.pid)
        # At 100k chunks the exact-search snapshots (e5 and USE) take tens of seconds to read after the
        # start, and questions use Chroma's HNSW meanwhile: the RSS that counts is the one after them.
        snapshots = _snapshots_built(log, expected=2, timeout=300.0)
        snapshots_ready = time.perf_counter() - started
        rss = _rss_bytes(server.pid)
        load = asyncio.run(run_clients([base_url], key, questions, clients, seconds, 30.0)) if seconds > 0 else None
        rss_after = _rss_bytes(server.pid)
    finally:
        server.stop()
    figures: dict[str, Any] = {
        "chunks": side.count(),
        "ready_s": ready,
        "rss_after_20_questions_mb": rss_early / 2**20,
        "snapshots_built": snapshots,
        "snapshots_ready_s": snapshots_ready,
        "rss_mb": rss / 2**20,
        "rss_after_load_mb": rss_after / 2**20,
        "log": log.name,
    }
    if load is not None:
        figures |= {
            "load_clients": clients,
            "load_seconds": load.seconds,
            "load_requests_per_s": load.requests / load.seconds,
            "load_errors": sum(load.errors.values()),
            "load_p50_ms": percentile(load.latencies_ms, 50) if load.latencies_ms else None,
            "load_p95_ms": percentile(load.latencies_ms, 95) if load.latencies_ms else None,
        }
    return figures


def _snapshots_built(log: Path, expected: int, timeout: float) -> int:
    """Wait until the server's log says ``expected`` exact-search snapshots are in memory (or
    ``timeout`` passes); how many it says."""
    deadline = time.monotonic() + timeout
    while True:
        lines = log.read_text(errors="replace").splitlines()
        built = sum("exact search:" in line and "in memory" in line for line in lines)
        if built >= expected or time.monotonic() > deadline:
            return built
        time.sleep(0.5)


def _rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _answerdesk_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "answerdesk"]


def run_bench(
    settings: Settings,
    profile: RetrievalProfile,
    passages: int,
    sizes: Sequence[int],
    queries: int,
    rounds: int,
    load_seconds: float = 20.0,
    load_clients: int = 50,
) -> dict[str, Any]:
    """Ingest throughput (passages/s) and latency per store size, for both systems, with ratios; search
    recall@10 against exact search; then ``answerdesk serve`` at the largest size: cold start, RSS and
    throughput under load."""
    documents, questions = real_passages(settings, passages)
    questions = (questions * (queries // max(len(questions), 1) + 1))[:queries]
    embedder = load_embedder(
        settings.embedding_backend,
        settings.embedding_model,
        settings.resolved_model_dir,
        batch_size=settings.embedding_batch_size,
        threads=settings.embedding_threads,
    )
    embedder.warm_up()
    report: dict[str, Any] = {"passages": len(documents), "rounds": rounds, "queries": len(questions), "noise": NOISE}
    with tempfile.TemporaryDirectory(prefix="answerdesk-bench-") as scratch:
        answerdesk = _AnswerDeskSide(Path(scratch), settings, embedder, profile)
        sides: dict[str, Any] = {"answerdesk": answerdesk, "llamaindex": _PeerSide(Path(scratch), embedder, profile)}
        throughput = _ingest_rounds(sides, documents, rounds)
        report["ingest_passages_per_s"] = throughput
        report["ingest_ratio_answerdesk_over_llamaindex"] = throughput["answerdesk"] / throughput["llamaindex"]
        report["ingest_stage_seconds"] = vars(answerdesk.ingestor.times)
        report["ingested_chunks"] = {name: side.count() for name, side in sides.items()}
        base = answerdesk.base()
        for size in sorted(sizes):
            for name, side in sides.items():
                _fill(side, name, base, size)
            latency: dict[str, Any] = _latencies(sides, questions, embedder)
            latency["ratio_answerdesk_over_llamaindex"] = {
                key: latency["answerdesk"][key] / latency["llamaindex"][key] for key in latency["llamaindex"]
            }
            latency["search_recall_at_10_vs_exact"] = _recall(sides, questions[:50], embedder)
            if size == max(sizes):
                latency["answerdesk_with_verifier"] = _verifier_latency(answerdesk, questions[:50])
            report[f"latency_at_{size}"] = latency | {"chunks": {name: side.count() for name, side in sides.items()}}
            logger.info("latency at %d chunks: %s", size, latency)
        if sizes:
            report[f"serve_at_{max(sizes)}"] = _serve(answerdesk, load_clients, load_seconds)
    return report
