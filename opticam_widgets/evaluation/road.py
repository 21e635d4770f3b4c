"""ROAD: RemOve And Debias (Rong et al. 2022), computed by pytorch-grad-cam.

Removing pixels by a constant colour leaks the shape of the mask to the model (the classifier
sees an unnatural hole); ROAD fills the removed pixels by *noisy linear imputation* (each
removed pixel is the weighted mean of its 8 neighbours, solved as one sparse system, plus a
little Gaussian noise), so what the model sees is close to a natural image. For each
percentile ``q`` of the map's pixels:

* **MoRF** (most relevant first): the ``100 − q`` % most salient pixels are removed; the class
  probability should fall: lower (more negative) is better;
* **LeRF** (least relevant first): the ``q`` % least salient pixels are removed; the
  probability should stay: higher (closer to 0) is better;
* **combined** ``(LeRF − MoRF) / 2``: higher is better (pytorch-grad-cam's ``ROADCombined``).

Each is the change of the target's probability (a class's softmax, a label's sigmoid, a region's
or a box's: the target's own ``probability``), averaged over the percentiles
(10, 20, …, 90 by default) — pytorch-grad-cam's ``ROADMostRelevantFirstAverage``,
``ROADLeastRelevantFirstAverage`` and ``ROADCombined``, which do the imputation here.

How it meets this package's pixel-space preprocessing: pytorch-grad-cam imputes whatever
tensor it is given; here it is given the **pixels at the model's input resolution** and a model
that normalises them (as the masking metrics mask before normalisation). Linear imputation
commutes with the per-channel normalisation (its weights sum to 1), so this equals imputing the
normalised tensor, except for the noise: its σ = 0.01 is in pixel units here (about 2.5/255),
not in normalised units. The maps are ranked first (ties in raster order, as the
insertion/deletion curves do), so a constant map has well-defined percentiles; for maps without
ties this gives the library's own result. The imputation's noise is drawn from a generator
seeded by ``seed``: the result is reproducible and the caller's random state is untouched.

Needs the optional extra ``yardsticks`` (``pip install opticam-widgets[yardsticks]``, i.e.
``grad-cam``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> res = road(net, torch.rand(3, 16, 16), torch.rand(16, 16), target=0,
    ...            preprocess={"size": None}, percentiles=(20, 80))
    >>> res.morf.shape, bool(abs(res.mean_combined) < 1)
    ((1,), True)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..engine.classes import model_labels
from ..engine.maps import resize_maps
from ..engine.targets import TargetLike, row_classes
from ..inputs.preprocess import Preprocess
from ..model.bundle import ModelBundle
from ..support.checks import check_int, model_device, model_dtype
from .forward import eval_mode, original_probabilities, prepare

__all__ = ["ROAD_PERCENTILES", "RoadResult", "road"]

#: pytorch-grad-cam's default percentiles.
ROAD_PERCENTILES: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)

_INSTALL_HINT = ("ROAD needs pytorch-grad-cam, an optional dependency; install it with "
                 "`pip install opticam-widgets[yardsticks]` (or `pip install grad-cam`)")


@dataclass(frozen=True)
class RoadResult:
    """ROAD scores per saliency map (changes of the class probability, averaged over percentiles).

    Attributes:
        morf: (N,) most relevant first: lower is better.
        lerf: (N,) least relevant first: higher is better.
        combined: (N,) ``(lerf − morf) / 2``: higher is better.
        percentiles: The percentiles averaged over.
        target: The N class indices (``-1`` for a row without one: a box, a prompt).
    """

    morf: np.ndarray
    lerf: np.ndarray
    combined: np.ndarray
    percentiles: tuple[int, ...]
    target: tuple[int, ...]

    @property
    def mean_morf(self) -> float:
        """MoRF averaged over the maps."""
        return float(np.mean(self.morf))

    @property
    def mean_lerf(self) -> float:
        """LeRF averaged over the maps."""
        return float(np.mean(self.lerf))

    @property
    def mean_combined(self) -> float:
        """The combined score averaged over the maps."""
        return float(np.mean(self.combined))


class _RowNet(nn.Module):
    """The model behind its normalisation, scoring rows: pixels in, each row's probability out.

    Image ``i`` of a batch is row ``i`` of :attr:`rows` (set per batch): the output is the
    target's own probability of that row, (B, 1), whatever the model returns (logits, a dense
    map, detections), so the library's ROAD reads it with :func:`_first`.
    """

    def __init__(self, model: nn.Module, pre: Preprocess) -> None:
        super().__init__()
        self.net = model
        self.normalize = pre.normalize
        self.dtype = model_dtype(model)
        self.device = model_device(model)
        self.rows: Any = None

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        output = self.net(self.normalize(x.to(self.device)).to(self.dtype))
        return self.rows.probability(output).float()[:, None]


def _first(output: Tensor) -> Tensor:
    """A row's probability in :class:`_RowNet`'s output (the library's ``target``)."""
    return output[0]


def _ranks(s: Tensor) -> np.ndarray:
    """Each map's pixel ranks scaled to [0, 1] (ties in raster order), float32 (N, H, W)."""
    flat = s.flatten(1)
    order = torch.argsort(flat, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order).contiguous())
    scaled = rank.double() / max(flat.shape[1] - 1, 1)
    return scaled.view_as(s).numpy().astype(np.float32)


