"""Baseline saliency maps on Opti-CAM's target layer: channel mean, Grad-CAM, Grad-CAM++, Score-CAM.

``channel-mean`` is Opti-CAM's own iteration 0 (uniform weights,
``minmax(upsample(mean_k A_k))`` with ``A = ReLU(features)``), computed with the engine's
functions. The classic CAMs come from **torchcam** (François-Guillaume Fernandez, Apache-2.0)
rather than being re-written here, because it is

* small and pure PyTorch (no OpenCV, no compiled code, no other dependency), maintained and
  released on PyPI;
* built on the same notion of a *target layer* as Opti-CAM (a module of the model, or its dotted
  name, whose 4-D output is weighted channel by channel), so every method explains the very same
  feature maps and the comparison is fair;
* usable as a context manager whose exit removes every hook it registered.

torchcam is an optional extra: ``pip install opticam-widgets[baselines]``. It is imported only
when a torchcam method is requested.

How each method is run, so that it is comparable to Opti-CAM:

* The model is fed through a thin wrapper that applies ``preprocess.normalize``; torchcam
  therefore sees *pixel-space* inputs. For Score-CAM this means each channel mask multiplies the
  pixels before normalization: masked-out regions are black, Opti-CAM's baseline (torchcam on a
  bare model would mask the normalized tensor, i.e. use the mean colour).
* Gradients are taken of the raw logit of the target class (the methods' papers).
* torchcam 0.5's Grad-CAM++ never applies the ``α`` normalization (``alpha[idx][mask].div_``
  divides a temporary copy made by boolean indexing), which leaves ``w_k = Σ ReLU(∂y/∂A)³``. The
  ``gradcam++`` method here keeps torchcam's hooks and back-propagation and only replaces that
  weighting by the Grad-CAM++ paper's closed form (its eq. 19 and its authors' code)
  ``α_ij = g_ij² / (2g_ij² + g_ij³ · Σ_ab A_ab)``, ``w_k = Σ_ij α_ij ReLU(g_ij)``
  (``g = ∂y/∂A``; the third derivative is taken at ``(i, j)``, the activations summed —
  torchcam's intended ``Σ_ab A_ab g_ab³`` is not the paper's). pytorch-grad-cam's Grad-CAM++
  (``pgc-gradcam++``, :mod:`.rivals`) gives the same maps.
* Maps are upsampled bilinearly to the input image's own resolution and min-max normalized per
  map; a constant map (e.g. Grad-CAM with no positive evidence) is returned as all zeros
  (``channel-mean`` follows the engine: a constant map there means "keep everything", ones).

The user's model is left as found, also when an error is raised: no hook remains, each module's
train/eval flag and each parameter's ``requires_grad`` flag are restored, ``.grad`` and weights
are not touched (inside, the model runs in eval mode with frozen parameters; gradients flow to
the input only).

Example:
    >>> import torch
    >>> from torchvision.models import resnet18
    >>> maps = baseline_map("gradcam", resnet18().eval(), torch.rand(3, 64, 80), target=3,
    ...                     target_layer="layer4")
    >>> maps.shape
    torch.Size([1, 64, 80])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..engine.classes import model_labels
from ..engine.explainer import OptiCAM
from ..engine.maps import channel_mean_map, minmax_normalize, resize_maps
from ..engine.prelude import captured
from ..engine.targets import ClassRows, TargetLike
from ..inputs.images import as_image_batch
from ..inputs.preprocess import Preprocess
from ..model.bundle import ModelBundle, unpack_model
from ..model.features import LayerSpec, layer_layout, resolve_layer
from ..support.checks import check_int, model_dtype, plain_tensor
from .rivals import RIVALS

__all__ = ["BASELINES", "Baseline", "BaselineCall", "baseline_map", "register_baseline"]


@dataclass(frozen=True)
class BaselineCall:
    """What a baseline's maps are computed from (inside the capture and the model guard).

    Attributes:
        capture: The capture prelude's result (``features``, ``pixels``, ...).
        rows: The explained rows (``index``: the image of each row, ``classes``).
        model: The model behind its normalisation (takes pixels in [0, 1]).
        module: The target layer's module.
        size: ``(H, W)`` of the returned maps.
        batch_size: Masked images per forward pass (for methods that mask).
    """

    capture: Any
    rows: Any
    model: nn.Module
    module: nn.Module
    size: tuple[int, int]
    batch_size: int


@dataclass(frozen=True)
class Baseline:
    """One baseline method: a name, how it computes its maps, what it needs.

    Attributes:
        name: The method's name (as :func:`baseline_map` takes it).
        maps: ``BaselineCall -> (N, H, W)`` maps in [0, 1] on the CPU.
        reads_nchw: The method reads the layer's output as (B, C, h, w) itself (token or
            channels-last layouts are refused for it).
        needs_torchcam: The optional torchcam extra is imported before the capture.
    """

    name: str
    maps: Callable[[BaselineCall], Tensor]
    reads_nchw: bool = True
    needs_torchcam: bool = True


#: The baseline methods by name: a new one is one :func:`register_baseline` entry.
REGISTRY: dict[str, Baseline] = {}


def register_baseline(name: str, *, reads_nchw: bool = True, needs_torchcam: bool = True
                      ) -> Callable[[Callable[[BaselineCall], Tensor]],
                                    Callable[[BaselineCall], Tensor]]:
    """Register ``BaselineCall -> maps`` under ``name`` (a decorator).

    Example:
        >>> @register_baseline("my-cam", needs_torchcam=False)
        ... def my_cam(call):
        ...     return torch.zeros(len(call.rows.classes), *call.size)
        >>> "my-cam" in REGISTRY
        True
        >>> del REGISTRY["my-cam"]
    """
    def add(fn: Callable[[BaselineCall], Tensor]) -> Callable[[BaselineCall], Tensor]:
        REGISTRY[name] = Baseline(name, fn, reads_nchw, needs_torchcam)
        return fn
    return add

#: Spellings accepted for each method (lower case, without ``-``, ``_`` and spaces).
_ALIASES = {
    "channelmean": "channel-mean",
    "mean": "channel-mean",
    "gradcam": "gradcam",
    "gradcam++": "gradcam++",
    "gradcampp": "gradcam++",
    "gradcamplusplus": "gradcam++",
    "scorecam": "scorecam",
}

_INSTALL_HINT = (
    "the {method!r} baseline needs torchcam, an optional dependency; install it with "
    "`pip install opticam-widgets[baselines]` (or `pip install torchcam`)"
)



def _method(method: Any) -> str:
    if isinstance(method, str) and method in REGISTRY:
        return method
    if not isinstance(method, str):
        raise TypeError(f"`method` must be a string, one of {BASELINES}; got "
                        f"{type(method).__name__}")
    key = method.lower().replace("-", "").replace("_", "").replace(" ", "")
    registered = {n.replace("-", "").replace("_", ""): n for n in REGISTRY}
    if key not in _ALIASES and key not in registered:
        raise ValueError(f"`method` {method!r} is unknown; use one of {list(REGISTRY)}")
    return _ALIASES.get(key) or registered[key]


def _torchcam(method: str) -> Any:
    try:
        import torchcam.methods as methods
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT.format(method=method)) from exc
    return methods


class _PixelModel(nn.Module):
    """The user's model behind its normalization: takes pixel-space batches in [0, 1]."""

    def __init__(self, model: nn.Module, preprocess: Preprocess) -> None:
        super().__init__()
        self.model = model
        self._normalize = preprocess.normalize
        self._dtype = model_dtype(model)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.model(self._normalize(x).to(self._dtype))


