"""The vector store: chunks and their embeddings in Chroma, on disk (or on Chroma servers,
retrieval/chroma_servers.py).

Embeddings are always passed in: Chroma's default embedding function would download a model.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from common.errors import AnswerDeskError
from retrieval.exact_search import Scores, Snapshot, Snapshots, Stamp, file_stamp
from retrieval.records import Chunk, Hit
from retrieval.scope import DEFAULT_TENANT, TAG_KEY_PREFIX, Scope, tag_set, tenant_of

logger = logging.getLogger(__name__)

# Chroma's default HNSW settings gave recall@10 of 0.54 against exact search at 100k vectors;
# these gave 0.97 (shared/notes/offline-e5.md).
HNSW_CONFIGURATION: dict[str, Any] = {"space": "cosine", "ef_construction": 200, "ef_search": 400, "max_neighbors": 32}
_WRITE_BATCH = 1000
_DATABASE_FILE = "chroma.sqlite3"  # Chroma's own file in a persistent store's directory
_TENANT_INFIX = "--"
# How many unfiltered neighbours per wanted hit are tried before falling back to a filtered query.
_UNFILTERED_OVERFETCH = 4


class StoreUnavailableError(AnswerDeskError, RuntimeError):
    """The vector store cannot be reached or opened."""

    code = "store_unavailable"


class VectorServers(Protocol):
    """Chroma servers and the tenants placed on them (retrieval/chroma_servers.py)."""

    urls: list[str]

    def server_of(self, tenant: str) -> str: ...

    def tenants(self) -> list[str]: ...

    def connect(self, url: str) -> Any: ...

    def generation(self, key: str) -> int:
        """A collection's generation in SQL (throttled read; retrieval/generations.py)."""
        ...

    def bump(self, key: str) -> None:
        """Tell every replica that a collection changed."""
        ...


