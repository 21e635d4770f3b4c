"""Dual encoders (CLIP, SigLIP, open_clip) bound for Opti-CAM: the image tower and its text side.

Opti-CAM explains a model that maps pixels to one output per image. A dual encoder maps pixels
to an image embedding and text to a text embedding; :func:`image_tower` binds one as a
:class:`~opticam_widgets.model.bundle.ModelBundle` whose model, an :class:`ImageTower`, maps
normalised pixels to the image embedding (B, D), with the model's own preprocessing (its
processor's size, mean and std) and its text encoder kept beside it for
:class:`~opticam_widgets.engine.targets.embeddings.TextPrompt`:

* Hugging Face ``CLIPModel``, ``SiglipModel`` and any model with ``get_image_features`` /
  ``get_text_features``, with its processor (``CLIPProcessor``: image processor and tokenizer)
  or an image processor plus ``tokenizer=``;
* open_clip models and any model with ``encode_image`` / ``encode_text``, with its tokenizer
  (``open_clip.get_tokenizer(name)``); the preprocessing is read from ``model.visual``'s
  ``preprocess_cfg`` (what ``open_clip.create_model`` sets) unless ``processor=`` gives it.

The target layer is found as for any model (:mod:`~opticam_widgets.model.picker`): the last
token grid of the vision tower before its pooling (the last encoder layer of a Hugging Face
CLIP or SigLIP vision model, ``visual.transformer`` of an open_clip ViT), class token dropped.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Tiny(nn.Module):  # the open_clip protocol: encode_image, encode_text
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv, self.words = nn.Conv2d(3, 4, 3), nn.EmbeddingBag(10, 4)
    ...     def encode_image(self, x):
    ...         return self.conv(x).mean((2, 3))
    ...     def encode_text(self, tokens):
    ...         return self.words(tokens)
    >>> bundle = image_tower(Tiny(), {"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3},
    ...                      tokenizer=lambda texts: torch.tensor([[len(t) % 10] for t in texts]))
    >>> bundle.model(torch.rand(2, 3, 16, 16)).shape, bundle.model.encode_text(["a"]).shape
    (torch.Size([2, 4]), torch.Size([1, 4]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..inputs.hfprocessor import from_image_processor, is_image_processor
from ..inputs.images import as_image_batch
from ..inputs.preprocess import Preprocess, coerce_preprocess
from ..support.checks import check_logits, model_device, model_dtype
from .bundle import ModelBundle
from .features import model_guard

__all__ = ["ImageTower", "embed_images", "image_encoder", "image_tower", "text_encoder"]

_FIX = ("bind it with `opticam_widgets.model.dualencoder.image_tower(model, processor, "
        "tokenizer=...)`")


def _family(model: Any) -> str:
    """``"hf"`` (get_image_features / get_text_features) or ``"encode"`` (encode_image / _text)."""
    if isinstance(model, nn.Module):
        if callable(getattr(model, "get_image_features", None)):
            return "hf"
        if callable(getattr(model, "encode_image", None)):
            return "encode"
    raise TypeError(
        f"`model` must be a dual encoder: a Hugging Face CLIPModel / SiglipModel (with "
        f"`get_image_features`) or an open_clip model (with `encode_image`); got "
        f"{type(model).__name__}. For an image-only embedding model pass it to OptiCAM directly "
        f"and explain a `Similarity` target")


def _first_tensor(out: Any) -> Tensor:
    """The embedding in a ``get_*_features`` output: a tensor, or its ``pooler_output``."""
    if isinstance(out, Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, Tensor):
        return pooled
    raise TypeError(f"the dual encoder returned {type(out).__name__}, not an embedding tensor")


class ImageTower(nn.Module):
    """A dual encoder's image side as a model: normalised pixels (B, 3, H, W) -> embedding (B, D).

    It wraps the user's model (not copied; frozen only for the duration of each call) and keeps
    its text side: :meth:`encode_text`. Build it with :func:`image_tower`.

    Attributes:
        model: The wrapped dual encoder.
        preprocess: Its image preprocessing.
        tokenizer: ``texts -> tokens`` (a Hugging Face tokenizer or an open_clip one), or ``None``.
    """

    def __init__(self, model: nn.Module, preprocess: Preprocess, tokenizer: Any = None) -> None:
        super().__init__()
        self.family = _family(model)
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.training = model.training  # its own flag only: the model's modes stay as they are

    def forward(self, pixel_values: Tensor) -> Tensor:
        """The image embeddings (B, D) of a normalised batch (differentiable)."""
        if self.family == "hf":
            return _first_tensor(self.model.get_image_features(pixel_values=pixel_values))
        return _first_tensor(self.model.encode_image(pixel_values))

    def _tokens(self, texts: list[str]) -> dict[str, Tensor]:
        """The text encoder's keyword inputs for ``texts``, on the model's device."""
        device = model_device(self.model)
        if self.family == "encode":
            return {"text": torch.as_tensor(self.tokenizer(texts)).to(device)}
        padding: dict[str, Any] = {"padding": True}
        if "siglip" in type(self.model).__name__.lower():  # SigLIP was trained padded to max
            text_cfg = getattr(getattr(self.model, "config", None), "text_config", None)
            padding = {"padding": "max_length",
                       "max_length": getattr(text_cfg, "max_position_embeddings", 64)}
        enc = self.tokenizer(texts, truncation=True, return_tensors="pt", **padding)
        return {k: enc[k].to(device) for k in ("input_ids", "attention_mask") if k in enc}

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """The text embeddings (N, D) of ``texts``: float32, on the CPU, no gradient.

        Raises:
            ValueError: no tokenizer was given to :func:`image_tower`.
        """
        if self.tokenizer is None:
            raise ValueError("this image tower has no tokenizer: pass `tokenizer=` to image_tower "
                             "(a Hugging Face processor or tokenizer, or open_clip.get_tokenizer"
                             "(name))")
        with model_guard(self.model), torch.no_grad():
            tokens = self._tokens(list(texts))
            if self.family == "hf":
                out = self.model.get_text_features(**tokens)
            else:
                out = self.model.encode_text(tokens["text"])
            return _first_tensor(out).float().cpu()

    def embed(self, images: Any) -> Tensor:
        """The image embeddings (B, D) of images in [0, 1] (any form ``explain`` takes)."""
        return embed_images(self, images, self.preprocess)


def _preprocess(model: nn.Module, family: str, processor: Any) -> Preprocess:
    """The model's preprocessing: its processor's, or the one open_clip stored on the model."""
    if processor is not None:
        inner = getattr(processor, "image_processor", None)
        if inner is not None and is_image_processor(inner):
            return from_image_processor(inner)
        if is_image_processor(processor):
            return from_image_processor(processor)
        return coerce_preprocess(processor, name="processor")
    cfg = getattr(getattr(model, "visual", None), "preprocess_cfg", None)
    if family == "encode" and isinstance(cfg, dict) and {"size", "mean", "std"} <= set(cfg):
        size = cfg["size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        return Preprocess(size=size, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
    example = ("CLIPProcessor.from_pretrained(name)" if family == "hf" else
               "the preprocess of open_clip.create_model_and_transforms, or "
               "{'size': (H, W), 'mean': ..., 'std': ...}")
    raise ValueError(f"`processor` is needed: the model's size, mean and std are its "
                     f"processor's (e.g. {example})")


def image_tower(model: nn.Module, processor: Any = None, *,
                tokenizer: Any = None) -> ModelBundle:
    """Bind a dual encoder for Opti-CAM: its image tower, preprocessing and text encoder.

    Args:
        model: A Hugging Face ``CLIPModel`` / ``SiglipModel`` (``get_image_features``), or an
            open_clip model (``encode_image`` / ``encode_text``).
        processor: The model's processor: a Hugging Face ``CLIPProcessor`` /
            ``SiglipProcessor`` (image processor and tokenizer), an image processor, or any
            preprocessing spec :class:`~opticam_widgets.inputs.preprocess.Preprocess` reads.
            ``None``: for open_clip, ``model.visual.preprocess_cfg``.
        tokenizer: ``texts -> tokens``; default: the processor's ``tokenizer``. For open_clip:
            ``open_clip.get_tokenizer(name)`` (it works offline).

    Returns:
        A :class:`~opticam_widgets.model.bundle.ModelBundle` of an :class:`ImageTower`:
        ``OptiCAM(bundle)`` explains the image embedding, with ``TextPrompt(text, bundle)`` or
        ``Similarity(reference)`` (:mod:`~opticam_widgets.engine.targets.embeddings`).

    Raises:
        TypeError: ``model`` is not a dual encoder.
        ValueError: no preprocessing can be read (pass ``processor=``).

    Example:
        >>> bundle = image_tower(clip, processor)  # doctest: +SKIP
        >>> OptiCAM(bundle).explain(photo, TextPrompt("a red square", bundle))  # doctest: +SKIP
    """
    family = _family(model)
    spec = _preprocess(model, family, processor)
    if tokenizer is None:
        tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None and not callable(tokenizer):
        raise TypeError(f"`tokenizer` must be callable (texts -> tokens), got "
                        f"{type(tokenizer).__name__}")
    return ModelBundle(ImageTower(model, spec, tokenizer), preprocess=spec, labels=None,
                       name=type(model).__name__)


def embed_images(model: nn.Module, images: Any, preprocess: Any = None) -> Tensor:
    """A model's outputs (B, D) on images in [0, 1]: resized, normalised, no gradient, on the CPU.

    The model is frozen for the call and restored as found.

    Args:
        model: Any model returning (B, D) (an embedding model, an :class:`ImageTower`).
        images: One image or a batch (anything ``explain`` takes).
        preprocess: Its preprocessing (any spec
            :func:`~opticam_widgets.inputs.preprocess.coerce_preprocess` reads).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> embed_images(net, torch.rand(2, 3, 16, 16), {"size": (16, 16)}).shape
        torch.Size([2, 5])
    """
    spec = coerce_preprocess(preprocess)
    pixels = as_image_batch(images, name="reference")
    with model_guard(model), torch.no_grad():
        x = spec.resize(pixels.to(model_device(model)))
        out = model(spec.normalize(x).to(model_dtype(model)))
        return check_logits(out, int(x.shape[0])).float().cpu()


def text_encoder(encoder: Any) -> Callable[[list[str]], Tensor] | None:
    """``texts -> (N, D)`` embeddings from what ``TextPrompt(encoder=...)`` takes, or ``None``.

    Accepted: an :func:`image_tower` bundle or its :class:`ImageTower`, or a callable
    ``texts -> (N, D)``; ``None`` gives ``None``.

    Raises:
        TypeError: a dual encoder not bound with :func:`image_tower`, or anything else.

    Example:
        >>> text_encoder(None) is None
        True
    """
    if encoder is None:
        return None
    tower = encoder.model if isinstance(encoder, ModelBundle) else encoder
    if isinstance(tower, ImageTower):
        return tower.encode_text
    if isinstance(tower, nn.Module) and (
            callable(getattr(tower, "get_text_features", None))
            or callable(getattr(tower, "encode_text", None))):
        raise TypeError(f"`encoder` is a raw {type(tower).__name__}: its text side needs its "
                        f"tokenizer; {_FIX}")
    if callable(tower) and not isinstance(tower, nn.Module):
        return tower
    raise TypeError(f"`encoder` must be an image_tower(...) bundle or a callable texts -> (N, D) "
                    f"embeddings, got {type(encoder).__name__}")


def image_encoder(encoder: Any) -> Callable[[Any], Tensor] | None:
    """``images -> (B, D)`` embeddings from what ``Similarity(encoder=...)`` takes, or ``None``.

    Accepted: an :func:`image_tower` bundle or its :class:`ImageTower`, any
    :class:`~opticam_widgets.model.bundle.ModelBundle` (its model and preprocessing), or a
    callable ``images -> (B, D)``; ``None`` gives ``None``.

    Raises:
        TypeError: a bare ``nn.Module`` (its preprocessing is unknown) or anything else.

    Example:
        >>> image_encoder(None) is None
        True
    """
    if encoder is None:
        return None
    if isinstance(encoder, ImageTower):
        return encoder.embed
    if isinstance(encoder, ModelBundle):
        bundle = encoder
        return lambda images: embed_images(bundle.model, images, bundle.preprocess)
    if isinstance(encoder, nn.Module):
        raise TypeError("`encoder` is a bare nn.Module: its preprocessing is unknown; pass "
                        "ModelBundle(model, preprocess=...) (or an image_tower bundle)")
    if callable(encoder):
        return encoder
    raise TypeError(f"`encoder` must be a ModelBundle, an image_tower bundle or a callable "
                    f"images -> (B, D) embeddings, got {type(encoder).__name__}")
