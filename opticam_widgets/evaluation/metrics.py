"""Faithfulness metrics for saliency maps: Average Drop / Increase / Gain, insertion / deletion.

Two families of measures, both computed on the *probability* of the target: a class's softmax
(a multi-label head's sigmoid, a region's mean probability, a box's detection score; the
target rows' ``probability``, :mod:`~opticam_widgets.engine.targets`):

* **Masking metrics** (Chattopadhay et al. 2018; Average Gain from Zhang et al., Opti-CAM,
  arXiv 2301.07002). With ``p`` the probability of the unmasked image and ``o`` that of the
  masked image ``x ⊙ S`` (masking in pixel space, *before* the model's normalization, so the
  masked-out region is black, exactly as Opti-CAM is optimized)::

      AD = mean(max(0, p − o) / p) · 100          lower is better
      AI = mean(1[o > p]) · 100                   higher is better  (a.k.a. Increase in Confidence)
      AG = mean(max(0, o − p) / (1 − p)) · 100    higher is better

  A term whose denominator is 0 is 0: with ``p == 0`` nothing can drop, with ``p == 1``
  nothing can be gained (saturated float32 softmax outputs make ``p == 1`` common).

* **Insertion / deletion curves** (RISE, Petsiuk et al. 2018). Pixels are ranked by saliency
  (most salient first). *Deletion* starts from the image and replaces a growing fraction of
  pixels by a baseline image (lower area under the curve is better); *insertion* starts from
  the baseline and puts the image's pixels back (higher is better). The x-axis is the fraction
  of pixels, in [0, 1], so the trapezoid AUC lies in [0, 1].

Pure functions (:func:`average_drop`, :func:`average_increase`, :func:`average_gain`,
:func:`curve_auc`) work on numbers; the model-level functions (:func:`masked_probabilities`,
:func:`faithfulness`, :func:`insertion`, :func:`deletion`) run the model under
``torch.no_grad()`` in eval mode, in batches, and leave it exactly as they found it (train/eval
flags restored, no hook registered, parameters and their ``.grad`` untouched).

The curves live in :mod:`~opticam_widgets.evaluation.curves` and the shared model plumbing in
:mod:`~opticam_widgets.evaluation.forward`; every public name is importable from here as well.

Example:
    >>> average_drop([0.8, 0.5], [0.4, 0.6])
    25.0
    >>> average_increase([0.8, 0.5], [0.4, 0.6])
    50.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..engine.classes import model_labels
from ..engine.maps import resize_maps
from ..engine.targets import TargetLike, row_classes
from ..model.bundle import ModelBundle
from .curves import BASELINE_IMAGES, CurveResult, curve_auc, deletion, insertion
from .fills import fill_image
from .forward import (
    RANGE_TOL,
    class_probabilities,
    eval_mode,
    original_probabilities,
    pick_target,
    prepare,
)

__all__ = [
    "BASELINE_IMAGES",
    "CurveResult",
    "average_drop",
    "average_gain",
    "average_increase",
    "curve_auc",
    "deletion",
    "faithfulness",
    "insertion",
    "masked_probabilities",
]

# ---------------------------------------------------------------------------- pure functions
def _as_prob_array(value: Any, name: str) -> np.ndarray:
    """Coerce probabilities to a finite float64 1-D array in [0, 1]."""
    if isinstance(value, Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"`{name}` must be probabilities (a number, a list, an ndarray or a tensor); got "
            f"{type(value).__name__}"
        )
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be numeric probabilities (a number, a list, an ndarray or a tensor); "
            f"got {type(value).__name__}"
        ) from None
    arr = arr.reshape(-1) if arr.ndim <= 1 else arr
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (one probability per image); got shape "
                         f"{arr.shape}. Flatten it or pass the target-class column only.")
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty; give at least one probability")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -RANGE_TOL or hi > 1.0 + RANGE_TOL:
        raise ValueError(
            f"`{name}` must hold probabilities in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
            "pass softmax probabilities of the target class, not logits"
        )
    return np.clip(arr, 0.0, 1.0)


def _pair(p: Any, o: Any) -> tuple[np.ndarray, np.ndarray]:
    p_arr, o_arr = _as_prob_array(p, "p"), _as_prob_array(o, "o")
    if p_arr.shape != o_arr.shape:
        raise ValueError(
            f"`p` and `o` must have one value per image each; got {p_arr.size} and {o_arr.size}"
        )
    return p_arr, o_arr


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def _drop_terms(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    return _safe_ratio(np.maximum(0.0, p - o), p) * 100.0


def _increase_terms(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    return (o > p).astype(np.float64) * 100.0


def _gain_terms(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    return _safe_ratio(np.maximum(0.0, o - p), 1.0 - p) * 100.0


def average_drop(p: Any, o: Any) -> float:
    """Average Drop (AD, %): how much the class probability falls when only the map is kept.

    ``AD = mean(max(0, p − o) / p) · 100``; lower is better; 0 when ``o ≥ p`` everywhere.

    Args:
        p: Class probabilities of the unmasked images, shape (N,) (number, list, ndarray or
            tensor) in [0, 1].
        o: Class probabilities of the masked images ``x ⊙ S``, same shape.

    Returns:
        The mean over images, in percent.

    Raises:
        TypeError: non-numeric input.
        ValueError: shapes differ, empty, non-finite or outside [0, 1] (e.g. logits).

    Example:
        >>> average_drop([0.5, 0.4], [0.25, 0.8])
        25.0
    """
    return float(_drop_terms(*_pair(p, o)).mean())


def average_increase(p: Any, o: Any) -> float:
    """Average Increase (AI, %), a.k.a. Increase in Confidence: share of images with ``o > p``.

    ``AI = mean(1[o > p]) · 100``; higher is better.

    Args:
        p: Class probabilities of the unmasked images, shape (N,) in [0, 1].
        o: Class probabilities of the masked images, same shape.

    Returns:
        The percentage of images whose masked probability is strictly larger.

    Raises:
        TypeError: non-numeric input.
        ValueError: shapes differ, empty, non-finite or outside [0, 1].

    Example:
        >>> average_increase([0.5, 0.4, 0.3, 0.2], [0.6, 0.4, 0.1, 0.9])
        50.0
    """
    return float(_increase_terms(*_pair(p, o)).mean())


def average_gain(p: Any, o: Any) -> float:
    """Average Gain (AG, %), the Opti-CAM paper's complement to Average Drop.

    ``AG = mean(max(0, o − p) / (1 − p)) · 100``; higher is better; 0 when ``o ≤ p``
    everywhere.

    Args:
        p: Class probabilities of the unmasked images, shape (N,) in [0, 1].
        o: Class probabilities of the masked images, same shape.

    Returns:
        The mean over images, in percent.

    Raises:
        TypeError: non-numeric input.
        ValueError: shapes differ, empty, non-finite or outside [0, 1].

    Example:
        >>> average_gain([0.5, 0.5], [0.75, 0.25])
        25.0
    """
    return float(_gain_terms(*_pair(p, o)).mean())


# ---------------------------------------------------------------------------- AD / AI / AG
def masked_probabilities(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    target: TargetLike = None,
    preprocess: Any = None,
    *,
    batch_size: int = 32,
    fill: str = "black",
    **old: Any,
) -> tuple[Tensor, Tensor]:
    """Class probabilities of the images (``p``) and of the masked images ``x ⊙ S`` (``o``).

    The image is multiplied by the map in pixel space at its own resolution, then resized and
    normalized with ``preprocess`` (so masked-out pixels are black, as in Opti-CAM).

    Args:
        model: A classifier returning logits (B, classes), or a ModelBundle (whose
            preprocessing is used when ``preprocess`` is None).
        images: One image or a batch, anything :func:`~opticam_widgets.inputs.images.as_image_batch`
            accepts (pixel values in [0, 1]).
        saliency: Maps in [0, 1], (H, W), (N, H, W) or (N, 1, H, W) (tensor or ndarray), one
            per image, or N maps for a single image; resized bilinearly to the image size when
            their size differs. An ``OptiCAMResult`` is accepted too.
        target: What to explain, one class per map (:mod:`~opticam_widgets.engine.targets`):
            ``None`` (top-1 class of each unmasked image), an int or a bundle's label name for
            every map, or a list with one per map.
        preprocess: A :class:`~opticam_widgets.inputs.preprocess.Preprocess` or anything
            :func:`~opticam_widgets.inputs.images.coerce_preprocess` accepts; None means the
            bundle's, or ImageNet 224×224 for a bare module.
        batch_size: Images per forward pass.
        fill: What the masked-out pixels become, a name of
            :data:`~opticam_widgets.evaluation.fills.FILLS`: ``"black"`` (the paper's
            ``x ⊙ S``, the default), ``"mean"`` (the dataset's mean colour,
            ``preprocess.mean``), ``"blur"``, ``"image-mean"``; otherwise
            ``x ⊙ S + fill ⊙ (1 − S)``.
        **old: ``targets=``, the old name of ``target`` (deprecated).

    Returns:
        ``(p, o)``: two float32 CPU tensors of shape (N,).

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: bad shapes, maps outside [0, 1], targets out of range, a model that does
            not return (B, classes) logits.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> p, o = masked_probabilities(net, torch.rand(2, 3, 32, 32), torch.ones(2, 32, 32),
        ...                             target=[0, 1], preprocess={"size": None})
        >>> torch.allclose(p, o)
        True
    """
    target = pick_target(target, old, "masked_probabilities")
    p, o, _ = _masked(model, images, saliency, target, preprocess, batch_size, fill)
    return p, o


def _masked(model: Any, images: Any, saliency: Any, target: tuple[Any, str], preprocess: Any,
            batch_size: int, fill: str = "black") -> tuple[Tensor, Tensor, Tensor]:
    """``p``, ``o`` and the classes; ``target``: the request and its argument's name."""
    net, pre, x, s, index, bs = prepare(model, images, saliency, preprocess, batch_size, True)
    s = resize_maps(s, tuple(x.shape[-2:]))
    base = None if fill == "black" else fill_image(fill, x, pre)  # black: x ⊙ S, bit for bit
    with eval_mode(net):
        p, rows = original_probabilities(net, pre, x, index, target[0], bs, model_labels(model),
                                         target[1])
        o = []
        for start in range(0, index.shape[0], bs):
            chunk = torch.arange(start, min(start + bs, index.shape[0]))
            masked = x[index[chunk]] * s[chunk, None]
            if base is not None:  # x ⊙ S + fill ⊙ (1 − S)
                masked = masked + base[index[chunk]] * (1.0 - s[chunk, None])
            o.append(class_probabilities(net, pre, masked, rows.subset(chunk), bs)[0])
    return p.float(), torch.cat(o).float(), torch.tensor(row_classes(rows), dtype=torch.long)


