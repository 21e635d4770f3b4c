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
from typing import Union

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..support.checks import check_logits
from ..support.hooks import own_hook
from ..support.outputs import check_output, dense_output, output_width
from .layouts import Reshape, check_reshape, detect_layout, to_spatial
from .picker import POOLING, LayerPicker, default_layer
from .preflight import check_capturable
from .tokenorder import token_order

__all__ = [
    "LayerSpec",
    "capture",
    "layer_candidates",
    "layer_layout",
    "model_guard",
    "resolve_layer",
]

#: A target layer: a module of the model, its dotted name, or ``None`` for auto-detection.
LayerSpec = Union[nn.Module, str, None]



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
        if name and not isinstance(m, (*POOLING, nn.Linear, nn.Dropout))
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


def _too_small(model: nn.Module, x: Tensor, layer: str, hw: tuple[int, int],
               reshape: Reshape) -> ValueError:
    """The error for a 1×1 map, naming an earlier layer that is spatial on this input."""
    size = f"{x.shape[-2]}×{x.shape[-1]}"
    try:
        other, feats, _ = capture(model, x, None, None if callable(reshape) else reshape)
        hint = (f"use an earlier layer such as `target_layer={other!r}` "
                f"({feats.shape[-2]}×{feats.shape[-1]} here) or larger images")
    except ValueError:
        hint = "no layer of the model is larger than 1×1 here: use larger images"
    return ValueError(
        f"`target_layer` {layer!r} gives a {hw[0]}×{hw[1]} feature map on a {size} input: its "
        f"saliency map would be constant (all ones); {hint}")


def _maps(model: nn.Module, x: Tensor, picker: LayerPicker,
          resolved: tuple[str, nn.Module] | None, reshape: Reshape) -> Tensor:
    """The picked layer's copy as (B, C, h, w), or the error that says why there is none."""
    size = f"{x.shape[-2]}×{x.shape[-1]}"
    if picker.copy is None:
        if resolved is not None and picker.name is None:
            raise ValueError(
                f"`target_layer` {resolved[0]!r} was not called during the forward pass; choose "
                f"one of: {', '.join(layer_candidates(model))}")
        if resolved is not None:
            raise ValueError(
                f"`target_layer` {resolved[0]!r} outputs {type(picker.out).__name__}, not a "
                f"tensor; choose one of: {', '.join(layer_candidates(model))}")
        if picker.tiny is not None:
            raise ValueError(
                f"`model` has no feature map larger than 1×1 on a {size} input (the last one, "
                f"{picker.tiny[0]!r}, is 1×1): use larger images (see `preprocess`)")
        raise ValueError(
            f"`model` ({type(model).__name__}) has no spatial feature map on a {size} input: no "
            f"module outputs (B, C, h, w), (B, h, w, C) or patch tokens (B, N, C); pass "
            f"`target_layer` (and `reshape=` for an unusual layout)")
    name, out = str(picker.name), picker.copy
    if out.shape[0] != x.shape[0]:
        raise ValueError(
            f"`target_layer` {name!r} outputs {out.shape[0]} rows for a batch of {x.shape[0]} "
            f"(attention windows?); choose the output of a whole block or stage")
    reorder = None if callable(reshape) else token_order(model, name)
    if reorder is not None and out.ndim == 3:  # Hiera: the model's own reroll, (B, h, w, C)
        out, reshape = reorder(out), "nhwc"
    maps = to_spatial(out, reshape, picker.size, picker.hints, name, picker.module)
    if maps.shape[-2] * maps.shape[-1] <= 1:
        raise _too_small(model, x, name, (int(maps.shape[-2]), int(maps.shape[-1])), reshape)
    return maps


