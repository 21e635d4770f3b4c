"""Segmentation targets: class ``c`` over a region of a dense output (B, classes, h, w).

The output is a plain tensor (segmentation-models-pytorch), a torchvision segmentation model's
``{"out": ...}`` or a Hugging Face ``.logits`` at reduced resolution (SegFormer: a quarter of
the input); the region is resized to the output's ``h × w`` (area averaging: a cell counts by
the share of it inside the region).

The score is the **mean** of class ``c``'s logits over the region (pytorch-grad-cam's
``SemanticSegmentationTarget`` sums them): the mean does not grow with the region's size, so
the learning rate and ``tol`` mean what they mean for a class, and a mean logit reads like a
logit. The gradient's direction is the same as the sum's. Its probability (for the metrics)
is the mean softmax probability of ``c`` over the region.

Example:
    >>> import torch
    >>> out = torch.zeros(1, 2, 4, 4)
    >>> out[0, 1, :2, :2] = 3.0  # class 1 in the top-left corner
    >>> Region(1)(out)  # where the model predicts class 1
    tensor([3.])
    >>> Region(1, box=(0, 0, 4, 4)).score(out)  # the mean over the whole image
    tensor([0.7500])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...support.outputs import dense_output
from .base import Context, NoTarget, Target, check_range, label_index

__all__ = ["Region", "RegionRows", "box_mask"]


def _seg_logits(output: Any, context: Context) -> Tensor:
    """The (B, classes, h, w) logits of a segmentation output; other outputs refused."""
    dense = dense_output(output)
    if dense is None or dense.ndim != 4:
        shape = tuple(dense.shape) if dense is not None else type(output).__name__
        raise ValueError(
            f"`{context.name}` Region needs a segmentation output (B, classes, h, w) (a tensor, "
            f"{{'out': ...}} or `.logits`); the model returned {shape}: for a classifier give a "
            f"class (an int or a label name), for a detector a Box")
    return dense


def box_mask(box: Sequence[float], size: tuple[int, int], name: str = "target") -> Tensor:
    """A (H, W) float mask of the pixels inside ``box`` = ``(x0, y0, x1, y1)`` (pixel edges).

    Raises:
        ValueError: not four numbers, empty, or not inside the ``size`` image.

    Example:
        >>> box_mask((1, 0, 3, 1), (2, 4))
        tensor([[0., 1., 1., 0.],
                [0., 0., 0., 0.]])
    """
    values = list(box) if isinstance(box, (Sequence, np.ndarray, Tensor)) else []
    if len(values) != 4 or not all(isinstance(float(v), float) for v in values):
        raise ValueError(f"`{name}` box must be four numbers (x0, y0, x1, y1) in pixels, got "
                         f"{box!r}")
    x0, y0, x1, y1 = (float(v) for v in values)
    h, w = size
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"`{name}` box {tuple(values)} is not inside the {h}×{w} image the "
                         f"model sees: give 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} (pixels "
                         f"of the image after `preprocess` resizes it)")
    mask = torch.zeros(h, w)
    mask[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = 1.0
    return mask


def _resized(mask: Tensor, hw: tuple[int, int]) -> Tensor:
    """A (H, W) mask seen on the output's (h, w) cells (the share of each cell inside it)."""
    if tuple(mask.shape) == hw:
        return mask
    return F.interpolate(mask[None, None], size=hw, mode="area")[0, 0]


def _as_mask(mask: Any, context: Context, hw: tuple[int, int]) -> Tensor:
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
    m = m.detach().cpu()
    sizes = {hw} | ({tuple(context.size)} if context.size else set())
    if m.ndim != 2 or tuple(m.shape) not in sizes:
        want = " or ".join(f"{a}×{b}" for a, b in sorted(sizes))
        raise ValueError(f"`{context.name}` mask has shape {tuple(m.shape)}; give a (H, W) mask "
                         f"of {want} (the image the model sees, or its output's map)")
    m = m.float()
    if bool((m < 0).any()) or not bool(torch.isfinite(m).all()):
        raise ValueError(f"`{context.name}` mask must be boolean or weights >= 0")
    return _resized(m, hw)


