"""The quickstart notebook in a real JupyterLab, in a real Chromium: the widget must work.

One test walks through the whole story (running the notebook once is the expensive part):
Run All live (the map refines on screen before the first run ends: no cell holds the kernel),
render, heatmap pixels, class change + Run, opacity, Stop, and a kernel that still answers.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from pagetools import (
    App,
    Widget,
    colormap_fraction,
    install_probe,
    probe_changes,
    shot,
    wait_for,
    widget_errors,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]


@pytest.fixture()
def lab(page, lab_server):
    return App(page, lab_server)


def test_quickstart_widget_in_jupyterlab(lab, page, artifacts):
    lab.open("lab/tree/01_quickstart.ipynb")
    t0 = time.monotonic()
    lab.command("notebook:run-all-cells")

    # --- Run All is live: the widget is on screen while its first run still goes, and the
    #     map changes on screen before the run ends (no cell below holds the kernel)
    first = page.locator(".widget-vbox", has=page.locator("button", has_text="Run")).filter(
        has=page.locator("canvas")).first  # the quickstart's widget (the gallery comes later)
    first.wait_for(timeout=240_000)
    widget = Widget(first)
    stage = widget.main_canvas()
    install_probe(stage)
    live = []
    while not widget.run_finished():
        if re.search(r"iteration \d+/", widget.status_text()):
            live.append(time.monotonic() - t0)
        assert time.monotonic() - t0 < 300, "the first run did not finish"
        time.sleep(0.1)
    changes = probe_changes(page)
    assert live, "Run All showed no run in progress: the widget appeared after the run ended"
    assert len(changes) >= 2, f"the map changed {len(changes)} times on screen during the run"
    page.wait_for_selector("text=explained class:", timeout=60_000)  # the checked cell ran

    # --- the widget renders: sliders, class selector, canvas; no widget errors
    root = page.locator(".jp-OutputArea-output .widget-vbox").first
    root.wait_for(timeout=60_000)
    assert root.locator(".widget-text", has_text="Iterations").count() == 1
    assert root.locator(".opticam-iterations-scale").count() == 1  # its log-scale slider
    assert root.locator(".widget-slider", has_text="Learning rate").count() == 1
    class_select = root.locator(".widget-dropdown", has_text="Class").locator("select")
    assert class_select.count() == 1
    assert class_select.locator("option").count() >= 2
    body = page.inner_text("body")
    for bad in ("Error displaying widget", "model not found", "Failed to load model class"):
        assert bad not in body
    canvases = root.locator("canvas")
    assert canvases.count() >= 2  # image + heatmap layers (plus the score plot)
    stage = _main_canvas(root)
    page.screenshot(path=str(artifacts / "quickstart-page.png"), full_page=False)
    root.screenshot(path=str(artifacts / "widget.png"))

    # --- the canvas shows the heatmap: overlay differs from the plain image; map-only view
    #     is made of colormap colours
    overlay = shot(stage)
    _click_toggle(root, "original")
    original = wait_for(lambda: _changed(stage, overlay), 20, "the original view")
    assert np.abs(overlay - original).mean() > 8.0
    _click_toggle(root, "saliency")
    saliency = wait_for(lambda: _changed(stage, original), 20, "the saliency view")
    assert colormap_fraction(saliency) > 0.9
    assert colormap_fraction(original) < 0.6
    _click_toggle(root, "overlay")
    overlay = wait_for(lambda: _changed(stage, saliency), 20, "the overlay view")

    # --- interaction: another class + Run changes the canvas; progress reaches the end
    # the status line (an HTML widget); a handle stays bound to the node as its text changes
    status = root.locator(".widget-html", has_text="unmasked").first.element_handle()
    options = class_select.locator("option")
    # option labels read "name — 12.3%" (the browser renders the spaces as no-break spaces)
    second = re.split(r"\s*\u2014", options.nth(1).inner_text())[0]
    second = second.replace("\xa0", " ").strip()
    class_select.select_option(index=1)
    root.locator("button", has_text="Run").click()
    def finished_second():
        return second in status.inner_text() and _run_finished(status)

    wait_for(finished_second, 120,
             f"the run for the second class ({second})", describe=status.inner_text)
    after = wait_for(lambda: _changed(stage, overlay), 20, "a new map")
    assert np.abs(after - overlay).mean() > 1.0
    bar = root.locator(".progress-bar").first
    wait_for(lambda: _bar_full(bar), 20, "a full progress bar")
    page.screenshot(path=str(artifacts / "after-class-change.png"))

    # --- opacity moves the canvas without a new run
    status_before = status.inner_text()
    runs_before = lab.kernel_value("widget.explain_count")
    handle = root.locator(".widget-slider", has_text="Opacity").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("End")  # opacity 1.0
    opaque = wait_for(lambda: _changed(stage, after), 20, "an opacity change")
    assert np.abs(opaque - after).mean() > 1.0
    time.sleep(0.5)
    assert status.inner_text() == status_before
    assert lab.kernel_value("widget.explain_count") == runs_before

    # --- Stop during a long run stops it; the kernel still answers a new cell
    lab.add_cell_and_run("widget.controls.iterations.value = 500\n"
                         "widget.early_stop = False\nprint('ready', 6 * 7)")
    page.wait_for_selector("text=ready 42", timeout=60_000)
    class_select.select_option(index=2)
    root.locator("button", has_text="Run").click()
    wait_for(lambda: re.search(r"iteration [1-9]\d*/500", status.inner_text()), 60,
             "the long run to start")
    root.locator("button", has_text="Stop").click()
    wait_for(lambda: "stopped at iteration" in status.inner_text(), 20, "Stop to take effect")
    lab.add_cell_and_run("print('kernel answers', 20 + 22)")
    page.wait_for_selector("text=kernel answers 42", timeout=60_000)
    page.screenshot(path=str(artifacts / "after-stop.png"))

    # --- no console errors from the widget packages
    assert not widget_errors(page), widget_errors(page)


def _main_canvas(root):
    """The largest canvas of the widget (the image stage, not the score plot)."""
    best, area = None, -1.0
    for i in range(root.locator("canvas").count()):
        c = root.locator("canvas").nth(i)
        box = c.bounding_box()
        if box and box["width"] * box["height"] > area:
            best, area = c, box["width"] * box["height"]
    assert best is not None and area > 100 * 100
    return best


def _click_toggle(root, label: str) -> None:
    root.locator(".widget-toggle-buttons button", has_text=re.compile(f"^{label}$")).click()


def _changed(locator, before: np.ndarray, threshold: float = 1.0):
    now = shot(locator)
    return now if now.shape == before.shape and np.abs(now - before).mean() > threshold else None


def _run_finished(status) -> bool:
    """The status line of a finished run says how it ended (see widget/messages.py)."""
    text = status.inner_text()
    return "converged after" in text or re.search(r"· \d+ iterations ·", text) is not None


def _bar_full(bar) -> bool:
    style = bar.get_attribute("style") or ""
    m = re.search(r"width:\s*([\d.]+)%", style)
    return bool(m) and float(m.group(1)) >= 99.9
