"""A real Jupyter server on loopback and a real Chromium driven by Playwright.

One server process serves the three front ends that are tested (it is started once per
session): JupyterLab 4 (``/lab``), Notebook 7 (``/notebooks``) and Voilà (``/voila/render``,
Voilà's server extension, the same renderer ``make app`` starts standalone). Its data, config,
runtime and user-settings directories are temporary, so nothing of the user's Jupyter setup is
read or changed; it listens on 127.0.0.1 only, without a token, and pages may only talk to it.
How the server, Chromium and pages are started: :mod:`servers` (the latency benchmark uses it
too).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import (  # noqa: F401 - new_page and shutdown_kernels: the tests import them here
    CHROMIUM,
    jupyter_server,
    launch_chromium,
    new_page,
    shutdown_kernels,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def notebook_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's root: a temporary copy of notebooks/ (tests may add their own copies)."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root / "notebooks"


def fresh_copy(notebook_dir: Path, name: str, as_name: str) -> str:
    """Copy a committed notebook under another name in the server's root; the new name."""
    shutil.copyfile(ROOT / "notebooks" / name, notebook_dir / as_name)
    return as_name


@pytest.fixture(scope="session")
def lab_server(notebook_dir: Path, artifacts: Path) -> Iterator[str]:
    """Start JupyterLab on a free 127.0.0.1 port, rooted in a temp copy of notebooks/."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # one server per xdist worker
    with jupyter_server(notebook_dir.parent, artifacts / f"jupyterlab{worker}.log") as base:
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make chromium` "
                    "(apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


def save_failure(pg, artifacts: Path, name: str) -> None:
    """Screenshot and console log of a page whose test failed, under test-artifacts/."""
    try:
        pg.screenshot(path=str(artifacts / f"failure-{name}.png"))
    except Exception:  # noqa: BLE001 - the page may be gone; the log is still worth keeping
        pass
    (artifacts / f"console-{name}.txt").write_text(
        "\n".join(f"{t}: {x}" for t, x in pg.console_messages))


@pytest.fixture()
def page(browser, lab_server: str, artifacts: Path, request: pytest.FixtureRequest):
    """A fresh page that may only talk to the loopback server; console errors are recorded."""
    pg = new_page(browser, lab_server)
    yield pg
    save_if_failed(request, pg, artifacts)
    pg.context.close()


@pytest.fixture()
def kernel_page(browser, lab_server: str, artifacts: Path, request: pytest.FixtureRequest):
    """A fresh page as ``page``, and after the test the server's kernels shut down too."""
    pg = new_page(browser, lab_server)
    try:
        yield pg
    finally:
        save_if_failed(request, pg, artifacts)
        pg.context.close()
        shutdown_kernels(lab_server)


def save_if_failed(request: pytest.FixtureRequest, page: Any, artifacts: Path) -> None:
    """After a test: keep the page's screenshot and console log if the test failed."""
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        save_failure(page, artifacts, request.node.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def open_dashboard(browser, base: str, notebook_dir: Path, as_name: str, url_prefix: str):
    """Open a fresh copy of the dashboard under ``url_prefix`` (``lab/tree`` or ``notebooks``),
    run it, wait for its first run; yield ``(app, widget)``, then close the page and kernels."""
    from pagetools import App, Widget

    name = fresh_copy(notebook_dir, "dashboard.ipynb", as_name)
    page = new_page(browser, base)
    app = App(page, base)
    app.open(f"{url_prefix}/{name}")
    app.command("notebook:run-all-cells")
    widget = Widget.find(page, timeout=180)
    widget.wait_finished(180, "the dashboard's first run")
    yield app, widget
    page.context.close()
    shutdown_kernels(base)