@dataclass(frozen=True, eq=False)
class RegionRows:
    """Resolved rows: class ``classes[r]`` over the cells ``weights[r]`` of input ``index[r]``.

    ``weights``: (R, h, w) CPU floats at the output's map size (each row's sum is > 0).
    """

    classes: Tensor
    index: Tensor
    weights: Tensor

    def _mean(self, maps: Tensor) -> Tensor:
        rows = torch.arange(maps.shape[0], device=maps.device)
        chosen = maps[rows, self.classes.to(maps.device)]
        w = self.__dict__.get("_on_device")
        if w is None or w.device != chosen.device or w.dtype != chosen.dtype:
            w = self.weights.to(chosen.device, chosen.dtype)  # copied once per device
            object.__setattr__(self, "_on_device", w)
        return (chosen * w).sum(dim=(1, 2)) / w.sum(dim=(1, 2))

    def score(self, output: Any) -> Tensor:
        """The mean logit of each row's class over its region (differentiable)."""
        return self._mean(_seg_logits(output, Context()))

    def probability(self, output: Any) -> Tensor:
        """The mean softmax probability of each row's class over its region."""
        return self._mean(torch.softmax(_seg_logits(output, Context()), dim=1))

    def subset(self, rows: Tensor) -> RegionRows:
        """Rows ``rows``."""
        rows = rows.cpu()
        return RegionRows(self.classes[rows], self.index[rows], self.weights[rows])

    def spec(self) -> Any:
        """The rows' classes, as a ``{"region": [...]}`` dict."""
        return {"region": self.classes.tolist()}


@dataclass(frozen=True, eq=False)
class Region(Target):
    """Class ``label`` of a segmentation model over a region of every input.

    Args:
        label: A class index or a label name.
        mask: A (H, W) boolean or weight mask, at the size of the image the model sees (or of
            its output's map); ``None`` with ``box=None``: the pixels where the model
            predicts ``label`` (its arg-max) on the unmasked image.
        box: ``(x0, y0, x1, y1)`` in pixels of the image the model sees, instead of ``mask``.

    Raises:
        ValueError: on resolving, an output that is not (B, classes, h, w), a class out of
            range, a mask of another size, a box outside the image, an empty region (a
            :class:`~.base.NoTarget` when the model predicts ``label`` nowhere).
    """

    label: int | str
    mask: Any = None
    box: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if self.mask is not None and self.box is not None:
            raise ValueError("Region: give `mask` or `box`, not both")
        if isinstance(self.label, bool) or not isinstance(self.label, (int, np.integer, str)):
            raise TypeError(f"Region: `label` must be a class index or a label name, got "
                            f"{type(self.label).__name__}")

    def _weights(self, dense: Tensor, cls: int, context: Context) -> Tensor:
        hw = (int(dense.shape[-2]), int(dense.shape[-1]))
        batch = int(dense.shape[0])
        if self.mask is not None:
            return _as_mask(self.mask, context, hw).expand(batch, *hw)
        if self.box is not None:
            size = tuple(context.size) if context.size else hw
            return _resized(box_mask(self.box, size, context.name), hw).expand(batch, *hw)
        return (dense.detach().argmax(dim=1) == cls).float().cpu()

    def resolve(self, output: Any, context: Context | None = None) -> RegionRows:
        """Region's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        dense = _seg_logits(output, context)
        cls = label_index(self.label, context)
        check_range([cls], int(dense.shape[1]), context)
        weights = self._weights(dense, cls, context)
        empty = weights.flatten(1).sum(dim=1) <= 0
        if bool(empty.any()):
            if self.mask is None and self.box is None:
                raise NoTarget(f"`{context.name}` Region({self.label!r}): the model predicts "
                               f"that class nowhere in {context.one} {int(empty.nonzero()[0])}; "
                               f"give `mask=` or `box=`")
            raise ValueError(f"`{context.name}` region is empty; give a mask or box with pixels")
        batch = int(dense.shape[0])
        return RegionRows(torch.full((batch,), cls, dtype=torch.long), torch.arange(batch),
                          weights.contiguous())

    def spec(self) -> Any:
        """Region's description (see :meth:`Target.spec`)."""
        where = "mask" if self.mask is not None else (
            list(self.box) if self.box is not None else "predicted")
        return {"region": self.label, "where": where}
