"""Committed notebooks carry no saved widget state, and the build strips it from what it writes.

Saved widget state (``metadata.widgets``) describes models of a kernel that no longer exists:
trusted, it draws a dead widget with a blank canvas instead of the output's saved picture.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat as nbf
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _build_module():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  ROOT / "tools" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_widget_state(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in nb["metadata"], (
        f"{path.name} carries saved widget state: run `.venv/bin/python "
        "tools/build_notebooks.py --strip`")
    assert WIDGET_STATE not in path.read_text(encoding="utf-8")


def test_strip_removes_only_the_widget_state(tmp_path: Path):
    build = _build_module()
    nb = nbf.v4.new_notebook()
    nb.cells = [nbf.v4.new_code_cell("1 + 1")]
    nb.cells[0].outputs = [nbf.v4.new_output(
        "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "picture"})]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": {"abc": {}}, "version_major": 2,
                                             "version_minor": 0}}
    path = tmp_path / "n.ipynb"
    nbf.write(nb, path)
    assert build.strip_file(path) is True
    again = nbf.read(path, as_version=4)
    assert "widgets" not in again.metadata
    assert again.metadata["kernelspec"]["name"] == "python3"
    assert again.cells[0].outputs[0]["data"]["image/png"] == "iVBORw0KGgo="
    assert build.strip_file(path) is False  # nothing left to strip: the file is not rewritten


def test_every_built_notebook_is_written_without_widget_state(tmp_path: Path, monkeypatch):
    build = _build_module()
    monkeypatch.setattr(build, "HERE", tmp_path)
    build.main([])
    written = sorted(tmp_path.glob("*.ipynb"))
    assert [p.stem for p in written] == sorted(build.NOTEBOOKS)
    for path in written:
        assert "widgets" not in json.loads(path.read_text())["metadata"]
