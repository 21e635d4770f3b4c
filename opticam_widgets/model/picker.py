"""Which layer output is the feature map: forward hooks that find (or keep) it in one pass.

A layer's output is a candidate when it is a spatial map (:func:`~opticam_widgets.model.layouts.
detect_layout`) with more than one cell for the image's batch. Never candidates: pooling outputs
(1-D, 2-D and 3-D pools, ``Flatten``; a Hugging Face ``pooler``'s (B, C, 1) is channel
statistics, not tokens), tensors inside attention, normalization layers on token or
channels-last maps (a ViT's final norm), and classification heads: modules named like one
(``head``, ``classifier``, ``aux_head``, ``fc``, ``pooler``...) or a per-location classifier (a
``Linear`` or 1×1 convolution, or what passes its output on unchanged) whose width is the
number of logits (timm VOLO's ``aux_head``, SqueezeNet's class-score maps). A module returning a
tuple contributes the item that has the image's batch (TNT blocks return the B·N pixel tokens
first).

Example:
    >>> from torch import nn
    >>> is_head_name("model.classifier.1"), is_head_name("blocks.3")
    (True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..support.hooks import own_hook
from .layouts import Reshape, detect_layout, layout_hints, spatial_size
from .preflight import channel_check

__all__ = ["HEAD_NAMES", "POOLING", "Candidate", "LayerPicker", "batch_tensor", "default_layer",
           "is_head_name"]

#: Modules whose output is pooled: never a feature map, and what they return is not one either.
POOLING = (
    nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d, nn.AvgPool1d, nn.MaxPool1d, nn.LPPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.LPPool2d,
    nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d, nn.AvgPool3d, nn.MaxPool3d,
    nn.Flatten,
)

#: Name parts of classification heads (their outputs are class scores, not features).
HEAD_NAMES = frozenset({
    "head", "heads", "head_dist", "aux_head", "classifier", "classifiers", "fc", "logits",
    "aux_logits", "auxlogits", "aux1", "aux2", "pooler", "last_linear", "aux_classifier",
})


def is_head_name(name: str) -> bool:
    """Whether a dotted module name lies inside a classification head (by its name parts).

    Example:
        >>> is_head_name("aux_head"), is_head_name("conv_head")
        (True, False)
    """
    return any(part.lower() in HEAD_NAMES for part in name.split("."))


def batch_tensor(out: Any, batch: int | None = None) -> Tensor | None:
    """A module's output tensor: itself, or the first tuple/list item with ``batch`` rows.

    Any tensor item when ``batch`` is None, or when none has ``batch`` rows.

    Example:
        >>> import torch
        >>> batch_tensor((torch.zeros(8, 4), torch.zeros(2, 4)), batch=2).shape
        torch.Size([2, 4])
    """
    items = out if isinstance(out, (tuple, list)) else (out,)
    tensors = [t for t in items if isinstance(t, Tensor)]
    for t in tensors:
        if batch is None or (t.ndim > 0 and t.shape[0] == batch):
            return t
    return tensors[0] if tensors else None


def default_layer(model: nn.Module) -> str | None:
    """The target layer of a torchvision detector: its backbone's last stage; else ``None``.

    A detector (a model with a ``transform`` and a ``backbone``: Faster R-CNN, Mask R-CNN,
    RetinaNet, FCOS, SSD, SSDlite) runs its heads on every level of a feature pyramid, so the
    last spatial map of its forward is a head's map on the coarsest level, not a feature of
    the image. The default is the last stage of the backbone's body (``backbone.body.layer4``
    for a ResNet FPN, the last block of a MobileNet) or, for SSD, of its ``features``. Name
    another layer (an FPN level: ``"backbone.fpn.layer_blocks.1"``) with ``target_layer=``.
    Other models (segmentation models included) are auto-detected as classifiers are.

    Example:
        >>> from torch import nn
        >>> default_layer(nn.Sequential(nn.Conv2d(3, 4, 3))) is None
        True
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module) or not isinstance(getattr(model, "transform", None),
                                                             nn.Module):
        return None
    for part in ("body", "features"):
        body = getattr(backbone, part, None)
        if isinstance(body, nn.Module):
            named = [n for n, m in body.named_children() if next(m.parameters(), None) is not None]
            if named:
                return f"backbone.{part}.{named[-1]}"
    return None


def _is_attention(m: nn.Module) -> bool:
    name = type(m).__name__.lower()
    return "attention" in name or name.endswith("attn")


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(m).__name__.lower()


def _per_location_classifier(m: nn.Module) -> int | None:
    """The output width of a ``Linear`` or 1×1 convolution (a possible per-location classifier)."""
    if isinstance(m, nn.Linear):
        return int(m.out_features)
    if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1):
        return int(m.out_channels)
    return None


@dataclass
class Candidate:
    """A spatial layer output seen during the pass: its layer, tensor, copy and layout.

    ``classifier_width``: the width of the Linear / 1×1 convolution that made the tensor (or
    ``None``): the candidate is a class-score map when it equals the number of logits.
    """

    name: str
    module: nn.Module
    out: Tensor
    copy: Tensor
    classifier_width: int | None = None


