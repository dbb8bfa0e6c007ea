"""Small files of every format, made in code so tests need no binary fixtures."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def make_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with a text layer: each page is a list of lines in Helvetica (empty list: no text)."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * number for number in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{page_id} 0 R" for page_id in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for page_id, lines in zip(page_ids, pages, strict=True):
        text = "".join(
            f"BT /F1 12 Tf 72 {720 - 16 * row} Td ({_escape(line)}) Tj ET\n" for row, line in enumerate(lines)
        ).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {page_id + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(text) + text + b"endstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def encrypt_pdf(data: bytes, password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(data)).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(path: Path) -> Path:
    """A Word document with a title, two heading levels, a list and a table."""
    import docx

    document = docx.Document()
    document.add_heading("Refund policy", 0)
    document.add_paragraph("We refund unused time on annual plans.")
    document.add_heading("Annual plans", 1)
    document.add_paragraph("Cancel within 60 days for a pro-rata refund.")
    document.add_paragraph("Refunds go to the original card.", style="List Bullet")
    document.add_heading("Exceptions", 2)
    table = document.add_table(rows=2, cols=2)
    for row, cells in enumerate([("Case", "Refund"), ("Suspended account", "None")]):
        for column, text in enumerate(cells):
            table.cell(row, column).text = text
    document.save(str(path))
    return path


def make_zip_bomb(path: Path, megabytes: int = 20) -> Path:
    """A 'DOCX' whose document.xml inflates from a few kilobytes to ``megabytes`` of zeros."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            block = b"\0" * 1_000_000
            for _ in range(megabytes):
                member.write(block)
    return path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
