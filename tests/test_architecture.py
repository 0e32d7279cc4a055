"""The house's rules, read off the source: no import cycle among passt's modules, imports flow
one way between the layers (utils -> model core -> data, eval, inference -> train, measure ->
profiling, sweep, tradeoff -> report -> cli), and no module over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "passt"
LAYERS = {"utils": 0, "data": 2, "eval": 2, "inference": 2, "train": 3, "measure": 3,
          "profiling": 4, "sweep": 4, "tradeoff": 4, "report": 5, "cli": 6}  # the rest: 1
# (importer, imported): why the edge goes up
ALLOWED_UP = {("passt.inference.run", "passt.train.run_files"):
              "a checkpoint of format 1 (written before `RunCheckpoint.model_args`) is rebuilt "
              "from its training settings, lazily, by training's reader"}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The passt modules ``path`` imports, anywhere in it but under ``if TYPE_CHECKING``."""
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            if getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(a.name for a in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in known else node.module)

    Visitor().visit(ast.parse(path.read_text()))
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def layer(module: str) -> int:
    parts = module.split(".")
    return -1 if len(parts) == 1 else LAYERS.get(parts[1], 1)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_flow_one_way():
    up = [(m, d) for m, deps in graph().items() for d in deps
          if m != "passt" and layer(d) > layer(m) and (m, d) not in ALLOWED_UP]
    assert up == []


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_module_over_400_lines(module):
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= 400, f"{module}: {lines} lines"
