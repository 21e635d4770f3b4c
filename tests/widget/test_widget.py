"""Headless tests of OptiCAMWidget, driven through its public API and controls.

Runs are blocking or waited. Test hooks used (all public): ``widget.images`` (per-image
predictions), ``opticam_widgets.support.jobs.running_jobs()`` (background jobs),
``opticam_widgets.widget.display.get_shell`` (replaced to fake IPython),
``SaliencyCanvas.saliency`` (the map drawn).
"""

from __future__ import annotations

import base64
import io
import threading
import time

import ipywidgets as w
import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from tinynets import SMALL, tiny_cnn
from torch import nn

from opticam_widgets.display.render import COLORMAPS
from opticam_widgets.support.defaults import WIDGET_PATIENCE, WIDGET_TOL
from opticam_widgets.support.jobs import Worker, running_jobs
from opticam_widgets.widget import OptiCAMWidget, SaliencyCanvas
from opticam_widgets.widget.canvas import display_size


class Hooked(nn.Module):
    """Wraps a model; ``on_forward(n)`` is called before its n-th forward pass (n from 1)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.on_forward = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.on_forward is not None:
            self.on_forward(self.calls)
        return self.inner(x)


def image(h: int = 37, w_: int = 53, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, h, w_, generator=g)


class ExplainSpy:
    """Counts OptiCAM.explain calls on one widget (and keeps their keyword arguments)."""

    def __init__(self, widget: OptiCAMWidget) -> None:
        self.calls: list[dict] = []
        self._inner = widget.cam.explain
        widget.cam.explain = self

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self._inner(*args, **kwargs)


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def browser_ready(*canvases) -> None:
    """What a browser does when it creates a canvas model: the ``client_ready`` event."""
    for canvas in canvases:
        canvas._handle_frontend_event(None, {"event": "client_ready"}, [])


@pytest.fixture
def make_widget():
    made: list[OptiCAMWidget] = []

    def make(model=None, images=None, iterations=6, **kwargs):
        kwargs.setdefault("preprocess", SMALL)
        widget = OptiCAMWidget(model if model is not None else tiny_cnn(), **kwargs)
        browser_ready(widget.canvas.canvas[0], widget.canvas.canvas[1],
                      widget.controls.score_plot)  # as on a page
        made.append(widget)
        widget.set_images(images if images is not None else image(), run=False)
        widget.controls.iterations.value = iterations
        return widget

    yield make
    for widget in made:
        widget.close()


def all_widgets(root: w.Widget) -> list[w.Widget]:
    out = [root]
    for child in getattr(root, "children", ()):
        out.extend(all_widgets(child))
    return out


def html_values(widget: OptiCAMWidget) -> list[str]:
    return [x.value for x in all_widgets(widget.widget) if isinstance(x, w.HTML)]


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("opticam-widget")]


def optimizing() -> bool:
    """Whether an Opti-CAM job of any widget is running or queued."""
    return any(job.name == "opticam" for job in running_jobs())


# ---------------------------------------------------------------------------- construction


def test_controls_ranges_and_defaults(make_widget):
    widget = make_widget()
    c = widget.controls
    assert (c.iterations.min, c.iterations.max, c.iterations.value) == (1, 500, 6)
    assert isinstance(c.iterations, w.BoundedIntText) and isinstance(c.lr, w.FloatLogSlider)
    assert round(c.iterations_scale.value) == 6  # its log-scale slider follows it
    assert c.lr.base ** c.lr.min == pytest.approx(1e-3)
    assert c.lr.base ** c.lr.max == pytest.approx(1.0)
    assert c.lr.value == pytest.approx(0.2)
    assert not c.iterations.continuous_update and not c.lr.continuous_update
    assert c.convention.options == ("constructive", "destructive")
    assert tuple(c.colormap.options) == COLORMAPS and c.colormap.value == "jet"
    assert [v for _, v in c.view.options] == ["overlay", "saliency", "masked", "original"]
    assert c.compare.value is None
    assert [v for _, v in c.compare.options][1:] == [
        "channel-mean", "gradcam", "gradcam++", "scorecam", "pgc-gradcam", "pgc-gradcam++",
        "pgc-scorecam", "eigencam", "layercam", "finercam", "shapleycam"]  # the registry's
    assert ("pgc-scorecam (slow)", "pgc-scorecam") in c.compare.options
    assert isinstance(c.progress, w.IntProgress) and isinstance(c.class_search, w.Combobox)
    assert c.image_strip.layout.display == "none"  # one image: no strip
    assert c.stop_button.disabled and not widget.running
    # top-k: 4 classes (fewer than top_k=5), labels "class i" with probabilities, sorted
    probs = widget.images[0].probs
    assert [v for _, v in c.class_select.options] == list(np.argsort(-probs))
    label, value = c.class_select.options[0]
    assert label.startswith(f"class {value} — ") and label.endswith("%")
    assert c.class_select.value == int(np.argmax(probs))
    assert widget.labels == [f"class {i}" for i in range(4)]
    assert len(c.class_search.options) == 4
    # the drawing has a fixed pixel size at the image's aspect ratio; on screen it is that
    # wide at most, and scales down (the height following) in a narrower output
    assert widget.canvas.size == display_size(37, 53, 448) == (313, 448)
    assert widget.canvas.canvas.layout.width == "448px"
    assert widget.canvas.canvas.layout.max_width == "100%"
    assert widget.canvas.canvas.layout.height == "auto"
    assert widget.result is None and widget.saliency is None


def test_default_preprocess_note_and_imagenet_labels():
    from opticam_widgets.model.zoo import imagenet_labels

    widget = OptiCAMWidget(tiny_cnn(classes=1000), top_k=3)
    try:
        assert "ImageNet mean/std" in widget.controls.status.value
        widget.set_images(image(), run=False)
        assert widget.labels == imagenet_labels()
        assert len(widget.controls.class_select.options) == 3
        assert "ImageNet mean/std" in widget.controls.status.value  # the note stays
    finally:
        widget.close()


def test_bundle_carries_labels_and_preprocess():
    from opticam_widgets.inputs.preprocess import Preprocess
    from opticam_widgets.model.bundle import ModelBundle

    bundle = ModelBundle(tiny_cnn(3), preprocess=Preprocess(size=(24, 24)),
                         labels=["ant", "bee", "cow"], name="toy")
    widget = OptiCAMWidget(bundle)
    try:
        assert widget.cam.preprocess.size == (24, 24)
        assert "preprocess not given" not in widget.controls.status.value
        widget.set_images(image(), run=False)
        assert widget.labels == ["ant", "bee", "cow"] and "toy" in repr(widget)
        assert "ant (0)" in widget.controls.class_search.options
    finally:
        widget.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match="top_k"):
        OptiCAMWidget(tiny_cnn(), top_k=0)
    with pytest.raises(TypeError, match="labels"):
        OptiCAMWidget(tiny_cnn(), labels="abc")
    widget = OptiCAMWidget(tiny_cnn(), labels=["a", "b"], preprocess=SMALL)
    try:
        with pytest.raises(RuntimeError, match="no image"):
            widget.run(blocking=True)
        with pytest.raises(ValueError, match="2 names but the model has 4 outputs"):
            widget.set_images(image(), run=False)
    finally:
        widget.close()
    with pytest.raises(RuntimeError, match="closed"):
        widget.set_images(image())


# ---------------------------------------------------------------------------- running


def test_blocking_run_updates_result_progress_and_canvas(make_widget):
    widget = make_widget(iterations=8)
    sent: list[tuple[int, tuple]] = []
    for i in range(2):
        layer = widget.canvas.canvas[i]
        original = layer.put_image_data

        def spy(data, x=0, y=0, _i=i, _orig=original):
            sent.append((_i, np.asarray(data).shape))
            return _orig(data, x, y)

        layer.put_image_data = spy
    spy_explain = ExplainSpy(widget)
    result = widget.run(blocking=True)

    assert result is widget.result and not result.cancelled
    assert result.saliency.shape == (1, 37, 53)  # the image's own resolution
    assert result.target == (widget.target,)
    assert widget.saliency.shape == (37, 53) and widget.saliency.dtype == np.float32
    c = widget.controls
    assert c.progress.max == 8 and c.progress.value == 8
    assert "iterations" in c.status.value and widget.error is None and not widget.running
    assert c.stop_button.disabled
    assert "AD ↓" in c.metrics.value and "AG ↑" in c.metrics.value
    assert set(widget.metrics) >= {"AD", "AG"}
    assert f"<td>{widget.metrics['AD']:.1f}%</td>" in c.metrics.value
    assert len(c.score_plot.points) == result.scores.shape[1]
    # heatmap layer received RGBA arrays at half the canvas size (313 x 448), scaled up by the
    # canvas (step 0 + final at least); the export still composites at full size
    heat = [shape for layer, shape in sent if layer == 1]
    assert len(heat) >= 2 and all(s == (157, 224, 4) for s in heat)
    assert widget.canvas.to_array().shape == (313, 448, 3)
    # early stopping is on in the widget
    assert spy_explain.calls[0]["tol"] == WIDGET_TOL
    assert spy_explain.calls[0]["patience"] == WIDGET_PATIENCE
    assert spy_explain.calls[0]["max_iter"] == 8
    assert widget.explain_count == 1


def test_early_stop_can_be_switched_off(make_widget):
    widget = make_widget(iterations=4)
    spy = ExplainSpy(widget)
    widget.early_stop = False
    widget.run(blocking=True)
    assert spy.calls[-1]["tol"] is None
    widget.early_stop = True  # another cache key: runs again
    widget.run(blocking=True)
    assert spy.calls[-1]["tol"] == WIDGET_TOL and len(spy.calls) == 2


def test_iteration_zero_map_is_drawn_first(make_widget):
    widget = make_widget(iterations=5)
    seen = []
    original = widget.canvas.set_saliency

    def spy(saliency):
        result = widget.result
        seen.append((result.iterations, widget.metrics is None) if result is not None else None)
        return original(saliency)

    widget.canvas.set_saliency = spy
    widget.run(blocking=True)
    assert seen[0] == (0, True)  # the channel-mean map, from the step-0 callback (live)
    assert seen[-1] == (widget.result.iterations, False)  # the final map, with its metrics
    assert widget.result.iterations == 5


def test_class_selection_runs_and_cache_comes_back(make_widget):
    widget = make_widget()
    spy = ExplainSpy(widget)
    first = widget.run(blocking=True)
    top = [v for _, v in widget.controls.class_select.options]
    assert len(spy.calls) == 1

    widget.controls.class_select.value = top[1]  # starts a background run
    widget.wait(timeout=120)
    assert widget.result.target == (top[1],) and len(spy.calls) == 2

    widget.controls.class_select.value = top[0]  # cached: instant, no optimisation
    assert widget.result is first and len(spy.calls) == 2
    assert not optimizing() and not widget.running

    widget.run(blocking=True)  # Run on a cached key shows the cache too
    assert len(spy.calls) == 2
    widget.run(blocking=True, force=True)
    assert len(spy.calls) == 3


def test_sliders_do_not_start_runs_but_show_cache(make_widget):
    widget = make_widget(iterations=4)
    spy = ExplainSpy(widget)
    first = widget.run(blocking=True)
    widget.controls.iterations.value = 5
    widget.controls.lr.value = 0.5
    widget.controls.convention.value = "destructive"
    assert len(spy.calls) == 1 and not optimizing()
    assert "press <b>Run</b>" in widget.controls.status.value
    destructive = widget.run(blocking=True)
    assert destructive.convention == "destructive" and len(spy.calls) == 2
    assert widget.canvas.inverse
    widget.controls.convention.value = "constructive"
    widget.controls.lr.value = 0.2
    widget.controls.iterations.value = 4
    assert widget.result is first and len(spy.calls) == 2 and not widget.canvas.inverse


def test_search_selects_any_class(make_widget):
    widget = make_widget(model=tiny_cnn(classes=8), top_k=2)
    widget.run(blocking=True)
    options = [v for _, v in widget.controls.class_select.options]
    other = next(i for i in range(8) if i not in options)
    widget.controls.class_search.value = f"class {other} ({other})"
    widget.wait(timeout=120)
    assert widget.result.target == (other,)
    assert other in [v for _, v in widget.controls.class_select.options]
    widget.controls.class_search.value = "no such class"  # ignored
    assert widget.result.target == (other,)
    with pytest.raises(ValueError, match="class index"):
        widget.select_class(99)


def test_display_changes_never_call_the_explainer(make_widget):
    widget = make_widget()
    widget.run(blocking=True)
    spy = ExplainSpy(widget)
    drawn = widget.canvas.draw_count
    c = widget.controls
    c.opacity.value = 0.8
    c.colormap.value = "viridis"
    for view in ("saliency", "masked", "original", "overlay"):
        c.view.value = view
    assert spy.calls == [] and not optimizing()
    assert widget.canvas.draw_count > drawn
    assert widget.canvas.opacity == 0.8 and widget.canvas.cmap == "viridis"


def test_stop_from_inside_a_blocking_run(make_widget):
    model = Hooked(tiny_cnn())
    widget = make_widget(model=model, iterations=200)
    start = model.calls
    # forward 1 captures the features, forward 2 scores step 0, forward 2 + k scores step k
    model.on_forward = lambda n: widget.stop() if n - start == 2 + 3 else None
    result = widget.run(blocking=True)
    assert result.cancelled and result.iterations == 3
    assert widget.result is result and "stopped at iteration 3/200" in widget.controls.status.value
    assert widget.controls.progress.value == 3
    # the widget stays usable, and the cancelled map was not cached
    model.on_forward = None
    widget.controls.iterations.value = 5
    again = widget.run(blocking=True)
    assert not again.cancelled and again.iterations == 5


def test_stop_button_during_a_background_run(make_widget):
    model = Hooked(tiny_cnn())
    widget = make_widget(model=model, iterations=300)
    reached, gate = threading.Event(), threading.Event()
    start = model.calls

    def on_forward(n):
        if n - start == 2 + 4:  # scoring step 4
            reached.set()
            gate.wait(60)

    model.on_forward = on_forward
    assert widget.run() is None
    assert reached.wait(60), "the run did not start"
    assert widget.running and not widget.controls.stop_button.disabled
    widget.controls.run_button.click()  # same settings: the run goes on, no restart
    assert widget.explain_count == 1
    widget.controls.stop_button.click()
    gate.set()
    result = widget.wait(timeout=60)
    assert result.cancelled and result.iterations == 4  # within one iteration
    assert not widget.running and widget.controls.stop_button.disabled


def test_stop_while_a_new_run_waits_for_the_old_one(make_widget):
    """Run A is going; Run B (new settings) waits for A to end; Stop cancels both: B never
    starts. The widget then says so, and shows no result of other settings as B's."""
    model = Hooked(tiny_cnn())
    widget = make_widget(model=model, iterations=300)
    reached, gate = threading.Event(), threading.Event()
    start = model.calls

    def on_forward(n):
        if n - start == 2 + 4:  # A scores step 4
            reached.set()
            gate.wait(60)

    model.on_forward = on_forward
    widget.run()
    assert reached.wait(60), "run A did not start"
    widget.controls.lr.value = 0.05  # new settings: Run B is queued behind A
    widget.run()
    widget.stop()
    gate.set()
    widget.wait(timeout=60)
    status = widget.controls.status.value
    assert "stopped before it started" in status and "iteration 4/300" not in status
    assert widget.result is None and widget.explain_count == 1
    assert not widget.running and widget.controls.stop_button.disabled
    model.on_forward = None
    widget.controls.iterations.value = 3
    assert widget.run(blocking=True).iterations == 3  # usable again


