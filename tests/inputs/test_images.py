"""Image coercion (every accepted input and every refused one) and the preprocessing spec."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from opticam_widgets.inputs.images import ImageFileNotFoundError, as_image_batch, to_image_tensor
from opticam_widgets.inputs.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocess,
    coerce_preprocess,
)

RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                [[0, 0, 0], [255, 255, 255], [51, 102, 153]]], dtype=np.uint8)  # 2×3


def expected(arr_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr_uint8.astype(np.float32) / 255.0).permute(2, 0, 1)


def check(t: torch.Tensor, shape: tuple[int, int]) -> None:
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32
    assert tuple(t.shape) == (3, *shape)
    assert t.is_contiguous()
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def png_bytes(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


# --------------------------------------------------------------------------- files and bytes


def test_path_str_and_pathlib(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(RGB).save(path)
    for arg in (str(path), path):
        t = to_image_tensor(arg)
        check(t, (2, 3))
        assert torch.equal(t, expected(RGB))


def test_jpeg_file(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((8, 10, 3), 200, np.uint8)).save(path, quality=95)
    t = to_image_tensor(path)
    check(t, (8, 10))
    assert abs(float(t.mean()) - 200 / 255) < 0.02


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)  # 16 rows × 32 columns
    stored[:8] = (255, 0, 0)  # top half red
    stored[8:] = (0, 0, 255)  # bottom half blue
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=100)
    t = to_image_tensor(path)
    check(t, (32, 16))  # displayed upright: 32 rows × 16 columns
    # the stored top row becomes the displayed right column
    assert float(t[0, :, 12:].mean()) > 0.9 and float(t[2, :, 12:].mean()) < 0.1
    assert float(t[2, :, :4].mean()) > 0.9 and float(t[0, :, :4].mean()) < 0.1
    # the same for an already-opened PIL image
    with Image.open(path) as opened:
        assert tuple(to_image_tensor(opened).shape) == (3, 32, 16)


def test_missing_file_is_both_file_not_found_and_value_error(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageFileNotFoundError, match=r"`photo`: no such file .*nope\.png"):
        to_image_tensor(missing, name="photo")
    with pytest.raises(FileNotFoundError):
        to_image_tensor(str(missing))
    with pytest.raises(ValueError):
        to_image_tensor(str(missing))


def test_unreadable_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=r"`image`: cannot read .*notes\.txt.* as an image"):
        to_image_tensor(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read"):
        to_image_tensor(empty)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png_bytes(Image.fromarray(np.zeros((64, 64, 3), np.uint8)))[:60])
    with pytest.raises(ValueError, match="cannot read"):
        to_image_tensor(truncated)
    with pytest.raises(ValueError, match="is not a file"):
        to_image_tensor(tmp_path)


def test_encoded_bytes_and_file_objects():
    data = png_bytes(Image.fromarray(RGB))
    for arg in (data, bytearray(data), memoryview(data), io.BytesIO(data)):
        assert torch.equal(to_image_tensor(arg), expected(RGB)), type(arg)
    with pytest.raises(ValueError, match="empty bytes"):
        to_image_tensor(b"")
    with pytest.raises(ValueError, match="`upload`: cannot read the given bytes"):
        to_image_tensor(b"\x89PNG garbage", name="upload")


@pytest.mark.parametrize("url", [
    "https://example.com/cat.jpg", "http://example.com/a.png?x=1", "ftp://host/f.jpg",
    "s3://bucket/key.jpg", "gs://bucket/key.png", "HTTPS://EXAMPLE.COM/CAT.JPG",
    b"https://example.com/cat.jpg", pathlib.Path("https://example.com/cat.jpg"),
])
def test_urls_are_refused_with_the_fix(url):
    with pytest.raises(ValueError, match=r"`photo` is a URL .*not fetched.*[Dd]ownload") as info:
        to_image_tensor(url, name="photo")
    assert not isinstance(info.value, FileNotFoundError)
    with pytest.raises(ValueError, match="not fetched"):
        as_image_batch([url, url])


def test_data_and_file_uris_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"`image` is a data: URI.*b64decode"):
        to_image_tensor("data:image/png;base64,iVBORw0KGgo=")
    with pytest.raises(ValueError, match=r"`image` is a file: URL.*pass the path itself"):
        to_image_tensor(f"file://{tmp_path}/cat.png")


def test_paths_that_only_look_like_urls_are_files(tmp_path, monkeypatch):
    with pytest.raises(ImageFileNotFoundError, match="no such file"):  # a drive letter
        to_image_tensor("C:/photos/cat.png")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "http:").mkdir()  # an existing file whose path reads as a URL is read
    (tmp_path / "http:" / "x.png").write_bytes(png_bytes(Image.fromarray(RGB)))
    assert torch.equal(to_image_tensor("http:/x.png"), expected(RGB))


# --------------------------------------------------------------------------- PIL modes


def test_pil_rgb_and_grey_modes():
    img = Image.fromarray(RGB)
    assert torch.equal(to_image_tensor(img), expected(RGB))
    grey = Image.fromarray(np.array([[0, 128], [255, 64]], np.uint8))  # mode L
    t = to_image_tensor(grey)
    check(t, (2, 2))
    assert torch.equal(t[0], t[2]) and abs(float(t[0, 0, 1]) - 128 / 255) < 1e-6
    bilevel = grey.convert("1")
    t = to_image_tensor(bilevel)
    assert set(t.unique().tolist()) <= {0.0, 1.0}


def test_pil_transparency_composites_onto_black():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = [[255, 0], [128, 255]]
    t = to_image_tensor(Image.fromarray(rgba, mode="RGBA"))
    check(t, (2, 2))
    want = [[200 / 255, 0.0], [200 / 255 * 128 / 255, 200 / 255]]
    assert torch.allclose(t[0], torch.tensor(want))
    la = Image.fromarray(rgba[..., [0, 3]], mode="LA")
    assert float(to_image_tensor(la)[1, 0, 1]) == 0.0
    # a palette image with a transparent index
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    t = to_image_tensor(pal)
    assert t[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and t[:, 0, 1].tolist() == [0.0, 1.0, 0.0]
    pal.info["transparency"] = 1
    t = to_image_tensor(pal)
    assert t[:, 0, 1].tolist() == [0.0, 0.0, 0.0]
    premultiplied = Image.new("RGBa", (2, 2), (100, 0, 0, 128))
    assert float(to_image_tensor(premultiplied)[0, 0, 0]) == pytest.approx(100 / 255, abs=0.01)
    assert float(to_image_tensor(Image.new("La", (2, 2), (100, 128)))[0, 0, 0]) == pytest.approx(
        100 / 255, abs=0.01)


def test_pil_sixteen_bit_and_float_modes():
    a16 = np.array([[0, 65535], [32768, 1000]], np.uint16)
    img = Image.fromarray(a16)
    assert img.mode == "I;16"
    t = to_image_tensor(img)
    check(t, (2, 2))
    assert torch.allclose(t[0], torch.tensor([[0.0, 1.0], [32768 / 65535, 1000 / 65535]]))
    # a 16-bit PNG round trip, and the older "I" spelling of 16-bit data
    reread = to_image_tensor(png_bytes(img))
    assert torch.allclose(reread, t)
    t_i = to_image_tensor(img.convert("I"))
    assert torch.allclose(t_i, t)
    with pytest.raises(ValueError, match="outside 0-65535"):
        to_image_tensor(Image.fromarray(np.array([[0, 70000], [1, 2]], np.int32), mode="I"))
    f = Image.fromarray(np.array([[0.0, 0.25], [0.5, 1.0]], np.float32), mode="F")
    assert to_image_tensor(f)[1].tolist() == [[0.0, 0.25], [0.5, 1.0]]
    with pytest.raises(ValueError, match=r"values must lie in \[0, 1\]"):
        to_image_tensor(Image.fromarray(np.array([[0.0, 2.0], [0, 0]], np.float32), mode="F"))


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "HSV", "LAB", "RGBX"])
def test_pil_other_colour_modes(mode):
    img = Image.fromarray(RGB).convert(mode) if mode != "HSV" else Image.new("HSV", (3, 2),
                                                                             (0, 255, 255))
    t = to_image_tensor(img)
    check(t, (2, 3))
    if mode == "HSV":
        assert t[:, 0, 0].tolist() == [1.0, 0.0, 0.0]  # hue 0, full saturation: red
    elif mode in ("CMYK", "RGBX"):
        assert torch.allclose(t, expected(RGB), atol=1 / 255 + 1e-6)


SRC = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 30, 90]],
                [[0, 0, 0], [255, 255, 255], [51, 102, 153], [120, 200, 10]],
                [[10, 10, 10], [128, 64, 32], [90, 180, 250], [255, 128, 0]]], np.uint8)
ALPHA = np.array([[255, 0, 128, 64], [255, 200, 30, 255], [0, 100, 255, 170]], np.uint8)
WIDE = np.array([[0, 65535, 300, 1000], [40000, 20000, 12345, 256],
                 [65535, 7, 30000, 50000]], np.uint16)


def grey3(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None].astype(np.float64), 3, axis=-1)


def pil_reference(mode: str) -> tuple[Image.Image, np.ndarray, float]:
    """An image of ``mode`` and its RGB pixels (float64, [0, 1]) by an independent formula."""
    rgba = np.concatenate([SRC, ALPHA[..., None]], axis=-1)
    grey = np.asarray(Image.fromarray(SRC).convert("L")).astype(np.float64)
    over = ALPHA[..., None] / 255.0
    if mode == "RGB":
        return Image.fromarray(SRC), SRC / 255.0, 1e-6
    if mode in ("RGBA", "RGBa", "RGBX"):
        img = Image.fromarray(rgba).convert(mode) if mode != "RGBA" else Image.fromarray(rgba)
        raw = np.asarray(img).astype(np.float64)
        if mode == "RGBa":  # premultiplied: the stored colour is already composited on black
            return img, raw[..., :3] / 255.0, 1e-6
        return img, (raw[..., :3] / 255.0) * (over if mode == "RGBA" else 1.0), 1e-6
    if mode == "L":
        return Image.fromarray(grey.astype(np.uint8)), grey3(grey) / 255.0, 1e-6
    if mode == "1":
        img = Image.fromarray(grey.astype(np.uint8)).convert("1")
        return img, grey3(np.asarray(img).astype(np.float64)), 1e-6
    if mode in ("LA", "La"):
        la = Image.fromarray(np.stack([grey.astype(np.uint8), ALPHA], -1), mode="LA")
        if mode == "La":
            la = la.convert("La")
            return la, grey3(np.asarray(la)[..., 0]) / 255.0, 1e-6  # premultiplied
        return la, grey3(grey) / 255.0 * over, 1e-6
    if mode in ("P", "P+transparency", "PA"):
        img = Image.fromarray(SRC).quantize(colors=16)
        pal = np.array(img.getpalette(), np.float64).reshape(-1, 3) / 255.0
        idx = np.asarray(img)
        if mode == "P":
            return img, pal[idx], 1e-6
        if mode == "PA":
            pa = img.convert("PA")
            pa.putalpha(Image.fromarray(ALPHA))
            return pa, pal[idx] * over, 1e-6
        img.info["transparency"] = int(idx[0, 0])
        return img, pal[idx] * (idx != idx[0, 0])[..., None], 1e-6
    if mode == "CMYK":
        img = Image.fromarray(SRC).convert("CMYK")
        c = np.asarray(img).astype(np.float64) / 255.0
        return img, (1 - c[..., :3]) * (1 - c[..., 3:]), 1 / 255 + 1e-6
    if mode == "YCbCr":
        img = Image.fromarray(SRC).convert("YCbCr")
        y, cb, cr = np.moveaxis(np.asarray(img).astype(np.float64), -1, 0)
        rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                        y + 1.772 * (cb - 128)], axis=-1)
        return img, np.clip(rgb, 0, 255) / 255.0, 1.5 / 255
    if mode == "HSV":
        import colorsys

        img = Image.fromarray(SRC).convert("HSV")
        hsv = np.asarray(img).astype(np.float64) / 255.0
        rgb = [colorsys.hsv_to_rgb(*px) for px in hsv.reshape(-1, 3)]
        return img, np.array(rgb).reshape(SRC.shape), 1.5 / 255
    if mode == "LAB":  # littlecms is the reference; the colours come back near the source
        from PIL import ImageCms

        img = Image.fromarray(SRC).convert("LAB")
        xform = ImageCms.buildTransform(ImageCms.createProfile("LAB"),
                                        ImageCms.createProfile("sRGB"), "LAB", "RGB")
        ref = np.asarray(ImageCms.applyTransform(img, xform)).astype(np.float64) / 255.0
        assert np.abs(ref - SRC / 255.0).max() < 0.1  # a sane round trip, never black
        return img, ref, 1e-6
    if mode.startswith("I"):
        if mode == "I":
            img = Image.fromarray(WIDE.astype(np.int32), mode="I")
        else:  # Pillow's convert() between 16-bit modes clips to 0-255: build from bytes
            order = ">u2" if mode == "I;16B" else "<u2" if mode != "I;16N" else "=u2"
            img = Image.frombytes(mode, WIDE.shape[::-1], WIDE.astype(order).tobytes())
        assert np.array_equal(np.asarray(img).astype(np.int64), WIDE.astype(np.int64))
        return img, grey3(WIDE) / 65535.0, 1e-6
    if mode == "F":
        img = Image.fromarray((WIDE / 65535.0).astype(np.float32), mode="F")
        return img, grey3(WIDE / 65535.0), 1e-6
    raise AssertionError(mode)


PIL_MODES = ["1", "L", "LA", "La", "P", "P+transparency", "PA", "RGB", "RGBA", "RGBa", "RGBX",
             "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"]


@pytest.mark.parametrize("mode", PIL_MODES)
def test_every_pil_mode_gives_the_right_rgb_pixels(mode):
    img, ref, tol = pil_reference(mode)
    assert img.mode == mode.split("+")[0]
    t = to_image_tensor(img)
    check(t, SRC.shape[:2])
    diff = np.abs(t.permute(1, 2, 0).numpy().astype(np.float64) - ref).max()
    assert diff <= tol, (mode, diff)


@pytest.mark.parametrize("mode", ["BGR;15", "BGR;16", "BGR;24"])
def test_pil_modes_this_pillow_cannot_create(mode):
    try:
        img = Image.new(mode, (4, 3))
    except (ValueError, KeyError):
        return  # Pillow dropped these modes: nothing can reach the package
    t = to_image_tensor(img)  # pragma: no cover - older Pillow
    assert torch.equal(t, torch.zeros(3, 3, 4))


@pytest.mark.parametrize("mode", ["I", "I;16", "I;16B"])
def test_wide_integer_images_holding_8_bit_values_are_refused(mode):
    img = Image.fromarray(np.array([[0, 255], [128, 30]], np.uint8)).convert(mode)
    with pytest.raises(ValueError, match=r"`image` is a .*-bit image .*0-255.*convert\('L'\)"):
        to_image_tensor(img)
    black = Image.fromarray(np.zeros((2, 2), np.uint16))
    assert float(to_image_tensor(black).max()) == 0.0  # black is black either way


def test_float_image_outside_unit_range_names_the_fix():
    img = Image.fromarray(np.array([[0, 255], [128, 30]], np.uint8)).convert("F")
    with pytest.raises(ValueError, match=r"`photo` is a float image \(mode F\).*convert\('L'\)"):
        to_image_tensor(img, name="photo")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        to_image_tensor(Image.fromarray(np.array([[-1.0, 0], [0, 0]], np.float32), mode="F"))


def test_pil_tiny_images():
    with pytest.raises(ValueError, match=r"`image` is too small \(1×1 pixels\)"):
        to_image_tensor(Image.new("RGB", (1, 1)))
    with pytest.raises(ValueError, match="too small"):
        to_image_tensor(Image.new("RGB", (50, 1)))
    with pytest.raises(ValueError, match="empty"):
        to_image_tensor(Image.new("RGB", (0, 5)))
    check(to_image_tensor(Image.new("RGB", (2, 2))), (2, 2))


# --------------------------------------------------------------------------- ndarrays


def test_array_layouts_and_dtypes():
    assert torch.equal(to_image_tensor(RGB), expected(RGB))
    f32 = RGB.astype(np.float32) / 255
    for arr in (f32, f32.astype(np.float64), f32.astype(">f4")):
        assert torch.allclose(to_image_tensor(arr), expected(RGB)), arr.dtype
    assert torch.allclose(to_image_tensor(f32.astype(np.float16)), expected(RGB), atol=1e-3)
    grey = RGB[..., 0]
    t = to_image_tensor(grey)
    check(t, (2, 3))
    assert torch.equal(t[0], t[1]) and torch.equal(t[0], expected(RGB)[0])
    assert torch.equal(to_image_tensor(grey[..., None]), t)  # (H, W, 1)
    rgba = np.dstack([RGB, np.full((2, 3), 255, np.uint8)])
    assert torch.equal(to_image_tensor(rgba), expected(RGB))
    rgba[0, 0, 3] = 0
    assert to_image_tensor(rgba)[:, 0, 0].tolist() == [0.0, 0.0, 0.0]  # composited onto black
    # non-contiguous views
    flipped = RGB[:, ::-1]
    assert torch.equal(to_image_tensor(flipped), expected(np.ascontiguousarray(flipped)))


def test_array_channels_first_only_when_unambiguous():
    chw = np.random.default_rng(0).random((3, 5, 7), dtype=np.float32)
    t = to_image_tensor(chw)
    check(t, (5, 7))
    assert torch.equal(t, torch.from_numpy(chw))
    one = chw[:1]  # (1, 5, 7) grey, channels first
    check(to_image_tensor(one), (5, 7))
    check(to_image_tensor(np.zeros((1, 5, 3), np.float32)), (5, 3))  # (H=1, W, 3) is impossible
    check(to_image_tensor(np.zeros((3, 5, 1), np.float32)), (3, 5))  # grey (H, W, 1)
    check(to_image_tensor(np.zeros((4, 5, 3), np.float32)), (4, 5))  # plain (H, W, 3)
    for shape in [(3, 5, 3), (3, 3, 3), (3, 224, 3), (3, 5, 4), (1, 5, 1)]:
        if shape == (1, 5, 1):
            continue  # 1 pixel wide either way: a size error, tested below
        with pytest.raises(ValueError, match=r"ambiguous: it reads as \(H, W, C\) and as"):
            to_image_tensor(np.zeros(shape, np.float32))


@pytest.mark.parametrize(
    ("arr", "error", "pattern"),
    [
        (np.zeros((4, 4, 5), np.uint8), ValueError,
         r"\(H, W\), \(H, W, 3\) or \(H, W, 4\).*5 channels"),
        (np.zeros((4, 4, 2), np.uint8), ValueError, "2 channels"),
        (np.zeros((2, 4, 4, 3), np.uint8), ValueError, r"got \(2, 4, 4, 3\)"),
        (np.zeros(5, np.uint8), ValueError, r"got \(5,\)"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
        (np.zeros((1, 1, 3), np.uint8), ValueError, r"too small \(1×1"),
        (np.zeros((1, 9), np.uint8), ValueError, r"too small \(1×9"),
        (np.zeros((4, 4, 3), np.int32), TypeError, "integer array must be uint8.*int32"),
        (np.zeros((4, 4, 3), np.uint16), TypeError, r"uint16.*`arr / 65535`"),
        (np.zeros((4, 4, 3), np.int64), TypeError, "int64"),
        (np.zeros((4, 4, 3), bool), TypeError, "uint8 or float, got dtype bool"),
        (np.zeros((4, 4, 3), np.complex64), TypeError, "complex64"),
        (np.zeros((4, 4, 3), object), TypeError, "object"),
        (np.full((4, 4, 3), np.nan, np.float32), ValueError, "NaN or infinite"),
        (np.full((4, 4, 3), np.inf), ValueError, "NaN or infinite"),
        (np.full((4, 4, 3), 255.0), ValueError, r"values must lie in \[0, 1\].*\[255, 255\]"),
        (np.full((4, 4, 3), -0.5), ValueError, r"values must lie in \[0, 1\]"),
    ],
)
def test_bad_arrays(arr, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        to_image_tensor(arr, name="photo")
    assert "`photo`" in str(info.value)


def test_array_nan_under_zero_alpha_is_still_refused():
    rgba = np.zeros((4, 4, 4), np.float32)
    rgba[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        to_image_tensor(rgba)


def test_result_never_aliases_the_input():
    f32 = RGB.astype(np.float32) / 255
    t = to_image_tensor(f32)
    t.zero_()
    assert f32.max() == 1.0
    src = torch.rand(3, 4, 4)
    out = to_image_tensor(src)
    out.zero_()
    assert float(src.max()) > 0


# --------------------------------------------------------------------------- tensors


def test_tensor_layouts_and_dtypes():
    x = torch.rand(3, 5, 6)
    assert torch.equal(to_image_tensor(x), x)
    assert torch.equal(to_image_tensor(x.unsqueeze(0)), x)  # (1, 3, H, W)
    assert torch.equal(to_image_tensor(x.double()), x)
    assert torch.allclose(to_image_tensor(x.half()), x, atol=1e-3)
    grey = torch.rand(5, 6)
    for g in (grey, grey[None]):  # (H, W) and (1, H, W)
        t = to_image_tensor(g)
        check(t, (5, 6))
        assert torch.equal(t[1], grey)
        t.add_(0)  # a real, writable tensor, not an expanded view
    u8 = torch.from_numpy(RGB).permute(2, 0, 1)
    assert torch.equal(to_image_tensor(u8), expected(RGB))
    leaf = torch.rand(3, 4, 4, requires_grad=True)
    assert not to_image_tensor(leaf).requires_grad


@pytest.mark.parametrize(
    ("tensor", "error", "pattern"),
    [
        (torch.rand(5, 6, 3), ValueError, r"got shape \(5, 6, 3\).*permute\(2, 0, 1\)"),
        (torch.rand(2, 3, 4, 4), ValueError, r"\(2, 3, 4, 4\).*as_image_batch"),
        (torch.rand(4, 5, 5), ValueError, r"got shape \(4, 5, 5\)"),
        (torch.rand(5), ValueError, r"got shape \(5,\)"),
        (torch.rand(3, 0, 4), ValueError, "empty"),
        (torch.rand(3, 1, 1), ValueError, "too small"),
        (torch.zeros(3, 4, 4, dtype=torch.bool), TypeError, "bool"),
        (torch.zeros(3, 4, 4, dtype=torch.int64), TypeError, "int64"),
        (torch.zeros(3, 4, 4, dtype=torch.complex64), TypeError, "complex64"),
        (torch.full((3, 4, 4), float("nan")), ValueError, "NaN"),
        (torch.full((3, 4, 4), 2.0), ValueError, r"\[0, 1\]"),
    ],
)
def test_bad_tensors(tensor, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        to_image_tensor(tensor, name="x")
    assert "`x`" in str(info.value)


@pytest.mark.parametrize("obj", [None, 3, 2.5, [[0.0, 1.0], [1.0, 0.0]], {"a": 1}, object()])
def test_unsupported_objects(obj):
    with pytest.raises(TypeError, match="`img` must be a path, image bytes, a PIL image"):
        to_image_tensor(obj, name="img")


# --------------------------------------------------------------------------- batches


def test_as_image_batch():
    one = as_image_batch(RGB)
    assert tuple(one.shape) == (1, 3, 2, 3)
    batch = as_image_batch([RGB, Image.fromarray(RGB), torch.rand(3, 2, 3)])
    assert tuple(batch.shape) == (3, 3, 2, 3)
    assert torch.equal(batch[0], batch[1])
    assert tuple(as_image_batch(torch.rand(2, 3, 4, 4)).shape) == (2, 3, 4, 4)
    assert tuple(as_image_batch(np.zeros((2, 4, 5, 3), np.uint8)).shape) == (2, 3, 4, 5)
    assert tuple(as_image_batch((RGB,)).shape) == (1, 3, 2, 3)


def test_as_image_batch_errors():
    with pytest.raises(ValueError, match="empty list"):
        as_image_batch([])
    with pytest.raises(ValueError, match="batch is empty"):
        as_image_batch(torch.zeros(0, 3, 4, 4))
    with pytest.raises(ValueError, match="different sizes"):
        as_image_batch([torch.rand(3, 4, 4), torch.rand(3, 5, 4)])
    with pytest.raises(ValueError, match=r"`images\[1\]` contains NaN"):
        as_image_batch([torch.rand(3, 4, 4), torch.full((3, 4, 4), float("nan"))], name="images")
    with pytest.raises(TypeError, match=r"`image\[0\]`"):
        as_image_batch([None])


# --------------------------------------------------------------------------- Preprocess


def test_preprocess_defaults_and_math():
    spec = Preprocess()
    assert spec.size == (224, 224)
    assert spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD
    x = torch.rand(2, 3, 4, 4)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(spec.normalize(x), (x - mean) / std)
    assert hash(spec) == hash(Preprocess())  # frozen, usable as a cache key
    with pytest.raises(AttributeError):
        spec.size = (1, 1)


def test_preprocess_resize_is_direct_and_stays_in_range():
    spec = Preprocess(size=(224, 224))
    x = torch.rand(1, 3, 300, 451)
    y = spec.resize(x)
    assert tuple(y.shape) == (1, 3, 224, 224)  # aspect not kept, nothing cropped
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert spec.resize(y) is y
    same = Preprocess(size=None)
    assert same.resize(x) is x
    # a direct resize keeps the whole picture: a red left half stays the left half
    half = torch.zeros(1, 3, 300, 451)
    half[:, 0, :, :225] = 1.0
    r = spec.resize(half)
    assert float(r[0, 0, :, :100].mean()) > 0.99 and float(r[0, 0, :, 124:].mean()) < 0.01


def test_preprocess_size_spellings():
    assert Preprocess(size=256).size == (256, 256)
    assert Preprocess(size=[240, 320]).size == (240, 320)
    assert Preprocess(size=(np.int64(8), 9.0)).size == (8, 9)
    for bad in [(0, 5), (-1, 5), (1, 2, 3), "224", (True, 4), (4.5, 4), 0]:
        with pytest.raises(ValueError, match="`size`"):
            Preprocess(size=bad)


def test_preprocess_bad_numbers():
    with pytest.raises(TypeError, match="`mean` must be 3 numbers"):
        Preprocess(mean=("a", "b", "c"))
    with pytest.raises(TypeError, match="`std`"):
        Preprocess(std=0.5)
    with pytest.raises(ValueError, match="`mean` must be 3 finite numbers"):
        Preprocess(mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="finite"):
        Preprocess(std=(0.5, float("nan"), 0.5))
    with pytest.raises(ValueError, match="`std` must be positive"):
        Preprocess(std=(0.5, 0.0, 0.5))
    with pytest.raises(TypeError, match="`transform` must be callable"):
        Preprocess(transform=3)


def test_preprocess_transform():
    spec = Preprocess(size=None, transform=lambda x: x * 2)
    assert torch.equal(spec.normalize(torch.ones(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 2.0))


def test_coerce_preprocess_spellings():
    import timm
    from torchvision.models import Inception_V3_Weights, ResNet50_Weights

    assert coerce_preprocess(None) == Preprocess()
    spec = Preprocess(size=(8, 8))
    assert coerce_preprocess(spec) is spec
    assert coerce_preprocess([(0.5,) * 3, (0.25,) * 3]) == Preprocess(mean=(0.5,) * 3,
                                                                      std=(0.25,) * 3)
    assert coerce_preprocess({"size": 32, "mean": (0, 0, 0)}) == Preprocess(size=32,
                                                                           mean=(0, 0, 0))
    cfg = timm.data.resolve_data_config({}, model=timm.create_model("tf_efficientnet_lite0"))
    assert coerce_preprocess(cfg) == Preprocess(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3)
    tv = coerce_preprocess(ResNet50_Weights.IMAGENET1K_V2.transforms())
    assert tv == Preprocess(size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert coerce_preprocess(Inception_V3_Weights.DEFAULT).size == (299, 299)

    def norm(x):
        return x - 0.5

    fn = coerce_preprocess(norm)
    assert fn.size is None and fn.transform is norm


def test_coerce_preprocess_errors():
    with pytest.raises(TypeError, match=r"`pre` dict has unknown keys \['colour'\]"):
        coerce_preprocess({"colour": 1}, name="pre")
    with pytest.raises(TypeError, match="`mean` must be 3 numbers"):
        coerce_preprocess({"mean": 3})
    with pytest.raises(TypeError, match=r"pair must be \(mean, std\)"):
        coerce_preprocess((224, 224))
    with pytest.raises(TypeError, match="`preprocess` must be None, a Preprocess"):
        coerce_preprocess(3)
    with pytest.raises(ValueError, match="input_size"):
        coerce_preprocess({"input_size": 3})


def test_wide_arrays_and_tensors_follow_the_same_rules_as_pil():
    """16-bit data is refused with the fix, and the fix gives the same pixels as mode I;16."""
    wide = np.array([[0, 65535, 300], [40000, 20000, 12345]], np.uint16)
    with pytest.raises(TypeError, match=r"`image` integer array must be uint8.*`arr / 65535`"):
        to_image_tensor(wide)
    fixed = to_image_tensor(wide / 65535)
    assert torch.allclose(fixed, to_image_tensor(Image.fromarray(wide)), atol=1e-7)
    with pytest.raises(TypeError, match=r"`image` tensor must be float in \[0, 1\].*`t / 65535`"):
        to_image_tensor(torch.from_numpy(wide.astype(np.int32)))
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        t = to_image_tensor(fixed.to(dtype))
        assert t.dtype == torch.float32 and torch.allclose(t, fixed, atol=4e-3)
    for bad in (fixed * 255, fixed - 0.5):
        with pytest.raises(ValueError, match=r"`image` values must lie in \[0, 1\]"):
            to_image_tensor(bad)
        with pytest.raises(ValueError, match=r"`image` values must lie in \[0, 1\]"):
            to_image_tensor(bad.permute(1, 2, 0).numpy())


# ----------------------------------------------------------------------------- colour profiles
def swapped_profile() -> bytes:
    """An ICC profile whose red and green primaries are sRGB's green and red ("gRGB")."""
    import struct

    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {}
    for i in range(struct.unpack(">I", icc[128:132])[0]):
        sig, offset, size = struct.unpack(">4sII", icc[132 + 12 * i:144 + 12 * i])
        tags[sig] = (offset, size)
    (r, n), (g, _) = tags[b"rXYZ"], tags[b"gXYZ"]
    icc[r:r + n], icc[g:g + n] = icc[g:g + n], icc[r:r + n]
    name = "sRGB".encode("utf-16-be")
    at = bytes(icc).index(name)
    icc[at:at + len(name)] = "gRGB".encode("utf-16-be")
    return bytes(icc)


