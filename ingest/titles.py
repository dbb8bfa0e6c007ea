"""A document's title: what the editor named it, never an example on the page.

Order: front matter ``title``, then its first ``aliases`` entry (Obsidian), then the page's first
top-level h1 (markdown-it knows a heading inside a code block, an HTML example, a quote or a callout
is not the page's; ingest/markdown_dialects.py), then the file name as the editor spelled it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def choose_title(meta: Mapping[str, Any], heading: str, path: Path) -> str:
    for value in (meta.get("title"), _first(meta.get("aliases")), _first(meta.get("alias")), heading):
        text = " ".join(str(value or "").split())
        if text:
            return text
    return title_from_filename(path)


def title_from_filename(path: Path) -> str:
    """``CSS snippets.md`` → "CSS snippets"; ``faq-refunds.md`` → "Faq refunds": the editor's casing
    is kept (acronyms survive); only an all-lowercase slug gets a capital first letter."""
    words = " ".join(unicodedata.normalize("NFC", path.stem).replace("-", " ").replace("_", " ").split())
    return words[:1].upper() + words[1:] if words == words.lower() else words


def _first(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value
