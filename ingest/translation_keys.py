"""Which documents are language versions of one article: the translation key.

Real help centres translate file names (``en/Refund policy`` ↔ ``ru/Политика возврата средств``), so
the ids alone rarely link translations; the shared key lives in front matter instead. The key is
the first of the configured front-matter fields a document has (``ANSWERDESK_TRANSLATION_KEYS``,
default ``translation_key``, Hugo's ``translationKey``, ``permalink``), or the group an explicit map
puts its id in (``ANSWERDESK_TRANSLATION_MAP``, a YAML or JSON file ``{key: [id, id, …]}``, which
wins). Documents without one are still linked by the folder convention ``en/x`` ↔ ``ru/x``
(retrieval/translations.py). Keys are compared after NFC, case folding and removing slashes, a leading
locale segment (``/ru/refunds/`` ≡ ``/en/refunds/``) and a ``.html``/``.md`` suffix.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from retrieval.records import Document

DEFAULT_KEY_FIELDS = ("translation_key", "translationKey", "permalink")


class TranslationMapError(ValueError):
    """The explicit translation map cannot be read."""


@dataclass(frozen=True)
class TranslationKeys:
    fields: tuple[str, ...] = DEFAULT_KEY_FIELDS
    by_id: Mapping[str, str] = field(default_factory=dict)  # document id (NFC) → key, from the explicit map

    @classmethod
    def configured(cls, fields: Sequence[str], map_path: Path | None) -> TranslationKeys:
        return cls(tuple(fields), load_map(map_path) if map_path else {})

    @property
    def fingerprint(self) -> str:
        """Changes when the settings would give other keys (part of each file's hash)."""
        return f"{','.join(self.fields)}|{json.dumps(sorted(self.by_id.items()), ensure_ascii=False)}"

    def apply(self, document: Document) -> Document:
        """``document`` with its translation key in its metadata (none: unchanged)."""
        key = self.key_for(document)
        return replace(document, metadata={**document.metadata, "translation_key": key}) if key else document

    def key_for(self, document: Document) -> str:
        explicit = self.by_id.get(unicodedata.normalize("NFC", document.document_id))
        if explicit:
            return normalise_key(explicit, document.language)
        for name in self.fields:
            value = document.front_matter.get(name, "").strip()
            if value:
                return normalise_key(value, document.language)
        return ""


def normalise_key(value: str, language: str = "") -> str:
    parts = [part for part in unicodedata.normalize("NFC", value).casefold().strip().split("/") if part]
    if len(parts) > 1 and language and re.split(r"[-_]", parts[0])[0] == language.casefold():
        parts = parts[1:]
    if parts and parts[-1] in {"index.html", "index.md", "index"} and len(parts) > 1:
        parts = parts[:-1]
    key = "/".join(parts)
    for suffix in (".html", ".md"):
        key = key.removesuffix(suffix)
    return key


def load_map(path: Path) -> dict[str, str]:
    """``{key: [document id, …]}`` read from a YAML or JSON file, as document id → key."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise TranslationMapError(f"translation map {path}: cannot read it ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(ids, list) for ids in data.values()):
        raise TranslationMapError(f"translation map {path}: expected a mapping of key to a list of document ids")
    return {
        unicodedata.normalize("NFC", str(document_id)): str(key) for key, ids in data.items() for document_id in ids
    }
