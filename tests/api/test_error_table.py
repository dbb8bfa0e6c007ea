"""Domain errors reach the client through one table (api/errors.py DOMAIN_STATUS): every domain
"not found" error has a code there, carries the client's message itself, and no route translates it
into an ApiError of its own (a second mapping that could drift from the first)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import access
import api
import ingest
import retrieval
import support
from api.errors import DOMAIN_STATUS
from common.errors import AnswerDeskError

API = Path(api.__file__).parent


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(sub) for sub in found)) if found else found


def test_every_domain_not_found_error_is_in_the_table() -> None:
    packages = (access, ingest, retrieval, support)
    for package in packages:
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    ours = {package.__name__ for package in packages}
    lookups = {cls for cls in _subclasses(LookupError) if cls.__module__.split(".")[0] in ours}
    assert lookups, "no domain lookup errors found"
    for cls in lookups:
        assert issubclass(cls, AnswerDeskError), f"{cls.__qualname__} has no code for the API"
        assert DOMAIN_STATUS.get(cls.code) == 404, cls.code


def test_no_route_translates_a_domain_error_itself() -> None:
    translated = []
    for path in sorted(API.glob("routes_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and "NotFoundError" in ast.unparse(node.type or ast.Name("")):
                translated.append(f"{path.name}:{node.lineno}")
    assert translated == []
