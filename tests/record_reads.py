"""A static check of the code that reads `BenchRecord`s: every attribute it reads off an
expression typed as a record, found from annotations and iteration, without running it.

It follows what the readers write: parameters and variables annotated ``BenchRecord``,
``list[BenchRecord]``/``Iterable[BenchRecord]`` (rows) or ``dict[str, BenchRecord]`` (rows by
name); ``.values()``, ``.items()`` and ``[key]`` of the latter; ``.record`` and ``.records``
(of `Benchmark` and `BenchFile`); comprehensions over rows; and calls of functions whose
return annotation says they give rows.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

RECORD, ROWS, BY_NAME = "record", "rows", "by name"
ROW_CONTAINERS = {"list", "tuple", "Iterable", "Sequence", "Iterator"}


@dataclass(frozen=True)
class Read:
    """An attribute read off a record: where, and its name."""

    path: str
    line: int
    attr: str


def annotation_kind(node: ast.expr | None) -> Any:
    """RECORD, ROWS, BY_NAME, a tuple of kinds (a tuple annotation) or None."""
    if isinstance(node, ast.Name | ast.Attribute):
        return RECORD if _name(node) == "BenchRecord" else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
        return annotation_kind(node.left) or annotation_kind(node.right)
    if isinstance(node, ast.Subscript):
        outer = _name(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        kinds = [annotation_kind(a) for a in args]
        if outer == "dict" and kinds[-1] == RECORD:
            return BY_NAME
        if outer == "tuple" and len(args) > 1 and not _is_ellipsis(args[-1]):
            return tuple(kinds)
        if outer in ROW_CONTAINERS and kinds[0] == RECORD:
            return ROWS
    return None


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")


def _is_ellipsis(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


class _Reader(ast.NodeVisitor):
    def __init__(self, path: str, returns: dict[str, Any]):
        self.path, self.returns = path, returns
        self.scope: dict[str, Any] = {}
        self.reads: list[Read] = []

    def kind(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            return self.scope.get(node.id)
        if isinstance(node, ast.Attribute):
            return {"record": RECORD, "records": ROWS}.get(node.attr)
        if isinstance(node, ast.Subscript):
            return RECORD if self.kind(node.value) == BY_NAME else None
        if isinstance(node, ast.BoolOp):
            return next((k for k in map(self.kind, node.values) if k), None)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and self.kind(func.value) == BY_NAME:
                return {"values": ROWS, "items": "items"}.get(func.attr)
            if isinstance(func, ast.Name) and func.id in ("sorted", "list") and node.args:
                return ROWS if self.kind(node.args[0]) == ROWS else None
            return self.returns.get(_name(func))
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            return ROWS if self._in_comprehension(node, node.elt) == RECORD else None
        if isinstance(node, ast.DictComp):
            return BY_NAME if self._in_comprehension(node, node.value) == RECORD else None
        return None

    def bind(self, target: ast.expr, kind: Any) -> None:
        if isinstance(target, ast.Name):
            self.scope[target.id] = kind
        elif isinstance(target, ast.Tuple):
            kinds = kind if isinstance(kind, tuple) else (None, RECORD) if kind == "items" \
                else (None,) * len(target.elts)
            for t, k in zip(target.elts, kinds, strict=False):
                self.bind(t, k)

    def bind_iteration(self, target: ast.expr, iterable: ast.expr) -> None:
        kind = self.kind(iterable)
        self.bind(target, RECORD if kind == ROWS else kind if kind == "items" else None)

    def _in_comprehension(self, node: Any, elt: ast.expr) -> Any:
        saved = dict(self.scope)
        for gen in node.generators:
            self.bind_iteration(gen.target, gen.iter)
        kind = self.kind(elt)
        self.scope = saved
        return kind

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        saved = dict(self.scope)
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for arg in args:
            self.scope[arg.arg] = annotation_kind(arg.annotation)
        for statement in node.body:
            self.visit(statement)
        self.scope = saved

    def visit_Lambda(self, node: ast.Lambda) -> None:
        saved = dict(self.scope)
        for arg in node.args.args:
            self.scope[arg.arg] = None
        self.visit(node.body)
        self.scope = saved

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.bind(target, self.kind(node.value))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.bind(node.target, annotation_kind(node.annotation))

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self.bind_iteration(node.target, node.iter)
        for statement in [*node.body, *node.orelse]:
            self.visit(statement)

    def _visit_comprehension(self, node: Any) -> None:
        saved = dict(self.scope)
        for gen in node.generators:
            self.visit(gen.iter)
            self.bind_iteration(gen.target, gen.iter)
            for condition in gen.ifs:
                self.visit(condition)
        for part in (getattr(node, "elt", None), getattr(node, "key", None),
                     getattr(node, "value", None)):
            if part is not None:
                self.visit(part)
        self.scope = saved

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _visit_comprehension

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self.kind(node.value) == RECORD:
            self.reads.append(Read(self.path, node.lineno, node.attr))
        self.generic_visit(node)


def record_reads(sources: dict[str, str]) -> list[Read]:
    """Every attribute read off a record in ``sources`` (path -> code); functions of any of
    them that return records are known to all."""
    trees = {path: ast.parse(code) for path, code in sources.items()}
    returns = {node.name: annotation_kind(node.returns) for tree in trees.values()
               for node in tree.body if isinstance(node, ast.FunctionDef)}
    reads = []
    for path, tree in trees.items():
        reader = _Reader(path, returns)
        reader.visit(tree)
        reads += reader.reads
    return reads
