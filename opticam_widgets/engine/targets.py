"""Class targets: one parser for every entry point (explainer, metrics, baselines).

A class request gets the same message wherever it is passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from .classes import class_index

__all__ = ["Target", "resolve_targets"]

#: A class request: ``None`` (top-1), an int or a label name, a sequence of them, or an integer
#: tensor/array.
Target = Union[None, int, str, Sequence[Union[int, str]], Tensor, np.ndarray]


def _one(value: Any, names: Sequence[str] | None, name: str) -> int:
    """One class request as an int: an index as given (range-checked later) or a label name.

    Floats, booleans and anything else are refused by
    :func:`~opticam_widgets.engine.classes.class_index`.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return class_index(value, names, name=name)


def _as_values(target: Any, rows: int, name: str, what: str, several_for_one: bool,
               names: Sequence[str] | None) -> list[int]:
    """The requested class indices as a list of ints (one per row, or several for one input)."""
    if isinstance(target, (Tensor, np.ndarray)):
        arr = target.detach().cpu().numpy() if isinstance(target, Tensor) else target
        if arr.ndim > 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype.kind == "U"):
            raise TypeError(f"`{name}` tensor/array must hold integer class indices or label "
                            f"names (0-D or 1-D)")
        target = arr.reshape(-1).tolist() if arr.ndim == 1 else arr.item()
    if isinstance(target, str) or not isinstance(target, Sequence):
        return [_one(target, names, name)] * rows
    values = list(target)
    if not values:
        raise ValueError(f"`{name}` is an empty list; give one class index per "
                         f"{what.rstrip('s')}")
    values = [_one(v, names, name) for v in values]
    if len(values) != rows and not (several_for_one and rows == 1):
        extra = " (or several classes for a single image)" if several_for_one else ""
        raise ValueError(f"`{name}` has {len(values)} entries for {rows} {what}; give one "
                         f"class per {what.rstrip('s')}{extra}")
    return values


def resolve_targets(
    target: Any,
    rows: int,
    classes: int,
    top1: Tensor | None = None,
    *,
    name: str = "target",
    what: str = "images",
    several_for_one: bool = True,
    names: Sequence[str] | None = None,
) -> tuple[Tensor, Tensor]:
    """Validate a class request for ``rows`` inputs of a model with ``classes`` outputs.

    Args:
        target: ``None`` (``top1``), an int or a label name (same class for every input), a
            sequence of ints and names, or a 0-D/1-D integer tensor or array, with one class
            per input.
        rows: Number of inputs (images or maps).
        classes: Number of model outputs.
        top1: (rows,) predicted classes, used when ``target`` is None.
        name: Argument name for error messages.
        what: Plural noun of the inputs for error messages.
        several_for_one: With a single input, accept several classes (one row each).
        names: The model's labels, where label names are looked up
            (:func:`~opticam_widgets.engine.classes.class_index`: exact, then case-insensitive).

    Returns:
        ``(classes (N,), index (N,))``: class and input index of each row, CPU longs.

    Raises:
        TypeError: A float, a bool, or not an int, a name, a sequence of them or an integer
            tensor.
        ValueError: Empty, wrong length, a class out of range, an unknown label name, or a
            name with no ``names``.

    Example:
        >>> resolve_targets([3, 4], rows=1, classes=10)
        (tensor([3, 4]), tensor([0, 0]))
        >>> resolve_targets(["tabby", 0], rows=1, classes=2, names=["tench", "tabby"])[0]
        tensor([1, 0])
    """
    if target is None:
        if top1 is None:
            raise ValueError(f"`{name}` is required here")
        return top1.long().cpu(), torch.arange(rows)
    values = _as_values(target, rows, name, what, several_for_one, names)
    bad = [v for v in values if not 0 <= v < classes]
    if bad:
        raise ValueError(f"`{name}` {bad[0]} is out of range: the model has {classes} classes "
                         f"(0..{classes - 1})")
    index = torch.zeros(len(values), dtype=torch.long) if rows == 1 else torch.arange(rows)
    return torch.tensor(values, dtype=torch.long), index
