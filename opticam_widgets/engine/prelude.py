"""The capture prelude, written once: resize → guard → normalise → dtype → capture → targets.

Every entry point that reads a model's features starts the same way (``OptiCAM.layer_name``,
``OptiCAM.preview``, ``OptiCAM.explain`` and :func:`~opticam_widgets.evaluation.baselines.
baseline_map`): the pixels are resized to the model's input size on its device, the model is
frozen (:func:`~opticam_widgets.model.features.model_guard`), the batch is normalised and cast
to the model's dtype, one forward captures the target layer's features and the model's output
(logits, a segmentation map or detections), and the target is resolved on that output
(:mod:`~opticam_widgets.engine.targets`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from opticam_widgets.inputs.preprocess import Preprocess
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> with captured(net, Preprocess(size=None), torch.rand(2, 3, 8, 8), None) as cap:
    ...     rows = cap.targets(None)
    >>> cap.layer, tuple(cap.features.shape), rows.index.tolist()
    ('1', (2, 4, 6, 6), [0, 1])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..inputs.preprocess import Preprocess
from ..model.features import LayerSpec, capture, model_guard
from ..model.layouts import Reshape
from ..support.checks import model_device, model_dtype
from .targets import Rows, resolve

__all__ = ["Captured", "captured"]


@dataclass(frozen=True)
class Captured:
    """One capture forward.

    Attributes:
        pixels: The resized pixel batch (B, 3, H, W) on the model's device (what is masked).
        inputs: ``pixels`` normalised, in the model's dtype (what the model saw).
        layer: The target layer's name.
        features: Its output as (B, K, h, w) maps.
        logits: The model's output, float32 and detached: (B, classes) logits for a
            classifier, or any form of :mod:`~opticam_widgets.support.outputs`.
    """

    pixels: Tensor
    inputs: Tensor
    layer: str
    features: Tensor
    logits: Any

    def targets(self, target: Any, labels: Sequence[str] | None = None, *,
                name: str = "target") -> Rows:
        """The rows ``target`` asks for on this output (see :func:`~.targets.resolve`)."""
        size = (int(self.pixels.shape[-2]), int(self.pixels.shape[-1]))
        return resolve(target, self.logits, labels=labels, name=name, size=size)


@contextlib.contextmanager
def captured(model: nn.Module, preprocess: Preprocess, pixels: Tensor, layer: LayerSpec, *,
             reshape: Reshape = None,
             device: torch.device | None = None) -> Iterator[Captured]:
    """Resize, freeze, normalise, cast and capture; the model stays frozen inside the block.

    Args:
        model: The model (restored as found when the block exits, also on errors).
        preprocess: Its resize and normalisation.
        pixels: A pixel batch (B, 3, H, W) in [0, 1].
        layer: The target layer (a module, a dotted name, or ``None`` to find it).
        reshape: The layer's layout (see :mod:`~opticam_widgets.model.layouts`).
        device: Where the model runs (default: its parameters' device).

    Yields:
        The :class:`Captured` forward.
    """
    x = preprocess.resize(pixels.to(device or model_device(model)))
    with model_guard(model):
        xn = preprocess.normalize(x).to(model_dtype(model))
        name, features, logits = capture(model, xn, layer, reshape)
        yield Captured(x, xn, name, features, logits)
