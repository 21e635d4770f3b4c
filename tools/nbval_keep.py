"""A pytest plugin for ``make notebooks``: nbval's runs kept for the documentation site.

nbval runs each notebook's cells in a fresh kernel and checks the marked outputs. The site
build that ``make test`` runs next shows the same notebooks executed (``docs_notebooks.py``);
executing them a second time took about 110 s of the suite. With this plugin (``-p
nbval_keep``, ``tools/`` on the path), each notebook whose cells all passed is written with the
outputs nbval received into the site's cache, where the build looks first. A display updated
later (``update_display``: a widget's saved picture, once its run has ended) is updated in the
kept copy, as nbclient does when the site executes a notebook itself. The kernels run in the
site's environment: offline, one thread each.

A notebook with a failed or skipped cell is not kept: the site build executes it.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import nbformat
import pytest
from docs_notebooks import OFFLINE_ENV, Displays, keep
from nbval.plugin import IPyNbCell, IPyNbFile

os.environ.update(OFFLINE_ENV)  # the kernels nbval starts inherit it

_read = IPyNbFile.get_kernel_message


def _get_kernel_message(self: IPyNbFile, timeout: float | None = None,
                        stream: str = "iopub") -> dict:
    msg = _read(self, timeout=timeout, stream=stream)
    if stream == "iopub":
        self.__dict__.setdefault("_displays", Displays()).seen(msg)
    return msg


IPyNbFile.get_kernel_message = _get_kernel_message

#: nodeid of a notebook -> {code cell number: its outputs}; ``None`` once a cell failed.
_runs: dict[str, dict[int, list] | None] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    if isinstance(item, IPyNbCell):
        _record(item, outcome.get_result())


def _record(cell: IPyNbCell, report: pytest.TestReport) -> None:
    notebook = cell.parent
    cells = _runs.setdefault(notebook.nodeid, {})
    if cells is None:
        return
    if report.failed or report.skipped:
        _runs[notebook.nodeid] = None
        return
    if report.when != "call":
        return
    cells[cell.cell_num] = cell.test_outputs
    codes = [c for c in notebook.nb.cells if c.cell_type == "code"]
    if cell.cell_num == len(codes) - 1 and len(cells) == len(codes):
        _keep(Path(str(notebook.fspath)), notebook.nb, cells)


def _keep(path: Path, nb: nbformat.NotebookNode, outputs: dict[int, list]) -> None:
    """Write ``nb`` with the outputs of its code cells (in order) into the site's cache."""
    ran = copy.deepcopy(nb)
    codes = [c for c in ran.cells if c.cell_type == "code"]
    for number, cell in enumerate(codes):
        cell.execution_count = number + 1
        cell.outputs = copy.deepcopy(outputs[number] or [])
        for out in cell.outputs:
            if out.output_type == "execute_result":
                out.execution_count = number + 1
    try:
        nbformat.validate(ran)
    except nbformat.ValidationError as exc:  # the site build executes it instead
        warnings.warn(f"{path.name}: nbval's run not kept for the site: {exc}", stacklevel=1)
        return
    keep(path, json.loads(nbformat.writes(ran)))
