"""The model's input spec: a size and a normalization, and the spellings that turn into one.

:class:`Preprocess` is what the explainer applies after Opti-CAM's masking (in pixel space);
:func:`coerce_preprocess` builds one from ``None``, a ``(mean, std)`` pair, a dict, a timm data
config, a torchvision weights preset, a torchvision/timm transform pipeline (``Compose`` of
``Resize``, ``CenterCrop``, ``ToTensor``, ``Normalize``... v1 or v2), or a differentiable
callable. Pipelines are read, never run: a resize-then-crop becomes a direct resize of the whole
photo to the crop's size, so the map stays aligned with the photo; anything else (random
augmentation, padding, colour changes, unknown steps) is refused with the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..support.sizes import check_size

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocess", "coerce_preprocess"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input: a size and a normalization, applied to pixels in [0, 1].

    Opti-CAM masks the image in pixel space and only then applies this normalization, so the
    masked-out region is black (the paper's baseline), whatever the model's mean and std.
    Images are resized directly to :attr:`size` (bilinear, antialiased; the aspect ratio is not
    kept and nothing is cropped), so the saliency map computed at that size maps back onto the
    whole original image by a plain resize. A torchvision pipeline that resizes then crops
    (``Resize(256)``, ``CenterCrop(224)``) is converted to a direct resize to the crop size:
    the model then sees the whole photo, slightly squeezed, instead of its center, and the map
    covers the whole photo, aligned with it (see :func:`coerce_preprocess`).

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
        if self.transform is not None and _is_transform(self.transform) \
                and type(self.transform).__name__ != "Normalize":
            raise ValueError(
                "`transform` is a torchvision/timm pipeline, which would run on masked tensors "
                "in the loop; pass it as `preprocess` itself (read into size, mean and std)"
            )

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
            return _checked_transform(self.transform, x)
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        inv_std = torch.as_tensor([1.0 / s for s in self.std], dtype=x.dtype,
                                  device=x.device).view(1, 3, 1, 1)
        return (x - mean) * inv_std  # multiply, not divide: cheaper in Opti-CAM's inner loop

    def resize(self, x: Tensor) -> Tensor:
        """Resize a pixel batch (B, 3, H, W) to :attr:`size` (no-op when ``size`` is None).

        A uint8 batch (0-255) is read as ``x / 255`` and resized in bands of rows, so that no
        float copy of a big photo is ever made; the result is the same, bit for bit, as
        resizing ``x.float() / 255`` (the antialiased resize is separable: the horizontal pass
        runs per band, the vertical one on the thin result).

        Example:
            >>> import torch
            >>> Preprocess(size=(4, 6)).resize(torch.rand(2, 3, 9, 9)).shape
            torch.Size([2, 3, 4, 6])
        """
        if x.dtype == torch.uint8:
            return _resize_uint8(x, self.size)
        if self.size is None or tuple(x.shape[-2:]) == self.size:
            return x
        return _interpolate(x, self.size)


def _interpolate(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                         antialias=True).clamp_(0.0, 1.0)


#: Bytes of float pixels a band of rows of a uint8 photo takes in :meth:`Preprocess.resize`
#: (about 64 rows of a 12-megapixel photo: the fastest measured; 16 or 192 rows take twice as
#: long).
_BAND_BYTES = 3 << 20


def _resize_uint8(x: Tensor, size: tuple[int, int] | None) -> Tensor:
    """``resize(x.float() / 255)`` of a uint8 batch, one band of rows at a time."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if size is None or (height, width) == tuple(size):
        return x.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
    rows = max(1, _BAND_BYTES // (4 * x.shape[0] * 3 * width))
    bands = []
    for top in range(0, height, rows):
        # in the input's layout: a photo's channels-last view converts without a transpose
        band = x[..., top:top + rows, :].to(torch.float32).div_(255.0)
        bands.append(band if width == size[1] else F.interpolate(
            band, size=(band.shape[-2], size[1]), mode="bilinear", align_corners=False,
            antialias=True))
    tall = torch.cat(bands, dim=-2)
    return tall.clamp_(0.0, 1.0) if height == size[0] else _interpolate(tall, size)


def _checked_transform(transform: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``transform(x)``, refused unless it is a tensor of the input's batch and spatial size.

    A transform that resizes or crops would misalign the map with the photo.
    """
    out = transform(x)
    if not isinstance(out, Tensor):
        raise TypeError(f"`preprocess` transform must return a tensor, got {type(out).__name__}; "
                        "give a differentiable normalization of a (B, 3, H, W) tensor")
    if out.ndim != 4 or out.shape[0] != x.shape[0] or out.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"`preprocess` transform changed the input's shape from {tuple(x.shape)} to "
            f"{tuple(out.shape)}; it must only normalize (the map would be misaligned). Put the "
            "size in the spec instead: Preprocess(size=(h, w), transform=normalization)"
        )
    return out


def _check_size(size: Any) -> tuple[int, int]:
    """A ``(height, width)``, or a single int for a square (:func:`check_size`'s rule)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    return check_size(size)


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
            * a torchvision (v1 or v2) or timm evaluation pipeline: a ``Compose`` (or an
              ``nn.Sequential``, or one transform) of ``Resize``, ``CenterCrop``,
              ``ToTensor``/``PILToTensor``/``ToImage``, ``ConvertImageDtype``/``ToDtype`` and
              ``Normalize``, as written by hand or by timm's ``create_transform``. It is read,
              not run: the last ``Resize((h, w))`` or ``CenterCrop`` gives the size, and
              resize-then-crop becomes a direct (bilinear) resize of the whole photo to the
              crop's size, so the map covers the whole photo, aligned with it, while the
              model sees the whole photo slightly squeezed instead of its center; its
              predictions can differ a little from the pipeline's. 0-255 pixels
              (``PILToTensor`` without rescaling) are followed exactly. Random augmentation,
              an aspect-keeping ``Resize(n)`` with no crop after it, and any other step are
              refused (``ValueError``) with the fix;
            * any other callable: a differentiable normalization that keeps the input's size
              (images then keep their size; a callable that resizes or crops is refused when
              it runs).
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
    steps = _pipeline_steps(preprocess, name)
    if steps is not None:
        return _from_pipeline(steps, name)
    if callable(preprocess):
        return Preprocess(size=None, transform=preprocess)
    raise TypeError(
        f"`{name}` must be None, a Preprocess, a (mean, std) pair, a dict, a torchvision "
        f"transform or a callable; got {type(preprocess).__name__}"
    )


# --------------------------------------------------------------------------- pipelines

#: Steps that only change how pixels are stored: the value scale they leave (None: unchanged).
_PIXEL_STEPS = {"ToTensor": 1.0, "MaybeToTensor": 1.0, "PILToTensor": 255.0,
                "MaybePILToTensor": 255.0, "ToImage": 255.0, "ToImageTensor": 255.0,
                "ToPureTensor": None, "ConvertImageDtype": None, "ToDtype": None, "ToNumpy": 255.0}
_CROPS = ("CenterCrop", "CenterCropOrPad")
_RANDOM = ("ColorJitter", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix",
           "GaussianBlur", "GaussianNoise", "ElasticTransform")


def _is_transform(obj: Any) -> bool:
    """Whether ``obj`` is a torchvision or timm transform (whose steps can be read)."""
    return type(obj).__module__.startswith(("torchvision.transforms", "timm.data"))


def _pipeline_steps(preprocess: Any, name: str) -> list[Any] | None:
    """The flat list of steps of a transform pipeline, or None for anything else."""
    if isinstance(preprocess, nn.Sequential) and not _is_transform(preprocess):
        items = list(preprocess)
        if not items or not all(_is_transform(t) for t in items):
            return None
    elif not _is_transform(preprocess):
        return None
    elif type(preprocess).__name__ == "Compose":
        items = list(preprocess.transforms)
    else:
        return [preprocess]
    steps: list[Any] = []
    for i, item in enumerate(items):
        sub = _pipeline_steps(item, name) if _is_transform(item) else None
        if sub is None:
            raise ValueError(
                f"`{name}` step {i} ({item!r}) is not a torchvision transform, so the map's "
                "alignment cannot be known; give Preprocess(size=(h, w), mean=..., std=...)"
            )
        steps.extend(sub)
    return steps


def _pair(size: Any) -> tuple[int, int] | None:
    """``(h, w)`` from a transform's size, or None for a single int (keep the aspect ratio)."""
    if isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    return None if size is None or isinstance(size, int) else _check_size(tuple(size))


def _dtype_scale(t: Any, scale: float) -> float:
    """The value scale after ``ConvertImageDtype`` or ``ToDtype``."""
    dtype = t.dtype
    if isinstance(dtype, Mapping):  # v2.ToDtype({tv_tensors.Image: torch.float32, ...})
        dtype = next((v for k, v in dtype.items() if getattr(k, "__name__", "") == "Image"),
                     next(iter(dtype.values()), None))
    if type(t).__name__ == "ToDtype" and not getattr(t, "scale", False):
        return scale
    if isinstance(dtype, torch.dtype):
        return 1.0 if dtype.is_floating_point else 255.0
    return scale


def _refuse_step(t: Any, name: str) -> None:
    kind = type(t).__name__
    if kind.startswith("Random") or kind in _RANDOM:
        raise ValueError(
            f"`{name}` holds the random transform {kind} (training augmentation): every "
            "explanation would see another image. Pass the evaluation pipeline instead (e.g. "
            "weights.transforms(), or timm's create_transform(**config) without is_training)"
        )
    raise ValueError(
        f"`{name}` step {kind} is not supported: a pipeline may hold Resize, CenterCrop, "
        "ToTensor/PILToTensor/ToImage, ConvertImageDtype/ToDtype and Normalize. Give the spec "
        "yourself: Preprocess(size=(h, w), mean=..., std=...)"
    )


def _from_pipeline(steps: list[Any], name: str) -> Preprocess:
    """Read a pipeline's steps into a spec (see :func:`coerce_preprocess`)."""
    size: tuple[int, int] | None = None
    keeps_aspect = False  # a Resize(n) whose output size depends on the photo
    scale, norm = 1.0, None
    for t in steps:
        kind = type(t).__name__
        if kind in ("Resize", "ResizeKeepRatio"):
            pair = _pair(t.size)
            keeps_aspect = pair is None or kind == "ResizeKeepRatio"
            size = pair if not keeps_aspect else size
        elif kind in _CROPS:
            crop = t.size[0] if isinstance(t.size, (list, tuple)) and len(t.size) == 1 else t.size
            size, keeps_aspect = _check_size(crop if isinstance(crop, int) else tuple(crop)), False
        elif kind == "ToTensor" and type(t).__module__.startswith("timm"):
            scale = 255.0  # timm's ToTensor keeps 0-255 values
        elif kind in _PIXEL_STEPS:
            scale = _PIXEL_STEPS[kind] or (_dtype_scale(t, scale) if "Dtype" in kind else scale)
        elif kind == "Normalize":
            if norm is not None:
                raise ValueError(f"`{name}` holds two Normalize steps; keep one")
            mean, std = (tuple(float(v) for v in np.ravel(a.tolist() if isinstance(a, Tensor)
                                                          else a)) for a in (t.mean, t.std))
            if len(mean) == 1 or len(std) == 1:
                mean, std = mean * (3 // len(mean)), std * (3 // len(std))
            norm = (tuple(m / scale for m in mean), tuple(s / scale for s in std))
        else:
            _refuse_step(t, name)
    if keeps_aspect:
        raise ValueError(
            f"`{name}` resizes keeping the aspect ratio with no crop after it, so the model's "
            "input size depends on the photo; use Resize((h, w)), add a CenterCrop, or give "
            "Preprocess(size=None, mean=..., std=...) to feed images at their own size"
        )
    mean, std = norm if norm is not None else ((0.0,) * 3, (1.0 / scale,) * 3)
    return Preprocess(size=size, mean=mean, std=std)
