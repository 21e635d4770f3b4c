"""Embedding targets: how alike the image's embedding is to a reference, or to a text prompt.

For a model whose output is an embedding (B, D) (a retrieval or face-verification backbone, a
dual encoder's image tower: :func:`~opticam_widgets.model.dualencoder.image_tower`), what a map
keeps is the cosine similarity of the image's embedding to a reference:

* :class:`Similarity` ``(reference)``: a given vector (D,), several (N, D), or another image
  embedded by the same model, without gradient ("why are these two alike");
* :class:`TextPrompt` ``(text, encoder)``: a prompt's embedding by a dual encoder's text side
  ("where is *a red square*").

Both resolve to :class:`EmbeddingRows`: one reference per row and the input each row is of. The
score Opti-CAM keeps is the cosine similarity (differentiable, in [-1, 1]); the probability the
faithfulness metrics compare is ``(cos + 1) / 2``: the one affine map of [-1, 1] onto [0, 1],
monotone (so the map that keeps the score keeps the probability), 1/2 for an orthogonal
embedding, and needing nothing the model may not have (CLIP's softmax needs a set of rival
prompts, SigLIP's sigmoid its learnt scale and bias). No shorthand: a float vector is not a
class list, and a string is a label name; write the class.

The count rule is the class lists': one reference for every input, one per input, or several
for a single input (one row each).

Example:
    >>> import torch
    >>> out = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> target = Similarity(torch.tensor([1.0, 1.0]))
    >>> target(out)  # cosine similarity of each embedding to the reference
    tensor([0.7071, 0.7071])
    >>> target.probability(out)
    tensor([0.8536, 0.8536])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...model.dualencoder import image_encoder, text_encoder
from ...support.checks import logits_of
from .base import Context, Target

__all__ = ["EmbeddingRows", "Similarity", "TextPrompt"]


@dataclass(frozen=True, eq=False)
class EmbeddingRows(Target):
    """Resolved rows: the embedding of input ``index[r]`` against ``reference[r]``.

    A target of row-aligned outputs (R, D): ``score`` is their cosine similarity to each row's
    reference, ``probability`` its map ``(cos + 1) / 2`` onto [0, 1].

    Attributes:
        reference: (R, D) float32 CPU reference embeddings.
        index: (R,) CPU long: the input each row belongs to.
        ranks: Each row's rank among its input's rows.
        what: The description :meth:`spec` gives (the reference or the prompts).
    """

    reference: Tensor
    index: Tensor
    ranks: tuple[int, ...] = ()
    what: Any = None

    def resolve(self, output: Any, context: Context | None = None) -> EmbeddingRows:
        """Itself, once the output's width is checked against the references'."""
        _check_width(output, self.reference, context or Context())
        return self

    def score(self, output: Any) -> Tensor:
        """Cosine similarity (R,) of each row of ``output`` (R, D) to its reference."""
        out = _embeddings(output, Context())
        ref = self.reference.to(device=out.device, dtype=out.dtype)
        return torch.nn.functional.cosine_similarity(out, ref, dim=1, eps=1e-8)

    def probability(self, output: Any) -> Tensor:
        """``(cos + 1) / 2`` in [0, 1] for each row (see the module)."""
        return (self.score(output) + 1.0) / 2.0

    def subset(self, rows: Tensor) -> EmbeddingRows:
        """The rows ``rows`` (a batch of the optimisation)."""
        rows = rows.cpu()
        ranks = tuple(self.ranks[i] for i in rows.tolist()) if self.ranks else ()
        return EmbeddingRows(self.reference[rows], self.index[rows], ranks, self.what)

    def spec(self) -> Any:
        """EmbeddingRows's description (see :meth:`Target.spec`)."""
        return self.what


def _embeddings(output: Any, context: Context) -> Tensor:
    """The (B, D) embeddings in a model's output (a tensor, ``.logits``, ``{"logits": ...}``)."""
    out = logits_of(output)
    if not isinstance(out, Tensor) or out.ndim != 2 or not out.is_floating_point():
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"`{context.name}` compares embeddings (B, D), but the model returns "
                         f"{shape}; explain a model whose output is an embedding (for a dual "
                         f"encoder: image_tower(model, processor))")
    return out


