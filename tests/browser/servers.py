"""A real Jupyter server on loopback, a headless Chromium, and pages that may only talk to it.

Shared by the browser tests (``conftest.py``'s fixtures) and the browser latency benchmark
(``benchmarks/bench_latency.py``). One server process serves JupyterLab 4 (``/lab``),
Notebook 7 (``/notebooks``) and Voilà (``/voila/render``, Voilà's server extension, the same
renderer ``make app`` starts standalone). Its data, config, runtime, IPython and user-settings
directories live under the given root, so nothing of the user's Jupyter setup is read or
changed; it listens on 127.0.0.1 only, without a token.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("OPTICAM_CHROMIUM", "/usr/bin/chromium")
#: Lab-only extensions that Voilà cannot host (they need JupyterLab's document registry)
VOILA_SKIP = ("@jupyter-notebook/lab-extension", "@voila-dashboards/jupyterlab-preview")
#: Chromium's flags: headless on a shared machine, no network of its own.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_command(root: Path, port: int) -> list[str]:
    return [
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
        # each cell's output as soon as it has run: the app's photo while the model loads
        "--VoilaConfiguration.progressive_rendering=True",
    ]


def _wait_up(proc: subprocess.Popen, base: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited early:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status", timeout=2):  # loopback only
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}") from None
            time.sleep(0.5)


@contextmanager
def jupyter_server(root: Path, log_path: Path, timeout: float = 120) -> Iterator[str]:
    """Run JupyterLab on a free 127.0.0.1 port, serving ``root / "notebooks"``; yield its URL.

    Jupyter's runtime, config, data, settings, workspaces and IPython directories are made under
    ``root`` (isolated from the user's); the server's output goes to ``log_path``.
    """
    settings = root / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    port = free_port()
    env = dict(os.environ,
               JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
               JUPYTER_CONFIG_DIR=str(root / ".config"),
               JUPYTER_DATA_DIR=str(root / ".data"),
               JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"),
               IPYTHONDIR=str(root / ".ipython"),
               OPTICAM_QUIET="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(_server_command(root, port), stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(proc, base, log_path, timeout)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium (``OPTICAM_CHROMIUM``, default /usr/bin/chromium) from Playwright."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"Chromium not found at {CHROMIUM}: run `make chromium` "
                                "(apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=list(CHROMIUM_ARGS))


def new_page(browser: Any, base: str, width: int = 1400, height: int = 1000) -> Any:
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
