"""Questions beyond ``max_concurrent_answers`` wait in line instead of running at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.embedding import HashingEmbedder
from tests.helpers import bearer, issue_key, small_kb_settings


@pytest.mark.slow
def test_no_more_questions_are_answered_at_once_than_allowed(tmp_path: Path) -> None:
    settings = small_kb_settings(tmp_path, max_concurrent_answers=1)
    app = create_app(settings, embedder=HashingEmbedder())
    running, most = 0, 0
    lock = threading.Lock()
    with TestClient(app, headers=bearer(issue_key(settings))) as client:
        desk = app.state.support
        ask = desk.ask

        def counting_ask(*args: Any, **kwargs: Any) -> Any:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)  # long enough for the others to arrive (the limit, not timing, is asserted)
            try:
                return ask(*args, **kwargs)
            finally:
                with lock:
                    running -= 1

        desk.ask = counting_ask
        with ThreadPoolExecutor(4) as pool:
            statuses = list(
                pool.map(lambda n: client.post("/v1/ask", json={"question": f"refund {n}?"}).status_code, range(8))
            )
    assert statuses == [200] * 8
    assert most == 1
