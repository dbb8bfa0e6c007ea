"""Every supported format, and every kind of bad input with its named error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.chunk import Chunker
from ingest.parse import ParseError, parse_file
from tests.ingest.samples import encrypt_pdf, make_docx, make_pdf, make_zip_bomb


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _blocks(path: Path) -> list[str]:
    return [block for section in parse_file(path).sections for block in section.blocks]


def test_pdf_text_layer_is_read(tmp_path: Path) -> None:
    pdf = make_pdf([["Refund policy", "Refunds go to the original card."], ["Annual plans get 60 days."]])
    document = parse_file(_write(tmp_path, "refunds.pdf", pdf))
    assert document.title == "Refund policy"
    text = " ".join(_blocks(Path(document.source)))
    assert "original card" in text and "60 days" in text


def test_docx_keeps_headings_lists_and_tables(tmp_path: Path) -> None:
    document = parse_file(make_docx(tmp_path / "policy.docx"))
    assert document.title == "Refund policy"
    assert [section.path for section in document.sections] == [(), ("Annual plans",), ("Annual plans", "Exceptions")]
    assert "- Refunds go to the original card." in document.sections[1].blocks
    assert document.sections[2].blocks == ("Case | Refund\nSuspended account | None",)


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_yaml_faq_list(tmp_path: Path, suffix: str) -> None:
    content = (
        "title: Mobile FAQ\nlocale: en\nfaqs:\n"
        "  - question: Is there an app?\n    answer: Yes, for iOS and Android.\n"
    )
    document = parse_file(_write(tmp_path, f"faq{suffix}", content))
    assert (document.title, document.kind, document.language) == ("Mobile FAQ", "faq", "en")
    assert [(s.path, s.blocks, s.is_faq) for s in document.sections] == [
        (("Is there an app?",), ("Yes, for iOS and Android.",), True)
    ]


def test_markdown_table_caption_and_code_block_are_whole_blocks(tmp_path: Path) -> None:
    markdown = (
        "# Limits\n\n## API\n\nTable: Requests per plan\n\n"
        "| Plan | Limit |\n|---|---|\n| Free | 10 |\n| Pro | 100 |\n\n"
        "```\ncurl https://api.example/v1\n  -H 'auth: x'\n```\n\n- first item\n- second item\n"
    )
    blocks = _blocks(_write(tmp_path, "limits.md", markdown))
    assert blocks == [
        "Table: Requests per plan\nPlan | Limit\nFree | 10\nPro | 100",
        "```\ncurl https://api.example/v1\n  -H 'auth: x'\n```",
        "- first item",
        "- second item",
    ]


def test_html_caption_is_kept_and_scripts_are_removed_with_a_note(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Plans</title><script>track()</script></head><body><p onclick=\"steal()\">Compare.</p>"
        "<table><caption>Plan prices</caption><tr><th>Plan</th><th>Price</th></tr><tr><td>Pro</td><td>10</td></tr>"
        "</table><script>alert(1)</script></body></html>"
    )
    document = parse_file(_write(tmp_path, "plans.html", html))
    text = "\n".join(block for section in document.sections for block in section.blocks)
    assert "Table: Plan prices\nPlan | Price\nPro | 10" in text
    assert "track" not in text and "alert" not in text and "steal" not in text
    assert document.notes == ("scripts_removed: 2 <script> element(s) dropped",)


@pytest.mark.parametrize(
    ("name", "content", "code", "problem"),
    [
        ("empty.md", b"", "empty_file", "file is empty"),
        ("invalid.md", b"Caf\xe9 au lait\n", "invalid_utf8", "not valid UTF-8"),
        ("binary.md", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "content_mismatch", "image/png"),
        ("elf.txt", b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "content_mismatch", "not plain text"),
        ("nul.md", b"# Title\n\nText\x00with NUL", "content_mismatch", "NUL bytes"),
        ("renamed.pdf", b"# Actually Markdown\n\nText.", "content_mismatch", "not a PDF"),
        ("corrupt.pdf", make_pdf([["Some text"]])[:180], "corrupt_pdf", "corrupt PDF"),
        ("encrypted.pdf", encrypt_pdf(make_pdf([["Secret"]])), "encrypted_pdf", "encrypted"),
        ("scanned.pdf", make_pdf([[], []]), "no_text_layer", "OCR is not available"),
        ("corrupt.docx", b"PK\x03\x04 this is not a zip", "corrupt_docx", "not a valid zip"),
        ("faq.csv", "q,a\nx,y\n", "missing_columns", "missing column"),
        ("faq2.csv", "question\nWhy?\n", "missing_columns", "answer"),
        ("faq.yaml", "faqs: [unclosed", "invalid_yaml", "invalid YAML"),
        ("faq.json", json.dumps({"faqs": [{"question": "Why?"}]}), "invalid_faq", "empty question or answer"),
        ("scripts-only.html", "<html><body><script>alert(1)</script></body></html>", "no_text", "no text found"),
    ],
)
def test_bad_input_gets_a_named_error(tmp_path: Path, name: str, content: str | bytes, code: str, problem: str) -> None:
    path = _write(tmp_path, name, content)
    with pytest.raises(ParseError, match=problem) as caught:
        parse_file(path)
    assert caught.value.code == code
    assert caught.value.path == path


def test_docx_zip_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="zip bomb") as caught:
        parse_file(make_zip_bomb(tmp_path / "bomb.docx"))
    assert caught.value.code == "zip_bomb"


def test_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = _write(tmp_path, "big.md", "# Big\n\n" + "word " * 1000)
    with pytest.raises(ParseError, match=r"over the 1.0 kB limit") as caught:
        parse_file(path, max_bytes=1000)
    assert caught.value.code == "too_large"


def count_words(text: str) -> int:
    return len(text.split())


def test_long_table_is_split_between_rows_repeating_caption_and_header() -> None:
    from retrieval.records import Document, Section

    rows = [f"Plan {n} | {n} euro per seat per month" for n in range(40)]
    table = "\n".join(["Table: Prices", "Plan | Price", *rows])
    document = Document("t", "Prices", "t.md", "page", "en", [Section(path=("All",), blocks=(table,))])
    chunks = Chunker(count_words, target_tokens=60, max_tokens=80, overlap_tokens=8).chunk(document)
    assert len(chunks) > 1
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert lines[:2] == ["Table: Prices", "Plan | Price"]
        assert all(line in rows for line in lines[2:])
    assert [line for chunk in chunks for line in chunk.text.split("\n")[2:]] == rows


def test_long_section_is_cut_between_list_items_and_code_is_refenced() -> None:
    from retrieval.records import Document, Section

    items = tuple(f"- Step {n}: open the settings page and click the button number {n}." for n in range(20))
    code = "```\n" + "\n".join(f"call_step({n}, retries=3)" for n in range(40)) + "\n```"
    document = Document("t", "Guide", "t.md", "page", "en", [Section(path=("Setup",), blocks=(*items, code))])
    chunks = Chunker(count_words, target_tokens=60, max_tokens=80, overlap_tokens=8).chunk(document)
    pieces = [line for chunk in chunks for line in chunk.text.split("\n")]
    assert [line for line in pieces if line.startswith("- ")] == list(items)  # every item whole, in order
    code_chunks = [chunk.text for chunk in chunks if "call_step" in chunk.text]
    assert len(code_chunks) > 1
    assert all(text.split("\n")[0] == "```" and text.endswith("```") for text in code_chunks)
