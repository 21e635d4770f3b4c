"""The optimisers of Opti-CAM's channel weights, by name: :data:`OPTIMIZERS`.

A new optimiser is one entry: a function ``setup -> make_optimizer`` registered under its name
with :func:`register_optimizer` (``setup`` is an :class:`OptimizerSetup`; ``make_optimizer(u)
-> (optimizer, scheduler or None)`` is what
:meth:`~opticam_widgets.engine.optimize.OptimizationRun.start` calls), with its own stopping
rule (``tol``, ``patience``: :data:`OPTIMIZER_STOPPING`, what ``OptiCAMSettings(tol="auto",
patience="auto")``, the defaults, run with). The name is then accepted by
``OptiCAMSettings(optimizer=...)``.

``"paper"`` has no stopping rule of its own (``tol=None``: every ``max_iter`` step, as the
paper). ``"fast"`` stops each row on its own plateau (:data:`FAST_TOL`, :data:`FAST_PATIENCE`),
so choosing it gives its speed without lowering ``max_iter``.

``"paper"`` runs Adam on the channel logits ``u`` (lr 0.2, ``u = 0`` at the start), as the
paper. Adam moves every logit by about ``lr`` per step whatever the map needs; the best maps
put most of the weight on a few channels, whose logits must climb by several units, so the
score keeps rising slowly for many steps.

``"fast"`` (:class:`MapSpaceAdam`) takes its steps on the map instead: the loss depends on
``u`` only through the low-resolution normalised map ``m(u)``
(:func:`~opticam_widgets.engine.maps.low_res_saliency`, ``P = h·w`` values), so each step

1. recovers the map gradient ``g_m`` from the engine's ``g_u = Jᵀ g_m`` (``J = ∂m/∂u``, a
   P × K Jacobian of the small map alone, no model pass) by a damped least-squares solve
   ``g_m = (J Jᵀ + δ I)⁻¹ J g_u``;
2. takes an Adam step ``d`` on the map (moments of ``g_m`` per pixel; ``lr`` is the step in
   units of the map's [0, 1] range);
3. projects ``clip(m + d, 0, 1)`` back onto Opti-CAM's maps (non-negative least squares,
   :mod:`~opticam_widgets.engine.nnls`, warm-started at the previous step's solution).

Every map scored is an Opti-CAM map. Each step costs one model pass, as the paper's, plus the
Jacobian, a P × P solve and the warm-started projection. When the clipped target equals the
map (a corner of ``[0, 1]^P`` where the score still pushes outward), the row takes, once,
``RESTART_STEPS`` Adam steps on ``u`` at ``RESTART_LR × lr``, then map steps again. Measured
in ``benchmarks/bench_time_to_quality.py`` (figures in ``benchmarks/results/``).

Example:
    >>> import torch
    >>> setup = OptimizerSetup(lr=0.2, features=torch.rand(1, 8, 3, 3), size=(12, 12))
    >>> opt, sched = optimizer_factory("fast", setup)(torch.zeros(1, 8, requires_grad=True))
    >>> type(opt).__name__, opt.defaults["lr"], sched
    ('MapSpaceAdam', 0.12, None)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..support.checks import check_choice, check_tol
from ..support.defaults import DEFAULT_PATIENCE
from .maps import low_res_saliency
from .nnls import WEIGHT_FLOOR, projection_system, solve_projection
from .optimize import OptimizerFactory, adam_factory, lr_scheduler

__all__ = ["ADAM_BETAS", "ADAM_EPS", "FAST_BETAS", "FAST_MAP_STEP", "FAST_PATIENCE", "FAST_TOL",
           "OPTIMIZERS", "OPTIMIZER_STOPPING", "RESTART_LR", "RESTART_STEPS", "MapSpaceAdam",
           "OptimizerSetup", "adam_moments", "map_gradient", "map_jacobian",
           "optimizer_factory", "optimizer_stopping", "register_optimizer"]

#: Adam's moment decays (torch's defaults): the restart steps of ``"fast"``.
ADAM_BETAS = (0.9, 0.999)
#: Adam's denominator guard.
ADAM_EPS = 1e-8
#: Map step of ``"fast"`` per unit of ``lr`` (lr 0.2: 0.12 of the map's range a step).
FAST_MAP_STEP = 0.6
#: Adam's moment decays in map space (``"fast"``): less momentum than :data:`ADAM_BETAS`;
#: measured in ``benchmarks/results/time_to_quality.md``.
FAST_BETAS = (0.7, 0.99)
#: Escape of a stalled row: Adam steps on ``u`` at ``RESTART_LR × lr`` (Adam moves each logit
#: by ≈ its lr a step: up to 80 × lr in all), then map steps again.
RESTART_STEPS = 8
RESTART_LR = 10.0
#: Damping of the map-gradient solve, relative to the mean diagonal of ``J Jᵀ``.
DAMPING = 1e-6
#: ``"fast"``'s own stopping: a row stops when its best score gained at most
#: ``FAST_TOL × |best|`` over its last :data:`FAST_PATIENCE` steps (measured in
#: ``benchmarks/results/time_to_quality.md``: every photo at 95% of the paper run's gain first).
FAST_TOL = 1e-3
#: See :data:`FAST_TOL`.
FAST_PATIENCE = 5


@dataclass(frozen=True)
class OptimizerSetup:
    """What an optimiser is built from: the run's step size, feature maps and length.

    Attributes:
        lr: The settings' learning rate.
        features: (B, K, h, w) feature maps of the run's images.
        size: ``(H, W)`` the model sees.
        image_of_row: (R,) image of each row (``None``: row ``i`` is image ``i``).
        lr_schedule: ``None`` or ``"cosine"`` (decay of the step to 0 at ``steps``).
        steps: Steps of the run.
    """

    lr: float
    features: Tensor
    size: tuple[int, int]
    image_of_row: Tensor | None = None
    lr_schedule: str | None = None
    steps: int = 1


#: ``name -> factory(setup) -> make_optimizer``: the accepted ``optimizer`` names.
OPTIMIZERS: dict[str, Callable[[OptimizerSetup], OptimizerFactory]] = {}
#: ``name -> (tol, patience)``: each optimiser's own stopping rule (``tol=None``: none, every
#: step runs), what the settings' ``tol="auto"`` / ``patience="auto"`` resolve to.
OPTIMIZER_STOPPING: dict[str, tuple[float | None, int]] = {}


def register_optimizer(name: str, *, tol: float | None = None, patience: int = DEFAULT_PATIENCE
                       ) -> Callable[[Callable[[OptimizerSetup], OptimizerFactory]],
                                     Callable[[OptimizerSetup], OptimizerFactory]]:
    """Decorator: register ``factory(setup) -> make_optimizer`` under ``name``.

    Args:
        name: The ``optimizer`` name.
        tol: The optimiser's own stopping tolerance (``None``: it runs every step), used when
            the settings say ``tol="auto"`` (the default).
        patience: Its own stopping window, used when the settings say ``patience="auto"``.

    Example:
        >>> @register_optimizer("sgd", tol=1e-2, patience=3)
        ... def sgd(setup):
        ...     return lambda u: (torch.optim.SGD([u], lr=setup.lr), None)
        >>> "sgd" in OPTIMIZERS, optimizer_stopping("sgd")
        (True, (0.01, 3))
        >>> del OPTIMIZERS["sgd"], OPTIMIZER_STOPPING["sgd"]
    """
    tol, patience = check_tol(tol, patience)

    def add(factory: Callable[[OptimizerSetup], OptimizerFactory]
            ) -> Callable[[OptimizerSetup], OptimizerFactory]:
        OPTIMIZERS[name] = factory
        OPTIMIZER_STOPPING[name] = (tol, patience)
        return factory

    return add


def optimizer_stopping(name: str) -> tuple[float | None, int]:
    """``(tol, patience)``: the optimiser's own stopping rule (``tol=None``: none).

    Raises:
        ValueError: ``name`` is not registered (the names listed).

    Example:
        >>> optimizer_stopping("paper"), optimizer_stopping("fast")
        ((None, 10), (0.001, 5))
    """
    return OPTIMIZER_STOPPING[check_choice("optimizer", name, tuple(OPTIMIZERS))]


def optimizer_factory(name: str, setup: OptimizerSetup) -> OptimizerFactory:
    """The ``make_optimizer`` of the optimiser ``name`` for this run.

    Raises:
        ValueError: ``name`` is not registered (the names listed).

    Example:
        >>> setup = OptimizerSetup(lr=0.2, features=torch.rand(1, 4, 2, 2), size=(4, 4))
        >>> type(optimizer_factory("paper", setup)(torch.zeros(1, 4, requires_grad=True))[0])
        <class 'torch.optim.adam.Adam'>
    """
    return OPTIMIZERS[check_choice("optimizer", name, tuple(OPTIMIZERS))](setup)


@register_optimizer("paper")
def paper_adam(setup: OptimizerSetup) -> OptimizerFactory:
    """The paper's optimiser: Adam on the channel logits at ``lr`` (:func:`adam_factory`)."""
    return adam_factory(setup.lr, setup.lr_schedule, setup.steps)


