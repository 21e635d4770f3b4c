"""A real Jupyter server on loopback and a real Chromium driven by Playwright.

One server process serves the three front ends that are tested (it is started once per
session): JupyterLab 4 (``/lab``), Notebook 7 (``/notebooks``) and Voilà (``/voila/render``,
Voilà's server extension, the same renderer ``make app`` starts standalone). Its data, config,
runtime and user-settings directories are temporary, so nothing of the user's Jupyter setup is
read or changed; it listens on 127.0.0.1 only, without a token, and pages may only talk to it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("OPTICAM_CHROMIUM", "/usr/bin/chromium")
#: Lab-only extensions that Voilà cannot host (they need JupyterLab's document registry)
VOILA_SKIP = ("@jupyter-notebook/lab-extension", "@voila-dashboards/jupyterlab-preview")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    root = notebook_dir.parent
    settings = root / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    port = _free_port()
    log_path = artifacts / "jupyterlab.log"
    env = dict(os.environ,
               JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
               JUPYTER_CONFIG_DIR=str(root / ".config"),
               JUPYTER_DATA_DIR=str(root / ".data"),
               JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"),
               IPYTHONDIR=str(root / ".ipython"),
               OPTICAM_QUIET="1")
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0", "--allow-root",
        f"--ServerApp.root_dir={root / 'notebooks'}",
        "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={root / '.settings'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabServerApp.extension_manager=readonly",
        "--JupyterNotebookApp.expose_app_in_browser=True",
        *(f"--VoilaConfiguration.extension_denylist={name}" for name in VOILA_SKIP),
        "--VoilaConfiguration.show_tracebacks=True",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2):  # loopback only
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make chromium` "
                    "(apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"],
        )
        try:
            yield b
        finally:
            b.close()


def new_page(browser, base: str, width: int = 1400, height: int = 1000):
    """A page in a fresh context that may only talk to ``base``; console errors are recorded."""
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.console_messages = []  # type: ignore[attr-defined]
    pg.on("console", lambda m: pg.console_messages.append((m.type, m.text)))
    pg.on("pageerror", lambda e: pg.console_messages.append(("pageerror", str(e))))

    def only_loopback(route):
        url = route.request.url
        if url.startswith(base) or url.startswith("data:") or url.startswith("blob:"):
            return route.continue_()
        return route.abort()

    pg.route("**/*", only_loopback)
    return pg


def save_failure(pg, artifacts: Path, name: str) -> None:
    """Screenshot and console log of a page whose test failed, under test-artifacts/."""
    try:
        pg.screenshot(path=str(artifacts / f"failure-{name}.png"))
    except Exception:  # noqa: BLE001 - the page may be gone; the log is still worth keeping
        pass
    (artifacts / f"console-{name}.txt").write_text(
        "\n".join(f"{t}: {x}" for t, x in pg.console_messages))


def shutdown_kernels(base: str) -> None:
    """Shut down every kernel of the server (a test's kernel must not keep the CPUs busy)."""
    with urllib.request.urlopen(f"{base}/api/kernels", timeout=10) as r:  # loopback only
        kernels = json.load(r)
    for k in kernels:
        req = urllib.request.Request(f"{base}/api/kernels/{k['id']}", method="DELETE")
        try:
            urllib.request.urlopen(req, timeout=30).close()
        except OSError:
            pass


@pytest.fixture()
def page(browser, lab_server: str, artifacts: Path, request: pytest.FixtureRequest):
    """A fresh page that may only talk to the loopback server; console errors are recorded."""
    pg = new_page(browser, lab_server)
    yield pg
    save_if_failed(request, pg, artifacts)
    pg.context.close()


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
