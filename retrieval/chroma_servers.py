"""Chroma servers instead of the embedded store: ``ANSWERDESK_CHROMA_URLS`` (comma-separated) makes
the vector store a ``chromadb.HttpClient`` per server, each tenant's collections on the server its
placement names (retrieval/placement.py). A server that is down fails only its own tenants'
requests (503 ``store_unavailable``); its client is opened again on the next call after it is back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from retrieval.config import Settings
from retrieval.placement import PlacementStore
from retrieval.vector_store import ChromaStore, StoreUnavailableError


class ChromaServers:
    """The servers, and which one holds a tenant."""

    def __init__(self, urls: list[str], placement: PlacementStore) -> None:
        if not urls:
            raise ValueError("no Chroma server URLs")
        self.urls = urls
        self.placement = placement

    def server_of(self, tenant: str) -> str:
        server = self.placement.server_of(tenant, self.urls)
        if server not in self.urls:
            raise StoreUnavailableError(
                f"tenant {tenant!r} is placed on {server}, which is not in ANSWERDESK_CHROMA_URLS"
            )
        return server

    def tenants(self) -> list[str]:
        return sorted(self.placement.placements())

    @staticmethod
    def connect(url: str) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a Chroma server URL (http://host:port): {url!r}")
        try:
            return chromadb.HttpClient(
                host=parts.hostname,
                port=parts.port or (443 if parts.scheme == "https" else 8000),
                ssl=parts.scheme == "https",
                settings=ChromaSettings(anonymized_telemetry=False),
            )
        except Exception as exc:  # refused, timed out, not a Chroma server
            raise StoreUnavailableError(f"vector server {url} does not answer: {exc}") from exc


def build_vector_store(settings: Settings) -> ChromaStore:
    """The embedded store in the data dir, or the configured Chroma servers."""
    urls = settings.chroma_servers
    if not urls:
        return ChromaStore(settings.chroma_dir, settings.collection)
    servers = ChromaServers(urls, PlacementStore(settings.database_url))
    return ChromaStore(settings.chroma_dir, settings.collection, servers)
