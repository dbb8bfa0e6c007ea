"""Turn one source file into a ``Document`` of heading-scoped sections.

Markdown, HTML and plain text go through ``unstructured``'s partitioners. FAQ lists in CSV and JSON
are read with the standard library: ``unstructured`` would turn a CSV into one table element and
lose the question/answer pairing we need.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from retrieval.language import detect_language
from retrieval.types import Document, Section

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".csv", ".json"}
FAQ_KINDS = {"faq"}


class ParseError(Exception):
    """A file that cannot be ingested; the message names the problem for the editor."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def document_id_for(path: Path, root: Path | None) -> str:
    """The default document id: the path below the ingest root, without extension, with '/'."""
    relative = path.relative_to(root) if root and path.is_relative_to(root) else Path(path.name)
    return relative.with_suffix("").as_posix()


def parse_file(path: Path, root: Path | None = None) -> Document:
    """Parse ``path`` into a Document. Raises ParseError with a reason for any bad file."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(path, f"unsupported file type {suffix or '(none)'}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParseError(path, f"cannot read file: {exc.strerror}") from exc
    if not raw.strip():
        raise ParseError(path, "file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(path, f"not valid UTF-8 (byte {exc.start})") from exc

    default_id = document_id_for(path, root)
    if suffix in {".md", ".markdown"}:
        document = _parse_markdown(path, text, default_id)
    elif suffix in {".html", ".htm"}:
        document = _parse_html(path, text, default_id)
    elif suffix == ".txt":
        document = _parse_text(path, text, default_id)
    elif suffix == ".csv":
        document = _parse_csv(path, text, default_id)
    else:
        document = _parse_json(path, text, default_id)
    if not any(section.blocks for section in document.sections):
        raise ParseError(path, "no text found")
    return document


def _parse_markdown(path: Path, text: str, default_id: str) -> Document:
    import frontmatter
    import yaml

    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise ParseError(path, f"invalid YAML front matter: {exc}") from exc
    meta = {key: value for key, value in post.metadata.items() if value is not None}
    partition_md = _unstructured().md
    elements = partition_md(text=post.content) if post.content.strip() else []
    return _from_elements(path, elements, meta, default_id)


def _parse_html(path: Path, text: str, default_id: str) -> Document:
    from lxml import html as lxml_html

    try:
        tree = lxml_html.fromstring(text)
        page_title = (tree.findtext(".//title") or "").strip()
    except (ValueError, lxml_html.etree.ParserError):
        page_title = ""
    elements = _unstructured().html(text=text)
    meta: dict[str, Any] = {"title": page_title} if page_title else {}
    return _from_elements(path, elements, meta, default_id)


def _parse_text(path: Path, text: str, default_id: str) -> Document:
    # Plain text has no headings: the first line is the title, the paragraphs are the body.
    first_line, _, rest = text.strip().partition("\n")
    elements = _unstructured().text(text=rest) if rest.strip() else []
    blocks = tuple(element.text.strip() for element in elements if element.text.strip())
    meta = {"title": first_line.strip(), "type": "text"}
    return _document(default_id, meta, path, [Section(path=(), blocks=blocks)])


def _parse_csv(path: Path, text: str, default_id: str) -> Document:
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    missing = [name for name in ("question", "answer") if name not in columns]
    if missing:
        raise ParseError(path, f"CSV FAQ is missing column(s): {', '.join(missing)}")
    pairs = [(row.get(columns["question"]) or "", row.get(columns["answer"]) or "") for row in reader]
    meta = {"title": _title_from_filename(path), "type": "faq"}
    return _document(default_id, meta, path, _faq_sections(path, pairs))


def _parse_json(path: Path, text: str, default_id: str) -> Document:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(path, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    meta: dict[str, Any] = {}
    items = data
    if isinstance(data, dict):
        meta = {key: value for key, value in data.items() if key != "faqs"}
        items = data.get("faqs")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ParseError(path, 'JSON FAQ must be a list of {"question", "answer"} objects or {"faqs": [...]}')
    pairs = [(str(item.get("question") or ""), str(item.get("answer") or "")) for item in items]
    meta.setdefault("title", _title_from_filename(path))
    meta["type"] = "faq"
    return _document(default_id, meta, path, _faq_sections(path, pairs))


def _faq_sections(path: Path, pairs: Iterable[tuple[str, str]]) -> list[Section]:
    sections = []
    for number, (question, answer) in enumerate(pairs, start=1):
        question, answer = question.strip(), answer.strip()
        if not question or not answer:
            raise ParseError(path, f"FAQ entry {number} has an empty question or answer")
        sections.append(Section(path=(question,), blocks=(answer,), is_faq=True))
    return sections


def _from_elements(path: Path, elements: Sequence[Any], meta: dict[str, Any], default_id: str) -> Document:
    """Group partitioned elements under their heading path."""
    is_faq_document = str(meta.get("type", "")).lower() in FAQ_KINDS
    title = str(meta.get("title") or "").strip()
    heading_path: list[str] = []
    sections: list[Section] = []
    blocks: list[str] = []

    def close_section() -> None:
        if blocks:
            is_faq = is_faq_document or (bool(heading_path) and _is_question(heading_path[-1]))
            sections.append(Section(path=tuple(heading_path), blocks=tuple(blocks), is_faq=is_faq))
            blocks.clear()

    for element in elements:
        text = element.text.strip()
        if not text:
            continue
        depth = element.metadata.category_depth
        if element.category == "Title" and depth is not None:
            close_section()
            if depth == 0 and not title:
                title = text  # the first top-level heading names the document
                continue
            if depth == 0 and text == title:
                continue
            # h1 is the document title, so section depth counts from h2.
            level = max(depth - 1, 0)
            heading_path[:] = [*heading_path[:level], text]
        elif element.category == "Table":
            blocks.append(_table_text(element) or text)
        elif element.category == "ListItem":
            blocks.append(f"- {text}")
        else:
            blocks.append(text)
    close_section()
    meta.setdefault("title", title or _title_from_filename(path))
    return _document(default_id, meta, path, sections)


def _document(default_id: str, meta: dict[str, Any], path: Path, sections: list[Section]) -> Document:
    title = str(meta.get("title") or _title_from_filename(path)).strip()
    language = str(meta.get("locale") or meta.get("language") or "").strip().lower()
    if not language:
        sample = " ".join(block for section in sections for block in section.blocks)[:2000]
        language = detect_language(sample)
    kind = str(meta.get("type") or "page").strip().lower()
    extra = {
        key: ",".join(map(str, value)) if isinstance(value, list) else str(value)
        for key, value in meta.items()
        if key in {"audience", "product", "tags", "updated"}
    }
    return Document(
        document_id=str(meta.get("id") or default_id),
        title=title,
        source=path.as_posix(),
        kind=kind,
        language=language.split("-")[0],
        sections=sections,
        metadata=extra,
    )


def _table_text(element: Any) -> str:
    """A table as ' | '-separated rows, header first, so it reads and embeds as a table."""
    from lxml import html as lxml_html

    markup = element.metadata.text_as_html
    if not markup:
        return ""
    table = lxml_html.fromstring(markup)
    lines = []
    caption = table.findtext(".//caption")
    if caption and caption.strip():
        lines.append(caption.strip())
    for row in table.iter("tr"):
        cells = [" ".join(cell.text_content().split()) for cell in row if cell.tag in {"td", "th"}]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _is_question(heading: str) -> bool:
    return heading.rstrip().endswith(("?", "？"))


def _title_from_filename(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ").strip().capitalize()


class _Partitioners:
    def __init__(self, md: Any, html: Any, text: Any) -> None:
        self.md, self.html, self.text = md, html, text


@lru_cache(maxsize=1)
def _unstructured() -> _Partitioners:
    """Import unstructured with its network side effects switched off.

    unstructured sends telemetry unless DO_NOT_TRACK is set, and its text-type heuristics download
    the spaCy model en_core_web_sm on first use. We give those heuristics spaCy's blank multilingual
    pipeline with a rule-based sentencizer instead: sentence counts still work, nothing is fetched,
    and we take headings from the markup rather than from guessed titles anyway.
    """
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    import spacy
    import unstructured.nlp.tokenize as unstructured_tokenize

    def blank_pipeline() -> Any:
        nlp = spacy.blank("xx")
        nlp.add_pipe("sentencizer")
        return nlp

    unstructured_tokenize._load_spacy_model = blank_pipeline
    from unstructured.partition.html import partition_html
    from unstructured.partition.md import partition_md
    from unstructured.partition.text import partition_text

    return _Partitioners(md=partition_md, html=partition_html, text=partition_text)
