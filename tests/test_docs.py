"""The documentation site's own machinery: generated pages, the API-coverage check, strictness.

The full build (``make docs``) and its pages in a browser are checked by ``make docs`` and
``tests/browser/test_docs_site_browser.py``; here, the parts that decide what the build
contains and when it fails, on the real package and the real pages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import docs_api  # noqa: E402
import docs_notebooks  # noqa: E402
import docs_pages  # noqa: E402


def test_every_public_name_has_an_api_page() -> None:
    names = docs_api.public_names()
    assert "opticam_widgets.OptiCAM" in names
    assert "opticam_widgets.dataset.SCHEMA" in names
    assert "opticam_widgets.explorer.selection_summary" in names
    assert docs_api.missing_names(ROOT / "docs") == []


def test_a_name_without_its_page_is_reported(tmp_path: Path) -> None:
    api = tmp_path / "reference" / "api"
    shutil.copytree(ROOT / "docs" / "reference" / "api", api)
    page = api / "explorer.md"
    page.write_text(page.read_text().replace("::: opticam_widgets.explorer.query.select\n", ""))
    assert docs_api.missing_names(tmp_path) == ["opticam_widgets.explorer.select"]
    # documented under its public alias instead of where it is defined: covered again
    page.write_text(page.read_text() + "\n::: opticam_widgets.explorer.select\n")
    assert docs_api.missing_names(tmp_path) == []
    page.write_text(page.read_text() + "\n::: opticam_widgets.explorer.no_such_name\n")
    with pytest.raises(ValueError, match="no_such_name"):
        docs_api.missing_names(tmp_path)


def test_the_build_hook_fails_on_a_missing_name(tmp_path: Path) -> None:
    import docs_hooks
    from mkdocs.exceptions import PluginError

    (tmp_path / "reference" / "api").mkdir(parents=True)
    (tmp_path / "reference" / "api" / "engine.md").write_text(
        "::: opticam_widgets.engine.explainer.OptiCAM\n")
    with pytest.raises(PluginError, match="opticam_widgets.load_default_model"):
        docs_hooks.on_pre_build({"docs_dir": str(tmp_path)})


def test_optional_pages_join_the_nav_only_when_present(tmp_path: Path) -> None:
    import docs_hooks

    nav = [{"Home": "index.md"}, {"How-to guides": ["how-to/index.md"]}]
    config = {"docs_dir": str(tmp_path), "nav": json.loads(json.dumps(nav))}
    assert docs_hooks.on_config(config)["nav"] == nav
    (tmp_path / "supported-models.md").write_text("# Model families\n")
    (tmp_path / "index.md").write_text("# Home\n")  # listed already: not added twice
    (tmp_path / "gpu-notes.md").write_text("Intro.\n\n# Notes on GPUs\n")
    added = docs_hooks.on_config(config)["nav"][1]["How-to guides"]
    assert added == ["how-to/index.md", {"Notes on GPUs": "gpu-notes.md"},
                     {"Supported models": "supported-models.md"}]


def test_schema_page_has_every_column_with_its_comment() -> None:
    from opticam_widgets.dataset import SCHEMA

    page = docs_pages.schema_page()
    for field in SCHEMA:
        assert f"| `{field.name}` | `{field.type}` |" in page
    assert "| `id` | `string` | stable id (relative path, path, or position) |" in page
    assert "| `map` | `list<item: float>` | normalized low-res map" in page


def test_cli_page_is_the_parsers_help() -> None:
    from opticam_widgets.cli.main import build_parser

    before = os.environ.get("COLUMNS")
    page = docs_pages.cli_page()
    assert os.environ.get("COLUMNS") == before  # the help width is set for the page only
    for command in ("explain", "samples", "explain-dataset", "report"):
        assert f"## `opticam {command}`" in page
    for flag in ("--top", "--schedule", "--convention", "--engine", "--resume"):
        assert flag in page
    assert build_parser().format_usage().split()[1] == "opticam"


def test_tutorials_carry_a_binder_link_each() -> None:
    pages = docs_notebooks.tutorial_notebooks(run=False)
    assert set(pages) == {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    for name, text in pages.items():
        cells = json.loads(text)["cells"]
        links = [c for c in cells if "mybinder.org" in "".join(c["source"])]
        assert len(links) == 1, name
        assert f"urlpath=lab/tree/notebooks/{name}" in "".join(links[0]["source"])
        assert "mybinder.org/badge" not in text  # no remote image in an offline site


def test_cache_key_follows_the_notebook_and_the_package(tmp_path: Path) -> None:
    nb = tmp_path / "a.ipynb"
    nb.write_text('{"cells": []}')
    key = docs_notebooks.sources_key(nb)
    assert docs_notebooks.sources_key(nb) == key
    nb.write_text('{"cells": [], "metadata": {}}')
    assert docs_notebooks.sources_key(nb) != key


@pytest.mark.slow
def test_strict_build_fails_on_a_broken_internal_link(tmp_path: Path) -> None:
    """The real configuration, on a copy of docs/ with one page linking to nothing."""
    for name in ("mkdocs.yml", "README.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("tools", "opticam_widgets", "notebooks", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "docs" / "how-to" / "speed.md").write_text(
        "# Speed\n\nSee [the missing page](no-such-page.md).\n")
    env = dict(os.environ, OPTICAM_DOCS_EXECUTE="0", NO_MKDOCS_2_WARNING="1",
               DISABLE_MKDOCS_2_WARNING="true")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                            str(tmp_path / "site")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode != 0
    assert "no-such-page.md" in build.stderr
    warnings = [line for line in build.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "no-such-page.md" in warnings[0], warnings


def test_docstrings_read_as_markdown() -> None:
    import doctest

    import docs_griffe

    assert doctest.testmod(docs_griffe).failed == 0
    assert doctest.testmod(docs_pages).failed == 0
    assert doctest.testmod(docs_notebooks).failed == 0
    text = docs_griffe.markdown("A :class:`~opticam_widgets.model.bundle.ModelBundle`.\n\n"
                                "    Example:\n        >>> 1\n        1\n")
    assert text == "A `ModelBundle`.\n\n    Examples:\n        >>> 1\n        1\n"


def test_a_kept_run_is_what_the_site_shows(tmp_path: Path, monkeypatch) -> None:
    nb = tmp_path / "a.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    monkeypatch.setattr(docs_notebooks, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(docs_notebooks, "execute", lambda path: pytest.fail("executed again"))
    ran = {"cells": [], "metadata": {"ran": True}, "nbformat": 4, "nbformat_minor": 5}
    docs_notebooks.keep(nb, {**ran, "metadata": {"ran": "before"}})
    assert docs_notebooks.keep(nb, ran) == docs_notebooks.cached_path(nb)
    assert docs_notebooks.executed(nb) == ran
    assert len(list((tmp_path / "cache").iterdir())) == 1  # the older copy is gone


NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# A tutorial"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "from IPython.display import display, update_display\n"
                   "display({'text/plain': 'first'}, raw=True, display_id='picture')\n"
                   "print('hello')"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "update_display({'text/plain': 'final'}, raw=True, display_id='picture')\n"
                   "6 * 7"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def _nbval(folder: Path, notebook: dict) -> subprocess.CompletedProcess:
    path = folder / "tutorial.ipynb"
    path.write_text(json.dumps(notebook))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tools"),
               OPTICAM_DOCS_CACHE=str(folder / "cache"))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "nbval_keep", "--nbval-lax",
                           "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(path)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_nbval_keeps_each_passing_notebook_for_the_site(tmp_path: Path) -> None:
    """``make notebooks`` (nbval with tools/nbval_keep.py) leaves each notebook that passed,
    executed, where the site build looks: the cell outputs, and a display updated by a later
    cell shows its last version (as nbclient keeps it); a failing notebook is not kept."""
    run = _nbval(tmp_path, NOTEBOOK)
    assert run.returncode == 0, run.stdout + run.stderr
    kept = list((tmp_path / "cache").glob("tutorial-*.ipynb"))
    assert len(kept) == 1
    cells = [c for c in json.loads(kept[0].read_text())["cells"] if c["cell_type"] == "code"]
    first, second = cells[0]["outputs"], cells[1]["outputs"]
    assert [o["output_type"] for o in first] == ["display_data", "stream"]
    assert "".join(first[0]["data"]["text/plain"]) == "final"
    assert "".join(first[1]["text"]) == "hello\n"
    assert "".join(second[0]["data"]["text/plain"]) == "42"
    assert [c["execution_count"] for c in cells] == [1, 2]

    broken = json.loads(json.dumps(NOTEBOOK))
    broken["cells"][2]["source"] = "1 / 0"
    (tmp_path / "cache" / kept[0].name).unlink()
    assert _nbval(tmp_path, broken).returncode != 0
    assert not list((tmp_path / "cache").glob("tutorial-*.ipynb"))
