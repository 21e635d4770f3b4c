"""The target interface: :class:`Target` (what to explain) and :class:`Rows` (resolved rows).

Example:
    >>> import torch
    >>> class_logits(torch.zeros(2, 3), Context()).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ...support.checks import check_logits, map_tensors
from ...support.outputs import dense_output, output_rows
from ..classes import class_index

__all__ = ["Context", "NoTarget", "Rows", "Target", "check_range", "class_logits", "label_index",
           "row_classes"]


class NoTarget(ValueError):
    """An input with nothing to explain (no true label, a chooser returning no class)."""


@dataclass(frozen=True)
class Context:
    """What a target is resolved against, besides the output.

    Attributes:
        labels: The model's class names (label names are looked up there), or ``None``.
        items: One object per input with a ``label`` attribute (a dataset item: its true
            label, and its ``region`` / ``box`` when the dataset gives them) for
            :class:`~.classes.TrueLabel`, :class:`~.classes.Chooser` and the region kinds;
            ``None`` elsewhere.
        name: The argument's name, for messages (``"target"``, ``"--target"``).
        what: Plural noun of the inputs, for messages (``"images"``, ``"saliency maps"``).
        several_for_one: With a single input, a list may give several classes (one row each).
        size: ``(H, W)`` of the input the model sees (regions and boxes are checked against
            it), or ``None`` when unknown.
    """

    labels: Sequence[str] | None = None
    items: Sequence[Any] | None = None
    name: str = "target"
    what: str = "images"
    several_for_one: bool = True
    size: tuple[int, int] | None = None

    @property
    def one(self) -> str:
        """The singular of :attr:`what`."""
        return self.what.rstrip("s")


@runtime_checkable
class Rows(Protocol):
    """Resolved rows of a target: what the optimisation and the metrics score.

    Attributes:
        index: (R,) CPU long tensor, the input each row is of.

    A rows object may also have ``classes``, a (R,) CPU long tensor (the class of each row,
    a result's ``target``); without it a result's ``target`` holds ``-1`` per row.
    """

    index: Tensor

    def score(self, output: Any) -> Tensor:
        """The differentiable (R,) score of each row, from the output of its input."""

    def probability(self, output: Any) -> Tensor:
        """The (R,) probability of each row in [0, 1] (what the faithfulness metrics compare)."""

    def subset(self, rows: Tensor) -> Rows:
        """Rows ``rows`` (a CPU long tensor; repeats allowed), in this order."""

    def spec(self) -> Any:
        """A JSON-friendly description."""


def row_classes(rows: Rows) -> tuple[int, ...]:
    """The class of each row (``-1`` for rows without classes).

    Example:
        >>> from opticam_widgets.engine.targets import ClassRows
        >>> row_classes(ClassRows(torch.tensor([3, 1]), torch.tensor([0, 0])))
        (3, 1)
    """
    classes = getattr(rows, "classes", None)
    if classes is None:
        return (-1,) * int(rows.index.shape[0])
    return tuple(int(c) for c in classes.tolist())


def label_index(value: Any, context: Context) -> int:
    """A class index or a label name (looked up in ``context.labels``) as an index (>= 0)."""
    if isinstance(value, str):
        return class_index(value, context.labels, name=context.name)
    index = class_index(value, None, classes=1 << 62, name=context.name)  # type checks only
    check_range([index], None, context)
    return index


def check_range(classes: Sequence[int], count: int | None, context: Context) -> None:
    """Refuse a class outside ``0..count - 1`` (``count=None``: only negatives)."""
    bad = [c for c in classes if c < 0 or (count is not None and c >= count)]
    if bad and count is None:
        raise ValueError(f"`{context.name}` {bad[0]} is out of range: a class index is >= 0")
    if bad:
        raise ValueError(f"`{context.name}` {bad[0]} is out of range: the model has {count} "
                         f"classes (a class index is in 0..{count - 1})")


def class_logits(output: Any, context: Context) -> Tensor:
    """The (B, classes) logits a class target reads; other outputs refused with the fix."""
    if isinstance(output, Tensor) and output.ndim == 2:
        return output
    dense = dense_output(output)
    if dense is not None and dense.ndim == 4:
        hint = ("this is a segmentation output (B, classes, h, w): explain a region with "
                "`Region(cls)` (where the model predicts it), `Region(cls, mask=...)` or "
                "`Region(cls, box=(x0, y0, x1, y1))`")
    elif isinstance(output, (list, tuple)):
        hint = ("this is a detector's output (one dict of boxes per image): explain one object "
                "with `Box((x0, y0, x1, y1), cls)` or `Detected(rank)`")
    else:
        hint = "give a target of the kind the model's output has (see the targets how-to)"
    batch = len(output) if isinstance(output, (list, tuple)) else int(
        getattr(dense, "shape", (1,))[0])
    try:
        check_logits(dense if dense is not None else output, batch)
    except ValueError as exc:
        raise ValueError(f"`{context.name}` asks for a class of (batch, classes) logits, but "
                         f"{exc} ({hint})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _best_per_class(dets: Sequence[dict[str, Tensor]]) -> Tensor:
    """(B, classes) best detection score of each class (0 where none)."""
    width = 1 + max([int(d["labels"].max()) for d in dets if d["labels"].numel()] or [0])
    best = torch.zeros(len(dets), width)
    for i, d in enumerate(dets):
        labels, scores = d["labels"].detach().cpu().long(), d["scores"].detach().float().cpu()
        best[i].scatter_reduce_(0, labels, scores, reduce="amax")
    return best


def detached(output: Any) -> Any:
    """``output`` with every tensor detached."""
    return map_tensors(output, Tensor.detach)


class Target:
    """What to explain: a callable of the model's output (see the targets package)."""

    def resolve(self, output: Any, context: Context | None = None) -> Rows:
        """The rows this target asks for on ``output``."""
        raise NotImplementedError

    def spec(self) -> Any:
        """A JSON-friendly description (what a dataset store records)."""
        return repr(self)

    def score(self, output: Any) -> Tensor:
        """The (N,) scores to keep, differentiable (for classes: the logit of each row's class)."""
        rows = self.resolve(detached(output))
        return rows.score(output_rows(output, rows.index))

    def probability(self, output: Any) -> Tensor:
        """The (N,) probabilities of the rows (for classes: softmax)."""
        rows = self.resolve(detached(output))
        return rows.probability(output_rows(output, rows.index))

    def probabilities(self, output: Any) -> Tensor:
        """The class list of each input (B, classes): softmax of the logits.

        For a segmentation output, the softmax averaged over the pixels (the share of the
        image each class takes, in probability); for detections, each class's best detection
        score (classes up to the largest label found); :class:`~.classes.MultiLabel` gives
        sigmoids.
        """
        dense = dense_output(output)
        if dense is not None and dense.ndim == 4:
            return torch.softmax(dense.float(), dim=1).mean(dim=(2, 3))
        if isinstance(output, (list, tuple)) and output and all(
                isinstance(d, dict) and "scores" in d and "labels" in d for d in output):
            return _best_per_class(output)
        return torch.softmax(class_logits(output, Context()).float(), dim=1)

    def __call__(self, output: Any) -> Tensor:
        """:meth:`score`."""
        return self.score(output)
