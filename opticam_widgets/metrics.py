"""Faithfulness metrics for saliency maps: Average Drop / Increase / Gain, insertion / deletion.

Two families of measures, both computed on the *class probability* (softmax) of the target
class:

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

Example:
    >>> average_drop([0.8, 0.5], [0.4, 0.6])
    25.0
    >>> average_increase([0.8, 0.5], [0.4, 0.6])
    50.0
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bundle import ModelBundle, unpack_model
from .checks import check_int, check_logits, model_device
from .features import model_guard
from .images import Preprocess, as_pixel_batch
from .maps import resize_maps
from .targets import Target, resolve_targets

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

#: Named baseline images for insertion / deletion (a tensor is accepted too).
BASELINE_IMAGES: tuple[str, ...] = ("black", "blur", "mean")

#: A target class: ``None`` (top-1 of the unmasked image), one int, or one int per row.
Targets = Target

_RANGE_TOL = 1e-4  # float round-off allowed outside [0, 1] before we complain


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
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
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


# ---------------------------------------------------------------------------- model helpers
@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Frozen, eval mode and no autograd for the block; the model is restored after."""
    with model_guard(model), torch.no_grad():
        yield


def _as_saliency(saliency: Any, *, check_range: bool) -> Tensor:
    """Coerce saliency maps to a float32 CPU tensor (N, H, W)."""
    if isinstance(saliency, np.ndarray):
        if not (np.issubdtype(saliency.dtype, np.floating)
                or np.issubdtype(saliency.dtype, np.integer)) or saliency.dtype == np.bool_:
            raise TypeError(f"`saliency` array must be numeric, got dtype {saliency.dtype}")
        saliency = torch.from_numpy(np.ascontiguousarray(saliency, dtype=np.float32))
    elif hasattr(saliency, "saliency") and isinstance(saliency.saliency, Tensor):
        saliency = saliency.saliency  # an OptiCAMResult
    if not isinstance(saliency, Tensor):
        raise TypeError(
            f"`saliency` must be a tensor or ndarray of maps (H, W) or (N, H, W); got "
            f"{type(saliency).__name__}"
        )
    s = saliency.detach().to("cpu", torch.float32)
    if s.ndim == 4 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim == 2:
        s = s.unsqueeze(0)
    if s.ndim != 3 or s.numel() == 0:
        raise ValueError(
            f"`saliency` must have shape (H, W), (N, H, W) or (N, 1, H, W); got "
            f"{tuple(saliency.shape)}"
        )
    if not torch.isfinite(s).all():
        raise ValueError("`saliency` contains NaN or infinite values")
    if check_range:
        lo, hi = float(s.min()), float(s.max())
        if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
            raise ValueError(
                f"`saliency` values must lie in [0, 1] (the image is multiplied by it); got "
                f"[{lo:.4g}, {hi:.4g}]. Min-max normalize each map first."
            )
        s = s.clamp(0.0, 1.0)
    return s


def _rows(n_images: int, n_maps: int) -> Tensor:
    """Index of the image used by each saliency row."""
    if n_maps == n_images:
        return torch.arange(n_images)
    if n_images == 1:
        return torch.zeros(n_maps, dtype=torch.long)
    raise ValueError(
        f"`saliency` has {n_maps} maps for {n_images} images; give one map per image (or "
        "several maps of a single image)"
    )


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    return check_logits(model(x), x.shape[0]).float()


def _probs(model: nn.Module, pre: Preprocess, x: Tensor, targets: Tensor | None,
           batch_size: int) -> tuple[Tensor, Tensor]:
    """Softmax probabilities of ``targets`` (or top-1) for pixel batch ``x``, in chunks.

    Returns ``(prob (N,), class (N,))`` on the CPU. Call inside :func:`_eval_mode`.
    """
    device = model_device(model)
    probs, classes = [], []
    for start in range(0, x.shape[0], batch_size):
        chunk = pre.normalize(pre.resize(x[start:start + batch_size].to(device)))
        pr = torch.softmax(_logits(model, chunk), dim=1)
        if targets is None:
            val, cls = pr.max(dim=1)
        else:
            cls = targets[start:start + batch_size].to(pr.device)
            val = pr.gather(1, cls[:, None])[:, 0]
        probs.append(val.cpu())
        classes.append(cls.cpu())
    return torch.cat(probs), torch.cat(classes)


