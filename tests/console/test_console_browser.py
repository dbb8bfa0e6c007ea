"""The console in a real Chromium against `answerdesk serve` on loopback (tests/console/conftest.py).

Each test is a flow a person goes through; every screen it shows is saved to var/screenshots/.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from tests.console.browser import Console, screenshot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]

GIFT_CARDS = """---
title: Dāvanu kartes
locale: lv
type: faq
---
## Vai varu nopirkt dāvanu karti?
Jā. Dāvanu kartes var iegādāties mūsu tīmekļa veikalā par 25, 50 vai 100 eiro.

## Cik ilgi dāvanu karte ir derīga?
Dāvanu karte ir derīga divus gadus no pirkuma dienas. Pēc tam atlikums vairs nav izmantojams.
"""
BROKEN_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n(truncated: no xref, no trailer)\n"
SCRIPT_BUDGET = 200_000  # bytes of script on the first page (issue #15)


def _drop_files(page: Any, target: str, files: dict[str, bytes]) -> None:
    """Drop ``files`` on ``target`` the way a browser does for a drag from the desktop."""
    payload = {name: list(data) for name, data in files.items()}
    page.evaluate(
        """([selector, files]) => {
            const transfer = new DataTransfer();
            for (const [name, bytes] of Object.entries(files)) {
                transfer.items.add(new File([new Uint8Array(bytes)], name));
            }
            const zone = document.querySelector(selector);
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [target, payload],
    )


def test_editor_uploads_sees_the_refusal_and_the_latvian_quote(page: Any, console: Console) -> None:
    sign_in(page, console, "editor")
    page.get_by_role("heading", name="Documents").wait_for()
    screenshot(page, "01-documents")

    page.get_by_role("link", name="Upload", exact=True).click()
    page.get_by_role("heading", name="Upload documents").wait_for()
    _drop_files(page, "#drop", {"davanu-kartes.md": GIFT_CARDS.encode("utf-8"), "broken.pdf": BROKEN_PDF})
    results = page.get_by_role("list", name="Upload results")
    page.locator("#main").get_by_text("Done: 1 ingested, 1 refused.").wait_for()
    added = results.get_by_role("listitem").filter(has_text="davanu-kartes.md")
    refused = results.get_by_role("listitem").filter(has_text="broken.pdf")
    assert "added as davanu-kartes (2 chunks)" in added.inner_text()
    assert "refused — the PDF is damaged and cannot be read" in refused.inner_text()
    screenshot(page, "02-upload")

    added.get_by_role("link", name="davanu-kartes").click()
    page.get_by_role("heading", name="Dāvanu kartes").wait_for()
    chunk = page.get_by_role("article", name="Chunk 2")
    assert "Cik ilgi dāvanu karte ir derīga?" in chunk.locator(".path").inner_text()  # its heading path
    assert "divus gadus" in chunk.locator(".chunk").inner_text()
    screenshot(page, "03-document")

    # The engine finds a new document a moment after its write returns (0.3-2 s measured on the API
    # alone; docs/console.md); wait for that here, not in the browser.
    _wait_until_retrievable(console, "Cik ilgi ir derīga dāvanu karte?", "davanu-kartes")
    page.get_by_role("link", name="Try a question").click()
    page.get_by_label("Question").fill("Cik ilgi ir derīga dāvanu karte?")
    page.get_by_role("button", name="Ask").click()
    quote = page.locator(".citation mark").first
    quote.wait_for()
    assert "derīga divus gadus" in quote.inner_text()
    citation = page.locator(".citation").first.inner_text()
    assert "Dāvanu kartes" in citation
    assert "answered" in page.locator("#preview").inner_text()
    assert page.get_by_role("table", name="Candidate passages").get_by_role("row").count() > 2  # runner-ups shown
    screenshot(page, "04-try-a-question")


