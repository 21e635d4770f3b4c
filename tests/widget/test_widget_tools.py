"""The widget's tools of #30: the iterations control, the image strip, "why A and not B", the
brush, and the app loader (photo first, model after). Headless, on a tiny CNN.
"""

from __future__ import annotations

import math
import threading
import time

import ipywidgets as w
import numpy as np
import pytest
import torch
from tinynets import SMALL, tiny_cnn

import opticam_widgets.evaluation.metrics as metrics_module
from opticam_widgets.evaluation.metrics import masked_probabilities
from opticam_widgets.widget import OptiCAMWidget
from opticam_widgets.widget.brush import brushed_probabilities, hide_top, stamp_segment
from opticam_widgets.widget.contrast import difference_map
from opticam_widgets.widget.launch import AppLoader, photo_html
from opticam_widgets.widget.steps import SCALE_STEPS
from opticam_widgets.widget.strip import THUMB_SIZE, thumbnail_src


def photo(h: int, w_: int, seed: int) -> torch.Tensor:
    return torch.rand(3, h, w_, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def widget():
    made = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False)
    made.set_images({"cat": photo(40, 48, 1), "dog": photo(30, 45, 2)}, run=False)
    made.controls.iterations.value = 4
    yield made
    made.close()


# ---------------------------------------------------------------------------- iterations


def test_iterations_are_typed_and_on_a_log_scale(widget):
    c = widget.controls
    assert isinstance(c.iterations, w.BoundedIntText)
    assert (c.iterations.min, c.iterations.max, c.iterations.description) == (1, 500,
                                                                               "Iterations")
    assert not c.iterations.continuous_update and not c.iterations_scale.continuous_update
    c.iterations.value = 37  # code sets an int: the slider follows, the run uses it
    assert round(c.iterations_scale.value) == 37
    widget.early_stop = False
    assert widget.run(blocking=True).iterations == 37
    assert c.iterations_scale.tooltip == "Iterations, log scale"  # its handle's name


def test_the_log_slider_walks_the_whole_range_by_keyboard_steps(widget):
    """Each ←/→ step is a fixed step of the exponent: from 1 to 500 in SCALE_STEPS presses,
    every press at most ×1.3, and no press is swallowed by rounding (the box moves on)."""
    c = widget.controls
    scale = c.iterations_scale
    c.iterations.value = 1
    seen = [c.iterations.value]
    exponent = math.log10(scale.value)
    for _ in range(SCALE_STEPS):
        exponent = min(scale.max, exponent + scale.step)  # what one ArrowRight sends
        scale.value = 10 ** exponent
        seen.append(c.iterations.value)
    assert seen[-1] == 500
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    assert all(b <= math.ceil(a * 1.3) + 1 for a, b in zip(seen, seen[1:])), seen
    assert len(set(seen)) >= 20, seen
    # a sixth of the slider (a 28-px drag on its 170 px) from 100 lands near 100, not at 1
    scale.value = 10 ** (2 - math.log10(500) / 6)
    assert 30 <= c.iterations.value <= 50


# ---------------------------------------------------------------------------- image strip


def test_the_strip_names_and_shows_each_photo_and_steps_with_the_selector(widget):
    c = widget.controls
    strip = c.image_strip
    assert [item["name"] for item in strip.items] == ["cat", "dog"]
    assert strip.layout.display == "" and c.image_select.layout.display == "none"
    for item in strip.items:
        assert item["src"].startswith("data:image/jpeg;base64,")
    strip.index = 1  # a click or → in the browser
    widget.wait(60)
    assert widget.image_index == 1 and c.image_select.value == 1
    widget.select_image(0)
    assert strip.index == 0
    widget.set_images(photo(20, 20, 3), run=False)
    assert strip.layout.display == "none"  # one photo: no strip


def test_thumbnails_are_small():
    from base64 import b64decode
    from io import BytesIO

    from PIL import Image

    src = thumbnail_src(np.full((400, 1000, 3), 200, np.uint8))
    with Image.open(BytesIO(b64decode(src.split(",", 1)[1]))) as im:
        assert max(im.size) == THUMB_SIZE and im.size[1] == round(THUMB_SIZE * 0.4)


# ---------------------------------------------------------------------------- why A and not B


