"""What a model says about itself: the input size it declares, and whether it can be explained.

Opti-CAM hooks the model's layers and differentiates through it, so it needs an eager
``nn.Module`` with float weights: TorchScript (``torch.jit.script`` / ``torch.jit.trace``),
``torch.export(...).module()`` graphs and quantized layers are refused up front with the fix
(explain the eager float model they were made from).

The default preprocessing size is the model's own when it declares one: a timm patch
embedding that requires a size (``patch_embed.img_size`` with ``strict_img_size``), timm's
``pretrained_cfg["input_size"]``, a Hugging Face ``config.image_size``, or a torchvision
``image_size`` attribute (its ViTs): DINOv2 at 518, ViTs and Swins at 384 run as made.

Example:
    >>> from torch import nn
    >>> declared_input_size(nn.Conv2d(3, 4, 3)) is None
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["check_eager", "declared_input_size", "required_input_size"]


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value, value
    if isinstance(value, (tuple, list)) and len(value) >= 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value[-2:]):
        return int(value[-2]), int(value[-1])
    return None


def required_input_size(model: nn.Module) -> tuple[int, int] | None:
    """The size a timm patch embedding insists on (``strict_img_size``), or ``None``.

    Example:
        >>> from torch import nn
        >>> required_input_size(nn.Identity()) is None
        True
    """
    for m in model.modules():
        embed = getattr(m, "patch_embed", None)
        if embed is not None and getattr(embed, "strict_img_size", False) and not getattr(
                embed, "dynamic_img_pad", False) and not getattr(m, "dynamic_img_size", False):
            size = _pair(getattr(embed, "img_size", None))
            if size is not None:
                return size
    return None


def declared_input_size(model: nn.Module) -> tuple[int, int] | None:
    """The (H, W) input size the model declares (see the module's docstring), or ``None``.

    Example:
        >>> import timm  # doctest: +SKIP
        >>> declared_input_size(timm.create_model("vit_small_patch14_dinov2"))  # doctest: +SKIP
        (518, 518)
    """
    required = required_input_size(model)
    if required is not None:
        return required
    for m in model.modules():
        cfg = getattr(m, "pretrained_cfg", None)
        size = _pair(cfg.get("input_size")) if isinstance(cfg, dict) else None
        config = getattr(m, "config", None)
        size = size or _pair(getattr(config, "image_size", None))
        size = size or _pair(getattr(m, "image_size", None))
        if size is not None:
            return size
    return None


def _kind(model: nn.Module) -> str | None:
    """What makes ``model`` impossible to hook or differentiate, in words (``None``: nothing)."""
    names = {c.__name__ for c in type(model).__mro__}
    if "TracedModule" in names:
        return "a `torch.jit.trace` module (TorchScript)"
    if isinstance(model, torch.jit.ScriptModule):
        return "a `torch.jit.script` module (TorchScript)"
    if "_StatefulGraphModule" in names:
        return "a `torch.export(...).module()` graph"
    for name, m in model.named_modules():
        where = type(m).__module__
        if where.startswith(("torch.ao.nn.quantized", "torch.nn.quantized")) and not isinstance(
                m, torch.ao.nn.quantized.FloatFunctional):  # a float add of quantizable nets
            return (f"quantized ({name or 'the model'} is a {where}.{type(m).__name__}, through "
                    f"which no gradient flows)")
    return None


def check_eager(model: nn.Module) -> None:
    """Refuse a model Opti-CAM cannot hook or differentiate, naming the fix.

    Raises:
        TypeError: TorchScript (scripted or traced), an exported graph, or quantized layers.

    Example:
        >>> from torch import nn
        >>> check_eager(nn.Conv2d(3, 4, 3))
    """
    kind = _kind(model)
    if kind is not None:
        raise TypeError(
            f"`model` is {kind}: Opti-CAM hooks the model's layers and differentiates its "
            f"score with respect to the mask, which this model does not allow; explain the "
            f"eager float `nn.Module` it was made from (before scripting, tracing, export or "
            f"quantization)")
