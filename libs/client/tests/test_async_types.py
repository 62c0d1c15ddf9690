"""`AsyncFabula`'s resources are typed as what they are: every method that
answers once returns an awaitable, a stream an async iterator (a method
with `stream=`: overloads, one for each). The types are a stub generated from
resources.py; this test fails when it is out of date. To write it again:

    python libs/client/tests/test_async_types.py
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "fabula_client"
STUB = PACKAGE / "_async_types.pyi"

HEADER = '''"""Typing of AsyncFabula's resources (generated from resources.py by
libs/client/tests/test_async_types.py; do not edit): the same methods as the
sync ones, each answer awaited, each stream an async iterator."""

import builtins
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal, overload

from fabula_client.models import *'''


class _Builtins(ast.NodeTransformer):
    """`list[str]` as `builtins.list[str]`: in a class with a method `list`,
    the bare name is that method."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in {"list", "dict"}:
            return ast.Attribute(ast.Name("builtins", ast.Load()), node.id, ast.Load())
        return node


def _unparse(node: ast.AST) -> str:
    return ast.unparse(_Builtins().visit(node))


def _signature(args: ast.arguments) -> str:
    """The parameters, defaults written `...` as stubs do."""
    args.defaults = [ast.Constant(...) for _ in args.defaults]
    args.kw_defaults = [None if d is None else ast.Constant(...) for d in args.kw_defaults]
    return _unparse(args)


def resource_classes(tree: ast.Module) -> list[ast.ClassDef]:
    return [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id == "Resource" for base in node.bases)
    ]


def generate() -> str:
    tree = ast.parse((PACKAGE / "resources.py").read_text())
    parts = [HEADER]
    for cls in resource_classes(tree):
        lines = [f"\nclass Async{cls.name}:"]
        methods = [
            node
            for node in cls.body
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
        ]
        overloaded = {node.name for node in methods if _is_overload(node)}
        for node in methods:
            if node.name in overloaded and not _is_overload(node):
                continue  # the implementation: its overloads are the types
            returns = _unparse(node.returns) if node.returns else "Any"
            if returns.startswith("Iterator["):
                # A stream: the async client's is an async iterator, not awaited.
                prefix, returns = "def", "Async" + returns
            else:
                prefix = "def" if returns == "Any" else "async def"
            if _is_overload(node):
                lines.append("    @overload")
            lines.append(f"    {prefix} {node.name}({_signature(node.args)}) -> {returns}: ...")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _is_overload(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in node.decorator_list)


def _outside_functions(node: ast.AST):
    """The nodes under `node` but not inside its functions (a class's
    attribute annotations, not its methods' local variables)."""
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield child
            yield from _outside_functions(child)


def client_resources() -> tuple[dict[str, str], dict[str, str]]:
    """(attribute -> class) as BaseClient.__init__ makes them, and as AsyncFabula types them."""
    tree = ast.parse((PACKAGE / "client.py").read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    made = {
        node.targets[0].attr: node.value.func.id
        for node in ast.walk(classes["BaseClient"])
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and isinstance(node.targets[0], ast.Attribute)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id[:1].isupper()
        and node.value.func.id not in {"Core", "Credentials"}
    }
    typed = {
        node.target.id: ast.unparse(node.annotation).removeprefix("_async_types.")
        for node in _outside_functions(classes["AsyncFabula"])
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    return made, typed


def test_the_async_stub_matches_the_resources():
    assert STUB.read_text() == generate(), "run: python libs/client/tests/test_async_types.py"


def test_every_async_resource_is_typed_as_its_async_class():
    made, typed = client_resources()
    assert typed == {name: f"Async{cls}" for name, cls in made.items()}


if __name__ == "__main__":
    STUB.write_text(generate())
