"""Helpers of the console's browser tests: the running server, screenshots, signing in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.helpers import REPO

SCREENSHOTS = REPO / "var" / "screenshots"


@dataclass
class Console:
    url: str
    keys: dict[str, str] = field(default_factory=dict)

    def api(self, role: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60.0, **kwargs)


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, console: Console, role: str) -> None:
    page.goto(console.url + "/console")
    page.get_by_label("API key").fill(console.keys[role])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
