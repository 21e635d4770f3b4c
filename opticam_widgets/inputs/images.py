"""Image input: coercion to pixel tensors in [0, 1], and validation.

Everything the explainer and the widget receive as an "image" passes through
:func:`to_pixel_tensor` (one image) or :func:`as_pixel_batch` (one or several images), so every
entry point accepts the same inputs and rejects bad ones with the same clear messages.

Conventions:

* numpy arrays are channels-last, as PIL, scikit-image and matplotlib produce them:
  (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). A channels-first array (1 or 3, H, W) is accepted
  only when its shape cannot be read channels-last; a shape that reads both ways, such as
  (3, 5, 3), is refused with a message rather than guessed.
* torch tensors are channels-first: (3, H, W), (1, H, W), (H, W) or (1, 3, H, W).
* Values are pixels in [0, 1] (uint8 data is divided by 255); the model's normalization is
  applied later by :class:`~opticam_widgets.inputs.preprocess.Preprocess`, after Opti-CAM's masking
  (re-exported here with :func:`~opticam_widgets.inputs.preprocess.coerce_preprocess`).
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
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, coerce_preprocess

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageFileNotFoundError", "ImageLike", "Preprocess",
           "as_pixel_batch", "coerce_preprocess", "to_pixel_tensor"]

#: Anything accepted as one image.
ImageLike = Union[str, os.PathLike, bytes, "PIL.Image.Image", np.ndarray, Tensor]  # noqa: F821

#: Smallest accepted height and width, in pixels.
MIN_SIZE = 2


class ImageFileNotFoundError(FileNotFoundError, ValueError):
    """An image path that does not exist (both a ``FileNotFoundError`` and a ``ValueError``)."""


# --------------------------------------------------------------------------- PIL images

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _is_pil(image: Any) -> bool:
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


def _from_pil(img: Any, name: str) -> np.ndarray:
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


def _open_image(source: Any, label: str, name: str) -> np.ndarray:
    """Decode an image file (path or file-like) to a float32 (H, W, 3) array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as img:
            img.load()
            return _from_pil(img, name)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"`{name}`: cannot read {label} as an image ({exc})") from None


#: A URL or URI: a scheme of two letters or more (not a Windows drive), then ``:/``; or ``data:``.
_URL = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]+:/|data:)")


def _refuse_url(text: str, name: str) -> None:
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


def _from_path(path: str | os.PathLike, name: str) -> np.ndarray:
    p = Path(path).expanduser()
    if not p.exists():
        _refuse_url(str(path), name)
        raise ImageFileNotFoundError(f"`{name}`: no such file {str(p)!r}")
    if not p.is_file():
        raise ValueError(f"`{name}`: {str(p)!r} is not a file")
    return _open_image(p, repr(str(p)), name)


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


def _from_array(arr: np.ndarray, name: str) -> Tensor:
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
    _check_values(data, name)
    if data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    elif data.shape[-1] == 4:
        data = data[..., :3] * data[..., 3:]  # composite onto black
    return _to_chw(data)


def _to_chw(arr: np.ndarray) -> Tensor:
    """A new contiguous float32 tensor (3, H, W) from an (H, W, 3) array (never a view)."""
    return torch.from_numpy(np.array(arr.transpose(2, 0, 1), dtype=np.float32, order="C",
                                     copy=True))


def _check_values(data: np.ndarray | Tensor, name: str) -> None:
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


def _from_tensor(image: Tensor, name: str) -> Tensor:
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
            hint = " (for a batch, use `as_pixel_batch` or `OptiCAM.explain`)"
        raise ValueError(
            f"`{name}` tensor must be (3, H, W), (1, H, W), (H, W) or (1, 3, H, W); got shape "
            f"{tuple(image.shape)}{hint}"
        )
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    else:
        t = t.to(torch.float32, copy=True)  # never alias the caller's tensor
    _check_values(t, name)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.contiguous()


# --------------------------------------------------------------------------- public


def _validate_size(t: Tensor, name: str) -> Tensor:
    if t.ndim != 3 or t.shape[0] != 3:  # pragma: no cover - guaranteed by the converters
        raise ValueError(f"`{name}` must have 3 colour channels (3, H, W); got shape "
                         f"{tuple(t.shape)}")
    if t.shape[1] < MIN_SIZE or t.shape[2] < MIN_SIZE:
        raise ValueError(f"`{name}` is too small ({t.shape[1]}×{t.shape[2]} pixels); "
                         f"give an image of at least {MIN_SIZE}×{MIN_SIZE} pixels")
    return t


