"""Argument checks and small helpers shared by every entry point (explainer, metrics, baselines).

Each check returns the cleaned value or raises a ``TypeError`` (wrong kind of object) or a
``ValueError`` (bad value) whose message names the argument in backticks and says what to pass,
so the same mistake gets the same message wherever it is made.

Example:
    >>> check_int("max_iter", 5, 1)
    5
    >>> check_choice("convention", "destructive", ("constructive", "destructive"))
    'destructive'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "check_choice",
    "check_device",
    "check_int",
    "check_logits",
    "check_positive",
    "check_score",
    "check_tol",
    "warn_if_flat",
    "device_for_model",
    "logits_of",
    "map_tensors",
    "model_device",
    "model_dtype",
    "plain_tensor",
]


def check_device(device: Any) -> torch.device:
    """The torch device named by ``device``, checked to be usable on this machine.

    Raises:
        ValueError: not a device name, or a device this machine or PyTorch build lacks.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"`device` {device!r} is not a torch device; use e.g. 'cpu', 'cuda', "
                         "'cuda:1' or 'mps'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` {str(device)!r}: no CUDA GPU is available here; use 'cpu'")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"`device` {str(device)!r}: this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s); use 'cuda:0'")
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError):  # a backend this PyTorch build or machine lacks
        raise ValueError(f"`device` {str(device)!r} is not available here; use 'cpu'") from None
    return dev


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int >= ``minimum``, or raise naming the argument.

    Example:
        >>> check_int("max_iter", 5, 1)
        5
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return int(value)


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a positive finite float, or raise naming the argument.

    Example:
        >>> check_positive("lr", 0.2)
        0.2
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive finite number, got {value}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, or raise naming the argument and them.

    Example:
        >>> check_choice("score", "logit", ("logit", "probability"))
        'logit'
    """
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_tol(tol: Any, patience: Any) -> tuple[float | None, int]:
    """Validate the early-stopping pair ``(tol, patience)``; ``tol=None`` disables it.

    Example:
        >>> check_tol(1e-3, 10)
        (0.001, 10)
    """
    patience = check_int("patience", patience, 1)
    if tol is None:
        return None, patience
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"`tol` must be None or a number >= 0, got {tol!r}")
    return float(tol), patience


def logits_of(out: Any) -> Any:
    """The logits in a model's output, before :func:`check_logits` checks them.

    Accepted, in this order: a tensor (the logits themselves); an object with a tensor
    ``.logits`` (a Hugging Face ``ModelOutput``); a dict with a tensor ``"logits"``; a tuple or
    list whose first item is a tensor (as ``return_dict=False`` models return). Anything else
    is returned unchanged (and refused by :func:`check_logits`).

    Example:
        >>> logits_of({"logits": torch.zeros(1, 3), "aux": None}).shape
        torch.Size([1, 3])
    """
    if isinstance(out, Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, dict) and isinstance(out.get("logits"), Tensor):
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    return out


def map_tensors(output: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``output`` with ``fn`` applied to every tensor in it (dicts and lists walked).

    Example:
        >>> map_tensors({"a": torch.ones(1)}, lambda t: t * 2)
        {'a': tensor([2.])}
    """
    if isinstance(output, Tensor):
        return fn(output)
    if isinstance(output, dict):
        return {k: map_tensors(v, fn) for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return [map_tensors(v, fn) for v in output]
    return output


def check_logits(out: Any, batch: int) -> Tensor:
    """Return the finite floating-point class logits (batch, classes) in a model's output.

    The output may hold them in any form :func:`logits_of` accepts.

    Raises:
        ValueError: another shape or type, integer values, NaN or infinite values.

    Example:
        >>> check_logits(torch.zeros(2, 10), 2).shape
        torch.Size([2, 10])
    """
    out = logits_of(out)
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != batch:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"`model` must return class logits of shape (batch, classes) (a tensor, a "
            f"ModelOutput with `.logits`, a dict with 'logits' or a tuple starting with them); "
            f"for a batch of {batch} it returned {shape}. Wrap the model so that it returns "
            f"one logit tensor."
        )
    if not out.is_floating_point():
        raise ValueError(f"`model` must return floating-point logits; it returned {out.dtype}. "
                         "Return the raw scores before any argmax or rounding.")
    if not bool(torch.isfinite(out.detach()).all()):
        raise ValueError("`model` returned NaN or infinite logits for this input; check the "
                         "model's weights and its preprocessing (Opti-CAM needs finite scores)")
    return out