def test_embedded_colour_profile_is_applied_on_every_path(tmp_path):
    """A photo tagged with another colour space is converted to sRGB (here: red and green
    swapped, so a pure red pixel of the photo is sRGB green), from PIL, from a file, on the
    float and the uint8 paths; an sRGB profile changes nothing."""
    from PIL import ImageCms

    from opticam_widgets.inputs.images import to_image_tensor

    arr = np.zeros((8, 8, 3), np.uint8)
    arr[..., 0] = 255
    tagged = Image.fromarray(arr)
    tagged.info["icc_profile"] = swapped_profile()
    path = tmp_path / "tagged.png"
    tagged.save(path, icc_profile=tagged.info["icc_profile"])
    for source in (tagged, path):
        for t in (to_image_tensor(source), to_image_tensor(source, keep_uint8=True).float() / 255):
            mean = t.float().mean(dim=(1, 2))
            assert mean[1] > 0.95 and mean[0] < 0.05 and mean[2] < 0.05, mean
    srgb = Image.fromarray(arr)
    srgb.info["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert torch.equal(to_image_tensor(srgb), to_image_tensor(Image.fromarray(arr)))


def test_unreadable_colour_profile_warns_and_keeps_the_pixels():
    arr = np.full((4, 4, 3), 200, np.uint8)
    img = Image.fromarray(arr)
    img.info["icc_profile"] = b"not a profile"
    with pytest.warns(UserWarning, match="colour profile could not be applied"):
        t = to_image_tensor(img)
    assert torch.allclose(t, torch.full_like(t, 200 / 255))
