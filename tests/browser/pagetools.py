"""What the browser tests do on a page: find the widget's parts, read pixels, measure, check.

Front-end independent: the same widget DOM (ipywidgets 8 + ipycanvas) is found in JupyterLab,
Notebook 7 and Voilà; :class:`App` adds what JupyterLab and Notebook 7 share (``jupyterapp``).
"""

from __future__ import annotations

import io
import itertools
import os
import re
import time
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

#: Console errors mentioning these come from the widget front ends this package uses.
WIDGET_PACKAGES = ("jupyter-widgets", "ipycanvas", "jupyterlab-manager", "widgetsnbextension",
                   "opticam")
#: Text a widget output shows when its model cannot be found or loaded.
WIDGET_FAILURES = ("Error displaying widget", "model not found", "Failed to load model class")


def one_cell_notebook(folder, source: str, name: str) -> str:
    """Write a notebook of one code cell (a Python 3 kernel) into ``folder``; return its name."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source.strip())])
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nbformat.write(nb, folder / name)
    return name


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25, describe=None):
    """Poll ``predicate`` until it returns something truthy (or an array); return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if isinstance(value, np.ndarray) or value:
            return value
        time.sleep(interval)
    seen = f"; last seen: {describe()!r}" if describe is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")


def shot(locator) -> np.ndarray:
    """A screenshot of ``locator`` as float RGB (H, W, 3)."""
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"), dtype=float)


def colormap_fraction(pixels: np.ndarray, cmap: str = "jet", tol: float = 40.0) -> float:
    """Fraction of pixels within ``tol`` (RGB distance, 0-255) of some colour of ``cmap``."""
    lut = colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255.0
    flat = pixels.reshape(-1, 3)[::7]
    dist = np.sqrt(((flat[:, None, :] - lut[None, :, :]) ** 2).sum(-1)).min(1)
    return float((dist < tol).mean())


def widget_errors(page) -> list[str]:
    """Console errors of the page that come from the widget front ends."""
    return [text for kind, text in page.console_messages
            if kind in ("error", "pageerror") and any(p in text.lower() for p in WIDGET_PACKAGES)]


#: Runs axe-core on an element; resolves to the violations (id, impact, nodes' targets).
AXE_JS = """async (root) => {
    const r = await axe.run(root, {resultTypes: ['violations']});
    return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                   nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
}"""


def axe_violations(page, root) -> list[dict]:
    """axe-core's violations inside ``root`` (axe shipped offline by axe-playwright-python)."""
    import axe_playwright_python

    script = Path(axe_playwright_python.__file__).with_name("axe.min.js")
    page.add_script_tag(content=script.read_text())
    return root.evaluate(AXE_JS)


