"""What a torchvision detector declares: its number of classes, and labels checked against it.

A detector's output is a list of detections, not a (B, classes) tensor, so its class count
cannot be read off the output (the class list of an image only reaches its largest label
detected). Torchvision's detectors declare it in their heads: Faster R-CNN's
``roi_heads.box_predictor.cls_score``, RetinaNet's and FCOS's
``head.classification_head.num_classes``, SSD's ``head.classification_head.num_columns``. The
count includes the background (index 0): COCO's is 91, a detector built with ``num_classes=3``
has 3, and its ``labels`` are 3 names, ``"background"`` first.

Example:
    >>> import torch
    >>> from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn
    >>> net = fasterrcnn_mobilenet_v3_large_320_fpn(num_classes=3, weights=None,
    ...                                             weights_backbone=None)
    >>> detector_classes(net), detector_classes(torch.nn.Linear(2, 2))
    (3, None)
    >>> check_detector_labels(net, ["background", "square", "circle"])
    3
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["check_detector_labels", "detector_classes", "pad_classes"]


def _head_count(model: nn.Module) -> int | None:
    """The class count of a torchvision detector's head, or ``None``."""
    predictor = getattr(getattr(model, "roi_heads", None), "box_predictor", None)
    cls_score = getattr(predictor, "cls_score", None)
    if isinstance(cls_score, nn.Linear):  # Faster R-CNN (and Mask / Keypoint R-CNN)
        return int(cls_score.out_features)
    head = getattr(getattr(model, "head", None), "classification_head", None)
    for attr in ("num_classes", "num_columns"):  # RetinaNet, FCOS; SSD
        value = getattr(head, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def detector_classes(model: Any) -> int | None:
    """The number of classes a torchvision detector scores (background included), or ``None``.

    ``None`` for any other model (a classifier, a segmenter, a raw-tensor detector: their
    class count is read from their output).

    Example:
        >>> detector_classes(torch.nn.Identity()) is None
        True
    """
    if not isinstance(model, nn.Module):
        return None
    return _head_count(model)


def check_detector_labels(model: Any, labels: Sequence[str] | None,
                          name: str = "labels") -> int | None:
    """A detector's class count, after checking that ``labels`` has one name per class.

    Returns:
        The detector's class count, ``None`` when ``model`` is not a torchvision detector.

    Raises:
        ValueError: ``labels`` has another length than the detector's classes (the count,
            where it is read and the fix are named).

    Example:
        >>> check_detector_labels(torch.nn.Identity(), ["a"]) is None
        True
    """
    count = detector_classes(model)
    if count is None or labels is None or len(labels) == count:
        return count
    raise ValueError(
        f"`{name}` has {len(labels)} names but the detector ({type(model).__name__}) scores "
        f"{count} classes, background included (its head's width; COCO's detectors have 91); "
        f"give one name per class, index 0 the background (e.g. ['background', ...]), or "
        f"labels=None to show class indices")


def pad_classes(probs: Tensor, count: int | None) -> Tensor:
    """A detector's (B, k) class list widened with zeros to its ``count`` classes.

    A detector's class list (each class's best detection score) only reaches the largest label
    detected; the classes never detected have probability 0.

    Example:
        >>> pad_classes(torch.tensor([[0.0, 0.9]]), 4)
        tensor([[0.0000, 0.9000, 0.0000, 0.0000]])
    """
    if count is None or probs.ndim != 2 or probs.shape[1] >= count:
        return probs
    extra = probs.new_zeros(probs.shape[0], count - probs.shape[1])
    return torch.cat([probs, extra], dim=1)