class ChromaStore:
    """Chunks with embeddings in Chroma, one collection per tenant; ``query`` returns Hits by cosine
    similarity.

    A tenant's own collection keeps tenants apart by construction and keeps a small tenant fast in a
    big store: Chroma's ``where`` filter lists every matching id before searching, which took 108 ms
    at 100k chunks even when it matched 1% of them (and 832 ms at 99%), against 9.9 ms unfiltered.
    The default tenant uses the plain collection name, so a single-tenant store looks as before.

    Searches run exactly over an in-memory snapshot of the tenant's collection once one is built
    (retrieval/exact_search.py; ``exact_search=False`` keeps them on Chroma's HNSW).
    """

    def __init__(
        self,
        path: Path,
        collection: str = "answerdesk",
        servers: VectorServers | None = None,
        exact_search: bool = True,
    ) -> None:
        self.path = path
        self.collection_name = collection
        # Chroma servers with tenants placed on them (retrieval/chroma_servers.py); None: embedded at path.
        self.servers = servers
        self._clients: dict[str, Any] = {}  # by server URL; "" is the embedded client
        self._collections: dict[str, Any] = {}
        self._opened = False  # once opened, a missing store is an outage, not a store to create
        self._lock = threading.Lock()
        # A snapshot is stamped with the embedded store's file, or on servers with the collection's
        # generation in SQL, which every replica bumps after its writes (retrieval/exact_search.py).
        self.exact_search = exact_search
        self.snapshots = Snapshots(self.collection_of, self._stamp)

    def _stamp(self, tenant: str) -> Stamp:
        if self.servers is None:
            return file_stamp(self.path / _DATABASE_FILE)
        return (self.servers.generation(self._generation_key(tenant)), 0)

    def _generation_key(self, tenant: str) -> str:
        return f"chroma:{self.collection_name_of(tenant)}"

    def _written(self, tenant: str) -> None:
        """After a write: this process's and other replicas' snapshots of the tenant are stale (an
        embedded store's file stamp changed by itself). Only after it succeeded: a write that fails
        (its server is down) leaves the snapshot, which still answers questions meanwhile. Chunks a
        failed write did or did not reach are not live in the registry, which readers go by
        (retrieval/publish.py), so the snapshot and the server differ only in chunks nobody sees."""
        self.snapshots.drop([tenant])
        if self.servers is not None:
            self.servers.bump(self._generation_key(tenant))

    def _server_of(self, tenant: str) -> str:
        return self.servers.server_of(tenant) if self.servers is not None else ""

    @property
    def client(self) -> Any:
        """The default tenant's Chroma client (the only one when embedded)."""
        return self._client_of(self._server_of(DEFAULT_TENANT))

    def _client_of(self, server: str) -> Any:
        """A server's client (``""``: the embedded one); opened on first use, and again after a
        failure (see ``_Guarded``)."""
        if self.servers is None:
            with self._lock:
                if server not in self._clients:
                    self._clients[server] = _Guarded(self._open(), self, server)
                return self._clients[server]
        with self._lock:
            known = self._clients.get(server)
        if known is not None:
            return known
        # Connected outside the lock: a server that hangs until its timeout must not hold up the
        # tenants of the other servers. Two threads may both connect; the first one's client is kept.
        opened = _Guarded(self.servers.connect(server), self, server)
        with self._lock:
            return self._clients.setdefault(server, opened)

    def _open(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.check_present()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(self.path), settings=ChromaSettings(anonymized_telemetry=False))
        except Exception as exc:  # a broken directory or database file: the store is unavailable
            raise StoreUnavailableError(f"vector store at {self.path} cannot be opened: {exc}") from exc
        self._opened = True
        return client

    def check_present(self) -> None:
        """Raise StoreUnavailableError when a store opened before is gone from disk (an unmounted
        volume, a restore in progress): opening anew would create an empty store that answers nothing."""
        if self._opened and not (self.path / _DATABASE_FILE).is_file():
            self.reset()
            raise StoreUnavailableError(f"vector store at {self.path} is missing")

    def reset(self, server: str = "") -> None:
        """Drop the open client of ``server`` (default: the embedded store) and its tenants'
        collections; the next call opens it again."""
        client = self._clients.pop(server, None)
        self._collections = {
            tenant: collection
            for tenant, collection in self._collections.items()
            if self.servers is not None and self._server_of(tenant) != server
        }
        if self.servers is None:
            # On servers the snapshots stay: their stamps are generations in SQL, which no write to
            # a down server can bump, so a tenant's snapshot keeps answering while its server is down.
            self.snapshots.clear()
        if client is not None and self.servers is None:
            try:
                client._target.close()  # the raw client: the guard would check the store first
            except Exception:  # closing a broken client may fail too; it is dropped either way
                logger.debug("closing the Chroma client failed", exc_info=True)

    @property
    def collection(self) -> Any:
        """The default tenant's collection."""
        return self.collection_of(DEFAULT_TENANT)

    def collection_name_of(self, tenant: str) -> str:
        return self.collection_name if tenant == DEFAULT_TENANT else f"{self.collection_name}{_TENANT_INFIX}{tenant}"

    def collection_of(self, tenant: str) -> Any:
        collections = self._collections  # a reset replaces the dict; this call keeps a consistent one
        server = self._server_of(tenant)  # a placement an operator moved is followed (retrieval/placement.py)
        known = collections.get(tenant)
        if known is None or known._server != server:
            collections[tenant] = _Guarded(
                self._client_of(server).get_or_create_collection(
                    self.collection_name_of(tenant),
                    configuration=cast(Any, {"hnsw": HNSW_CONFIGURATION}),
                    embedding_function=None,
                ),
                self,
                server,
            )
        return collections[tenant]

    def tenants(self) -> list[str]:
        """Every tenant that has a collection in this store (on servers: every placed tenant)."""
        if self.servers is not None:
            return self.servers.tenants()
        prefix = self.collection_name + _TENANT_INFIX
        found = [DEFAULT_TENANT] if self.collection_name in self._names() else []
        return found + sorted(name.removeprefix(prefix) for name in self._names() if name.startswith(prefix))

    def _names(self) -> list[str]:
        return [str(getattr(item, "name", item)) for item in self.client.list_collections()]

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        for tenant, positions in _by_tenant(chunk.tenant for chunk in chunks).items():
            for start in range(0, len(positions), _WRITE_BATCH):
                batch = positions[start : start + _WRITE_BATCH]
                self.collection_of(tenant).upsert(
                    ids=[chunks[i].chunk_id for i in batch],
                    embeddings=embeddings[batch],
                    documents=[chunks[i].text for i in batch],
                    metadatas=[_metadata(chunks[i]) for i in batch],
                )
            self._written(tenant)

    def delete(self, chunk_ids: Sequence[str]) -> None:
        for tenant, positions in _by_tenant(tenant_of(chunk_id) for chunk_id in chunk_ids).items():
            for start in range(0, len(positions), _WRITE_BATCH):
                ids = [chunk_ids[i] for i in positions[start : start + _WRITE_BATCH]]
                self.collection_of(tenant).delete(ids=ids)
            self._written(tenant)

    def chunks_of(self, document_id: str, version: int | None = None) -> list[Chunk]:
        """The stored chunks of a document (of one version when given), in reading order."""
        where: dict[str, Any] = {"document_id": document_id}
        if version is not None:
            where = {"$and": [where, {"version": version}]}
        result = self.collection_of(tenant_of(document_id)).get(where=where, include=["documents", "metadatas"])
        chunks = [
            _chunk(chunk_id, text, meta)
            for chunk_id, text, meta in zip(result["ids"], result["documents"], result["metadatas"], strict=True)
        ]
        return sorted(chunks, key=lambda chunk: chunk.position)

    def embedded(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, NDArray[np.float32]]]:
        """Stored chunks with their embeddings (ids not in the store are left out)."""
        found: list[tuple[Chunk, NDArray[np.float32]]] = []
        for tenant, positions in _by_tenant(tenant_of(chunk_id) for chunk_id in chunk_ids).items():
            snapshot = self.snapshots.ready(tenant) if self.exact_search else None
            if snapshot is not None:
                rows = [snapshot.rows.get(chunk_ids[i]) for i in positions]
                made = ((snapshot.row_object(row, _chunk), snapshot.matrix[row]) for row in rows if row is not None)
                found.extend(made)
                continue
            result = self.collection_of(tenant).get(
                ids=[chunk_ids[i] for i in positions], include=["documents", "metadatas", "embeddings"]
            )
            found.extend(
                (_chunk(chunk_id, text, meta), np.asarray(vector, dtype=np.float32))
                for chunk_id, text, meta, vector in zip(
                    result["ids"], result["documents"], result["metadatas"], result["embeddings"], strict=True
                )
            )
        return found

    def inventory(self, tenant: str | None = None) -> dict[str, tuple[str, int]]:
        """Every stored chunk id (of ``tenant`` only, when given) with its document id and version
        (for consistency checks)."""
        stored: dict[str, tuple[str, int]] = {}
        for name in self.tenants() if tenant is None else [tenant]:
            result = self.collection_of(name).get(include=["metadatas"])
            stored.update(
                (chunk_id, (str(meta["document_id"]), int(meta.get("version", 0))))
                for chunk_id, meta in zip(result["ids"], result["metadatas"], strict=True)
            )
        return stored

    def query(self, embedding: NDArray[np.float32], k: int, scope: Scope | None = None) -> list[Hit]:
        """The ``k`` chunks nearest to ``embedding`` inside ``scope`` (default: the default tenant,
        every audience, no filters).

        Only the scope's tenant collection is searched. Its unfiltered neighbours are tried first and
        filtered here; only when too few of them are in scope (e.g. a narrow product filter) does
        the store run Chroma's filtered query. Either way every hit is checked against the scope.
        """
        scope = scope or Scope.everything()
        if k <= 0 or scope.is_empty:
            return []
        snapshot = self.snapshots.current(scope.tenant) if self.exact_search else None
        if snapshot is not None:
            return _snapshot_query(snapshot, snapshot.scores(embedding), k, scope)
        collection = self.collection_of(scope.tenant)
        # No count first (5 ms at 100k chunks): Chroma returns fewer neighbours when it has fewer.
        # Each neighbour's metadata costs ~0.1 ms, so k are tried first (usually most chunks are in
        # scope); a scope that leaves too few of them gets k * 4, then Chroma's filtered query.
        for wanted in (k, k * _UNFILTERED_OVERFETCH) if scope.narrows_tenant else (k,):
            nearest = self._nearest(collection, embedding, wanted, None)
            hits = [hit for hit, meta in nearest if scope.allows(meta)]
            if len(hits) >= k or len(nearest) < wanted:  # enough, or nothing more to find
                return hits[:k]
        nearest = self._nearest(collection, embedding, k, scope.where())
        return [hit for hit, meta in nearest if scope.allows(meta)][:k]

    def query_shifted(
        self, embedding: NDArray[np.float32], shift: NDArray[np.float32], k: int, scope: Scope | None = None
    ) -> tuple[list[Hit], list[Hit]]:
        """:meth:`query` for ``embedding`` and for ``embedding + shift`` made unit length (a question
        and its centred form); on a snapshot, one pass over the matrix for both (Snapshot.shifted_scores)."""
        scope = scope or Scope.everything()
        moved = np.asarray(embedding, dtype=np.float32) + np.asarray(shift, dtype=np.float32)
        norm = max(float(np.linalg.norm(moved)), 1e-12)
        snapshot = self.snapshots.current(scope.tenant) if self.exact_search and k > 0 and not scope.is_empty else None
        if snapshot is None:
            return self.query(embedding, k, scope), self.query(moved / np.float32(norm), k, scope)
        scores = snapshot.scores(embedding)
        shifted = snapshot.shifted_scores(scores, shift, norm)
        return _snapshot_query(snapshot, scores, k, scope), _snapshot_query(snapshot, shifted, k, scope)

    @staticmethod
    def _nearest(
        collection: Any, embedding: NDArray[np.float32], n: int, where: dict[str, Any] | None
    ) -> list[tuple[Hit, dict[str, Any]]]:
        result = collection.query(
            query_embeddings=[embedding],
            n_results=n,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            (Hit(chunk=_chunk(chunk_id, text, meta), score=1.0 - float(distance)), meta)
            for chunk_id, text, meta, distance in zip(
                result["ids"][0],
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            )
        ]

    def prepare_snapshots(self) -> None:
        """Start reading every tenant's snapshot now rather than at its first question: a small one
        in this thread, a big one in the background (Snapshots.current). A store that does not answer
        is left to the first question, as before (a server down must not stop the start)."""
        if not self.exact_search:
            return
        try:
            tenants = self.tenants()
        except StoreUnavailableError as exc:
            logger.warning("exact search: snapshots not prepared at start: %s", exc)
            return
        for tenant in tenants:
            try:
                self.snapshots.current(tenant)
            except StoreUnavailableError as exc:
                logger.warning("exact search: snapshot of tenant %s not prepared at start: %s", tenant, exc)

    def check_reachable(self, tenant: str) -> None:
        """Raise StoreUnavailableError unless the tenant's store answers now: a write checks first,
        so that it fails before it changes anything rather than half way."""
        self.collection_of(tenant).count()

    def count(self) -> int:
        """Chunks stored across all tenants (on servers: those whose server answers)."""
        total = 0
        for tenant in self.tenants():
            try:
                total += int(self.collection_of(tenant).count())
            except StoreUnavailableError:
                if self.servers is None:
                    raise
                logger.warning("tenant %s not counted: its vector server does not answer", tenant)
        return total

    def ping(self) -> None:
        """Raise StoreUnavailableError unless the store is on disk and answers (reopening it if
        needed); on servers, unless at least one answers (a server down fails only its tenants)."""
        if self.servers is None:
            self.collection.count()
            return
        failures = []
        for server in self.servers.urls:
            try:
                self._client_of(server).heartbeat()
                return
            except StoreUnavailableError as exc:
                failures.append(str(exc))
        raise StoreUnavailableError("; ".join(failures))