def _percentiles(percentiles: Any) -> tuple[int, ...]:
    if isinstance(percentiles, (str, bytes)) or not isinstance(percentiles, Sequence):
        raise TypeError("`percentiles` must be a sequence of numbers in (0, 100), e.g. "
                        f"{ROAD_PERCENTILES}; got {type(percentiles).__name__}")
    out = tuple(percentiles)
    if not out or not all(isinstance(q, (int, float)) and 0 < q < 100 for q in out):
        raise ValueError(f"`percentiles` must be numbers strictly between 0 and 100; got {out}")
    return out


def _library() -> Any:
    try:
        from pytorch_grad_cam.metrics import road as lib
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return lib


def road(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    target: TargetLike = None,
    preprocess: Any = None,
    *,
    percentiles: Sequence[int] = ROAD_PERCENTILES,
    seed: int = 0,
    batch_size: int = 32,
) -> RoadResult:
    """ROAD (MoRF, LeRF and combined) of saliency maps, by pytorch-grad-cam's imputation.

    Args:
        model: A classifier returning logits, or a ModelBundle.
        images: One image or a batch (pixel values in [0, 1]).
        saliency: Maps (H, W) / (N, H, W), any real values (only their order matters).
        target: ``None`` (top-1 class), an int or a bundle's label name, or one per map
            (:mod:`~opticam_widgets.engine.targets`).
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        percentiles: Percentiles of the map's pixels averaged over.
        seed: Seed of the imputation's noise.
        batch_size: Images per forward pass.

    Returns:
        A :class:`RoadResult`.

    Raises:
        ImportError: pytorch-grad-cam is not installed.
        TypeError: an argument of the wrong kind.
        ValueError: bad shapes or values.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> road(net, torch.rand(3, 16, 16), torch.rand(16, 16), target=0,
        ...      preprocess={"size": None}, percentiles=(50,)).percentiles
        (50,)
    """
    qs = _percentiles(percentiles)
    seed = check_int("seed", seed, 0)
    lib = _library()
    net, pre, x, s, index, bs = prepare(model, images, saliency, preprocess, batch_size, False)
    work = x if pre.size is None else pre.resize(x)  # imputed at the model's resolution
    cams = _ranks(resize_maps(s, tuple(work.shape[-2:])))
    row_net = _RowNet(net, pre)
    with eval_mode(net), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # pytorch-grad-cam 1.5.7 calls np.argwhere on a tensor (NumPy 2's __array_wrap__ notice)
        warnings.filterwarnings("ignore", "__array_wrap__", DeprecationWarning)
        torch.manual_seed(seed)  # the imputation's noise (the library draws it on the CPU)
        _, rows = original_probabilities(net, pre, x, index, target, bs, model_labels(model))
        classes = row_classes(rows)
        lerf, morf = [], []
        for start in range(0, len(classes), bs):
            part = slice(start, start + bs)
            batch = work[index[part]].float().cpu()
            row_net.rows = rows.subset(torch.arange(len(classes))[part])
            targets = [_first] * batch.shape[0]
            lerf.append(lib.ROADLeastRelevantFirstAverage(list(qs))(batch, cams[part], targets,
                                                                    row_net))
            morf.append(lib.ROADMostRelevantFirstAverage(list(qs))(batch, cams[part], targets,
                                                                   row_net))
    lo = np.concatenate(lerf).astype(np.float64).reshape(-1)
    mo = np.concatenate(morf).astype(np.float64).reshape(-1)
    return RoadResult(morf=mo, lerf=lo, combined=(lo - mo) / 2.0, percentiles=qs,
                      target=tuple(classes))