def _check_width(output: Any, reference: Tensor, context: Context) -> Tensor:
    """The output's embeddings; a class-logit output or a reference of another width refused."""
    output = _embeddings(output, context)
    width = int(output.shape[1])
    if context.labels is not None and len(context.labels) == width:
        raise ValueError(f"`{context.name}` compares embeddings, but the model returns class "
                         f"logits (one per label, {width}); pass an embedding model (a backbone "
                         f"without its head, or image_tower(dual_encoder)), or explain a class")
    if int(reference.shape[1]) != width:
        raise ValueError(f"`{context.name}`'s reference has {int(reference.shape[1])} dimensions "
                         f"but the model's embedding has {width}; embed the reference with the "
                         f"same model (give the image itself), or give a ({width},) vector")
    return output


def _rows(reference: Tensor, output: Any, context: Context, what: Any) -> EmbeddingRows:
    """Rows for ``reference`` (N, D) on ``output`` (B, D): one for all, one each, or N for one."""
    output = _check_width(output, reference, context)
    count, batch = int(reference.shape[0]), int(output.shape[0])
    if count == batch or count == 1:
        index = torch.arange(batch)
        return EmbeddingRows(reference.expand(batch, -1).clone(), index, (0,) * batch, what)
    if batch == 1 and context.several_for_one:
        return EmbeddingRows(reference, torch.zeros(count, dtype=torch.long),
                             tuple(range(count)), what)
    raise ValueError(f"`{context.name}` has {count} references for {batch} {context.what}; give "
                     f"one, one per {context.one}, or several for a single {context.one}")


def _as_vectors(value: Any) -> Tensor | None:
    """A float (N, D) tensor when ``value`` is a vector (1-D) or vectors (2-D); else ``None``."""
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) for v in value):
        value = torch.tensor([float(v) for v in value])
    if isinstance(value, np.ndarray) and value.ndim in (1, 2) and value.dtype.kind == "f":
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor) or value.ndim not in (1, 2):
        return None
    if not value.is_floating_point():
        raise TypeError("`reference` must hold float embeddings (a (D,) or (N, D) vector), got "
                        f"{value.dtype}")
    vectors = value.detach().float().cpu().reshape(-1, value.shape[-1])
    if vectors.shape[1] == 0 or not bool(torch.isfinite(vectors).all()) or bool(
            (vectors.norm(dim=1) == 0).any()):
        raise ValueError("`reference` must be finite, non-zero embeddings (a cosine similarity "
                         "to a zero vector means nothing)")
    return vectors


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"<{tuple(value.shape)} tensor>"
    return f"<{type(value).__name__}>"


class _Embedded(Target):
    """A target whose rows compare each input's embedding to reference vectors (N, D)."""

    _cache: dict

    def _embed(self, context: Context) -> Tensor:
        raise NotImplementedError

    def vectors(self, context: Context | None = None) -> Tensor:
        """The reference embeddings (N, D), float32 on the CPU (computed once)."""
        if "vectors" not in self._cache:
            self._cache["vectors"] = self._embed(context or Context())
        return self._cache["vectors"]

    def resolve(self, output: Any, context: Context | None = None) -> EmbeddingRows:
        """The rows on ``output`` (see :meth:`Target.resolve` and the module's count rule)."""
        context = context or Context()
        return _rows(self.vectors(context), output, context, self.spec())

    def probabilities(self, output: Any) -> Tensor:
        """``(cos + 1) / 2`` of each input against each reference (B, N): what a viewer lists."""
        out = _embeddings(output, Context()).float()
        ref = self.vectors().to(out.device)
        cos = torch.nn.functional.normalize(out, dim=1) @ torch.nn.functional.normalize(
            ref, dim=1).T
        return (cos + 1.0) / 2.0