def _snapshot_query(snapshot: Snapshot, scores: Scores, k: int, scope: Scope) -> list[Hit]:
    """:meth:`ChromaStore.query` over a snapshot, given every row's ``scores``: the nearest rows in
    scope, widening the search (k, 4k, then the k nearest of every row the scope allows) only when a
    scope leaves too few of them."""
    rows: list[tuple[int, float]] = []
    for wanted in (k, k * _UNFILTERED_OVERFETCH) if scope.narrows_tenant else (k,):
        nearest = scores.top(wanted)
        rows = [(row, score) for row, score in nearest if scope.allows(snapshot.metadatas[row])]
        if len(rows) >= k or len(nearest) < wanted:
            break
    else:
        if scope.narrows_tenant:  # too few of the nearest in scope: the nearest of the rows it allows
            allowed = np.flatnonzero([scope.allows(metadata) for metadata in snapshot.metadatas])
            rows = scores.top(k, among=allowed)
    return [Hit(chunk=snapshot.row_object(row, _chunk), score=score) for row, score in rows[:k]]


def _store_errors() -> tuple[type[Exception], ...]:
    """Errors that mean the store is down or damaged; anything else (a bad argument, a bug) is raised as is."""
    import httpx
    from chromadb.errors import ChromaError

    # httpx: a Chroma server (retrieval/chroma_servers.py) refusing, dropping or timing out a call.
    return (ChromaError, OSError, sqlite3.Error, httpx.TransportError)