def _gradcampp_class(methods: Any) -> type:
    """Return torchcam's GradCAMpp with the paper's α normalization actually applied."""

    class GradCAMpp(methods.GradCAMpp):
        def _get_weights(self, class_idx: Any, scores: Tensor, eps: float = 1e-8,
                         **kwargs: Any) -> list[Tensor]:
            self._backprop(scores, class_idx, **kwargs)
            weights = []
            for grad, act in zip(self.hook_g, self.hook_a):
                g2 = grad.pow(2)
                g3 = g2 * grad
                spatial = (None,) * (act.ndim - 2)
                denom = 2 * g2 + g3 * act.flatten(2).sum(-1)[(...,) + spatial]
                denom = torch.where(denom.abs() > eps, denom, torch.ones_like(denom))
                alpha = torch.where(g2 > 0, g2 / denom, torch.zeros_like(g2))
                weights.append((alpha * torch.relu(grad)).flatten(2).sum(-1))
            return weights

    return GradCAMpp


@contextlib.contextmanager
def _extractor(cls: type, wrapper: nn.Module, module: nn.Module, **kwargs: Any) -> Iterator[Any]:
    """A torchcam extractor whose hooks are removed however the block exits."""
    extractor = None
    try:
        extractor = cls(wrapper, target_layer=module, **kwargs)
        yield extractor
    finally:
        if extractor is not None:
            extractor.remove_hooks()
            extractor.reset_hooks()


