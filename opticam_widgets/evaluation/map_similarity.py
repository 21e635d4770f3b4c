"""How alike two saliency maps are: Spearman rank correlation (SciPy) and SSIM (scikit-image).

The sanity checks compare maps with maps: the map of a randomised model with the original
(:mod:`.randomisation`), the maps of two classes (:mod:`.sensitivity`). Two numbers, as in
Adebayo et al. 2018:

* **Spearman rank correlation** (:func:`scipy.stats.spearmanr` on the pixels): do both maps
  rank the pixels alike? 1 = same order, 0 = unrelated; a constant map ranks nothing, so it
  shares no order with a map that does (0) and all of it with another constant map (1);
* **SSIM** (:func:`skimage.metrics.structural_similarity`, data range 1, on each map min-max
  scaled to [0, 1]; a constant map scaled to zeros): are they alike as images? 1 = identical.

Example:
    >>> import numpy as np
    >>> a = np.linspace(0, 1, 64).reshape(8, 8)
    >>> s = map_similarity(a, a ** 2)
    >>> round(s["spearman"], 6), round(s["ssim"], 2) < 1.0
    (1.0, True)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import Tensor

__all__ = ["map_similarity"]


def _as_map(value: Any, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a map (H, W): a tensor or an ndarray; got "
                        f"{type(value).__name__}") from None
    arr = arr.squeeze()
    if arr.ndim != 2 or min(arr.shape) < 3:
        raise ValueError(f"`{name}` must be one map (H, W) at least 3×3; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    return arr


def _scaled(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def map_similarity(a: Any, b: Any) -> dict[str, float]:
    """Spearman rank correlation and SSIM of two maps of the same size.

    Args:
        a: A map (H, W) (tensor or ndarray; (1, H, W) is accepted).
        b: Another map of the same shape.

    Returns:
        ``{"spearman": float, "ssim": float}``.

    Raises:
        TypeError: not a map.
        ValueError: not 2-D, non-finite, smaller than 3×3, or shapes differ.

    Example:
        >>> import numpy as np
        >>> map_similarity(np.eye(4), np.eye(4))["ssim"]
        1.0
    """
    x, y = _as_map(a, "a"), _as_map(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"`a` and `b` must have the same shape; got {x.shape} and {y.shape}. "
                         "Resize one first (maps at the same image's resolution match).")
    flat = (x.min() == x.max(), y.min() == y.max())
    if any(flat):
        rho = 1.0 if all(flat) else 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = float(spearmanr(x.ravel(), y.ravel())[0])
    win = min(7, *x.shape)
    win -= 1 - win % 2  # odd, as scikit-image wants
    ssim = float(structural_similarity(_scaled(x), _scaled(y), data_range=1.0, win_size=win))
    return {"spearman": rho, "ssim": ssim}
