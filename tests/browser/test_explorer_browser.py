"""OptiCAMExplorer in a real JupyterLab, in a real Chromium: filter, click, live heatmap pixels.

The kernel builds a 32-image store (the 8 sample photos, crops and flips, in ImageFolder class
folders of which some are deliberately wrong) with explain_dataset at 3 iterations, and shows
an explorer with the default model. The test filters to wrong predictions with the explorer's
own toggle, checks the grid shows exactly those (marked ✗), clicks a thumbnail, and reads the
embedded live widget's canvas: a map drawn in colormap colours. Then the confusion matrix: a
click on a cell (and Enter on another, reached with Tab and the arrows) keeps that cell's rows
in the grid, Show all cells resets it. It saves docs/explorer.png.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import new_page, save_if_failed, shutdown_kernels
from pagetools import App, Widget, colormap_fraction, shot, wait_for, widget_errors

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]  # a hang detector (a 2-core CI)

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOTEBOOK = "explorer_browser_test.ipynb"

BUILD = """
import tempfile
from pathlib import Path
from PIL import Image
from opticam_widgets import OptiCAMExplorer, explain_dataset, load_default_model
from opticam_widgets.model.zoo import sample_images

# class folders: some right for the model, some deliberately wrong (coins are no tabby)
FOLDERS = {"chelsea": "tabby", "coffee": "espresso", "camera": "tripod", "astronaut": "espresso",
           "rocket": "missile", "motorcycle": "moped", "coins": "tabby", "clock": "wall_clock"}
