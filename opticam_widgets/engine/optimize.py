"""Opti-CAM's optimisation loop as a small run-state object.

A run optimises the channel logits ``u`` (R, K) of R rows at once (a row is one (image,
target) pair, or one trajectory of it when several start points are tried). :class:`Problem`
holds what is fixed (features, the target's resolved rows, the masking, the model),
:class:`OptimizationRun` what changes (``u``, the best iterate of each row, the score history,
which rows are still running).

Each step scores ``x ⊙ S(u)`` for the running rows, records the scores (``NaN`` for rows that
no longer run), keeps each row's best ``u``, and takes one optimiser step.

Per-row early stopping: with ``tol`` set, a row stops when, over its last ``patience`` steps,
its best score gained at most ``tol × |best|``; it leaves the batch (its map is frozen at its
best and the model no longer runs on it), and the others go on. A row therefore gets the same
result in a batch as alone (to float rounding of the batched model).

Hooks for other optimisers (:mod:`opticam_widgets.engine.optimizers`): the start point and the
optimiser are arguments of :meth:`OptimizationRun.start`:

* ``init_u``: the (R, K) start logits (:func:`initial_logits` gives the default: zeros, i.e.
  uniform weights, plus seeded noise for extra trajectories);
* ``make_optimizer(u) -> (optimizer, scheduler or None)``: called once with the leaf ``u``
  (:func:`adam_factory` gives the default: Adam, fused where available, optional cosine decay).
  The optimiser always sees the full ``u``; rows that stopped get zero gradients and their
  best iterate is kept apart, so whatever the optimiser does to them afterwards is ignored.

Example:
    >>> import torch
    >>> u = initial_logits(rows=2, premises=1, channels=3, seed=0, device=torch.device("cpu"))
    >>> u.shape, float(u.abs().sum())
    (torch.Size([2, 3]), 0.0)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..support.checks import check_score
from .maps import saliency_from_weights
from .masking import Masker
from .targets import Rows

__all__ = ["SCORE_FNS", "OptimizationRun", "OptimizerFactory", "Problem", "RowBatch",
           "RunSummary", "ScoreFn", "adam_factory", "initial_logits", "lr_scheduler"]

#: ``(output of the rows, rows) -> (N,)`` scores to maximise (constructive) or minimise
#: (destructive); ``rows``: the target's resolved rows (:mod:`~opticam_widgets.engine.targets`).
ScoreFn = Callable[[Any, Rows], Tensor]
#: ``make_optimizer(u) -> (optimizer, scheduler or None)``, see the module docstring.
OptimizerFactory = Callable[[Tensor], tuple[torch.optim.Optimizer, Any]]


def _score_logit(output: Any, rows: Rows) -> Tensor:
    return rows.score(output)


def _score_probability(output: Any, rows: Rows) -> Tensor:
    return rows.probability(output)


#: The named scores of ``OptiCAM(score=...)``: the rows' score (a class's logit) or their
#: probability (a class's softmax, a label's sigmoid).
SCORE_FNS: dict[str, ScoreFn] = {"logit": _score_logit, "probability": _score_probability}


def adam_factory(lr: float, schedule: str | None = None, steps: int = 1) -> OptimizerFactory:
    """The default optimiser: Adam at ``lr`` (fused kernel when available), cosine decay option.

    Example:
        >>> opt, sched = adam_factory(0.2)(torch.zeros(1, 3, requires_grad=True))
        >>> opt.defaults["lr"], sched
        (0.2, None)
    """
    def make(u: Tensor) -> tuple[torch.optim.Optimizer, Any]:
        try:
            opt = torch.optim.Adam([u], lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            opt = torch.optim.Adam([u], lr=lr)
        return opt, lr_scheduler(opt, schedule, steps)

    return make


def lr_scheduler(opt: torch.optim.Optimizer, schedule: str | None, steps: int) -> Any:
    """``None`` (a constant step) or, for ``"cosine"``, a decay of the step to 0 at ``steps``.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> type(lr_scheduler(opt, "cosine", 10)).__name__, lr_scheduler(opt, None, 10)
        ('CosineAnnealingLR', None)
    """
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    return None


def initial_logits(rows: int, premises: int, channels: int, seed: int,
                   device: torch.device) -> Tensor:
    """Default start point (rows · premises, channels): zeros, seeded noise for extra premises.

    Row ``i · premises + j`` is trajectory ``j`` of pair ``i``; trajectory 0 starts from uniform
    weights (the channel-mean map), the others from ``randn`` drawn from a private generator.
    """
    u = torch.zeros(rows * premises, channels, dtype=torch.float32, device=device)
    if premises > 1:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.randn(rows, premises - 1, channels, generator=gen,
                            dtype=torch.float32).to(device)
        u.view(rows, premises, channels)[:, 1:] = noise
    return u


@dataclass(frozen=True)
class Problem:
    """What a run explains, fixed for its duration: R rows over B images.

    Image-level data (features, masking constants) is kept once per image and gathered for a
    batch of rows only when that batch runs, so memory grows with the rows of one batch, not
    with all R rows.

    Attributes:
        model: ``normalized input -> output``: the model (or its folded copy) at the call's
            precision and dtype.
        features: (B, K, h, w) ReLU'd feature maps of the images.
        rows: The R rows to explain (:class:`~opticam_widgets.engine.targets.Rows`).
        masker: The masking of the B images.
        score_fn: ``(output of some rows, those rows) -> (n,)``.
        size: ``(H, W)`` the model sees.
        sign: +1 to maximise the score (constructive), −1 to minimise it (destructive).
        image_of_row: (R,) image of each row on the features' device; ``None``:
            ``rows.index``.
    """

    model: Callable[[Tensor], Any]
    features: Tensor
    rows: Rows
    masker: Masker
    score_fn: ScoreFn
    size: tuple[int, int]
    sign: float
    image_of_row: Tensor | None = None

    def batch(self, rows: Tensor | None) -> RowBatch:
        """The data of some rows (``None``: all rows), gathered for one forward pass."""
        image_of_row = self.row_images
        if rows is None:
            rows = torch.arange(image_of_row.shape[0], device=image_of_row.device)
        images = image_of_row[rows]
        return RowBatch(self, self.features[images], self.rows.subset(rows.cpu()),
                        self.masker.subset(images))

    @property
    def row_images(self) -> Tensor:
        """(R,) image of each row, on the features' device."""
        return (self.rows.index.to(self.features.device) if self.image_of_row is None
                else self.image_of_row)


