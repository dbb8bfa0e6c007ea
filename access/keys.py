"""API keys: random tokens with a role, a tenant and an audience, stored only as hashes.

A key reads ``adk_<key id>_<secret>``. The key id (16 hex digits, not secret) finds the row; the
secret (256 random bits) is checked by comparing SHA-256 digests in constant time. A fast hash is
enough because the secret is long and random, not a password someone could guess from a list; the
raw key is shown once, when it is created, and never stored.

The table lives in the support database (``Settings.support_database_url`` or the SQLite file in the
data dir), so the ``answerdesk keys`` commands and the API process see the same keys and a revoked
key stops working on its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from common.clock import utc_now
from common.errors import AnswerDeskError
from common.schema import require_current
from common.sql import SqlStore, private_dir, record_from_row
from retrieval.config import Settings
from retrieval.scope import PUBLIC, check_audience, check_tenant

TOKEN_PREFIX = "adk_"
KEY_ID_HEX = 16
MAX_NAME_CHARS = 100


class Role(StrEnum):
    READER = "reader"
    EDITOR = "editor"
    AGENT = "agent"
    ADMIN = "admin"


class Permission(StrEnum):
    """What a route needs; each role grants a fixed set (``ROLE_PERMISSIONS``)."""

    ASK = "ask"
    FEEDBACK = "feedback"
    DOCUMENTS = "documents"
    JOBS = "jobs"
    ESCALATIONS = "escalations"
    CONVERSATIONS = "conversations"
    FAQ_CANDIDATES = "faq_candidates"
    KEYS = "keys"
    ERASURE = "erasure"  # erase everything about a customer id (admins only)
    STATS = "stats"  # usage figures and the gap report of the tenant (admins only; GET /v1/stats)
    EXPERIMENTS = "experiments"  # A/B experiments of answer profiles (admins only; /v1/experiments)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.READER: frozenset({Permission.ASK, Permission.FEEDBACK}),
    Role.EDITOR: frozenset({Permission.DOCUMENTS, Permission.JOBS}),
    Role.AGENT: frozenset({Permission.ESCALATIONS, Permission.CONVERSATIONS, Permission.FAQ_CANDIDATES}),
    Role.ADMIN: frozenset(Permission),
}


class KeySpecError(AnswerDeskError, ValueError):
    """A role, tenant, audience or name that cannot be used; the message says which."""

    code = "invalid_key_spec"


class KeyNotFoundError(AnswerDeskError, LookupError):
    """No key with this id (in this tenant)."""

    code = "key_not_found"


class _Base(DeclarativeBase):
    pass


class _KeyRow(_Base):
    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(KEY_ID_HEX), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of the secret part
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    role: Mapped[str] = mapped_column(String(16))
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    audience: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(40))
    revoked_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: everything but its secret (which is not kept)."""

    key_id: str
    name: str
    role: str
    tenant: str
    audience: str
    created_at: str
    revoked_at: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, separator, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    if not separator or len(key_id) != KEY_ID_HEX or not secret:
        return None
    return key_id, secret


class KeyStore(SqlStore):
    """Creates, lists, revokes and checks API keys; safe to share between threads."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        require_current(self.engine)  # the schema is Alembic's (common/schema.py)

    def create(self, role: str, tenant: str, audience: str = PUBLIC, name: str = "") -> tuple[ApiKey, str]:
        """A new key and its token; the token is returned only here.

        Raises:
            KeySpecError: an unknown role or audience, an invalid tenant name, a name too long.
        """
        if role not in set(Role):
            raise KeySpecError(f"invalid role {role!r}: use one of {', '.join(Role)}")
        try:
            check_tenant(tenant)
            check_audience(audience)
        except ValueError as exc:
            raise KeySpecError(str(exc)) from exc
        if len(name) > MAX_NAME_CHARS:
            raise KeySpecError(f"name is {len(name)} characters, over the limit of {MAX_NAME_CHARS}")
        key_id = secrets.token_hex(KEY_ID_HEX // 2)
        secret = secrets.token_urlsafe(32)
        row = _KeyRow(
            key_id=key_id,
            secret_hash=_digest(secret),
            name=name,
            role=role,
            tenant=tenant,
            audience=audience,
            created_at=utc_now("seconds"),
        )
        with self._session() as session:
            session.add(row)
            session.flush()
            key = record_from_row(ApiKey, row)
        return key, f"{TOKEN_PREFIX}{key_id}_{secret}"

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key this token belongs to; None when it is malformed, unknown or revoked."""
        parts = split_token(token)
        if parts is None:
            return None
        key_id, secret = parts
        with Session(self.engine) as session:
            row = session.get(_KeyRow, key_id)
            if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
                return None
            if row.revoked_at is not None:
                return None
            return record_from_row(ApiKey, row)

    def keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of ``tenant`` when given), oldest first."""
        query = select(_KeyRow).order_by(_KeyRow.created_at, _KeyRow.key_id)
        if tenant is not None:
            query = query.where(_KeyRow.tenant == tenant)
        with Session(self.engine) as session:
            return [record_from_row(ApiKey, row) for row in session.scalars(query)]

    def revoke(self, key_id: str, tenant: str | None = None, audiences: Collection[str] | None = None) -> ApiKey:
        """Revoke a key (revoking it again changes nothing); only in ``tenant`` and of ``audiences``
        when given."""
        with self._session() as session:
            row = session.get(_KeyRow, key_id)
            if row is None or (tenant is not None and row.tenant != tenant):
                raise KeyNotFoundError(f"no key {key_id!r}")
            if audiences is not None and row.audience not in audiences:
                raise KeyNotFoundError(f"no key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utc_now("seconds")
            session.flush()
            return record_from_row(ApiKey, row)


def build_key_store(settings: Settings) -> KeyStore:
    """The key store in the support database."""
    private_dir(settings.data_dir)
    return KeyStore(settings.support_database_url or settings.database_url)