def _wait_until_retrievable(console: Console, question: str, document_id: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        preview = console.api("editor", "POST", "/v1/preview", json={"question": question}).json()
        if any(candidate["document_id"] == document_id for candidate in preview["candidates"]):
            return
        time.sleep(0.3)
    raise AssertionError(f"{document_id} not retrieved {seconds:.0f} s after it was written")


def test_editor_replaces_and_deletes_with_confirmation(page: Any, console: Console) -> None:
    body = GIFT_CARDS.replace("title: Dāvanu kartes", "title: Pagaidu dokuments").replace("dāvanu", "pagaidu")
    reply = console.api("editor", "POST", "/v1/documents", json={"document_id": "lv/pagaidu", "content": body})
    assert reply.status_code == 201, reply.text
    sign_in(page, console, "editor")
    page.goto(console.url + "/console#/documents/lv%2Fpagaidu")
    page.get_by_role("heading", name="Pagaidu dokuments").wait_for()
    page.get_by_label("New version of this document").set_input_files(
        {"name": "pagaidu.md", "mimeType": "text/markdown", "buffer": body.replace("25, 50", "30, 60").encode()}
    )
    page.get_by_role("button", name="Replace", exact=True).click()
    dialog = page.get_by_role("dialog")
    assert "will be replaced" in dialog.inner_text()
    dialog.get_by_role("button", name="Replace").click()
    page.locator("#meta-version", has_text="2").wait_for()
    assert console.api("editor", "GET", "/v1/documents/lv/pagaidu").json()["version"] == 2

    page.get_by_role("button", name="Delete document").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()  # cancelling keeps it
    assert console.api("editor", "GET", "/v1/documents/lv/pagaidu").status_code == 200
    page.get_by_role("button", name="Delete document").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("heading", name="Documents").wait_for()
    assert console.api("editor", "GET", "/v1/documents/lv/pagaidu").status_code == 404


def test_agent_resolves_an_escalation_from_a_talk_to_a_person_question(page: Any, console: Console) -> None:
    asked = console.api(
        "reader", "POST", "/v1/ask", json={"question": "Can I talk to a person, please? It's about my invoice."}
    )
    assert asked.json()["status"] == "escalated", asked.text
    escalation_id = asked.json()["escalation_id"]

    sign_in(page, console, "agent")
    page.get_by_role("heading", name="Escalation inbox").wait_for()
    page.get_by_label("Reason").select_option("customer_requested_human")
    first = page.get_by_role("table", name="Escalations").get_by_role("row").nth(1)  # newest first
    first.get_by_text("talk to a person").wait_for()
    screenshot(page, "05-inbox")
    first.get_by_role("link").click()
    page.get_by_role("heading", name="Escalation").wait_for()
    assert escalation_id in page.url
    assert (
        "customer_requested_human"
        in page.get_by_role("list").filter(has_text="customer_requested_human").first.inner_text()
    )
    assert "talk to a person" in page.locator(".transcript").inner_text()
    page.get_by_label("Your reply to the customer").fill("Invoices can be downloaded under Settings → Billing.")
    page.get_by_label("Agent name").fill("Maija")
    screenshot(page, "06-escalation")
    page.get_by_role("button", name="Resolve").click()
    page.get_by_role("heading", name="Resolved", exact=True).wait_for()

    detail = console.api("agent", "GET", f"/v1/escalations/{escalation_id}").json()
    assert detail["status"] == "resolved"
    page.get_by_role("link", name="FAQ candidates").click()
    page.get_by_role("table", name="FAQ candidates").get_by_text("Settings → Billing").wait_for()
    screenshot(page, "07-faq-candidates")


def test_dashboard_counts_equal_the_api(page: Any, console: Console) -> None:
    for question in ("How long does it take to get my refund?", "Сколько идёт возврат денег?", "退款需要多长时间？"):
        assert console.api("reader", "POST", "/v1/ask", json={"question": question}).status_code == 200
    sign_in(page, console, "admin")
    page.get_by_role("link", name="Dashboard").click()
    page.locator("#total-questions").wait_for()
    stats = console.api("admin", "GET", "/v1/stats").json()
    assert stats["totals"]["total"] >= 3
    for status in ("questions", "answered", "abstained", "escalated"):
        key = "total" if status == "questions" else status
        assert page.locator(f"#total-{status}").inner_text() == str(stats["totals"][key])
    assert page.locator("#escalation-rate").inner_text() == f"{stats['escalation_rate'] * 100:.1f}%"
    screenshot(page, "08-dashboard")

    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV: Questions per day by status").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text("utf-8"))))
    assert (
        sum(int(row["answered"]) + int(row["abstained"]) + int(row["escalated"]) for row in rows)
        == stats["totals"]["total"]
    )
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV: Questions per language").click()
    languages = {row["label"] for row in csv.DictReader(io.StringIO(download.value.path().read_text("utf-8")))}
    assert {"en", "ru", "zh"} <= languages

    page.get_by_role("link", name="Gaps").click()
    page.get_by_text("unanswered question(s)").wait_for()
    screenshot(page, "09-gaps")
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("heading", name="API keys").wait_for()
    screenshot(page, "10-keys")


def test_a_reader_key_opens_no_console_screen(page: Any, console: Console) -> None:
    sign_in(page, console, "reader")
    page.get_by_role("heading", name="No console screens for this key").wait_for()
    assert page.locator("#nav a").count() == 0
    screenshot(page, "11-reader-refused")
    for screen in ("documents", "upload", "try", "inbox", "dashboard", "keys"):
        page.goto(f"{console.url}/console#/{screen}")
        page.get_by_role("heading", name="Not allowed").wait_for()
    # The API refuses the data behind those screens too.
    assert console.api("reader", "GET", "/v1/documents").status_code == 403
    assert console.api("reader", "GET", "/v1/stats").status_code == 403


def test_an_unknown_key_is_refused_at_sign_in(page: Any, console: Console) -> None:
    page.goto(console.url + "/console")
    screenshot(page, "00-sign-in")
    page.get_by_label("API key").fill("adk_0000000000000000_not-a-real-secret")
    page.keyboard.press("Enter")  # the form submits from the keyboard
    page.get_by_text("This key is unknown or revoked.").wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def test_another_tenants_documents_never_appear(page: Any, console: Console) -> None:
    sign_in(page, console, "editor")
    page.get_by_role("heading", name="Documents").wait_for()
    listed = page.get_by_role("table", name="Documents").inner_text()
    assert "Refunds FAQ" in listed
    assert "Acme warehouse badges" not in listed
    page.goto(console.url + "/console#/documents/badges")
    page.get_by_text("no document 'badges'").wait_for()
    page.goto(console.url + "/console#/try")
    page.get_by_label("Question").fill("How do I get a warehouse badge?")
    page.get_by_role("button", name="Ask").click()
    page.get_by_role("table", name="Candidate passages").wait_for()
    assert "Acme" not in page.locator("#preview").inner_text()

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, console, "acme-editor")
    listed = page.get_by_role("table", name="Documents").inner_text()
    assert "Acme warehouse badges" in listed
    assert "Refunds FAQ" not in listed