@register_optimizer("fast", tol=FAST_TOL, patience=FAST_PATIENCE)
def fast_map_adam(setup: OptimizerSetup) -> OptimizerFactory:
    """``"fast"``: :class:`MapSpaceAdam` with a map step of ``FAST_MAP_STEP × lr``."""
    def make(u: Tensor) -> tuple[torch.optim.Optimizer, Any]:
        opt = MapSpaceAdam(u, setup.features, setup.size, lr=FAST_MAP_STEP * setup.lr,
                           betas=FAST_BETAS, image_of_row=setup.image_of_row)
        return opt, lr_scheduler(opt, setup.lr_schedule, setup.steps)

    return make


def adam_moments(m1: Tensor, m2: Tensor, grad: Tensor, t: int,
                 betas: tuple[float, float], eps: float = ADAM_EPS) -> tuple[Tensor, Tensor]:
    """Adam's moments, updated in place with ``grad``; the step is ``mean / den``.

    Returns:
        ``(mean, den)``: the bias-corrected first moment and ``sqrt(v̂) + eps`` at step ``t``.

    Example:
        >>> m1, m2 = torch.zeros(2), torch.zeros(2)
        >>> mean, den = adam_moments(m1, m2, torch.tensor([1.0, -2.0]), 1, ADAM_BETAS)
        >>> (mean / den).round(decimals=4)
        tensor([ 1., -1.])
    """
    b1, b2 = betas
    m1.mul_(b1).add_(grad, alpha=1 - b1)
    m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    return m1 / (1 - b1 ** t), (m2 / (1 - b2 ** t)).sqrt() + eps


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
                 betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS,
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
        m1, m2 = state["m1"], state["m2"]
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
            mean, den = adam_moments(m1[row], m2[row], g, state["t"][row], group["betas"],
                                     group["eps"])
            target = (m - group["lr"] * (mean / den)).clamp_(0.0, 1.0)
            if row not in state["restart"] and bool((target - m).abs().max() < 1e-4):
                g0 = u.grad[row]  # stalled on the box: Adam steps on u from here (once)
                state["restart"][row] = [torch.zeros_like(g0), torch.zeros_like(g0), 0]
                state["t"][row], state["x"][row] = 0, None
                m1[row].zero_()
                m2[row].zero_()
                self._adam_on_u(u, row, g0, group["lr"] / FAST_MAP_STEP)
                continue
            x, logits = solve_projection(self._system(image), target, self.floor, state["x"][row])
            if logits is not None:
                state["x"][row] = x
                u[row] = logits.to(device=u.device, dtype=u.dtype)

    def _adam_on_u(self, u: Tensor, row: int, grad: Tensor, lr: float) -> None:
        """One Adam step (:data:`ADAM_BETAS`) on the row's logits at ``RESTART_LR × lr``."""
        r = self.state[u]["restart"][row]  # [first moment, second moment, steps taken]
        r[2] += 1
        mean, den = adam_moments(r[0], r[1], grad, r[2], ADAM_BETAS)
        u[row] -= RESTART_LR * lr * mean / den
        if r[2] == RESTART_STEPS:
            self.state[u]["restart"][row] = None  # map steps from here on, no second restart