class LayerPicker:
    """Forward hooks that keep a copy of the target layer's output (or find the layer).

    With a named layer, its output is cloned when the hook fires: later in-place operations
    (``+=``, ``ReLU(inplace=True)``) cannot change the copy. Auto-detection keeps (a clone of)
    the last candidate (see the module's docstring) from the last module returning it (the
    outermost container, or an in-place activation after a convolution; not an ``Identity``).
    Candidates made by a possible per-location classifier are kept beside the last other one
    until the logits tell (:meth:`chosen`).
    """

    def __init__(self, model: nn.Module, x: Tensor, reshape: Reshape) -> None:
        self.size = (int(x.shape[-2]), int(x.shape[-1]))
        self.batch = int(x.shape[0])
        self.hints = layout_hints(model)
        self.reshape = reshape
        self.name: str | None = None
        self.module: nn.Module | None = None
        self.out: Any = None  # the named layer's output (kept alive: ids stay unique)
        self.copy: Tensor | None = None
        self.tiny: tuple[str, tuple[int, int]] | None = None  # the last 1×1 map
        self.pooled: dict[int, Tensor] = {}
        self.normed: dict[int, Tensor] = {}  # token / channels-last outputs of norms
        self.found: list[Candidate] = []  # the last plain candidate, then classifier-made ones
        self.before: Candidate | None = None  # the plain candidate before the last one

    def keep(self, name: str, module: nn.Module) -> Any:
        """The hook of a named layer: keep a copy of its output."""
        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            t = batch_tensor(out, self.batch)
            self.name, self.module, self.out = name, module, t if t is not None else out
            self.copy = t.detach().clone() if t is not None else None

        return hook

    def _layout(self, t: Tensor, module: nn.Module) -> str | None:
        if isinstance(self.reshape, str):
            want = 3 if self.reshape == "tokens" else 4
            return self.reshape if t.ndim == want else None
        layout = detect_layout(t, self.size, self.hints, module)
        return None if layout != "nchw" and _is_norm(module) else layout

    def _add(self, name: str, module: nn.Module, t: Tensor, source: Any) -> None:
        last = self.found[-1] if self.found else None
        if last is not None and t is last.out and isinstance(module, nn.Identity):
            return  # the same tensor passed on unchanged: keep the module that made it
        width = _per_location_classifier(module)
        if width is None and last is not None and (t is last.out or (
                source is last.out and t.shape == last.out.shape
                and next(module.parameters(), None) is None)):
            width = last.classifier_width  # an activation after the classifier
        candidate = Candidate(name, module, t, t.detach().clone(), width)
        if width is None:
            self.before = self.found[0] if self.found and self.found[0].classifier_width is None \
                else self.before
            self.found = [candidate]
        else:
            self.found.append(candidate)

    def _renormed(self, module: nn.Module, inputs: Any, t: Tensor) -> bool:
        """Whether ``t`` is a norm's token / channels-last output (not a feature).

        Also when a parameter-free module (``Dropout``, torchvision Swin's ``Permute``) passes
        such an output on.
        """
        if id(t) in self.normed:
            return True
        first = inputs[0] if isinstance(inputs, tuple) and inputs else None
        if isinstance(first, Tensor) and id(first) in self.normed and next(
                module.parameters(), None) is None and t.numel() == first.numel():
            self.normed[id(t)] = t
            return True
        return False

    def find(self, name: str, module: nn.Module, pooling: bool) -> Any:
        """The hook of one module during auto-detection."""
        def hook(_m: nn.Module, inputs: Any, out: Any) -> None:
            t = batch_tensor(out, self.batch)
            if t is None:
                return
            if self._renormed(module, inputs, t):
                return
            if pooling or id(t) in self.pooled:
                self.pooled[id(t)] = t
                return
            if t.shape[0] != self.batch or not t.is_floating_point():
                return
            layout = self._layout(t, module)
            if layout is None and self.reshape is None and _is_norm(module) and detect_layout(
                    t, self.size, self.hints) is not None:
                self.normed[id(t)] = t
            hw = None if layout is None else spatial_size(t, layout, self.size, self.hints)
            if hw is None:
                return
            if hw[0] * hw[1] <= 1:
                self.tiny = (name, hw)
                return
            self._add(name, module, t, inputs[0] if isinstance(inputs, tuple) and inputs else None)

        return hook

    def chosen(self, classes: int | None, output: Tensor | None = None) -> None:
        """Settle auto-detection once the model's number of logits is known.

        ``classes``: ``None`` for an output without classes (a detector's); ``output``: a
        dense output (B, classes, h, w), never a feature map (a head returning the logits,
        as SegFormer's ``decode_head`` does). The last candidate not made by a per-location
        classifier as wide as the logits; when every candidate is (a tiny all-convolutional
        net), the last one.
        """
        found = [c for c in self.found if output is None or not (
            c.out.data_ptr() == output.data_ptr() and c.out.shape == output.shape)]
        if not found and self.before is not None:
            found = [self.before]
        keep = [c for c in found if c.classifier_width != classes] or found[-1:]
        if keep:
            c = keep[-1]
            self.name, self.module, self.out, self.copy = c.name, c.module, c.out, c.copy
        self.found = []

    def register(self, model: nn.Module, x: Tensor, resolved: tuple[str, nn.Module] | None,
                 handles: list[RemovableHandle]) -> None:
        """Add the hooks to ``handles`` (the caller removes them, whatever happens)."""
        check = channel_check(x)
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                handles.append(m.register_forward_pre_hook(own_hook(check)))
        if resolved is not None:
            handles.append(resolved[1].register_forward_hook(own_hook(self.keep(*resolved))))
            return
        skip = [n + "." for n, m in model.named_modules() if n and _is_attention(m)]
        for name, m in model.named_modules():
            pooling = isinstance(m, POOLING)
            if not name or any((name + ".").startswith(s) for s in skip) or (
                    is_head_name(name) and not pooling):
                continue
            handles.append(m.register_forward_hook(own_hook(self.find(name, m, pooling))))
