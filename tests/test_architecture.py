"""The import graph: no cycles between modules, and packages only import the layers below them."""

from __future__ import annotations

import grimp
import networkx as nx
import pytest

# Each package and the packages it may import (the README's package table, top to bottom).
LAYERS: dict[str, set[str]] = {
    "answerdesk": {"api", "eval", "support", "ingest", "access", "retrieval", "common"},
    "api": {"console", "support", "ingest", "access", "retrieval", "common"},
    "console": set(),  # the web console's static files and their mount; its data comes only from /v1
    "eval": {"support", "ingest", "retrieval", "common"},
    "support": {"retrieval", "common"},
    "ingest": {"retrieval", "common"},
    "access": {"retrieval", "common"},
    "retrieval": {"common"},
    "common": set(),
}


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    # Imports inside functions count (a deferred import still ties the modules together); imports
    # only for type checking do not.
    built = grimp.build_graph(*LAYERS, include_external_packages=False, exclude_type_checking_imports=True)
    edges = nx.DiGraph()
    for module in built.modules:
        edges.add_node(module)
        for imported in built.find_modules_directly_imported_by(module):
            edges.add_edge(module, imported)
    return edges


def test_no_import_cycles(graph: nx.DiGraph) -> None:
    cycles = [sorted(component) for component in nx.strongly_connected_components(graph) if len(component) > 1]
    assert cycles == []


def test_packages_import_only_the_layers_below(graph: nx.DiGraph) -> None:
    upward = sorted(
        f"{importer} -> {imported}"
        for importer, imported in graph.edges
        if (low := imported.split(".")[0]) != (high := importer.split(".")[0]) and low not in LAYERS[high]
    )
    assert upward == []


def test_the_check_sees_a_cycle() -> None:
    """The cycle check is not vacuous: two modules importing each other form a component."""
    edges = nx.DiGraph([("a", "b"), ("b", "a"), ("b", "c")])
    assert [sorted(c) for c in nx.strongly_connected_components(edges) if len(c) > 1] == [["a", "b"]]
