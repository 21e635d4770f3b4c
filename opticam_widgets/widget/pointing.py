"""Point at what to explain: the objects a model finds in a photo, and the target of each.

What the widget can point at depends on the model's output on the first photo, decided once
by :func:`output_kind`:

* ``"classes"``: logits (B, classes): the class list is the chooser (nothing to point at);
* ``"segmentation"``: a dense output (B, classes, h, w): each connected segment of the
  predicted classes (:func:`segments`) is a :class:`~opticam_widgets.engine.targets.Region`
  of its class over its pixels; a box dragged over the photo is a region too;
* ``"detection"``: one dict of detections per image: each box kept (:func:`detections`) is
  a :class:`~opticam_widgets.engine.targets.Box` of its class;
* ``"dual"``: a dual encoder bound by
  :func:`~opticam_widgets.model.dualencoder.image_tower` (its output an image embedding, its
  text side kept): a typed prompt is a :class:`~opticam_widgets.engine.targets.TextPrompt`, a
  photo of the strip taken as the reference a
  :class:`~opticam_widgets.engine.targets.Similarity`;
* ``"embedding"``: any model whose output is an embedding (B, D) (retrieval, faces). Its
  output looks like a classifier's logits, so this kind is never read from the output: it is
  declared (``OptiCAMWidget(model, kind="embedding")``, checked by :func:`resolve_kind`). A
  photo of the strip taken as the reference is a
  :class:`~opticam_widgets.engine.targets.Similarity`.

Coordinates are pixels of the image the model sees (after ``preprocess`` resizes it); the
panel (:mod:`~opticam_widgets.widget.pointpanel`) maps the canvas's pixels onto them.

Example:
    >>> import torch
    >>> out = torch.zeros(1, 2, 4, 6)
    >>> out[0, 1, 1:3, 0:2] = 5.0  # class 1 on the left
    >>> out[0, 1, 1:3, 4:6] = 5.0  # and again on the right: two segments
    >>> output_kind(out)
    'segmentation'
    >>> [(s.label, s.box) for s in segments(out[0], (4, 6)) if s.label == 1]
    [(1, (0, 1, 2, 3)), (1, (4, 1, 6, 3))]
    >>> pick(segments(out[0], (4, 6)), 5.5, 1.5).target()
    Region(label=1, mask=..., box=None)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor
from torchvision.ops import batched_nms

from ..engine.targets import Box, Detected, Region, Similarity, Target, TextPrompt
from ..model.dualencoder import ImageTower
from ..support.checks import logits_of
from ..support.outputs import dense_output

__all__ = ["EMBEDDING_KINDS", "KINDS", "Pointable", "check_kind", "detections", "dragged",
           "output_kind", "pick", "pointed_label", "resolve_kind", "segments"]

#: What the widget can point at: read from the model's output (see :func:`output_kind`), or
#: declared (``"embedding"`` only so: see :func:`resolve_kind`).
KINDS = ("classes", "segmentation", "detection", "dual", "embedding")
#: The kinds whose output is an embedding: explained by a likeness (a reference photo).
EMBEDDING_KINDS = ("dual", "embedding")
#: Segments smaller than this share of the image are not listed (specks of a prediction).
MIN_SEGMENT = 0.002
#: Detections below this score are not drawn; boxes overlapping more (IoU) are one object.
MIN_SCORE, NMS_IOU, MAX_BOXES = 0.3, 0.5, 20


def output_kind(output: Any, model: Any = None) -> str:
    """What a model's output lets the widget point at: one of :data:`KINDS`.

    ``model``: the model explained (an ``ImageTower`` is a dual encoder: ``"dual"``).

    Example:
        >>> output_kind(torch.zeros(1, 5)), output_kind([{"boxes": torch.zeros(0, 4)}])
        ('classes', 'detection')
    """
    if isinstance(model, ImageTower):
        return "dual"
    dense = dense_output(output)
    if dense is not None and dense.ndim == 4:
        return "segmentation"
    if isinstance(output, (list, tuple)) and output and all(
            isinstance(d, dict) and isinstance(d.get("boxes"), Tensor) for d in output):
        return "detection"
    return "classes"


def check_kind(kind: Any) -> str | None:
    """A declared kind (the widget's ``kind=``), checked: ``None`` or one of :data:`KINDS`.

    ``None``: read from the output. Anything else is refused with the choices.

    Example:
        >>> check_kind("embedding"), check_kind(None)
        ('embedding', None)
    """
    if kind is not None and (not isinstance(kind, str) or kind not in KINDS):
        raise ValueError(f"`kind` must be one of {KINDS} (or None: read from the model's "
                         f"output), got {kind!r}")
    return kind


def resolve_kind(declared: str | None, output: Any, model: Any = None) -> str:
    """The kind the widget uses: ``declared`` once checked against the output, else read.

    ``"embedding"`` needs a float output (B, D); any other declared kind must be the one the
    output shows (:func:`output_kind`). A wrong declaration is a ``ValueError`` naming the fix.

    Example:
        >>> resolve_kind("embedding", torch.zeros(1, 16)), resolve_kind(None, torch.zeros(1, 16))
        ('embedding', 'classes')
        >>> resolve_kind("embedding", torch.zeros(1, 3, 8, 8))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `kind='embedding'` needs ... (1, 3, 8, 8) (read as 'segmentation'); ...
    """
    read = output_kind(output, model)
    if declared is None:
        return read
    found = logits_of(output)
    if declared == "embedding":
        if isinstance(found, Tensor) and found.ndim == 2 and found.is_floating_point():
            return declared
        shape = tuple(found.shape) if isinstance(found, Tensor) else type(found).__name__
        raise ValueError(f"`kind='embedding'` needs a model whose output is an embedding "
                         f"(B, D), but it returns {shape} (read as {read!r}); leave `kind` out "
                         f"(the widget reads the kind from the output), or explain a model "
                         f"returning (B, D) embeddings (a backbone without its head)")
    if declared != read:
        fix = ("bind the dual encoder with image_tower(model, processor)" if declared == "dual"
               else "leave `kind` out: the widget reads the kind from the output")
        raise ValueError(f"`kind={declared!r}` does not fit the model: its output reads as "
                         f"{read!r}; {fix}")
    return declared


@dataclass(frozen=True, eq=False)
class Pointable:
    """One thing on the photo to explain: a segment or a detected box.

    Attributes:
        label: Its class index.
        box: ``(x0, y0, x1, y1)`` pixel edges in the image the model sees.
        mask: (H, W) bool pixels of a segment, ``None`` for a detection.
        score: A detection's score (``None`` for a segment).
    """

    label: int
    box: tuple[int, int, int, int] | tuple[float, float, float, float]
    mask: np.ndarray | None = None
    score: float | None = None

    def target(self) -> Target:
        """The target that explains it: a ``Region`` over the segment, a ``Box``."""
        if self.mask is not None:
            return _Region(self.label, mask=torch.from_numpy(self.mask))
        return Box(tuple(float(v) for v in self.box), self.label)

    def contains(self, x: float, y: float) -> bool:
        """Whether the point ``(x, y)`` (model pixels) is on it."""
        if self.mask is not None:
            h, w = self.mask.shape
            return 0 <= x < w and 0 <= y < h and bool(self.mask[int(y), int(x)])
        x0, y0, x1, y1 = self.box
        return x0 <= x <= x1 and y0 <= y <= y1

    def area(self) -> float:
        """Its size in pixels (the smaller wins a click on overlapping things)."""
        if self.mask is not None:
            return float(self.mask.sum())
        x0, y0, x1, y1 = self.box
        return float((x1 - x0) * (y1 - y0))

    def describe(self, names: Sequence[str] | None) -> str:
        """``"name · 93%"`` / ``"name · 120 px at (x, y)"``: its line in the chooser."""
        name = names[self.label] if names is not None and self.label < len(names) else (
            f"class {self.label}")
        x0, y0 = self.box[:2]
        if self.score is not None:
            return f"{name} · {self.score:.0%} · box at ({x0:.0f}, {y0:.0f})"
        return f"{name} · {int(self.area())} px at ({x0:.0f}, {y0:.0f})"


class _Region(Region):
    """A region whose repr does not print its mask (the status line shows it)."""

    def __repr__(self) -> str:
        return f"Region(label={self.label!r}, mask=..., box={self.box!r})"


def segments(dense: Tensor, size: tuple[int, int]) -> list[Pointable]:
    """The connected segments of each predicted class in one image's (classes, h, w) output.

    Args:
        dense: One image's dense output (logits or probabilities).
        size: ``(H, W)`` of the image the model sees (the segments' pixels).

    Returns:
        Segments larger than :data:`MIN_SEGMENT` of the image, largest first.
    """
    classes = dense.detach().float()[None]
    if tuple(classes.shape[-2:]) != tuple(size):
        classes = F.interpolate(classes, size=tuple(size), mode="bilinear", align_corners=False)
    predicted = classes[0].argmax(dim=0).cpu().numpy()
    found = []
    for label in np.unique(predicted).tolist():
        parts, count = ndimage.label(predicted == label)
        for part, where in enumerate(ndimage.find_objects(parts), start=1):
            mask = parts == part
            if where is None or mask.sum() < MIN_SEGMENT * predicted.size:
                continue
            ys, xs = where
            found.append(Pointable(int(label), (xs.start, ys.start, xs.stop, ys.stop), mask))
    return sorted(found, key=lambda s: -s.area())


def detections(det: dict[str, Tensor]) -> list[Pointable]:
    """The boxes of one image's detections worth showing: score >= :data:`MIN_SCORE`, NMS.

    Example:
        >>> det = {"boxes": torch.tensor([[0., 0., 4., 4.], [0., 0., 4., 5.], [6., 6., 9., 9.]]),
        ...        "labels": torch.tensor([1, 1, 2]), "scores": torch.tensor([.9, .8, .2])}
        >>> [(d.label, round(d.score, 2)) for d in detections(det)]
        [(1, 0.9)]
    """
    boxes = det["boxes"].detach().float().cpu()
    scores = det["scores"].detach().float().cpu()
    labels = (det["labels"] if "labels" in det else det["class_scores"].argmax(dim=1)
              ).detach().cpu().long()
    keep = (scores >= MIN_SCORE).nonzero()[:, 0]
    keep = keep[batched_nms(boxes[keep], scores[keep], labels[keep], NMS_IOU)][:MAX_BOXES]
    return [Pointable(int(labels[i]), tuple(float(v) for v in boxes[i].tolist()),
                      score=float(scores[i])) for i in keep.tolist()]


def pick(things: Sequence[Pointable], x: float, y: float) -> Pointable | None:
    """The thing under the point ``(x, y)`` (model pixels): the smallest one there, or ``None``."""
    under = [t for t in things if t.contains(x, y)]
    return min(under, key=Pointable.area) if under else None


def dragged(dense: Tensor, box: tuple[float, float, float, float],
            size: tuple[int, int]) -> Region:
    """A dragged box on a segmentation model: the class it holds most, over the box."""
    classes = dense.detach().float()[None]
    if tuple(classes.shape[-2:]) != tuple(size):
        classes = F.interpolate(classes, size=tuple(size), mode="bilinear", align_corners=False)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    inside = classes[0, :, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].argmax(dim=0)
    label = int(torch.bincount(inside.flatten()).argmax())
    return Region(label, box=(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))


def pointed_label(target: Any, names: Sequence[str] | None) -> str:
    """Plain text naming a pointed target (a region or a box), for the status line.

    Example:
        >>> pointed_label(Box((1, 2, 5, 6), 0), ["cat"])
        'cat in the box (1, 2)–(5, 6)'
    """
    label = getattr(target, "label", None)
    name = (names[label] if isinstance(label, int) and names is not None and label < len(names)
            else str(label))
    if isinstance(target, Box):
        x0, y0, x1, y1 = target.box
        return f"{name} in the box ({x0:.0f}, {y0:.0f})–({x1:.0f}, {y1:.0f})"
    if isinstance(target, Region) and target.box is not None:
        x0, y0, x1, y1 = target.box
        return f"{name} over the box ({x0:.0f}, {y0:.0f})–({x1:.0f}, {y1:.0f})"
    if isinstance(target, Region) and target.mask is None:
        return f"{name} where the model predicts it"
    if isinstance(target, Region):
        return f"{name} over the segment picked"
    if isinstance(target, Detected):
        return f"the best box of {name}"
    if isinstance(target, TextPrompt):
        return "the prompt “" + " / ".join(target.texts) + "”"
    if isinstance(target, Similarity):
        return "the likeness to " + str(getattr(target, "what", "the reference photo"))
    return str(target)