def test_stop_while_a_baseline_waits_for_the_run(make_widget):
    """A baseline queued behind a run, cancelled by Stop before it started, says so (its
    caption kept "computing…" for ever)."""
    model = Hooked(tiny_cnn())
    widget = make_widget(model=model, iterations=300)
    reached, gate = threading.Event(), threading.Event()
    start = model.calls

    def on_forward(n):
        if n - start == 2 + 4:
            reached.set()
            gate.wait(60)

    model.on_forward = on_forward
    widget.run()
    assert reached.wait(60), "the run did not start"
    widget.controls.compare.value = "channel-mean"  # queued behind the run
    assert "computing channel-mean" in widget.compare.caption.value
    widget.stop()
    gate.set()
    widget.wait(timeout=60)
    assert "channel-mean: cancelled" in widget.compare.caption.value


def test_new_run_cancels_the_old_one(make_widget):
    model = Hooked(tiny_cnn())
    widget = make_widget(model=model, iterations=300)
    reached, gate = threading.Event(), threading.Event()
    start = model.calls

    def on_forward(n):
        if n - start == 3:
            reached.set()
            gate.wait(60)

    model.on_forward = on_forward
    widget.run()
    assert reached.wait(60)
    top = [v for _, v in widget.controls.class_select.options]
    widget.controls.iterations.value = 3
    widget.controls.class_select.value = top[1]  # new run: cancels the first
    gate.set()
    widget.wait(timeout=120)
    assert widget.result.target == (top[1],) and not widget.result.cancelled
    assert widget.result.iterations == 3


