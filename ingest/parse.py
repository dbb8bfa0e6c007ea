"""Turn one source file into a ``Document`` of heading-scoped sections.

Markdown is rendered by markdown-it-py with every help-centre dialect turned into plain structure
(ingest/markdown_dialects.py; embeds are replaced before, ingest/transclusion.py), then read like
HTML. HTML, plain text and DOCX go through ``unstructured``'s partitioners; an exported help-centre
page is first cut down to its article (ingest/html_export.py). FAQ lists in CSV,
JSON and YAML are read with the standard library and PyYAML: ``unstructured`` would turn a CSV into
one table element and lose the question/answer pairing we need. PDFs are read with pypdf (see
``_parse_pdf`` for why not unstructured).

Every problem with a file raises ``ParseError`` with a stable ``code`` and a reason for the editor.
Files are checked before they are parsed: size, content sniffing (a binary renamed ``.md`` is
refused), zip-bomb limits for DOCX.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from ingest.html_export import extract_article
from ingest.markdown_dialects import leftover_markup
from ingest.markdown_dialects import render as render_markdown
from ingest.titles import choose_title, title_from_filename
from retrieval.language import detect_language
from retrieval.records import Document, Section

logger = logging.getLogger(__name__)

FORMATS = {
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".txt": "plain text",
    ".html": "HTML",
    ".htm": "HTML",
    ".csv": "CSV",
    ".json": "JSON",
    ".yaml": "YAML",
    ".yml": "YAML",
    ".pdf": "PDF",
    ".docx": "DOCX",
}
SUPPORTED_SUFFIXES = set(FORMATS)
FAQ_KINDS = {"faq"}
DEFAULT_MAX_FILE_BYTES = 20_000_000
# A DOCX is a zip: refuse archives that would inflate far beyond any real document.
MAX_UNZIPPED_BYTES = 200_000_000
MAX_ZIP_RATIO = 100  # for members over 1 MB; real DOCX XML compresses 5-20x
MAX_ZIP_MEMBERS = 10_000
# How whole blocks are marked in section text, so the chunker can recognise and split them (ingest/chunk.py).
TABLE_CAPTION = "Table:"
CODE_FENCE = "```"


class ParseError(Exception):
    """A file that cannot be ingested; ``code`` is stable, ``problem`` tells the editor why."""

    def __init__(self, path: Path, problem: str, code: str = "invalid_file") -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.code = code


def document_id_for(path: Path, root: Path | None) -> str:
    """The default document id: the path below the ingest root, without extension, with '/'."""
    relative = path.relative_to(root) if root and path.is_relative_to(root) else Path(path.name)
    # NFC: macOS file systems hand out decomposed names; ids must not depend on where a file was saved.
    return unicodedata.normalize("NFC", relative.with_suffix("").as_posix())


def read_source(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path``, refusing unsupported types and files over ``max_bytes``."""
    check_suffix(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ParseError(path, f"file is {_megabytes(size)}, over the {_megabytes(max_bytes)} limit", "too_large")
        return path.read_bytes()
    except OSError as exc:
        raise ParseError(path, f"cannot read file: {exc.strerror}", "unreadable") from exc


def check_suffix(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(path, f"unsupported file type {suffix or '(none)'}", "unsupported_type")


def parse_file(path: Path, root: Path | None = None, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Document:
    """Parse ``path`` into a Document. Raises ParseError with a reason for any bad file."""
    return parse_bytes(read_source(path, max_bytes), path, document_id_for(path, root))


def parse_bytes(raw: bytes, path: Path, default_id: str) -> Document:
    """Parse the content of a file named ``path`` (its suffix picks the format)."""
    check_suffix(path)
    suffix = path.suffix.lower()
    if not raw.strip():
        raise ParseError(path, "file is empty", "empty_file")
    if suffix == ".pdf":
        document = _parse_pdf(path, raw, default_id)
    elif suffix == ".docx":
        document = _parse_docx(path, raw, default_id)
    else:
        text = _decode_text(path, raw)
        if suffix in {".md", ".markdown"}:
            document = _parse_markdown(path, text, default_id)
        elif suffix in {".html", ".htm"}:
            document = _parse_html(path, text, default_id)
        elif suffix == ".txt":
            document = _parse_text(path, text, default_id)
        elif suffix == ".csv":
            document = _parse_csv(path, text, default_id)
        elif suffix == ".json":
            document = _parse_json(path, text, default_id)
        else:
            document = _parse_yaml(path, text, default_id)
    if not any(section.blocks for section in document.sections):
        raise ParseError(path, "no text found", "no_text")
    return _with_leftover_warnings(document)


def _with_leftover_warnings(document: Document) -> Document:
    """Note each kind of dialect markup that still reached the text (ingest/markdown_dialects.py)."""
    blocks = [block for section in document.sections for block in (*section.path, *section.blocks)]
    counts = leftover_markup([document.title, *blocks])
    notes = [f"leftover_markup_{kind}: {count} left in the text" for kind, count in sorted(counts.items())]
    return replace(document, notes=(*document.notes, *notes)) if notes else document


def _decode_text(path: Path, raw: bytes) -> str:
    """UTF-8 text, after making sure the bytes are not some binary format renamed."""
    import filetype

    expected = FORMATS[path.suffix.lower()]
    kind = filetype.guess(raw[:8192])
    if kind is not None:
        raise ParseError(path, f"content is {kind.mime} ({kind.extension}), not {expected}", "content_mismatch")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(path, f"not valid UTF-8 (byte {exc.start})", "invalid_utf8") from exc
    if "\x00" in text:
        raise ParseError(path, f"content is binary data (NUL bytes), not {expected}", "content_mismatch")
    return text


def _parse_markdown(path: Path, text: str, default_id: str) -> Document:
    import frontmatter
    import yaml

    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise ParseError(path, f"invalid YAML front matter: {exc}", "invalid_front_matter") from exc
    if not isinstance(post.metadata, dict):
        raise ParseError(path, "invalid YAML front matter: not a mapping", "invalid_front_matter")
    meta = {key: value for key, value in post.metadata.items() if value is not None}
    # markdown-it renders every dialect's markup to plain structure (ingest/markdown_dialects.py);
    # unstructured then reads that HTML exactly as its own partition_md would.
    rendered = render_markdown(post.content) if post.content.strip() else None
    elements = _unstructured().html(text=rendered.html) if rendered and rendered.html.strip() else []
    meta["title"] = choose_title(meta, rendered.heading if rendered else "", path)
    return _from_elements(path, elements, meta, default_id)


# The document type declaration, with its internal subset (``<!DOCTYPE html [<!ENTITY …>]>``): the
# HTML partitioner does not know the subset and would keep its closing ``]>`` as page text.
_DOCTYPE = re.compile(r"<!DOCTYPE\b[^\[>]*(?:\[.*?\]\s*)?>", re.IGNORECASE | re.DOTALL)


def _parse_html(path: Path, text: str, default_id: str) -> Document:
    from lxml import html as lxml_html

    text = _DOCTYPE.sub("", text, count=1)
    page_title, scripts = "", 0
    try:
        tree = lxml_html.fromstring(text)
        page_title = (tree.findtext(".//title") or "").strip()
        scripts = sum(1 for _ in tree.iter("script"))
    except (ValueError, lxml_html.etree.ParserError):
        pass
    # An exported help-centre page: only its article (ingest/html_export.py), never the site's chrome.
    article = extract_article(text)
    if article is not None:
        page_title = article.title or page_title
    # unstructured keeps only visible text: scripts, styles and event handlers never reach a chunk.
    elements = _unstructured().html(text=article.html if article else text)
    meta: dict[str, Any] = {"title": page_title} if page_title else {}
    document = _from_elements(path, elements, meta, default_id)
    if scripts:
        logger.info("%s: removed %d <script> elements", path, scripts)
        return _with_note(document, f"scripts_removed: {scripts} <script> element(s) dropped")
    return document


def _parse_text(path: Path, text: str, default_id: str) -> Document:
    # Plain text has no headings: the first line is the title, the paragraphs are the body.
    first_line, _, rest = text.strip().partition("\n")
    elements = _unstructured().text(text=rest) if rest.strip() else []
    blocks = tuple(element.text.strip() for element in elements if element.text.strip())
    meta = {"title": first_line.strip(), "type": "text"}
    return _document(default_id, meta, path, [Section(path=(), blocks=blocks)])


def _parse_pdf(path: Path, raw: bytes, default_id: str) -> Document:
    """Text-layer PDFs through pypdf.

    unstructured's PDF partitioner imports unstructured-inference (layout models on a CUDA build of
    torch) even for its text-only strategy, so we read the text layer with pypdf and let
    unstructured's plain-text partitioner find the paragraphs. Scanned pages would need OCR, which
    is not available offline.
    """
    from pypdf import PdfReader

    if b"%PDF-" not in raw[:1024]:
        raise ParseError(path, "content is not a PDF (no %PDF- header)", "content_mismatch")
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError(path, "PDF is encrypted (password-protected); save it without a password", "encrypted_pdf")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str(reader.metadata.title or "").strip() if reader.metadata else ""
    except ParseError:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on damaged files
        raise ParseError(path, f"corrupt PDF: {exc}", "corrupt_pdf") from exc
    if not "".join(pages).strip():
        raise ParseError(
            path, f"PDF has no text layer ({len(pages)} page(s), scanned?); OCR is not available", "no_text_layer"
        )
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    first_line, _, rest = text.partition("\n")
    if not title and len(first_line.strip()) <= 120 and rest.strip():
        title, text = first_line.strip(), rest  # like plain text: a short first line is the title
    elements = _unstructured().text(text=text)
    return _from_elements(path, elements, {"title": title} if title else {}, default_id)


def _parse_docx(path: Path, raw: bytes, default_id: str) -> Document:
    _check_zip(path, raw)
    try:
        elements = _unstructured().docx(file=io.BytesIO(raw))
    except Exception as exc:  # python-docx raises many kinds of errors on damaged files
        raise ParseError(path, f"corrupt DOCX: {exc}", "corrupt_docx") from exc
    # python-docx reports both the Title style and Heading 1 at depth 0, Heading 2 at 1, ...
    return _from_elements(path, elements, {}, default_id, heading_depth_shift=0)


def _check_zip(path: Path, raw: bytes) -> None:
    """Refuse archives that are not a Word document or would inflate like a zip bomb."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ParseError(path, f"corrupt DOCX: not a valid zip archive ({exc})", "corrupt_docx") from exc
    total = sum(member.file_size for member in members)
    inflated = [m for m in members if m.file_size > 1_000_000 and m.file_size > MAX_ZIP_RATIO * max(m.compress_size, 1)]
    if len(members) > MAX_ZIP_MEMBERS or total > MAX_UNZIPPED_BYTES or inflated:
        raise ParseError(
            path,
            f"DOCX looks like a zip bomb: {len(members)} members inflating to {_megabytes(total)} "
            f"from {_megabytes(len(raw))}",
            "zip_bomb",
        )
    if "word/document.xml" not in {member.filename for member in members}:
        raise ParseError(path, "corrupt DOCX: the archive has no word/document.xml", "corrupt_docx")


def _parse_csv(path: Path, text: str, default_id: str) -> Document:
    try:
        reader = csv.DictReader(io.StringIO(text))
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        missing = [name for name in ("question", "answer") if name not in columns]
        if missing:
            raise ParseError(path, f"CSV FAQ is missing column(s): {', '.join(missing)}", "missing_columns")
        pairs = [(row.get(columns["question"]) or "", row.get(columns["answer"]) or "") for row in reader]
    except csv.Error as exc:
        raise ParseError(path, f"invalid CSV: {exc}", "invalid_csv") from exc
    meta = {"title": _title_from_filename(path), "type": "faq"}
    return _document(default_id, meta, path, _faq_sections(path, pairs))


def _parse_json(path: Path, text: str, default_id: str) -> Document:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(path, f"invalid JSON at line {exc.lineno}: {exc.msg}", "invalid_json") from exc
    except RecursionError as exc:
        raise ParseError(path, "invalid JSON: nested too deeply for a FAQ list", "invalid_json") from exc
    return _faq_document(path, data, default_id)


def _parse_yaml(path: Path, text: str, default_id: str) -> Document:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParseError(path, f"invalid YAML: {exc}", "invalid_yaml") from exc
    except RecursionError as exc:
        raise ParseError(path, "invalid YAML: nested too deeply for a FAQ list", "invalid_yaml") from exc
    return _faq_document(path, data, default_id)


def _faq_document(path: Path, data: Any, default_id: str) -> Document:
    """A FAQ list: ``[{"question", "answer"}, ...]`` or ``{"title": ..., "faqs": [...]}``."""
    meta: dict[str, Any] = {}
    items = data
    if isinstance(data, dict):
        meta = {key: value for key, value in data.items() if key != "faqs"}
        items = data.get("faqs")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        expected = 'a list of {"question", "answer"} objects or {"faqs": [...]}'
        raise ParseError(path, f"{FORMATS[path.suffix.lower()]} FAQ must be {expected}", "invalid_faq")
    pairs = [(str(item.get("question") or ""), str(item.get("answer") or "")) for item in items]
    meta.setdefault("title", _title_from_filename(path))
    meta["type"] = "faq"
    return _document(default_id, meta, path, _faq_sections(path, pairs))


def _faq_sections(path: Path, pairs: Iterable[tuple[str, str]]) -> list[Section]:
    sections = []
    for number, (question, answer) in enumerate(pairs, start=1):
        question, answer = question.strip(), answer.strip()
        if not question or not answer:
            raise ParseError(path, f"FAQ entry {number} has an empty question or answer", "invalid_faq")
        sections.append(Section(path=(question,), blocks=(answer,), is_faq=True))
    return sections


def _from_elements(
    path: Path, elements: Sequence[Any], meta: dict[str, Any], default_id: str, heading_depth_shift: int = 1
) -> Document:
    """Group partitioned elements under their heading path.

    Tables become one block (caption, header row, rows), code one fenced block, each list item one
    block, so the chunker never cuts inside them (ingest/chunk.py). ``heading_depth_shift`` is how
    many heading levels above the first section level the document title sits (1 for h1 in HTML).
    """
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
            level = max(depth - heading_depth_shift, 0)
            heading_path[:] = [*heading_path[:level], text]
        elif element.category == "Table":
            # A pandoc-style "Table: ..." paragraph right before a Markdown table is its caption.
            has_caption = bool(blocks) and blocks[-1].startswith(TABLE_CAPTION)
            caption = blocks.pop()[len(TABLE_CAPTION) :].strip() if has_caption else ""
            blocks.append(_table_text(element, caption) or text)
        elif element.category == "ListItem":
            blocks.append(f"- {text}")
        elif element.category == "CodeSnippet":
            blocks.append(f"{CODE_FENCE}\n{element.text.strip(chr(10))}\n{CODE_FENCE}")
        else:
            blocks.append(text)
    close_section()
    meta.setdefault("title", title or _title_from_filename(path))
    return _document(default_id, meta, path, sections)


def _with_note(document: Document, note: str) -> Document:
    return replace(document, notes=(*document.notes, note))


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
    front_matter = {key: str(value) for key, value in meta.items() if isinstance(value, str | int | float)}
    return Document(
        document_id=unicodedata.normalize("NFC", str(meta.get("id") or default_id)),
        title=title,
        source=path.as_posix(),
        kind=kind,
        language=language.split("-")[0],
        sections=sections,
        metadata=extra,
        front_matter=front_matter,
    )


def _table_text(element: Any, caption: str = "") -> str:
    """A table as ' | '-separated rows, header first, so it reads and embeds as a table.

    The caption, when there is one, is the first line, prefixed ``Table:``.
    """
    from lxml import html as lxml_html

    markup = element.metadata.text_as_html
    if not markup:
        return ""
    table = lxml_html.fromstring(markup)
    lines = []
    caption = caption or " ".join((table.findtext(".//caption") or "").split())
    if caption:
        lines.append(f"{TABLE_CAPTION} {caption}")
    for row in table.iter("tr"):
        cells = [" ".join(cell.text_content().split()) for cell in row if cell.tag in {"td", "th"}]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _is_question(heading: str) -> bool:
    return heading.rstrip().endswith(("?", "？"))


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.1f} kB"


def _title_from_filename(path: Path) -> str:
    return title_from_filename(path)


class _Partitioners:
    def __init__(self, html: Any, text: Any, docx: Any) -> None:
        self.html, self.text, self.docx = html, text, docx


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
    from unstructured.partition.docx import partition_docx
    from unstructured.partition.html import partition_html
    from unstructured.partition.text import partition_text

    # languages=[""] switches off unstructured's per-file language detection (half its time on a
    # Markdown file); we detect the document language ourselves in _document.
    return _Partitioners(
        html=partial(partition_html, languages=[""]),
        text=partial(partition_text, languages=[""]),
        docx=partial(partition_docx, languages=[""]),
    )
