"""Point at what to explain, in a real Chromium (issue #28): in Voilà, a tiny segmentation net
and a tiny detector (trained in the notebook in seconds, tests/targetnets.py); a click on one
of two same-class squares, then on the other, changes the map on the main canvas; a click on
each detected box does too. An embedding model (``kind="embedding"``): no class list, and the
reference photo picked by the keyboard in the "Reference photo" strip changes the map; axe-core
finds no violation in the widget."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pagetools import Widget, axe_violations, one_cell_notebook, shot, wait_for, widget_errors
from targetnets import detection_scene, seeded, segmentation_scene

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

TESTS = Path(__file__).resolve().parents[1]
HEAD = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import torch
from opticam_widgets import OptiCAMWidget
from opticam_widgets.engine.targets import YoloDecoder
import targetnets as tn

IDENTITY = {{"size": None, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}}
"""
SEGMENTER = HEAD + """
with tn.seeded(5) as gen:
    img, _, boxes = tn.segmentation_scene(gen)
widget = OptiCAMWidget(tn.train_segmenter(), preprocess=IDENTITY, target_layer="block1",
                       max_size=240)
widget.controls.iterations.value = 25
widget.show(img)
"""
DETECTOR = HEAD + """
class DictDetector(torch.nn.Module):
    def __init__(self, raw):
        super().__init__()
        self.raw = raw

    def forward(self, x):
        return YoloDecoder()(self.raw(x))

with tn.seeded(9) as gen:
    img, boxes, classes = tn.detection_scene(gen)
widget = OptiCAMWidget(DictDetector(tn.train_detector()).eval(), preprocess=IDENTITY,
                       target_layer="raw.body.3", max_size=240)
widget.controls.iterations.value = 25
widget.show(img)
"""
EMBEDDER = HEAD + """
import tiny_dualencoder as td

torch.manual_seed(0)
net = td.TinyDualEncoder().visual.eval()  # a tiny embedder: photos -> (B, 16)
x, _, _ = td.scenes(3, seed=3, present=(1.0, 1.0))
widget = OptiCAMWidget(net, preprocess={"size": (td.SIZE, td.SIZE), "mean": (0.5,) * 3,
                                        "std": (0.25,) * 3}, kind="embedding", max_size=240)
widget.controls.iterations.value = 10
widget.show({"a.png": x[0], "b.png": x[1], "c.png": x[2]})
"""


def _centre(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _clicks_change_the_map(page, base: str, name: str, boxes: list) -> None:
    """Click object 0, then 1, then 0 again: each click after the first changes the map (the
    first may be the object the widget explains by default)."""
    page.goto(f"{base}/voila/render/{name}", wait_until="commit")
    widget = Widget.find(page, timeout=240)
    widget.wait_finished(120, "the first run")
    panel = widget.root.locator(".opticam-pointing canvas")
    panel.wait_for(timeout=30_000)
    live = widget.root.locator(".opticam-pointing .opticam-panel-live")
    scale = panel.bounding_box()["width"] / 32  # the scenes are 32 px
    main = widget.main_canvas()
    before = None
    for k in (0, 1, 0):
        x, y = _centre(boxes[k])
        panel.click(position={"x": x * scale, "y": y * scale})
        if before is None:
            wait_for(lambda: "Explaining" in live.inner_text(), 30, "the click said",
                     describe=live.inner_text)
            time.sleep(1.0)
        else:
            wait_for(lambda b=before: widget.canvas_changed(main, b, 0.5), 120,
                     f"the map of object {k} on screen", describe=widget.status_text)
        widget.wait_finished(120, f"the run of object {k}")
        time.sleep(0.5)
        before = shot(main)
    assert not widget_errors(page), widget_errors(page)


def test_click_a_segment_and_a_box_changes_the_map(kernel_page, lab_server, notebook_dir,
                                                   artifacts, request):
    with seeded(5) as gen:
        seg_boxes = segmentation_scene(gen)[2][:2]  # the two squares of class 1
    with seeded(9) as gen:
        det_boxes = detection_scene(gen)[1]
    page = kernel_page
    for source, name, boxes in ((SEGMENTER, "pointing-seg.ipynb", seg_boxes),
                                (DETECTOR, "pointing-det.ipynb", det_boxes)):
        one_cell_notebook(notebook_dir, source, name)
        _clicks_change_the_map(page, lab_server, name, boxes)


def test_pick_the_reference_photo_by_keyboard(kernel_page, lab_server, notebook_dir, artifacts,
                                              request):
    """kind="embedding": the class list is hidden; the "Reference photo" strip is one Tab stop
    (its first photo while none is chosen); → picks the next photo as the reference, and each
    pick changes the map; axe-core finds no violation."""
    name = one_cell_notebook(notebook_dir, EMBEDDER, "pointing-embedding.ipynb")
    page = kernel_page
    page.goto(f"{lab_server}/voila/render/{name}", wait_until="commit")
    widget = Widget.find(page, timeout=240)
    widget.wait_finished(120, "the first run")
    assert not widget.class_select.is_visible()
    group = widget.root.locator(".opticam-reference-strip [role=radiogroup]")
    group.wait_for(timeout=30_000)
    assert group.get_attribute("aria-label") == "Reference photo"
    buttons = group.locator("button")
    assert buttons.count() == 3
    assert [buttons.nth(i).get_attribute("tabindex") for i in range(3)] == ["0", "-1", "-1"]
    assert all(buttons.nth(i).get_attribute("aria-checked") == "false" for i in range(3))
    live = widget.root.locator(".opticam-pointing .opticam-panel-live")
    main = widget.main_canvas()
    time.sleep(0.5)
    before = shot(main)
    buttons.nth(0).focus()
    for k, photo in ((1, "b.png"), (2, "c.png")):
        page.keyboard.press("ArrowRight")
        wait_for(lambda p=photo: f"photo “{p}”" in live.inner_text(), 30,
                 f"{photo} picked", describe=live.inner_text)
        assert buttons.nth(k).get_attribute("aria-checked") == "true"
        assert page.evaluate("() => document.activeElement.getAttribute('aria-checked')"
                             ) == "true"
        wait_for(lambda b=before: widget.canvas_changed(main, b, 0.2), 120,
                 f"the map against {photo} on screen", describe=widget.status_text)
        widget.wait_finished(120, f"the run against {photo}")
        time.sleep(0.5)
        before = shot(main)
    violations = axe_violations(page, widget.root)
    (artifacts / "widget-embedding-axe.json").write_text(str(violations))
    assert violations == [], violations
    assert not widget_errors(page), widget_errors(page)