def test_why_a_and_not_b_shows_both_maps_their_difference_and_metrics(widget):
    panel = widget._parts.contrast
    first = widget.run(blocking=True)  # A's map is in the widget's cache: reused
    a, b = panel.class_a.value, panel.class_b.value
    assert a == widget.target and b != a
    assert [v for _, v in panel.class_a.options] == widget.images[0].classes
    calls = []
    inner = widget.cam.explain

    def spy(image, target, **kwargs):
        calls.append(list(target))
        return inner(image, target, **kwargs)

    widget.cam.explain = spy
    panel.toggle.value = True
    assert panel.panel.layout.display == ""
    panel.explain(blocking=True)
    assert calls == [[b]]  # only B was optimized
    names = widget.labels
    titles = [t.value for t in panel.titles]
    assert names[a] in titles[0] and names[b] in titles[1] and "−" in titles[2]
    size = panel.canvases[0].size
    map_a = first.saliency_at(size)[0].numpy()
    np.testing.assert_allclose(panel.canvases[0].saliency, map_a, atol=1e-5)
    expected = difference_map(panel.canvases[0].saliency, panel.canvases[1].saliency)
    np.testing.assert_allclose(panel.canvases[2].saliency, expected, atol=1e-5)
    assert panel.canvases[2].cmap == "RdBu_r"
    table = panel.table.value
    assert f"map of {names[a]}" in table and f"map of {names[b]}" in table
    assert table.count("%</td>") == 4  # AD and AG of each map
    assert f"{widget.metrics['AD']:.1f}%" in table  # A's metrics are the widget's own
    panel.class_b.value = a
    panel.explain(blocking=True)
    assert "two different classes" in panel.status.value


def test_difference_map_is_centred():
    a, b = np.array([[1.0, 0.2, 0.0]]), np.array([[0.0, 0.2, 1.0]])
    np.testing.assert_allclose(difference_map(a, b), [[1.0, 0.5, 0.0]])


# ---------------------------------------------------------------------------- brush


def test_stamp_and_hide_top_are_exact():
    keep = np.ones((7, 7), np.float32)
    stamp_segment(keep, 3.0, 3.0, 3.0, 3.0, 2.0)  # a dot: the pixels within 2 of the centre
    ys, xs = np.mgrid[:7, :7]
    np.testing.assert_array_equal(keep == 0, (ys - 3) ** 2 + (xs - 3) ** 2 <= 4)
    saliency = np.arange(100, dtype=np.float32).reshape(10, 10) / 99
    for fraction in (0.1, 0.2, 0.5):
        kept = hide_top(saliency, fraction)
        assert kept.sum() == 100 - round(100 * fraction)
        assert saliency[kept == 0].min() > saliency[kept == 1].max()


def test_brushed_probabilities_use_the_evaluation_helper(widget, monkeypatch):
    state = widget.images[0]
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[3])  # the classes, one per map
        return masked_probabilities(*args, **kwargs)

    monkeypatch.setattr(metrics_module, "masked_probabilities", spy)
    classes = state.classes
    whole = np.ones((20, 24), np.float32)
    before, after = brushed_probabilities(widget.cam, state.pixels, whole, classes)
    assert calls == [classes]
    np.testing.assert_allclose(before, state.probs[classes], atol=1e-5)
    np.testing.assert_allclose(after, before, atol=1e-6)  # nothing brushed: no change
    _, black = brushed_probabilities(widget.cam, state.pixels, np.zeros((5, 5)), classes)
    direct = widget.cam.predict(torch.zeros(3, 40, 48))[0].double().numpy()
    np.testing.assert_allclose(black, direct[classes], atol=1e-5)  # all filled: a black photo