def _caller_error(exc: Exception) -> bool:
    from chromadb.errors import InvalidArgumentError

    return isinstance(exc, InvalidArgumentError)


class _Guarded:
    """A Chroma client or collection whose failures make the store unavailable, not broken.

    Every call first checks that the store is still on disk, then runs; a store failure (Chroma's
    errors but a bad argument, OS and SQLite errors) becomes :class:`StoreUnavailableError` (a 503
    in the API) and drops the store's open handles, so the call after the store comes back opens it
    again: no restart needed. Any other exception is a bug and is raised as is. A proxy
    rather than a try/except in each store method, so new methods are covered too.
    """

    def __init__(self, target: Any, store: ChromaStore, server: str = "") -> None:
        self._target = target
        self._store = store
        self._server = server  # "": the embedded store

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._server:
                self._store.check_present()
            try:
                return attribute(*args, **kwargs)
            except _store_errors() as exc:
                if _caller_error(exc):
                    raise
                self._store.reset(self._server)
                where = self._server or self._store.path
                raise StoreUnavailableError(f"vector store at {where} failed: {exc}") from exc

        return call


def _by_tenant(tenants: Iterable[str]) -> dict[str, list[int]]:
    """Positions grouped by tenant, in order."""
    groups: dict[str, list[int]] = {}
    for position, tenant in enumerate(tenants):
        groups.setdefault(tenant, []).append(position)
    return groups


