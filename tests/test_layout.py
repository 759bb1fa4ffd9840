"""The package's shape: no import circle between genlab's parts, no part importing a part that
imports it back, no private name imported across modules, and thin command modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "genlab"


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = ast.parse(path.read_text())
    return modules


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module imported, names imported from it) for every genlab import, lazy ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genlab"):
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.startswith("genlab")]
    return found


def _part(module: str) -> str:
    """genlab.metrics.fid -> genlab.metrics: the package (or top-level module) it belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, tree in _modules().items():
        for imported, names in _imports(tree):
            targets = [imported] if imported != "genlab" else [f"genlab.{n}" for n in names]
            for target in targets:
                if _part(target) != _part(name) and _part(target) != "genlab":
                    graph.setdefault(_part(name), set()).add(_part(target))
    return graph


def test_no_part_of_genlab_imports_a_part_that_imports_it_back():
    graph = _part_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                pytest.fail("import circle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # The layering the circle check protects: models and data never reach up to training,
    # metrics never reach up to training or the commands.
    for low in ("genlab.models", "genlab.data", "genlab.config", "genlab.options"):
        assert not graph.get(low, set()) & {"genlab.train", "genlab.cli", "genlab.viz",
                                            "genlab.metrics", "genlab.run"}, low
    assert not graph.get("genlab.metrics", set()) & {"genlab.train", "genlab.cli", "genlab.viz"}


def test_no_private_name_is_imported_across_modules():
    offending = [f"{name}: from {imported} import {n}"
                 for name, tree in _modules().items()
                 for imported, names in _imports(tree) for n in names
                 if n.startswith("_") and n != "__version__"]
    assert not offending, offending


def test_commands_are_thin():
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        assert len(path.read_text().splitlines()) <= 200, path.name
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_command"):
                length = node.end_lineno - node.lineno + 1
                assert length <= 40, f"{path.name}: {node.name} is {length} lines"