def test_keyboard_zoom_and_page_weight(page: Any, console: Console) -> None:
    scripts: dict[str, int] = {}
    page.on("response", lambda response: _count_script(response, scripts))
    page.goto(console.url + "/console")
    page.get_by_label("API key").wait_for()
    assert page.evaluate("document.activeElement.name") == "key"  # the key field has the focus
    page.keyboard.type(console.keys["admin"])
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Documents").wait_for()
    total = sum(scripts.values())
    report = ", ".join(f"{name} {size}" for name, size in sorted(scripts.items()))
    print(f"\nfirst page script: {total} bytes ({report})")
    assert 0 < total < SCRIPT_BUDGET, report
    assert page.evaluate("document.activeElement.tagName") == "H1"  # focus moves to the new screen's heading

    # 200% zoom of a 1280-pixel window leaves 640 CSS pixels; nothing may need sideways scrolling.
    page.set_viewport_size({"width": 640, "height": 900})
    for screen in ("documents", "inbox", "keys", "dashboard"):
        page.goto(f"{console.url}/console#/{screen}")
        page.locator("h1").first.wait_for()
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{screen} scrolls sideways by {overflow}px at 200% zoom"
    screenshot(page, "12-dashboard-200pct")


def _count_script(response: Any, sizes: dict[str, int]) -> None:
    if response.request.resource_type == "script":
        sizes[response.url.rsplit("/", 1)[-1]] = len(response.body())


def test_a_lead_runs_an_experiment(page: Any, console: Console) -> None:
    sign_in(page, console, "admin")
    page.get_by_role("link", name="Experiments").click()
    page.get_by_label("Name").fill("fixed threshold")
    page.get_by_label("Profile for B").select_option("threshold")
    page.get_by_label("Share of new conversations for B (%)").fill("50")
    page.get_by_role("button", name="Start experiment").click()
    page.get_by_role("heading", name="Experiment: fixed threshold").wait_for()
    experiment_id = page.url.rsplit("/", 1)[-1]
    try:
        for _ in range(6):  # new conversations, split between A and B
            assert console.api("reader", "POST", "/v1/ask", json={"question": "Can I pay by card?"}).status_code == 200
        page.reload()
        variants = page.get_by_role("table", name="Variants")
        variants.wait_for()
        detail = console.api("admin", "GET", f"/v1/experiments/{experiment_id}").json()
        assert sum(item["answers"] for item in detail["variants"]) == 6
        for item in detail["variants"]:
            row = variants.get_by_role("row").filter(has_text=item["profile"])
            assert row.get_by_role("cell").nth(3).inner_text() == str(item["answers"])
        comparison = page.get_by_role("table", name="Comparison").inner_text()
        assert "Answered" in comparison and "Latency p50 (ms)" in comparison
        screenshot(page, "13-experiment")

        page.get_by_role("button", name="Promote B").click()
        page.get_by_role("dialog").get_by_role("button", name="Promote").click()
        page.locator("h1 .badge", has_text="promoted").wait_for()
    finally:
        console.api("admin", "POST", f"/v1/experiments/{experiment_id}/stop")  # the other tests expect profile A
