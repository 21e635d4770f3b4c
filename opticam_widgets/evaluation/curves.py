"""Insertion / deletion curves (RISE, Petsiuk et al. 2018) and their area.

Pixels are ranked by saliency (most salient first). *Deletion* starts from the image and
replaces a growing fraction of pixels by a baseline image (lower area under the curve is
better); *insertion* starts from the baseline and puts the image's pixels back (higher is
better). The x-axis is the fraction of pixels, in [0, 1], so the trapezoid AUC lies in [0, 1].
The model runs under ``torch.no_grad()`` in eval mode, in batches, and is left as found.

Example:
    >>> curve_auc([0.0, 0.5, 1.0])
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine.classes import model_labels
from ..engine.maps import resize_maps
from ..engine.targets import TargetLike, row_classes
from ..inputs.images import as_image_batch
from ..inputs.preprocess import Preprocess
from ..model.bundle import ModelBundle
from ..support.checks import check_int
from .fills import FILLS, fill_image
from .forward import class_probabilities, eval_mode, original_probabilities, pick_target, prepare

__all__ = ["BASELINE_IMAGES", "CurveResult", "curve_auc", "deletion", "insertion"]

#: Named baseline images for insertion / deletion: the fills of :mod:`.fills` (a tensor is
#: accepted too).
BASELINE_IMAGES: tuple[str, ...] = FILLS


def curve_auc(scores: Any, fractions: Any = None) -> Any:
    """Area under insertion / deletion curve(s) on a [0, 1] x-axis (trapezoid rule).

    By default the ``T`` points are taken as evenly spaced (``dx = 1 / (T − 1)``), so a
    constant curve ``c`` has area ``c``.

    Args:
        scores: One curve (T,) or several (N, T), ``T ≥ 2`` points each, finite.
        fractions: Optional x positions (T,), non-decreasing from 0 to 1 (e.g.
            :attr:`CurveResult.fractions`, the exact fraction of pixels at each step).

    Returns:
        A float for one curve, an ndarray (N,) for several.

    Raises:
        TypeError: non-numeric input.
        ValueError: fewer than 2 points, more than 2 dimensions, non-finite values, or
            ``fractions`` of the wrong length or not going from 0 to 1.

    Example:
        >>> curve_auc([0.0, 0.5, 1.0])
        0.5
        >>> curve_auc([1.0, 1.0, 0.0], fractions=[0.0, 0.75, 1.0])
        0.875
    """
    arr = _as_float_array(scores, "scores")
    if arr.ndim not in (1, 2):
        raise ValueError(f"`scores` must be one curve (T,) or curves (N, T); got shape "
                         f"{arr.shape}")
    if arr.shape[-1] < 2:
        raise ValueError(f"`scores` needs at least 2 points per curve; got {arr.shape[-1]}")
    if fractions is None:
        dx = np.full(arr.shape[-1] - 1, 1.0 / (arr.shape[-1] - 1))
    else:
        x = _as_float_array(fractions, "fractions")
        if x.shape != (arr.shape[-1],):
            raise ValueError(f"`fractions` must have one value per curve point ({arr.shape[-1]});"
                             f" got shape {x.shape}")
        dx = np.diff(x)
        if (dx < 0).any() or abs(x[0]) > 1e-9 or abs(x[-1] - 1.0) > 1e-9:
            raise ValueError("`fractions` must be non-decreasing from 0 to 1")
    area = ((arr[..., 1:] + arr[..., :-1]) * dx).sum(axis=-1) / 2.0
    return float(area) if arr.ndim == 1 else area


def _as_float_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be numeric, got {type(value).__name__}") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    return arr


@dataclass(frozen=True)
class CurveResult:
    """An insertion or deletion curve per saliency map (arrays on the CPU).

    Attributes:
        kind: ``"insertion"`` or ``"deletion"``.
        fractions: (T + 1,) fraction of pixels inserted / deleted at each step, 0 to 1.
        scores: (N, T + 1) probability of the target class at each step.
        auc: (N,) trapezoid area under each curve over ``fractions`` (x-axis in [0, 1]).
        target: The N class indices.
        baseline: Name of the baseline image (``"tensor"`` when one was given).
    """

    kind: str
    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray
    target: tuple[int, ...]
    baseline: str

    @property
    def mean_auc(self) -> float:
        """AUC averaged over the maps."""
        return float(np.mean(self.auc))


def _baseline_image(baseline: Any, x: Tensor, index: Tensor, pre: Preprocess) -> Tensor:
    """Baseline pixel images (N, 3, h, w) for the rows, at the working resolution of ``x``."""
    size = tuple(x.shape[-2:])
    if isinstance(baseline, str):
        if baseline not in BASELINE_IMAGES:
            raise ValueError(
                f"`baseline` {baseline!r} is unknown; use one of {', '.join(BASELINE_IMAGES)} "
                "or a pixel tensor (3, H, W) in [0, 1]"
            )
        return fill_image(baseline, x, pre)[index]
    if isinstance(baseline, (Tensor, np.ndarray)):
        base = as_image_batch(baseline, name="baseline")
        if tuple(base.shape[-2:]) != size:
            base = F.interpolate(base, size=size, mode="bilinear", align_corners=False)
        if base.shape[0] == 1:
            return base.expand(index.shape[0], -1, -1, -1)
        if base.shape[0] == x.shape[0]:
            return base[index]
        if base.shape[0] == index.shape[0]:
            return base
        raise ValueError(
            f"`baseline` batch has {base.shape[0]} images; give one, one per image or one per map"
        )
    raise TypeError(
        f"`baseline` must be one of {', '.join(map(repr, BASELINE_IMAGES))} or a pixel tensor; "
        f"got {type(baseline).__name__}"
    )


def _curve(kind: str, model: Any, images: Any, saliency: Any, target: tuple[Any, str],
           preprocess: Any, steps: int, baseline: Any, batch_size: int) -> CurveResult:
    """One curve per map; ``target``: the request and its argument's name."""
    net, pre, x, s, index, bs = prepare(model, images, saliency, preprocess, batch_size, False)
    steps = check_int("steps", steps, 1)
    work = x if pre.size is None else pre.resize(x)  # pixels ranked at the model's resolution
    size = tuple(work.shape[-2:])
    s = resize_maps(s, size)
    base = _baseline_image(baseline, work, index, pre)
    n, npix = index.shape[0], size[0] * size[1]
    order = torch.argsort(s.flatten(1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(npix).expand(n, -1).contiguous())
    counts = torch.tensor([round(t * npix / steps) for t in range(steps + 1)])

    with eval_mode(net):
        _, rows = original_probabilities(net, pre, x, index, target[0], bs, model_labels(model),
                                         target[1])
        t = torch.tensor(row_classes(rows), dtype=torch.long)
        pairs = [(i, j) for i in range(n) for j in range(steps + 1)]
        out = torch.empty(n, steps + 1)
        for start in range(0, len(pairs), bs):
            chunk = pairs[start:start + bs]
            pick = torch.tensor([i for i, _ in chunk])
            cnt = counts[[j for _, j in chunk]]
            keep = (rank[pick] < cnt[:, None]).view(-1, 1, *size)  # the first cnt pixels
            img, bas = work[index[pick]], base[pick]
            batch = torch.where(keep, img, bas) if kind == "insertion" else \
                torch.where(keep, bas, img)
            prob, _ = class_probabilities(net, pre, batch, rows.subset(pick), bs)
            for (i, j), v in zip(chunk, prob.tolist()):
                out[i, j] = v
    scores = out.numpy().astype(np.float64)
    fractions = (counts.double() / npix).numpy()
    return CurveResult(
        kind=kind,
        fractions=fractions,
        scores=scores,
        auc=np.atleast_1d(curve_auc(scores, fractions)),
        target=tuple(int(v) for v in t.tolist()),
        baseline=baseline if isinstance(baseline, str) else "tensor",
    )


def insertion(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    target: TargetLike = None,
    preprocess: Any = None,
    *,
    steps: int = 50,
    baseline: Any = "blur",
    batch_size: int = 32,
    **old: Any,
) -> CurveResult:
    """Insertion curve (RISE): put the most salient pixels back on a baseline image first.

    Starting from the baseline image (step 0), the ``k/steps`` most salient fraction of the
    pixels is copied from the image at step ``k``; the last point is the image itself. A
    faithful map makes the class probability rise fast: higher AUC is better.

    Pixels are ranked at the model's input resolution (``preprocess.size``; ties keep raster
    order) and all ``N · (steps + 1)`` images are scored in batches of ``batch_size``.

    Args:
        model: A classifier returning logits, or a ModelBundle.
        images: One image or a batch (pixel values in [0, 1]).
        saliency: Maps (H, W) / (N, H, W), any real values (only their order matters).
        target: ``None`` (top-1 class of the unmasked image), an int or a bundle's label
            name, or one per map (:mod:`~opticam_widgets.engine.targets`).
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        steps: Number of steps; the curve has ``steps + 1`` points.
        baseline: ``"blur"`` (RISE's insertion default: Gaussian blur, kernel 11, σ 5),
            ``"black"``, ``"mean"`` (the dataset's mean colour, ``preprocess.mean``),
            ``"image-mean"`` (each image's mean colour) — the fills of
            :mod:`~opticam_widgets.evaluation.fills` — or a pixel tensor (3, H, W) /
            (B, 3, H, W) in [0, 1].
        batch_size: Images per forward pass.
        **old: ``targets=``, the old name of ``target`` (deprecated).

    Returns:
        A :class:`CurveResult`.

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: bad shapes or values.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> curve = insertion(net, torch.rand(3, 16, 16), torch.rand(16, 16), target=0,
        ...                   preprocess={"size": None}, steps=4)
        >>> curve.scores.shape, curve.fractions.tolist()
        ((1, 5), [0.0, 0.25, 0.5, 0.75, 1.0])
    """
    target = pick_target(target, old, "insertion")
    return _curve("insertion", model, images, saliency, target, preprocess, steps, baseline,
                  batch_size)


def deletion(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    target: TargetLike = None,
    preprocess: Any = None,
    *,
    steps: int = 50,
    baseline: Any = "black",
    batch_size: int = 32,
    **old: Any,
) -> CurveResult:
    """Deletion curve (RISE): replace the most salient pixels by a baseline image first.

    Step 0 is the image, step ``k`` has the ``k/steps`` most salient fraction of its pixels
    replaced by the baseline, the last point is the baseline image. A faithful map makes the
    class probability fall fast: lower AUC is better.

    Args:
        model: A classifier returning logits, or a ModelBundle.
        images: One image or a batch (pixel values in [0, 1]).
        saliency: Maps (H, W) / (N, H, W), any real values (only their order matters).
        target: ``None`` (top-1 class of the unmasked image), an int or a bundle's label
            name, or one per map (:mod:`~opticam_widgets.engine.targets`).
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        steps: Number of steps; the curve has ``steps + 1`` points.
        baseline: ``"black"`` (RISE's deletion default), ``"blur"``, ``"mean"``,
            ``"image-mean"`` (see :func:`insertion`) or a pixel tensor in [0, 1].
        batch_size: Images per forward pass.
        **old: ``targets=``, the old name of ``target`` (deprecated).

    Returns:
        A :class:`CurveResult`.

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: bad shapes or values.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> curve = deletion(net, torch.rand(3, 16, 16), torch.rand(16, 16), target=0,
        ...                  preprocess={"size": None}, steps=4)
        >>> 0.0 <= curve.mean_auc <= 1.0
        True
    """
    target = pick_target(target, old, "deletion")
    return _curve("deletion", model, images, saliency, target, preprocess, steps, baseline,
                  batch_size)
