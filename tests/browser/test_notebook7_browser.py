"""The dashboard notebook in Notebook 7, in a real Chromium: render, heatmap pixels, class
change, Stop, a kernel that still answers, and the saved notebook reopened without its kernel.
"""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pytest
from conftest import open_dashboard, save_if_failed
from pagetools import (
    WIDGET_FAILURES,
    clipped_texts,
    colormap_fraction,
    shot,
    wait_for,
    widget_errors,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def nb7(browser, lab_server, notebook_dir, artifacts):
    yield from open_dashboard(browser, lab_server, notebook_dir, "nb7-dashboard.ipynb", "notebooks")


@pytest.fixture(autouse=True)
def _keep_failure(request, nb7, artifacts):
    yield
    save_if_failed(request, nb7[0].page, artifacts)


def test_notebook7_widget_works(nb7, artifacts):
    app, widget = nb7
    page = app.page
    body = page.inner_text("body")
    assert not any(bad in body for bad in WIDGET_FAILURES)
    assert widget.class_select.locator("option").count() >= 2
    stage = widget.main_canvas()
    page.screenshot(path=str(artifacts / "notebook7.png"))

    # heatmap pixels: the overlay differs from the photo; the map alone is colormap colours
    overlay = shot(stage)
    widget.click_toggle("original")
    original = wait_for(lambda: widget.canvas_changed(stage, overlay), 20, "the original view")
    widget.click_toggle("saliency")
    saliency = wait_for(lambda: widget.canvas_changed(stage, original), 20, "the saliency view")
    assert colormap_fraction(saliency) > 0.9
    assert colormap_fraction(original) < 0.6
    widget.click_toggle("overlay")
    overlay = wait_for(lambda: widget.canvas_changed(stage, saliency), 20, "the overlay view")
    assert clipped_texts(widget.root) == []

    # another class + Run: a new map
    second = re.split(r"\s*\u2014", widget.class_select.locator("option").nth(1).inner_text())[0]
    second = second.replace("\xa0", " ").strip()
    widget.class_select.select_option(index=1)
    widget.button("Run").click()
    wait_for(lambda: second in widget.status_text() and widget.run_finished(), 120,
             f"the run for the second class ({second})", describe=widget.status_text)
    after = wait_for(lambda: widget.canvas_changed(stage, overlay), 20, "a new map")
    assert np.abs(after - overlay).mean() > 1.0

    # Stop during a long run; the kernel still answers a new cell
    app.add_cell_and_run("widget.controls.iterations.value = 500\n"
                         "widget.early_stop = False\nprint('ready', 6 * 7)")
    page.wait_for_selector("text=ready 42", timeout=60_000)
    widget.class_select.select_option(index=2)
    widget.button("Run").click()
    started = wait_for(lambda: re.search(r"iteration [1-9]\d*/500|stopped before it started",
                                         widget.status_text()), 60,
                       "the long run to start", describe=widget.status_text)
    if "before it started" in started.group(0):
        # seen once in CI (not reproduced here in 30 tries, nor kernel-side): the queued run
        # was cancelled before it started; the widget says so and Run starts it, as a user would
        jobs = app.kernel_value("__import__('opticam_widgets.support.jobs', "
                                "fromlist=['_']).running_jobs()")
        warnings.warn(f"the long run was stopped before it started: "
                      f"{widget.status_text()!r}; jobs {jobs}", stacklevel=1)
        widget.button("Run").click()
        wait_for(lambda: re.search(r"iteration [1-9]\d*/500", widget.status_text()), 60,
                 "the long run to start again", describe=widget.status_text)
    widget.button("Stop").click()
    wait_for(lambda: "stopped at iteration" in widget.status_text(), 20, "Stop to take effect",
             describe=widget.status_text)
    app.add_cell_and_run("print('kernel answers', 20 + 22)")
    page.wait_for_selector("text=kernel answers 42", timeout=60_000)
    assert not widget_errors(page), widget_errors(page)


def test_notebook7_reopened_notebook_shows_the_last_picture(nb7, artifacts):
    app, widget = nb7
    page = app.page
    if widget.button("Stop").is_enabled():
        widget.button("Stop").click()
    widget.click_toggle("saliency")  # a view change: the saved picture follows the screen
    time.sleep(2.0)
    screen = shot(widget.main_canvas())
    app.save_and_shutdown()
    page.reload()
    # the widget's own output (its model is gone) is hidden: wait for one that shows
    page.wait_for_selector(".jp-Notebook .jp-OutputArea-output >> visible=true",
                           timeout=90_000)
    picture = page.locator(".jp-OutputArea-output img >> visible=true").last
    picture.wait_for(state="visible", timeout=60_000)
    wait_for(lambda: (picture.bounding_box() or {}).get("width", 0) > 100, 30,
             "the saved picture to be displayed")
    page.locator("text=run the cell to use it live >> visible=true").first.wait_for(
        timeout=20_000)  # a caption, and no "Error displaying widget" on screen
    assert page.locator("text=Error displaying widget >> visible=true").count() == 0
    page.screenshot(path=str(artifacts / "notebook7-reopened.png"))
    from PIL import Image

    h, w = screen.shape[:2]
    saved = np.asarray(Image.fromarray(shot(picture).astype(np.uint8)).resize((w, h)),
                       dtype=float)
    diff = float(np.abs(saved - screen).mean())
    assert diff < 6.0, f"the saved picture differs from the last screen by {diff:.1f}/255"
