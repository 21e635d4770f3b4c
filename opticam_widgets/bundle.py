"""A model packaged with what it needs to be explained: preprocessing and labels."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from .images import Preprocess

__all__ = ["ModelBundle"]


@dataclass(frozen=True)
class ModelBundle:
    """A classifier with its preprocessing spec and class names.

    Anything that accepts a model (``OptiCAM``, ``OptiCAMWidget``) accepts a bundle too and
    then takes its preprocessing and labels from it.

    Example:
        >>> from torch import nn
        >>> bundle = ModelBundle(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), labels=["a"])
        >>> bundle.preprocess.size
        (224, 224)

    Attributes:
        model: The classifier, returning logits of shape (B, classes).
        preprocess: Resize and normalization applied to pixel-space images in [0, 1].
        labels: One human-readable name per class, or ``None``.
        name: A short name for display.
    """

    model: nn.Module
    preprocess: Preprocess = field(default_factory=Preprocess)
    labels: list[str] | None = None
    name: str = "model"
