"""Refuse, before or during the capture pass, models and inputs Opti-CAM cannot explain.

Opti-CAM calls ``model(images)`` with one dense (B, 3, H, W) float batch and differentiates
through the model. A model with ``meta`` or sparse weights, a ``forward`` that needs several
inputs, or a first convolution that takes another number of channels (a greyscale model) would
fail deep inside torch; these checks say what is wrong and how to fix it instead.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["channel_check", "check_capturable"]


def check_capturable(model: nn.Module, x: Tensor) -> None:
    """Refuse, before any forward pass, a model or input that Opti-CAM cannot explain.

    Raises:
        TypeError: ``model.forward`` needs more than one input.
        ValueError: a parameter, buffer or the input is on the ``meta`` device (no data) or
            is not a dense (strided) tensor.

    Example:
        >>> from torch import nn
        >>> check_capturable(nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 8, 8))
    """
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_meta:
            raise ValueError(
                f"`model` has no weights: {name!r} is on the 'meta' device (built with "
                f"`torch.device('meta')` or empty-weight loading); load real weights first, "
                f"e.g. `model.to_empty(device='cpu')` then `model.load_state_dict(...)`")
        if t.layout != torch.strided:
            raise ValueError(f"`model` tensor {name!r} is {t.layout} (sparse); Opti-CAM needs "
                             f"dense weights: convert it with `.to_dense()` before explaining")
    if x.is_meta or x.layout != torch.strided:
        raise ValueError(f"`image` must be a dense tensor with data; got a {x.layout} tensor on "
                         f"{x.device} (use `.to_dense()` / a real device)")
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # builtins, scripted modules: nothing to inspect
        return
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p.name for p in params if p.default is inspect.Parameter.empty and (
        p.kind in positional or p.kind is inspect.Parameter.KEYWORD_ONLY)]
    if len(required) > 1:
        raise TypeError(
            f"`model.forward` needs {len(required)} inputs ({', '.join(required)}); Opti-CAM "
            f"calls `model(images)` with one (B, 3, H, W) batch: wrap the model in an "
            f"nn.Module whose forward takes the images alone and supplies the rest")


def channel_check(x: Tensor) -> Any:
    """A forward pre-hook for every convolution: the first one fed the image must take 3 channels.

    A first convolution fed a permutation of the image's shape (a ``forward`` written for
    channels-last images) is refused too, naming the layout.

    Register the one returned hook on all convolutions of the model for one forward pass; the
    first convolution called on a tensor of the image's spatial size checks its
    ``in_channels`` against the image's channels and raises a ``ValueError`` that says how
    to wrap the model.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> conv = nn.Conv2d(1, 4, 3)
        >>> handle = conv.register_forward_pre_hook(channel_check(torch.zeros(1, 3, 8, 8)))
        >>> try:
        ...     conv(torch.zeros(1, 3, 8, 8))
        ... except ValueError as exc:
        ...     print(str(exc)[:30])
        `model` takes 1-channel images
        >>> handle.remove()
    """
    seen: list[bool] = []

    def pre_hook(m: nn.Module, inputs: Any) -> None:
        t = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
        if seen or t is None or t.ndim != 4:
            return
        wanted = getattr(m, "in_channels", t.shape[1])
        if t.shape != x.shape and sorted(t.shape) == sorted(x.shape) and t.shape[1] != wanted:
            seen.append(True)
            raise ValueError(
                f"`model` permutes its input: its first convolution gets {tuple(t.shape)} from "
                f"the (B, 3, H, W) batch {tuple(x.shape)}, so its forward expects another "
                f"layout (e.g. channels-last images (B, H, W, 3)); Opti-CAM feeds (B, 3, H, W): "
                f"wrap it, e.g. an nn.Module whose forward is "
                f"`model(x.permute(0, 2, 3, 1))`")
        if tuple(t.shape[-2:]) != tuple(x.shape[-2:]):
            return
        seen.append(True)
        if t.shape[1] == x.shape[1] and wanted != x.shape[1]:
            raise ValueError(
                f"`model` takes {wanted}-channel images (its first convolution has "
                f"in_channels={wanted}) but Opti-CAM feeds RGB images (B, 3, H, W); wrap it, "
                f"e.g. an nn.Module whose forward is `model(x.mean(1, keepdim=True))` for a "
                f"greyscale model")

    return pre_hook