class Widget:
    """The OptiCAM widget's root box on a page, and its parts."""

    def __init__(self, root) -> None:
        self.root = root
        self.page = root.page

    @classmethod
    def find(cls, page, timeout: float = 120) -> Widget:
        """The first widget whose Run button is on the page."""
        root = page.locator(".widget-vbox", has=page.locator("button", has_text="Run")).filter(
            has=page.locator("canvas")).last
        root.wait_for(timeout=timeout * 1000)
        return cls(root)

    @property
    def status(self):
        """The status line: the first HTML widget among the root's own children."""
        return self.root.locator(":scope > .widget-html").first

    def status_text(self) -> str:
        loc = self.status
        return loc.inner_text() if loc.count() else ""

    def run_finished(self) -> bool:
        """The status line of a finished run says how it ended."""
        text = self.status_text()
        return "converged after" in text or re.search(r"· \d+ iterations ·", text) is not None

    def wait_finished(self, timeout: float = 120, what: str = "the run to finish") -> None:
        wait_for(self.run_finished, timeout, what, describe=self.status_text)

    def button(self, label: str):
        return self.root.locator("button", has_text=re.compile(f"^\\W*{label}$"))

    def click_toggle(self, label: str) -> None:
        self.root.locator(".widget-toggle-buttons button",
                          has_text=re.compile(f"^{label}$")).click()

    @property
    def class_select(self):
        label = self.page.locator(".widget-label", has_text=re.compile(r"^Class$"))
        return self.root.locator(".widget-dropdown", has=label).locator("select")

    def option_name(self, index: int) -> str:
        """The class name of the class selector's option ``index`` ("name — 12.3%")."""
        text = self.class_select.locator("option").nth(index).inner_text()
        return re.split(r"\s*\u2014", text)[0].replace("\xa0", " ").strip()

    def slider_handle(self, label: str):
        return self.root.locator(".widget-slider", has_text=label).locator(".noUi-handle")

    def iterations_scale(self):
        """The handle of the iterations' log-scale slider (named by its tooltip)."""
        return self.root.locator(".opticam-iterations-scale .noUi-handle")

    def main_canvas(self):
        """The largest canvas of the widget (the image stage, not the score plot)."""
        best, area = None, -1.0
        canvases = self.root.locator("canvas")
        for i in range(canvases.count()):
            c = canvases.nth(i)
            box = c.bounding_box()
            if box and box["width"] * box["height"] > area:
                best, area = c, box["width"] * box["height"]
        assert best is not None and area > 60 * 40, "no visible canvas in the widget"
        return best

    def plot_canvas(self):
        """The score plot: the widest visible canvas whose drawing is wider than tall 2:1."""
        canvases = self.root.locator("canvas")
        for i in range(canvases.count()):
            c = canvases.nth(i)
            size = c.evaluate("c => [c.width, c.height]")
            box = c.bounding_box()
            if box and box["width"] > 0 and size[0] >= 2 * size[1]:
                return c
        raise AssertionError("no score plot canvas in the widget")

    def canvas_changed(self, canvas, before: np.ndarray, threshold: float = 1.0):
        now = shot(canvas)
        return now if now.shape == before.shape and np.abs(now - before).mean() > threshold \
            else None


class App:
    """JupyterLab or Notebook 7 (both expose ``window.jupyterapp`` in these tests)."""

    _workspaces = itertools.count(1)

    def __init__(self, page, base: str) -> None:
        self.page = page
        self.base = base

    def open(self, url_path: str) -> None:
        """Open ``lab/tree/X`` (in a workspace of its own) or ``notebooks/X`` (Notebook 7).

        JupyterLab restores the tabs of its workspace: a page of another test would reopen
        that test's notebooks (and start their kernels) without a workspace of its own.
        """
        if url_path.startswith("lab/tree/"):
            name = f"test-{os.getpid()}-{next(App._workspaces)}"
            url_path = f"lab/workspaces/{name}/tree/{url_path[len('lab/tree/'):]}"
        self.page.goto(f"{self.base}/{url_path}")
        self.wait_kernel_idle()

    def wait_kernel_idle(self, timeout: float = 120) -> None:
        self.page.wait_for_function("() => window.jupyterapp !== undefined",
                                    timeout=timeout * 1000)
        self.page.wait_for_selector(".jp-Notebook >> visible=true", timeout=timeout * 1000)
        self.page.wait_for_function(
            """() => {
                const w = window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session &&
                          w.sessionContext.session.kernel;
                return k && k.status === 'idle';
            }""",
            timeout=timeout * 1000,
        )

    def command(self, name: str, args: dict | None = None) -> None:
        self.page.evaluate("([n, a]) => window.jupyterapp.commands.execute(n, a || {})",
                           [name, args])

    def add_cell_and_run(self, source: str) -> None:
        self.page.evaluate(
            """async (src) => {
                const app = window.jupyterapp;
                const nb = app.shell.currentWidget.content;
                nb.activeCellIndex = nb.widgets.length - 1;
                await app.commands.execute('notebook:insert-cell-below');
                nb.activeCell.model.sharedModel.setSource(src);
                await app.commands.execute('notebook:run-cell');
            }""",
            source,
        )

    def kernel_value(self, expr: str) -> str:
        """Evaluate ``expr`` in the notebook's kernel through a silent execute request."""
        return self.page.evaluate(
            """async (code) => {
                const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                const f = k.requestExecute({code: '', silent: true,
                                            user_expressions: {v: code}});
                const reply = await f.done;
                const v = reply.content.user_expressions.v;
                return v.status === 'ok' ? v.data['text/plain'] : 'error: ' + v.evalue;
            }""",
            expr,
        )

    def output_area(self, locator):
        """The output area (``.jp-OutputArea-output``) that holds ``locator``."""
        return locator.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class)"
                               ", ' '), ' jp-OutputArea-output ')][1]")

    def collapse_sidebars(self) -> None:
        self.page.evaluate("() => { const s = window.jupyterapp.shell;"
                           " s.collapseLeft(); s.collapseRight(); }")

    def save_and_shutdown(self) -> None:
        """Save the notebook, then shut its kernel down (what closing a session does)."""
        self.page.evaluate(
            """async () => {
                const panel = window.jupyterapp.shell.currentWidget;
                await panel.context.save();
                await panel.sessionContext.shutdown();
            }""")


