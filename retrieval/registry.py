"""The document registry (SQLite by default, any SQLAlchemy URL): what is ingested, its hash and live version.

It lets re-ingestion skip unchanged documents without touching the vector store, serves document
listings without scanning the store, and says which version of each document is live: readers
only use chunks of that version (retrieval/publish.py explains the write protocol).

Besides the documents it keeps a small journal of chunk ids that may be in a chunk store without
being live (written ahead of a publish, or retired by one). After a crash, replaying the journal
removes them; in normal operation it is empty between writes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sqlalchemy import JSON, Integer, String, bindparam, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from common.schema import require_current
from common.sql import columns_of, open_database, record_from_row
from retrieval.scope import DEFAULT_TENANT, tenant_of

T = TypeVar("T")


class _Base(DeclarativeBase):
    pass


class _DocumentRow(_Base):
    __tablename__ = "documents"

    document_id: Mapped[str] = mapped_column(String, primary_key=True)
    title: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String, index=True)
    language: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    content_hash: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    chunk_ids: Mapped[list[str]] = mapped_column(JSON)
    extra: Mapped[dict[str, str]] = mapped_column(JSON)
    updated_at: Mapped[str] = mapped_column(String)
    # Hash of the source file's bytes: an unchanged file is skipped without being parsed.
    file_hash: Mapped[str] = mapped_column(String, default="", server_default="")
    # Links the language versions of one article (retrieval/translations.py); "" when only the id does.
    translation_key: Mapped[str] = mapped_column(String, default="", server_default="", index=True)


# Every question reads the live versions of its candidates' documents: built once with an expanding
# parameter, the statement is neither rebuilt nor recompiled per question (~0.5 ms each, pyinstrument).
_LIVE_VERSIONS = select(_DocumentRow.document_id, _DocumentRow.version).where(
    _DocumentRow.document_id.in_(bindparam("ids", expanding=True))
)


class _JournalRow(_Base):
    __tablename__ = "chunk_journal"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(String)
    chunk_ids: Mapped[list[str]] = mapped_column(JSON)


@dataclass(frozen=True)
class DocumentRecord:
    document_id: str
    title: str
    source: str
    language: str
    kind: str
    content_hash: str
    version: int
    chunk_ids: list[str]
    updated_at: str
    extra: dict[str, str] = field(default_factory=dict)
    file_hash: str = ""
    translation_key: str = ""


@dataclass(frozen=True)
class JournalEntry:
    """Chunk ids that may be in a chunk store but are not live."""

    entry_id: int
    document_id: str
    chunk_ids: list[str]


class DocumentRegistry:
    """Rows of ingested documents, keyed by document id, and the chunk journal."""

    def __init__(self, url: str) -> None:
        # WAL lets the API read while an ingest writes; the file is private and a deleted file is noticed
        # (common/sql.py).
        self.engine = open_database(url)
        require_current(self.engine)  # the schema is Alembic's (common/schema.py)

    def is_empty(self) -> bool:
        with Session(self.engine) as session:
            return session.scalars(select(_DocumentRow.document_id).limit(1)).first() is None

    def get(self, document_id: str) -> DocumentRecord | None:
        with Session(self.engine) as session:
            row = session.get(_DocumentRow, document_id)
            return _record(row) if row else None

    def by_source(self, source: str, tenant: str = DEFAULT_TENANT) -> DocumentRecord | None:
        """The tenant's document ingested from ``source`` (the same file may feed several tenants)."""
        with Session(self.engine) as session:
            rows = session.scalars(select(_DocumentRow).where(_DocumentRow.source == source))
            return next((_record(row) for row in rows if tenant_of(row.document_id) == tenant), None)

    def all(self) -> list[DocumentRecord]:
        with Session(self.engine) as session:
            rows = session.scalars(select(_DocumentRow).order_by(_DocumentRow.document_id))
            return [_record(row) for row in rows]

    def translations(self, translation_key: str) -> list[DocumentRecord]:
        """The documents linked by ``translation_key`` (of every tenant: callers check theirs)."""
        if not translation_key:
            return []
        with Session(self.engine) as session:
            rows = session.scalars(select(_DocumentRow).where(_DocumentRow.translation_key == translation_key))
            return [_record(row) for row in rows]

    def live_versions(self, document_ids: Collection[str]) -> dict[str, int]:
        """The live version of each of ``document_ids`` that is ingested."""
        if not document_ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(_LIVE_VERSIONS, {"ids": list(document_ids)})
            return {document_id: version for document_id, version in rows}

    def keep_live(
        self, items: Sequence[T], version_of: Callable[[T], tuple[str, int]], live: Mapping[str, int] | None = None
    ) -> list[T]:
        """The ``items`` whose (document id, version) is live: readers drop hits of any other version.
        The one live-version filter of every reader (dense and lexical retrieval, gap reports).
        ``live`` (from :meth:`live_versions`, covering the items' documents) saves the query: a
        question reads it once for all its legs (retrieval/hybrid.py)."""
        if live is None:
            live = self.live_versions({version_of(item)[0] for item in items})
        return [item for item in items if live.get(version_of(item)[0]) == version_of(item)[1]]

    def put(self, record: DocumentRecord) -> None:
        """Write one record as is (no journal); publishing goes through :meth:`commit`."""
        with Session(self.engine) as session, session.begin():
            session.merge(_DocumentRow(**columns_of(record)))

    def stage(self, entries: Sequence[tuple[str, list[str]]]) -> list[int]:
        """Journal chunk ids about to be written to the chunk stores; returns the entry ids."""
        with Session(self.engine) as session, session.begin():
            rows = [_JournalRow(document_id=document_id, chunk_ids=list(ids)) for document_id, ids in entries]
            session.add_all(rows)
            session.flush()
            return [row.entry_id for row in rows]

    def commit(
        self, records: Sequence[DocumentRecord], staged: Sequence[int], retired: Sequence[tuple[str, list[str]]]
    ) -> list[int]:
        """Make ``records`` live in one transaction: their staged chunks stop being journalled and the
        chunks they replace are journalled as retired. Returns the retired entries' ids."""
        with Session(self.engine) as session, session.begin():
            for record in records:
                session.merge(_DocumentRow(**columns_of(record)))
            if staged:
                session.execute(delete(_JournalRow).where(_JournalRow.entry_id.in_(list(staged))))
            rows = [_JournalRow(document_id=document_id, chunk_ids=list(ids)) for document_id, ids in retired]
            session.add_all(rows)
            session.flush()
            return [row.entry_id for row in rows]

    def retire(self, document_ids: Sequence[str]) -> list[JournalEntry]:
        """Remove documents and journal their chunks as retired, in one transaction."""
        with Session(self.engine) as session, session.begin():
            rows = list(session.scalars(select(_DocumentRow).where(_DocumentRow.document_id.in_(list(document_ids)))))
            entries = [_JournalRow(document_id=row.document_id, chunk_ids=list(row.chunk_ids)) for row in rows]
            session.add_all(entries)
            session.execute(delete(_DocumentRow).where(_DocumentRow.document_id.in_(list(document_ids))))
            session.flush()
            return [JournalEntry(entry.entry_id, entry.document_id, list(entry.chunk_ids)) for entry in entries]

    def journal(self) -> list[JournalEntry]:
        with Session(self.engine) as session:
            rows = session.scalars(select(_JournalRow).order_by(_JournalRow.entry_id))
            return [JournalEntry(row.entry_id, row.document_id, list(row.chunk_ids)) for row in rows]

    def clear_journal(self, entry_ids: Sequence[int]) -> None:
        if not entry_ids:
            return
        with Session(self.engine) as session, session.begin():
            session.execute(delete(_JournalRow).where(_JournalRow.entry_id.in_(list(entry_ids))))


def _record(row: _DocumentRow) -> DocumentRecord:
    record = record_from_row(DocumentRecord, row)
    # Rows written before file_hash existed hold NULL there.
    return replace(record, file_hash=record.file_hash or "", translation_key=record.translation_key or "")
