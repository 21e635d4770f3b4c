"""Non-negative least squares and the projection of a wanted map onto Opti-CAM's maps.

General tools, used by the ``"fast"`` optimiser (:mod:`~opticam_widgets.engine.optimizers`):
:func:`nnls` (Lawson–Hanson with a warm start), and :func:`project_to_logits`, the channel
logits whose map ``Σ_k softmax(u)_k A_k`` (up to the min-max normalisation) is closest to a
wanted map: non-negative weights ``w`` and an offset ``b ≥ 0`` with
``Σ_k w_k A_k − b ≈ target``, then ``u = log(w / Σw + floor / K)``.

Example:
    >>> A = torch.eye(3).view(3, 3, 1)  # channel k lights pixel k
    >>> u = project_to_logits(torch.tensor([0.0, 1.0, 0.5]), A)
    >>> torch.softmax(u, 0).argmax().item()
    1
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["WEIGHT_FLOOR", "nnls", "project_to_logits", "projection_system", "solve_projection",
           "weights_to_logits"]

#: Weight floor of the projection, relative to uniform weights (``floor / K``): keeps every
#: logit finite (1e-3 was too large: the projected map missed its target on ResNet-50).
WEIGHT_FLOOR = 1e-7


def nnls(a: Tensor, target: Tensor, start: Tensor | None = None,
         max_iter: int | None = None) -> Tensor:
    """Non-negative least squares ``min ‖a x − target‖, x ≥ 0`` (Lawson–Hanson, warm start).

    Active-set method; the passive set starts as the support of ``start`` (the previous
    step's solution: a few iterations, not one per column), each outer iteration adds the
    column most correlated with the residual and solves the passive columns only (``O(P·K)``).

    Args:
        a: (P, K) system, float64.
        target: (P,) right-hand side.
        start: (K,) a non-negative warm start, or ``None`` (zeros).
        max_iter: Cap on the iterations (default ``3 K``).

    Returns:
        (K,) non-negative solution.

    Example:
        >>> a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> nnls(a, torch.tensor([2.0, -1.0], dtype=torch.float64)).round(decimals=6).tolist()
        [2.0, 0.0]
    """
    k = a.shape[1]
    x = a.new_zeros(k) if start is None else start.clamp(min=0.0)
    passive = x > 0
    excluded = torch.zeros_like(passive)
    c = a.T @ target
    tol = 1e-10 * max(float(c.abs().max()), 1e-300)
    iterations = 0
    x, n = _passive_solve(a, target, x, passive)
    iterations += n
    while iterations < (max_iter or 3 * k):
        support = passive.nonzero().flatten()
        w = c - a.T @ (a[:, support] @ x[support])
        w[passive | excluded] = -math.inf
        j = int(w.argmax())
        if float(w[j]) <= tol:
            break
        passive[j] = True
        x, n = _passive_solve(a, target, x, passive)
        iterations += n
        if passive[j]:
            excluded.zero_()
        else:  # rounding put the column straight back: skip it until the support changes
            excluded[j] = True
    return x


def _passive_solve(a: Tensor, target: Tensor, x: Tensor, passive: Tensor) -> tuple[Tensor, int]:
    """Lawson–Hanson's inner loop: least squares on the passive columns, kept feasible.

    Updates ``passive`` in place; returns the new ``x`` and the solves it took.
    """
    solves = 0
    while bool(passive.any()):
        solves += 1
        idx = passive.nonzero().flatten()
        cols = a[:, idx]
        gram = cols.T @ cols
        gram.diagonal().add_(1e-12 * float(gram.diagonal().max().clamp(min=1e-300)))
        z = torch.linalg.solve(gram, cols.T @ target)
        if bool((z > 0).all()):
            return x.zero_().index_copy_(0, idx, z), solves
        xi, neg = x[idx], z <= 0
        gap = xi[neg] - z[neg]
        alpha = torch.where(gap > 0, xi[neg] / gap.clamp(min=1e-300), 0.0).min()
        xi = xi + alpha * (z - xi)
        xi[neg & (xi <= 1e-12 * float(xi.abs().max().clamp(min=1.0)))] = 0.0
        xi.clamp_(min=0.0)
        x = x.zero_().index_copy_(0, idx, xi)
        passive[idx[xi <= 0]] = False
    return x, solves


def projection_system(features: Tensor) -> Tensor:
    """The (P, K + 1) system of the projection: the flattened feature maps, and ``−1`` (offset).

    Example:
        >>> projection_system(torch.ones(2, 1, 3)).shape
        torch.Size([3, 3])
    """
    a = features.detach().flatten(1).double().cpu().T
    return torch.cat([a, -a.new_ones(a.shape[0], 1)], dim=1).contiguous()


def project_to_logits(target: Tensor, features: Tensor, floor: float = WEIGHT_FLOOR,
                      start: Tensor | None = None) -> Tensor | None:
    """Channel logits whose Opti-CAM map is closest to ``target``, or ``None`` if none fits.

    Solves ``min ‖Σ_k w_k A_k − b − target‖`` over ``w ≥ 0``, ``b ≥ 0`` (:func:`nnls`, sparse;
    the normalisation makes the scale of ``w`` free), then :func:`weights_to_logits`.

    Args:
        target: (P,) wanted map, values in [0, 1].
        features: (K, h, w) feature maps, ``P = h·w``.
        floor: Weight floor relative to uniform weights.
        start: (K + 1,) warm start of the solver (a previous solution), or ``None``.

    Returns:
        (K,) logits (features' device, ``target``'s dtype); ``None`` if all weights are 0.

    Example:
        >>> A = torch.eye(3).view(3, 3, 1)  # channel k lights pixel k
        >>> u = project_to_logits(torch.tensor([0.0, 1.0, 0.5]), A)
        >>> torch.softmax(u, 0).argmax().item()
        1
    """
    logits = solve_projection(projection_system(features), target, floor, start)[1]
    return None if logits is None else logits.to(device=features.device, dtype=target.dtype)


def solve_projection(system: Tensor, target: Tensor, floor: float = WEIGHT_FLOOR,
                     start: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """The solver's solution ``x`` (K + 1,) on ``system`` and its logits (CPU; ``None``: 0).

    Example:
        >>> system = projection_system(torch.eye(2).view(2, 2, 1))
        >>> x, u = solve_projection(system, torch.tensor([1.0, 0.0]))
        >>> x.shape, u.shape
        (torch.Size([3]), torch.Size([2]))
    """
    x = nnls(system, target.detach().double().cpu(), start)
    return x, weights_to_logits(x[:-1], floor)


def weights_to_logits(w: Tensor, floor: float = WEIGHT_FLOOR) -> Tensor | None:
    """Centred logits ``log(w / Σw + floor / K)`` of non-negative weights; ``None`` if all zero.

    Example:
        >>> torch.softmax(weights_to_logits(torch.tensor([3.0, 1.0]), floor=0.0), 0)
        tensor([0.7500, 0.2500])
    """
    total = float(w.sum())
    if not math.isfinite(total) or total <= 0:
        return None
    logits = torch.log(w / total + floor / w.shape[0])
    return logits - logits.mean()
