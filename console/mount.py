"""Serve the console: ``/console`` is one HTML page, ``/console/static/…`` its script and styles.

The page holds no data and needs no key to load; the browser signs in with an API key kept in
session storage and calls the ``/v1`` API like any client (docs/console.md says why).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Only our own files: no inline script, nothing from another origin, no framing; no referrer leaves.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",  # revalidate: a new version of the script is picked up at once
}


class _Headers:
    """Adds ``SECURITY_HEADERS`` to every response under ``/console``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def mount_console(app: FastAPI) -> None:
    """Add ``/console`` (the page) and ``/console/static`` (its files) to ``app``."""
    page = STATIC_DIR / "index.html"

    @app.get("/console", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(page, headers=SECURITY_HEADERS)

    @app.get("/console/", include_in_schema=False)
    async def console_slash() -> RedirectResponse:
        return RedirectResponse("/console")

    app.mount("/console/static", _Headers(StaticFiles(directory=STATIC_DIR)), name="console-static")
