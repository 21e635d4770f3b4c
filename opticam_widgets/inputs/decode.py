"""Reading every kind of image source: paths, bytes, PIL images, arrays and tensors.

The readers behind :func:`~opticam_widgets.inputs.images.to_image_tensor`: each turns one kind of
source into pixels, with the checks and messages every entry point shares. Two families:

* float readers (:func:`read_path`, :func:`read_pil`, :func:`read_array`, :func:`read_tensor`,
  ...): pixels in [0, 1], for any mode, depth or dtype;
* 8-bit readers (:func:`uint8_hwc`, :func:`uint8_view`): the same pixels kept as uint8 (0-255)
  for 8-bit sources, so a 12-megapixel photo stays 36 MB instead of 146 MB of float32, or
  ``None`` where the source is not 8-bit (the float readers take it then).

Example:
    >>> import numpy as np
    >>> read_array(np.zeros((4, 5, 3), dtype=np.uint8), "image").shape
    torch.Size([3, 4, 5])
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from .colorspace import lab_to_rgb, to_srgb

__all__ = ["MIN_SIZE", "ImageFileNotFoundError", "ImageLike", "check_size", "check_values",
           "is_pil", "read_array", "read_file", "read_path", "read_pil", "read_tensor",
           "refuse_url", "to_chw", "uint8_hwc", "uint8_view"]

#: Anything accepted as one image.
ImageLike = Union[str, os.PathLike, bytes, "PIL.Image.Image", np.ndarray, Tensor]  # noqa: F821

#: Smallest accepted height and width, in pixels.
MIN_SIZE = 2


class ImageFileNotFoundError(FileNotFoundError, ValueError):
    """An image path that does not exist (both a ``FileNotFoundError`` and a ``ValueError``)."""


# --------------------------------------------------------------------------- PIL images

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def is_pil(image: Any) -> bool:
    """Whether ``image`` is a PIL image (PIL imported only when asked)."""
    from PIL import Image  # a dependency

    return isinstance(image, Image.Image)


def _from_wide_pil(img: Any, name: str) -> np.ndarray:
    """One grey channel (H, W, 1) in [0, 1] from a 16-bit, 32-bit integer or float image."""
    mode = img.mode
    arr = np.asarray(img).astype(np.float32)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if mode == "F":
        if lo < 0.0 or hi > 1.0:
            hint = (" If it holds 8-bit values (0-255), convert it with image.convert('L')."
                    if lo >= 0.0 and hi <= 255.0 else "")
            raise ValueError(f"`{name}` is a float image (mode F) with values in [{lo:.3g}, "
                             f"{hi:.3g}]; its values must lie in [0, 1].{hint}")
        return arr[..., None]
    if lo < 0 or hi > 65535:
        raise ValueError(f"`{name}` is a 32-bit integer image (mode I) with values outside "
                         "0-65535; convert it to 8 or 16 bits first")
    if 0 < hi <= 255:
        raise ValueError(
            f"`{name}` is a {'16' if mode != 'I' else '32'}-bit image (mode {mode}) whose values "
            "all lie in 0-255, which is ambiguous: read as 16-bit data (0-65535) it is black. "
            "If it holds 8-bit values, convert it with image.convert('L'); if it is a very dark "
            "16-bit image, pass np.asarray(image) / 65535 instead"
        )
    return arr[..., None] / 65535.0


def read_pil(img: Any, name: str) -> np.ndarray:
    """Return a float32 (H, W, 3) array in [0, 1] from a PIL image of any mode.

    EXIF orientation is applied. Transparent images are composited onto black (Opti-CAM's
    baseline). 16-bit and 32-bit integer images ("I;16", "I") are read as 16-bit data
    (0-65535; all values in 0-255 is ambiguous and refused); float images ("F") must already
    hold values in [0, 1]; "LAB" and embedded ICC profiles are converted by littlecms
    (:mod:`~opticam_widgets.inputs.colorspace`); other modes by Pillow.
    """
    from PIL import ImageOps

    if 0 in img.size:
        raise ValueError(f"`{name}` is empty ({img.size[0]}×{img.size[1]} pixels)")
    img = to_srgb(ImageOps.exif_transpose(img))  # an embedded colour profile applied
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return np.repeat(_from_wide_pil(img, name), 3, axis=-1)
    if mode == "LAB":
        img, mode = lab_to_rgb(img, name), "RGB"
    if mode in ("RGBa", "La"):  # premultiplied alpha: the colour is composited onto black
        arr = np.asarray(img, dtype=np.float32)[..., :-1] / 255.0
        return np.repeat(arr, 3, axis=-1) if mode == "La" else arr
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    try:
        if has_alpha:
            arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
            return arr[..., :3] * arr[..., 3:]  # composite onto black, the Opti-CAM baseline
        return np.asarray(img if mode == "RGB" else img.convert("RGB"), dtype=np.float32) / 255.0
    except ValueError as exc:  # "conversion from X to RGB not supported"
        raise ValueError(f"`{name}`: PIL cannot convert mode {mode!r} to RGB ({exc}); convert "
                         "it to RGB yourself and pass that") from None


def read_file(source: Any, label: str, name: str) -> np.ndarray:
    """Decode an image file (path or file-like) to a float32 (H, W, 3) array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as img:
            img.load()
            return read_pil(img, name)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"`{name}`: cannot read {label} as an image ({exc})") from None


