"""Chroma servers instead of the embedded store: ``ANSWERDESK_CHROMA_URLS`` (comma-separated) makes
the vector store a ``chromadb.HttpClient`` per server, each tenant's collections on the server its
placement names (retrieval/placement.py). A server that is down fails only its own tenants'
requests that need it (503 ``store_unavailable``; questions are answered from a replica's exact-search
snapshot meanwhile, docs/operations.md "Chroma servers"); its client is opened again on the next call
after it is back.

A server that accepts connections but never answers (hung, or a black-holing network) fails the
same way within ``ANSWERDESK_CHROMA_TIMEOUT_S``: chromadb 1.5's HttpClient makes its httpx client
with ``timeout=None`` and has no setting for it (chromadb/api/fastapi.py), and its constructor
already calls the server. So :meth:`ChromaServers.connect` first asks the server's heartbeat with
the timeout, then sets the timeout on the client's httpx session (httpx's public ``timeout``
property) before any other call. tests/api/test_chroma_servers.py holds a hanging server.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

from retrieval.config import Settings
from retrieval.generations import Generations
from retrieval.placement import PlacementStore
from retrieval.vector_store import ChromaStore, StoreUnavailableError


class ChromaServers:
    """The servers, and which one holds a tenant."""

    def __init__(self, urls: list[str], placement: PlacementStore, timeout_s: float = 5.0) -> None:
        if not urls:
            raise ValueError("no Chroma server URLs")
        self.urls = urls
        self.placement = placement
        self.timeout_s = timeout_s
        # Collections' generations, in the placements' database: exact-search snapshots follow them.
        self.generations = Generations(placement.engine)

    def generation(self, key: str) -> int:
        return self.generations.current(key)

    def bump(self, key: str) -> None:
        self.generations.bump(key)

    def server_of(self, tenant: str) -> str:
        server = self.placement.server_of(tenant, self.urls)
        if server not in self.urls:
            raise StoreUnavailableError(
                f"tenant {tenant!r} is placed on {server}, which is not in ANSWERDESK_CHROMA_URLS"
            )
        return server

    def tenants(self) -> list[str]:
        return sorted(self.placement.placements())

    def connect(self, url: str) -> Any:
        import chromadb
        import httpx
        from chromadb.config import Settings as ChromaSettings

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a Chroma server URL (http://host:port): {url!r}")
        timeout = httpx.Timeout(self.timeout_s)
        try:
            # Bounded: the HttpClient constructor below calls the server without a timeout.
            httpx.get(f"{url}/api/v2/heartbeat", timeout=timeout).raise_for_status()
            client = chromadb.HttpClient(
                host=parts.hostname,
                port=parts.port or (443 if parts.scheme == "https" else 8000),
                ssl=parts.scheme == "https",
                settings=ChromaSettings(anonymized_telemetry=False),
            )
        except Exception as exc:  # refused, timed out, not a Chroma server
            raise StoreUnavailableError(f"vector server {url} does not answer: {exc}") from exc
        # Every later call, queries included (see the module's docstring); chromadb's own attributes.
        cast(Any, client)._server._session.timeout = timeout
        return client


def build_vector_store(settings: Settings) -> ChromaStore:
    """The embedded store in the data dir, or the configured Chroma servers."""
    urls = settings.chroma_servers
    if not urls:
        return ChromaStore(settings.chroma_dir, settings.collection)
    servers = ChromaServers(urls, PlacementStore(settings.database_url), settings.chroma_timeout_s)
    return ChromaStore(settings.chroma_dir, settings.collection, servers)
