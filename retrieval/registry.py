"""The document registry (SQLite by default, any SQLAlchemy URL): what is ingested, its hash and version.

It lets re-ingestion skip unchanged documents without touching the vector store, and serves
document listings without scanning the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, create_engine, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DocumentRegistry:
    """Rows of ingested documents, keyed by document id."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        _Base.metadata.create_all(self.engine)

    def get(self, document_id: str) -> DocumentRecord | None:
        with Session(self.engine) as session:
            row = session.get(_DocumentRow, document_id)
            return _record(row) if row else None

    def all(self) -> list[DocumentRecord]:
        with Session(self.engine) as session:
            rows = session.scalars(select(_DocumentRow).order_by(_DocumentRow.document_id))
            return [_record(row) for row in rows]

    def put(self, record: DocumentRecord) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(_DocumentRow(**_columns(record)))

    def remove(self, document_id: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(delete(_DocumentRow).where(_DocumentRow.document_id == document_id))


def _columns(record: DocumentRecord) -> dict[str, Any]:
    return {
        "document_id": record.document_id,
        "title": record.title,
        "source": record.source,
        "language": record.language,
        "kind": record.kind,
        "content_hash": record.content_hash,
        "version": record.version,
        "chunk_ids": list(record.chunk_ids),
        "extra": dict(record.extra),
        "updated_at": record.updated_at,
    }


def _record(row: _DocumentRow) -> DocumentRecord:
    return DocumentRecord(
        document_id=row.document_id,
        title=row.title,
        source=row.source,
        language=row.language,
        kind=row.kind,
        content_hash=row.content_hash,
        version=row.version,
        chunk_ids=list(row.chunk_ids),
        updated_at=row.updated_at,
        extra=dict(row.extra),
    )
