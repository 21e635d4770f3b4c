"""Saliency-map maths: weighted feature sums, min-max normalisation and bilinear resizing.

One home for the arithmetic every map goes through (the explainer's loop and results, the
channel-mean baseline, the widget's preview):

* :func:`resize_maps`: bilinear resizing (``align_corners=False``, as ``F.interpolate``) done as
  two small matmuls ``Rh · cam · Rwᵀ``;
* :func:`minmax_normalize`: the min-max normalisation, applied to the small map *before*
  resizing. The rows of ``Rh`` and ``Rw`` sum to one, so resizing commutes with the affine
  normalisation, and the resized map's min and max are read from a ≈ 2h × 2w sub-grid that
  provably holds them (:func:`_extreme_rows`). A feature-resolution map normalised this way
  rebuilds the full-size map exactly, at any size;
* :func:`saliency_from_weights` (Opti-CAM's map) and :func:`channel_mean_map` (its iteration 0,
  uniform channel weights).

Example:
    >>> import torch
    >>> A = torch.zeros(1, 2, 2, 2); A[0, 0, 0, 0] = 1.0
    >>> channel_mean_map(A, (2, 2))[0]
    tensor([[1., 0.],
            [0., 0.]])
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["channel_mean_map", "low_res_saliency", "minmax_normalize", "resize_maps",
           "saliency_from_weights"]


@functools.lru_cache(maxsize=32)
def _resize_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(n_out, n_in) matrix of 1-D linear resizing, equal to ``F.interpolate`` (no corners)."""
    eye = torch.eye(n_in, dtype=dtype, device=device)[None]
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[0].T.contiguous()


@functools.lru_cache(maxsize=32)
def _extreme_rows(n_in: int, n_out: int) -> tuple[int, ...]:
    """Rows of the resize matrix where any resized signal reaches its minimum and maximum.

    Each output sample mixes two neighbouring inputs, ``(1 − t)·a + t·b``: linear in ``t``, so
    over the samples that mix the same pair the extremes sit at the smallest and the largest
    ``t``. Keeping those two rows per pair (≈ 2·n_in of n_out rows) keeps the signal's min and
    max. In 2-D, bilinear resizing is separable, so the min and max of the full map are those of
    the sub-grid of extreme rows × extreme columns.
    """
    r = _resize_matrix(n_in, n_out, torch.float64, torch.device("cpu"))
    groups: dict[tuple[int, ...], list[tuple[float, int]]] = {}
    for i in range(n_out):
        cols = tuple(int(c) for c in torch.nonzero(r[i]).flatten())
        groups.setdefault(cols, []).append((float(r[i, cols[-1]]), i))
    ends = {min(g)[1] for g in groups.values()} | {max(g)[1] for g in groups.values()}
    return tuple(sorted(ends))


