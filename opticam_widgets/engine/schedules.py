"""Step rules of the optimisation: the paper's Adam, and ``"fast"``, Adam in map space.

The paper (``schedule="paper"``, the default) runs Adam on the channel logits ``u`` (lr 0.2,
``u = 0`` at the start). Adam moves every logit by about ``lr`` per step, whatever the map
needs; Opti-CAM's best maps put most of the weight on a few channels, whose logits must climb
by several units, so the score keeps rising slowly for many steps.

``schedule="fast"`` (:class:`MapSpaceAdam`) takes its steps on the map instead: the loss
depends on ``u`` only through the low-resolution normalised map ``m(u)``
(:func:`~opticam_widgets.engine.maps.low_res_saliency`, ``P = h·w`` values), so each step

1. recovers the map gradient ``g_m`` from the engine's ``g_u = Jᵀ g_m`` (``J = ∂m/∂u``, a
   P × K Jacobian computed on the small map alone, no model pass) by a damped least-squares
   solve ``g_m = (J Jᵀ + δ I)⁻¹ J g_u``;
2. takes an Adam step ``d`` on the map (moments of ``g_m`` per pixel; ``lr`` is the step in
   units of the map's [0, 1] range);
3. projects the target ``clip(m + d, 0, 1)`` back onto Opti-CAM's maps: non-negative channel
   weights ``w`` and an offset ``b ≥ 0`` with ``Σ_k w_k A_k − b ≈ target`` (non-negative least
   squares, :func:`nnls`, warm-started at the previous step's solution), and
   ``u = log(w / Σw + floor / K)``.

Every map scored is an Opti-CAM map (softmax weights over the channels). Each step costs one
model pass, as the paper's, plus a P × K Jacobian, a P × P solve and a warm-started
non-negative least squares: a few ms on one CPU thread at ``h·w = 7²``, K ≈ 1–2 k.
When the clipped target equals the map (a corner of the box ``[0, 1]^P`` where the score
still pushes outward: no map step can move, e.g. ResNet-50 on "motorcycle"), the row takes,
once, ``RESTART_STEPS`` paper-style Adam steps on ``u`` from there at ``RESTART_LR × lr``
(Adam's per-logit steps leave the corner), then map steps again.
Measured in ``benchmarks/bench_time_to_quality.py``.

Example:
    >>> import torch
    >>> feats = torch.rand(1, 8, 3, 3)
    >>> make = schedule_factory("fast", 0.2, feats, (12, 12))
    >>> opt, sched = make(torch.zeros(1, 8, requires_grad=True))
    >>> type(opt).__name__, opt.defaults["lr"], sched
    ('MapSpaceAdam', 0.12, None)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..support.defaults import SCHEDULES
from .maps import low_res_saliency
from .optimize import OptimizerFactory, adam_factory, lr_scheduler

__all__ = ["FAST_BETAS", "FAST_MAP_STEP", "RESTART_LR", "RESTART_STEPS", "SCHEDULES",
           "WEIGHT_FLOOR", "MapSpaceAdam", "map_gradient", "map_jacobian", "nnls",
           "project_to_logits", "projection_system", "schedule_factory", "weights_to_logits"]

#: Map step of ``schedule="fast"`` per unit of ``lr`` (lr 0.2: 0.12 of the map's range a step).
FAST_MAP_STEP = 0.6
#: Adam's moment decays in map space (``schedule="fast"``): less momentum than Adam's
#: default (0.9, 0.999); measured in ``benchmarks/results/time_to_quality.md``.
FAST_BETAS = (0.7, 0.99)
#: Weight floor of the projection, relative to uniform weights (``floor / K``): keeps every
#: logit finite (1e-3 was too large: the projected map missed its target on ResNet-50).
WEIGHT_FLOOR = 1e-7
#: Escape of a stalled row: Adam steps on ``u`` at ``RESTART_LR × lr`` (Adam moves each logit
#: by ≈ its lr a step: up to 80 × lr in all), then map steps again.
RESTART_STEPS = 8
RESTART_LR = 10.0
#: Damping of the map-gradient solve, relative to the mean diagonal of ``J Jᵀ``.
DAMPING = 1e-6


def map_jacobian(u: Tensor, features: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The normalised low-resolution map of one row and its Jacobian with respect to ``u``.

    Args:
        u: (K,) channel logits.
        features: (K, h, w) feature maps of the row's image.
        size: ``(H, W)`` the model sees (the normalisation is that of the map at this size).

    Returns:
        ``(m, J)``: the map (P,) with ``P = h·w`` and ``J = ∂m/∂u`` (P, K).

    Example:
        >>> m, J = map_jacobian(torch.zeros(4), torch.rand(4, 2, 2), (2, 2))
        >>> m.shape, J.shape
        (torch.Size([4]), torch.Size([4, 4]))
    """
    feats = features.to(u.dtype)[None]

    def flat_map(logits: Tensor) -> Tensor:
        return low_res_saliency(torch.softmax(logits, dim=0)[None], feats, size).flatten()

    with torch.enable_grad():
        jac = torch.autograd.functional.jacobian(flat_map, u.detach(), vectorize=True)
    with torch.no_grad():
        return flat_map(u.detach()), jac


