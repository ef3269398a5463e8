"""The client's modules import each other one way: no run-time import cycle between reader groups and readers."""

from __future__ import annotations

import ast
from pathlib import Path

import anabranch.client

CLIENT = Path(anabranch.client.__file__).parent


def _runtime_imports(module: str) -> set[str]:
    """Modules imported at run time (module level, outside ``if TYPE_CHECKING``, or inside functions)."""
    tree = ast.parse((CLIENT / f"{module}.py").read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_event_reader_does_not_import_reader_group_at_run_time() -> None:
    assert "anabranch.client.reader_group" not in _runtime_imports("event_reader")
    assert "anabranch.client.event_reader" in _runtime_imports("reader_group")


def test_stream_manager_imports_its_factories_at_module_level() -> None:
    tree = ast.parse((CLIENT / "stream_manager.py").read_text())
    nested = [n for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
              for n in ast.walk(f) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not nested, "no lazy imports left to dodge a cycle"