def test_failing_model_shows_its_error(make_widget):
    model = Hooked(tiny_cnn())
    widget = make_widget(model=model)

    def boom(_n):
        raise RuntimeError("boom <img src=x onerror=alert(1)>")

    model.on_forward = boom
    widget.run()  # background
    with pytest.raises(RuntimeError, match="boom"):
        widget.wait(timeout=60)
    assert isinstance(widget.error, RuntimeError)
    status = widget.controls.status.value
    assert "Error" in status and "boom &lt;img src=x onerror=alert(1)&gt;" in status
    assert "<img" not in status and not widget.running
    with pytest.raises(RuntimeError, match="boom"):
        widget.run(blocking=True)
    # a good run clears the error
    model.on_forward = None
    widget.run(blocking=True)
    assert widget.error is None


def test_close_joins_the_worker_and_closes_widgets():
    from ipywidgets.widgets.widget import _instances

    before = set(_instances)
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL)
    widget.set_images([image(), image(20, 30)], run=False)
    widget.controls.iterations.value = 500
    widget.run()
    widget.close()
    assert not worker_threads() and not running_jobs()
    assert set(_instances) - before == set()  # every widget, layout and style model closed
    assert widget.widget.comm is None and widget.canvas.canvas.comm is None
    widget.close()  # twice is fine
    assert "application/vnd.jupyter.widget-view+json" not in widget._repr_mimebundle_()[0]


