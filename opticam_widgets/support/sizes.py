"""The one rule for an image or map size ``(height, width)``, wherever a size is taken.

Used by :class:`~opticam_widgets.inputs.preprocess.Preprocess`, ``OptiCAM.preview``,
``OptiCAMResult.saliency_at`` and :func:`~opticam_widgets.display.render.resize_map`, so that the
same size is accepted (or refused, with the same message) everywhere. numpy only: no torch.

Example:
    >>> check_size((224, 160.0))
    (224, 160)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["check_size"]


def check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """``(height, width)`` as two ints: two whole numbers >= 1 (ints, or floats like ``8.0``).

    Args:
        size: A tuple, list or array of two values.
        name: The argument's name, for the message.

    Raises:
        ValueError: anything else (a bool, a fraction, zero, not two values), with one message.

    Example:
        >>> check_size([8, 9])
        (8, 9)
    """
    ok = isinstance(size, (Sequence, np.ndarray)) and not isinstance(size, (str, bytes)) \
        and len(size) == 2 and all(
            isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool)
            and math.isfinite(s) and float(s).is_integer() and s >= 1 for s in size)
    if not ok:
        raise ValueError(f"`{name}` must be two positive ints (height, width); got {size!r}")
    return int(size[0]), int(size[1])