@dataclass(frozen=True, eq=False)
class Similarity(_Embedded):
    """Cosine similarity of each image's embedding to ``reference``.

    Args:
        reference: A vector (D,) or vectors (N, D) (a tensor, an array or a list of floats), or
            images (a path, a PIL image, a (3, H, W) or (B, 3, H, W) tensor in [0, 1]...)
            embedded by ``encoder`` without gradient.
        encoder: For an image reference: the model that embeds it, as an
            :func:`~opticam_widgets.model.dualencoder.image_tower` bundle, a
            :class:`~opticam_widgets.model.bundle.ModelBundle` (model and preprocessing: use the
            one you explain) or a callable ``images -> (B, D)``.

    Raises:
        TypeError: a reference of the wrong kind (integers, an encoder that is not one).
        ValueError: a zero or non-finite vector; when resolved: a width that is not the
            model's, a classifier's logits, an image reference without ``encoder``.

    Example:
        >>> import torch
        >>> Similarity(torch.ones(4)).resolve(torch.rand(2, 4)).index
        tensor([0, 1])
    """

    reference: Any
    encoder: Any = field(default=None, compare=False)
    _cache: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        vectors = _as_vectors(self.reference)
        if vectors is not None:
            self._cache["vectors"] = vectors
        else:
            self._cache["embed"] = image_encoder(self.encoder)

    def _embed(self, context: Context) -> Tensor:
        embed = self._cache["embed"]
        if embed is None:
            raise ValueError(f"`{context.name}` Similarity of an image needs the model that "
                             f"embeds it: pass `encoder=` (the bundle you explain, e.g. "
                             f"image_tower(clip, processor), or ModelBundle(model, "
                             f"preprocess=...)), or give the embedding vector itself")
        vectors = _as_vectors(embed(self.reference))
        if vectors is None:
            raise TypeError("`encoder` must return (B, D) float embeddings")
        return vectors

    def spec(self) -> Any:
        """Similarity's description (see :meth:`Target.spec`)."""
        ref = self._cache.get("vectors")
        return {"similarity": list(ref.shape) if ref is not None else _describe(self.reference)}

    def __repr__(self) -> str:
        return f"Similarity(reference={_describe(self.reference)})"


@dataclass(frozen=True, eq=False)
class TextPrompt(_Embedded):
    """Cosine similarity of each image's embedding to a text prompt's (a dual encoder).

    Args:
        text: A prompt, or several (one per image, or several for a single image).
        encoder: The dual encoder's text side: the
            :func:`~opticam_widgets.model.dualencoder.image_tower` bundle you explain (or a
            callable ``texts -> (N, D)``).

    Raises:
        TypeError: ``text`` not a string or strings; an ``encoder`` that is not one.
        ValueError: an empty prompt; when resolved: no encoder, a width that is not the model's.

    Example:
        >>> import torch
        >>> words = {"red": [1.0, 0.0], "blue": [0.0, 1.0]}
        >>> prompt = TextPrompt("red", lambda texts: torch.tensor([words[t] for t in texts]))
        >>> prompt(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
        tensor([1.0000, 0.7071])
    """

    text: str | tuple[str, ...]
    encoder: Any = field(default=None, compare=False)
    _cache: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        texts = [self.text] if isinstance(self.text, str) else self.text
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"`text` must be a prompt (str) or a list of prompts, got "
                            f"{type(self.text).__name__}")
        if not texts or not all(t.strip() for t in texts):
            raise ValueError("`text` must be non-empty prompt(s), e.g. 'a red square'")
        if not isinstance(self.text, str):
            object.__setattr__(self, "text", tuple(texts))
        self._cache["encode"] = text_encoder(self.encoder)

    @property
    def texts(self) -> tuple[str, ...]:
        """The prompts, as a tuple."""
        return (self.text,) if isinstance(self.text, str) else tuple(self.text)

    def _embed(self, context: Context) -> Tensor:
        encode: Callable[[list[str]], Tensor] | None = self._cache["encode"]
        if encode is None:
            raise ValueError(f"`{context.name}` TextPrompt needs a text encoder: pass `encoder=` "
                             f"(the image_tower(model, processor) bundle you explain)")
        vectors = _as_vectors(encode(list(self.texts)))
        if vectors is None or vectors.shape[0] != len(self.texts):
            raise TypeError("the text encoder must return one float embedding per prompt")
        return vectors

    def spec(self) -> Any:
        """TextPrompt's description (see :meth:`Target.spec`)."""
        return {"text": list(self.texts)}

    def __repr__(self) -> str:
        return f"TextPrompt(text={self.text!r})"
