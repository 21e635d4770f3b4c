"""Image input: coercion to pixel tensors in [0, 1], validation, and the preprocessing spec.

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
  applied later by :class:`Preprocess`, after Opti-CAM's masking.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageFileNotFoundError",
    "ImageLike",
    "Preprocess",
    "as_pixel_batch",
    "coerce_preprocess",
    "to_pixel_tensor",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Anything accepted as one image.
ImageLike = Union[str, os.PathLike, bytes, "PIL.Image.Image", np.ndarray, Tensor]  # noqa: F821

#: Smallest accepted height and width, in pixels.
MIN_SIZE = 2


class ImageFileNotFoundError(FileNotFoundError, ValueError):
    """An image path that does not exist (both a ``FileNotFoundError`` and a ``ValueError``)."""


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input: a size and a normalization, applied to pixels in [0, 1].

    Opti-CAM masks the image in pixel space and only then applies this normalization, so the
    masked-out region is black (the paper's baseline), whatever the model's mean and std.
    Images are resized directly to :attr:`size` (bilinear, antialiased; the aspect ratio is not
    kept and nothing is cropped), so the saliency map computed at that size maps back onto the
    whole original image by a plain resize.

    Example:
        >>> import torch
        >>> spec = Preprocess(size=(224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        >>> spec.normalize(torch.ones(1, 3, 2, 2)).max().item()
        1.0
        >>> spec.resize(torch.rand(1, 3, 300, 451)).shape
        torch.Size([1, 3, 224, 224])

    Attributes:
        size: ``(height, width)`` the model receives (an int ``n`` means ``(n, n)``), or
            ``None`` to feed images at their own size.
        mean: Per-channel mean subtracted after masking.
        std: Per-channel standard deviation divided after masking.
        transform: A callable used instead of ``mean``/``std`` when given; it receives a float
            tensor (B, 3, H, W) in [0, 1] and must be differentiable.
    """

    size: tuple[int, int] | None = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    transform: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        if self.size is not None:
            object.__setattr__(self, "size", _check_size(self.size))
        for name in ("mean", "std"):
            value = getattr(self, name)
            try:
                vals = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise TypeError(f"`{name}` must be 3 numbers, got {value!r}") from None
            if len(vals) != 3 or not all(np.isfinite(vals)):
                raise ValueError(f"`{name}` must be 3 finite numbers, got {value!r}")
            object.__setattr__(self, name, vals)
        if any(s <= 0 for s in self.std):
            raise ValueError(f"`std` must be positive, got {self.std!r}")
        if self.transform is not None and not callable(self.transform):
            raise TypeError(f"`transform` must be callable, got {type(self.transform).__name__}")

    def normalize(self, x: Tensor) -> Tensor:
        """Normalize a pixel batch (B, 3, H, W) in [0, 1] for the model (differentiable).

        Example:
            >>> import torch
            >>> Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3).normalize(torch.ones(1, 3, 1, 1))
            tensor([[[[2.]],
            <BLANKLINE>
                     [[2.]],
            <BLANKLINE>
                     [[2.]]]])
        """
        if self.transform is not None:
            return self.transform(x)
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        inv_std = torch.as_tensor([1.0 / s for s in self.std], dtype=x.dtype,
                                  device=x.device).view(1, 3, 1, 1)
        return (x - mean) * inv_std  # multiply, not divide: cheaper in Opti-CAM's inner loop

    def resize(self, x: Tensor) -> Tensor:
        """Resize a pixel batch (B, 3, H, W) to :attr:`size` (no-op when ``size`` is None).

        Example:
            >>> import torch
            >>> Preprocess(size=(4, 6)).resize(torch.rand(2, 3, 9, 9)).shape
            torch.Size([2, 3, 4, 6])
        """
        if self.size is None or tuple(x.shape[-2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False,
                             antialias=True).clamp_(0.0, 1.0)


def _check_size(size: Any) -> tuple[int, int]:
    """Validate a ``(height, width)`` (or a single int) and return it as a tuple of ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    ok = isinstance(size, (Sequence, np.ndarray)) and not isinstance(size, (str, bytes))
    if ok:
        items = list(size)
        ok = len(items) == 2 and all(
            isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool)
            and float(s).is_integer() and s >= 1 for s in items
        )
    if not ok:
        raise ValueError(
            f"`size` must be (height, width) with positive ints, an int, or None; got {size!r}"
        )
    return int(items[0]), int(items[1])


_PREPROCESS_FIELDS = frozenset(f.name for f in fields(Preprocess))


def _from_torchvision_transform(t: Any) -> Preprocess:
    """A torchvision ``ImageClassification`` preset: its crop size becomes the input size."""
    crop = t.crop_size
    crop = list(crop) if isinstance(crop, (list, tuple)) else [crop]
    size = (crop[0], crop[0]) if len(crop) == 1 else (crop[0], crop[1])
    return Preprocess(size=size, mean=tuple(t.mean), std=tuple(t.std))


def coerce_preprocess(preprocess: Any, *, name: str = "preprocess") -> Preprocess:
    """Turn the accepted spellings of a preprocessing spec into a :class:`Preprocess`.

    Args:
        preprocess: One of

            * ``None``: ImageNet mean/std at 224×224;
            * a :class:`Preprocess`;
            * a ``(mean, std)`` pair (224×224);
            * a dict of :class:`Preprocess` fields (``size``, ``mean``, ``std``,
              ``transform``), or a timm data config (``input_size``, ``mean``, ``std``);
            * a torchvision classification preset such as ``ResNet50_Weights.DEFAULT
              .transforms()`` (its crop size becomes the size; resize-then-crop is replaced
              by a direct resize), or the weights enum itself;
            * any other callable: a differentiable normalization (images then keep their size).
        name: Argument name used in error messages.

    Returns:
        The spec.

    Raises:
        TypeError: For any other kind of object.
        ValueError: For bad sizes or numbers.

    Example:
        >>> coerce_preprocess(((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))).mean
        (0.5, 0.5, 0.5)
        >>> coerce_preprocess({"input_size": (3, 256, 256), "mean": (0, 0, 0),
        ...                    "std": (1, 1, 1)}).size
        (256, 256)
    """
    if preprocess is None:
        return Preprocess()
    if isinstance(preprocess, Preprocess):
        return preprocess
    if isinstance(preprocess, Mapping):
        spec = dict(preprocess)
        if "input_size" in spec:  # a timm data config
            input_size = spec["input_size"]
            try:
                size = tuple(input_size)[-2:]
            except TypeError:
                raise ValueError(
                    f"`{name}['input_size']` must be (3, H, W), got {input_size!r}"
                ) from None
            return Preprocess(size=size, mean=spec.get("mean", IMAGENET_MEAN),
                              std=spec.get("std", IMAGENET_STD))
        unknown = sorted(map(str, set(spec) - _PREPROCESS_FIELDS))
        if unknown:
            raise TypeError(
                f"`{name}` dict has unknown keys {unknown}; use {sorted(_PREPROCESS_FIELDS)}"
            )
        return Preprocess(**spec)
    if isinstance(preprocess, (tuple, list)) and len(preprocess) == 2:
        mean, std = preprocess
        if not all(isinstance(v, (Sequence, np.ndarray, Tensor)) for v in (mean, std)):
            raise TypeError(f"`{name}` pair must be (mean, std), each 3 numbers; got "
                            f"{preprocess!r}")
        return Preprocess(mean=tuple(mean), std=tuple(std))
    if hasattr(preprocess, "transforms") and hasattr(preprocess, "meta"):  # torchvision weights
        return _from_torchvision_transform(preprocess.transforms())
    if all(hasattr(preprocess, a) for a in ("crop_size", "mean", "std")):  # torchvision preset
        return _from_torchvision_transform(preprocess)
    if callable(preprocess):
        return Preprocess(size=None, transform=preprocess)
    raise TypeError(
        f"`{name}` must be None, a Preprocess, a (mean, std) pair, a dict, a torchvision "
        f"transform or a callable; got {type(preprocess).__name__}"
    )


# --------------------------------------------------------------------------- PIL images

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _is_pil(image: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
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


def _lab_to_rgb(img: Any, name: str) -> Any:
    """An RGB image from a CIE L*a*b* one, with littlecms (D50, the ICC convention)."""
    from PIL import ImageCms

    try:
        lab = ImageCms.createProfile("LAB")
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.applyTransform(img, ImageCms.buildTransform(lab, srgb, "LAB", "RGB"))
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:  # pragma: no cover - no lcms
        raise ValueError(f"`{name}` is a LAB image and this Pillow cannot convert it ({exc}); "
                         "convert it to RGB first (e.g. skimage.color.lab2rgb)") from None


def _from_pil(img: Any, name: str) -> np.ndarray:
    """Return a float32 (H, W, 3) array in [0, 1] from a PIL image of any mode.

    EXIF orientation is applied. Transparent images are composited onto black (Opti-CAM's
    baseline). 16-bit and 32-bit integer images ("I;16", "I") are read as 16-bit data
    (0-65535; all values in 0-255 is ambiguous and refused); float images ("F") must already
    hold values in [0, 1]; "LAB" is converted by littlecms; other modes by Pillow.
    """
    from PIL import ImageOps

    if 0 in img.size:
        raise ValueError(f"`{name}` is empty ({img.size[0]}×{img.size[1]} pixels)")
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return np.repeat(_from_wide_pil(img, name), 3, axis=-1)
    if mode == "LAB":
        img, mode = _lab_to_rgb(img, name), "RGB"
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