#: A URL or URI: a scheme of two letters or more (not a Windows drive), then ``:/``; or ``data:``.
_URL = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]+:/|data:)")


def refuse_url(text: str, name: str) -> None:
    """Raise a ValueError when ``text`` is a URL: the package never downloads anything."""
    if not _URL.match(text):
        return
    if text[:5].lower() == "file:":
        raise ValueError(f"`{name}` is a file: URL ({text[:80]!r}); pass the path itself, e.g. "
                         "`urllib.parse.urlparse(url).path`")
    if text[:5].lower() == "data:":
        raise ValueError(
            f"`{name}` is a data: URI ({text[:40]!r}...); URIs are not decoded. Decode it "
            "first, e.g. `base64.b64decode(uri.split(',', 1)[1])`, and pass the bytes"
        )
    raise ValueError(
        f"`{name}` is a URL ({text[:80]!r}); URLs are not fetched. Download the file first, "
        "e.g. `urllib.request.urlretrieve(url, 'photo.jpg')`, and pass its path (or pass the "
        "downloaded bytes)"
    )


def read_path(path: str | os.PathLike, name: str) -> np.ndarray:
    """(H, W, C) float pixels of the image file at ``path`` (a missing file or a URL refused)."""
    p = Path(path).expanduser()
    if not p.exists():
        refuse_url(str(path), name)
        raise ImageFileNotFoundError(f"`{name}`: no such file {str(p)!r}")
    if not p.is_file():
        raise ValueError(f"`{name}`: {str(p)!r} is not a file")
    return read_file(p, repr(str(p)), name)


# --------------------------------------------------------------------------- arrays


def _hwc(arr: np.ndarray, name: str) -> np.ndarray:
    """Return an (H, W, C) view with C in (1, 3, 4), deciding the layout of 3-D arrays."""
    if arr.ndim == 2:
        return arr[..., None]
    if arr.ndim != 3:
        raise ValueError(
            f"`{name}` array must have shape (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}"
        )
    h, w, c = arr.shape
    channels_last = c in (1, 3, 4) and min(h, w) >= MIN_SIZE
    channels_first = h in (1, 3) and min(w, c) >= MIN_SIZE
    if channels_last and channels_first:
        raise ValueError(
            f"`{name}` array shape {arr.shape} is ambiguous: it reads as (H, W, C) and as "
            f"(C, H, W). Pass a channels-last array (H, W, 3) — e.g. `np.moveaxis(a, 0, -1)` "
            "for a channels-first one — or a torch tensor (3, H, W)"
        )
    if channels_first:
        return np.moveaxis(arr, 0, -1)
    if c in (1, 3, 4):
        return arr  # too small either way: _validate reports the size
    raise ValueError(
        f"`{name}` array must have shape (H, W), (H, W, 3) or (H, W, 4); got {arr.shape} "
        f"({c} channels)"
    )