# ---------------------------------------------------------------------------- labels, images


def test_labels_are_escaped_in_every_html_value(make_widget):
    evil = ["<script>alert(1)</script>", "b&b", "<b>c</b>", "d"]
    widget = make_widget(labels=evil)
    widget.select_class(0)
    widget.wait(timeout=120)
    widget.controls.compare.value = "channel-mean"
    widget.wait(timeout=120)
    values = html_values(widget)
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in v for v in values)
    for value in values:
        assert "<script" not in value and "<b>c</b>" not in value
    # the dropdown shows the plain text (ipywidgets renders option labels as text)
    assert any(lbl.startswith("<script>") for lbl, _ in widget.controls.class_select.options)


def test_several_images_have_their_own_predictions_and_results(make_widget):
    images = [image(37, 53, seed=1), image(20, 30, seed=2)]
    widget = make_widget(images=images, top_k=2)
    spy = ExplainSpy(widget)
    c = widget.controls
    assert c.image_strip.layout.display != "none"
    assert [v for _, v in c.image_select.options] == [0, 1]
    assert [item["name"] for item in c.image_strip.items] == ["image 1", "image 2"]
    first = widget.run(blocking=True)
    widget.select_image(1)
    widget.wait(timeout=120)
    assert widget.image_index == 1 and widget.saliency.shape == (20, 30)
    assert widget.canvas.size == display_size(20, 30, 448)
    state0, state1 = widget.images
    assert c.class_select.value == state1.target
    assert [v for _, v in c.class_select.options] == state1.top
    assert not np.allclose(state0.probs, state1.probs)
    assert len(spy.calls) == 2
    widget.controls.image_select.value = 0  # cached: no new optimisation
    assert widget.result is first and len(spy.calls) == 2
    assert widget.canvas.size == display_size(37, 53, 448)


