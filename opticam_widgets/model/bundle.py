"""A model packaged with what it needs to be explained: preprocessing and labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..inputs.hfprocessor import from_image_processor, is_image_processor
from ..inputs.preprocess import Preprocess, coerce_preprocess
from .modelspec import check_eager, declared_input_size, required_input_size

__all__ = ["ModelBundle", "unpack_model"]


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


def unpack_model(model: Any, preprocess: Any = None) -> tuple[nn.Module, Preprocess]:
    """Split a model or :class:`ModelBundle` into ``(module, preprocessing spec)``.

    An explicit ``preprocess`` wins over the bundle's; ``None`` with a bare module gives
    ImageNet mean/std at the size the model declares
    (:func:`~opticam_widgets.model.modelspec.declared_input_size`: timm, Hugging Face, torchvision
    ViT), else 224×224 (see :func:`~opticam_widgets.inputs.images.coerce_preprocess`). A Hugging
    Face image processor is read too (:mod:`~opticam_widgets.inputs.hfprocessor`).

    Raises:
        TypeError: ``model`` is neither an ``nn.Module`` nor a bundle, or cannot be explained
            (TorchScript, an exported graph, quantized layers:
            :func:`~opticam_widgets.model.modelspec.check_eager`).
        ValueError: ``preprocess`` resizes to another size than the one the model requires.

    Example:
        >>> from torch import nn
        >>> net, spec = unpack_model(ModelBundle(nn.Identity(), labels=None))
        >>> spec.size
        (224, 224)
    """
    if isinstance(model, ModelBundle):
        if preprocess is None:
            preprocess = model.preprocess
        model = model.model
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"`model` must be a torch.nn.Module or a ModelBundle, got {type(model).__name__}"
        )
    check_eager(model)
    if preprocess is None:
        return model, Preprocess(size=declared_input_size(model) or (224, 224))
    spec = (from_image_processor(preprocess) if is_image_processor(preprocess)
            else coerce_preprocess(preprocess))
    required = required_input_size(model)
    if required is not None and spec.size is not None and spec.size != required:
        raise ValueError(
            f"`preprocess` resizes to {spec.size[0]}×{spec.size[1]} but the model only takes "
            f"{required[0]}×{required[1]} images (its patch embedding's `img_size`); use "
            f"size={required} (or leave `preprocess` out: the model's own size is the default)")
    return model, spec