def _original(model: nn.Module, pre: Preprocess, images: Tensor, index: Tensor,
              targets: Targets, batch_size: int) -> tuple[Tensor, Tensor]:
    """Probability of the unmasked images (one per row) and the resolved targets (N,)."""
    device = model_device(model)
    first = pre.normalize(pre.resize(images[:1].to(device)))
    classes = _logits(model, first).shape[1]
    if targets is None:
        p_img, top1 = _probs(model, pre, images, None, batch_size)
        return p_img[index], top1[index]
    t, _ = resolve_targets(targets, index.shape[0], classes, name="targets",
                           what="saliency maps", several_for_one=False)
    if images.shape[0] == index.shape[0]:
        p, _ = _probs(model, pre, images, t, batch_size)
        return p, t
    # one image, several classes: a single forward pass gives all of them
    x = pre.normalize(pre.resize(images.to(device)))
    pr = torch.softmax(_logits(model, x), dim=1)[0].cpu()
    return pr[t], t


def _prepare(model: Any, images: Any, saliency: Any, preprocess: Any, batch_size: int,
             check_range: bool) -> tuple[nn.Module, Preprocess, Tensor, Tensor, Tensor, int]:
    net, pre = unpack_model(model, preprocess)
    bs = check_int("batch_size", batch_size, 1)
    x = as_pixel_batch(images, name="images")
    s = _as_saliency(saliency, check_range=check_range)
    index = _rows(x.shape[0], s.shape[0])
    return net, pre, x, s, index, bs


# ---------------------------------------------------------------------------- AD / AI / AG
def masked_probabilities(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    targets: Targets = None,
    preprocess: Any = None,
    *,
    batch_size: int = 32,
) -> tuple[Tensor, Tensor]:
    """Class probabilities of the images (``p``) and of the masked images ``x ⊙ S`` (``o``).

    The image is multiplied by the map in pixel space at its own resolution, then resized and
    normalized with ``preprocess`` (so masked-out pixels are black, as in Opti-CAM).

    Args:
        model: A classifier returning logits (B, classes), or a ModelBundle (whose
            preprocessing is used when ``preprocess`` is None).
        images: One image or a batch, anything :func:`~opticam_widgets.images.as_pixel_batch`
            accepts (pixel values in [0, 1]).
        saliency: Maps in [0, 1], (H, W), (N, H, W) or (N, 1, H, W) (tensor or ndarray), one
            per image, or N maps for a single image; resized bilinearly to the image size when
            their size differs. An ``OptiCAMResult`` is accepted too.
        targets: ``None`` (top-1 class of each unmasked image), an int for every map, or one
            int per map.
        preprocess: A :class:`~opticam_widgets.images.Preprocess` or anything
            :func:`~opticam_widgets.images.coerce_preprocess` accepts; None means the
            bundle's, or ImageNet 224×224 for a bare module.
        batch_size: Images per forward pass.

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
        ...                             targets=[0, 1], preprocess={"size": None})
        >>> torch.allclose(p, o)
        True
    """
    p, o, _ = _masked(model, images, saliency, targets, preprocess, batch_size)
    return p, o