def read_array(arr: np.ndarray, name: str) -> Tensor:
    """(3, H, W) float32 pixels of a channels-last (or unambiguous channels-first) array."""
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        data = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        data = np.asarray(arr, dtype=np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"`{name}` integer array must be uint8 (0-255); got {arr.dtype}. Pass 8-bit values "
            "as `arr.astype(np.uint8)`, 16-bit data as `arr / 65535`, anything else scaled to "
            "floats in [0, 1]."
        )
    else:
        raise TypeError(f"`{name}` array must be uint8 or float, got dtype {arr.dtype}")
    data = _hwc(data, name)
    check_values(data, name)
    if data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    elif data.shape[-1] == 4:
        data = data[..., :3] * data[..., 3:]  # composite onto black
    return to_chw(data)


def to_chw(arr: np.ndarray) -> Tensor:
    """A new contiguous float32 tensor (3, H, W) from an (H, W, 3) array (never a view)."""
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1), dtype=np.float32, order="C",
                                     copy=True))


def check_values(data: np.ndarray | Tensor, name: str) -> None:
    """Refuse non-finite values and floats outside [0, 1], naming ``name``."""
    if isinstance(data, Tensor):
        finite = bool(torch.isfinite(data).all())
    else:
        finite = bool(np.isfinite(data).all())
    if not finite:
        raise ValueError(f"`{name}` contains NaN or infinite values")
    lo, hi = float(data.min()), float(data.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"`{name}` values must lie in [0, 1] (pixel space, before normalization); got "
            f"[{lo:.3g}, {hi:.3g}]. Divide uint8 data by 255 and pass un-normalized images: "
            "the model's normalization goes in `preprocess`."
        )


# --------------------------------------------------------------------------- tensors


def read_tensor(image: Tensor, name: str) -> Tensor:
    """(3, H, W) float32 pixels of a channels-first tensor (a new tensor, on its device)."""
    t = image.detach()
    if t.is_meta or t.layout != torch.strided:
        raise ValueError(f"`{name}` must be a dense tensor with data; got a {t.layout} tensor on "
                         f"{t.device}: pass `t.to_dense()` (sparse) or a tensor on a real device")
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point()
                                                         or t.dtype == torch.uint8):
        raise TypeError(f"`{name}` tensor must be float in [0, 1] (or uint8), got {t.dtype}; "
                        "pass 8-bit values as `t.to(torch.uint8)`, 16-bit data as `t / 65535`")
    if t.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(t.shape)})")
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        hint = ""
        if t.ndim == 3 and t.shape[-1] in (1, 3, 4):
            hint = " (tensors are channels-first: use `t.permute(2, 0, 1)` for an (H, W, C) one)"
        elif t.ndim == 4:
            hint = " (for a batch, use `as_image_batch` or `OptiCAM.explain`)"
        raise ValueError(
            f"`{name}` tensor must be (3, H, W), (1, H, W), (H, W) or (1, 3, H, W); got shape "
            f"{tuple(image.shape)}{hint}"
        )
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    else:
        t = t.to(torch.float32, copy=True)  # never alias the caller's tensor
    check_values(t, name)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.contiguous()


# --------------------------------------------------------------------------- public


def check_size(t: Tensor, name: str) -> Tensor:
    """``t`` if it is (3, H, W) and at least :data:`MIN_SIZE` pixels each way, else refused."""
    if t.ndim != 3 or t.shape[0] != 3:  # pragma: no cover - guaranteed by the converters
        raise ValueError(f"`{name}` must have 3 colour channels (3, H, W); got shape "
                         f"{tuple(t.shape)}")
    if t.shape[1] < MIN_SIZE or t.shape[2] < MIN_SIZE:
        raise ValueError(f"`{name}` is too small ({t.shape[1]}×{t.shape[2]} pixels); "
                         f"give an image of at least {MIN_SIZE}×{MIN_SIZE} pixels")
    return t


