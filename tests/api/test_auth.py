"""API keys, roles and abuse limits: 401/403/413/422/429 as JSON with stable codes, keys stored hashed,
the ``answerdesk keys`` commands."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from access.keys import KeySpecError, build_key_store, split_token
from api.app import create_app
from api.limits import RateLimiter, TokenBucket
from retrieval.config import Settings, get_settings
from retrieval.embedding import HashingEmbedder
from tests.helpers import bearer, issue_key, unlimited

pytestmark = pytest.mark.sql  # each test also runs on PostgreSQL (tests/conftest.py)

ROUTES_OF_ROLE = {
    # (method, path, json body): the role that may call it; a role not listed gets 403.
    ("POST", "/v1/ask", '{"question": "How long does a refund take?"}'): {"reader"},
    ("POST", "/v1/answers/x/feedback", '{"helpful": true}'): {"reader"},
    ("GET", "/v1/documents", None): {"editor"},
    ("GET", "/v1/documents/en/x", None): {"editor"},
    ("DELETE", "/v1/documents/en/x", None): {"editor"},
    ("GET", "/v1/jobs/x", None): {"editor"},
    ("GET", "/v1/escalations", None): {"agent"},
    ("GET", "/v1/escalations/x", None): {"agent"},
    ("POST", "/v1/escalations/x/resolve", '{"answer": "Done."}'): {"agent"},
    ("GET", "/v1/conversations/x", None): {"agent"},
    ("GET", "/v1/faq-candidates", None): {"agent"},
    ("GET", "/v1/keys", None): set(),
    ("POST", "/v1/keys", '{"role": "reader"}'): set(),
    ("DELETE", "/v1/keys/x", None): set(),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return unlimited(Settings(data_dir=tmp_path / "data"))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as test_client:
        yield test_client


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _concrete(path: str) -> str:
    """A route path with every parameter filled in."""
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_v1_route_needs_a_key_and_health_stays_open(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    v1 = [(method.upper(), path) for path, methods in paths.items() if path.startswith("/v1") for method in methods]
    assert len(v1) >= 12
    for method, path in v1:
        missing = client.request(method, _concrete(path))
        assert _error(missing, 401)["code"] == "missing_api_key", (method, path)
        assert missing.headers["www-authenticate"] == "Bearer"
        unknown = client.request(method, _concrete(path), headers=bearer("adk_0123456789abcdef_not-a-real-secret"))
        assert _error(unknown, 401)["code"] == "invalid_api_key", (method, path)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("token", ["", "Bearer", "adk_", "adk_short_x", "not-our-format", "adk_0123456789abcdef_"])
def test_malformed_keys_are_401_not_500(client: TestClient, token: str) -> None:
    response = client.get("/v1/escalations", headers={"X-API-Key": token} if token else {})
    assert _error(response, 401)["code"] in {"missing_api_key", "invalid_api_key"}


def test_bearer_and_x_api_key_both_authenticate(client: TestClient, settings: Settings) -> None:
    token = issue_key(settings, role="agent")
    assert client.get("/v1/escalations", headers=bearer(token)).status_code == 200
    assert client.get("/v1/escalations", headers={"X-API-Key": token}).status_code == 200
    assert client.get("/v1/escalations", headers={"authorization": f"bearer {token}"}).status_code == 200


@pytest.mark.parametrize("role", ["reader", "editor", "agent", "admin"])
def test_each_role_reaches_its_routes_and_gets_403_elsewhere(client: TestClient, settings: Settings, role: str) -> None:
    headers = {**bearer(issue_key(settings, role=role)), "content-type": "application/json"}
    for (method, path, body), allowed in ROUTES_OF_ROLE.items():
        response = client.request(method, path, content=body, headers=headers)
        if role == "admin" or role in allowed:
            assert response.status_code not in {401, 403}, (role, method, path, response.text)
        else:
            error = _error(response, 403)
            assert error["code"] == "forbidden_role" and role in error["message"], (role, method, path)


def test_a_revoked_key_stops_working_at_once(client: TestClient, settings: Settings) -> None:
    token = issue_key(settings, role="agent")
    assert client.get("/v1/escalations", headers=bearer(token)).status_code == 200
    store = build_key_store(settings)
    try:
        key_id = split_token(token)[0]  # type: ignore[index]
        store.revoke(key_id)
        assert store.revoke(key_id).revoked_at  # revoking twice is harmless
    finally:
        store.close()
    assert _error(client.get("/v1/escalations", headers=bearer(token)), 401)["code"] == "invalid_api_key"


def test_a_wrong_secret_for_a_real_key_id_is_401(client: TestClient, settings: Settings) -> None:
    token = issue_key(settings)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert _error(client.get("/v1/escalations", headers=bearer(forged)), 401)["code"] == "invalid_api_key"


@pytest.mark.sqlite_only  # it reads the SQLite file itself
def test_keys_are_stored_only_as_hashes(client: TestClient, settings: Settings) -> None:
    token = issue_key(settings)
    key_id, secret = split_token(token)  # type: ignore[misc]
    assert client.get("/v1/escalations", headers=bearer(token)).status_code == 200
    stored = b"".join(path.read_bytes() for path in settings.data_dir.glob("answerdesk.db*"))
    assert key_id.encode() in stored  # the row is there (checks we read the right files)
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    assert secret.encode() not in stored and token.encode() not in stored


@pytest.mark.parametrize(
    ("role", "tenant", "audience", "problem"),
    [
        ("root", "default", "public", "invalid role"),
        ("reader", "Acme Corp", "public", "invalid tenant"),
        ("reader", "", "public", "invalid tenant"),
        ("reader", "default", "everyone", "invalid audience"),
    ],
)
def test_invalid_key_specs_are_refused(settings: Settings, role: str, tenant: str, audience: str, problem: str) -> None:
    store = build_key_store(settings)
    try:
        with pytest.raises(KeySpecError, match=problem):
            store.create(role, tenant, audience)
    finally:
        store.close()


def test_rate_limit_is_per_key_with_retry_after(tmp_path: Path) -> None:
    # A bucket of 2 that refills once in ~17 minutes: the third request in a row is refused.
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_second=0.001, rate_limit_burst=2)
    with TestClient(create_app(settings, embedder=HashingEmbedder())) as client:
        first, second = issue_key(settings, role="agent"), issue_key(settings, role="agent")
        for _ in range(2):
            assert client.get("/v1/escalations", headers=bearer(first)).status_code == 200
        limited = client.get("/v1/escalations", headers=bearer(first))
        assert _error(limited, 429)["code"] == "rate_limited"
        assert 900 <= int(limited.headers["retry-after"]) <= 1000
        assert client.get("/v1/escalations", headers=bearer(second)).status_code == 200  # another key is not limited
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("tokens", "elapsed", "allowed", "wait"),
    [
        (2.0, 0.0, True, 0.0),  # a full bucket
        (0.0, 0.0, False, 0.5),  # empty: one token comes in 1 / rate seconds
        (0.0, 0.25, False, 0.25),  # half refilled
        (0.0, 0.5, True, 0.0),  # refilled
        (0.0, 100.0, True, 0.0),  # never more than the burst...
    ],
)
def test_token_bucket(tokens: float, elapsed: float, allowed: bool, wait: float) -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0, tokens=tokens, updated=10.0)
    result = bucket.take(10.0 + elapsed)
    assert (result == 0.0) is allowed
    assert result == pytest.approx(wait)
    assert bucket.tokens <= 2.0


def test_rate_limiter_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=3, clock=lambda: now[0])
    assert [limiter.retry_after("k") for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
    now[0] = 1.0
    assert limiter.retry_after("k") == 0.0 and limiter.retry_after("k") == 1.0
    now[0] = 100.0  # ...the burst caps what a quiet key saves up
    assert [limiter.retry_after("k") > 0 for _ in range(4)] == [False, False, False, True]
    assert RateLimiter(rate=0.0, burst=1).retry_after("k") == 0.0  # 0 = off


@pytest.mark.slow
def test_json_bodies_over_the_limit_are_413(tmp_path: Path) -> None:
    settings = unlimited(Settings(data_dir=tmp_path / "data", max_json_bytes=2048, max_request_bytes=100_000))
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        under = client.post("/v1/ask", json={"question": "x", "customer": {"note": "y" * 900, "more": "z" * 900}})
        assert under.status_code == 200, under.text
        big = {"question": "x", "customer": {f"k{i}": "y" * 900 for i in range(3)}}
        assert _error(client.post("/v1/ask", json=big), 413)["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"question": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        streamed = client.post("/v1/ask", content=chunks(), headers={"content-type": "application/json"})
        assert _error(streamed, 413)["code"] == "payload_too_large"
        # Uploads have their own, larger limit.
        document = b"# Refunds\n\n" + b"Refunds take five to ten business days. " * 200
        upload = client.post("/v1/documents", files=[("file", ("en/refunds.md", document))])
        assert upload.status_code == 201, upload.text


def test_question_length_follows_the_setting(tmp_path: Path) -> None:
    settings = unlimited(Settings(data_dir=tmp_path / "data", max_question_chars=50))
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(issue_key(settings))) as client:
        assert client.post("/v1/ask", json={"question": "x" * 50}).status_code == 200
        error = _error(client.post("/v1/ask", json={"question": "x" * 51}), 422)
        assert error["code"] == "invalid_request"
        assert error["details"] == [{"field": "question", "problem": "String should have at most 50 characters"}]


def test_openapi_declares_the_security_schemes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["APIKeyHeader"] == {**schemes["APIKeyHeader"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            secured = {name for requirement in operation.get("security", []) for name in requirement}
            assert secured == ({"HTTPBearer", "APIKeyHeader"} if path.startswith("/v1") else set()), path
            if path.startswith("/v1"):
                assert {"401", "403"} <= set(operation["responses"]), path


def test_admins_manage_their_own_tenants_keys_over_the_api(client: TestClient, settings: Settings) -> None:
    acme_admin = bearer(issue_key(settings, tenant="acme"))
    other_tenant_key = split_token(issue_key(settings, role="reader"))[0]  # type: ignore[index]
    request = {"role": "agent", "name": "desk", "audience": "internal"}
    created = client.post("/v1/keys", json=request, headers=acme_admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["role"], body["tenant"], body["audience"]) == ("agent", "acme", "internal")
    assert client.get("/v1/escalations", headers=bearer(body["key"])).status_code == 200

    listed = client.get("/v1/keys", headers=acme_admin)
    assert {key["tenant"] for key in listed.json()["keys"]} == {"acme"} and body["key"] not in listed.text
    assert other_tenant_key not in listed.text
    theirs = client.delete(f"/v1/keys/{other_tenant_key}", headers=acme_admin)
    unknown = client.delete("/v1/keys/0123456789abcdef", headers=acme_admin)
    assert _error(theirs, 404) == {**_error(unknown, 404), "message": f"no key {other_tenant_key!r}"}

    revoked = client.delete(f"/v1/keys/{body['key_id']}", headers=acme_admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert _error(client.get("/v1/escalations", headers=bearer(body["key"])), 401)["code"] == "invalid_api_key"
    bad = client.post("/v1/keys", json={"role": "owner"}, headers=acme_admin)
    assert _error(bad, 422)["details"][0]["field"] == "role"


# ---- the command line ----------------------------------------------------------------------------


Cli = Callable[..., Result]


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """Runs ``answerdesk`` with the test's data dir."""
    from answerdesk.cli import app

    monkeypatch.setenv("ANSWERDESK_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_keys_create_list_revoke(cli: Cli, client: TestClient) -> None:
    created = cli("keys", "create", "--role", "reader", "--tenant", "acme", "--name", "widget")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    key_id, secret = split_token(token)  # type: ignore[misc]
    assert client.get("/v1/conversations/x", headers=bearer(token)).status_code == 403  # a reader's key works

    listed = cli("keys", "list")
    assert listed.exit_code == 0 and key_id in listed.stdout and "acme" in listed.stdout
    assert token not in listed.stdout and secret not in listed.stdout

    revoked = cli("keys", "revoke", key_id)
    assert revoked.exit_code == 0, revoked.output
    assert _error(client.get("/v1/conversations/x", headers=bearer(token)), 401)["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["keys", "create", "--role", "boss"], "invalid role 'boss'"),
        (["keys", "create", "--role", "reader", "--tenant", "Bad Tenant"], "invalid tenant"),
        (["keys", "create", "--role", "reader", "--audience", "secret"], "invalid audience"),
        (["keys", "revoke", "0123456789abcdef"], "no key '0123456789abcdef'"),
    ],
)
def test_keys_cli_refuses_bad_input_with_exit_code_2(cli: Cli, args: list[str], problem: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert problem in result.stderr and "Traceback" not in result.output


def test_keys_bootstrap_writes_a_private_admin_key_once(cli: Cli, settings: Settings, client: TestClient) -> None:
    first = cli("keys", "bootstrap")
    assert first.exit_code == 0, first.output
    key_file = settings.data_dir / "admin.key"
    token = key_file.read_text(encoding="utf-8").strip()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert token in first.stdout and "--role reader" in first.stdout
    assert client.get("/v1/escalations", headers=bearer(token)).status_code == 200

    again = cli("keys", "bootstrap")
    assert again.exit_code == 0 and token not in again.stdout and str(key_file) in again.stdout
    assert key_file.read_text(encoding="utf-8").strip() == token