def _finish(cams: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsample (N, h, w) maps to ``size``, min-maxed per map (constant -> zeros), on the CPU."""
    cam = torch.nan_to_num(cams.detach().float(), nan=0.0)
    out = resize_maps(minmax_normalize(cam, size, constant=0.0), size)
    return out.clamp_(0.0, 1.0).cpu()


def _layer(model: nn.Module, pre: Preprocess, target_layer: LayerSpec) -> tuple[str, nn.Module]:
    if target_layer is None:
        target_layer = OptiCAM(model, preprocess=pre).layer_name
    return resolve_layer(model, target_layer)  # type: ignore[return-value]  # a layer: not None


def baseline_map(
    method: str,
    model: nn.Module | ModelBundle,
    image: Any,
    target: TargetLike = None,
    *,
    target_layer: LayerSpec = None,
    preprocess: Any = None,
    batch_size: int = 32,
) -> Tensor:
    """A baseline saliency map on the same target layer as Opti-CAM.

    Args:
        method: One of :data:`BASELINES`: ``"channel-mean"`` (Opti-CAM's iteration 0),
            ``"gradcam"``, ``"gradcam++"``, ``"scorecam"`` (case, ``-`` and ``_`` ignored).
        model: A classifier returning logits (B, classes), or a ModelBundle (whose
            preprocessing is used when ``preprocess`` is None).
        image: One image (path, PIL, ndarray, tensor (3, H, W) in [0, 1]), a batch tensor
            (B, 3, H, W) or a list of same-size images.
        target: ``None`` (top-1 class), a class index or a bundle's label name (every
            image), one per image, or, for a single image, several classes (then
            N = len(target) maps).
        target_layer: A module of the model or its dotted name; ``None`` asks the engine
            (``OptiCAM(model, preprocess=...).layer_name``) so Opti-CAM's layer is used.
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        batch_size: Masked images per forward pass (Score-CAM only).

    Returns:
        A float32 CPU tensor (N, H, W) in [0, 1] at the input image's resolution.

    Raises:
        ImportError: a torchcam method is requested and torchcam is not installed.
        TypeError: an argument of the wrong kind.
        ValueError: unknown method or layer, class out of range, bad image.

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> net = resnet18().eval()
        >>> baseline_map("channel-mean", net, torch.rand(3, 32, 32), target_layer="layer4").shape
        torch.Size([1, 32, 32])
    """
    name = _method(method)
    batch_size = check_int("batch_size", batch_size, 1)
    names = model_labels(model)
    model, pre = unpack_model(model, preprocess)
    chosen = REGISTRY[name]
    if chosen.needs_torchcam:
        _torchcam(name)  # fail early when missing
    with torch.inference_mode(False):  # the gradient CAMs need autograd, even when called in it
        images = plain_tensor(as_image_batch(image))
        size = (int(images.shape[-2]), int(images.shape[-1]))
        layer_name, module = _layer(model, pre, target_layer)
        with captured(model, pre, images, layer_name) as cap:
            layout = layer_layout(model, cap.inputs, layer_name) if chosen.reads_nchw else None
            if layout not in (None, "nchw"):
                raise ValueError(
                    f"`method` {name!r} (torchcam) reads `target_layer` {layer_name!r} as "
                    f"(B, C, h, w) maps, but its output is {layout!r}: use 'channel-mean', or "
                    f"OptiCAM, which read token and channels-last layouts")
            call = BaselineCall(cap, cap.targets(target, names), _PixelModel(model, pre), module,
                                size, batch_size)
            return chosen.maps(call)


def _pixels_and_classes(call: BaselineCall) -> tuple[Tensor, list[int]]:
    rows = call.rows
    if not isinstance(rows, ClassRows):
        raise ValueError(f"`target`: the torchcam baselines explain class logits, not "
                         f"{type(rows).__name__} (a region, a box, an embedding); use "
                         f"method='channel-mean' or OptiCAM for this target")
    return call.capture.pixels[rows.index.to(call.capture.pixels.device)], [
        int(c) for c in rows.classes.tolist()]


@register_baseline("channel-mean", reads_nchw=False, needs_torchcam=False)
def _channel_mean(call: BaselineCall) -> Tensor:
    """Opti-CAM's iteration 0: the channels' mean, exactly as the engine draws it."""
    features = call.capture.features
    return channel_mean_map(features[call.rows.index.to(features.device)], call.size).cpu()


@register_baseline("gradcam")
def _gradcam(call: BaselineCall) -> Tensor:
    return _gradient_cam(call, _torchcam("gradcam").GradCAM)


@register_baseline("gradcam++")
def _gradcampp(call: BaselineCall) -> Tensor:
    return _gradient_cam(call, _gradcampp_class(_torchcam("gradcam++")))


@register_baseline("scorecam")
def _scorecam(call: BaselineCall) -> Tensor:
    pixels, class_idx = _pixels_and_classes(call)
    with _extractor(_torchcam("scorecam").ScoreCAM, call.model, call.module,
                    batch_size=int(call.batch_size)) as ext:
        with torch.no_grad():
            call.model(pixels)
        return _finish(ext(class_idx=class_idx)[0], call.size)


def _gradient_cam(call: BaselineCall, cls: type) -> Tensor:
    """A torchcam gradient CAM (``cls``) of the call's rows."""
    pixels, class_idx = _pixels_and_classes(call)
    with _extractor(cls, call.model, call.module) as ext, torch.enable_grad():
        scores = call.model(pixels.detach().clone().requires_grad_(True))
        return _finish(ext(class_idx=class_idx, scores=scores)[0], call.size)


# pytorch-grad-cam's methods (optional extra `yardsticks`), one registry entry each
for _name, _maps in RIVALS.items():
    register_baseline(_name, needs_torchcam=False)(_maps)

#: Methods accepted by :func:`baseline_map`, in the order the widget lists them.
BASELINES: list[str] = list(REGISTRY)
