"""MkDocs hooks of the site (``hooks:`` in mkdocs.yml).

- ``on_config``: pages that other parts of the project add at the top of docs/ when they exist
  (:data:`OPTIONAL_PAGES`, or any other top-level page the navigation does not list) join the
  navigation, under their own H1 title; the build never depends on them.
- ``on_pre_build``: fail the build when a public name has no API page (``docs_api.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from docs_api import missing_names  # noqa: E402

#: page (relative to docs/) -> (section of the navigation, title)
OPTIONAL_PAGES = {
    "supported-models.md": ("How-to guides", "Supported models"),
    "dataset-runs.md": ("How-to guides", "Dataset runs (local and Ray)"),
    "accessibility-and-saving.md": ("How-to guides", "Accessibility and saving"),
}


def _listed(nav: Any) -> set[str]:
    """Every page the navigation lists."""
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_listed(v) for v in nav.values()))
    return set().union(*(_listed(v) for v in nav)) if nav else set()


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").capitalize()


def on_config(config: Any) -> Any:
    """Add the optional pages that exist (and unlisted top-level pages) to the navigation."""
    docs = Path(config["docs_dir"])
    listed = _listed(config["nav"])
    extra = {p.name: ("How-to guides", _title(p)) for p in sorted(docs.glob("*.md"))
             if p.name not in listed}
    for page, (section, title) in {**extra, **OPTIONAL_PAGES}.items():
        if not (docs / page).exists() or page in listed:
            continue
        for entry in config["nav"]:
            if isinstance(entry, dict) and section in entry:
                entry[section].append({title: page})
    return config


def on_pre_build(config: Any) -> None:
    """Fail when a public name of the package has no ``:::`` directive in the API pages."""
    try:
        missing = missing_names(Path(config["docs_dir"]))
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
    if missing:
        raise PluginError(
            "public names without an API page: " + ", ".join(missing)
            + " (add `::: <module>.<name>` to a page under docs/reference/api/)")
