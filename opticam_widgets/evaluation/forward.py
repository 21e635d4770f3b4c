"""Running a model on (masked) pixel images for the faithfulness metrics.

Shared by :mod:`~opticam_widgets.evaluation.metrics` (Average Drop / Increase / Gain) and
:mod:`~opticam_widgets.evaluation.curves` (insertion / deletion): checking the maps, pairing them
with their images, and the target's probability in batches (a class's softmax, a label's
sigmoid, a region's mean probability, a box's detection score: the rows'
``probability``, :mod:`~opticam_widgets.engine.targets`), with the model frozen in eval mode.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    >>> with eval_mode(net):
    ...     p, c = class_probabilities(net, Preprocess(size=None), torch.rand(2, 3, 2, 2), None, 8)
    >>> p.shape, c.shape
    (torch.Size([2]), torch.Size([2]))
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..engine.targets import Rows, TopK, as_target, ranking_output, resolve, row_classes
from ..inputs.images import as_image_batch
from ..inputs.preprocess import Preprocess
from ..model.bundle import unpack_model
from ..model.features import model_guard
from ..support.checks import check_int, model_device, model_dtype
from ..support.outputs import check_output, output_rows

__all__ = ["RANGE_TOL", "class_probabilities", "eval_mode", "original_probabilities", "pick_target",
           "prepare"]

#: Float round-off allowed outside [0, 1] before a probability or a map is refused.
RANGE_TOL = 1e-4


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
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
        if lo < -RANGE_TOL or hi > 1.0 + RANGE_TOL:
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


def _output(model: nn.Module, x: Tensor) -> Any:
    """The float32 output (logits, maps, detections) of a batch fed in the model's dtype."""
    return check_output(model(x.to(model_dtype(model))), x.shape[0])


def _cat(parts: list[Any]) -> Any:
    """Outputs of consecutive chunks as one: tensors and dicts of tensors joined, lists added."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts]) if isinstance(v, Tensor) else v
                for k, v in first.items()}
    return [d for part in parts for d in part]


def class_probabilities(model: nn.Module, pre: Preprocess, x: Tensor, rows: Rows | None,
                        batch_size: int) -> tuple[Tensor, Tensor]:
    """The probability of each row (``rows``, or the top-1 class) for pixel batch ``x``.

    ``rows`` are aligned with ``x`` (one per image); ``None`` takes each image's top-1 class.
    Returns ``(prob (N,), class (N,))`` on the CPU (class ``-1`` for rows without one). Call
    inside :func:`eval_mode`.
    """
    device = model_device(model)
    probs, classes = [], []
    for start in range(0, x.shape[0], batch_size):
        chunk = pre.normalize(pre.resize(x[start:start + batch_size].to(device)))
        output = _output(model, chunk)
        part = (TopK(1).resolve(torch.softmax(output, dim=1)) if rows is None
                else rows.subset(torch.arange(start, start + chunk.shape[0])))
        probs.append(part.probability(output).cpu())
        classes.append(torch.tensor(row_classes(part), dtype=torch.long))
    return torch.cat(probs), torch.cat(classes)


def pick_target(target: Any, old: dict[str, Any], where: str) -> tuple[Any, str]:
    """``target``, or ``targets=`` (its old name, deprecated), and the name for messages.

    ``old``: the other keyword arguments of ``where`` (only ``targets`` is known).

    Raises:
        TypeError: another keyword, or both ``target`` and ``targets``.
    """
    unknown = sorted(set(old) - {"targets"})
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    if old.get("targets") is None:
        return target, "target"
    if target is not None:
        raise TypeError(f"{where}(): give `target` only (`targets` is its old name)")
    warnings.warn(f"{where}(targets=...) is now target=... (the grammar of OptiCAM.explain)",
                  DeprecationWarning, stacklevel=3)
    return old["targets"], "targets"


def original_probabilities(model: nn.Module, pre: Preprocess, images: Tensor, index: Tensor,
                           target: Any, batch_size: int, names: Sequence[str] | None = None,
                           name: str = "target") -> tuple[Tensor, Rows]:
    """Probability of the unmasked images (one per map) and the map's resolved rows.

    ``target`` (see :mod:`~opticam_widgets.engine.targets`) is resolved on the images'
    output (:func:`~opticam_widgets.engine.targets.ranking_output`: the probabilities of a
    class target), one row per map; ``names``: the model's labels.
    """
    device = model_device(model)
    chunks, size = [], None
    for start in range(0, images.shape[0], batch_size):
        x = pre.normalize(pre.resize(images[start:start + batch_size].to(device)))
        size = (int(x.shape[-2]), int(x.shape[-1]))
        chunks.append(_output(model, x))
    output = output_rows(_cat(chunks), index)
    wanted = as_target(target, name=name)
    rows = resolve(wanted, ranking_output(wanted, output), labels=names, name=name,
                   what="saliency maps", several_for_one=False, size=size)
    if rows.index.shape[0] != index.shape[0]:
        raise ValueError(f"`{name}` gives {rows.index.shape[0]} classes for "
                         f"{index.shape[0]} saliency maps; give one class per saliency map")
    return rows.probability(output_rows(output, rows.index)).cpu(), rows


def prepare(model: Any, images: Any, saliency: Any, preprocess: Any, batch_size: int,
            check_range: bool) -> tuple[nn.Module, Preprocess, Tensor, Tensor, Tensor, int]:
    """Check a metric's arguments: ``(model, preprocess, images, maps, image of each map, batch)``.

    The maps are a float32 CPU tensor (N, H, W) (clamped to [0, 1] with ``check_range``, which
    refuses values outside it).
    """
    net, pre = unpack_model(model, preprocess)
    bs = check_int("batch_size", batch_size, 1)
    x = as_image_batch(images, name="images")
    s = _as_saliency(saliency, check_range=check_range)
    index = _rows(x.shape[0], s.shape[0])
    return net, pre, x, s, index, bs
