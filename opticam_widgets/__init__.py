"""opticam-widgets: Opti-CAM saliency maps for CNNs, live in Jupyter widgets.

Example:
    >>> from opticam_widgets import OptiCAMWidget, load_default_model, sample_image
    >>> OptiCAMWidget(load_default_model()).show(sample_image("chelsea"))  # doctest: +SKIP

Heavy modules (torch models, widgets) are imported on first use of their names.
"""

from __future__ import annotations

from typing import Any

from .support.lazy import lazy_attribute

__version__ = "0.1.0"

_LAZY = {
    "OptiCAM": "engine.explainer",
    "OptiCAMSettings": "engine.config",
    "OptiCAMResult": "engine.result",
    "OptiCAMProgress": "engine.result",
    "ModelBundle": "model.bundle",
    "Preprocess": "inputs.preprocess",
    "OptiCAMWidget": "widget",
    "load_default_model": "model.zoo",
    "from_torchvision": "model.zoo",
    "imagenet_labels": "model.zoo",
    "sample_image": "model.zoo",
    "sample_images": "model.zoo",
    "explain_dataset": "dataset",
    "load_results": "dataset",
    "DatasetResults": "dataset",
    "OptiCAMExplorer": "explorer",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name, globals())


def __dir__() -> list[str]:
    return __all__