def test_list_of_paths_and_pil_images(make_widget, tmp_path):
    arr = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)
    path = tmp_path / "pic.png"
    Image.fromarray(arr).save(path)
    widget = make_widget(images=[str(path), Image.fromarray(arr)])
    assert [name for name, _ in widget.controls.image_select.options] == ["pic.png", "image 2"]
    with pytest.raises(ValueError, match="empty"):
        widget.set_images([])


# ---------------------------------------------------------------------------- export, display


def test_exports(make_widget, tmp_path):
    widget = make_widget()
    with pytest.raises(RuntimeError, match="no saliency"):
        widget.save(tmp_path / "none.png")
    widget.run(blocking=True)
    out = widget.save(tmp_path / "map.png")
    with Image.open(out) as im:
        assert im.size == (53, 37) and im.mode == "RGB"
    widget.controls.save_path.value = str(tmp_path / "button.png")  # a path: refused
    widget.controls.save_button.click()
    assert not (tmp_path / "button.png").exists()
    assert "file name only" in widget.controls.save_status.value
    fig = widget.figure()
    assert len(fig.axes) >= 4
    fig.savefig(io.BytesIO(), format="png")


def test_mimebundle_has_widget_view_and_png(make_widget):
    widget = make_widget()
    widget.run(blocking=True)
    data, metadata = widget._repr_mimebundle_()
    view = data["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == widget.widget.model_id
    assert data["text/plain"].startswith("OptiCAMWidget(")
    png = base64.b64decode(data["image/png"])
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (448, 313)
    assert metadata["image/png"] == {"width": 448, "height": 313}


def test_show_without_ipython_prints_and_runs(capsys):
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL)
    try:
        widget.controls.iterations.value = 3
        explain, previews, others = ExplainSpy(widget), [], []
        preview = widget.cam.preview
        widget.cam.preview = lambda *a, **k: previews.append(k) or preview(*a, **k)
        for name in ("predict", "channel_mean"):
            setattr(widget.cam, name, lambda *a, n=name, **k: others.append(n))
        assert widget.show(image()) is widget
        # classes and the iteration-0 map: one preview (one resize, one forward pass) at the
        # canvas's size, no other forward and no explain call before the run
        assert previews == [{"size": widget.canvas.size}] and others == []
        out = capsys.readouterr().out
        assert out.startswith(f"OptiCAMWidget(model=Sequential, layer={widget.cam.layer_name},")
        widget.wait(timeout=120)
        assert widget.result is not None and widget.result.iterations == 3
        assert widget.explain_count == 1 and len(explain.calls) == 1
    finally:
        widget.close()