def layer_layout(model: nn.Module, x: Tensor, target_layer: LayerSpec) -> str | None:
    """The layout of a layer's own output on ``x``: ``"nchw"``, ``"nhwc"``, ``"tokens"`` or None.

    For tools that read a layer's output as (B, C, h, w) themselves (the torchcam baselines).

    Example:
        >>> from torchvision.models import resnet18
        >>> layer_layout(resnet18().eval(), torch.zeros(1, 3, 64, 64), "layer4")
        'nchw'
    """
    resolved = resolve_layer(model, target_layer)
    if resolved is None:
        raise ValueError("`target_layer` must name a layer here, not None")
    picker = LayerPicker(model, x, None)
    handles = [resolved[1].register_forward_hook(own_hook(picker.keep(*resolved)))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        _remove(handles)
    out = picker.copy
    return None if out is None else detect_layout(out, picker.size, picker.hints, picker.module)


def capture(model: nn.Module, x: Tensor, target_layer: LayerSpec = None,
            reshape: Reshape = None) -> tuple[str, Tensor, Tensor]:
    """Run one forward pass; return the target layer's name, its ReLU'd maps and the logits.

    The layer's own output is kept (a copy taken in the hook, so later in-place operations of
    the model cannot change it) and converted to (B, C, h, w): patch tokens (B, N, C) lose
    their class, distillation and register tokens and become an h × w grid; channels-last
    (B, h, w, C) outputs are permuted (:mod:`~opticam_widgets.model.layouts`).

    With ``target_layer=None`` the layer is detected in the same pass: the outermost module
    producing the last spatial map (more than one cell) before global pooling, never a tensor
    inside attention or a classification head, and for transformers the last block's output
    rather than the final norm (:mod:`~opticam_widgets.model.picker`): ``layer4`` for a torchvision
    ResNet, ``bn2`` for timm EfficientNet, ``blocks`` for a timm ViT or DeiT, ``layers`` for
    timm Swin, ``stages`` for timm ConvNeXt. Hiera tokens in mask-unit order are put back in
    row-major order with the model's own reroll (:mod:`~opticam_widgets.model.tokenorder`). All
    hooks are removed before this function returns or raises.

    The model's output may be logits (B, classes), a Hugging Face ``ModelOutput`` with
    ``.logits``, a dict with ``"logits"``, or a tuple whose first item is the logits
    (:func:`~opticam_widgets.support.checks.check_logits`); or a segmentation or detection
    output (:func:`~opticam_widgets.support.outputs.check_output`). For a torchvision
    detector, ``target_layer=None`` is its backbone's last stage
    (:func:`~opticam_widgets.model.picker.default_layer`).

    Args:
        model: The model (call inside :func:`model_guard`).
        x: Normalized input batch (B, 3, H, W).
        target_layer: A module, a dotted name, or ``None``.
        reshape: ``None`` (detect the layout), ``"nchw"``, ``"nhwc"``, ``"tokens"``, or a
            callable ``layer output -> (B, C, h, w)`` (needs ``target_layer``).

    Returns:
        ``(layer_name, A, output)`` with ``A = relu(maps)`` of shape (B, K, h, w) and the
        model's output, detached, in float32 (the logits (B, classes) of a classifier).

    Raises:
        TypeError: ``model.forward`` needs several inputs; a bad ``reshape``.
        ValueError: no spatial feature map (the message says what to pass), a 1×1 map (it
            names an earlier layer), a greyscale model, meta or sparse weights, or outputs
            that are not logits.

    Example:
        >>> from torchvision.models import resnet18
        >>> name, A, logits = capture(resnet18().eval(), torch.zeros(1, 3, 64, 64))
        >>> name, tuple(A.shape), tuple(logits.shape)
        ('layer4', (1, 512, 2, 2), (1, 1000))
    """
    reshape = check_reshape(reshape)
    resolved = resolve_layer(model, target_layer if target_layer is not None
                             else default_layer(model))
    if callable(reshape) and resolved is None:
        raise ValueError("a callable `reshape` needs a `target_layer` (the layer whose output it "
                         "reshapes); or pass a layout name: 'nchw', 'nhwc' or 'tokens'")
    check_capturable(model, x)
    picker = LayerPicker(model, x, reshape)
    handles: list[RemovableHandle] = []
    try:
        picker.register(model, x, resolved, handles)
        with torch.no_grad():
            output = check_output(model(x), x.shape[0])
    finally:
        _remove(handles)
    dense = dense_output(output)
    picker.chosen(output_width(output), dense if dense is not None and dense.ndim == 4 else None)
    if picker.copy is None and not (isinstance(output, Tensor) and output.ndim == 2):
        check_logits(output, x.shape[0])  # no feature map and no logits: the logits' message
    maps = _maps(model, x, picker, resolved, reshape)
    return str(picker.name), torch.relu(maps).float().contiguous(), output