def to_pixel_tensor(image: Any, *, name: str = "image") -> Tensor:
    """Coerce one image to a float32 tensor (3, H, W) with values in [0, 1].

    Args:
        image: One of

            * a path (``str`` or :class:`os.PathLike`) to an image file;
            * encoded file content (``bytes``, ``bytearray``, ``memoryview``, e.g. from an
              upload widget) or a binary file object;
            * a PIL image of any mode (RGB, RGBA, L, LA, P, 1, CMYK, YCbCr, I;16, I, F, ...);
              EXIF orientation is applied, transparency is composited onto black, 16-bit
              data is scaled from 0-65535;
            * an ndarray (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), uint8 or float in [0, 1]
              (a channels-first (3, H, W) array is accepted when unambiguous);
            * a tensor (3, H, W), (1, H, W), (H, W) or (1, 3, H, W), float in [0, 1] or uint8.
        name: Argument name used in error messages.

    Returns:
        A float32 tensor (3, H, W) on the input tensor's device (CPU otherwise); a new tensor,
        never a view of the caller's data.

    Raises:
        TypeError: For an unsupported kind of object or dtype.
        ValueError: For an unreadable file, bad shapes or channel counts, images smaller than
            2×2 pixels, or values outside [0, 1] or non-finite. A missing file raises
            :class:`ImageFileNotFoundError`, which is both a ``FileNotFoundError`` and a
            ``ValueError``.

    Example:
        >>> import numpy as np
        >>> to_pixel_tensor(np.zeros((4, 5, 3), dtype=np.uint8)).shape
        torch.Size([3, 4, 5])
    """
    if isinstance(image, (str, os.PathLike)):
        t = _to_chw(_from_path(image, name))
    elif isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ValueError(f"`{name}` is empty bytes; give the content of an image file")
        if len(image) < 4096 and bytes(image[:5]).isascii():  # b"https://..." is no image
            _refuse_url(bytes(image[:100]).decode("ascii", "replace"), name)
        t = _to_chw(_open_image(io.BytesIO(bytes(image)), "the given bytes", name))
    elif isinstance(image, Tensor):
        t = _from_tensor(image, name)
    elif isinstance(image, np.ndarray):
        t = _from_array(image, name)
    elif _is_pil(image):
        t = _to_chw(_from_pil(image, name))
    elif hasattr(image, "read") and callable(image.read):
        t = _to_chw(_open_image(image, "the given file object", name))
    else:
        raise TypeError(
            f"`{name}` must be a path, image bytes, a PIL image, a numpy array or a torch "
            f"tensor; got {type(image).__name__}"
        )
    if not isinstance(image, (Tensor, np.ndarray)):
        _check_values(t, name)  # e.g. an "F" mode PIL image outside [0, 1]
    return _validate_size(t, name)


def as_pixel_batch(image: Any, *, name: str = "image") -> Tensor:
    """Coerce one image, a list of images, or a batch to a float32 tensor (B, 3, H, W) in [0, 1].

    Args:
        image: One image (anything :func:`to_pixel_tensor` accepts), a list or tuple of
            same-size images, a tensor batch (B, 3, H, W), or an ndarray batch (B, H, W, C).
        name: Argument name used in error messages (items are named ``name[i]``).

    Returns:
        The batch.

    Raises:
        TypeError: See :func:`to_pixel_tensor`.
        ValueError: See :func:`to_pixel_tensor`; also an empty list or images of different
            sizes (resize them first, or explain them one at a time; :class:`Preprocess`
            resizes every image to the model's size inside the explainer anyway).

    Example:
        >>> import torch
        >>> as_pixel_batch(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    if isinstance(image, (Tensor, np.ndarray)) and image.ndim == 4:
        if image.shape[0] == 0:
            raise ValueError(f"`{name}` batch is empty (shape {tuple(image.shape)})")
        items = [to_pixel_tensor(im, name=f"{name}[{i}]") for i, im in enumerate(image)]
    elif isinstance(image, (list, tuple)):
        if not image:
            raise ValueError(f"`{name}` is an empty list; give at least one image")
        items = [to_pixel_tensor(im, name=f"{name}[{i}]") for i, im in enumerate(image)]
    else:
        return to_pixel_tensor(image, name=name).unsqueeze(0)
    shapes = {tuple(t.shape) for t in items}
    if len(shapes) > 1:
        raise ValueError(
            f"`{name}` images have different sizes {sorted(shapes)}; resize them to one size "
            "or explain them one at a time"
        )
    devices = {t.device for t in items}
    if len(devices) > 1:
        raise ValueError(f"`{name}` images are on different devices {sorted(map(str, devices))}")
    return torch.stack(items)
