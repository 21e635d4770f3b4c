"""What ``OptiCAM.explain`` returns: maps, scores and their inputs.

A result keeps the map at the features' resolution (``low_res``), normalised so that its
bilinear resizing to any size spans [0, 1] (resizing commutes with min-max normalisation); the
full-resolution ``saliency`` is rebuilt from it on first use, and :meth:`OptiCAMResult.saliency_at`
gives the map at any other size (e.g. the size it is shown at) without going through the full
one. The input images are kept once, as given (not one float copy per row).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..inputs.images import as_float_pixels
from ..support.sizes import check_size
from .maps import low_res_saliency, resize_maps
from .optimize import OptimizationRun

__all__ = ["OptiCAMProgress", "OptiCAMResult", "ResultBuilder"]

_ROWS = 64  # rows per batch when a result's maps are built


@dataclass(frozen=True)
class OptiCAMResult:
    """The outcome of ``OptiCAM.explain`` for N (image, class) pairs.

    Tensors are on the CPU.

    Example:
        >>> result = cam.explain(image)  # doctest: +SKIP
        >>> result.saliency.shape, result.final_score >= result.initial_score  # doctest: +SKIP
        >>> result.saliency_at((120, 160)).shape  # doctest: +SKIP
        torch.Size([1, 120, 160])

    Attributes:
        saliency: (N, H, W) float32 maps in [0, 1] at the input image's resolution (computed
            from ``low_res`` on first use); high values mark what matters for the class, in
            both conventions.
        weights: (N, K) softmax channel weights of the returned map.
        target: Class index of each row.
        image_index: Index of the input image each row explains.
        scores: (N, T + 1) score of the masked image at iterations 0..T (column 0: the
            channel-mean map, uniform weights); ``NaN`` after a row stopped early while others
            went on.
        initial_score: (N,) score at iteration 0.
        final_score: (N,) score of the returned map (the best iterate: highest for
            constructive, lowest for destructive).
        original_score: (N,) score of the unmasked image.
        convention: ``"constructive"`` or ``"destructive"``.
        score: ``"logit"``, ``"probability"`` or ``"custom"``.
        layer: Name of the target layer.
        iterations: Steps taken (the maximum over rows).
        elapsed_s: Wall time of the call in seconds.
        cancelled: True when stopped through ``cancel``; the map is the best so far.
        low_res: (N, h, w) float32 map at the features' resolution, normalised so that
            :meth:`saliency_at` of any size spans [0, 1].
        size: ``(H, W)`` of the input images.
        pixels: (B, 3, H, W) the input images, kept once as given (a reference, not a copy:
            do not modify it in place while you use the result): uint8 (0-255) for an 8-bit
            photo (PIL image, file, uint8 array), else float32 in [0, 1].
        iterations_per_row: (N,) steps taken by each row (rows stop on their own with ``tol``).
        stopped_early: (N,) whether each row stopped on its plateau (``tol``).
        images: (N, 3, H, W) float32 pixels in [0, 1] of each row (built from ``pixels`` on
            access).
    """

    weights: Tensor
    target: tuple[int, ...]
    image_index: tuple[int, ...]
    scores: Tensor
    initial_score: Tensor
    final_score: Tensor
    original_score: Tensor
    convention: str
    score: str
    layer: str
    iterations: int
    elapsed_s: float
    cancelled: bool
    low_res: Tensor
    size: tuple[int, int]
    pixels: Tensor = field(repr=False)
    iterations_per_row: tuple[int, ...] = ()
    stopped_early: tuple[bool, ...] = ()
    pixels_version: int = field(default=-1, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pixels_version < 0:
            object.__setattr__(self, "pixels_version", self.pixels._version)

    def __len__(self) -> int:
        return int(self.low_res.shape[0])

    @functools.cached_property
    def saliency(self) -> Tensor:  # noqa: D102 (documented in the class)
        return self.saliency_at(self.size)

    def saliency_at(self, size: tuple[int, int], rows: Sequence[int] | None = None) -> Tensor:
        """The maps (N, H', W') at any size, float32 in [0, 1], exactly as at full size.

        ``saliency_at(result.size)`` equals ``result.saliency``; at another size it is the
        feature-resolution map resized there (bilinear), normalised as the full-size map.

        Args:
            size: ``(H', W')``.
            rows: Only these rows (e.g. ``[0]``), to keep memory low with many classes.

        Example:
            >>> result.saliency_at((60, 80)).shape  # doctest: +SKIP
            torch.Size([1, 60, 80])
        """
        size = check_size(size)
        low = self.low_res if rows is None else self.low_res[list(rows)]
        # not in place: at the features' own size the resize returns ``low_res`` itself
        return resize_maps(low, (int(size[0]), int(size[1]))).float().clamp(0.0, 1.0)

    @property
    def images(self) -> Tensor:
        """(N, 3, H, W) the pixel image each row explains (indexes ``pixels``; a new tensor)."""
        if self.pixels._version != self.pixels_version:
            raise ValueError("the input image tensor was modified in place after `explain`; "
                             "explain it again (or pass a copy, `image.clone()`)")
        return as_float_pixels(self.pixels[torch.tensor(self.image_index, dtype=torch.long)])

    def numpy(self) -> np.ndarray:
        """The maps as a float32 ndarray (N, H, W) in [0, 1]."""
        return self.saliency.numpy().astype(np.float32, copy=False)

    def masked_input(self, inverse: bool = False) -> Tensor:
        """What the model saw: ``x ⊙ S`` (N, 3, H, W), or ``x ⊙ (1 − S)`` with ``inverse``."""
        s = self.saliency[:, None]
        return self.images * ((1.0 - s) if inverse else s)


@dataclass(frozen=True)
class OptiCAMProgress:
    """State of a running optimization, handed to ``callback(step, progress)``.

    Cheap to build every step; :meth:`result` builds the result (maps at feature resolution)
    on demand.

    Attributes:
        step: Iterations done (0: the channel-mean map has just been scored).
        max_iter: Iterations requested.
        scores: (N, step + 1) score history.
        current_score: (N,) score at this step (``NaN`` for a row that stopped early).
        best_score: (N,) best score so far.
        elapsed_s: Seconds since the call started.
    """

    step: int
    max_iter: int
    scores: Tensor
    current_score: Tensor
    best_score: Tensor
    elapsed_s: float
    _make_result: Callable[[], OptiCAMResult] = field(repr=False)

    def result(self) -> OptiCAMResult:
        """The best map so far as an :class:`OptiCAMResult`."""
        return self._make_result()


@dataclass(frozen=True)
class ResultBuilder:
    """What a run's results are built from besides the run itself (one row per pair).

    Used by :meth:`~opticam_widgets.engine.explainer.OptiCAM.explain`: :meth:`result` and
    :meth:`progress` turn the run's state into what the caller sees.
    """

    pixels: Tensor
    features: Tensor  # (B, K, h, w): one per image
    target: tuple[int, ...]
    image_index: tuple[int, ...]
    original: Tensor
    layer: str
    convention: str
    score: str
    premises: int
    max_iter: int
    start: float

    def result(self, run: OptimizationRun) -> OptiCAMResult:
        """The best maps of ``run`` so far as an :class:`OptiCAMResult`."""
        s = run.summary(self.premises)
        weights = torch.softmax(s.u, dim=1)
        size = (int(self.pixels.shape[-2]), int(self.pixels.shape[-1]))
        index = torch.tensor(self.image_index, dtype=torch.long, device=self.features.device)
        with torch.no_grad():  # in batches of rows: the features are kept once per image
            low = torch.cat([low_res_saliency(weights[rows], self.features[index[rows]], size)
                             for rows in torch.arange(len(index)).split(_ROWS)])
        return OptiCAMResult(
            weights=weights.detach().float().cpu(), target=self.target,
            image_index=self.image_index, scores=s.scores, initial_score=s.scores[:, 0].clone(),
            final_score=s.best_score.float().cpu(),
            original_score=self.original.detach().float().cpu(), convention=self.convention,
            score=self.score, layer=self.layer, iterations=s.iterations,
            elapsed_s=time.perf_counter() - self.start, cancelled=s.cancelled,
            low_res=low.detach().float().cpu(), size=size, pixels=self.pixels,
            iterations_per_row=s.iterations_per_row, stopped_early=s.stopped_early)

    def progress(self, run: OptimizationRun, step: int) -> OptiCAMProgress:
        """The state handed to the user's callback after ``step``."""
        s = run.summary(self.premises)
        return OptiCAMProgress(
            step=step, max_iter=self.max_iter, scores=s.scores, current_score=s.scores[:, -1],
            best_score=s.best_score.float().cpu(), elapsed_s=time.perf_counter() - self.start,
            _make_result=lambda: self.result(run))