def scope_metadata(chunk: Chunk) -> dict[str, str | int | bool]:
    """The metadata :meth:`Scope.allows` and :meth:`Scope.where` read, under their store keys
    (each tag its own boolean key: Chroma metadata hold scalars only)."""
    metadata: dict[str, str | int | bool] = {
        "document_id": chunk.document_id,
        "tenant": chunk.tenant,
        "audience": chunk.audience,
        "language": chunk.language,
        "product": chunk.product,
    }
    metadata.update({TAG_KEY_PREFIX + tag: True for tag in chunk.tags})
    return metadata


def _metadata(chunk: Chunk) -> dict[str, str | int | bool]:
    return {
        **scope_metadata(chunk),
        "title": chunk.title,
        # A JSON list keeps headings that contain the display separator intact.
        "section_path": json.dumps(chunk.section_path, ensure_ascii=False),
        "kind": chunk.kind,
        "source": chunk.source,
        "position": chunk.position,
        "document_hash": chunk.document_hash,
        "updated_at": chunk.updated_at,
        "version": chunk.version,
        "embedding_key": chunk.embedding_key,
        "translation_key": chunk.translation_key,
    }


def _chunk(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        chunk_id=chunk_id,
        document_id=str(meta["document_id"]),
        text=text,
        title=str(meta.get("title", "")),
        section_path=tuple(json.loads(str(meta.get("section_path", "[]")))),
        kind=str(meta.get("kind", "section")),
        language=str(meta.get("language", "und")),
        source=str(meta.get("source", "")),
        position=int(meta.get("position", 0)),
        document_hash=str(meta.get("document_hash", "")),
        updated_at=str(meta.get("updated_at", "")),
        version=int(meta.get("version", 0)),
        embedding_key=str(meta.get("embedding_key", "")),
        audience=str(meta.get("audience", "public")),
        product=str(meta.get("product", "")),
        tags=tag_set(key[len(TAG_KEY_PREFIX) :] for key in meta if key.startswith(TAG_KEY_PREFIX)),
        translation_key=str(meta.get("translation_key", "")),
    )
