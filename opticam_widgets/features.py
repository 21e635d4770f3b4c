"""Target-layer resolution, one-shot feature capture, and the model-state guard.

The user's model is sacred: every hook registered here lives for exactly one forward pass and is
removed in a ``finally`` block, and :func:`model_guard` restores train/eval mode and
``requires_grad`` flags however the block exits.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Union

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .checks import check_logits

__all__ = ["LayerSpec", "capture", "layer_candidates", "model_guard", "resolve_layer"]

#: A target layer: a module of the model, its dotted name, or ``None`` for auto-detection.
LayerSpec = Union[nn.Module, str, None]

_POOLING = (
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.LPPool2d,
    nn.Flatten,
)


_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _model_lock(model: nn.Module) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@contextlib.contextmanager
def model_guard(model: nn.Module) -> Iterator[nn.Module]:
    """Freeze a model for the duration of a block, then restore it exactly.

    Inside the block every module is in eval mode and every parameter has
    ``requires_grad=False`` (so no weight gradient is computed or written to ``.grad``).
    On exit, success or exception, each module's ``training`` flag and each parameter's
    ``requires_grad`` flag are set back to what they were.

    Guards of one model are serialized by a per-model re-entrant lock: two widgets (or
    threads) explaining the same model take turns, so neither can record the other's frozen
    state as "the original" and leave the model frozen.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
        >>> with model_guard(net):
        ...     net.training
        False
        >>> net.training
        True
    """
    with _model_lock(model):
        modes = [(m, m.training) for m in model.modules()]
        flags = [(p, p.requires_grad) for p in model.parameters()]
        try:
            model.eval()
            for p, _ in flags:
                p.requires_grad_(False)
            yield model
        finally:
            for m, mode in modes:
                m.training = mode
            for p, flag in flags:
                p.requires_grad_(flag)


def _remove(handles: list[RemovableHandle]) -> None:
    while handles:
        handles.pop().remove()


def layer_candidates(model: nn.Module, limit: int = 12) -> list[str]:
    """Names of modules that may produce a spatial feature map, the deepest last.

    Used in error messages: convolutional, normalization and activation modules and the
    containers that hold them.

    Example:
        >>> from torch import nn
        >>> layer_candidates(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
        ['0', '1']
    """
    names = [
        name
        for name, m in model.named_modules()
        if name and not isinstance(m, (*_POOLING, nn.Linear, nn.Dropout))
    ]
    return names[-limit:]


def resolve_layer(model: nn.Module, target_layer: LayerSpec) -> tuple[str, nn.Module] | None:
    """Find the module named or given by ``target_layer``.

    Args:
        model: The model.
        target_layer: A module of ``model``, a dotted name such as ``"layer4"`` or
            ``"features.29"``, or ``None`` (returns ``None``: auto-detect at capture time).

    Returns:
        ``(name, module)``, or ``None`` when ``target_layer`` is None.

    Raises:
        TypeError: ``target_layer`` is neither a module, a string nor None.
        ValueError: the name or module is not part of ``model`` (the message lists candidates).

    Example:
        >>> from torch import nn
        >>> resolve_layer(nn.Sequential(nn.Conv2d(3, 4, 3)), "0")[0]
        '0'
    """
    if target_layer is None:
        return None
    if isinstance(target_layer, str):
        modules = dict(model.named_modules())
        if target_layer in modules and target_layer != "":
            return target_layer, modules[target_layer]
        raise ValueError(
            f"`target_layer` {target_layer!r} is not a module of the model; candidates (deepest "
            f"last): {', '.join(layer_candidates(model))}"
        )
    if isinstance(target_layer, nn.Module):
        for name, m in model.named_modules():
            if m is target_layer and name:
                return name, m
        raise ValueError(
            f"`target_layer` ({type(target_layer).__name__}) is not a submodule of the model; "
            f"pass one of its modules or a dotted name such as "
            f"{', '.join(repr(n) for n in layer_candidates(model, 3))}"
        )
    raise TypeError(
        f"`target_layer` must be an nn.Module, a dotted name (str) or None; got "
        f"{type(target_layer).__name__}"
    )


def capture(
    model: nn.Module, x: Tensor, target_layer: LayerSpec = None
) -> tuple[str, Tensor, Tensor]:
    """Run one forward pass; return the target layer's name, its ReLU'd output and the logits.

    With ``target_layer=None`` the layer is detected in the same pass: the outermost module
    producing the last 4-D spatial map (h·w > 1) before global pooling, e.g. ``layer4`` for a
    torchvision ResNet, the last ReLU of ``features`` for VGG, ``bn2`` for timm EfficientNet.
    All hooks are removed before this function returns or raises.

    Args:
        model: The model (call inside :func:`model_guard`).
        x: Normalized input batch (B, 3, H, W).
        target_layer: A module, a dotted name, or ``None``.

    Returns:
        ``(layer_name, A, logits)`` with ``A = relu(features)`` of shape (B, K, h, w).

    Raises:
        ValueError: the layer gives no 4-D output, the model has no spatial feature map, or the
            model's output is not (B, classes) logits.
    """
    resolved = resolve_layer(model, target_layer)
    handles: list[RemovableHandle] = []
    found: dict[str, Any] = {}
    try:
        if resolved is not None:
            name, module = resolved

            def keep(_m: nn.Module, _i: Any, out: Any) -> None:
                found["name"], found["out"] = name, out

            handles.append(module.register_forward_hook(keep))
        else:
            # Outputs of pooling modules, and of containers returning that same tensor, are
            # not spatial maps. The tensors are kept alive until the pass ends so that their
            # ids cannot be reused by later tensors.
            pooled: dict[int, Tensor] = {}

            def make_hook(name: str, pooling: bool) -> Any:
                def hook(_m: nn.Module, _i: Any, out: Any) -> None:
                    if not isinstance(out, Tensor):
                        return
                    if pooling or id(out) in pooled:
                        pooled[id(out)] = out
                        return
                    if out.ndim == 4 and out.shape[-1] * out.shape[-2] > 1:
                        found["name"], found["out"] = name, out

                return hook

            for name, m in model.named_modules():
                if name:
                    hook = make_hook(name, isinstance(m, _POOLING))
                    handles.append(m.register_forward_hook(hook))
        with torch.no_grad():
            logits = check_logits(model(x), x.shape[0])
    finally:
        _remove(handles)
    if "out" not in found:
        if resolved is not None:
            raise ValueError(
                f"`target_layer` {resolved[0]!r} was not called during the forward pass; choose "
                f"one of: {', '.join(layer_candidates(model))}"
            )
        raise ValueError(
            "`model` has no convolutional feature map (no module outputs a 4-D tensor with "
            "spatial size > 1): Opti-CAM needs a CNN; pass `target_layer` if it has one"
        )
    out = found["out"]
    if not isinstance(out, Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"`target_layer` {found['name']!r} must output a 4-D feature map (B, K, h, w); it "
            f"gives {shape}. Choose one of: {', '.join(layer_candidates(model))}"
        )
    return found["name"], torch.relu(out.detach()).float(), logits.detach().float()