@dataclass(frozen=True)
class RowBatch:
    """Some rows of a :class:`Problem`, ready to be scored."""

    problem: Problem
    features: Tensor
    rows: Rows
    masker: Masker

    def score(self, u: Tensor, grad: bool, step: int) -> Tensor:
        """Scores (n,) of the masked images for channel logits ``u`` (n, K), checked."""
        p = self.problem
        with torch.set_grad_enabled(grad):
            s_map = saliency_from_weights(torch.softmax(u, dim=1), self.features, p.size)
            output = p.model(self.masker(s_map))
            score = p.score_fn(output, self.rows)
        return check_score(score, output, u.shape[0], grad=grad,
                           where=f"a masked image at step {step}")


@dataclass(frozen=True)
class RunSummary:
    """The best iterate of each (image, class) pair, its best trajectory picked.

    Attributes:
        u: (N, K) best channel logits.
        best_score: (N,) best score (in the score's own sign).
        scores: (N, T + 1) score history (``NaN`` after a row stopped), on the CPU.
        iterations_per_row: Steps taken by each pair.
        stopped_early: Whether each pair stopped on its plateau.
        iterations: Steps taken by the run (the maximum over rows).
        cancelled: Whether the run was cancelled.
    """

    u: Tensor
    best_score: Tensor
    scores: Tensor
    iterations_per_row: tuple[int, ...]
    stopped_early: tuple[bool, ...]
    iterations: int
    cancelled: bool


