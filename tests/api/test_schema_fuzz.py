"""schemathesis against the served OpenAPI schema: every operation gets generated valid and invalid
requests with an admin key; no 5xx, and every response (status, content type, body) is as the schema
documents it. Bounded (a few derandomized examples per operation) to stay around a minute.

The operations are looped over inside one test per generation mode rather than with
``schema.parametrize()``: its lazy fixture loader touches a pytest internal that pytest 9 removed
(``Function._nodeid``), and loading the schema eagerly would build the app at collection time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from retrieval.embedding import HashingEmbedder
from tests.helpers import bearer, issue_key, small_kb_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 30
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    """The app over a tiny knowledge base, and an admin key (every permission)."""
    settings = small_kb_settings(Path(tmp_path_factory.mktemp("fuzz")))
    yield create_app(settings, embedder=HashingEmbedder()), issue_key(settings, role="admin")
    shutdown_lifespans()  # schemathesis started the app's lifespan on first use


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(served: tuple[FastAPI, str], mode: GenerationMode) -> None:
    app, key = served
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers=bearer(key))
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            continue  # nothing to make invalid (e.g. GET /healthz takes no input)
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures, report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 12
    assert not failures, "\n\n".join(failures)
