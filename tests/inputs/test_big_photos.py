"""Big photos (issue 19): the widget at display resolution, results without float copies.

* the full-resolution map the widget gives (``widget.saliency``) is ``explain``'s, same settings;
* an 8-bit photo is kept once as uint8: no result (finished or live) and no widget state holds a
  float copy of a full-size image; uint8 resizing equals the float one bit for bit;
* a 50-megapixel photo in the widget, with the default model, stays under Binder's 2 GB
  (peak RSS of a subprocess).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from opticam_widgets.display.render import resize_map
from opticam_widgets.engine.explainer import OptiCAM
from opticam_widgets.engine.result import OptiCAMResult
from opticam_widgets.inputs.images import as_float_pixels, as_image_batch, to_image_tensor
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.zoo import sample_image
from opticam_widgets.support.defaults import WIDGET_PATIENCE, WIDGET_TOL
from opticam_widgets.widget.canvas import scale_picture

ROOT = Path(__file__).resolve().parents[2]
BINDER_MB = 2048


def photo(width: int, height: int) -> Image.Image:
    """``chelsea`` upscaled (bilinear) to ``width`` × ``height``, RGB."""
    img = sample_image("chelsea")
    img = img if isinstance(img, Image.Image) else Image.fromarray(img)
    return img.convert("RGB").resize((width, height), Image.BILINEAR)


def full_size_floats(result: OptiCAMResult) -> list[str]:
    """Names of the result's tensors that are float copies of a full-size image."""
    h, w = result.size
    found = []
    for name, value in vars(result).items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() \
                and value.numel() >= 3 * h * w:
            found.append(f"{name} {tuple(value.shape)} {value.dtype}")
    return found


# ----------------------------------------------------------------------------- uint8 pixels
def test_uint8_resize_equals_float_resize_bit_for_bit():
    pre = Preprocess(size=(224, 224))
    gen = torch.Generator().manual_seed(0)
    for h, w in ((700, 1000), (301, 224), (224, 513), (120, 90), (224, 224)):
        u = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=gen)
        assert torch.equal(pre.resize(u), pre.resize(u.float() / 255.0)), (h, w)
        hwc_view = u[0].permute(1, 2, 0).contiguous().permute(2, 0, 1)[None]  # a photo's layout
        assert torch.equal(pre.resize(hwc_view), pre.resize(u.float() / 255.0)), (h, w)
    assert Preprocess(size=None).resize(u).dtype == torch.float32


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "1", "CMYK"])
def test_eight_bit_photo_kept_as_uint8_with_the_same_pixels(mode):
    img = photo(40, 30).convert(mode)
    t = to_image_tensor(img, keep_uint8=True)
    assert t.dtype == torch.uint8 and tuple(t.shape) == (3, 30, 40)
    assert torch.equal(as_float_pixels(t), to_image_tensor(img))
    assert t.permute(1, 2, 0).is_contiguous()  # a view of one (H, W, 3) array: no second copy


def test_other_sources_stay_float_and_uint8_arrays_are_copied():
    rgba = photo(20, 10).convert("RGBA")
    # composited onto black: not 8-bit
    assert to_image_tensor(rgba, keep_uint8=True).dtype == torch.float32
    arr = np.asarray(photo(20, 10)).copy()
    t = as_image_batch(arr, keep_uint8=True)
    arr[:] = 0  # the caller's array changes; the coerced image does not
    assert t.dtype == torch.uint8 and int(t.max()) > 0
    assert as_image_batch(torch.rand(2, 3, 8, 8), keep_uint8=True).dtype == torch.float32
    with pytest.raises(ValueError, match="`image`"):
        # too small: the usual message
        to_image_tensor(np.zeros((5, 1, 3), dtype=np.uint8), keep_uint8=True)


def test_pil_photo_copied_in_strips_is_exact_at_any_width():
    for width, height in ((4032, 300), (9000, 70), (33, 17)):  # one strip or several
        img = Image.fromarray(np.random.default_rng(width).integers(
            0, 256, (height, width, 3), dtype=np.uint8))
        t = to_image_tensor(img, keep_uint8=True)
        assert np.array_equal(t.permute(1, 2, 0).numpy(), np.asarray(img))
        assert t.permute(1, 2, 0).is_contiguous()