def _masked(model: Any, images: Any, saliency: Any, targets: Targets, preprocess: Any,
            batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    net, pre, x, s, index, bs = _prepare(model, images, saliency, preprocess, batch_size, True)
    s = resize_maps(s, tuple(x.shape[-2:]))
    with _eval_mode(net):
        p, t = _original(net, pre, x, index, targets, bs)
        o = []
        for start in range(0, index.shape[0], bs):
            rows = index[start:start + bs]
            masked = x[rows] * s[start:start + bs, None]
            o.append(_probs(net, pre, masked, t[start:start + bs], bs)[0])
    return p.float(), torch.cat(o).float(), t


def faithfulness(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    targets: Targets = None,
    preprocess: Any = None,
    *,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Average Drop, Average Increase and Average Gain of saliency maps, per image and averaged.

    Args:
        model: A classifier returning logits, or a ModelBundle.
        images: One image or a batch (pixel values in [0, 1]).
        saliency: Maps in [0, 1] — see :func:`masked_probabilities`.
        targets: ``None`` (top-1 class), an int, or one int per map.
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        batch_size: Images per forward pass.

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
    p_t, o_t, t = _masked(model, images, saliency, targets, preprocess, batch_size)
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


# ---------------------------------------------------------------------------- insertion/deletion
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


def _baseline_image(baseline: Any, x: Tensor, index: Tensor) -> Tensor:
    """Baseline pixel images (N, 3, h, w) for the rows, at the working resolution of ``x``."""
    size = tuple(x.shape[-2:])
    if isinstance(baseline, str):
        if baseline == "black":
            base = torch.zeros_like(x)
        elif baseline == "mean":
            base = x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
        elif baseline == "blur":
            from torchvision.transforms.functional import gaussian_blur

            # RISE's insertion baseline: Gaussian kernel of size 11, sigma 5 (smaller kernel
            # for images under 6 pixels, as reflect padding needs pad < size)
            k = min(11, 2 * min(size) - 1)
            base = gaussian_blur(x, kernel_size=[k, k], sigma=[5.0, 5.0])
        else:
            raise ValueError(
                f"`baseline` {baseline!r} is unknown; use one of {', '.join(BASELINE_IMAGES)} "
                "or a pixel tensor (3, H, W) in [0, 1]"
            )
        return base[index]
    if isinstance(baseline, (Tensor, np.ndarray)):
        base = as_pixel_batch(baseline, name="baseline")
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


def _curve(kind: str, model: Any, images: Any, saliency: Any, targets: Targets,
           preprocess: Any, steps: int, baseline: Any, batch_size: int) -> CurveResult:
    net, pre, x, s, index, bs = _prepare(model, images, saliency, preprocess, batch_size, False)
    steps = check_int("steps", steps, 1)
    work = x if pre.size is None else pre.resize(x)  # pixels ranked at the model's resolution
    size = tuple(work.shape[-2:])
    s = resize_maps(s, size)
    base = _baseline_image(baseline, work, index)
    n, npix = index.shape[0], size[0] * size[1]
    order = torch.argsort(s.flatten(1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(npix).expand(n, -1).contiguous())
    counts = torch.tensor([round(t * npix / steps) for t in range(steps + 1)])

    with _eval_mode(net):
        _, t = _original(net, pre, x, index, targets, bs)
        pairs = [(i, j) for i in range(n) for j in range(steps + 1)]
        out = torch.empty(n, steps + 1)
        for start in range(0, len(pairs), bs):
            chunk = pairs[start:start + bs]
            rows = torch.tensor([i for i, _ in chunk])
            cnt = counts[[j for _, j in chunk]]
            keep = (rank[rows] < cnt[:, None]).view(-1, 1, *size)  # the first cnt pixels
            img, bas = work[index[rows]], base[rows]
            batch = torch.where(keep, img, bas) if kind == "insertion" else \
                torch.where(keep, bas, img)
            prob, _ = _probs(net, pre, batch, t[rows], bs)
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
    targets: Targets = None,
    preprocess: Any = None,
    *,
    steps: int = 50,
    baseline: Any = "blur",
    batch_size: int = 32,
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
        targets: ``None`` (top-1 class of the unmasked image), an int, or one int per map.
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        steps: Number of steps; the curve has ``steps + 1`` points.
        baseline: ``"blur"`` (RISE's insertion default: Gaussian blur, kernel 11, σ 5),
            ``"black"``, ``"mean"`` (per-image mean colour) or a pixel tensor (3, H, W) /
            (B, 3, H, W) in [0, 1].
        batch_size: Images per forward pass.

    Returns:
        A :class:`CurveResult`.

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: bad shapes or values.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> curve = insertion(net, torch.rand(3, 16, 16), torch.rand(16, 16), targets=0,
        ...                   preprocess={"size": None}, steps=4)
        >>> curve.scores.shape, curve.fractions.tolist()
        ((1, 5), [0.0, 0.25, 0.5, 0.75, 1.0])
    """
    return _curve("insertion", model, images, saliency, targets, preprocess, steps, baseline,
                  batch_size)


def deletion(
    model: nn.Module | ModelBundle,
    images: Any,
    saliency: Any,
    targets: Targets = None,
    preprocess: Any = None,
    *,
    steps: int = 50,
    baseline: Any = "black",
    batch_size: int = 32,
) -> CurveResult:
    """Deletion curve (RISE): replace the most salient pixels by a baseline image first.

    Step 0 is the image, step ``k`` has the ``k/steps`` most salient fraction of its pixels
    replaced by the baseline, the last point is the baseline image. A faithful map makes the
    class probability fall fast: lower AUC is better.

    Args:
        model: A classifier returning logits, or a ModelBundle.
        images: One image or a batch (pixel values in [0, 1]).
        saliency: Maps (H, W) / (N, H, W), any real values (only their order matters).
        targets: ``None`` (top-1 class of the unmasked image), an int, or one int per map.
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        steps: Number of steps; the curve has ``steps + 1`` points.
        baseline: ``"black"`` (RISE's deletion default), ``"blur"``, ``"mean"`` or a pixel
            tensor in [0, 1].
        batch_size: Images per forward pass.

    Returns:
        A :class:`CurveResult`.

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: bad shapes or values.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> curve = deletion(net, torch.rand(3, 16, 16), torch.rand(16, 16), targets=0,
        ...                  preprocess={"size": None}, steps=4)
        >>> 0.0 <= curve.mean_auc <= 1.0
        True
    """
    return _curve("deletion", model, images, saliency, targets, preprocess, steps, baseline,
                  batch_size)