class FakeShell:
    execution_count = 7


def test_show_in_ipython_displays_the_view_and_a_picture_that_follows_it(monkeypatch):
    import IPython.display

    from opticam_widgets.widget import display

    shell = FakeShell()
    monkeypatch.setattr(display, "get_shell", lambda: shell)
    monkeypatch.setattr(display, "PICTURE_DELAY_S", 0.05)
    shown, updated = [], []
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, **kw: shown.append((obj, kw)))
    monkeypatch.setattr(IPython.display, "update_display",
                        lambda obj, **kw: updated.append((obj, kw)))
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL)
    try:
        widget.controls.iterations.value = 3
        widget.show(image())
        # two outputs: the live view, then the picture under its display id
        assert len(shown) == 2
        (live, live_kw), (picture, kw) = shown
        assert live_kw["raw"] and "display_id" not in live_kw
        assert set(live) == {"application/vnd.jupyter.widget-view+json", "text/plain"}
        assert live["application/vnd.jupyter.widget-view+json"]["model_id"] == \
            widget.widget.model_id
        name = kw["display_id"]
        assert kw["raw"] and name.startswith("opticam-picture-")
        assert set(picture) == {"image/png", "text/html", "text/plain"}
        assert f"class='opticam-picture {name}'" in picture["text/html"]
        assert picture["image/png"] in picture["text/html"]
        # the live widget carries the stylesheet that hides its picture while it is live
        styles = [x.value for x in all_widgets(widget.widget) if isinstance(x, w.HTML)
                  and x.value.startswith("<style>")]
        assert len(styles) == 1 and f".{name} {{ display: none" in styles[0]
        assert {"opticam-widget", f"{name}-live"} <= set(widget.widget._dom_classes)
        preview_png = picture["image/png"]  # already shows the iteration-0 map
        widget._ipython_display_()  # the cell's value, same execution: not shown again
        assert len(shown) == 2
        widget.wait(timeout=120)
        wait_until(lambda: updated and updated[-1][0]["image/png"] != preview_png, 5)
        assert all(u[1]["display_id"] == name for u in updated)
        final = updated[-1][0]["image/png"]  # the optimized map
        widget.controls.view.value = "original"  # a view change: the picture follows
        wait_until(lambda: updated[-1][0]["image/png"] != final, 5)
        assert updated[-1][0]["image/png"] == widget._repr_mimebundle_()[0]["image/png"]
        shell.execution_count = 8
        widget._ipython_display_()  # a later cell showing `widget`
        assert len(shown) == 4
    finally:
        widget.close()