def faithfulness(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    target: TargetLike = None,
    preprocess: Any = None,
    *,
    batch_size: int = 32,
    fill: str = "black",
    **old: Any,
) -> dict[str, Any]:
    """Average Drop, Average Increase and Average Gain of saliency maps, per image and averaged.

    Args:
        model: A classifier returning logits, or a ModelBundle.
        images: One image or a batch (pixel values in [0, 1]).
        saliency: Maps in [0, 1] — see :func:`masked_probabilities`.
        target: ``None`` (top-1 class), an int or a bundle's label name, or one per map
            (:mod:`~opticam_widgets.engine.targets`).
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        batch_size: Images per forward pass.
        fill: What the masked-out pixels become, a name of
            :data:`~opticam_widgets.evaluation.fills.FILLS`: ``"black"`` (the paper's
            ``x ⊙ S``, the default), ``"mean"`` (the dataset's mean colour,
            ``preprocess.mean``), ``"blur"``, ``"image-mean"``; otherwise
            ``x ⊙ S + fill ⊙ (1 − S)``.
        **old: ``targets=``, the old name of ``target`` (deprecated).

    Returns:
        A dict with keys

        * ``"AD"``, ``"AI"``, ``"AG"``: floats, the averages in percent;
        * ``"AD_per_image"``, ``"AI_per_image"``, ``"AG_per_image"``: float64 ndarrays (N,) of
            the per-map terms in percent (``AI_per_image`` is 0 or 100);
        * ``"p"``, ``"o"``: float64 ndarrays (N,), probabilities of the image and of the
            masked image;
        * ``"target"``: tuple of the N class indices used.

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: bad shapes or values (see :func:`masked_probabilities`).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> res = faithfulness(net, torch.rand(3, 16, 16), torch.ones(16, 16),
        ...                    preprocess={"size": None})
        >>> res["AD"], res["AG"]
        (0.0, 0.0)
    """
    target = pick_target(target, old, "faithfulness")
    p_t, o_t, t = _masked(model, images, saliency, target, preprocess, batch_size, fill)
    p, o = _pair(p_t, o_t)
    ad, ai, ag = _drop_terms(p, o), _increase_terms(p, o), _gain_terms(p, o)
    return {
        "AD": float(ad.mean()),
        "AI": float(ai.mean()),
        "AG": float(ag.mean()),
        "AD_per_image": ad,
        "AI_per_image": ai,
        "AG_per_image": ag,
        "p": p,
        "o": o,
        "target": tuple(int(v) for v in t.tolist()),
    }
