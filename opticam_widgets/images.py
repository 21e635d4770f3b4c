"""Image input: coercion to pixel tensors in [0, 1], validation, and the preprocessing spec.

Everything the explainer and the widget receive as an "image" passes through
:func:`to_pixel_tensor` (one image) or :func:`as_pixel_batch` (one or several images), so every
entry point accepts the same inputs and rejects bad ones with the same clear messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageLike",
    "Preprocess",
    "as_pixel_batch",
    "coerce_preprocess",
    "to_pixel_tensor",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Anything accepted as one image.
ImageLike = Union[str, os.PathLike, "PIL.Image.Image", np.ndarray, Tensor]  # noqa: F821


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input: a size and a normalization, applied to pixels in [0, 1].

    Opti-CAM masks the image in pixel space and only then applies this normalization, so the
    masked-out region is black (the paper's baseline), whatever the model's mean and std.

    Example:
        >>> import torch
        >>> spec = Preprocess(size=(224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        >>> spec.normalize(torch.ones(1, 3, 2, 2)).max().item()
        1.0

    Attributes:
        size: ``(height, width)`` the model receives (bilinear resize, aspect not kept), or
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
            size = tuple(int(s) for s in self.size) if isinstance(self.size, Sequence) else None
            if size is None or len(size) != 2 or min(size) < 1:
                raise ValueError(
                    f"`size` must be (height, width) with positive ints or None, got {self.size!r}"
                )
            object.__setattr__(self, "size", size)
        for name in ("mean", "std"):
            value = getattr(self, name)
            try:
                vals = tuple(float(v) for v in value)
            except TypeError:
                raise TypeError(f"`{name}` must be 3 numbers, got {value!r}") from None
            if len(vals) != 3 or not all(np.isfinite(vals)):
                raise ValueError(f"`{name}` must be 3 finite numbers, got {value!r}")
            object.__setattr__(self, name, vals)
        if any(s <= 0 for s in self.std):
            raise ValueError(f"`std` must be positive, got {self.std!r}")
        if self.transform is not None and not callable(self.transform):
            raise TypeError(f"`transform` must be callable, got {type(self.transform).__name__}")

    def normalize(self, x: Tensor) -> Tensor:
        """Normalize a pixel batch (B, 3, H, W) in [0, 1] for the model (differentiable)."""
        if self.transform is not None:
            return self.transform(x)
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def resize(self, x: Tensor) -> Tensor:
        """Resize a pixel batch (B, 3, H, W) to :attr:`size` (no-op when ``size`` is None)."""
        if self.size is None or tuple(x.shape[-2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False,
                             antialias=True).clamp_(0.0, 1.0)


def coerce_preprocess(preprocess: Any, *, name: str = "preprocess") -> Preprocess:
    """Turn the accepted spellings of a preprocessing spec into a :class:`Preprocess`.

    Args:
        preprocess: ``None`` (ImageNet mean/std, 224×224), a :class:`Preprocess`, a
            ``(mean, std)`` pair, a dict of :class:`Preprocess` fields, or a callable
            normalization (then images are fed at their own size).
        name: Argument name used in error messages.

    Returns:
        The spec.

    Raises:
        TypeError: For any other kind of object.
    """
    if preprocess is None:
        return Preprocess()
    if isinstance(preprocess, Preprocess):
        return preprocess
    if isinstance(preprocess, dict):
        try:
            return Preprocess(**preprocess)
        except TypeError as exc:
            raise TypeError(f"`{name}` dict has unknown keys: {exc}") from None
    if isinstance(preprocess, (tuple, list)) and len(preprocess) == 2:
        return Preprocess(mean=tuple(preprocess[0]), std=tuple(preprocess[1]))
    if callable(preprocess):
        return Preprocess(size=None, transform=preprocess)
    raise TypeError(
        f"`{name}` must be None, a Preprocess, a (mean, std) pair, a dict or a callable; "
        f"got {type(preprocess).__name__}"
    )


def _from_pil(img: Any) -> np.ndarray:
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        arr = np.asarray(img, dtype=np.float32) / 255.0
        rgb, alpha = arr[..., :3], arr[..., 3:]
        return rgb * alpha  # composite onto black, the Opti-CAM baseline
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def _from_path(path: str | os.PathLike, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"`{name}`: no such file {str(p)!r}")
    try:
        with Image.open(p) as img:
            img.load()
            return _from_pil(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"`{name}`: cannot read {str(p)!r} as an image ({exc})") from None


def _from_array(arr: np.ndarray, name: str) -> Tensor:
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"`{name}` array must be uint8 or float, got dtype {arr.dtype}")
    elif np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"`{name}` integer array must be uint8 (0-255); got {arr.dtype}. "
            "Convert it with `arr.astype(np.uint8)` or scale to floats in [0, 1]."
        )
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] not in (3, 4):
        pass
    elif arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)
        if arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] in (1,):
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
        pass
    else:
        raise ValueError(
            f"`{name}` array must have shape (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}"
        )
    if arr.shape[-1] == 4:
        arr = arr[..., :3] * arr[..., 3:]
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)


def _validate(t: Tensor, name: str) -> Tensor:
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"`{name}` must have 3 colour channels (3, H, W); got shape "
                         f"{tuple(t.shape)}")
    if t.shape[1] < 2 or t.shape[2] < 2:
        raise ValueError(f"`{name}` is too small ({t.shape[1]}×{t.shape[2]} pixels); "
                         "give an image of at least 2×2 pixels")
    if not torch.isfinite(t).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"`{name}` values must lie in [0, 1] (pixel space, before normalization); got "
            f"[{lo:.3g}, {hi:.3g}]. Divide uint8 data by 255 and pass un-normalized images: "
            "the model's normalization goes in `preprocess`."
        )
    return t


def to_pixel_tensor(image: Any, *, name: str = "image") -> Tensor:
    """Coerce one image to a float32 tensor (3, H, W) with values in [0, 1].

    Args:
        image: A path (str or Path), a PIL image (any mode; EXIF orientation applied;
            transparency composited on black), an ndarray (H, W), (H, W, 3) or (H, W, 4) as
            uint8 or float in [0, 1], or a tensor (3, H, W) / (1, 3, H, W) / (H, W) in [0, 1].
        name: Argument name used in error messages.

    Returns:
        A CPU or same-device float32 tensor (3, H, W).

    Raises:
        TypeError: For an unsupported kind of object or dtype.
        ValueError: For bad shapes, channel counts, tiny or empty images, or values outside
            [0, 1] or non-finite.

    Example:
        >>> import numpy as np
        >>> to_pixel_tensor(np.zeros((4, 5, 3), dtype=np.uint8)).shape
        torch.Size([3, 4, 5])
    """
    if isinstance(image, (str, os.PathLike)):
        t = torch.from_numpy(np.ascontiguousarray(_from_path(image, name))).permute(2, 0, 1)
    elif isinstance(image, Tensor):
        t = image.detach()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 2:
            t = t.unsqueeze(0).expand(3, -1, -1)
        if t.ndim == 3 and t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        elif not t.is_floating_point():
            raise TypeError(f"`{name}` tensor must be float (or uint8), got {t.dtype}")
        if t.ndim != 3:
            raise ValueError(f"`{name}` tensor must be (3, H, W) or (1, 3, H, W); got shape "
                             f"{tuple(image.shape)}")
        t = t.float()
    elif isinstance(image, np.ndarray):
        if image.size == 0:
            raise ValueError(f"`{name}` is empty (shape {image.shape})")
        t = _from_array(image, name)
    elif type(image).__module__.startswith("PIL."):
        t = torch.from_numpy(np.ascontiguousarray(_from_pil(image))).permute(2, 0, 1)
    else:
        raise TypeError(
            f"`{name}` must be a path, PIL image, numpy array or torch tensor; got "
            f"{type(image).__name__}"
        )
    if t.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(t.shape)})")
    return _validate(t, name)


def as_pixel_batch(image: Any, *, name: str = "image") -> Tensor:
    """Coerce one image, a list of images, or a batch tensor to (B, 3, H, W) in [0, 1].

    Images in a list must share their size (resize them first, or use a
    :class:`Preprocess` with a ``size``, which the explainer applies for you).

    Example:
        >>> import torch
        >>> as_pixel_batch(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    if isinstance(image, Tensor) and image.ndim == 4:
        if image.shape[0] == 0:
            raise ValueError(f"`{name}` batch is empty (shape {tuple(image.shape)})")
        return torch.stack([to_pixel_tensor(im, name=f"{name}[{i}]") for i, im in
                            enumerate(image)])
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError(f"`{name}` is an empty list; give at least one image")
        items = [to_pixel_tensor(im, name=f"{name}[{i}]") for i, im in enumerate(image)]
        shapes = {tuple(t.shape) for t in items}
        if len(shapes) > 1:
            raise ValueError(
                f"`{name}` images have different sizes {sorted(shapes)}; resize them to one size "
                "or explain them one at a time"
            )
        return torch.stack(items)
    return to_pixel_tensor(image, name=name).unsqueeze(0)
