"""Tests for opticam_widgets.display.render (pure numpy rendering)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from opticam_widgets.display import render
from opticam_widgets.display.render import (
    COLORMAPS,
    as_uint8_image,
    colorize,
    mask_image,
    overlay,
    resize_map,
    to_png_bytes,
)


def _ramp(h: int = 5, w: int = 7) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))


def test_colormaps_are_matplotlib_names():
    assert "jet" in COLORMAPS and len(COLORMAPS) <= 12
    for name in COLORMAPS:
        assert name in matplotlib.colormaps


@pytest.mark.parametrize("cmap", ["jet", "viridis", "gray"])
def test_colorize_shape_dtype_and_ends(cmap):
    sal = _ramp()
    rgba = colorize(sal, cmap)
    assert rgba.shape == (5, 7, 4) and rgba.dtype == np.uint8
    cm = matplotlib.colormaps[cmap]
    lo = np.array(cm(0.0, bytes=True))
    hi = np.array(cm(1.0, bytes=True))
    np.testing.assert_array_equal(rgba[0, 0, :3], lo[:3])
    np.testing.assert_array_equal(rgba[0, -1, :3], hi[:3])
    assert (rgba[..., 3] == 255).all()


def test_colorize_clips_out_of_range_and_nan():
    rgba = colorize(np.array([[-3.0, 7.0, np.nan]]), "gray")
    assert rgba[0, :, 0].tolist() == [0, 255, 0]


def test_colorize_alpha_scalar_and_array():
    assert (colorize(_ramp(), alpha=0.5)[..., 3] == 128).all()
    assert (colorize(_ramp(), alpha=0.0)[..., 3] == 0).all()
    per_pixel = colorize(_ramp(), alpha=_ramp())
    assert per_pixel[0, 0, 3] == 0 and per_pixel[0, -1, 3] == 255
    with pytest.raises(ValueError, match="alpha"):
        colorize(_ramp(), alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        colorize(_ramp(), alpha=np.ones((2, 2)))


def test_colorize_rejects_bad_input():
    with pytest.raises(ValueError, match="colormap"):
        colorize(_ramp(), "not-a-colormap")
    with pytest.raises(TypeError, match="cmap"):
        colorize(_ramp(), 3)
    with pytest.raises(ValueError, match="2-D"):
        colorize(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        colorize(np.zeros((0, 3)))


def test_colorize_accepts_colormap_object_and_leading_axis():
    cm = matplotlib.colormaps["viridis"]
    a = colorize(_ramp()[None], cm)
    assert a.shape == (5, 7, 4)
    np.testing.assert_array_equal(a, colorize(_ramp(), "viridis"))


def test_overlay_known_values():
    img = np.full((4, 4, 3), 200, dtype=np.uint8)
    sal = np.zeros((4, 4), dtype=np.float32)
    np.testing.assert_array_equal(overlay(img, sal, alpha=0.0), img)
    out = overlay(img, sal, alpha=1.0, cmap="gray")
    assert (out == 0).all()
    half = overlay(img, np.ones((4, 4)), alpha=0.5, cmap="gray")
    assert (half == round(0.5 * 200 + 0.5 * 255)).all()
    assert half.dtype == np.uint8 and half.shape == (4, 4, 3)


def test_overlay_float_image_and_resize():
    img = np.full((30, 40, 3), 0.5, dtype=np.float32)
    out = overlay(img, _ramp(5, 7), alpha=0.3)
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="alpha"):
        overlay(img, _ramp(), alpha=-0.1)


def test_overlay_grey_rgba_and_channel_first_images():
    sal = np.ones((3, 5))
    for img in (np.zeros((3, 5)), np.zeros((3, 5, 4), np.uint8), np.zeros((3, 3, 5))):
        assert overlay(img, sal).shape == (3, 5, 3)


def test_as_uint8_image_rejects_bad_dtypes_and_shapes():
    with pytest.raises(TypeError, match="uint8"):
        as_uint8_image(np.zeros((2, 2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="shape"):
        as_uint8_image(np.zeros((2, 2, 2, 2)))
    np.testing.assert_array_equal(as_uint8_image(np.ones((1, 1, 3)) * 2.0), [[[255] * 3]])


def test_resize_map_bilinear_stays_in_range():
    sal = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    out = resize_map(sal, (16, 12))
    assert out.shape == (16, 12) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[0, 0] < 0.25 and out[0, -1] > 0.75
    same = resize_map(sal, (2, 2))
    np.testing.assert_array_equal(same, sal)
    with pytest.raises(ValueError, match="size"):
        resize_map(sal, (0, 3))


def test_mask_image_multiplies():
    img = np.full((2, 2, 3), 100, dtype=np.uint8)
    sal = np.array([[0.0, 1.0], [0.5, 0.25]])
    out = mask_image(img, sal)
    assert out[..., 0].tolist() == [[0, 100], [50, 25]]
    inv = mask_image(img, sal, inverse=True)
    assert inv[..., 0].tolist() == [[100, 0], [50, 75]]


@pytest.mark.parametrize("shape,mode", [((6, 5, 3), "RGB"), ((6, 5, 4), "RGBA"), ((6, 5), "L")])
def test_png_round_trip(shape, mode):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
    data = to_png_bytes(arr)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back = Image.open(io.BytesIO(data))
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), arr)


def test_png_from_float():
    data = to_png_bytes(np.ones((2, 3, 3), dtype=np.float32))
    assert (np.asarray(Image.open(io.BytesIO(data))) == 255).all()


def test_render_has_no_torch_import():
    src = open(render.__file__, encoding="utf-8").read()
    assert "import torch" not in src
