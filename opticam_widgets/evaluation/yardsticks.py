"""Every yardstick of a map in one call: AD/AI/AG under each fill, ROAD, insertion and deletion.

The widget's yardstick panel, the faithfulness benchmark and the reports read the same flat
dict of means, whose keys name the measure and its fill (see :data:`YARDSTICKS` for what each
means and which way is better):

* ``AD_<fill>``, ``AI_<fill>``, ``AG_<fill>`` (%): :func:`~.metrics.faithfulness` with that
  fill (``black``, ``mean``, ``blur`` by default; :mod:`.fills`);
* ``ROAD_MoRF``, ``ROAD_LeRF``, ``ROAD`` (the combined score): :func:`~.road.road`;
* ``insertion_blur`` and ``deletion_black`` (AUC): the curves of :mod:`.curves` with RISE's
  baselines.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> out = yardsticks(net, torch.rand(3, 16, 16), torch.rand(16, 16), 0, {"size": None},
    ...                  steps=4, percentiles=(50,))
    >>> sorted(out)[:4]
    ['AD_black', 'AD_blur', 'AD_mean', 'AG_black']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..engine.targets import TargetLike
from ..model.bundle import ModelBundle
from .curves import deletion, insertion
from .fills import check_fill
from .metrics import faithfulness
from .road import ROAD_PERCENTILES, road

__all__ = ["YARDSTICK_FILLS", "YARDSTICKS", "describe_yardstick", "yardsticks"]

#: The fills the masking metrics are measured under by default.
YARDSTICK_FILLS: tuple[str, ...] = ("black", "mean", "blur")

#: What each yardstick measures: ``key -> (which way is better, meaning)`` (``AD``/``AI``/``AG``
#: stand for every fill: ``AD_black``, ``AD_mean``, …).
YARDSTICKS: dict[str, tuple[str, str]] = {
    "AD": ("lower", "Average Drop: how much the class probability falls when the model sees "
                    "only the map (the rest filled)"),
    "AI": ("higher", "Average Increase: share of images whose probability rises when only the "
                     "map is kept"),
    "AG": ("higher", "Average Gain: how much the probability rises when only the map is kept"),
    "ROAD_MoRF": ("lower", "ROAD, most relevant first: probability change when the most salient "
                           "pixels are imputed from their neighbours"),
    "ROAD_LeRF": ("higher", "ROAD, least relevant first: probability change when the least "
                            "salient pixels are imputed"),
    "ROAD": ("higher", "ROAD combined, (LeRF − MoRF) / 2"),
    "insertion_blur": ("higher", "Insertion AUC: probability as the most salient pixels are put "
                                 "back onto a blurred image"),
    "deletion_black": ("lower", "Deletion AUC: probability as the most salient pixels are "
                                "blacked out"),
}


def describe_yardstick(key: str) -> tuple[str, str]:
    """``(which way is better, meaning)`` of a key of :func:`yardsticks` (``"AD_mean"``, …).

    Raises:
        ValueError: an unknown key.

    Example:
        >>> describe_yardstick("AD_mean")[0]
        'lower'
    """
    head, _, fill = key.partition("_")
    if key in YARDSTICKS:
        better, meaning = YARDSTICKS[key]
    elif head in ("AD", "AI", "AG") and fill:
        better, meaning = YARDSTICKS[head]
        meaning = f"{meaning}; fill: {fill}"
    else:
        raise ValueError(f"`key` {key!r} is not a yardstick; use one of yardsticks()'s keys")
    return better, meaning


def yardsticks(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    target: TargetLike = None,
    preprocess: Any = None,
    *,
    fills: Sequence[str] = YARDSTICK_FILLS,
    steps: int = 20,
    percentiles: Sequence[int] | None = ROAD_PERCENTILES,
) -> dict[str, float]:
    """The means of every yardstick over the maps, in one flat dict.

    Args:
        model: A classifier returning logits, or a ModelBundle.
        images: One image or a batch (pixel values in [0, 1]).
        saliency: Maps in [0, 1] (see :func:`~.metrics.faithfulness`).
        target: What to explain (:mod:`~opticam_widgets.engine.targets`), one class per map.
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        fills: The fills of AD/AI/AG (names of :data:`~.fills.FILLS`).
        steps: Steps of the insertion and deletion curves.
        percentiles: ROAD's percentiles; ``None`` leaves ROAD out (it needs pytorch-grad-cam
            and is the slowest: one sparse solve per percentile, map and order).

    Returns:
        ``{"AD_black": …, "AG_mean": …, "ROAD": …, "deletion_black": …, …}``: floats.

    Raises:
        ImportError: ROAD asked for and pytorch-grad-cam missing.
        TypeError: an argument of the wrong kind.
        ValueError: bad shapes or values.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> out = yardsticks(net, torch.rand(3, 16, 16), torch.ones(16, 16), 0,
        ...                  {"size": None}, fills=("mean",), steps=2, percentiles=None)
        >>> out["AD_mean"], "ROAD" in out
        (0.0, False)
    """
    if isinstance(fills, str) or not isinstance(fills, Sequence):
        raise TypeError(f"`fills` must be a list of fill names, e.g. {list(YARDSTICK_FILLS)}")
    out: dict[str, float] = {}
    for fill in fills:
        check_fill(fill)  # refuse a bad name before any work
    for fill in fills:
        res = faithfulness(model, images, saliency, target, preprocess, fill=fill)
        for key in ("AD", "AI", "AG"):
            out[f"{key}_{fill}"] = res[key]
    if percentiles is not None:
        r = road(model, images, saliency, target, preprocess, percentiles=percentiles)
        out.update(ROAD_MoRF=r.mean_morf, ROAD_LeRF=r.mean_lerf, ROAD=r.mean_combined)
    out["insertion_blur"] = insertion(model, images, saliency, target, preprocess, steps=steps,
                                      baseline="blur").mean_auc
    out["deletion_black"] = deletion(model, images, saliency, target, preprocess, steps=steps,
                                     baseline="black").mean_auc
    return out

