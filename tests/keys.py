"""API keys for tests: the API refuses requests without one."""

from __future__ import annotations

from access.keys import build_key_store
from retrieval.config import Settings


def issue_key(settings: Settings, role: str = "admin", tenant: str = "default", audience: str = "internal") -> str:
    """A new key in ``settings``' database (admin of the default tenant, sees internal documents)."""
    store = build_key_store(settings)
    try:
        return store.create(role, tenant, audience, name="test")[1]
    finally:
        store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unlimited(settings: Settings) -> Settings:
    """The same settings without rate limiting (tests send requests, and wrong keys, back to back)."""
    return settings.model_copy(update={"rate_limit_per_second": 0.0, "failed_auth_per_second": 0.0})