@functools.lru_cache(maxsize=32)
def _resize_operators(h: int, w: int, height: int, width: int, dtype: torch.dtype,
                      device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``Rh``, ``Rwᵀ`` and their extreme-row restrictions (see :func:`_extreme_rows`)."""
    rh = _resize_matrix(h, height, dtype, device)
    rw = _resize_matrix(w, width, dtype, device)
    eh = rh[list(_extreme_rows(h, height))].contiguous()
    ew = rw[list(_extreme_rows(w, width))].T.contiguous()
    return rh, rw.T.contiguous(), eh, ew


def _operators(cam: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _resize_operators(cam.shape[-2], cam.shape[-1], int(size[0]), int(size[1]),
                             cam.dtype, cam.device)


def resize_maps(cam: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resizing of maps (N, h, w) to (N, H, W), as ``F.interpolate`` (no corners).

    Returns ``cam`` itself when it already has that size.

    Example:
        >>> resize_maps(torch.eye(2)[None], (4, 4)).shape
        torch.Size([1, 4, 4])
    """
    if tuple(cam.shape[-2:]) == tuple(size):
        return cam
    rh, rwt, _, _ = _operators(cam, size)
    return rh @ cam @ rwt


def minmax_normalize(cam: Tensor, size: tuple[int, int] | None = None,
                     constant: float = 1.0) -> Tensor:
    """Min-max normalise maps (N, h, w) so that their resizing to ``size`` spans [0, 1].

    The min and max are those of the map resized to ``size`` (read from the extreme-row
    sub-grid, not computed at full size); ``None`` uses the map's own size. A constant map
    (max == min) becomes ``constant``: 1 for Opti-CAM ("keep the whole image"), 0 for the
    gradient CAMs ("no evidence").

    Example:
        >>> minmax_normalize(torch.tensor([[[1.0, 3.0]]]))
        tensor([[[0., 1.]]])
    """
    if size is not None and tuple(cam.shape[-2:]) != tuple(size):
        _, _, eh, ewt = _operators(cam, size)
        probe = (eh @ cam @ ewt).flatten(1)
    else:
        probe = cam.flatten(1)
    lo = probe.min(dim=1).values.view(-1, 1, 1)
    span = probe.max(dim=1).values.view(-1, 1, 1) - lo
    ok = span > 1e-12
    if bool(ok.all()):  # the usual case: no select (the loop syncs every step anyway)
        return (cam - lo) * span.reciprocal()  # a multiply, not a divide
    return torch.where(ok, (cam - lo) * torch.where(ok, span, 1.0).reciprocal(), constant)


def low_res_saliency(weights: Tensor, features: Tensor, size: tuple[int, int]) -> Tensor:
    """Opti-CAM's map at the features' resolution (N, h, w), normalised for ``size``.

    ``resize_maps(low_res_saliency(w, A, size), size)`` is :func:`saliency_from_weights`.

    Example:
        >>> low_res_saliency(torch.ones(1, 1), torch.rand(1, 1, 3, 3), (9, 9)).shape
        torch.Size([1, 3, 3])
    """
    return minmax_normalize(torch.einsum("nk,nkhw->nhw", weights, features), size)


def saliency_from_weights(weights: Tensor, features: Tensor, size: tuple[int, int]) -> Tensor:
    """Opti-CAM's map: ``minmax(upsample(Σ_k w_k A_k))`` per row, shape (N, 1, H, W).

    The normalisation runs on the small map (:func:`minmax_normalize`) and the upsampling is
    two small matmuls (:func:`resize_maps`): the same values as normalising the full-size map
    (to float rounding), with no reduction, subtraction or scaling over H × W pixels, forward or
    backward. A constant map (e.g. all features zero) becomes all ones, "keep the whole image",
    instead of a division by zero.

    Args:
        weights: (N, K) channel weights.
        features: (N, K, h, w) feature maps.
        size: ``(H, W)`` of the returned maps.

    Example:
        >>> A = torch.zeros(1, 2, 2, 2); A[0, 0, 0, 0] = 1.0
        >>> saliency_from_weights(torch.tensor([[0.5, 0.5]]), A, (2, 2))[0, 0]
        tensor([[1., 0.],
                [0., 0.]])
    """
    return resize_maps(low_res_saliency(weights, features, size), size).unsqueeze(1)


def channel_mean_map(features: Tensor, size: tuple[int, int],
                     normalize_for: tuple[int, int] | None = None) -> Tensor:
    """Opti-CAM's iteration 0, uniform channel weights: ``minmax(upsample(mean_k A_k))``.

    Args:
        features: (N, K, h, w) ReLU'd feature maps (as
            :func:`~opticam_widgets.model.features.capture`
            returns them).
        size: ``(H, W)`` of the returned maps (e.g. the image's, or the size it is shown at).
        normalize_for: Normalise as the map at this size (e.g. the image's own) and show it at
            ``size``: the full-size map seen at ``size``, as
            :meth:`~opticam_widgets.engine.result.OptiCAMResult.saliency_at` does.
            ``None``: ``size``.

    Returns:
        (N, H, W) float32 maps in [0, 1] on the features' device (no autograd).

    Example:
        >>> channel_mean_map(torch.rand(2, 4, 3, 3), (6, 6)).shape
        torch.Size([2, 6, 6])
    """
    k = features.shape[1]
    uniform = torch.full((features.shape[0], k), 1.0 / k, dtype=features.dtype,
                         device=features.device)
    with torch.no_grad():
        low = low_res_saliency(uniform, features, normalize_for or size)
        return resize_maps(low, size).float().clamp_(0.0, 1.0)
