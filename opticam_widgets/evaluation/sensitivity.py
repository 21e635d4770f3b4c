"""Class sensitivity: the maps of two different classes of one image should differ.

A method whose map hardly depends on the class explains the image (its edges, its salient
object), not the decision. The check computes the maps of two classes of the same image with
the same method and compares them
(:func:`~opticam_widgets.evaluation.map_similarity.map_similarity`): a low rank correlation and
SSIM pass; values near 1 fail. By default the two classes are the image's two best (``("top",
2)``), the hardest pair to tell apart; any target of :mod:`~opticam_widgets.engine.targets`
naming two classes of the one image works (``[3, "tabby"]``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 3))
    >>> out = class_sensitivity(net, torch.rand(3, 16, 16), "channel-mean", [0, 2],
    ...                         {"size": None}, target_layer="1")
    >>> out["classes"], round(out["spearman"], 6)  # channel-mean ignores the class: same map
    ((0, 2), 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine.classes import model_labels
from ..engine.targets import TargetLike, resolve
from ..model.bundle import ModelBundle
from ..model.features import LayerSpec
from ..support.checks import check_logits, model_device, model_dtype
from .forward import eval_mode
from .map_similarity import map_similarity
from .method_maps import MethodLike, layer_name, method_map, single_image

__all__ = ["class_sensitivity"]


def _two_classes(model: Any, image: Any, target: Any, preprocess: Any) -> tuple[Any, ...]:
    """The bare model, its preprocessing, the pixel batch (1, 3, H, W) and the two classes."""
    net, pre, x = single_image(model, image, preprocess)
    with eval_mode(net):
        xn = pre.normalize(pre.resize(x.to(model_device(net)))).to(model_dtype(net))
        probs = torch.softmax(check_logits(net(xn), 1).float(), dim=1).cpu()
    rows = resolve(target, probs, labels=model_labels(model), what="images")
    classes = tuple(int(c) for c in rows.classes.tolist())
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"`target` must name two different classes of the image (e.g. "
                         f"('top', 2) or [3, 7]); got {classes}")
    return net, pre, x, classes


def class_sensitivity(
    model: nn.Module | ModelBundle,
    image: Any,
    method: MethodLike = "gradcam",
    target: TargetLike = ("top", 2),
    preprocess: Any = None,
    *,
    target_layer: LayerSpec = None,
    **settings: Any,
) -> dict[str, Any]:
    """The maps of two classes of one image and how alike they are.

    Args:
        model: A classifier returning logits, or a ModelBundle.
        image: One image (pixel values in [0, 1]).
        method: ``"opticam"``, a baseline's name or ``fn(model, image, target) -> map``.
        target: Two classes of the image (:mod:`~opticam_widgets.engine.targets`); default
            its two best.
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        target_layer: The method's layer (None: the engine's choice).
        **settings: Opti-CAM's settings, for ``method="opticam"``.

    Returns:
        ``{"classes": (a, b), "spearman": float, "ssim": float, "maps": ndarray (2, H, W)}``;
        lower similarities pass (the maps depend on the class).

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: several images, or a target that is not two different classes.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 3))
        >>> class_sensitivity(net, torch.rand(3, 16, 16), "channel-mean",
        ...                   preprocess={"size": None}, target_layer="1")["maps"].shape
        (2, 16, 16)
    """
    net, pre, x, classes = _two_classes(model, image, target, preprocess)
    layer = layer_name(net, target_layer)
    maps = [method_map(method, net, x, c, target_layer=layer, preprocess=pre, **settings)[0]
            for c in classes]
    sim = map_similarity(maps[0], maps[1])
    return {"classes": classes, "spearman": sim["spearman"], "ssim": sim["ssim"],
            "maps": np.stack([m.numpy() for m in maps]).astype(np.float32)}
