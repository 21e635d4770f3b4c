"""One saliency map by method name: Opti-CAM or any registered baseline, for the sanity checks.

The sanity checks (:mod:`.randomisation`, :mod:`.sensitivity`) recompute a map many times —
with a randomised model, for another class — so they take the *method* rather than a map:
``"opticam"`` (:class:`~opticam_widgets.engine.explainer.OptiCAM` with ``**settings``), a name
of :data:`~opticam_widgets.evaluation.baselines.BASELINES`, or a callable
``fn(model, image, target) -> map``.

Example:
    >>> import torch
    >>> from torchvision.models import resnet18
    >>> method_map("channel-mean", resnet18().eval(), torch.rand(3, 32, 32), 3,
    ...            target_layer="layer4").shape
    torch.Size([1, 32, 32])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..engine.explainer import OptiCAM
from ..engine.targets import TargetLike
from ..model.features import LayerSpec, resolve_layer
from .baselines import BASELINES, baseline_map
from .forward import prepare

__all__ = ["MethodLike", "layer_name", "method_map", "single_image"]

#: ``"opticam"``, a baseline's name, or ``fn(model, image, target) -> map (H, W) / (N, H, W)``.
MethodLike = Union[str, Callable[[nn.Module, Tensor, Any], Any]]


def single_image(model: Any, image: Any, preprocess: Any) -> tuple[nn.Module, Any, Tensor]:
    """The bare model, its preprocessing and ``image`` as a pixel batch (1, 3, H, W).

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: a batch of several images, or a bad image.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> single_image(nn.Flatten(), torch.rand(3, 4, 4), None)[2].shape
        torch.Size([1, 3, 4, 4])
    """
    try:
        net, pre, x, *_ = prepare(model, image, np.zeros((1, 3, 3), np.float32), preprocess, 1,
                                  False)
    except ValueError as exc:
        if str(exc).startswith("`saliency` has 1 maps for"):
            raise ValueError("`image` must be one image (3, H, W), not a batch; check one "
                             "image at a time") from None
        raise
    return net, pre, x


def layer_name(model: nn.Module, target_layer: LayerSpec) -> str | None:
    """The dotted name of ``target_layer`` in ``model`` (``None`` stays ``None``).

    A name survives a deep copy of the model, a module object does not.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> layer_name(net, net[0])
        '0'
    """
    if target_layer is None:
        return None
    return resolve_layer(model, target_layer)[0]


def method_map(method: MethodLike, model: nn.Module, image: Tensor, target: TargetLike, *,
               target_layer: LayerSpec = None, preprocess: Any = None,
               **settings: Any) -> Tensor:
    """The saliency map(s) of ``image`` by ``method``, a float32 CPU tensor (N, H, W).

    Args:
        method: ``"opticam"``, a name of :data:`~opticam_widgets.evaluation.baselines.BASELINES`
            or a callable ``fn(model, image, target)`` returning maps.
        model: The classifier (a bare module: the checks run on copies of it).
        image: A pixel batch (B, 3, H, W) in [0, 1].
        target: A target of :mod:`~opticam_widgets.engine.targets`.
        target_layer: The layer (its dotted name; ``None``: the engine's choice).
        preprocess: The model's preprocessing.
        **settings: Opti-CAM's settings (``max_iter=...``), for ``"opticam"`` only.

    Returns:
        The maps, (N, H, W).

    Raises:
        TypeError: ``method`` is neither a string nor callable, or settings for a baseline.
        ValueError: an unknown method name.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten())
        >>> method_map(lambda m, x, t: torch.ones(8, 8), net, torch.rand(1, 3, 8, 8), 0).shape
        torch.Size([1, 8, 8])
    """
    if callable(method):
        maps = method(model, image, target)
    elif not isinstance(method, str):
        raise TypeError(f"`method` must be 'opticam', one of {BASELINES} or a callable "
                        f"fn(model, image, target); got {type(method).__name__}")
    elif method.lower().replace("-", "") == "opticam":
        cam = OptiCAM(model, target_layer=target_layer, preprocess=preprocess, **settings)
        maps = cam.explain(image, target).saliency
    else:
        if settings:
            raise TypeError(f"`method` {method!r} takes no settings ({', '.join(settings)}); "
                            "settings are Opti-CAM's")
        maps = baseline_map(method, model, image, target, target_layer=target_layer,
                            preprocess=preprocess)
    maps = torch.as_tensor(maps).detach().to("cpu", torch.float32)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    return maps if maps.ndim == 3 else maps.reshape(1, *maps.shape[-2:])
