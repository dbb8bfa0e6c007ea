"""A/B experiments of answer profiles through the API (hashing embedder, tests/api/small_kb.py).

Variant B's profile demands a confidence of 0.999, so B abstains where A answers: the split, the
recorded variants, the comparison's intervals, stop and promote are all visible in the answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from common.bootstrap import unpaired_bootstrap, verdict
from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder
from support.experiments import PROMOTED, RUNNING, STOPPED, Experiment
from tests.helpers import PROFILE, bearer, issue_key, small_kb_settings

QUESTION = "How long does a refund take?"
STRICT = PROFILE.replace('name = "hashing"\n', 'name = "strict"\nmin_confidence = 0.999\n')


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, Settings, dict[str, dict[str, str]]]]:
    settings = small_kb_settings(tmp_path)
    profiles = settings.data_dir / "profiles"
    profiles.mkdir()
    (profiles / "strict.toml").write_text(STRICT, encoding="utf-8")
    headers = {
        "admin": bearer(issue_key(settings, "admin", "default", "public")),
        "reader": bearer(issue_key(settings, "reader", "default", "public")),
        "editor": bearer(issue_key(settings, "editor", "default", "public")),
        "acme-admin": bearer(issue_key(settings, "admin", "acme", "public")),
        "acme-reader": bearer(issue_key(settings, "reader", "acme", "public")),
    }
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        yield client, settings, headers


def _ask(client: TestClient, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/ask", json={"question": QUESTION, **extra}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _start(client: TestClient, headers: dict[str, str], share: float = 0.5) -> dict[str, Any]:
    response = client.post(
        "/v1/experiments", json={"name": "strict", "profile": "strict", "share": share}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_conversations_are_split_by_id_and_every_answer_records_its_variant(setup: Any) -> None:
    client, _, headers = setup
    before = _ask(client, headers["reader"])
    assert before["status"] == "answered"  # before the experiment: A's profile
    experiment = _start(client, headers["admin"], share=1.0 - 1e-9)
    # A conversation started before the experiment stays out of it, even with everyone else on B.
    assert _ask(client, headers["reader"], conversation_id=before["conversation_id"])["status"] == "answered"
    client.post(f"/v1/experiments/{experiment['experiment_id']}/stop", headers=headers["admin"])
    experiment = _start(client, headers["admin"])
    statuses = {}
    for _ in range(60):
        first = _ask(client, headers["reader"])
        again = _ask(client, headers["reader"], conversation_id=first["conversation_id"])
        # A conversation keeps its variant (B's second abstention in a row escalates).
        assert (again["status"] == "answered") == (first["status"] == "answered")
        statuses[first["conversation_id"]] = first["status"]
    detail = client.get(f"/v1/experiments/{experiment['experiment_id']}", headers=headers["admin"]).json()
    variants = {item["variant"]: item for item in detail["variants"]}
    assert variants["A"]["answers"] + variants["B"]["answers"] == 120  # every answer, none from before
    assert variants["A"]["conversations"] + variants["B"]["conversations"] == 60
    # About half: binomial(60, 0.5) falls outside 15..45 with probability 1e-4 (and the ids are random).
    assert 15 <= variants["B"]["conversations"] <= 45
    assert variants["B"]["conversations"] == sum(status == "abstained" for status in statuses.values())
    assert (variants["A"]["answered_rate"], variants["B"]["answered_rate"]) == (1.0, 0.0)
    assert variants["B"]["profile"] == "strict"

    differences = {item["metric"]: item for item in detail["differences"]}
    answered = differences["answered_rate"]
    assert answered["difference"] == -1.0 and answered["verdict"] == "B worse"
    assert answered["low"] <= answered["difference"] <= answered["high"]
    assert differences["abstained_rate"]["verdict"] == "B higher"
    assert differences["escalated_rate"]["verdict"] == "B worse"  # repeated abstention hands over
    assert differences["helpful_rate"]["verdict"] == "n/a"  # no feedback yet
    assert detail["confidence"] == 0.95


def test_variant_depends_only_on_the_experiment_and_the_conversation() -> None:
    experiment = Experiment("e1", "default", "x", "strict", 0.3, RUNNING, "2026-01-01")
    shares = [experiment.variant_of(f"conversation-{n}") for n in range(2000)]
    assert shares == [experiment.variant_of(f"conversation-{n}") for n in range(2000)]
    assert 0.26 < shares.count("B") / 2000 < 0.34
    other = Experiment("e2", "default", "x", "strict", 0.3, RUNNING, "2026-01-01")
    assert shares != [other.variant_of(f"conversation-{n}") for n in range(2000)]  # a new experiment reshuffles
    assert Experiment("e1", "default", "x", "strict", 0.3, PROMOTED, "").variant_of("c") == "B"
    assert Experiment("e1", "default", "x", "strict", 0.3, STOPPED, "").variant_of("c") == "A"


def test_stop_and_promote(setup: Any) -> None:
    client, _, headers = setup
    admin = headers["admin"]
    first = _start(client, admin, share=1.0)
    assert _ask(client, headers["reader"])["status"] == "abstained"
    stopped = client.post(f"/v1/experiments/{first['experiment_id']}/stop", headers=admin).json()
    assert stopped["status"] == "stopped" and stopped["ended_at"]
    assert _ask(client, headers["reader"])["status"] == "answered"  # everyone on A again
    again = client.post(f"/v1/experiments/{first['experiment_id']}/promote", headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "experiment_over"

    second = _start(client, admin, share=0.01)
    promoted = client.post(f"/v1/experiments/{second['experiment_id']}/promote", headers=admin).json()
    assert promoted["status"] == "promoted"
    assert all(_ask(client, headers["reader"])["status"] == "abstained" for _ in range(5))  # all on B now
    listed = client.get("/v1/experiments", headers=admin).json()
    assert [item["status"] for item in listed["experiments"]] == ["promoted", "stopped"]
    assert listed["profiles"] == ["strict"]
    assert client.post(f"/v1/experiments/{second['experiment_id']}/stop", headers=admin).json()["status"] == "stopped"


def test_experiments_are_per_tenant_and_checked(setup: Any) -> None:
    client, _, headers = setup
    admin = headers["admin"]
    experiment = _start(client, admin, share=1.0)
    conflict = client.post("/v1/experiments", json={"name": "x", "profile": "strict"}, headers=admin)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "experiment_running"
    unknown = client.post("/v1/experiments", json={"name": "x", "profile": "nope"}, headers=headers["acme-admin"])
    assert unknown.status_code == 422 and "no profile 'nope'" in unknown.json()["error"]["message"]
    for body in ({"name": "x", "profile": "strict", "share": 0}, {"name": "x", "profile": "../etc/passwd"}):
        assert client.post("/v1/experiments", json=body, headers=headers["acme-admin"]).status_code == 422
    assert client.get("/v1/experiments", headers=headers["editor"]).status_code == 403
    path = f"/v1/experiments/{experiment['experiment_id']}"
    assert client.get(path, headers=headers["acme-admin"]).status_code == 404  # another tenant's: "no experiment"
    assert client.post(path + "/stop", headers=headers["acme-admin"]).status_code == 404
    # The other tenant's conversations are not in the experiment (and its KB is empty: no sources).
    assert _ask(client, headers["acme-reader"])["status"] == "abstained"
    detail = client.get(path, headers=admin).json()
    assert sum(item["answers"] for item in detail["variants"]) == 0
    assert {item["verdict"] for item in detail["differences"]} == {"too few conversations (under 10 in an arm)"}


def test_unpaired_bootstrap_interval() -> None:
    rng = np.random.default_rng(3)
    same_a, same_b = rng.integers(0, 2, 300).astype(float), rng.integers(0, 2, 300).astype(float)
    ones = np.ones(300)
    point, low, high = unpaired_bootstrap(same_a, ones, same_b, ones)
    assert low < 0 < high and low <= point <= high
    assert verdict(low, high, True) == "no clear difference"
    better = (rng.random(300) < 0.8).astype(float)
    _, low, high = unpaired_bootstrap(same_a, ones, better, ones)
    assert low > 0 and verdict(low, high, True) == "B better" and verdict(low, high, None) == "B higher"
    assert all(np.isnan(unpaired_bootstrap(np.array([]), np.array([]), ones, ones)))
