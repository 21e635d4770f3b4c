"""A faster stand-in for the frozen model in Opti-CAM's inner loop: the same function, fewer passes.

Opti-CAM runs the frozen model forward and backward once per iteration, so the model's own
forward+backward is the floor of each step. In eval mode a BatchNorm that follows a convolution
is a per-channel affine map; folding it into the convolution's weights
(:func:`torch.nn.utils.fusion.fuse_conv_bn_weights`) removes one pass over that activation in
each direction, and laying the weights out ``channels_last`` lets oneDNN skip its per-call
weight reorders (speed-ups: ``benchmarks/bench_levers.py`` and the README).

The user's model is never modified: the stand-in is a deep copy, built inside
:func:`~opticam_widgets.model.features.model_guard` (eval mode, frozen) and cached per model. It can
never go stale unnoticed: on **every** call it is run once on the call's input and its logits
are compared with the model's own (which the caller computed anyway), to a tolerance a few
times the folding's float rounding; on any difference it is rebuilt, and if the rebuilt copy
still differs the model runs as given. A cheap fingerprint (tensor storage, in-place versions,
dtypes, submodules and their plain attributes such as ``eps``, ``stride`` or a temperature)
and one position-weighted sum per tensor (which sees writes through ``.data``) trigger the
rebuild without waiting for the check. A convolution whose output feeds more than
its BatchNorm fails the check; a BatchNorm subclass with an unknown forward, or a module called
twice, is not folded; a model with hooks of the user's, a compiled (``torch.compile``,
TorchScript) model, or one that cannot be copied, runs as given.
"""

from __future__ import annotations

import copy
import functools
import math
import threading
import types
import weakref
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ..support.checks import logits_of
from ..support.hooks import drop_own_hooks, own_hook, user_hooked

__all__ = ["folded_copy", "inner_loop_model"]

_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, Tensor, nn.Module | None]] = (
    weakref.WeakKeyDictionary()
)
_RAMPS: dict[torch.device, Tensor] = {}
_CACHE_LOCK = threading.Lock()