def model_dtype(model: nn.Module) -> torch.dtype:
    """Floating dtype of the model's first floating parameter (or buffer); float32 without one.

    Example:
        >>> model_dtype(nn.Linear(2, 2).double())
        torch.float64
    """
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def plain_tensor(x: Tensor) -> Tensor:
    """``x``, or a normal copy of it when it was made under ``torch.inference_mode()``.

    Inference tensors cannot take part in autograd, which Opti-CAM and the gradient CAMs need.
    Call outside inference mode (``with torch.inference_mode(False):``).
    """
    return x.clone() if x.is_inference() else x


def check_score(score: Any, logits: Any, rows: int, *, grad: bool, where: str) -> Tensor:
    """``score`` if it is a finite (rows,) float tensor, differentiable when ``grad``; else raise.

    ``logits``: the model's output it was computed from (logits, or any output form: its
    floating tensors are looked at); ``where`` says for which input, e.g.
    ``"a masked image at step 3"``.

    Example:
        >>> check_score(torch.ones(2), torch.zeros(2, 3), 2, grad=False, where="the image").shape
        torch.Size([2])
    """
    if not isinstance(score, Tensor):
        raise TypeError(f"`score` must return a tensor of shape (N,), got {type(score).__name__}")
    if tuple(score.shape) != (rows,) or not score.is_floating_point():
        raise ValueError(f"`score` must return one float per row, shape ({rows},); got shape "
                         f"{tuple(score.shape)} of {score.dtype}")
    outputs: list[Tensor] = []
    map_tensors(logits, lambda t: outputs.append(t) if t.is_floating_point() else None)
    if grad and score.grad_fn is None and all(t.grad_fn is None for t in outputs):
        raise ValueError(
            "`model` returned logits with no gradient (no grad_fn) for a masked image: its "
            "forward runs under `torch.no_grad()` / `torch.inference_mode()` (e.g. a "
            "`@torch.no_grad()` decorator) or detaches its output; Opti-CAM differentiates the "
            "score through the model: wrap the undecorated network (or remove the decorator)")
    if grad and score.grad_fn is None:
        raise ValueError("`score` returned a value with no gradient (no grad_fn): Opti-CAM "
                         "differentiates it; build it from the logits with differentiable torch "
                         "ops (no argmax, .item(), .detach() or numpy)")
    if not bool(torch.isfinite(score.detach()).all()):
        who = ("`model` returned NaN or infinite logits" if not all(
            bool(torch.isfinite(t.detach()).all()) for t in outputs)
            else "`score` returned NaN or infinite values")
        raise ValueError(f"{who} for {where}; Opti-CAM needs finite scores (check the model's "
                         "dtype and weights, or the score function)")
    return score


def device_for_model(model: nn.Module, device: Any) -> torch.device:
    """The device to run ``model`` on: its own (``device=None``), or ``device`` if it matches.

    Raises:
        ValueError: ``device`` is not usable here, or the model's parameters are elsewhere.

    Example:
        >>> device_for_model(nn.Linear(2, 2), None)
        device(type='cpu')
    """
    model_dev = model_device(model)
    if device is None:
        return model_dev
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = check_device(device)  # raises, naming `device`
    if next(iter(model.parameters()), None) is not None and dev.type != model_dev.type:
        raise ValueError(
            f"`device` is {dev} but the model's parameters are on {model_dev}; move the "
            f"model first (`model.to({str(dev)!r})`) or leave `device=None`"
        )
    return check_device(dev)


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (or buffer); the CPU for a model without tensors.

    Example:
        >>> model_device(nn.Linear(2, 2))
        device(type='cpu')
    """
    first = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def warn_if_flat(history: Sequence[Tensor]) -> None:
    """Warn when no row's score moved at all over the steps of a run (a flat optimization).

    ``history`` holds the scores (rows,) of each scored step (``NaN`` once a row stopped).
    Scores equal bit for bit from step to step mean the output does not depend on the mask
    (no gradient reaches the channel weights: a model that cuts the gradient, a constant
    output), so the map is Opti-CAM's iteration 0, not an optimized one.

    Example:
        >>> warn_if_flat([torch.tensor([1.0]), torch.tensor([1.5])])  # moved: no warning
    """
    if len(history) < 2:
        return
    scores = torch.stack([h.float() for h in history])
    if bool(((scores == scores[0]) | scores.isnan()).all()):
        warnings.warn(
            f"the model's output does not depend on the mask: the score stayed "
            f"{float(scores[0].nan_to_num().max()):.6g} for {len(history) - 1} steps (no gradient "
            f"reaches the channel weights), so the map is Opti-CAM's starting map (the channel "
            f"mean), not an optimized one; check that the model is differentiable (no "
            f"quantized layers, no detach or no_grad in its forward) and that its score varies",
            RuntimeWarning, stacklevel=3)
