"""What a caller may see, and what it asks to narrow retrieval to.

Access (tenant, audiences) comes from the caller's API key and is never taken from the request;
filters (languages, products, tags, documents) come from the request. Both are applied inside the
store query (retrieval/vector_store.py) and checked again on every hit (``allows``), so a chunk outside
the scope can never reach an answer, a citation or an escalation.

Each tenant has its own Chroma collection (retrieval/vector_store.py). A document of tenant ``acme`` is
stored under the qualified id ``acme:<id>`` (registry, chunk ids); the default tenant's ids are
unqualified, so a single-tenant deployment never sees the prefix. Responses name documents and
chunks without it (``local_id``) and their files by the path below the ingested folder
(``shown_source``), never by a path on the server.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import regex

from common.errors import AnswerDeskError

DEFAULT_TENANT = "default"
PUBLIC = "public"
INTERNAL = "internal"
AUDIENCES = (PUBLIC, INTERNAL)
TENANT_SEPARATOR = ":"
# Also part of a Chroma collection name (retrieval/vector_store.py), which must end in a letter or digit.
TENANT_NAME = regex.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
# Chroma metadata holds scalars only, so each tag is stored as its own boolean key.
TAG_KEY_PREFIX = "tag:"


class ScopeError(AnswerDeskError, ValueError):
    """A tenant name, audience or document id that cannot be used; the message says which."""

    code = "invalid_scope"


class InvalidIdError(ScopeError):
    """A document id that cannot be stored (``check_document_id``)."""

    code = "invalid_id"


# A file name segment may have at most 255 bytes on every common file system; an id segment names
# a folder or (with its suffix) the uploaded file, so it has the same limit.
MAX_ID_SEGMENT_BYTES = 255
# The whole id, well inside the 4,096-byte path limit once the data dir is in front of it.
MAX_ID_BYTES = 1024


def check_document_id(document_id: str, suffix: str = "") -> str:
    """``document_id`` when it can name a document (folder ingestion and the API share this rule):
    '/'-separated segments, none empty, '.' or '..', no control characters or backslash, each at
    most 255 bytes in UTF-8 (the last with ``suffix``, the stored file's extension, added), and
    1,024 bytes in all.
    Any other Unicode is allowed, as in file names."""
    segments = document_id.split("/")
    if not document_id or any(segment in {"", ".", ".."} for segment in segments):
        raise InvalidIdError(f"invalid document id {document_id[:80]!r}: empty, '.' or '..' path segment")
    bad = next((char for char in document_id if char == "\\" or unicodedata.category(char) == "Cc"), None)
    if bad is not None:
        raise InvalidIdError(f"invalid document id {document_id[:80]!r}: it holds the character {bad!r}")
    if len(document_id.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidIdError(f"invalid document id {document_id[:80]!r}: over {MAX_ID_BYTES} bytes")
    segments[-1] += suffix
    longest = max(len(segment.encode("utf-8")) for segment in segments)
    if longest > MAX_ID_SEGMENT_BYTES:
        raise InvalidIdError(
            f"invalid document id {document_id[:80]!r}: a path segment is {longest} bytes "
            f"(with the file extension), over the {MAX_ID_SEGMENT_BYTES}-byte limit"
        )
    return document_id


def check_tenant(tenant: str) -> str:
    if not TENANT_NAME.match(tenant):
        raise ScopeError(
            f"invalid tenant {tenant!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting and ending with a letter or digit"
        )
    return tenant


def check_audience(audience: str) -> str:
    if audience not in AUDIENCES:
        raise ScopeError(f"invalid audience {audience!r}: use one of {', '.join(AUDIENCES)}")
    return audience


def qualify(tenant: str, local_id: str) -> str:
    """The stored id of ``local_id`` in ``tenant``; a local id may already carry the caller's own prefix
    (a tenant name before the first ':'; any other text before a ':' is part of the id, as in
    ``en/Release 1.5: what's new``).

    >>> qualify("acme", "en/faq"), qualify("acme", "acme:en/faq"), qualify("default", "en/faq")
    ('acme:en/faq', 'acme:en/faq', 'en/faq')
    """
    owner, _, rest = local_id.partition(TENANT_SEPARATOR)
    if rest and TENANT_NAME.match(owner):
        if owner != tenant:
            # Another tenant's prefix is treated as an unknown id, never as a way in.
            raise ScopeError(f"document id {local_id!r} is not valid here")
        return local_id
    return local_id if tenant == DEFAULT_TENANT else f"{tenant}{TENANT_SEPARATOR}{local_id}"


def tenant_of(document_id: str) -> str:
    owner, separator, _ = document_id.partition(TENANT_SEPARATOR)
    return owner if separator and TENANT_NAME.match(owner) else DEFAULT_TENANT


def local_id(qualified_id: str) -> str:
    """A stored document or chunk id as its tenant knows it: without the ``tenant:`` prefix.

    >>> local_id("acme:en/faq#v1-0"), local_id("en/faq")
    ('en/faq#v1-0', 'en/faq')
    """
    owner, separator, rest = qualified_id.partition(TENANT_SEPARATOR)
    return rest if separator and TENANT_NAME.match(owner) else qualified_id


def shown_source(document_id: str, source: str) -> str:
    """The source file as callers see it: its path below the ingested folder, never the server's path.

    A document's default id is that path without its extension (ingest/parse.py), so the path is
    ``<id><suffix>`` when the source ends with it; otherwise (an id from front matter) only the file name.

    >>> shown_source("acme:en/faq", "/srv/kb/en/faq.md"), shown_source("refunds", "/srv/kb/en/faq.md")
    ('en/faq.md', 'faq.md')
    """
    if not source:
        return ""
    name = source.replace("\\", "/")
    stem, dot, suffix = name.rpartition(".")
    if not dot or "/" in suffix:
        stem, suffix = name, ""
    own = local_id(document_id)
    if stem == own or stem.endswith("/" + own):
        return f"{own}.{suffix}" if suffix else own
    return name.rsplit("/", 1)[-1]


def tag_set(tags: str | Iterable[str]) -> frozenset[str]:
    """Tags from front matter (``"a,b"`` or a list), lowercased."""
    items = tags.split(",") if isinstance(tags, str) else tags
    return frozenset(tag.strip().lower() for tag in items if tag.strip())


@dataclass(frozen=True)
class Scope:
    """Which chunks a retrieval may return. ``None`` for a filter means "any"."""

    tenant: str = DEFAULT_TENANT
    audiences: frozenset[str] = frozenset({PUBLIC})
    languages: frozenset[str] | None = None
    products: frozenset[str] | None = None
    tags: frozenset[str] | None = None  # any of them
    document_ids: frozenset[str] | None = None  # qualified ids

    @classmethod
    def everything(cls, tenant: str = DEFAULT_TENANT) -> Scope:
        """Every audience of one tenant (command line, evaluation)."""
        return cls(tenant=tenant, audiences=frozenset(AUDIENCES))

    @property
    def audience(self) -> str:
        """The audience of what this scope's caller writes (conversations, escalations): internal
        when it may read internal documents, so nothing it was shown reaches a public key."""
        return INTERNAL if INTERNAL in self.audiences else PUBLIC

    def covers(self, tenant: str, audience: str) -> bool:
        """Whether this scope may read support data of ``tenant`` written for ``audience`` (the same
        tenant and audience rules as for chunks, ``allows``)."""
        return tenant == self.tenant and audience in self.audiences

    def narrowed(
        self,
        languages: Iterable[str] | None = None,
        products: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        document_ids: Iterable[str] | None = None,
    ) -> Scope:
        """This scope with request filters added (access is never widened)."""
        return Scope(
            tenant=self.tenant,
            audiences=self.audiences,
            languages=frozenset(languages) if languages else self.languages,
            products=frozenset(products) if products else self.products,
            tags=tag_set(tags) if tags else self.tags,
            document_ids=frozenset(document_ids) if document_ids is not None else self.document_ids,
        )

    @property
    def is_empty(self) -> bool:
        """Nothing can match (e.g. an empty document list), so the store need not be asked."""
        return not self.audiences or any(
            value is not None and not value for value in (self.languages, self.products, self.tags, self.document_ids)
        )

    @property
    def narrows_tenant(self) -> bool:
        """Whether some of the tenant's chunks are outside this scope (an audience or a filter)."""
        has_filters = any(value is not None for value in (self.languages, self.products, self.tags, self.document_ids))
        return has_filters or not self.audiences >= set(AUDIENCES)

    def allows(self, metadata: dict[str, Any]) -> bool:
        """Whether a chunk with these store metadata is inside the scope."""
        return (
            metadata.get("tenant", DEFAULT_TENANT) == self.tenant
            and metadata.get("audience", PUBLIC) in self.audiences
            and (self.languages is None or metadata.get("language") in self.languages)
            and (self.products is None or metadata.get("product", "") in self.products)
            and (self.tags is None or any(metadata.get(TAG_KEY_PREFIX + tag) for tag in self.tags))
            and (self.document_ids is None or metadata.get("document_id") in self.document_ids)
        )

    def where(self) -> dict[str, Any]:
        """The same condition as a Chroma ``where`` clause."""
        clauses: list[dict[str, Any]] = [
            {"tenant": self.tenant},
            {"audience": {"$in": sorted(self.audiences)}},
        ]
        if self.languages is not None:
            clauses.append({"language": {"$in": sorted(self.languages)}})
        if self.products is not None:
            clauses.append({"product": {"$in": sorted(self.products)}})
        if self.tags is not None:
            tag_clauses = [{TAG_KEY_PREFIX + tag: True} for tag in sorted(self.tags)]
            clauses.append(tag_clauses[0] if len(tag_clauses) == 1 else {"$or": tag_clauses})
        if self.document_ids is not None:
            clauses.append({"document_id": {"$in": sorted(self.document_ids)}})
        return {"$and": clauses}
