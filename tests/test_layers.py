"""The layering holds, read from the source (scripts/import_layers.py): api → services →
crud → database → processing / utils, no import circles, and settings read only at the edge."""

from __future__ import annotations

import ast

import pytest

from scripts import import_layers


def test_no_layer_imports_a_higher_one() -> None:
    assert import_layers.upward_imports(import_layers.import_graph()) == []


def test_no_import_circles() -> None:
    assert import_layers.circles(import_layers.import_graph()) == []


def test_processing_and_utils_know_no_database() -> None:
    graph = import_layers.import_graph()
    for module in graph:
        if import_layers.layer(module) in ("processing", "utils"):
            assert "sqlalchemy" not in import_layers.external_imports(module), module
            assert not {t for t in graph[module] if import_layers.layer(t) == "database"}, module


def test_settings_stop_at_the_service_edge() -> None:
    """processing, utils, services, crud and database never import config: below api only the
    modules that assemble a process read the settings (import_layers.SETTINGS_EDGE_BELOW_API)."""
    graph = import_layers.import_graph()
    assert import_layers.config_readers_past_the_edge(graph) == []
    # Every allowance names a real module: a renamed one does not leave a stale exemption.
    assert set(graph) >= import_layers.SETTINGS_EDGE_BELOW_API


@pytest.mark.parametrize(
    "module",
    ["processing.x", "utils.x", "services.x", "services.background.x", "crud.x", "database.x"],
)
@pytest.mark.parametrize(
    "source",
    [
        "import config",
        "from config import Settings",
        "def f():\n    from config import get_settings",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import config",
    ],
)
def test_a_settings_import_below_the_edge_is_caught(module: str, source: str) -> None:
    """The rule fails for `config` imported, in any form, by a module below the edge."""
    imported = set(import_layers.imported_names(ast.parse(source), module, is_package=False))
    graph = {module: imported & {"config"}, "services.background.wiring": {"config"}}
    assert import_layers.config_readers_past_the_edge(graph) == [module]


def test_the_checks_see_what_they_check() -> None:
    """The graph is read from the real files: known edges are there, and a circle is found."""
    graph = import_layers.import_graph()
    assert "database.models" in graph["crud.crud_image"]
    assert "config" in graph["api.deps"]
    assert import_layers.circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]
    assert import_layers.upward_imports({"crud.x": {"services.y"}}) == [("crud.x", "services.y")]