# --------------------------------------------------------------------- measuring on a page

#: Installed in the page: watches a canvas every animation frame and records the times at
#: which its pixels changed (a strided checksum of the whole drawing).
PROBE_JS = """(canvas) => {
    const probe = {changes: [], clicks: [], running: true};
    const ctx = canvas.getContext('2d');
    const sum = () => {
        const w = canvas.width, h = canvas.height;
        if (!w || !h) return 0;
        const d = ctx.getImageData(0, 0, w, h).data;
        let s = 0;
        for (let i = 0; i < d.length; i += 4 * 7)
            s = (s * 31 + d[i] + 3 * d[i + 1] + 7 * d[i + 2]) % 1000000007;
        return s;
    };
    let last = sum();
    const tick = () => {
        if (!probe.running) return;
        const s = sum();
        if (s !== last) { probe.changes.push(performance.now()); last = s; }
        requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    window.__opticamProbe = probe;
}"""

#: Clicks a button and records the click time in the probe.
CLICK_JS = """(button) => {
    window.__opticamProbe.clicks.push(performance.now());
    button.click();
}"""


def install_probe(canvas) -> None:
    canvas.evaluate(PROBE_JS)


def probe_changes(page) -> list[float]:
    return page.evaluate("() => window.__opticamProbe.changes.slice()")


def click_timed(page, button) -> float:
    """Click ``button`` (an element handle) from inside the page; the click's page time."""
    button.evaluate(CLICK_JS)
    return page.evaluate("() => window.__opticamProbe.clicks.slice(-1)[0]")


# --------------------------------------------------------------------- colours

def _linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=float) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def luminance(rgb) -> np.ndarray:
    """WCAG relative luminance of sRGB colour(s) in 0-255, shape (..., 3)."""
    lin = _linear(np.asarray(rgb, dtype=float))
    return lin[..., 0] * 0.2126 + lin[..., 1] * 0.7152 + lin[..., 2] * 0.0722


def contrast(a, b) -> np.ndarray:
    """WCAG contrast ratio between colour(s) ``a`` and ``b`` (0-255 sRGB)."""
    la, lb = luminance(a), luminance(b)
    return (np.maximum(la, lb) + 0.05) / (np.minimum(la, lb) + 0.05)


_COLOUR_FUNCTIONS = """
    const parse = (s) => { const m = s.match(/rgba?\\(([^)]+)\\)/); if (!m) return [0, 0, 0, 0];
        const p = m[1].split(/[ ,\\/]+/).filter(x => x).map(Number);
        return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
    const background = (el) => {
        const layers = [];
        for (let e = el; e; e = e.parentElement) {
            const c = parse(getComputedStyle(e).backgroundColor);
            if (c[3] > 0) { layers.push(c); if (c[3] >= 0.999) break; }
        }
        let out = [255, 255, 255];
        for (const c of layers.reverse()) out = out.map((v, i) => v * (1 - c[3]) + c[i] * c[3]);
        return out;
    };
"""