# ---------------------------------------------------------------------------- comparison


def test_compare_with_channel_mean_baseline(make_widget):
    widget = make_widget()
    widget.run(blocking=True)
    spy = ExplainSpy(widget)
    widget.controls.compare.value = "channel-mean"
    widget.wait(timeout=120)
    panel = widget.compare
    assert panel.box.layout.display == ""
    assert "channel-mean" in panel.caption.value and "map" in panel.caption.value
    assert widget.cam.layer_name in panel.caption.value
    # one metrics table: Opti-CAM's column and the baseline's, each metric explained
    table = widget.controls.metrics.value
    assert "<th scope='col'>Opti-CAM</th><th scope='col'>channel-mean</th>" in table
    assert f"<td>{widget.metrics['AD']:.1f}%</td>" in table
    assert "title='Average Drop:" in table
    assert widget.controls.map_title.value == "<b>Opti-CAM</b> map"
    assert panel.canvas.saliency is not None and spy.calls == []
    widget.controls.compare.value = None
    assert panel.box.layout.display == "none"
    assert "channel-mean" not in widget.controls.metrics.value  # back to Opti-CAM's column


def test_comparison_follows_new_images_not_its_cache(make_widget):
    """New images reuse the indices 0, 1, ...: the baselines of the old ones must not show."""
    widget = make_widget(images=image(seed=1))
    widget.controls.compare.value = "channel-mean"
    widget.wait(timeout=120)
    old = widget.compare.canvas.saliency.copy()
    widget.set_images(image(seed=2), run=False)
    widget.wait(timeout=120)
    new = widget.compare.canvas.saliency
    assert widget.target is not None and new is not None and new.shape == old.shape
    assert not np.allclose(new, old)  # computed again for the new image
    assert "channel-mean" in widget.compare.caption.value


