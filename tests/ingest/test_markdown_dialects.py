"""Single rules of ingest/markdown_dialects.py: what is rewritten, and what a code example keeps."""

from __future__ import annotations

import pytest
from lxml import html

from ingest.markdown_dialects import leftover_markup, render


def _text(markdown: str) -> str:
    return " ".join(html.fromstring(f"<div>{render(markdown).html}</div>").text_content().split())


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("See [[Folder/Page#Part|the page]] and [[Other page]].", "See the page and Other page."),
        ("Jump to [[#Limits]].", "Jump to Limits."),
        ("Tagged #billing and #тарифы, issue #42, C# code.", "Tagged billing and тарифы, issue #42, C# code."),
        ("Kept %%hidden%% text.", "Kept text."),
        ("Files up to 50 MB. ^limit-1", "Files up to 50 MB."),
        ("只有工作区**所有者（Owner）**可以删除。", "只有工作区所有者（Owner）可以删除。"),
        ("A **bold** word.", "A bold word."),
        ("![[diagram.png]] Caption.", "Caption."),
    ],
)
def test_inline_dialect_syntax_reads_as_text(markdown: str, text: str) -> None:
    assert _text(markdown) == text


def test_code_examples_keep_their_syntax() -> None:
    markdown = "```\n[[link]] %%c%% ^id {{date}} {{< note >}} {% include x %}\n# heading\n```\n"
    rendered = render(markdown)
    assert "[[link]] %%c%% ^id {{date}} {{&lt; note &gt;}} {% include x %}" in rendered.html
    assert rendered.heading == ""  # a heading in a code example never names the page


@pytest.mark.parametrize(
    ("markdown", "heading"),
    [
        ("> # Quoted\n\n# Real title\n", "Real title"),
        ("<h1>HTML example</h1>\n\n## Only h2\n", ""),
        ("!!! note\n    # In an admonition\n\n# Page *title*\n", "Page title"),
    ],
)
def test_the_first_real_heading(markdown: str, heading: str) -> None:
    assert render(markdown).heading == heading


def test_leftovers_are_counted_per_kind_outside_code() -> None:
    counts = leftover_markup(["a [[b and ![[c", "x %% y", "```\n[[code]]\n```", "> [!note] t", "::: tip"])
    assert counts == {"wikilink": 1, "embed": 1, "comment": 1, "callout": 1, "container": 1}
