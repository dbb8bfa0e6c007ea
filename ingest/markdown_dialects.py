"""Markdown as help centres write it, rendered to HTML whose text is the page's text, not its markup.

Editors bring Obsidian vaults, MkDocs, Docusaurus, Hugo and Jekyll sites and GitHub wikis. Each adds
syntax that plain Markdown shows as noise (``[[Page|alias]]``, ``> [!info] Title``, ``!!! note``,
``:::tip``, ``{{< note >}}``, ``{% include %}``, ``^block-id``, ``%% comment %%``). We parse with
markdown-it-py and the mdit-py-plugins (GitHub alerts, task lists, footnotes, dollar math,
definition lists, MkDocs admonitions, ``:::`` containers): a real CommonMark parser knows what is
code and what is text, so nothing inside a code block is rewritten, and the plugins are kept up by
the Executable Books project. What no plugin covers is small and written here, each at the step of
the pipeline where the syntax lives:

- template tags (Hugo shortcodes, Liquid), which those generators expand *before* Markdown, are
  expanded here before parsing too, outside code blocks (``_expand_templates``): no maintained Python library parses
  Hugo shortcodes, and a Liquid engine would need the site's includes and data to render a page;
- Obsidian comments, block ids and MkDocs tabs are line syntax, removed outside code blocks
  (``_obsidian_lines``, ``_mkdocs_tabs``);
- wikilinks and embeds are an inline rule of the parser (``_wikilink_rule``), callouts a core rule
  that turns ``> [!type] Title`` blockquotes into titled blocks like GitHub's alerts, tags a core
  rule over text tokens.

Embeds (``![[Page#Section]]``) are replaced with the embedded text before this step
(ingest/transclusion.py); an embed left here (an image, a missing page) renders as nothing.
``leftover_markup`` counts the dialect tokens that still reach a document's text, per kind, for
the ingest warnings.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

# Files an embed may name that are not notes: they render as nothing (their text is not ours to index).
MEDIA_SUFFIXES = frozenset(
    [
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp", ".avif", ".mp3", ".wav", ".ogg", ".m4a",
    ".mp4", ".webm", ".mov", ".pdf", ".canvas",
]
)


@dataclass(frozen=True)
class Rendered:
    html: str
    heading: str  # the first top-level h1 of the page as text ("" when none): a title candidate (ingest/titles.py)


def render(markdown: str) -> Rendered:
    """The page's HTML, with every dialect's markup turned into plain structure and text."""
    text = _mkdocs_tabs(_expand_templates(markdown))
    if "%%" in text or "^" in text:  # only then is it worth finding the code lines
        text = _obsidian_lines(text)
    markdown_it = parser()
    env: dict[str, Any] = {}
    tokens = markdown_it.parse(text, env)
    page = markdown_it.renderer.render(tokens, markdown_it.options, env)
    return Rendered(_DISCLOSURE.sub(_open_disclosure, page), _first_heading(tokens))


# A collapsed <details> block (GitHub, Docusaurus) is text the reader opens: unstructured would drop
# it, so it becomes a plain block with its <summary> as the first paragraph.
_DISCLOSURE = re.compile(r"<(/?)(details|summary)\b[^>]*>", re.IGNORECASE)


def _open_disclosure(match: re.Match[str]) -> str:
    return f"<{match.group(1)}{'div' if match.group(2).lower() == 'details' else 'p'}>"


@lru_cache(maxsize=1)
def parser() -> MarkdownIt:
    from mdit_py_plugins.admon import admon_plugin
    from mdit_py_plugins.container import container_plugin
    from mdit_py_plugins.deflist import deflist_plugin
    from mdit_py_plugins.gfm import gfm_plugin

    markdown_it = MarkdownIt("commonmark", {"html": True})
    # GFM: tables, strikethrough, task lists, alerts (> [!NOTE]), autolinks, footnotes; and $math$.
    markdown_it.use(gfm_plugin, dollarmath=True)
    markdown_it.use(admon_plugin)  # MkDocs/Python-Markdown: !!! note "Title", ??? collapsible
    markdown_it.use(deflist_plugin)
    # Docusaurus/VuePress admonitions: :::note[Title] … ::: (any kind name).
    markdown_it.use(container_plugin, name="admonition", validate=_is_container, render=_render_container)
    markdown_it.inline.ruler.before("link", "wikilink", _wikilink_rule)
    markdown_it.core.ruler.after("block", "callout", _callouts)
    markdown_it.core.ruler.after("inline", "tags", _tags)
    markdown_it.core.ruler.after("text_join", "cjk_emphasis", _cjk_emphasis)
    markdown_it.add_render_rule("wikilink", _render_wikilink)
    # A footnote's marker would read like our citation markers ("[1]"); its text stays in the note list.
    markdown_it.add_render_rule("footnote_ref", lambda *_: "")
    markdown_it.add_render_rule("footnote_anchor", lambda *_: "")
    markdown_it.add_render_rule("footnote_block_open", lambda *_: '<section class="footnotes"><ol>\n')
    # A task's checkbox would hide the item from the list (unstructured): a ballot box keeps its state.
    markdown_it.add_render_rule("list_item_open", _render_list_item)
    return markdown_it


# --- template tags: Hugo shortcodes and Liquid (expanded before Markdown, as their generators do) ---

_SHORTCODE = re.compile(r"\{\{([<%])\s*(/?)\s*([\w./-]+)(.*?)\s*/?\s*[>%]\}\}", re.DOTALL)
_LIQUID_TAG = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}", re.DOTALL)
_LIQUID_OUTPUT = re.compile(r"\{\{-?(?![<%]).*?-?\}\}", re.DOTALL)
_LIQUID_DROPPED_BLOCKS = re.compile(
    r"\{%-?\s*(comment|capture\b[^%]*)\s*-?%\}.*?\{%-?\s*end(comment|capture)\s*-?%\}", re.DOTALL
)
_LIQUID_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.DOTALL)
_LIQUID_HIGHLIGHT = re.compile(r"\{%-?\s*highlight\s*(\w*)[^%]*%\}\n?(.*?)\{%-?\s*endhighlight\s*-?%\}", re.DOTALL)
_QUOTED = re.compile(r'(?:(\w+)\s*=\s*)?"([^"]*)"')
# Shortcodes whose inner text is a titled note or a tab: the title (an argument) becomes a line of text.
_NOTICE_SHORTCODES = frozenset(
    [
    "note", "tip", "info", "hint", "notice", "warning", "caution", "danger", "important", "alert", "callout",
    "admonition", "details", "expand", "collapse", "tab", "tabs", "spoiler",
]
)
_LINK_SHORTCODES = frozenset({"ref", "relref", "link", "post_url"})
_CAPTION_ARGUMENTS = ("caption", "title", "alt")


def _expand_templates(text: str) -> str:
    if "{{" not in text and "{%" not in text:
        return text
    raws: list[str] = []

    def keep_raw(match: re.Match[str]) -> str:
        raws.append(match.group(1))
        return f"\x00raw{len(raws) - 1}\x00"

    text = _LIQUID_RAW.sub(keep_raw, text)
    text = _LIQUID_DROPPED_BLOCKS.sub("", text)
    text = _LIQUID_HIGHLIGHT.sub(lambda m: f"```{m.group(1)}\n{m.group(2).rstrip()}\n```", text)
    # Not inside code blocks: there a tag is an example (Obsidian's {{date}} templates, a shortcode
    # shown in a how-to), and Hugo and Jekyll authors escape the ones they show anyway.
    text = _outside_code(text, _template_tags)
    return re.sub("\x00raw(\\d+)\x00", lambda m: raws[int(m.group(1))], text)


def _template_tags(text: str) -> str:
    text = _SHORTCODE.sub(_shortcode_text, text)
    text = _LIQUID_TAG.sub(_liquid_tag_text, text)
    return _LIQUID_OUTPUT.sub("", text)


def _shortcode_text(match: re.Match[str]) -> str:
    closing, name, arguments = match.group(2), match.group(3).lower(), match.group(4)
    if closing:
        return ""
    values: dict[str, str] = {
        key or str(position): value for position, (key, value) in enumerate(_QUOTED.findall(arguments))
    }
    if name in _LINK_SHORTCODES:
        return values.get("0", arguments.strip())
    if name in _NOTICE_SHORTCODES:
        title = values.get("title") or values.get("0")
        if not title:
            words = arguments.split()
            kind = words[0] if words and "=" not in words[0] else name
            title = kind if kind in _NOTICE_SHORTCODES and kind not in {"tab", "tabs", "details"} else ""
        return f"\n\n**{title.strip().capitalize() if title.islower() else title.strip()}**\n\n" if title else "\n\n"
    caption = next((values[key] for key in _CAPTION_ARGUMENTS if values.get(key)), "")
    return caption


def _liquid_tag_text(match: re.Match[str]) -> str:
    name, arguments = match.group(1).lower(), match.group(2).strip()
    if name in _LINK_SHORTCODES:
        return arguments.split()[0].strip("'\"") if arguments else ""
    return ""  # include, if/else/endif, for, assign…: the tag goes, text between paired tags stays


# --- line syntax outside code: MkDocs tabs, Obsidian comments and block ids ---

_TAB = re.compile(r'^(?P<indent>[ \t]*)===[+!]?\s+"(?P<title>[^"]*)"\s*$')


def _mkdocs_tabs(text: str) -> str:
    """``=== "Title"`` with its content indented below (pymdownx.tabbed): the title as a line of bold
    text and the content dedented, so Markdown reads it as text instead of an indented code block."""
    if "===" not in text:
        return text
    out: list[str] = []
    tab_indent: int | None = None  # the indent of the open tab's line; its content is 4 spaces deeper
    for line in text.split("\n"):
        match = _TAB.match(line)
        if match:
            tab_indent = len(match["indent"])
            out.extend([f"{match['indent']}**{match['title']}**", ""])
            continue
        if tab_indent is not None and line.strip():
            if line.startswith(" " * (tab_indent + 4)):
                line = line[:tab_indent] + line[tab_indent + 4 :]
            else:
                tab_indent = None
        out.append(line)
    return "\n".join(out)


_COMMENT = re.compile(r"%%.*?%%", re.DOTALL)
# An Obsidian block id: "^id" at the end of a line (after text, or alone on its line after a block).
BLOCK_ID = re.compile(r"(?:^|[ \t])\^([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*$", re.MULTILINE)


def _obsidian_lines(text: str) -> str:
    """Obsidian comments and block ids removed from the lines that are not code."""
    return _outside_code(text, lambda run: BLOCK_ID.sub("", _COMMENT.sub("", run)))


def _outside_code(text: str, transform: Callable[[str], str]) -> str:
    """``text`` with ``transform`` applied to each run of lines outside code blocks."""
    code = _code_lines(text)
    lines = text.split("\n")
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.extend(transform("\n".join(run)).split("\n"))
            run.clear()

    for number, line in enumerate(lines):
        if number < len(code) and code[number]:
            flush()
            out.append(line)
        else:
            run.append(line)
    flush()
    return "\n".join(out)


def code_lines(text: str) -> list[bool]:
    """For each line of ``text``, whether it is inside a code block (fenced or indented)."""
    return _code_lines(text)


def _code_lines(text: str) -> list[bool]:
    flags = [False] * (text.count("\n") + 1)
    for token in parser().parse(text):
        if token.type in {"fence", "code_block"} and token.map:
            for number in range(token.map[0], min(token.map[1], len(flags))):
                flags[number] = True
    return flags


# --- parser rules ---


def _wikilink_rule(state: StateInline, silent: bool) -> bool:
    """``[[target#heading|alias]]`` and ``![[embed]]``: one token holding the text a reader sees."""
    start = state.pos
    embed = state.src.startswith("![[", start)
    if not embed and not state.src.startswith("[[", start):
        return False
    opening = start + (3 if embed else 2)
    end = state.src.find("]]", opening)
    inner = state.src[opening:end] if end >= 0 else ""
    if not inner.strip() or "\n" in inner or "[" in inner:
        return False
    if not silent:
        token = state.push("wikilink", "", 0)
        token.meta = {"embed": embed, "target": inner}
        token.content = "" if embed else wikilink_text(inner)
    state.pos = end + 2
    return True


def wikilink_text(inner: str) -> str:
    """What Obsidian shows for ``[[inner]]``: the alias, else the page name (or the heading it points to)."""
    target, bar, alias = inner.partition("|")
    if bar and alias.strip():
        return alias.strip()
    page, _, anchor = target.partition("#")
    page = page.strip().rsplit("/", 1)[-1]
    if page.lower().endswith(".md"):
        page = page[:-3]
    return page or anchor.strip().lstrip("^").replace("#", " > ")


def _render_wikilink(_self: Any, tokens: Sequence[Token], index: int, *_: Any) -> str:
    return html.escape(tokens[index].content)


def _render_list_item(self: Any, tokens: Sequence[Token], index: int, options: Any, env: Any) -> str:
    token = tokens[index]
    opening = str(self.renderToken(tokens, index, options, env))
    if token.meta and "checked" in token.meta:
        return opening + ("☑ " if token.meta["checked"] else "☐ ")
    return opening


_CALLOUT = re.compile(r"^\[!([\w-]+)\][+-]?[ \t]*(.*)$")


def _callouts(state: StateCore) -> None:
    """Obsidian callouts (``> [!info] Title`` + body, any type, foldable) become titled blocks: a div
    with the title (or the type's name) as its first paragraph, then the body."""
    tokens = state.tokens
    index = 0
    while index < len(tokens) - 2:
        quote, paragraph, inline = tokens[index], tokens[index + 1], tokens[index + 2]
        first_line = inline.content.split("\n", 1)[0]
        match = _CALLOUT.match(first_line) if quote.type == "blockquote_open" and inline.type == "inline" else None
        if match is None or paragraph.type != "paragraph_open":
            index += 1
            continue
        kind, title = match.group(1), match.group(2).strip()
        close = _matching_close(tokens, index)
        quote.type, quote.tag = "callout_open", "div"
        tokens[close].type, tokens[close].tag = "callout_close", "div"
        body = inline.content.split("\n", 1)[1] if "\n" in inline.content else ""
        title_tokens = _paragraph(state, title or kind.replace("-", " ").capitalize(), quote.level + 1)
        if body.strip():
            inline.content, inline.children = body, []
            tokens[index + 1 : index + 1] = title_tokens
        else:  # the title line was the whole first paragraph
            tokens[index + 1 : index + 4] = title_tokens
        index += 1
    for token in tokens:
        if token.type == "inline" and token.children is None:
            token.children = []


def _paragraph(state: StateCore, text: str, level: int) -> list[Token]:
    opening, inline, closing = (
        Token("paragraph_open", "p", 1),
        Token("inline", "", 0),
        Token("paragraph_close", "p", -1),
    )
    inline.content, inline.children, inline.level = text, [], level + 1
    opening.level = closing.level = level
    return [opening, inline, closing]


def _matching_close(tokens: Sequence[Token], index: int) -> int:
    depth = 0
    for position in range(index, len(tokens)):
        depth += tokens[position].nesting
        if depth == 0:
            return position
    return len(tokens) - 1


_TAG = re.compile(r"(?<![\w&#/])#([^\W\d_][\w/-]*|\d+[^\W\d][\w/-]*)")


def _tags(state: StateCore) -> None:
    """Obsidian tags (``#billing``) read as words: the ``#`` goes, the tag stays."""
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "text" and "#" in child.content:
                child.content = _TAG.sub(r"\1", child.content)


# CommonMark's flanking rules miss emphasis next to CJK text and full-width punctuation
# ("**所有者（Owner）**可以"), leaving the asterisks in the text. A pair left like that, touching such a
# character, is emphasis the author meant: the delimiters go, the words stay.
_CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")
_STRONG = re.compile(r"(\*\*|__)(\S(?:.*?\S)?)\1")


def _cjk_emphasis(state: StateCore) -> None:
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "text" and ("**" in child.content or "__" in child.content):
                child.content = _STRONG.sub(_unwrap_cjk, child.content)


def _unwrap_cjk(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    edges = text[start - 1 : start] + match.group(2)[:1] + match.group(2)[-1:] + text[end : end + 1]
    return match.group(2) if _CJK.search(edges) else match.group(0)


def _is_container(params: str, *_: Any) -> bool:
    return bool(re.match(r"^\s*[A-Za-z][\w-]*", params))


_CONTAINER_TITLE = re.compile(r"^\s*([A-Za-z][\w-]*)\s*(?:\[(.*)\]|(.*))$")


def _render_container(self: Any, tokens: Sequence[Token], index: int, *_: Any) -> str:
    token = tokens[index]
    if token.nesting != 1:
        return "</div>\n"
    match = _CONTAINER_TITLE.match(token.info)
    kind, title = (match.group(1), (match.group(2) or match.group(3) or "").strip()) if match else ("note", "")
    return f"<div>\n<p>{html.escape(title or kind.capitalize())}</p>\n"


def _first_heading(tokens: Sequence[Token]) -> str:
    """The text of the page's first h1 at the top level (not in a quote, callout or admonition)."""
    for position, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1" and token.level == 0:
            return inline_text(tokens[position + 1])
    return ""


def inline_text(token: Token) -> str:
    parts = [
        child.content
        for child in token.children or ()
        if child.type in {"text", "code_inline", "wikilink", "math_inline"}
    ]
    return " ".join("".join(parts).split())


# --- leftovers ---

# Dialect tokens that must never reach a chunk; the kind names the ingest warning.
LEFTOVER_TOKENS: dict[str, re.Pattern[str]] = {
    "embed": re.compile(r"!\[\["),
    "wikilink": re.compile(r"(?<!!)\[\["),
    "block_id": re.compile(r"(?:^|\s)\^[A-Za-z0-9][A-Za-z0-9-]*(?=\s|$)"),
    "comment": re.compile(r"%%"),
    "shortcode": re.compile(r"\{\{[<%]"),
    "liquid": re.compile(r"\{%"),
    "container": re.compile(r"^\s*:::", re.MULTILINE),
    "admonition": re.compile(r"^\s*!!!", re.MULTILINE),
    "callout": re.compile(r"\[![\w-]+\]"),
}


def leftover_markup(blocks: Iterable[str]) -> Counter[str]:
    """How many dialect tokens of each kind are left in ``blocks`` (code blocks are not counted:
    syntax shown in a code example is meant to be there)."""
    counts: Counter[str] = Counter()
    for block in blocks:
        if block.startswith("```"):
            continue
        for kind, pattern in LEFTOVER_TOKENS.items():
            found = len(pattern.findall(block))
            if found:
                counts[kind] += found
    return counts