def test_compare_degrades_without_torchcam(make_widget, monkeypatch):
    import opticam_widgets.evaluation.baselines as baselines

    def missing(*args, **kwargs):
        raise ImportError("No module named 'torchcam'")

    monkeypatch.setattr(baselines, "baseline_map", missing)
    widget = make_widget()
    widget.run(blocking=True)
    widget.controls.compare.value = "gradcam"
    widget.wait(timeout=120)
    assert "needs torchcam" in widget.compare.caption.value
    assert widget.error is None and widget.result is not None


# ---------------------------------------------------------------------------- building blocks


def test_saliency_canvas_layers_and_client_ready():
    view = SaliencyCanvas(max_size=64)
    try:
        view.set_image(np.zeros((30, 60, 3), np.uint8))
        view.set_saliency(np.ones((30, 60)))
        # nothing is sent before a browser holds the layers (Voilà connects mid-run: commands
        # for a layer its page does not have yet would stop every later drawing there)
        assert view.draw_count == 0 and view.revision == 2
        browser_ready(view.canvas[1])
        assert view.draw_count == 1  # that layer only
        browser_ready(view.canvas[0])
        assert view.draw_count == 2
        assert view.size == (32, 64)
        before = view.draw_count
        view.set_saliency(np.ones((30, 60)))
        assert view.draw_count == before + 1  # the heatmap layer only
        view.view = "masked"
        assert view.to_array().max() == 0  # black image times the map
        view.view = "saliency"
        top = view.to_array()
        jet_end = list(matplotlib.colormaps["jet"](1.0, bytes=True)[:3])
        assert top.shape == (32, 64, 3) and top[0, 0].tolist() == jet_end
        count = view.draw_count
        browser_ready(view.canvas[0], view.canvas[1])
        assert view.draw_count == count + 2  # a new browser view gets both layers again
    finally:
        view.close()


def test_worker_serializes_jobs_and_queues():
    worker = Worker()
    order = []
    release = threading.Event()

    def first(cancel):
        release.wait(30)
        order.append(("first", cancel.is_set()))

    worker.submit(first, "a")
    worker.submit(lambda cancel: order.append(("queued", cancel.is_set())), "b",
                  cancel_previous=False)
    worker.submit(lambda cancel: order.append(("last", cancel.is_set())), "c")
    release.set()
    assert worker.join(30)
    assert order == [("first", True), ("last", False)]  # "b" was cancelled before it ran
    assert not worker.threads()


# ---------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_default_model_on_chelsea():
    from opticam_widgets.model.zoo import sample_image

    widget = OptiCAMWidget.default()
    try:
        img = sample_image("chelsea")
        widget.set_images(img, run=False)
        assert widget.name == "efficientnet_lite0" and len(widget.labels) == 1000
        top_label = widget.labels[widget.target]
        assert "cat" in top_label.lower() or top_label in ("tabby", "lynx")
        assert "preprocess not given" not in widget.controls.status.value
        widget.controls.iterations.value = 5
        result = widget.run(blocking=True)
        assert result.saliency.shape == (1, img.height, img.width)
        assert float(result.final_score[0]) >= float(result.initial_score[0])
        assert widget.controls.progress.value == 5
        assert widget.canvas.size == display_size(img.height, img.width, 448)
    finally:
        widget.close()