def _is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` holds a ``torch.compile`` or TorchScript module.

    Copying one would compile it again (slow), and its layers are not plain modules to fold.
    """
    return any(hasattr(m, "_orig_mod") or isinstance(m, torch.jit.ScriptModule)
               for m in model.modules())


#: Attribute values that ``forward`` may read and that are compared by value.
_PLAIN = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device)
#: Attribute values compared by identity (a swapped activation function, a patched forward).
_CALLABLE = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial)


def _plain_attributes(module: nn.Module) -> tuple:
    """A module's plain attributes: numbers, flags, strings, short tuples of them, functions.

    Tensors that are not parameters or buffers, caches and other objects are left out (a
    module may replace those on every forward); the logits check covers them.
    """
    out = []
    for key, value in vars(module).items():
        if isinstance(value, _PLAIN):
            out.append((key, value))
        elif isinstance(value, (tuple, list)) and len(value) <= 16 \
                and all(isinstance(v, _PLAIN) for v in value):
            out.append((key, tuple(value)))
        elif isinstance(value, _CALLABLE):
            out.append((key, id(value)))
    return tuple(out)


def _fingerprint(model: nn.Module) -> tuple:
    """What the stand-in depends on, as far as it is cheap to see.

    Tensors (storage, in-place version, shape, dtype, device), submodules (identity, type)
    and their plain attributes. In-place changes through ``.data`` bump no version:
    :func:`_content` and the logits check of every call catch those.
    """
    modules = list(model.modules())  # one walk; each module's own tensors below
    tensors = tuple(
        (t.data_ptr(), t._version, tuple(t.shape), t.dtype, t.device)
        for m in modules for t in (*m._parameters.values(), *m._buffers.values())
        if t is not None
    )
    return tensors, tuple((id(m), type(m), _plain_attributes(m)) for m in modules)


def _ramp(n: int, device: torch.device) -> Tensor:
    """Position weights 1, 1 + 1/97, ..., cycling: a moved value changes a weighted sum."""
    ramp = _RAMPS.get(device)
    if ramp is None or ramp.numel() < n:
        ramp = 1.0 + torch.arange(max(n, 1 << 16), device=device, dtype=torch.float32) % 97 / 97
        _RAMPS[device] = ramp
    return ramp[:n]


def _content(model: nn.Module) -> Tensor:
    """One position-weighted sum per floating tensor (one read of the weights, one sync).

    Sees what the fingerprint cannot: values written through ``.data``.
    """
    try:
        with torch.no_grad():
            sums = [torch.dot(t.detach().reshape(-1).float(), _ramp(t.numel(), t.device))
                    for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        return torch.stack(sums).double().cpu() if sums else torch.zeros(0, dtype=torch.float64)
    except (RuntimeError, NotImplementedError):  # meta or sparse tensors: never equal
        return torch.full((1,), math.nan, dtype=torch.float64)


def _same_content(a: Tensor, b: Tensor) -> bool:
    """Equal to float rounding (a reduction may not be bitwise reproducible across calls)."""
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-6, atol=1e-12))


def _bn_replacement(bn: nn.BatchNorm2d) -> nn.Module | None:
    """What is left of a BatchNorm once folded: nothing, or timm's dropout + activation."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    # timm's BatchNormAct2d: batch_norm -> self.drop -> self.act
    if type(bn).__name__ == "BatchNormAct2d" and isinstance(getattr(bn, "drop", None), nn.Module) \
            and isinstance(getattr(bn, "act", None), nn.Module):
        return nn.Sequential(bn.drop, bn.act)
    return None


def _foldable_pairs(net: nn.Module, x: Tensor) -> list[tuple[str, str]]:
    """(conv, batchnorm) module names where the BatchNorm's input is the conv's output.

    Found on one forward pass of ``net`` (hooks on ``net`` only, removed before returning).
    Modules called more than once are skipped (weight sharing).
    """
    names = {m: n for n, m in net.named_modules()}
    calls: dict[nn.Module, int] = {}
    conv_out: dict[int, tuple[weakref.ref, str]] = {}
    pairs: list[tuple[str, str]] = []

    def on_conv(m: nn.Module, _i: Any, out: Any) -> None:
        calls[m] = calls.get(m, 0) + 1
        if isinstance(out, Tensor):
            conv_out[id(out)] = (weakref.ref(out), names[m])

    def on_bn(m: nn.Module, inputs: Any) -> None:
        calls[m] = calls.get(m, 0) + 1
        if inputs and isinstance(inputs[0], Tensor):
            hit = conv_out.get(id(inputs[0]))
            if hit is not None and hit[0]() is inputs[0]:
                pairs.append((hit[1], names[m]))

    handles = []
    try:
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                handles.append(m.register_forward_hook(own_hook(on_conv)))
            elif isinstance(m, nn.BatchNorm2d):
                handles.append(m.register_forward_pre_hook(own_hook(on_bn)))
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    modules = dict(net.named_modules())
    return [(c, b) for c, b in pairs if calls[modules[c]] == 1 and calls[modules[b]] == 1]


def _set_submodule(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, module)


def folded_copy(model: nn.Module, x: Tensor) -> tuple[nn.Module, int]:
    """A frozen eval-mode copy of ``model`` with BatchNorms folded into their convolutions.

    Call inside :func:`~opticam_widgets.model.features.model_guard` (the copy inherits eval mode).
    The copy's 4-D weights are ``channels_last``. ``model`` itself is not touched.

    Args:
        model: The model (eval mode).
        x: A normalized input batch, used to find which BatchNorm follows which convolution.

    Returns:
        ``(copy, folded)``: the copy and the number of BatchNorms folded.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> fast, folded = folded_copy(net, torch.rand(1, 3, 8, 8))
        >>> folded, type(fast[1]).__name__
        (1, 'Identity')
    """
    net = drop_own_hooks(copy.deepcopy(model)).eval().requires_grad_(False)
    folded = 0
    modules = dict(net.named_modules())
    for conv_name, bn_name in _foldable_pairs(net, x):
        conv, bn = modules[conv_name], modules[bn_name]
        replacement = _bn_replacement(bn)
        if (replacement is None or bn.running_mean is None or bn.running_var is None
                or bn.num_features != conv.out_channels or conv.weight.ndim != 4):
            continue
        w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                    bn.eps, bn.weight, bn.bias)
        conv.weight = nn.Parameter(w.detach(), requires_grad=False)
        conv.bias = nn.Parameter(b.detach(), requires_grad=False)
        _set_submodule(net, bn_name, replacement)
        folded += 1
    return net.to(memory_format=torch.channels_last), folded


def _tolerance(x: Tensor, logits: Tensor) -> float:
    """Relative tolerance of the logits check: a few times the folding's float rounding.

    Folding moves float32 logits by about 5e-7 of their scale on CPU (Lite0, ResNet-50);
    TF32 convolutions on CUDA and half precision round far more, on both sides of the check.
    The coarser of the input's and the given logits' precision decides.
    """
    dtypes = {x.dtype, logits.dtype}
    if dtypes & {torch.float16, torch.bfloat16}:
        return 2e-2
    if x.device.type == "cuda" and (torch.backends.cudnn.allow_tf32
                                    or torch.backends.cuda.matmul.allow_tf32):
        return 2e-3
    return 1e-9 if dtypes == {torch.float64} else 2e-5


def _agrees(fast: nn.Module, x: Tensor, logits: Tensor) -> bool:
    """Whether the copy reproduces the model's logits on ``x`` (float rounding aside)."""
    with torch.no_grad():
        out = logits_of(fast(x))  # a Hugging Face ModelOutput, a dict or a tuple: its logits
    if not isinstance(out, Tensor) or out.shape != logits.shape or not out.is_floating_point():
        return False
    out, ref = out.detach().double(), logits.detach().double()
    if not (bool(torch.isfinite(out).all()) and bool(torch.isfinite(ref).all())):
        return False
    scale = float(ref.abs().max()) + 1.0
    return float((out - ref).abs().max()) <= _tolerance(x, logits) * scale


def _checked_copy(model: nn.Module, x: Tensor, logits: Tensor) -> nn.Module | None:
    """A new folded copy that reproduces ``logits`` on ``x``, or None (run the model)."""
    try:
        fast, folded = folded_copy(model, x)
        if folded > 0 and _agrees(fast, x, logits):
            return fast
    except Exception:  # noqa: BLE001 - any failure means: run the model as given
        pass
    return None


def inner_loop_model(model: nn.Module, x: Tensor, logits: Tensor) -> nn.Module:
    """The module to run in the optimization loop: a checked folded copy, or ``model`` itself.

    Call inside :func:`~opticam_widgets.model.features.model_guard`. The copy is cached per model.
    On every call a cached copy is checked against ``logits`` (one forward of the copy on
    ``x``, no backward); it is rebuilt when it differs or when the model's fingerprint
    (tensors, modules, plain attributes) or the weighted sums of its tensors changed, and
    dropped for the model as given when a fresh copy differs too. A model with hooks of the
    user's runs as given.

    Args:
        model: The user's model (eval mode, frozen by the guard).
        x: The normalized input of this call (used to find and check the folding).
        logits: ``model(x)``, as computed by the caller.

    Returns:
        A module computing the same logits as ``model`` (to float rounding), with no
        parameter requiring grad.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten()).eval()
        >>> x = torch.rand(1, 3, 8, 8)
        >>> inner_loop_model(net, x, net(x).detach()) is net
        False
    """
    if user_hooked(model) or _is_compiled(model):
        return model
    key, content = _fingerprint(model), _content(model)
    with _CACHE_LOCK:
        hit = _CACHE.get(model)
    if hit is not None and hit[0] == key and _same_content(hit[1], content):
        if hit[2] is None:
            return model
        if _agrees(hit[2], x, logits):
            return hit[2]
    fast = _checked_copy(model, x, logits)
    with _CACHE_LOCK:
        _CACHE[model] = (key, content, fast)
    return fast if fast is not None else model
