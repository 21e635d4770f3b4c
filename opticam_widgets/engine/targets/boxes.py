"""Detection targets: one object (a box and its class) of a detector's output.

The output is one dict per image with ``boxes`` (N, 4) ``(x0, y0, x1, y1)`` in pixels of the
image the model sees, ``labels`` (N,) and ``scores`` (N,): torchvision's Faster R-CNN,
RetinaNet, FCOS and SSD in eval mode return exactly this. A raw-tensor detector (YOLO-style
(B, N, 4 + 1 + classes)) is read through a decoder the user passes: :class:`YoloDecoder`, or
any callable ``raw output -> list of such dicts`` (an optional ``class_scores`` (N, classes)
gives every class's score of each candidate box).

The probability of a :class:`Box` target (what the metrics compare) is the best detection of
its class weighted by its overlap with the box: ``p = max_n score_n · IoU(box_n, box)``, in
[0, 1]. The score Opti-CAM keeps is its log, ``log p`` (floored at ``log 1e-30``): a detection
score is a softmax or sigmoid output that falls to ~0 on a dim masked image, where its gradient
vanishes; the log keeps it alive (as the logit does for a class) and has the same best map.
Torchvision's detection scores
are softmax (or sigmoid) outputs gathered for the boxes that survive the score threshold and
non-maximum suppression: differentiable with respect to the input, but *which* boxes survive
is not, and a masked image whose object falls under ``score_thresh`` (0.05 by default) has no
detection of it: its score is 0 and carries no gradient. Lower ``model.roi_heads.score_thresh``
(Faster R-CNN) or ``model.score_thresh`` (RetinaNet, FCOS, SSD) to 0.001 when maps stay flat.

Example:
    >>> import torch
    >>> dets = [{"boxes": torch.tensor([[0., 0., 4., 4.], [4., 4., 8., 8.]]),
    ...          "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.9, 0.8])}]
    >>> Box((4, 4, 8, 8), 2).probability(dets), Box((0, 0, 4, 2), 1).probability(dets)
    (tensor([0.8000]), tensor([0.4500]))
    >>> Box((4, 4, 8, 8), 2)(dets)  # the score: log 0.8
    tensor([-0.2231])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torchvision.ops import box_convert, box_iou

from ...support.outputs import dense_output
from .base import Context, NoTarget, Target, check_range, label_index
from .regions import box_mask

__all__ = ["Box", "BoxRows", "Detected", "YoloDecoder"]

Decoder = Callable[[Any], Sequence[dict[str, Tensor]]]


def _detections(output: Any, decode: Decoder | None, context: Context) -> list[dict[str, Tensor]]:
    """The per-image detection dicts of an output (through ``decode`` when given)."""
    dets = decode(output) if decode is not None else output
    if isinstance(dets, (list, tuple)) and all(
            isinstance(d, dict) and isinstance(d.get("boxes"), Tensor) for d in dets):
        return list(dets)
    dense = dense_output(output)
    shape = tuple(dense.shape) if dense is not None else type(output).__name__
    raise ValueError(
        f"`{context.name}` Box needs a detector's output, one dict per image with 'boxes', "
        f"'labels' and 'scores' (torchvision detectors in eval mode); the model returned "
        f"{shape}: for a raw-tensor detector pass `decode=YoloDecoder(...)` (or your own "
        f"decoder), for a classifier give a class, for a segmentation model a Region")


def _class_scores(det: dict[str, Tensor], cls: int) -> Tensor:
    """Each detection's score for class ``cls`` (0 for detections of another class)."""
    if "class_scores" in det:
        return det["class_scores"][:, cls]
    return det["scores"] * (det["labels"] == cls).to(det["scores"].dtype)


@dataclass(frozen=True, eq=False)
class BoxRows:
    """Resolved box rows: class ``classes[r]`` in box ``boxes[r]`` (R, 4) of input ``index[r]``."""

    classes: Tensor
    index: Tensor
    boxes: Tensor
    decode: Decoder | None = None

    def score(self, output: Any) -> Tensor:
        """``log p`` of each row (see :meth:`probability`; floored at ``log 1e-30``)."""
        return torch.log(self.probability(output).clamp_min(1e-30))

    def probability(self, output: Any) -> Tensor:
        """``p = max_n score_n · IoU(box_n, box)`` of each row, over its detections of its class."""
        dets = _detections(output, self.decode, Context())
        values = []
        for r, det in enumerate(dets):
            scores = _class_scores(det, int(self.classes[r]))
            if det["boxes"].shape[0] == 0:
                values.append(scores.sum() * 0.0)  # no detection: 0, still on the graph
                continue
            iou = box_iou(det["boxes"], self.boxes[r:r + 1].to(det["boxes"]))[:, 0]
            values.append((scores * iou).max())
        return torch.stack(values)

    def subset(self, rows: Tensor) -> BoxRows:
        """Rows ``rows``."""
        rows = rows.cpu()
        return BoxRows(self.classes[rows], self.index[rows], self.boxes[rows], self.decode)

    def spec(self) -> Any:
        """The rows' boxes and classes, as a ``{"boxes": ..., "classes": ...}`` dict."""
        return {"boxes": self.boxes.tolist(), "classes": self.classes.tolist()}


def _width(dets: list[dict[str, Tensor]]) -> int | None:
    scores = [d["class_scores"] for d in dets if "class_scores" in d]
    return int(scores[0].shape[1]) if scores else None