def map_gradient(jac: Tensor, grad_u: Tensor, damping: float = DAMPING) -> Tensor:
    """The map gradient ``g_m`` (P,) from ``g_u = Jᵀ g_m`` (K,), by damped least squares.

    Pixels the map cannot move at first order (its min and max, which the normalisation pins
    to 0 and 1) get a zero gradient.

    Example:
        >>> J = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
        >>> map_gradient(J, J.T @ torch.tensor([3.0, -1.0]))
        tensor([ 3.0000, -1.0000])
    """
    j = jac.double()
    gram = j @ j.T
    scale = float(gram.diagonal().mean())
    if not math.isfinite(scale) or scale <= 0:
        return torch.zeros(jac.shape[0], dtype=jac.dtype, device=jac.device)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    g = torch.linalg.solve(gram + damping * scale * eye, j @ grad_u.double())
    return g.to(jac.dtype)


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
    logits = _project(projection_system(features), target, floor, start)[1]
    return None if logits is None else logits.to(device=features.device, dtype=target.dtype)


def _project(system: Tensor, target: Tensor, floor: float,
             start: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The solver's solution ``x`` (K + 1,) on ``system`` and its logits (CPU; ``None``: 0)."""
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


class MapSpaceAdam(torch.optim.Optimizer):
    """Adam on the low-resolution map, projected back onto channel logits (``"fast"``).

    Drives the (R, K) logits ``u`` of an :class:`~opticam_widgets.engine.optimize.OptimizationRun`:
    :meth:`step` reads ``u.grad`` (of the loss) and writes ``u``; rows with a zero gradient
    (stopped early) are left as they are; a stalled row escapes once (module docstring).

    Args:
        u: The (R, K) leaf tensor of logits.
        features: (B, K, h, w) feature maps of the images.
        size: ``(H, W)`` the model sees.
        lr: Map step per pixel, in units of the map's [0, 1] range.
        betas: Adam's moment decays.
        eps: Adam's denominator guard.
        image_of_row: (R,) image of each row; ``None``: row ``i`` is image ``i``.
        floor: Weight floor of the projection (:func:`project_to_logits`).

    Example:
        >>> u = torch.zeros(1, 4, requires_grad=True)
        >>> opt = MapSpaceAdam(u, torch.rand(1, 4, 3, 3), (6, 6))
        >>> u.grad = torch.randn(1, 4)
        >>> opt.step(); u.shape
        torch.Size([1, 4])
    """

    def __init__(self, u: Tensor, features: Tensor, size: tuple[int, int], lr: float = 0.1,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 image_of_row: Tensor | None = None, floor: float = WEIGHT_FLOOR) -> None:
        if u.ndim != 2 or features.ndim != 4 or features.shape[1] != u.shape[1]:
            raise ValueError(f"`u` (R, K) and `features` (B, K, h, w) must agree on K; got "
                             f"{tuple(u.shape)} and {tuple(features.shape)}")
        super().__init__([u], {"lr": float(lr), "betas": betas, "eps": eps})
        self.features = features.detach()
        self.size = (int(size[0]), int(size[1]))
        self.image_of_row = None if image_of_row is None else image_of_row.tolist()  # no sync
        self.floor = float(floor)
        self._systems: dict[int, Tensor] = {}

    def _image(self, row: int) -> int:
        return row if self.image_of_row is None else self.image_of_row[row]

    def _system(self, image: int) -> Tensor:
        """The projection system of an image, built once per run."""
        if image not in self._systems:
            self._systems[image] = projection_system(self.features[image])
        return self._systems[image]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # noqa: D102
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for u in group["params"]:
                if u.grad is not None:
                    self._step_rows(u, group)
        return loss

    def _step_rows(self, u: Tensor, group: dict[str, Any]) -> None:
        """One projected map-space Adam step for every row with a non-zero gradient."""
        state = self.state[u]
        if not state:
            pixels = self.features.shape[-2] * self.features.shape[-1]
            state["m1"] = u.new_zeros(u.shape[0], pixels)
            state["m2"] = u.new_zeros(u.shape[0], pixels)
            state["t"] = [0] * u.shape[0]
            state["x"] = [None] * u.shape[0]
            state["restart"] = {}  # row: [Adam's moments, its t]; None: spent
        (b1, b2), m1, m2 = group["betas"], state["m1"], state["m2"]
        moving = torch.nonzero(u.grad.abs().sum(dim=1) > 0).flatten().tolist()
        for row in moving:
            if state["restart"].get(row) is not None:
                self._adam_on_u(u, row, u.grad[row], group["lr"] / FAST_MAP_STEP)
                continue
            image = self._image(row)
            m, jac = map_jacobian(u[row], self.features[image], self.size)
            g = map_gradient(jac, u.grad[row])
            if not bool(torch.isfinite(g).all()):
                continue
            state["t"][row] += 1
            t = state["t"][row]
            m1[row].mul_(b1).add_(g, alpha=1 - b1)
            m2[row].mul_(b2).addcmul_(g, g, value=1 - b2)
            step = (m1[row] / (1 - b1 ** t)) / ((m2[row] / (1 - b2 ** t)).sqrt() + group["eps"])
            target = (m - group["lr"] * step).clamp_(0.0, 1.0)
            if row not in state["restart"] and bool((target - m).abs().max() < 1e-4):
                g0 = u.grad[row]  # stalled on the box: Adam steps on u from here (once)
                state["restart"][row] = [torch.zeros_like(g0), torch.zeros_like(g0), 0]
                state["t"][row], state["x"][row] = 0, None
                m1[row].zero_()
                m2[row].zero_()
                self._adam_on_u(u, row, g0, group["lr"] / FAST_MAP_STEP)
                continue
            x, logits = _project(self._system(image), target, self.floor, state["x"][row])
            if logits is not None:
                state["x"][row] = x
                u[row] = logits.to(device=u.device, dtype=u.dtype)

    def _adam_on_u(self, u: Tensor, row: int, grad: Tensor, lr: float) -> None:
        """One Adam (0.9, 0.999) step on the row's logits at ``RESTART_LR × lr`` (explainer lr)."""
        r = self.state[u]["restart"][row]  # [first moment, second moment, steps taken]
        r[2] += 1
        r[0].mul_(0.9).add_(grad, alpha=0.1)
        r[1].mul_(0.999).addcmul_(grad, grad, value=0.001)
        den = (r[1] / (1 - 0.999 ** r[2])).sqrt() + 1e-8
        u[row] -= RESTART_LR * lr * (r[0] / (1 - 0.9 ** r[2])) / den
        if r[2] == RESTART_STEPS:
            self.state[u]["restart"][row] = None  # map steps from here on, no second restart


def schedule_factory(schedule: str, lr: float, features: Tensor, size: tuple[int, int],
                     image_of_row: Tensor | None = None, lr_schedule: str | None = None,
                     steps: int = 1) -> OptimizerFactory:
    """The ``make_optimizer`` of a schedule, for :meth:`OptimizationRun.start`.

    Args:
        schedule: ``"paper"`` (Adam on the logits at ``lr``, as
            :func:`~opticam_widgets.engine.optimize.adam_factory`) or ``"fast"``
            (:class:`MapSpaceAdam` with a map step of ``FAST_MAP_STEP × lr``).
        lr: The explainer's learning rate.
        features: (B, K, h, w) feature maps of the run's images.
        size: ``(H, W)`` the model sees.
        image_of_row: (R,) image of each row (``None``: row ``i`` is image ``i``).
        lr_schedule: ``None`` or ``"cosine"`` (decay of the step to 0 at ``steps``).
        steps: Steps of the run (for the cosine decay).

    Raises:
        ValueError: an unknown ``schedule``.

    Example:
        >>> make = schedule_factory("paper", 0.2, torch.rand(1, 4, 2, 2), (4, 4))
        >>> type(make(torch.zeros(1, 4, requires_grad=True))[0]).__name__
        'Adam'
    """
    if schedule == "paper":
        return adam_factory(lr, lr_schedule, steps)
    if schedule != "fast":
        raise ValueError(f"`schedule` must be one of {', '.join(map(repr, SCHEDULES))}; got "
                         f"{schedule!r}")

    def make(u: Tensor) -> tuple[torch.optim.Optimizer, Any]:
        opt = MapSpaceAdam(u, features, size, lr=FAST_MAP_STEP * lr, betas=FAST_BETAS,
                           image_of_row=image_of_row)
        return opt, lr_scheduler(opt, lr_schedule, steps)

    return make
