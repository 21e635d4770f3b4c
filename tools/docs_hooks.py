"""MkDocs hooks of the site (``hooks:`` in mkdocs.yml).

- ``on_config``: pages that other parts of the project add when they exist
  (:data:`OPTIONAL_PAGES`) join the navigation; the build never depends on them.
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


def on_config(config: Any) -> Any:
    """Add each optional page that exists to its section of the navigation."""
    docs = Path(config["docs_dir"])
    for page, (section, title) in OPTIONAL_PAGES.items():
        if not (docs / page).exists():
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
