"""What a removed pixel becomes: the fills of the masking metrics, curves and ROAD's baselines.

A yardstick that removes pixels must say what it puts in their place, and the verdict depends
on it (issue 29: Opti-CAM is optimised with black, the paper's fill). Every metric of
:mod:`~opticam_widgets.evaluation` names its fill from this one registry:

* ``"black"``: zeros in pixel space (Opti-CAM's and the paper's baseline, the default of
  :func:`~opticam_widgets.evaluation.metrics.faithfulness`);
* ``"mean"``: the dataset's mean colour, i.e. the model's normalisation mean
  (``preprocess.mean``, ImageNet's for the bundled models); masking with it is what
  pytorch-grad-cam's ``CamMultImageConfidenceChange`` does by multiplying the *normalised*
  tensor, whose zero is that colour;
* ``"blur"``: the image blurred by a Gaussian (kernel 11, σ 5, RISE's insertion baseline),
  computed at the model's input resolution;
* ``"image-mean"``: each image's own mean colour.

A new fill is one :func:`register_fill` entry.

Example:
    >>> import torch
    >>> from opticam_widgets.inputs.preprocess import Preprocess
    >>> fill_image("mean", torch.rand(1, 3, 4, 4), Preprocess(mean=(0.5, 0.25, 0.0)))[0, :, 0, 0]
    tensor([0.5000, 0.2500, 0.0000])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..inputs.preprocess import Preprocess

__all__ = ["FILLS", "FillFn", "check_fill", "fill_image", "register_fill"]

#: ``(pixels (B, 3, H, W) in [0, 1], preprocess) -> fill (B, 3, H, W)`` in pixel space.
FillFn = Callable[[Tensor, Preprocess], Tensor]

#: The fills by name; a new one is one :func:`register_fill` entry.
REGISTRY: dict[str, FillFn] = {}


def register_fill(name: str) -> Callable[[FillFn], FillFn]:
    """Register ``(pixels, preprocess) -> fill`` under ``name`` (a decorator).

    Example:
        >>> @register_fill("white-test")
        ... def white(x, pre):
        ...     return torch.ones_like(x)
        >>> "white-test" in REGISTRY
        True
        >>> del REGISTRY["white-test"]
    """
    def add(fn: FillFn) -> FillFn:
        REGISTRY[name] = fn
        return fn
    return add


def fill_image(fill: str, pixels: Tensor, preprocess: Preprocess) -> Tensor:
    """The image that replaces removed pixels, one per image of ``pixels``.

    Args:
        fill: A name of :data:`FILLS`.
        pixels: A pixel batch (B, 3, H, W) in [0, 1].
        preprocess: The model's preprocessing (``"mean"`` reads its mean, ``"blur"`` its size).

    Returns:
        A tensor shaped like ``pixels`` (same dtype and device).

    Raises:
        TypeError: ``fill`` is not a string.
        ValueError: ``fill`` is not a registered name.

    Example:
        >>> import torch
        >>> fill_image("black", torch.rand(2, 3, 5, 5), Preprocess()).abs().sum().item()
        0.0
    """
    return REGISTRY[check_fill(fill)](pixels, preprocess).to(pixels.dtype).expand_as(pixels)


def check_fill(fill: Any) -> str:
    """``fill`` if it is a registered fill's name.

    Raises:
        TypeError: not a string.
        ValueError: not a registered name.

    Example:
        >>> check_fill("blur")
        'blur'
    """
    if not isinstance(fill, str):
        raise TypeError(f"`fill` must be one of {tuple(REGISTRY)}; got {type(fill).__name__}")
    if fill not in REGISTRY:
        raise ValueError(f"`fill` {fill!r} is unknown; use one of {', '.join(REGISTRY)} "
                         "(register a new one with register_fill)")
    return fill


@register_fill("black")
def _black(x: Tensor, pre: Preprocess) -> Tensor:
    return torch.zeros_like(x)


@register_fill("mean")
def _dataset_mean(x: Tensor, pre: Preprocess) -> Tensor:
    colour = torch.as_tensor(pre.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return colour.expand_as(x)


@register_fill("blur")
def _blur(x: Tensor, pre: Preprocess) -> Tensor:
    from torchvision.transforms.functional import gaussian_blur

    size = tuple(x.shape[-2:])
    work = pre.resize(x) if x.dtype != torch.uint8 else pre.resize(x).float()
    # RISE: kernel 11, sigma 5 at the model's resolution (a smaller kernel under 6 pixels, as
    # reflect padding needs pad < size)
    k = min(11, 2 * min(work.shape[-2:]) - 1)
    out = gaussian_blur(work, kernel_size=[k, k], sigma=[5.0, 5.0])
    if tuple(out.shape[-2:]) != size:
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
    return out


@register_fill("image-mean")
def _image_mean(x: Tensor, pre: Preprocess) -> Tensor:
    return x.mean(dim=(2, 3), keepdim=True).expand_as(x)


#: The fills' names, in the order the widget and the reports list them.
FILLS: tuple[str, ...] = tuple(REGISTRY)
