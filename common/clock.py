"""The one clock for stored timestamps: UTC, ISO 8601, as text (sortable within one precision).

>>> len(utc_now("seconds")), utc_now().endswith("+00:00")
(25, True)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal


def utc_now(timespec: Literal["seconds", "milliseconds"] = "milliseconds") -> str:
    """Now in UTC, e.g. ``2026-11-30T21:27:07.123+00:00``. Support records use milliseconds (the purge
    cutoff compares them as text); the document registry, ingest jobs and API keys use seconds."""
    return datetime.now(UTC).isoformat(timespec=timespec)
