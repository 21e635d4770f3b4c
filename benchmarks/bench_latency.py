"""User-visible latency, as seen in a real browser: page open → photo, Run → first new map pixels.

Headless Chromium (Playwright) against a real JupyterLab and Voilà on 127.0.0.1, started the way
the browser tests start them (``tests/browser/servers.py``: one ``jupyter lab`` process with
Voilà's server extension, Jupyter's config, data, runtime, settings and IPython directories
isolated in a temporary folder, a temporary copy of ``notebooks/``). Two front ends:

* **the widget in JupyterLab**: ``01_quickstart.ipynb`` opened in a fresh page (a workspace of
  its own), its first code cell run as soon as the kernel is idle (what a user does on
  Shift+Enter; the rest of the notebook is not run, so nothing else competes for the CPU);
* **the Voilà app**: ``dashboard.ipynb`` at ``/voila/render/``.

Measured, each on the page's own clock (``performance.now()``: 0 is the start of navigation):

* **page open → photo on screen**: an init script, present before the page's first byte,
  checks every animation frame for a widget canvas (at least 120×90 px on screen, not the wide
  score plot) with drawn pixels, and records the first such frame. For JupyterLab also
  **run cell → photo** (from the moment the cell is run);
* **Run → first new map pixels**: after the first run has ended (or was stopped), one step of
  the Learning-rate slider (a setting not cached: the run is real, not a cached map), then a
  click on Run from inside the page; a probe reads the stage canvas every animation frame and
  records when its pixels first change (the iteration-0 map, drawn before the optimisation
  starts) and when they change next (the run's first refresh). The run is then stopped (its
  end is not measured) and the next repetition starts once the status line says so. A page's
  first Run is also reported apart (it is the slowest: it comes right after the page's first
  run).

Each front end: one warm-up page open (its page-open time is reported apart, as the first open
after the server started), then ``--repeats`` fresh pages (fresh kernels), each with ``--runs``
Runs. Medians with min–max. The machine's load (``uptime``) at the start and end, the CPU's ISA
and the date go into the report; numbers taken while other work shares the CPUs are slower
than on a quiet machine, and the report says so.

Run: ``make bench-latency`` (or ``python benchmarks/bench_latency.py [--repeats 3] [--runs 5]``);
writes ``benchmarks/results/latency.md``. Needs Chromium (``make chromium``) and Playwright.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common as C

BROWSER_TESTS = C.ROOT / "tests" / "browser"
if str(BROWSER_TESTS) not in sys.path:
    sys.path.insert(0, str(BROWSER_TESTS))

from pagetools import App, Widget, click_timed, install_probe, probe_changes, wait_for  # noqa: E402
from servers import jupyter_server, launch_chromium, new_page, shutdown_kernels  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "latency.md"
QUICKSTART, DASHBOARD = "01_quickstart.ipynb", "dashboard.ipynb"

#: Before the page loads: the first animation frame in which a widget's image canvas (on
#: screen, at least 120×90 px, not 2:1 wide like the score plot) holds drawn pixels.
FIRST_PHOTO_JS = """(() => {
  const seen = {photo: null};
  window.__opticamLatency = seen;
  const drawn = (c) => {
    const w = c.width, h = c.height;
    if (w < 120 || h < 90 || w >= 2 * h) return false;
    const r = c.getBoundingClientRect();
    if (r.width < 60 || r.height < 40 || r.bottom < 0 || r.top > innerHeight) return false;
    const ctx = c.getContext('2d');
    if (!ctx) return false;
    const d = ctx.getImageData(0, 0, w, h).data;
    for (let i = 3; i < d.length; i += 4 * 97) if (d[i] > 0) return true;
    return false;
  };
  const tick = () => {
    for (const c of document.querySelectorAll('canvas'))
      if (drawn(c)) { seen.photo = performance.now(); return; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();"""

#: Run the notebook's first code cell now; the page time at which it was asked.
RUN_FIRST_CELL_JS = """() => {
  const app = window.jupyterapp, nb = app.shell.currentWidget.content;
  nb.activeCellIndex = nb.widgets.findIndex((c) => c.model.type === 'code');
  const t = performance.now();
  app.commands.execute('notebook:run-cell');
  return t;
}"""


@dataclass
class FrontEnd:
    """What one front end gave: seconds per page open and per Run."""

    name: str
    key: str
    cold_open_s: float = float("nan")
    open_s: list[float] = field(default_factory=list)
    cell_s: list[float] = field(default_factory=list)
    run_s: list[float] = field(default_factory=list)
    refresh_s: list[float] = field(default_factory=list)
    first_run_s: list[float] = field(default_factory=list)


def uptime() -> str:
    """The ``uptime`` line (load averages), or the load averages alone."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average: {C.load_average()}"


def photo_time(page: Any, timeout: float = 420) -> float:
    """Seconds from the start of navigation to the first frame with the photo drawn."""
    ms = wait_for(lambda: page.evaluate("() => window.__opticamLatency.photo"), timeout,
                  "the photo on screen", interval=0.05)
    return ms / 1000.0


def settle(widget: Widget, timeout: float = 300) -> None:
    """Let the current run end: Stop it if it is still going, then wait for the status."""
    stop = widget.button("Stop")
    if not widget.run_finished() and stop.count() and stop.first.is_enabled():
        stop.first.click()
    wait_for(lambda: widget.run_finished() or "stopped at iteration" in widget.status_text(),
             timeout, "the run to end", describe=widget.status_text)
    time.sleep(0.5)


def run_to_pixels(page: Any, widget: Widget, timeout: float = 120) -> tuple[float, float]:
    """One Run with a new learning rate: seconds from the click to the first changed pixels,
    and to the next change (the run's first refresh; ``nan`` when none came)."""
    handle = widget.slider_handle("Learning rate").first
    before = widget.root.locator(".widget-slider", has_text="Learning rate").inner_text()
    handle.focus()
    page.keyboard.press("ArrowLeft")  # one step lower: a setting no run has cached
    wait_for(lambda: widget.root.locator(".widget-slider", has_text="Learning rate")
             .inner_text() != before, 10, "the learning rate to change")
    time.sleep(0.3)
    seen = len(probe_changes(page))
    clicked = click_timed(page, widget.button("Run").first.element_handle())
    first = wait_for(lambda: [t for t in probe_changes(page)[seen:] if t > clicked], timeout,
                     "the first new map pixels after Run", interval=0.02)[0]
    try:
        second = wait_for(lambda: [t for t in probe_changes(page)[seen:] if t > first], timeout,
                          "the run's first refresh", interval=0.02)[0]
    except AssertionError:
        second = math.nan
    return (first - clicked) / 1000.0, (second - clicked) / 1000.0


def measure_runs(page: Any, runs: int) -> list[tuple[float, float]]:
    """``runs`` times (Run → first new pixels, Run → next change) on a page whose widget is on
    screen."""
    widget = Widget.find(page, timeout=300)
    settle(widget)
    install_probe(widget.main_canvas())
    out = []
    for _ in range(runs):
        out.append(run_to_pixels(page, widget))
        settle(widget)
    return out


def open_lab(browser: Any, base: str, name: str) -> tuple[Any, float, float]:
    """Open the quickstart in a fresh page, run its first cell: (page, open → photo s,
    run cell → photo s)."""
    page = new_page(browser, base)
    page.add_init_script(FIRST_PHOTO_JS)
    app = App(page, base)
    app.open(f"lab/tree/{name}")  # a workspace of its own; waits for an idle kernel
    asked = page.evaluate(RUN_FIRST_CELL_JS)
    opened = photo_time(page)
    return page, opened, opened - asked / 1000.0


def open_voila(browser: Any, base: str, name: str) -> tuple[Any, float, float]:
    """Open the dashboard in Voilà in a fresh page: (page, open → photo s, nan)."""
    page = new_page(browser, base)
    page.add_init_script(FIRST_PHOTO_JS)
    page.goto(f"{base}/voila/render/{name}", wait_until="commit")
    return page, photo_time(page), float("nan")


def measure(browser: Any, base: str, folder: Path, front: FrontEnd, opener: Any,
            notebook: str, repeats: int, runs: int) -> FrontEnd:
    """A warm-up open, then ``repeats`` fresh pages with ``runs`` Runs each."""
    for i in range(repeats + 1):
        name = f"latency-{front.key}-{i}.ipynb"
        shutil.copyfile(C.ROOT / "notebooks" / notebook, folder / name)
        page, opened, cell = opener(browser, base, name)
        try:
            if i == 0:
                front.cold_open_s = opened
                continue
            front.open_s.append(opened)
            if not math.isnan(cell):
                front.cell_s.append(cell)
            times = measure_runs(page, runs)
            front.run_s += [first for first, _ in times]
            front.first_run_s.append(times[0][0])
            front.refresh_s += [nxt for _, nxt in times if not math.isnan(nxt)]
            print(f"  {front.name} #{i}: open → photo {opened:.2f} s, Run → pixels "
                  f"{', '.join(f'{a:.2f}/{b:.2f}' for a, b in times)} s", flush=True)
        finally:
            page.context.close()
            shutdown_kernels(base)
    return front


def seconds(values: list[float]) -> str:
    """``median s (min–max, n=N)``."""
    if not values:
        return "—"
    return (f"{C.median(values):.2f} s ({min(values):.2f}–{max(values):.2f}, "
            f"n={len(values)})")


def report(fronts: list[FrontEnd], start: str, end: str, versions: dict[str, str],
           elapsed: float, args: argparse.Namespace) -> str:
    """The markdown report."""
    cores = os.cpu_count() or 1
    loads = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    rows = [(f.name, seconds(f.open_s), seconds(f.cell_s), seconds(f.run_s),
             seconds(f.refresh_s), seconds(f.first_run_s), f"{f.cold_open_s:.2f} s")
            for f in fronts]
    shared = ("**Taken under load**: other work shared the CPUs (see the load averages "
              "above), so these times are slower than on a quiet machine; rerun on a quiet "
              "one before quoting them." if max(loads, _load(start)) > 0.5 * cores else
              "The machine was quiet (load below half the cores).")
    lines = [
        "# User-visible latency in the browser",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {C.cpu_model()}, {cores} cores; instruction set used: {C.cpu_isa()}",
        f"- load at start (`uptime`): `{start}`",
        f"- load at end (`uptime`): `{end}`",
        "- " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- {args.repeats} fresh pages per front end after one warm-up page, {args.runs} "
        f"Runs per page; benchmark wall time {elapsed / 60:.1f} min",
        "",
        shared,
        "",
        C.table(["front end", "page open → photo on screen", "run cell → photo",
                 "Run → first new map pixels", "Run → next map (first refresh)",
                 "a page's first Run → first new pixels", "first open after server start"],
                rows),
        "",
        "Medians (min–max, n). How each is measured: `benchmarks/bench_latency.py` (its "
        "docstring). JupyterLab: `01_quickstart.ipynb`, its first code cell run as soon as "
        "the kernel is idle (the page-open time includes JupyterLab's load and the kernel's "
        "start). Voilà: `dashboard.ipynb` (the notebook runs on the server before the page "
        "shows it). Run: one step lower on the Learning-rate slider (a setting not cached), "
        "then Run; the first changed pixel of the stage canvas (the photo's iteration-0 map, "
        "which the widget keeps and draws before the optimisation starts), then its next "
        "change (the run's first refresh of the map).",
        "",
        "Rerun: `make bench-latency`.",
        "",
    ]
    return "\n".join(lines)


def _load(line: str) -> float:
    try:
        return float(line.rsplit("load average:", 1)[1].split(",")[0])
    except (IndexError, ValueError):
        return 0.0


def versions(browser: Any) -> dict[str, str]:
    """Chromium, JupyterLab, Voilà and Playwright versions."""
    from importlib.metadata import version

    return {"Chromium": browser.version, "JupyterLab": version("jupyterlab"),
            "Voilà": version("voila"), "Playwright": version("playwright")}


def main(argv: list[str] | None = None) -> int:
    """Measure both front ends and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh pages per front end")
    parser.add_argument("--runs", type=int, default=5, help="Runs per page")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    t0, start = time.monotonic(), uptime()
    with tempfile.TemporaryDirectory(prefix="opticam-latency-") as tmp:
        root = Path(tmp)
        shutil.copytree(C.ROOT / "notebooks", root / "notebooks",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        with jupyter_server(root, root / "jupyterlab.log") as base, sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                fronts = [measure(browser, base, root / "notebooks", FrontEnd(name, key),
                                  opener, notebook, args.repeats, args.runs)
                          for name, key, opener, notebook in (
                              ("JupyterLab, quickstart widget", "lab", open_lab, QUICKSTART),
                              ("Voilà app, dashboard", "voila", open_voila, DASHBOARD))]
                found = versions(browser)
            finally:
                browser.close()
    text = report(fronts, start, uptime(), found, time.monotonic() - t0, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