#: PIL modes read as 8-bit RGB by ``convert("RGB")`` with no compositing or scaling.
_EIGHT_BIT_MODES = ("RGB", "L", "P", "1", "CMYK", "YCbCr", "HSV")
#: Bytes of a PIL image (4 a pixel inside PIL) copied into the uint8 array at a time: strips
#: this small stay in cache and reuse their memory (512-row strips of a 12-megapixel photo,
#: 8 MB each, made the copy 5 times slower).
_STRIP_BYTES = 2 << 20


def _new_hwc(height: int, width: int) -> np.ndarray:
    """An uninitialised (H, W, 3) uint8 array in memory from torch's allocator.

    Not numpy's: numpy asks the kernel for transparent huge pages for big arrays, and their
    first touch can stall on memory compaction (measured in the widget: 75 ms for a
    12-megapixel photo's 36 MB, against 12 ms in 4 KB pages).
    """
    return torch.empty((height, width, 3), dtype=torch.uint8).numpy()


def _pil_uint8(img: Any) -> np.ndarray | None:
    """(H, W, 3) uint8 of an 8-bit PIL image without transparency, else ``None``.

    EXIF orientation is applied, as :func:`~opticam_widgets.inputs.images.to_image_tensor` does.
    """
    from PIL import ImageOps

    if (img.mode not in _EIGHT_BIT_MODES or "transparency" in img.info or 0 in img.size
            or "A" in img.getbands()):
        return None
    if img.getexif().get(0x0112, 1) not in (None, 1):  # a copy only when it rotates
        img = ImageOps.exif_transpose(img)
    img = to_srgb(img)  # an embedded colour profile other than sRGB applied (a copy then)
    width, height = img.size
    arr = _new_hwc(height, width)
    rows = max(1, _STRIP_BYTES // (4 * width))
    for top in range(0, height, rows):  # in strips: no second full-size copy on the way
        strip = img.crop((0, top, width, min(top + rows, height)))
        arr[top:top + rows] = np.asarray(strip if img.mode == "RGB" else strip.convert("RGB"))
    return arr


def _open_uint8(source: Any) -> np.ndarray | None:
    """The uint8 pixels of an 8-bit image file, or ``None`` (anything else, errors included)."""
    from PIL import Image

    try:
        with Image.open(source) as img:
            img.load()
            return _pil_uint8(img)
    except Exception:  # the float path reports the error with its own message
        return None


def uint8_hwc(image: Any) -> np.ndarray | None:
    """An (H, W, 3) uint8 array of our own for an 8-bit source, else ``None``."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return _pil_uint8(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        return _open_uint8(path) if path.is_file() else None
    if isinstance(image, (bytes, bytearray, memoryview)) and len(image) >= 4096:
        return _open_uint8(io.BytesIO(bytes(image)))
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 \
            and image.shape[-1] == 3 and image.shape[0] not in (1, 3):
        arr = _new_hwc(*image.shape[:2])
        np.copyto(arr, image)
        return arr
    return None


def uint8_view(image: Any) -> Tensor | None:
    """A (3, H, W) uint8 CPU tensor (or (1, 3, H, W)) as a detached view, else ``None``."""
    if isinstance(image, Tensor) and image.dtype == torch.uint8 and image.layout == torch.strided \
            and not image.is_meta and image.device.type == "cpu" and image.ndim in (3, 4) \
            and image.shape[-3] == 3 and (image.ndim == 3 or image.shape[0] == 1) \
            and min(image.shape[-2:]) >= MIN_SIZE:
        return image.detach().reshape(image.shape[-3:])
    return None