@dataclass
class OptimizationRun:
    """The changing state of one run; build it with :meth:`start`, drive it with :meth:`run`.

    The running rows go through the model ``max_batch`` at a time, each batch's backward right
    after its forward (gradients accumulate in ``u.grad``; a row's gradient only depends on its
    own batch), so memory is bounded by one batch whatever the number of rows.
    """

    problem: Problem
    u: Tensor
    optimizer: torch.optim.Optimizer
    scheduler: Any
    tol: float | None
    patience: int
    best: Tensor
    best_u: Tensor
    max_batch: int
    history: list[Tensor] = field(default_factory=list)
    window: list[Tensor] = field(default_factory=list)  # best of the last `patience` steps
    active: Tensor | None = None  # running rows (None: all of them)
    stopped_at: Tensor | None = None  # (R,) step where each row stopped early, −1 if not
    step_count: int = 0
    cancelled: bool = False
    cached: tuple[Tensor | None, RowBatch] | None = None  # the batch of a one-batch run

    @classmethod
    def start(cls, problem: Problem, init_u: Tensor, make_optimizer: OptimizerFactory,
              tol: float | None = None, patience: int = 10,
              max_batch: int = 1 << 30) -> OptimizationRun:
        """A run from the start logits ``init_u`` (R, K) with the optimiser ``make_optimizer``.

        ``max_batch`` bounds the rows per forward/backward pass (and so the memory).
        """
        u = init_u.detach().clone().requires_grad_(True)
        optimizer, scheduler = make_optimizer(u)
        rows = u.shape[0]
        return cls(problem=problem, u=u, optimizer=optimizer, scheduler=scheduler, tol=tol,
                   patience=patience, max_batch=max_batch,
                   best=torch.full((rows,), -math.inf, dtype=u.dtype, device=u.device),
                   best_u=u.detach().clone(),
                   stopped_at=torch.full((rows,), -1, dtype=torch.long))

    @property
    def rows(self) -> int:
        """Rows of the run (pairs × trajectories)."""
        return int(self.u.shape[0])

    def _batches(self) -> Iterator[tuple[Tensor | None, RowBatch]]:
        """The running rows in batches of ``max_batch`` (``None`` rows: all of them).

        A one-batch run keeps its batch; otherwise each batch is gathered when it runs and
        freed after it, so only one batch's data exists at a time.
        """
        count = self.rows if self.active is None else int(self.active.shape[0])
        if count <= self.max_batch:
            if self.cached is None or self.cached[0] is not self.active:
                self.cached = (self.active, self.problem.batch(self.active))
            yield self.cached
            return
        self.cached = None
        rows = (torch.arange(self.rows, device=self.u.device) if self.active is None
                else self.active)
        for part in rows.split(self.max_batch):
            yield part, self.problem.batch(part)

    def evaluate(self, grad: bool) -> Tensor:
        """Scores of the running rows at the current ``u``; with ``grad``, their gradients too."""
        if grad:
            self.optimizer.zero_grad(set_to_none=True)
        scores = []
        for rows, batch in self._batches():
            score = batch.score(self.u if rows is None else self.u[rows], grad, self.step_count)
            if grad:
                (-self.problem.sign * score.sum()).backward()
            scores.append(score.detach())
        return scores[0] if len(scores) == 1 else torch.cat(scores)

    def record(self, score: Tensor) -> None:
        """Add the running rows' scores to the history and keep each row's best iterate."""
        value = score.float()
        if self.active is not None:
            full = torch.full((self.rows,), math.nan, dtype=value.dtype, device=value.device)
            value = full.index_copy_(0, self.active, value)
        self.history.append(value.cpu())
        value = value * self.problem.sign
        improved = value > self.best  # NaN (a stopped row) never improves
        self.best = torch.where(improved, value, self.best)
        self.best_u = torch.where(improved[:, None], self.u.detach(), self.best_u)

    def stop_plateaued(self) -> bool:
        """Take rows whose best score stalled out of the batch; True when none is left."""
        if self.tol is None:
            return False
        self.window.append(self.best.clone())
        if len(self.window) <= self.patience:
            return False
        old = self.window.pop(0)
        flat = (self.best - old <= self.tol * self.best.abs().clamp(min=1e-6)).cpu()
        running = torch.ones(self.rows, dtype=torch.bool)
        if self.active is not None:
            running = torch.zeros(self.rows, dtype=torch.bool).index_fill_(
                0, self.active.cpu(), True)
        done = flat & running
        if not bool(done.any()):
            return False
        self.stopped_at[done] = self.step_count
        left = running & ~done
        if not bool(left.any()):
            return True
        self.active = torch.nonzero(left).flatten().to(self.u.device)
        return False

    def step(self) -> None:
        """One optimiser step (the gradients come from :meth:`evaluate`)."""
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step_count += 1

    def run(self, steps: int, on_step: Callable[[int], Any] | None = None,
            cancel: threading.Event | None = None) -> OptimizationRun:
        """Score iteration 0, then take up to ``steps`` steps; ``on_step(step)`` after each score.

        Stops early when every row has stopped (``tol``) or when ``cancel`` is set.
        """
        while True:
            self.record(self.evaluate(grad=self.step_count < steps))
            if on_step is not None:
                on_step(self.step_count)
            if self.step_count == steps:
                return self
            if cancel is not None and cancel.is_set():
                self.cancelled = True
                return self
            if self.stop_plateaued():
                return self
            self.step()

    def summary(self, premises: int = 1) -> RunSummary:
        """The best iterate per pair (the best of its ``premises`` trajectories)."""
        pick = _picker(self.best, premises)
        stopped = self.stopped_at.view(-1, premises)
        done = torch.where(stopped >= 0, stopped, self.step_count).amax(dim=1)
        return RunSummary(
            u=pick(self.best_u), best_score=pick(self.best) * self.problem.sign,
            scores=pick(torch.stack(self.history, dim=1)),
            iterations_per_row=tuple(int(v) for v in done.tolist()),
            stopped_early=tuple(bool(v) for v in (stopped >= 0).all(dim=1).tolist()),
            iterations=self.step_count, cancelled=self.cancelled)


def _picker(best: Tensor, premises: int) -> Callable[[Tensor], Tensor]:
    """Select, per pair, the row of its best trajectory (rows ``i · premises + j``)."""
    if premises == 1:
        return lambda rows: rows
    choice = best.view(-1, premises).argmax(dim=1).cpu()

    def pick(rows: Tensor) -> Tensor:
        grouped = rows.view(-1, premises, *rows.shape[1:])
        return grouped[torch.arange(grouped.shape[0]), choice.to(rows.device)]

    return pick
