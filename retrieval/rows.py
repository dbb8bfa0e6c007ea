"""Copying between frozen dataclass records and SQLAlchemy rows whose columns share their field names."""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any, TypeVar

RecordT = TypeVar("RecordT")


def columns_of(record: Any) -> dict[str, Any]:
    """A record's fields as column values; lists and dicts are copied so the row never shares them."""
    return {field.name: copy.copy(getattr(record, field.name)) for field in fields(record)}


def record_from_row(cls: type[RecordT], row: Any) -> RecordT:
    """The ``cls`` record read from ``row`` (extra row columns are ignored)."""
    return cls(**{field.name: copy.copy(getattr(row, field.name)) for field in fields(cls)})  # type: ignore[arg-type]