#: The colour behind an element (its ancestors' backgrounds, alpha-blended, over white).
BACKGROUND_JS = "(el) => {" + _COLOUR_FUNCTIONS + "return background(el); }"

#: For every element of ``root`` that shows text of its own: its text, its colour and the
#: colour behind it (the first opaque-enough background among its ancestors, alpha-blended).
TEXT_COLOURS_JS = "(root) => {" + _COLOUR_FUNCTIONS + """
    const out = [];
    for (const el of root.querySelectorAll('*')) {
        const own = Array.from(el.childNodes).filter(n => n.nodeType === 3)
            .map(n => n.textContent.trim()).join(' ').trim();
        const field = el.tagName === 'SELECT' || el.tagName === 'INPUT';
        const inputText = field ? (el.value || '') : '';
        const text = own || inputText;
        if (!text) continue;
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) continue;
        const st = getComputedStyle(el);
        if (st.visibility === 'hidden' || st.display === 'none') continue;
        if (el.closest('[disabled], .mod-disabled, :disabled')) continue;  // WCAG: inactive
        const fg = parse(st.color), bg = background(el);
        const blended = fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
        out.push({text: text.slice(0, 40), tag: el.tagName,
                  cls: el.className.toString().slice(0, 60), fg: blended, bg: bg});
    }
    return out;
}"""


def text_contrasts(root) -> list[dict]:
    """Every visible, enabled text of ``root`` with its WCAG contrast to what is behind it."""
    rows = root.evaluate(TEXT_COLOURS_JS)
    for row in rows:
        row["contrast"] = float(contrast(row["fg"], row["bg"]))
    return rows


def canvas_background(canvas) -> list[float]:
    """The colour behind a canvas element (its first non-transparent ancestor background)."""
    return canvas.evaluate(BACKGROUND_JS)


def plot_label_contrast(canvas) -> float:
    """Best contrast between the score plot's y-axis numbers and what is behind them.

    The plot draws its tick numbers right-aligned in a left margin that holds nothing else; the
    canvas pixels there (alpha-composited over the page behind the canvas) are text or background.
    The text is its most contrasting pixel against the margin's most common colour.
    """
    width, height, data = canvas.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  return [c.width, c.height, Array.from(d)]; }""")
    rgba = np.asarray(data, dtype=float).reshape(height, width, 4)
    behind = np.asarray(canvas_background(canvas), dtype=float)
    a = rgba[..., 3:] / 255.0
    rgb = rgba[..., :3] * a + behind * (1.0 - a)
    margin = rgb[:, : int(width * 0.14)].reshape(-1, 3)
    colours, counts = np.unique(np.rint(margin), axis=0, return_counts=True)
    back = colours[counts.argmax()]
    return float(contrast(margin, back).max())


#: Elements whose text is cut (ellipsis or overflow) inside the widget.
CLIPPED_TEXT_JS = """(root) => {
    const out = [];
    const sel = 'label, .widget-label, .widget-label-basic, button, .widget-readout, ' +
                '.widget-html-content, .widget-toggle-button';
    for (const el of root.querySelectorAll(sel)) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || !el.textContent.trim()) continue;
        if (el.scrollWidth > el.clientWidth + 1)
            out.push(el.textContent.trim().slice(0, 40) +
                     ` (${el.scrollWidth} > ${el.clientWidth} px)`);
    }
    return out;
}"""

#: Parts of the widget that stick out of the output area (hidden or scrolled away).
OVERFLOW_JS = """([root, area]) => {
    const right = area.getBoundingClientRect().right + 1;
    const out = [];
    for (const el of [root, ...root.querySelectorAll('*')]) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) continue;
        const name = el.tagName + '.' + el.className.toString().split(' ').slice(-1)[0];
        if (r.right > right)
            out.push(`${name} right ${Math.round(r.right)} > ${Math.round(right)}`);
    }
    return out;
}"""


def clipped_texts(root) -> list[str]:
    return root.evaluate(CLIPPED_TEXT_JS)


def overflowing(root, area) -> list[str]:
    return root.page.evaluate(OVERFLOW_JS, [root.element_handle(), area.element_handle()])
