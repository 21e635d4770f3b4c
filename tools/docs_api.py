"""The API reference covers every public name: a check that compares the two.

Public names: ``opticam_widgets.__all__`` and the ``__all__`` of each subpackage
(:data:`SUBPACKAGES`). Documented: every ``::: identifier`` (a mkdocstrings directive) in the
pages under ``docs/reference/api/``. A public name is covered when one directive's identifier
imports to the very same object, so a name documented where it is defined (say
``opticam_widgets.engine.explainer.OptiCAM``) covers its public alias (``opticam_widgets.OptiCAM``).

Run ``python tools/docs_api.py`` to list what is missing; the site's build runs the same check
(``tools/docs_hooks.py``) and fails on any missing name.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "opticam_widgets"
SUBPACKAGES = ("dataset", "widget", "explorer")
API_PAGES = Path("reference") / "api"
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)


def public_names() -> dict[str, Any]:
    """Every public name, fully qualified, with the object it gives."""
    names = {}
    for module_name in (PACKAGE, *(f"{PACKAGE}.{sub}" for sub in SUBPACKAGES)):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            names[f"{module_name}.{name}"] = getattr(module, name)
    return names


def resolve(identifier: str) -> Any:
    """The object a dotted identifier names (the longest importable module, then attributes)."""
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"no module in {identifier!r}")


def directives(docs_dir: Path) -> list[str]:
    """The identifiers of the ``:::`` directives of the API pages, in file order."""
    found = []
    for page in sorted((docs_dir / API_PAGES).glob("*.md")):
        found += DIRECTIVE.findall(page.read_text(encoding="utf-8"))
    return found


def missing_names(docs_dir: Path) -> list[str]:
    """Public names no API page documents (empty when the reference is complete).

    Raises:
        ValueError: a directive names nothing importable (a typo in a page).
    """
    documented = []
    for identifier in directives(docs_dir):
        try:
            documented.append(resolve(identifier))
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"{API_PAGES}: `::: {identifier}` names nothing ({exc})") from exc
    return [name for name, obj in public_names().items()
            if not any(obj is doc for doc in documented)]


def main() -> int:
    """Print the public names without an API page; exit status 1 when there are any."""
    sys.path.insert(0, str(ROOT))
    missing = missing_names(ROOT / "docs")
    for name in missing:
        print(f"no API page documents {name}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
