"""One class, asked for by index or by label name: the same rule wherever a class is chosen.

Example:
    >>> class_index("tabby", ["tench", "tabby"])
    1
    >>> class_index(0, ["tench", "tabby"])
    0
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..model.bundle import ModelBundle

__all__ = ["class_index", "model_labels"]


def _by_label(label: str, names: Sequence[str] | None, name: str) -> int:
    if not names:
        raise ValueError(f"`{name}` {label!r} is a label name, but this model has no labels; "
                         f"give the class index (an int)")
    names = [str(n) for n in names]
    if label in names:
        return names.index(label)
    folded = [n.casefold() for n in names]
    if label.casefold() in folded:
        return folded.index(label.casefold())
    close = difflib.get_close_matches(label, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"`{name}` {label!r} is not one of the model's {len(names)} labels{hint} "
                     f"(or give the class index, an int)")


def class_index(value: Any, names: Sequence[str] | None, classes: int | None = None, *,
                name: str = "target") -> int:
    """The class index asked for by ``value``: an int index or a label name.

    Args:
        value: An int (or numpy integer) in ``0..classes-1``, or a label name (exact, then
            case-insensitive).
        names: The class names, or ``None`` when the model has none.
        classes: The number of classes (default: ``len(names)``).
        name: The argument's name, for messages.

    Raises:
        TypeError: a bool, a float or anything else than an int or a string.
        ValueError: an index out of range or an unknown label (close matches are named).

    Example:
        >>> class_index("Tabby", ["tench", "tabby"])
        1
    """
    if isinstance(value, str):
        return _by_label(value, names, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        fix = (f": round it yourself if you meant class {int(value)}" if isinstance(
            value, (float, np.floating)) and np.isfinite(value) else "")
        raise TypeError(f"`{name}` must be a class index (an int) or a label name (a str); got "
                        f"{type(value).__name__} {value!r}{fix}")
    count = classes if classes is not None else len(names or [])
    if not 0 <= int(value) < count:
        raise ValueError(f"`{name}` {int(value)} is out of range: a class index of this model "
                         f"is in 0..{count - 1} ({count} classes)")
    return int(value)


def model_labels(model: Any, labels: Any = None) -> list[str] | None:
    """The class names a model's targets are looked up in: ``labels``, else a bundle's.

    Args:
        model: An ``nn.Module`` (no labels of its own) or a
            :class:`~opticam_widgets.model.bundle.ModelBundle`.
        labels: One name per class, overriding the bundle's; ``None`` keeps them.

    Raises:
        TypeError: ``labels`` is not a list of strings.

    Example:
        >>> from torch import nn
        >>> model_labels(ModelBundle(nn.Identity(), labels=["cat", "dog"]))
        ['cat', 'dog']
    """
    if labels is None:
        labels = model.labels if isinstance(model, ModelBundle) else None
        return None if labels is None else [str(n) for n in labels]
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence) or not all(
            isinstance(n, str) for n in labels) or not labels:
        raise TypeError("`labels` must be a non-empty list of class names (str), one per "
                        f"class; got {type(labels).__name__}")
    return list(labels)
