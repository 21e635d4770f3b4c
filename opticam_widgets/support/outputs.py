"""A model's output in every form the targets read: logits, dense maps, detections.

Opti-CAM keeps a scalar of the model's output; the output itself may be

* a tensor: class logits (B, classes), or dense per-pixel logits (B, classes, h, w) of a
  segmentation model (segmentation-models-pytorch, Hugging Face SegFormer's ``.logits``);
* a dict of tensors (torchvision segmentation models: ``{"out": ..., "aux": ...}``);
* a list of per-image dicts (torchvision detectors in eval mode: ``boxes``, ``labels``,
  ``scores``).

A Hugging Face ``ModelOutput`` with ``.logits``, a dict with ``"logits"`` and a tuple starting
with a tensor are read as that tensor (:func:`~opticam_widgets.support.checks.logits_of`).
:func:`check_output` accepts these forms where :func:`~opticam_widgets.support.checks.
check_logits` accepts logits only, :func:`output_rows` selects the output of some inputs
(what a target's rows score), :func:`float_output` casts and detaches.

Example:
    >>> import torch
    >>> out = {"out": torch.zeros(2, 3, 4, 4)}
    >>> output_rows(out, torch.tensor([1, 1, 0]))["out"].shape
    torch.Size([3, 3, 4, 4])
    >>> dense_output([{"boxes": torch.zeros(0, 4)}]) is None
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .checks import check_logits, logits_of, map_tensors

__all__ = ["check_output", "dense_output", "float_output", "output_rows", "output_tensors",
           "output_width"]


def float_output(output: Any, detach: bool = True) -> Any:
    """Floating tensors as float32 (detached with ``detach``); integer ones as they are.

    Example:
        >>> float_output([{"scores": torch.ones(1, dtype=torch.float64)}])[0]["scores"].dtype
        torch.float32
    """
    def cast(t: Tensor) -> Tensor:
        t = t.detach() if detach else t
        return t.float() if t.is_floating_point() else t

    return map_tensors(output, cast)


def output_tensors(output: Any) -> list[Tensor]:
    """The floating-point tensors of an output (for finiteness and gradient checks).

    Example:
        >>> len(output_tensors([{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1).long()}]))
        1
    """
    found: list[Tensor] = []
    map_tensors(output, lambda t: found.append(t) if t.is_floating_point() else None)
    return found


def dense_output(output: Any) -> Tensor | None:
    """The tensor of a tensor output, or a dict's ``"out"`` / ``"logits"``; else ``None``.

    Example:
        >>> dense_output({"out": torch.zeros(1, 2, 3, 3)}).shape
        torch.Size([1, 2, 3, 3])
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict):
        for key in ("out", "logits"):
            if isinstance(output.get(key), Tensor):
                return output[key]
    return None


def _is_detections(output: Any) -> bool:
    return isinstance(output, (list, tuple)) and all(
        isinstance(d, dict) and isinstance(d.get("boxes"), Tensor) for d in output)


def output_rows(output: Any, index: Tensor) -> Any:
    """The output of inputs ``index`` (a CPU long tensor; repeats allowed), in the same form.

    Example:
        >>> output_rows(torch.arange(6).view(3, 2), torch.tensor([2, 0])).tolist()
        [[4, 5], [0, 1]]
    """
    if isinstance(output, Tensor):
        return output[index.to(output.device)]
    if isinstance(output, dict):
        return {k: output_rows(v, index) if isinstance(v, Tensor) and v.ndim else v
                for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return [output[i] for i in index.tolist()]
    raise TypeError(f"a model output of type {type(output).__name__} has no rows; return a "
                    f"tensor, a dict of tensors or a list of per-image dicts")


def output_width(output: Any) -> int | None:
    """The number of classes of a logit or dense output (dim 1), ``None`` for detections.

    Example:
        >>> output_width(torch.zeros(2, 5)), output_width([{"boxes": torch.zeros(0, 4)}])
        (5, None)
    """
    dense = dense_output(output)
    return None if dense is None or dense.ndim < 2 else int(dense.shape[1])


def check_output(out: Any, batch: int) -> Any:
    """A model's output, checked, float32 and detached: logits, a dense map or detections.

    (batch, classes) logits are checked as :func:`check_logits` checks them; a segmentation
    output (B, classes, h, w), a raw detector tensor (B, N, K) or per-image detection dicts
    (see the module) for finite values and their batch.

    Raises:
        ValueError: any other form (the message of :func:`check_logits`), NaN or infinite
            values, integer dense outputs, another batch.

    Example:
        >>> check_output({"out": torch.zeros(2, 3, 4, 4)}, 2)["out"].dtype
        torch.float32
    """
    out = logits_of(out)
    dense = dense_output(out)
    if isinstance(out, Tensor) and out.ndim == 2 or dense is None and not _is_detections(out):
        return check_logits(out, batch).detach().float()
    if dense is not None and (dense.ndim not in (3, 4) or dense.shape[0] != batch
                              or not dense.is_floating_point()):
        return check_logits(dense, batch)  # raises, with the forms it accepts
    if dense is None and len(out) != batch:
        raise ValueError(f"`model` returned {len(out)} detection dicts for a batch of {batch}; "
                         f"it must return one per image")
    if not all(bool(torch.isfinite(t).all()) for t in output_tensors(out)):
        raise ValueError("`model` returned NaN or infinite values for this input; check the "
                         "model's weights and its preprocessing (Opti-CAM needs finite scores)")
    return float_output(out)