root = Path(tempfile.mkdtemp(prefix="opticam-explorer-"))
for name, img in sample_images().items():
    folder = root / "photos" / FOLDERS[name]
    folder.mkdir(parents=True, exist_ok=True)
    w, h = img.size
    crop = img.crop((w // 5, h // 5, w - w // 5, h - h // 5))
    flip = Image.Transpose.FLIP_LEFT_RIGHT
    img.save(folder / f"{name}.png")
    crop.save(folder / f"{name}_crop.png")
    img.transpose(flip).save(folder / f"{name}_flip.jpg")
    crop.transpose(flip).save(folder / f"{name}_crop_flip.jpg")
bundle = load_default_model()
results = explain_dataset(bundle, root / "photos", root / "store", max_iter=3, batch_size=8,
                          num_workers=0, progress=False)
wrong = int((results.table["correct"] == False).sum())
print("store ready", len(results.table), "rows,", wrong, "wrong")
"""

SHOW = """
explorer = OptiCAMExplorer(results, model=bundle, page_size=24).show()
"""


def _notebook() -> dict:
    cells = [{"cell_type": "code", "metadata": {}, "source": src.strip(), "outputs": [],
              "execution_count": None} for src in (BUILD, SHOW)]
    return {"type": "notebook", "format": "json", "content": {
        "cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                     "display_name": "Python 3 (ipykernel)"}},
        "nbformat": 4, "nbformat_minor": 5}}


def _put_notebook(base: str) -> None:
    req = urllib.request.Request(f"{base}/api/contents/{NOTEBOOK}", method="PUT",
                                 data=json.dumps(_notebook()).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).close()  # loopback only


@pytest.fixture()
def lab(browser, lab_server, artifacts, request):
    _put_notebook(lab_server)
    page = new_page(browser, lab_server, width=1280, height=1000)
    app = App(page, lab_server)
    yield app
    save_if_failed(request, page, artifacts)
    page.context.close()
    shutdown_kernels(lab_server)


def _visible_tiles(root):
    tiles = root.locator(".opticam-explorer-tile")
    return [tiles.nth(i) for i in range(tiles.count()) if tiles.nth(i).is_visible()]


def test_explorer_filters_wrong_and_opens_a_live_widget(lab, artifacts):
    page = lab.page
    lab.open(f"lab/tree/{NOTEBOOK}")
    lab.command("notebook:run-all-cells")
    page.wait_for_selector("text=store ready", timeout=420_000)
    wrong = int(re.search(r"(\d+) wrong", page.inner_text("body")).group(1))
    assert 0 < wrong < 32
    root = page.locator(".opticam-explorer").first
    root.wait_for(timeout=120_000)
    wait_for(lambda: len(_visible_tiles(root)) == 24, 60, "the first page of 24 tiles")
    first = shot(_visible_tiles(root)[0].locator("canvas"))
    assert first.std() > 10.0  # a drawn thumbnail, not a blank canvas

    # --- filter to wrong predictions with the explorer's own toggle
    root.locator(".widget-toggle-buttons button", has_text=re.compile("^wrong$")).click()
    wait_for(lambda: len(_visible_tiles(root)) == wrong, 60, f"{wrong} tiles of wrong rows",
             describe=lambda: len(_visible_tiles(root)))
    captions = [t.inner_text() for t in _visible_tiles(root)]
    assert all("✗" in c for c in captions), captions
    assert lab.kernel_value("len(explorer.selection)") == str(wrong)

    # --- click a thumbnail: the live widget opens beside the grid, in view, and draws
    _visible_tiles(root)[0].locator("canvas").click()
    widget = Widget.find(page, timeout=120)  # the embedded OptiCAMWidget
    widget.wait_finished(180, "the live run of the clicked row")
    stage = widget.main_canvas()
    assert _in_view(page, stage), "the detail is off screen after the click"
    grid_box = root.locator(".opticam-explorer-grid").bounding_box()
    if root.bounding_box()["width"] >= 760:  # room for both panes: the detail is beside
        assert stage.bounding_box()["x"] >= grid_box["x"] + grid_box["width"] - 1
    row = lab.kernel_value("explorer.detail.row")
    assert row == lab.kernel_value("int(explorer.selection.index[0])")
    stage = widget.main_canvas()
    overlay = shot(stage)
    widget.click_toggle("saliency")
    saliency = wait_for(lambda: widget.canvas_changed(stage, overlay), 30, "the saliency view")
    assert colormap_fraction(saliency) > 0.9  # the heatmap pixels are the colormap's
    widget.click_toggle("original")
    original = wait_for(lambda: widget.canvas_changed(stage, saliency), 30, "the photo view")
    assert colormap_fraction(original) < 0.6
    assert np.abs(overlay - original).mean() > 8.0
    widget.click_toggle("overlay")
    wait_for(lambda: widget.canvas_changed(stage, original), 30, "the overlay view")

    # --- the keyboard: tiles are named buttons; ←/→ move between them, Enter opens one
    buttons = root.locator(".opticam-tile-open")
    first_button = _visible_tiles(root)[0].locator(".opticam-tile-open")
    assert first_button.inner_text().strip() == lab.kernel_value(
        "str(explorer.selection.iloc[0]['id']).rsplit('/', 1)[-1]").strip("'")
    first_button.focus()
    page.keyboard.press("ArrowRight")
    focused = page.evaluate("() => document.activeElement.textContent.trim()")
    second_name = _visible_tiles(root)[1].locator(".opticam-tile-open").inner_text().strip()
    assert focused == second_name
    page.keyboard.press("Enter")
    wait_for(lambda: lab.kernel_value("explorer.detail.row")
             == lab.kernel_value("int(explorer.selection.index[1])"), 30, "Enter to open")
    assert buttons.count() == 24
    assert root.locator("canvas[tabindex='0']").count() == 0  # no canvas takes the focus

    _confusion_matrix_filters_the_grid(lab, root)
    # every control named (axe-core's naming rules); the whole report kept as an artifact
    import axe_playwright_python

    page.add_script_tag(content=Path(axe_playwright_python.__file__).with_name(
        "axe.min.js").read_text())
    matrix_violations = root.locator(".opticam-confusion").evaluate(
        "async (m) => (await axe.run(m, {resultTypes: ['violations']})).violations.map("
        "v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' '))}))")
    assert matrix_violations == [], matrix_violations  # the matrix: no violation at all
    violations = root.evaluate(
        "async (r) => (await axe.run(r, {resultTypes: ['violations']})).violations.map("
        "v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))")
    (artifacts / "explorer-axe.json").write_text(json.dumps(violations, indent=1))
    naming = {"button-name", "label", "select-name", "aria-input-field-name",
              "aria-toggle-field-name", "input-button-name", "link-name"}
    assert [v for v in violations if v["id"] in naming] == [], violations

    body = page.inner_text("body")
    assert not any(bad in body for bad in ("Error displaying widget", "model not found"))
    assert not widget_errors(page)
    # the README's picture: the whole explorer in view (a tall window, no file browser)
    try:
        lab.command("application:toggle-left-area")
    except Exception:  # noqa: BLE001 - a narrower picture is still a picture
        pass
    page.set_viewport_size({"width": 1280, "height": 2600})
    time.sleep(1.5)
    root.scroll_into_view_if_needed()
    DOCS.mkdir(exist_ok=True)
    root.screenshot(path=str(DOCS / "explorer.png"))
    page.screenshot(path=str(artifacts / "explorer-page.png"))


CELL_NAME = re.compile(r"true (.+), predicted (.+): (\d+) rows?")


def _cell(button) -> tuple[str, str, int]:
    """(true, predicted, rows) of a matrix cell, read from its accessible name."""
    found = CELL_NAME.fullmatch(button.get_attribute("aria-label"))
    assert found, button.get_attribute("aria-label")
    return found.group(1), found.group(2), int(found.group(3))


def _shows_only(root, true: str, predicted: str, rows: int) -> bool:
    """The grid shows ``rows`` tiles (at most a page), each of that true and predicted class."""
    captions = [t.inner_text() for t in _visible_tiles(root)]
    return len(captions) == min(rows, 24) and all(
        f"true: {true}" in c and predicted in c for c in captions)


def _confusion_matrix_filters_the_grid(lab, root) -> None:
    """Click a cell: the grid keeps its rows; Tab reaches the matrix, arrows + Enter choose
    another; Show all cells resets."""
    page = lab.page
    root.locator(".widget-toggle-buttons button", has_text=re.compile("^all$")).click()
    wait_for(lambda: len(_visible_tiles(root)) == 24, 60, "all rows again")
    matrix = root.locator(".opticam-confusion")
    labelled = lab.kernel_value("int(explorer.table['correct'].notna().sum())")
    assert f"over the {labelled} labelled rows" in matrix.locator("caption").inner_text()
    full = matrix.locator("button.opticam-cm-cell:not([aria-disabled='true'])")
    assert full.count() >= 2
    wrong = matrix.locator(
        "button.opticam-cm-cell:not(.opticam-cm-diagonal):not([aria-disabled='true'])").first
    true, predicted, rows = _cell(wrong)
    assert rows == int(wrong.inner_text()) and true != predicted
    wrong.click()
    wait_for(lambda: _shows_only(root, true, predicted, rows), 60,
             f"the grid filtered to true {true}, predicted {predicted}",
             describe=lambda: [t.inner_text() for t in _visible_tiles(root)])
    assert lab.kernel_value("explorer.query.cell") == repr((true, predicted))
    assert lab.kernel_value("len(explorer.selection)") == str(rows)
    assert wrong.get_attribute("aria-pressed") == "true"
    wait_for(lambda: "Grid filtered to true" in matrix.locator("[role=status]").inner_text(),
             30, "the polite status line")

    # --- the keyboard: one Tab stop (the chosen cell), then Show all cells; arrows + Enter
    root.locator(".widget-checkbox input").last.focus()  # "descending", just before
    page.keyboard.press("Tab")
    focused = "() => document.activeElement.getAttribute('aria-label') || " \
              "document.activeElement.textContent.trim()"
    assert page.evaluate(focused) == wrong.get_attribute("aria-label")
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "Show all cells"
    wrong.focus()
    at = (int(wrong.get_attribute("data-r")), int(wrong.get_attribute("data-c")))
    other = next(full.nth(i) for i in range(full.count())
                 if full.nth(i).get_attribute("aria-label") != wrong.get_attribute("aria-label"))
    to = (int(other.get_attribute("data-r")), int(other.get_attribute("data-c")))
    for key, steps in (("ArrowDown", to[0] - at[0]), ("ArrowUp", at[0] - to[0]),
                       ("ArrowRight", to[1] - at[1]), ("ArrowLeft", at[1] - to[1])):
        for _ in range(max(0, steps)):
            page.keyboard.press(key)
    assert page.evaluate(focused) == other.get_attribute("aria-label")
    page.keyboard.press("Enter")
    true2, predicted2, rows2 = _cell(other)
    wait_for(lambda: _shows_only(root, true2, predicted2, rows2), 60,
             f"Enter on true {true2}, predicted {predicted2}")
    assert lab.kernel_value("explorer.query.cell") == repr((true2, predicted2))

    # --- Show all cells: every row again
    matrix.locator(".opticam-cm-clear").click()
    wait_for(lambda: len(_visible_tiles(root)) == 24, 60, "every row after Show all cells")
    assert lab.kernel_value("explorer.query.cell") == "None"
    assert matrix.locator("[aria-pressed='true']").count() == 0


def _in_view(page, locator) -> bool:
    """Whether most of ``locator`` lies inside the window (what the user sees now)."""
    box = locator.bounding_box()
    size = page.viewport_size
    if not box:
        return False
    top, bottom = max(box["y"], 0), min(box["y"] + box["height"], size["height"])
    return bottom - top >= 0.5 * box["height"]
