"""The layering holds, read from the source (scripts/import_layers.py): api → services →
crud → database → processing / utils, no import circles, and settings read only at the edge."""

from __future__ import annotations

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
    """Below api only the background wiring reads config (and, until the model-identity change
    lands, the two modules it rewrites: import_layers.NOT_YET_AT_THE_EDGE)."""
    readers = set(import_layers.config_readers(import_layers.import_graph()))
    allowed = import_layers.CONFIG_READERS_BELOW_API | import_layers.NOT_YET_AT_THE_EDGE
    assert readers <= allowed


def test_the_checks_see_what_they_check() -> None:
    """The graph is read from the real files: known edges are there, and a circle is found."""
    graph = import_layers.import_graph()
    assert "database.models" in graph["crud.crud_image"]
    assert "config" in graph["api.deps"]
    assert import_layers.circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]
    assert import_layers.upward_imports({"crud.x": {"services.y"}}) == [("crud.x", "services.y")]
