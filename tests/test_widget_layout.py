"""The widget's house rules, checked on its source: sizes, imports, one-way data flow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "opticam_widgets"
WIDGET = PACKAGE / "widget"
FILES = sorted(WIDGET.glob("*.py")) + [PACKAGE / "jobs.py"]


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def code_lines(source: list[str], node: ast.AST, docs: set[int]) -> int:
    """Lines of ``node`` that are neither docstring, comment nor blank."""
    return sum(1 for n in range(node.lineno, node.end_lineno + 1)
               if n not in docs and source[n - 1].strip()
               and not source[n - 1].strip().startswith("#"))


def relative_imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every relative ``from ... import ...`` (module made absolute)."""
    package = path.parent.relative_to(PACKAGE.parent).parts
    out = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[:len(package) - node.level + 1])
            module = ".".join(base + ([node.module] if node.module else []))
            out += [(module, alias.name) for alias in node.names]
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_sizes(path):
    source = path.read_text(encoding="utf-8").splitlines()
    tree = parse(path)
    docs = docstring_lines(tree)
    assert len(source) <= 400, f"{path.name}: {len(source)} lines"
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= 300, f"{path.name}: class {node.name} has {size} lines"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = code_lines(source, node, docs)
            assert size <= 50, f"{path.name}: {node.name} has {size} code lines"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_private_name_imported_from_another_module(path):
    private = [f"{module}.{name}" for module, name in relative_imports(path)
               if name.startswith("_")]
    assert private == []


def widget_graph() -> dict[str, set[str]]:
    graph = {}
    for path in WIDGET.glob("*.py"):
        deps = {module.rsplit(".", 1)[-1] for module, _ in relative_imports(path)
                if module.startswith("opticam_widgets.widget.")}
        deps |= {name for module, name in relative_imports(path)
                 if module == "opticam_widgets.widget"}
        graph[path.stem] = deps - {path.stem}
    return graph


def test_no_import_circle_in_the_widget():
    graph = widget_graph()
    graph.pop("__init__")
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path, node))
        if node in done:
            return
        for dep in graph.get(node, ()):
            visit(dep, (*path, node))
        done.add(node)

    for module in graph:
        visit(module, ())


def test_pure_parts_import_no_ui():
    """state.py and the core jobs registry are testable without widgets; the core never
    imports the widget."""
    for path in (WIDGET / "state.py", PACKAGE / "jobs.py"):
        names = {n.module for n in ast.walk(parse(path)) if isinstance(n, ast.ImportFrom)}
        names |= {a.name for n in ast.walk(parse(path)) if isinstance(n, ast.Import)
                  for a in n.names}
        assert not any(str(n).split(".")[0] in ("ipywidgets", "ipycanvas", "IPython")
                       for n in names), path.name
        assert not any(".widget" in str(n) or n == "widget" for n in names), path.name
    for path in PACKAGE.glob("*.py"):
        assert not any(module.startswith("opticam_widgets.widget")
                       for module, _ in relative_imports(path)
                       if path.stem != "__init__"), path.name
