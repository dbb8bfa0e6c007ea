"""Embeds (``![[Page]]``, ``![[Page#Section]]``, ``![[Page#^block-id]]``) replaced by the text they show.

Obsidian and similar vaults keep shared text once and embed it where it is needed (a region list,
a limits table). Indexing the embed as written loses that text, so before a page is parsed every
embed of a note is replaced with the embedded page, section (its heading down to the next heading
of the same or a higher level) or block (the paragraph or list item the ``^id`` marks), itself
expanded, up to ``MAX_DEPTH`` embeds deep. A page that embeds itself through others is a cycle:
that embed is dropped with a warning, as is one whose target or anchor does not exist
(``dangling_embed``). Images and other files render as nothing (ingest/markdown_dialects.py).

Targets resolve like Obsidian links: a path relative to the page or to the ingested folder, else
the file name anywhere in the folder (case-insensitive, Unicode NFC; of several, the one nearest
the page, so ``en/…`` pages embed English pages). ``Expansion.dependencies`` names each embedded
file with the hash of its bytes: the pipeline adds them to the page's file hash, so a page is
re-indexed when a page it embeds changes, appears or disappears.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

from ingest.markdown_dialects import BLOCK_ID, MEDIA_SUFFIXES, code_lines, inline_text, parser
from retrieval.records import content_hash

MAX_DEPTH = 5
MARKDOWN_SUFFIXES = (".md", ".markdown")
_EMBED = re.compile(r"!\[\[([^\[\]\n]+)\]\]")
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)*")


@dataclass(frozen=True)
class Expansion:
    text: str
    dependencies: tuple[str, ...] = ()  # "<path relative to the site>:<hash of its bytes>", or "missing:<target>"
    warnings: tuple[str, ...] = ()


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@dataclass
class Site:
    """The Markdown files under one folder, found by the names embeds use."""

    root: Path
    _by_path: dict[str, Path] = field(default_factory=dict, init=False)
    _by_name: dict[str, list[Path]] = field(default_factory=dict, init=False)
    _indexed: bool = field(default=False, init=False)

    def resolve(self, target: str, page: Path) -> Path | None:
        self._index()
        name = nfc(target.strip()).replace("\\", "/")
        for suffix in MARKDOWN_SUFFIXES:
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
        here = self._relative(page.parent)
        for candidate in (f"{here}/{name}" if here else name, name.lstrip("/")):
            found = self._by_path.get(_normal_path(candidate))
            if found is not None:
                return found
        matches = self._by_name.get(PurePosixPath(name).name.casefold(), [])
        if not matches:
            return None
        # Of several files with the name, the one sharing most folders with the page (its language's).
        page_parts = PurePosixPath(self._relative(page)).parts
        return max(
            matches, key=lambda path: (_shared(PurePosixPath(self._relative(path)).parts, page_parts), -len(str(path)))
        )

    def relative(self, path: Path) -> str:
        return self._relative(path)

    def _relative(self, path: Path) -> str:
        try:
            return nfc(path.relative_to(self.root).as_posix()).removeprefix(".").lstrip("/")
        except ValueError:
            return nfc(path.name)

    def _index(self) -> None:
        if self._indexed:
            return
        self._indexed = True
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in MARKDOWN_SUFFIXES and p.is_file())
        for path in files:
            relative = self._relative(path.with_suffix(""))
            self._by_path.setdefault(_normal_path(relative), path)
            self._by_name.setdefault(nfc(path.stem).casefold(), []).append(path)


def _normal_path(path: str) -> str:
    parts: list[str] = []
    for part in nfc(path).split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in {"", "."}:
            parts.append(part.casefold())
    return "/".join(parts)


def _shared(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x.casefold() != y.casefold():
            break
        count += 1
    return count


def expand(page: Path, text: str, site: Site) -> Expansion:
    """``text`` (the page at ``page``) with every note embed replaced by the text it embeds."""
    if "![[" not in text:
        return Expansion(text)
    dependencies: dict[str, str] = {}
    warnings: list[str] = []
    expanded = _expand(text, page, site, [page.resolve()], dependencies, warnings)
    return Expansion(expanded, tuple(sorted(dependencies.values())), tuple(warnings))


def _expand(
    text: str, page: Path, site: Site, stack: list[Path], dependencies: dict[str, str], warnings: list[str]
) -> str:
    if "![[" not in text:
        return text
    code = code_lines(text)
    headings = _headings(text)
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if (number < len(code) and code[number]) or "![[" not in line:
            continue
        # Headings of the embedded text go below the heading the embed sits under.
        level = max((depth for start, depth in headings if start < number), default=0)
        embed = partial(_embed, page=page, site=site, stack=stack, found=(dependencies, warnings), level=level)
        lines[number] = _EMBED.sub(embed, line)
    return "\n".join(lines)


def _embed(
    match: re.Match[str],
    page: Path,
    site: Site,
    stack: list[Path],
    found: tuple[dict[str, str], list[str]],
    level: int = 0,
) -> str:
    """The text ``match`` (an embed on its line) stands for; ``found`` collects dependencies and warnings."""
    dependencies, warnings = found
    line, written = match.string, match.group(0)
    target, _, anchor = match.group(1).split("|", 1)[0].partition("#")
    if PurePosixPath(target.strip()).suffix.lower() in MEDIA_SUFFIXES:
        return written  # an image or file: rendered as nothing later
    path = site.resolve(target, page) if target.strip() else page
    if path is None:
        dependencies[f"missing:{target}"] = f"missing:{nfc(target.strip())}"
        warnings.append(f"dangling_embed: {written} (no page {target.strip()!r})")
        return ""
    resolved = path.resolve()
    if resolved in stack[1:] or (resolved == stack[0] and not anchor):
        cycle = " → ".join(site.relative(step) for step in [*stack, resolved])
        warnings.append(f"embed_cycle: {written} ({cycle})")
        return ""
    if len(stack) > MAX_DEPTH:
        warnings.append(f"embed_too_deep: {written} (more than {MAX_DEPTH} embeds deep)")
        return ""
    try:
        raw = path.read_bytes()
        source = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        warnings.append(f"dangling_embed: {written} (cannot read {site.relative(path)}: {exc})")
        return ""
    dependencies[str(resolved)] = f"{site.relative(path)}:{content_hash(raw.hex())[:16]}"
    body = _FRONT_MATTER.sub("", source, count=1)
    if anchor:
        part = _block(body, anchor[1:].strip()) if anchor.startswith("^") else _section(body, anchor)
        if part is None:
            warnings.append(
                f"dangling_embed: {written} (no {'block' if anchor.startswith('^') else 'heading'} "
                f"{anchor!r} in {site.relative(path)})"
            )
            return ""
        body = part
    body = _demote(_expand(body.strip("\n"), path, site, [*stack, resolved], dependencies, warnings), level)
    before, after = line[: match.start()], line[match.end() :]
    prefix = _QUOTE_PREFIX.match(before)
    if prefix and prefix.group(0) == before and not after.strip():
        # The embed is its own line (maybe inside a quote or callout): its text becomes blocks there.
        return "\n".join(f"{before}{text}" if text else before.rstrip() for text in ["", *body.split("\n"), ""])
    return " ".join(body.split())  # inside a sentence: the text joins it


def _headings(text: str) -> list[tuple[int, int]]:
    """(line, level) of each top-level heading of ``text``."""
    return [
        (token.map[0], int(token.tag[1:]))
        for token in parser().parse(text)
        if token.type == "heading_open" and token.map and token.level == 0
    ]


_ATX = re.compile(r"^(#{1,6})(?=[ \t]|$)")


def _demote(text: str, levels: int) -> str:
    """``text`` with its ATX headings ``levels`` deeper, so that after an h2 an embedded h1 is an h3."""
    shift = levels - min((depth for _, depth in _headings(text)), default=levels + 1) + 1
    if shift <= 0 or not levels:
        return text
    lines = text.split("\n")
    for start, depth in _headings(text):
        lines[start] = _ATX.sub("#" * min(depth + shift, 6), lines[start], count=1)
    return "\n".join(lines)


def _section(text: str, anchor: str) -> str | None:
    """The lines of the section under the heading ``anchor`` (``A#B``: B under A), heading included."""
    wanted = nfc(anchor.split("#")[-1]).strip().casefold()
    tokens = parser().parse(text)
    lines = text.split("\n")
    for position, token in enumerate(tokens):
        if token.type != "heading_open" or token.map is None or token.level != 0:
            continue
        inline = tokens[position + 1]
        names = {" ".join(inline.content.split()).casefold(), inline_text(inline).casefold()}
        if wanted not in {nfc(name) for name in names}:
            continue
        level = int(token.tag[1:])
        end = next(
            (
                later.map[0]
                for later in tokens[position + 1 :]
                if later.type == "heading_open" and later.map and later.level == 0 and int(later.tag[1:]) <= level
            ),
            len(lines),
        )
        return "\n".join(lines[token.map[0] : end])
    return None


def _block(text: str, block_id: str) -> str | None:
    """The paragraph, list item, table or quote the ``^block_id`` marks (at its end, or on the line after it)."""
    code = code_lines(text)
    lines = text.split("\n")
    marked = next(
        (
            number
            for number, line in enumerate(lines)
            if not (number < len(code) and code[number])
            and any(found.group(1) == block_id for found in BLOCK_ID.finditer(line))
        ),
        None,
    )
    if marked is None:
        return None
    tokens = [token for token in parser().parse(text) if token.map and token.nesting >= 0]
    if lines[marked].strip() == f"^{block_id}":  # an id on its own line names the block above it
        above = [token.map for token in tokens if token.level == 0 and token.map and token.map[1] <= marked]
        return "\n".join(lines[above[-1][0] : above[-1][1]]) if above else None
    spans = [(token, token.map) for token in tokens if token.map and token.map[0] <= marked < token.map[1]]
    items = [span for token, span in spans if token.type == "list_item_open" and span]
    if items:  # the innermost list item holding the line
        return "\n".join(lines[items[-1][0] : items[-1][1]]).strip()
    blocks = [span for token, span in spans if token.level == 0 and span]
    return "\n".join(lines[blocks[0][0] : blocks[0][1]]) if blocks else lines[marked]
