from __future__ import annotations

from pathlib import Path

import pytest

from ingest.parse import ParseError, document_id_for, parse_file

POLICY_MD = """---
title: Refund Policy
locale: en
type: policy
tags: [billing, refunds]
---
# Refund Policy

Intro text for everyone.

## Annual plans

Cancel within 60 days for a pro-rata refund.

- Refunds go to the original card.
- They take 5–10 business days.

### Exceptions

| Case | Refund |
|---|---|
| Suspended | None |

## Monthly plans

A 14-day money-back guarantee applies.
"""

FAQ_MD = """---
title: Billing FAQ
type: faq
---
# Billing FAQ

## When am I charged?
On the day your subscription started.

## Can I pay by invoice?
Yes, for annual plans with 20 or more seats.
"""


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_markdown_sections_keep_their_heading_path(tmp_path: Path) -> None:
    document = parse_file(_write(tmp_path, "en/policy-refunds.md", POLICY_MD), tmp_path)
    assert document.document_id == "en/policy-refunds"
    assert document.title == "Refund Policy"
    assert document.language == "en"
    assert document.metadata["tags"] == "billing,refunds"
    paths = [section.path for section in document.sections]
    assert paths == [(), ("Annual plans",), ("Annual plans", "Exceptions"), ("Monthly plans",)]
    annual = document.sections[1]
    assert annual.blocks == (
        "Cancel within 60 days for a pro-rata refund.",
        "- Refunds go to the original card.",
        "- They take 5–10 business days.",
    )
    assert document.sections[2].blocks == ("Case | Refund\nSuspended | None",)
    assert not any(section.is_faq for section in document.sections)


def test_markdown_faq_pairs_are_sections(tmp_path: Path) -> None:
    document = parse_file(_write(tmp_path, "faq.md", FAQ_MD), tmp_path)
    assert [(s.path, s.blocks, s.is_faq) for s in document.sections] == [
        (("When am I charged?",), ("On the day your subscription started.",), True),
        (("Can I pay by invoice?",), ("Yes, for annual plans with 20 or more seats.",), True),
    ]


def test_csv_and_json_faq_lists(tmp_path: Path) -> None:
    csv_doc = parse_file(
        _write(tmp_path, "faq-mobile.csv", 'question,answer\n"Is there an app?","Yes, iOS and Android."\n')
    )
    assert csv_doc.title == "Faq mobile"
    assert csv_doc.sections[0].path == ("Is there an app?",)
    json_doc = parse_file(
        _write(
            tmp_path,
            "faq-api.json",
            '{"title": "API FAQ", "locale": "en", "faqs": [{"question": "Rate limit?", "answer": "100/min."}]}',
        )
    )
    assert (json_doc.title, json_doc.language, json_doc.sections[0].blocks) == ("API FAQ", "en", ("100/min.",))


def test_html_drops_scripts_and_keeps_headings_and_tables(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Shortcuts</title><script>steal()</script></head><body><h1>Keyboard shortcuts</h1>"
        "<p>Use these keys to work faster.</p><h2>Tasks</h2><table><tr><th>Key</th><th>Action</th></tr>"
        "<tr><td>N</td><td>New task</td></tr></table><script>alert('x')</script></body></html>"
    )
    document = parse_file(_write(tmp_path, "guide.html", html))
    text = " ".join(block for section in document.sections for block in section.blocks)
    assert document.title == "Shortcuts"
    assert "steal" not in text and "alert" not in text
    assert ("Tasks",) in [section.path for section in document.sections]
    assert "Key | Action\nN | New task" in text


def test_plain_text_first_line_is_the_title(tmp_path: Path) -> None:
    document = parse_file(
        _write(tmp_path, "contact.txt", "Contact us\n\nEmail support@tasklane.example.\n\nWe reply in a day.")
    )
    assert document.title == "Contact us"
    assert document.sections[0].blocks == ("Email support@tasklane.example.", "We reply in a day.")


def test_language_is_detected_without_front_matter(tmp_path: Path) -> None:
    text = "# Возврат средств\n\nДеньги возвращаются на карту в течение десяти рабочих дней после запроса."
    assert parse_file(_write(tmp_path, "ru.md", text)).language == "ru"


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.md", "", "file is empty"),
        ("blank.md", "  \n\n", "file is empty"),
        ("bad.md", b"\xff\xfe\x00bad", "not valid UTF-8"),
        ("faq.csv", "q,a\nx,y\n", "missing column"),
        ("faq2.csv", 'question,answer\n"Why?",""\n', "empty question or answer"),
        ("bad.json", "{not json", "invalid JSON"),
        ("list.json", '{"faqs": "nope"}', "JSON FAQ must be"),
        ("image.png", b"\x89PNG....", "unsupported file type"),
        ("front.md", "---\ntitle: [unclosed\n---\nbody", "invalid YAML front matter"),
        ("heading-only.md", "# Just a title\n", "no text found"),
    ],
)
def test_bad_files_raise_a_named_error(tmp_path: Path, name: str, content: str | bytes, problem: str) -> None:
    path = _write(tmp_path, name, content)
    with pytest.raises(ParseError, match=problem) as caught:
        parse_file(path)
    assert caught.value.path == path


def test_document_id_is_the_relative_path_without_extension(tmp_path: Path) -> None:
    assert document_id_for(tmp_path / "ru" / "faq-billing.md", tmp_path) == "ru/faq-billing"
    assert document_id_for(Path("/elsewhere/notes.txt"), tmp_path) == "notes"
