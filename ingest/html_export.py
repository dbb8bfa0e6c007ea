"""The article in an exported help-centre page, without the site around it.

Zendesk Guide, Confluence and Notion exports wrap each article in navigation, breadcrumbs, search
forms, sidebars, "Was this article helpful?" widgets, footers and scripts. trafilatura (a maintained
main-content extractor, offline, lxml-based) keeps the article's paragraphs, headings, lists and
tables and drops the rest; it was chosen over readability-lxml because it keeps tables and headings
as HTML and gives the article's title. It is used only for pages that have such chrome: a bare
article (our own HTML files) is kept whole, since extractors trim short pages.

One per-site rule, where general extraction falls short: Confluence titles its pages
"Space : Page", and the page is "Page".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import html as lxml_html

# Elements and class/id words that only site chrome has.
_CHROME_TAGS = frozenset({"nav", "header", "footer", "aside"})
_CHROME_NAMES = re.compile(r"breadcrumb|sidebar|footer|navbar|nav-|article-votes|helpful|search", re.IGNORECASE)


@dataclass(frozen=True)
class Article:
    html: str
    title: str


def extract_article(page: str) -> Article | None:
    """The article of an exported page with site chrome; None for a page without chrome, or when
    the extractor finds no article (the page is then read whole)."""
    try:
        tree = lxml_html.fromstring(page)
    except (ValueError, lxml_html.etree.ParserError):
        return None
    if not _has_chrome(tree):
        return None
    import trafilatura

    body = trafilatura.extract(
        page,
        output_format="html",
        include_tables=True,
        include_formatting=True,
        favor_recall=True,
        include_comments=False,
        include_images=False,
    )
    if not body or not body.strip():
        return None
    metadata = trafilatura.extract_metadata(page)
    title = (metadata.title if metadata and metadata.title else "") or ""
    if tree.get_element_by_id("title-text", None) is not None and " : " in title:
        title = title.split(" : ", 1)[1]  # Confluence: "Space : Page"
    return Article(body, " ".join(title.split()))


def _has_chrome(tree: lxml_html.HtmlElement) -> bool:
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag in _CHROME_TAGS or element.get("role") in {"navigation", "contentinfo", "banner"}:
            return True
        names = f"{element.get('class', '')} {element.get('id', '')}"
        if names.strip() and _CHROME_NAMES.search(names):
            return True
    return False
