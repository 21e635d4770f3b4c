"""Torchvision detectors and segmenters, ready to explain offline (the zoo's models beyond a class).

:func:`from_torchvision_task` builds a torchvision detection model (Faster R-CNN, RetinaNet,
FCOS, SSD, ...; a list of dicts per image) or semantic segmentation model (LR-ASPP, DeepLabV3,
FCN; ``{"out": ...}``) with

* random weights (``weights=None``; the backbone random too, so nothing is downloaded),
* a local checkpoint file (``weights="path/to/file.pth"``: a ``state_dict``, or a dict holding
  one under ``"model"`` / ``"state_dict"``, of the architecture with its default classes), or
* torchvision's pretrained weights (``"DEFAULT"`` or a weights name: downloaded once into the
  torch hub cache, the only path that touches the network).

Images keep their own size (``Preprocess(size=None)``), so a box (``Box``, ``Region(box=)``,
``--target box:``) is in the photo's own pixels: a detector resizes and normalises inside
itself (its pixels go in as they are, in [0, 1]); a segmenter gets ImageNet's mean and std. The
labels are torchvision's (COCO's 91 names with the background for detectors, Pascal VOC's 21
for segmenters). Detectors keep detections down to score :data:`SCORE_THRESH` (torchvision's
default is 0.05): a masked image's object keeps a score, hence a gradient (see
:mod:`~opticam_widgets.engine.targets.boxes`).

Example:
    >>> bundle = from_torchvision_task("lraspp_mobilenet_v3_large", weights=None)
    >>> bundle.name, bundle.preprocess.size, len(bundle.labels)
    ('torchvision:lraspp_mobilenet_v3_large', None, 21)
    >>> task_of("fcos_resnet50_fpn"), task_of("resnet50")
    ('detection', None)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..inputs.preprocess import Preprocess
from .bundle import ModelBundle

__all__ = ["SCORE_THRESH", "TASK_PREPROCESS", "from_torchvision_task", "load_checkpoint",
           "resolve_weights", "task_of"]

#: The lowest detection score a zoo detector keeps (torchvision's default is 0.05).
SCORE_THRESH = 0.001

#: Each task's preprocessing: images at their own size; detectors normalise inside themselves.
TASK_PREPROCESS = {
    "detection": Preprocess(size=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
    "segmentation": Preprocess(size=None),
}


@functools.lru_cache(maxsize=1)
def _task_names() -> dict[str, str]:
    import torchvision.models as tvm

    names = {n: "detection" for n in tvm.list_models(module=tvm.detection)}
    names.update({n: "segmentation" for n in tvm.list_models(module=tvm.segmentation)})
    return names


def resolve_weights(name: str, weights: Any) -> Any:
    """A torchvision ``WeightsEnum`` member (or ``None``) for ``weights`` of model ``name``.

    Example:
        >>> resolve_weights("resnet18", "IMAGENET1K_V1").name, resolve_weights("resnet18", None)
        ('IMAGENET1K_V1', None)
    """
    import torchvision.models as tvm
    from torchvision.models import WeightsEnum

    if weights is None:
        return None
    enum_cls = tvm.get_model_weights(name)
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum_cls):
            raise ValueError(f"`weights` {weights} are not weights of {name!r}; use one of "
                             f"{', '.join(w.name for w in enum_cls)}")
        return weights
    if not isinstance(weights, str):
        raise TypeError(f"`weights` must be 'DEFAULT', a weights name, a torchvision "
                        f"WeightsEnum or None; got {type(weights).__name__}")
    key = weights.split(".")[-1]  # accept "ResNet50_Weights.IMAGENET1K_V2"
    if key.upper() == "DEFAULT":
        return enum_cls.DEFAULT
    try:
        return enum_cls[key]
    except KeyError:
        raise ValueError(f"`weights` {weights!r} is unknown for {name!r}; use 'DEFAULT', None "
                         f"or one of {', '.join(w.name for w in enum_cls)}") from None


def task_of(name: str) -> str | None:
    """``"detection"`` or ``"segmentation"`` for a torchvision model of that task, else ``None``.

    Example:
        >>> task_of("deeplabv3_mobilenet_v3_large")
        'segmentation'
    """
    return _task_names().get(name)


def load_checkpoint(path: str | os.PathLike, model: nn.Module, name: str = "weights") -> None:
    """Load a local weights file into ``model`` (strict), refusing a mismatch with the fix.

    Args:
        path: A file saved by ``torch.save``: a ``state_dict``, or a dict holding one under
            ``"model"`` or ``"state_dict"`` (training scripts' checkpoints). Read with
            ``weights_only=True`` (no code runs).
        model: The architecture, built with random weights.
        name: The argument's name, for messages.

    Raises:
        ValueError: a missing file, or weights of another architecture or class count.

    Example:
        >>> load_checkpoint("no/such/file.pth", nn.Linear(2, 2))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: `weights` file 'no/such/file.pth' does not exist; give the path of a ...
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"`{name}` file {str(path)!r} does not exist; give the path of a "
                         "state_dict saved with torch.save, 'none' for random weights, or a "
                         "torchvision weights name")
    state = torch.load(file, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise ValueError(f"`{name}` file {str(path)!r} does not fit {type(model).__name__} "
                         f"with its default classes ({first}); save the state_dict of the same "
                         f"architecture, or build your model in Python and pass it in a "
                         f"ModelBundle") from None


def _build(name: str, weights: Any, task: str) -> nn.Module:
    """The model with ``weights`` (a ``WeightsEnum`` or ``None``), its backbone never fetched."""
    import torchvision.models as tvm

    extra: dict[str, Any] = {"weights_backbone": None}
    if task == "detection":
        extra["box_score_thresh" if "rcnn" in name else "score_thresh"] = SCORE_THRESH
    with torch.random.fork_rng(devices=[]):  # random init must not move the user's RNG
        torch.manual_seed(0)  # random weights: the same model on every call
        return tvm.get_model(name, weights=weights, **extra)


def from_torchvision_task(name: str, weights: Any = "DEFAULT") -> ModelBundle:
    """A torchvision detector or segmenter with its preprocessing and labels.

    Args:
        name: A torchvision detection or segmentation model name (see :func:`task_of`).
        weights: ``None`` (random, offline; the same weights on every call), a path to a
            local weights file (see :func:`load_checkpoint`), or ``"DEFAULT"`` / a weights
            name / a ``WeightsEnum`` (downloaded once: the only path that may use the network).

    Returns:
        A :class:`~opticam_widgets.model.bundle.ModelBundle` in eval mode, named
        ``"torchvision:<name>"``.

    Raises:
        ValueError: an unknown name or weights, a checkpoint of another architecture.

    Example:
        >>> from_torchvision_task("ssdlite320_mobilenet_v3_large", None).labels[:2]
        ['__background__', 'person']
    """
    import torchvision.models as tvm

    task = task_of(name)
    if task is None:
        raise ValueError(f"`name` {name!r} is not a torchvision detection or segmentation "
                         f"model; see torchvision.models.list_models(module="
                         f"torchvision.models.detection) and (module=...segmentation)")
    path = weights if isinstance(weights, (str, os.PathLike)) and _is_path(weights) else None
    enum = None if path is not None else resolve_weights(name, weights)
    model = _build(name, enum, task)
    if path is not None:
        load_checkpoint(path, model)
    meta = (enum or tvm.get_model_weights(name).DEFAULT).meta
    return ModelBundle(model=model.eval(), preprocess=TASK_PREPROCESS[task],
                       labels=list(meta["categories"]), name=f"torchvision:{name}")


def _is_path(weights: str | os.PathLike) -> bool:
    """A weights spec that names a file (a path separator or a checkpoint suffix)."""
    text = os.fspath(weights)
    return (os.sep in text or "/" in text or text.endswith((".pt", ".pth", ".bin"))
            or Path(text).is_file())
