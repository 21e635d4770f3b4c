"""The house rules, checked over the whole package's source (issue 26).

Floors, bottom to top: ``support`` (plumbing), ``inputs`` (images in), ``model`` (reading the
user's model), ``engine`` (Opti-CAM), ``evaluation`` (judging maps), ``display`` (maps to
pictures); the front ends ``dataset``, ``widget``, ``explorer`` and ``cli`` sit on them. An import
may go down a floor, never up; no import circle between modules; no private name imported from
another module; functions ≤ 50 code lines, classes ≤ 300, modules ≤ 400 (code lines: not blank,
not a comment, not a docstring); public signatures ≤ 8 named parameters (``**settings`` apart).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "opticam_widgets"
ROOT = PACKAGE.name
#: What each floor may import from the package ("" is the package's own ``__init__``).
ALLOWED = {
    "support": set(),
    "inputs": {"support"},
    "model": {"inputs", "support"},
    "engine": {"model", "inputs", "support"},
    "evaluation": {"engine", "model", "inputs", "support"},
    "display": {"support"},
    "dataset": {"engine", "evaluation", "model", "inputs", "display", "support", "cli", ""},
    "widget": {"engine", "evaluation", "model", "inputs", "display", "support"},
    "explorer": {"widget", "dataset", "evaluation", "engine", "model", "inputs", "display",
                 "support"},
    "cli": {"dataset", "engine", "evaluation", "model", "inputs", "display", "support", ""},
}
CORE = ("support", "inputs", "model", "engine", "evaluation")
UI_LIBRARIES = ("ipywidgets", "ipycanvas", "IPython", "anywidget", "ipyevents")


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor(module: str) -> str:
    """The subpackage ``module`` lives in ("" for the package's own top-level modules)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else ""


@cache
def tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"))


def imports(module: str) -> list[tuple[str, str]]:
    """``(imported module, name)`` of every ``from ... import`` of the package (made absolute)."""
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree(module)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target == ROOT or target.startswith(ROOT + "."):
            out += [(target, alias.name) for alias in node.names]
    return out


def edges(module: str) -> set[str]:
    """The package's modules that ``module`` imports (a submodule imported by name counts)."""
    out = set()
    for target, name in imports(module):
        dest = f"{target}.{name}" if f"{target}.{name}" in MODULES else target
        if dest in MODULES and dest != module:
            out.add(dest)
    return out


def code_lines(module: str) -> set[int]:
    """Line numbers that are code: not blank, not a comment, not a docstring."""
    docs: set[int] = set()
    for node in ast.walk(tree(module)):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = MODULES[module].read_text(encoding="utf-8").splitlines()
    return {n for n, text in enumerate(lines, 1)
            if text.strip() and not text.strip().startswith("#") and n not in docs}


def test_the_top_level_shows_the_floors():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]
    assert set(ALLOWED) == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_imports_go_down_the_floors(module):
    here = floor(module)
    if module in (ROOT, f"{ROOT}.__main__"):
        return
    upward = sorted({floor(dest) for dest in edges(module)} - ALLOWED[here] - {here})
    assert upward == [], f"{module} imports from {upward}"


@pytest.mark.parametrize("module", [m for m in sorted(MODULES) if floor(m) in CORE], ids=str)
def test_the_core_imports_no_ui(module):
    names = {n.module or "" for n in ast.walk(tree(module)) if isinstance(n, ast.ImportFrom)}
    names |= {a.name for n in ast.walk(tree(module)) if isinstance(n, ast.Import)
              for a in n.names}
    assert not {n.split(".")[0] for n in names} & set(UI_LIBRARIES), module


def test_no_import_circle():
    graph = {m: {d for d in edges(m) if not MODULES[d].name == "__init__.py"}
             for m in MODULES if MODULES[m].name != "__init__.py"}
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path[path.index(node):], node))
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, (*path, node))
        done.add(node)

    for module in sorted(graph):
        visit(module, ())


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_no_private_name_from_another_module(module):
    private = [f"{target}.{name}" for target, name in imports(module)
               if name.startswith("_") and not name.startswith("__")]
    assert private == []


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_sizes(module):
    code = code_lines(module)
    assert len(code) <= 400, f"{module}: {len(code)} code lines"
    for node in ast.walk(tree(module)):
        size = len(code & set(range(node.lineno, node.end_lineno + 1))) if hasattr(
            node, "end_lineno") else 0
        if isinstance(node, ast.ClassDef):
            assert size <= 300, f"{module}: class {node.name} has {size} code lines"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert size <= 50, f"{module}: {node.name} has {size} code lines"


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_public_signatures_take_at_most_eight_parameters(module):
    wide = []
    for node in ast.walk(tree(module)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                not node.name.startswith("_") or node.name == "__init__"):
            a = node.args
            named = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs
                     if x.arg not in ("self", "cls")]
            if len(named) > 8:
                wide.append(f"{node.name} ({len(named)})")
    assert wide == [], f"{module}: {wide}"


def test_pure_widget_state_imports_no_ui():
    """The widget's state and the jobs registry are testable without widgets."""
    for module in (f"{ROOT}.widget.state", f"{ROOT}.support.jobs"):
        names = {n.module or "" for n in ast.walk(tree(module)) if isinstance(n, ast.ImportFrom)}
        assert not {n.split(".")[0] for n in names} & set(UI_LIBRARIES), module
