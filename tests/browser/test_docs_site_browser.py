"""The documentation site in a real browser: built offline, served on 127.0.0.1, read by Chromium.

The site is built once for the module with ``mkdocs build --strict`` into a temporary folder
(the tutorials executed, or taken from ``.cache/docs-notebooks/`` when ``make docs`` ran
before), served by a static file server on loopback, and opened in a page that may load
nothing but that server: a font, script or image from anywhere else would be aborted and show
up as a console error. Three pages are read: the home page, a tutorial (an executed notebook)
and an API page (from the docstrings).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import new_page, save_failure

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Build the site (strict) and serve it on a free 127.0.0.1 port; the base URL.

    ``OPTICAM_DOCS_SITE=DIR`` serves a site already built there instead (``make docs``: site/).
    """
    given = os.environ.get("OPTICAM_DOCS_SITE")
    out = Path(given) if given else tmp_path_factory.mktemp("site")
    if not given:
        env = dict(os.environ, NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true",
                   OPTICAM_QUIET="1")
        build = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert build.returncode == 0, build.stderr[-4000:]
    assert (out / "index.html").exists(), f"no site in {out}"
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _read(browser, site: str, artifacts: Path, path: str, name: str) -> dict:
    """Open one page; what it shows (headings, images loaded, code blocks) and its errors."""
    pg = new_page(browser, site)
    try:
        response = pg.goto(site + path, wait_until="load")
        assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
        shown = pg.evaluate("""() => ({
            h1: [...document.querySelectorAll('article h1')]
                .map(h => h.textContent.replace('¶', '').trim()),
            h2: [...document.querySelectorAll('article h2')]
                .map(h => h.textContent.replace('¶', '').trim()),
            images: [...document.querySelectorAll('article img')]
                .filter(i => i.complete && i.naturalWidth > 0
                        && i.getBoundingClientRect().width > 0)
                .map(i => i.getAttribute('src')),
            broken: [...document.querySelectorAll('article img')]
                .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
            code: [...document.querySelectorAll(
                'article pre code, article .highlight pre, article .highlight-ipynb pre')]
                .filter(c => c.getBoundingClientRect().height > 0)
                .map(c => c.textContent),
        })""")
        shown["errors"] = [f"{kind}: {text}" for kind, text in pg.console_messages
                           if kind in ("error", "pageerror")]
        pg.screenshot(path=str(artifacts / f"docs-{name}.png"))
        return shown
    except BaseException:
        save_failure(pg, artifacts, f"docs-{name}")
        raise
    finally:
        pg.context.close()


def test_home_page(browser, site: str, artifacts: Path) -> None:
    shown = _read(browser, site, artifacts, "", "home")
    assert shown["h1"] == ["opticam-widgets"]
    assert {"Two commands", "The API in ten lines", "What you can explain",
            "Where it runs"} <= set(shown["h2"])
    assert any(src.endswith("widget.png") for src in shown["images"]), shown["images"]
    assert not shown["broken"], shown["broken"]
    # the API block comes from the README by inclusion, rendered as code
    assert any("OptiCAMWidget(bundle).show" in c for c in shown["code"])
    assert shown["errors"] == []


def test_tutorial_page(browser, site: str, artifacts: Path) -> None:
    shown = _read(browser, site, artifacts, "tutorials/01_quickstart/", "tutorial")
    assert len(shown["h1"]) == 1 and shown["h1"][0].startswith("Opti-CAM quickstart"), shown
    assert {"What the controls do", "Reading the result"} <= set(shown["h2"]), shown["h2"]
    # executed: the widget's saved picture (a PNG output) is on the page, and the code cells
    assert any(src.startswith("data:image/png") for src in shown["images"]), shown["images"]
    assert not shown["broken"], shown["broken"]
    assert any("OptiCAMWidget" in c for c in shown["code"])
    assert shown["errors"] == []


def test_api_page(browser, site: str, artifacts: Path) -> None:
    shown = _read(browser, site, artifacts, "reference/api/engine/", "api")
    assert shown["h1"] == ["The engine"]
    names = {h.split()[0] for h in shown["h2"] if h}  # "OptiCAMResult dataclass"
    assert {"OptiCAM", "OptiCAMResult", "OptiCAMProgress"} <= names, names
    # the signature and the docstring's example render as code
    assert any("def explain" in c or "explain(" in c for c in shown["code"])
    assert any("resnet18" in c for c in shown["code"])
    assert not shown["broken"], shown["broken"]
    assert shown["errors"] == []
    # an API page with a picture: the widget's, shown above its class
    shown = _read(browser, site, artifacts, "reference/api/widget/", "api-widget")
    assert shown["h1"] == ["The widget"]
    assert any(src.endswith("widget.png") for src in shown["images"]), shown["images"]
    assert not shown["broken"], shown["broken"]
    assert any("show(" in c for c in shown["code"])
    assert shown["errors"] == []