def test_canvas_picture_of_a_big_photo_is_pils_bicubic_without_a_copy():
    img = photo(4032, 3024)
    rgb = to_image_tensor(img, keep_uint8=True).permute(1, 2, 0).numpy()
    expected = np.asarray(img.resize((450, 338), Image.BICUBIC), dtype=np.float64)
    out = scale_picture(rgb, (338, 450))
    assert out.shape == (338, 450, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    diff = np.abs(out - expected)
    assert diff.mean() < 0.5 and diff.max() <= 2  # PIL's fixed-point rounding aside
    readonly = np.asarray(photo(60, 40))  # a read-only array: still drawn, nothing changed
    assert scale_picture(readonly, (20, 30)).shape == (20, 30, 3)
    assert scale_picture(rgb[:20, :30], (40, 60)).shape == (40, 60, 3)  # enlarged: bilinear


# ----------------------------------------------------------------------------- results
def test_explain_keeps_the_photo_once_as_uint8_and_gives_the_same_map(bundle):
    img = photo(800, 600)
    cam = OptiCAM(bundle, max_iter=3)
    live: list[OptiCAMResult] = []
    r8 = cam.explain(img, callback=lambda step, p: live.append(p.result()))
    r32 = cam.explain(to_image_tensor(img))
    assert r8.pixels.dtype == torch.uint8 and r8.size == (600, 800)
    for result in [r8, *live]:
        assert full_size_floats(result) == [], full_size_floats(result)
        assert result.pixels.data_ptr() == r8.pixels.data_ptr()  # one image for every result
    assert torch.equal(r8.low_res, r32.low_res)
    assert torch.equal(r8.saliency, r32.saliency)
    assert torch.equal(r8.images, r32.images)
    assert torch.equal(cam.predict(img), cam.predict(to_image_tensor(img)))


def widget_showing(bundle, img: Image.Image, iterations: int):
    """A widget showing ``img`` (not run yet), its greeting kept out of the test's output."""
    from opticam_widgets.widget import OptiCAMWidget

    with contextlib.redirect_stdout(io.StringIO()):
        widget = OptiCAMWidget(bundle)
        widget.controls.iterations.value = iterations
        widget.show(img, run=False)
    return widget


def test_widget_full_resolution_map_is_explains(bundle):
    img = photo(640, 480)
    widget = widget_showing(bundle, img, 3)
    try:
        result = widget.run(blocking=True)
        widget.wait(300)  # its yardstick jobs too: they use the same model
        state = widget.images[0]
        assert state.pixels.dtype == torch.uint8  # the widget's one copy of the photo
        assert np.shares_memory(state.pixels.numpy(), state.rgb)
        assert full_size_floats(result) == []
        assert widget.metrics is not None and "error" not in widget.metrics
        expected = OptiCAM(bundle).explain(
            img, widget.target, max_iter=3, lr=widget.controls.lr.value,
            convention=widget.controls.convention.value, tol=WIDGET_TOL,
            patience=WIDGET_PATIENCE)
        assert widget.saliency.shape == (480, 640)
        np.testing.assert_allclose(widget.saliency, expected.numpy()[0], rtol=0, atol=1e-6)
        shown = widget.canvas.saliency  # what the canvas draws: the same map at its size
        np.testing.assert_allclose(shown, expected.saliency_at(shown.shape).numpy()[0],
                                   rtol=0, atol=1e-6)
    finally:
        widget.close()


# ----------------------------------------------------------------------------- memory
CHILD = """
import contextlib, io, json, resource, sys
import torch
torch.set_num_threads(2)
from PIL import Image
from opticam_widgets.model.zoo import load_default_model, sample_image
from opticam_widgets.widget import OptiCAMWidget
img = sample_image("chelsea")
img = img if isinstance(img, Image.Image) else Image.fromarray(img)
img = img.convert("RGB").resize((8660, 5773), Image.BILINEAR)
with contextlib.redirect_stdout(io.StringIO()):
    widget = OptiCAMWidget(load_default_model())
    widget.controls.iterations.value = 3
    widget.show(img, run=False)
    result = widget.run(blocking=True)
    full = widget.saliency  # the full-resolution map, on demand (200 MB of float32)
    ok = full.shape == (5773, 8660) and widget.metrics is not None
    widget.close()
status = open("/proc/self/status").read().split("VmHWM:")  # peak RSS since exec
peak = (float(status[1].split()[0]) if len(status) > 1
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
print(json.dumps({"peak_mb": peak, "ok": bool(ok)}))
"""


def test_fifty_megapixel_photo_in_the_widget_stays_under_binders_2_gb():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, timeout=600, check=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["ok"]
    assert answer["peak_mb"] < BINDER_MB, answer


def test_widget_comparison_runs_at_the_models_input_size(bundle, monkeypatch):
    """A baseline in the comparison panel is computed, with its metrics, on the photo resized to
    the model's input (as the widget's Opti-CAM metrics are): no full-size float copy."""
    from opticam_widgets.evaluation import baselines

    seen = []
    original = baselines.baseline_map

    def spy(method, model, pixels, *args, **kwargs):
        seen.append((tuple(pixels.shape), pixels.dtype))
        return original(method, model, pixels, *args, **kwargs)

    monkeypatch.setattr(baselines, "baseline_map", spy)
    img = photo(1600, 1200)
    widget = widget_showing(bundle, img, 2)
    try:
        widget.run(blocking=True)
        widget.controls.compare.value = "channel-mean"
        deadline = time.monotonic() + 300  # the baseline, then the yardsticks queued behind it
        widget.wait(timeout=300)
        while "…" in widget.controls.metrics.value and time.monotonic() < deadline:
            widget.wait(timeout=300)
            time.sleep(0.05)
        size = bundle.preprocess.size
        assert seen == [((3, *size), torch.float32)]
        panel = widget.compare
        assert "channel-mean" in panel.caption.value
        table = widget.controls.metrics.value  # the metrics: Opti-CAM's column, the baseline's
        assert "<th scope='col'>channel-mean</th>" in table and "AD" in table
        assert "unavailable" not in table and "…" not in table
        x = bundle.preprocess.resize(to_image_tensor(img)[None])[0]
        ref = original("channel-mean", bundle.model, x, widget.target,
                       target_layer=widget.cam.layer_name, preprocess=bundle.preprocess)
        expected = np.clip(resize_map(ref[0].numpy(), panel.canvas.size), 0.0, 1.0)
        np.testing.assert_allclose(panel.canvas.saliency, expected, rtol=0, atol=1e-5)
    finally:
        widget.close()
