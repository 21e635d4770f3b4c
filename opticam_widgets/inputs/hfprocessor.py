"""A Hugging Face image processor read as a preprocessing spec (size, mean, std), never run.

``AutoImageProcessor.from_pretrained(...)`` objects say how their model wants its input:
``size`` (``{"height", "width"}`` or ``{"shortest_edge"}``), an optional center crop
(``do_center_crop`` with ``crop_size``), ``rescale_factor`` (1/255: pixels to [0, 1], which
Opti-CAM's pixels already are) and ``image_mean``/``image_std`` (when ``do_normalize``). As
for torchvision pipelines, a resize-then-crop becomes a direct resize to the crop's size, so
the map stays aligned with the whole photo.

Example:
    >>> from types import SimpleNamespace
    >>> proc = SimpleNamespace(size={"height": 384, "width": 384}, image_mean=[0.5] * 3,
    ...                        image_std=[0.5] * 3, do_normalize=True)
    >>> is_image_processor(proc), from_image_processor(proc).size
    (True, (384, 384))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .preprocess import Preprocess

__all__ = ["from_image_processor", "is_image_processor"]


def is_image_processor(obj: Any) -> bool:
    """Whether ``obj`` looks like a Hugging Face image processor (size, mean and std).

    Example:
        >>> is_image_processor(object())
        False
    """
    return all(hasattr(obj, a) for a in ("size", "image_mean", "image_std"))


def _hw(size: Any, name: str) -> tuple[int, int]:
    """(H, W) from an image processor's size (a dict, or transformers 5's ``SizeDict``)."""
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    def get(key: str) -> Any:
        return size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)

    if get("height") and get("width"):
        return int(get("height")), int(get("width"))
    if get("shortest_edge"):  # a square input, as ConvNeXt's processor gives at 384
        return int(get("shortest_edge")), int(get("shortest_edge"))
    raise ValueError(f"`preprocess` (an image processor) has a `{name}` {size!r} that gives no "
                     f"input size; pass `preprocess={{'size': (H, W), 'mean': ..., 'std': ...}}`")


def from_image_processor(processor: Any) -> Preprocess:
    """The :class:`~.preprocess.Preprocess` a Hugging Face image processor states.

    Raises:
        ValueError: a size that gives no input size, or a rescale factor other than 1/255.

    Example:
        >>> from types import SimpleNamespace
        >>> p = SimpleNamespace(size={"shortest_edge": 256}, crop_size={"height": 224,
        ...     "width": 224}, do_center_crop=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        >>> from_image_processor(p).size
        (224, 224)
    """
    crop = getattr(processor, "crop_size", None)
    if getattr(processor, "do_center_crop", False) and crop:
        size = _hw(crop, "crop_size")
    else:
        size = _hw(processor.size, "size")
    factor = getattr(processor, "rescale_factor", 1 / 255)
    if getattr(processor, "do_rescale", True) and abs(float(factor) * 255 - 1) > 1e-6:
        raise ValueError(f"`preprocess` (an image processor) rescales pixels by {factor}, not "
                         f"1/255; pass `preprocess={{'size': ..., 'mean': ..., 'std': ...}}` "
                         f"for pixels in [0, 1]")
    if not getattr(processor, "do_normalize", True):
        return Preprocess(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return Preprocess(size=size, mean=tuple(processor.image_mean),
                      std=tuple(processor.image_std))
