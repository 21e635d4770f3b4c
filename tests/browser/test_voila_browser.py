"""The dashboard in Voilà, in a real Chromium: on screen soon after the kernel starts, refining
live, then class change, Stop, and a kernel that still answers (the widget runs again).

The time from opening the page to the first map is *measured* and written to
``test-artifacts/voila.json``; the test asserts what a user would see without a clock: the map
is on screen while the first run is still going, and changes as it refines. The app is for a
non-programmer: photos named by thumbnails, an Open photos… button, no developer text, and
axe-core finds no violation in it.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from conftest import fresh_copy
from pagetools import (
    WIDGET_FAILURES,
    Widget,
    axe_violations,
    clipped_texts,
    colormap_fraction,
    install_probe,
    probe_changes,
    shot,
    wait_for,
    widget_errors,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PAINTED_JS = """c => { const w = c.width, h = c.height; if (!w || !h) return false;
    const d = c.getContext('2d').getImageData(0, 0, w, h).data;
    for (let i = 3; i < d.length; i += 4 * 97) if (d[i] > 0) return true;
    return false; }"""


def test_voila_dashboard_refines_live_and_stays_interactive(kernel_page, lab_server, notebook_dir,
                                                           artifacts, request):
    name = fresh_copy(notebook_dir, "dashboard.ipynb", "voila-dashboard.ipynb")
    page = kernel_page
    _walk_through(page, f"{lab_server}/voila/render/{name}", artifacts)


def _walk_through(page, url: str, artifacts) -> None:
    t0 = time.monotonic()
    page.goto(url, wait_until="commit")
    # the photo first, under a progress line, while the next cell loads the model
    page.wait_for_selector("img[alt='photo: cat']", state="visible", timeout=120_000)
    photo_s = time.monotonic() - t0
    loading = page.get_by_text("Loading the model")
    assert loading.count() and loading.first.is_visible(), "the photo came without the progress"
    widget = Widget.find(page, timeout=180)
    assert not page.locator("img[alt='photo: cat']").count()  # the widget took its place
    stage = widget.main_canvas()
    wait_for(lambda: stage.evaluate(PAINTED_JS), 60, "the first map on the canvas",
             interval=0.05)
    shown_s = time.monotonic() - t0
    _for_a_non_programmer(page, widget)
    install_probe(stage)

    # --- it refines live: the map is on screen while the first run still goes, and changes
    live_statuses = []
    while not widget.run_finished():
        text = widget.status_text()
        if re.search(r"iteration \d+/", text):
            live_statuses.append(text)
        assert time.monotonic() - t0 < 180, "the first run did not finish"
        time.sleep(0.1)
    time.sleep(0.3)
    changes = probe_changes(page)
    (artifacts / "voila.json").write_text(json.dumps(
        {"page_open_to_photo_s": round(photo_s, 2), "page_open_to_first_map_s": round(shown_s, 2),
         "live_status_lines": len(live_statuses), "map_changes_during_first_run": len(changes)},
        indent=1))
    page.screenshot(path=str(artifacts / "voila.png"))
    assert live_statuses, "the page showed no run in progress: the run ended before the map"
    assert len(changes) >= 2, f"the map changed {len(changes)} times during the first run"
    body = page.inner_text("body")
    assert not any(bad in body for bad in WIDGET_FAILURES)
    assert clipped_texts(widget.root) == []
    assert not [t for t in DEVELOPER_TEXT if t in body], body[:400]

    # --- heatmap pixels: the map alone is made of colormap colours
    overlay = shot(stage)
    widget.click_toggle("saliency")
    saliency = wait_for(lambda: widget.canvas_changed(stage, overlay), 20, "the saliency view")
    assert colormap_fraction(saliency) > 0.9
    widget.click_toggle("overlay")
    overlay = wait_for(lambda: widget.canvas_changed(stage, saliency), 20, "the overlay view")

    # --- another class: its run starts at once and ends with a new map
    second = widget.option_name(1)
    widget.class_select.select_option(index=1)
    wait_for(lambda: second in widget.status_text() and widget.run_finished(), 120,
             f"the run for the second class ({second})", describe=widget.status_text)
    after = wait_for(lambda: widget.canvas_changed(stage, overlay), 30, "a new map")
    assert np.abs(after - overlay).mean() > 1.0

    # --- Stop a long run; the kernel still answers: the next Run finishes
    iterations = widget.iterations_scale()
    iterations.focus()
    page.keyboard.press("End")
    wait_for(lambda: "500 iterations" in widget.status_text(), 30,
             "the kernel to take 500 iterations", describe=widget.status_text)
    third = widget.option_name(2)
    widget.class_select.select_option(index=2)
    wait_for(lambda: third in widget.status_text()
             and re.search(r"iteration [1-9]\d*/500", widget.status_text()), 60,
             f"the long run for {third} to start", describe=widget.status_text)
    widget.button("Stop").click()
    wait_for(lambda: "stopped at iteration" in widget.status_text(), 30, "Stop to take effect",
             describe=widget.status_text)
    iterations.focus()
    page.keyboard.press("Home")
    wait_for(lambda: "1 iterations" in widget.status_text(), 30,
             "the kernel to take 1 iteration", describe=widget.status_text)
    widget.button("Run").click()
    wait_for(lambda: third in widget.status_text() and "1 iterations ·" in widget.status_text(),
             120, "a run after Stop (the kernel answers)", describe=widget.status_text)
    assert not widget_errors(page), widget_errors(page)


#: What no visitor of the app should read: code, commands, the notebook's machinery.
DEVELOPER_TEXT = ("make app", "widget.", "import ", "OptiCAMWidget", "()", "Traceback")


def _for_a_non_programmer(page, widget: Widget) -> None:
    """Named thumbnails, Open photos…, no developer text; axe-core: no violation."""
    names = [t.strip() for t in widget.root.locator(".opticam-thumb-name").all_inner_texts()]
    assert names == ["cat", "coffee", "astronaut", "rocket"]
    assert widget.root.locator(".opticam-thumb img").count() == 4
    assert widget.root.locator("[role='radiogroup'][aria-label='Images']").count() == 1
    assert widget.root.locator("button.opticam-open").is_visible()
    body = page.inner_text("body")
    assert not [t for t in DEVELOPER_TEXT if t in body], body[:400]
    violations = axe_violations(page, widget.root)
    assert violations == [], violations