def test_brush_panel_paints_hides_and_resets(widget):
    brush = widget._parts.brush
    widget.run(blocking=True)
    state = widget.images[0]
    brush.toggle.value = True
    assert brush.panel.layout.display == "" and brush.keep.min() == 1.0
    assert "the whole photo" in brush.text.value
    assert f"{state.probs[state.target]:.1%} → {state.probs[state.target]:.1%}" in \
        brush.text.value
    brush.hide[1].click()  # "Hide top 20%" of the map on screen
    widget.wait(60)
    assert brush.keep.mean() == pytest.approx(0.8, abs=0.002)
    assert "20% of the photo filled" in brush.text.value
    _, after = brushed_probabilities(widget.cam, state.pixels, brush.keep, state.classes)
    assert f"→ {after[0]:.1%}" in brush.text.value
    brush.reset.click()
    assert brush.keep.min() == 1.0 and "the whole photo" in brush.text.value
    h, w_ = brush.keep.shape
    brush.canvas._handle_frontend_event(None, {"event": "mouse_down", "x": 2, "y": h / 2}, [])
    brush.canvas._handle_frontend_event(None, {"event": "mouse_move", "x": w_ - 2,
                                               "y": h / 2}, [])
    brush.canvas._handle_frontend_event(None, {"event": "mouse_up", "x": w_ - 2, "y": h / 2},
                                        [])
    widget.wait(60)
    painted = 1.0 - brush.keep.mean()
    band = brush.size.value / h
    assert band * 0.8 < painted < band * 1.3  # a horizontal band, brush-size tall
    assert brush.keep[h // 2].max() == 0.0 and brush.keep[0].min() == 1.0
    assert "of the photo filled" in brush.text.value
    widget.controls.image_strip.index = 1  # another photo: the brush starts again on it
    widget.wait(60)
    assert brush.keep.min() == 1.0 and brush.keep.shape != (h, w_)


def test_a_finger_paints_like_the_mouse(widget):
    """Touch screens (#30): a finger's stroke fills a band as a mouse drag does."""
    brush = widget._parts.brush
    brush.toggle.value = True
    widget.wait(60)
    h, w_ = brush.keep.shape
    send = brush.canvas._handle_frontend_event
    send(None, {"event": "touch_start", "touches": [{"x": w_ / 2, "y": 2}]}, [])
    send(None, {"event": "touch_move", "touches": [{"x": w_ / 2, "y": h - 2},
                                                   {"x": 1, "y": 1}]}, [])  # 2nd finger ignored
    send(None, {"event": "touch_end", "touches": []}, [])  # the lifted finger: no position
    widget.wait(60)
    painted = 1.0 - brush.keep.mean()
    band = brush.size.value / w_
    assert band * 0.8 < painted < band * 1.3  # a vertical band, brush-size wide
    assert brush.keep[:, w_ // 2].max() == 0.0 and brush.keep[:, 0].min() == 1.0
    assert brush._last is None  # the stroke ended
    brush.reset.click()


def test_a_run_queued_after_a_brush_job_leaves_the_brush_answered(widget):
    """A new run cancels the worker's jobs: a brush job waiting then is queued again."""
    brush = widget._parts.brush
    brush.toggle.value = True
    gate = threading.Event()
    widget._parts.runner.worker.submit(lambda cancel: gate.wait(30), "hold")
    brush.keep[:] = 0.0
    brush.request()
    assert "when the run ends" in brush.text.value
    widget.run()  # cancels every job queued, the brush's too
    gate.set()
    deadline = time.monotonic() + 60
    while "100% of the photo filled" not in brush.text.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "100% of the photo filled" in brush.text.value
    widget.wait(60)
    assert widget.result is not None and not widget.result.cancelled


# ---------------------------------------------------------------------------- app loader


def test_app_loader_shows_the_photo_then_the_widget():
    gate = threading.Event()

    def load():
        gate.wait(30)
        made = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False)
        made.controls.iterations.value = 3
        for layer in range(2):  # a page holds the models as soon as the kernel makes them
            made.canvas.canvas[layer]._handle_frontend_event(None, {"event": "client_ready"}, [])
        return made

    photos = {"cat": (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8),
              "dog": (np.random.default_rng(1).random((20, 20, 3)) * 255).astype(np.uint8)}
    app = AppLoader(photos, load)
    try:
        html = app.box.children[1].value
        assert "<img alt='photo: cat'" in html  # on screen before the model is loaded
        assert "Loading the model" in app.stage.value and app.widget is None
        gate.set()
        widget = app.wait(60)
        assert app.box.children == (widget.widget,)
        assert [item["name"] for item in widget.controls.image_strip.items] == ["cat", "dog"]
        widget.wait(60)  # the page was there: the first photo is explained at once
        assert widget.explain_count == 1 and widget.result.target == (widget.target,)
    finally:
        gate.set()
        if app.widget is not None:
            app.widget.close()


def test_app_loader_explains_when_a_page_shows_the_widget():
    cat = (np.random.default_rng(2).random((16, 16, 3)) * 255).astype(np.uint8)
    app = AppLoader({"cat": cat},
                    lambda: OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False))
    widget = app.wait(60)
    try:
        widget.controls.iterations.value = 3
        assert widget.explain_count == 0  # no page yet: nothing to refine on screen
        widget.canvas.canvas[1]._handle_frontend_event(None, {"event": "client_ready"}, [])
        widget.wait(60)
        assert widget.explain_count == 1 and widget.result is not None
    finally:
        widget.close()


def test_app_loader_loads_here_in_the_callers_thread():
    """The app notebook's way: the loader shown in one cell, ``load_here()`` in the next."""
    seen = {}

    def load():
        seen["thread"] = threading.current_thread()
        return OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False)

    cat = (np.random.default_rng(3).random((16, 16, 3)) * 255).astype(np.uint8)
    app = AppLoader({"cat": cat}, load, start=False)
    assert "<img alt='photo: cat'" in app.box.children[1].value and app.widget is None
    widget = app.load_here()
    try:
        assert seen["thread"] is threading.current_thread()
        assert app.box.children == (widget.widget,) and app.load_here() is widget  # once
    finally:
        widget.close()
    failing = AppLoader(cat, lambda: 1 / 0, start=False)
    with pytest.raises(ZeroDivisionError):
        failing.load_here()
    assert "could not start" in failing.stage.value


def test_app_loader_says_why_it_could_not_start():
    def load():
        raise OSError("no weights file")

    app = AppLoader(np.zeros((8, 8, 3), np.uint8), load)
    with pytest.raises(OSError, match="no weights"):
        app.wait(30)
    assert "could not start (loading the model" in app.stage.value
    assert "no weights file" in app.stage.value


def test_photo_html_scales_a_big_photo_down():
    html = photo_html(np.zeros((1000, 2000, 3), np.uint8), "big <one>")
    assert "width='448' height='224'" in html and "photo: big &lt;one&gt;" in html
