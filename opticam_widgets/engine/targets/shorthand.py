"""Shorthand for targets: ints, names, lists, tensors, ``"true"``, ``("top", k)``, callables.

Example:
    >>> as_target(None), as_target(3), as_target(("top", 2)), as_target("true")
    (TopK(k=1), ClassIndex(index=3), TopK(k=2), TrueLabel())
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
from torch import Tensor

from .base import Context, Rows, Target
from .classes import Chooser, Classes, ClassIndex, Label, TopK, TrueLabel, one_class

__all__ = ["TargetLike", "as_target", "resolve"]


#: What every ``target=`` argument takes: a :class:`Target` or its shorthand (:func:`as_target`).
TargetLike = Union[Target, None, int, str, Sequence[Union[int, str]], Tensor, np.ndarray,
                   Callable[..., Any]]


def _is_top(value: Any) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == "top"
            and isinstance(value[1], (int, np.integer)) and not isinstance(value[1], bool))


def _refuse_shadowed(word: str, labels: Sequence[str] | None, name: str, spelled: str) -> None:
    """Refuse the shorthand ``word`` when the model has a class named so (which one is meant?)."""
    if labels is not None and word in list(labels):
        raise ValueError(
            f"`{name}` {word!r} is ambiguous: the model has a class named {word!r}; write "
            f"Label({word!r}) for that class, or {spelled} for the shorthand's meaning")


def _from_array(value: Tensor | np.ndarray, name: str) -> Any:
    arr = value.detach().cpu().numpy() if isinstance(value, Tensor) else value
    if arr.ndim > 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype.kind == "U"):
        raise TypeError(f"`{name}` tensor/array must hold integer class indices or label "
                        f"names (0-D or 1-D)")
    return arr.reshape(-1).tolist() if arr.ndim == 1 else arr.item()


def as_target(value: Any, labels: Sequence[str] | None = None, *,
              name: str = "target") -> Target:
    """The :class:`Target` a value asks for (targets themselves are returned as they are).

    Args:
        value: A :class:`Target`, ``None`` (top-1), an int, a label name, ``"true"``,
            ``("top", k)``, a list of ints and names, a 0-D/1-D integer tensor or array, or a
            callable ``(output row, item) -> class(es)``.
        labels: The model's labels: label names are checked and turned into indices now;
            ``None`` leaves them to be looked up when resolved.
        name: The argument's name, for messages.

    Raises:
        TypeError: a float, a bool, or anything else than the above.
        ValueError: a negative index, an unknown label name (close ones suggested), a name
            given ``labels=None``... when resolved.

    Example:
        >>> as_target(None), as_target(3), as_target(("top", 2)), as_target("true")
        (TopK(k=1), ClassIndex(index=3), TopK(k=2), TrueLabel())
    """
    if isinstance(value, Label) and labels is not None:
        return value.bind(labels, name)
    if isinstance(value, Classes) and labels is not None:
        return Classes(tuple(one_class(v, labels, name) for v in value.items))
    if isinstance(value, Target):
        return value
    if value is None:
        return TopK(1)
    if isinstance(value, (Tensor, np.ndarray)):
        value = _from_array(value, name)
    if isinstance(value, str):
        if value == "true":
            _refuse_shadowed("true", labels, name, 'TrueLabel()')
            return TrueLabel()
        return one_class(value, labels, name)
    if _is_top(value):
        _refuse_shadowed("top", labels, name, f"TopK({int(value[1])})")
        return TopK(int(value[1]))
    if isinstance(value, (list, tuple)):
        return Classes(tuple(one_class(v, labels, name) for v in value))
    if callable(value):
        return Chooser(value)
    one = one_class(value, labels, name)
    if isinstance(one, ClassIndex) and one.index < 0:
        raise ValueError(f"`{name}` {one.index} is out of range: a class index is >= 0")
    return one


def resolve(target: Any, output: Any, *, labels: Sequence[str] | None = None,
            items: Sequence[Any] | None = None, name: str = "target", what: str = "images",
            several_for_one: bool = True, size: tuple[int, int] | None = None) -> Rows:
    """:func:`as_target` and :meth:`Target.resolve` in one call (the entry points' one line).

    ``size``: ``(H, W)`` of the input the model sees (regions and boxes are checked against it).

    Example:
        >>> import torch
        >>> resolve([2, "b"], torch.zeros(1, 3), labels=["a", "b", "c"]).classes
        tensor([2, 1])
    """
    context = Context(labels=labels, items=items, name=name, what=what,
                      several_for_one=several_for_one, size=size)
    return as_target(target, name=name).resolve(output, context)
