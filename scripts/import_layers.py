"""The project's import graph, read from the source (ast, nothing imported): layers, config
readers and import circles. `python -m scripts.import_layers` prints the figures;
tests/test_layers.py asserts them.

Layers, top to bottom: api → services → crud → database → processing / utils. A module
imports its own layer or lower ones; processing and utils (plain functions on plain values)
import neither the database, SQLAlchemy nor the settings.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "services", "crud", "database", "processing", "utils")
TOP_MODULES = ("config", "run_server")
RANK = {"api": 4, "services": 3, "crud": 2, "database": 1, "processing": 0, "utils": 0}
# Settings stop at the service edge (issue 19, point 5). Below api, only the modules that
# assemble a process read them: the background wiring (which backend, which model) and its
# Celery counterpart, the worker process's entry point (`python -m
# services.background.celery_worker`, the worker's run_server.py) and the Celery app, which
# builds that process's engine, model and storage lease from the settings as api/main.py's
# lifespan does for the API process. Everything else takes plain values
# (processing.embedding_spec.EmbedderSpec, database.deadlines.DatabaseDeadlines) or a narrow
# protocol of what it reads (utils.file_handling.StorageLayout, image_service.UploadSettings).
SETTINGS_EDGE_BELOW_API = frozenset(
    {
        "services.background.wiring",
        "services.background.celery_app",
        "services.background.celery_worker",
    }
)


def module_files() -> dict[str, Path]:
    """Production module name -> file."""
    files = {name: ROOT / f"{name}.py" for name in TOP_MODULES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


def imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Every module name an import statement anywhere in `tree` names (function bodies and
    TYPE_CHECKING blocks too: a dependency is a dependency)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the production modules it imports (external ones dropped)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = imported_names(tree, module, path.name == "__init__.py")
        graph[module] = {name for name in names if name in files and name != module}
    return graph


def external_imports(module: str) -> set[str]:
    """Top-level names of what `module` imports from outside the project."""
    path = module_files()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = imported_names(tree, module, path.name == "__init__.py")
    return {name.split(".")[0] for name in names} - {*PACKAGES, *TOP_MODULES}


def layer(module: str) -> str:
    return module.split(".")[0]


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a lower layer imports a higher one."""
    return sorted(
        (module, target)
        for module, targets in graph.items()
        if layer(module) in RANK
        for target in targets
        if layer(target) in RANK and RANK[layer(target)] > RANK[layer(module)]
    )


def config_readers(graph: dict[str, set[str]]) -> list[str]:
    """Modules below api that import config (the edge modules among them)."""
    return sorted(
        module
        for module, targets in graph.items()
        if "config" in targets and layer(module) in RANK and layer(module) != "api"
    )


def config_readers_past_the_edge(graph: dict[str, set[str]]) -> list[str]:
    """Modules below api that import config and do not assemble a process: should be none."""
    return [module for module in config_readers(graph) if module not in SETTINGS_EDGE_BELOW_API]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def main() -> None:
    graph = import_graph()
    readers = config_readers(graph)
    past_the_edge = config_readers_past_the_edge(graph)
    found = circles(graph)
    upward = upward_imports(graph)
    print(f"modules below api importing config: {len(readers)}")
    for module in readers:
        print(f"  {module}{'' if module in past_the_edge else ' (process wiring: allowed)'}")
    print(f"  of them past the edge (not assembling a process): {len(past_the_edge)}")
    print(f"import circles: {len(found)}")
    for component in found:
        print(f"  {' -> '.join(component)}")
    print(f"imports running up a layer: {len(upward)}")
    for importer, imported in upward:
        print(f"  {importer} -> {imported}")


if __name__ == "__main__":
    main()