@dataclass(frozen=True, eq=False)
class Box(Target):
    """One object of every input: the box ``(x0, y0, x1, y1)`` and its class ``label``.

    Args:
        box: Pixels of the image the model sees (for a torchvision detector with
            ``preprocess={"size": None, ...}``: the image's own pixels).
        label: A class index (the detector's label numbering) or a label name.
        decode: For a raw-tensor detector: :class:`YoloDecoder` or a callable ``raw output ->
            list of dicts`` (see the module).
    """

    box: Sequence[float]
    label: int | str
    decode: Decoder | None = field(default=None)

    def resolve(self, output: Any, context: Context | None = None) -> BoxRows:
        """Box's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        dets = _detections(output, self.decode, context)
        cls = label_index(self.label, context)
        check_range([cls], _width(dets) or (len(context.labels) if context.labels else None),
                    context)  # labels are one name per class (a detector's checked by OptiCAM)
        if context.size is not None:
            box_mask(self.box, tuple(context.size), context.name)  # refuses a box outside
        box = torch.tensor([float(v) for v in self.box])
        count = len(dets)
        return BoxRows(torch.full((count,), cls, dtype=torch.long), torch.arange(count),
                       box.expand(count, 4).clone(), self.decode)

    def spec(self) -> Any:
        """Box's description (see :meth:`Target.spec`)."""
        return {"box": [float(v) for v in self.box], "label": self.label}


@dataclass(frozen=True, eq=False)
class Detected(Target):
    """The ``rank``-th best detection of each input (of class ``label`` when given).

    Example:
        >>> import torch
        >>> dets = [{"boxes": torch.tensor([[0., 0., 4., 4.]]), "labels": torch.tensor([3]),
        ...          "scores": torch.tensor([0.7])}]
        >>> Detected().resolve(dets).boxes, Detected().probability(dets)
        (tensor([[0., 0., 4., 4.]]), tensor([0.7000]))
    """

    rank: int = 0
    label: int | str | None = None
    decode: Decoder | None = None

    def resolve(self, output: Any, context: Context | None = None) -> BoxRows:
        """Detected's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        dets = _detections(output, self.decode, context)
        cls = None if self.label is None else label_index(self.label, context)
        boxes, classes = [], []
        for i, det in enumerate(dets):
            labels = (det["labels"] if "labels" in det else det["class_scores"].argmax(dim=1)
                      ).detach().cpu()
            keep = torch.arange(labels.shape[0]) if cls is None else (labels == cls
                                                                        ).nonzero()[:, 0]
            order = keep[det["scores"].detach().cpu()[keep].argsort(descending=True)]
            if order.shape[0] <= self.rank:
                raise NoTarget(f"`{context.name}` Detected(rank={self.rank}): {context.one} "
                               f"{i} has {order.shape[0]} detection(s) of that kind")
            boxes.append(det["boxes"][order[self.rank]].detach().float().cpu())
            classes.append(int(labels[order[self.rank]]))
        return BoxRows(torch.tensor(classes), torch.arange(len(dets)), torch.stack(boxes),
                       self.decode)

    def spec(self) -> Any:
        """Detected's description (see :meth:`Target.spec`)."""
        return {"detected": self.rank, "label": self.label}


@dataclass(frozen=True)
class YoloDecoder:
    """Raw YOLO-style detector output (B, N, 4 + 1 + classes) as per-image detection dicts.

    Args:
        box_format: ``"cxcywh"`` (YOLO: centre, width, height) or ``"xyxy"``, in pixels of
            the image the model sees.
        objectness: Whether column 4 is an objectness score (YOLOv5; not YOLOv8).
        activation: ``"sigmoid"`` for raw logits, ``None`` for scores already in [0, 1]
            (YOLOv5's ``Detect`` layer in eval mode).
        channels_first: The output is (B, 4 + 1 + classes, N) (YOLOv8).

    Example:
        >>> import torch
        >>> raw = torch.tensor([[[2.0, 2.0, 4.0, 4.0, 10.0, 10.0, -10.0]]])
        >>> det = YoloDecoder()(raw)[0]
        >>> det["boxes"].tolist(), det["labels"].tolist()
        ([[0.0, 0.0, 4.0, 4.0]], [0])
    """

    box_format: str = "cxcywh"
    objectness: bool = True
    activation: str | None = "sigmoid"
    channels_first: bool = False

    def __call__(self, output: Any) -> list[dict[str, Tensor]]:
        """The detections of every image (differentiable ``class_scores`` (N, classes))."""
        raw = dense_output(output)
        if raw is None or raw.ndim != 3:
            shape = tuple(raw.shape) if raw is not None else type(output).__name__
            raise ValueError(f"YoloDecoder needs a raw detector output (B, N, 4 + 1 + classes); "
                             f"got {shape}")
        raw = raw.transpose(1, 2) if self.channels_first else raw
        boxes = box_convert(raw[..., :4], self.box_format, "xyxy")
        rest = raw[..., 4:].sigmoid() if self.activation == "sigmoid" else raw[..., 4:]
        scores = rest[..., :1] * rest[..., 1:] if self.objectness else rest
        best, labels = scores.max(dim=-1)
        return [{"boxes": boxes[i], "scores": best[i], "labels": labels[i],
                 "class_scores": scores[i]} for i in range(raw.shape[0])]

