"""The optimisation run-state: per-row early stopping, the start/optimiser hooks, defaults kept."""

from __future__ import annotations

import threading

import pytest
import torch
from tinynets import IDENTITY, ColourNet, small_cnn, two_squares
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.engine.masking import Masker
from opticam_widgets.engine.optimize import (
    OptimizationRun,
    Problem,
    adam_factory,
    initial_logits,
)
from opticam_widgets.engine.targets import ClassRows
from opticam_widgets.inputs.preprocess import Preprocess

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

X = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))


class Counting(nn.Module):
    """A model that records the batch size of every forward pass."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(int(x.shape[0]))
        return self.net(x)


def rows_cam(net: nn.Module, **kw) -> OptiCAM:
    return OptiCAM(net, max_iter=150, preprocess=Preprocess(size=None), tol=1e-3, patience=5,
                   fold_batchnorm=False, **kw)


def test_each_row_stops_on_its_own_plateau_as_if_alone():
    cam = rows_cam(small_cnn())
    both = cam.explain(X, target=[0, 1, 2, 3, 4])
    assert len(set(both.iterations_per_row)) > 2  # the rows do plateau at different steps
    assert all(both.stopped_early) and both.iterations == max(both.iterations_per_row) < 150
    for i in range(5):
        one = cam.explain(X, target=i)
        assert one.iterations == both.iterations_per_row[i]
        torch.testing.assert_close(one.saliency[0], both.saliency[i], atol=1e-5, rtol=0)
        torch.testing.assert_close(one.final_score[0], both.final_score[i], atol=1e-5, rtol=0)
        # the history stops where the row stopped; NaN afterwards
        steps = both.iterations_per_row[i]
        assert torch.isfinite(both.scores[i, :steps + 1]).all()
        assert torch.isnan(both.scores[i, steps + 1:]).all()


def test_finished_rows_leave_the_batch():
    net = Counting(small_cnn())
    r = rows_cam(net).explain(X, target=[0, 1, 2, 3, 4])
    loop = net.rows[1:]  # the first forward is the capture of the features
    assert net.rows[0] == 1
    assert loop == sorted(loop, reverse=True) and loop[0] == 5 and loop[-1] == 1
    # row i is scored at steps 0..stop_i: the model saw exactly that many rows, no more
    assert sum(loop) == sum(s + 1 for s in r.iterations_per_row)


def test_without_tol_every_row_runs_every_step():
    net = Counting(small_cnn())
    r = OptiCAM(net, max_iter=6, preprocess=Preprocess(size=None),
                fold_batchnorm=False).explain(X, target=[0, 1, 2])
    assert r.iterations == 6 and r.iterations_per_row == (6, 6, 6)
    assert r.stopped_early == (False, False, False)
    assert net.rows[1:] == [3] * 7


def test_cancel_marks_no_row_as_stopped_early():
    event = threading.Event()

    def cb(step, progress):
        if step == 2:
            event.set()

    r = OptiCAM(ColourNet(), preprocess=IDENTITY, max_iter=50, tol=1e-9).explain(
        two_squares(), target=[0, 1], callback=cb, cancel=event)
    assert r.cancelled and r.iterations_per_row == (2, 2) and r.stopped_early == (False, False)


def _problem(net: nn.Module, x: torch.Tensor, target: int) -> Problem:
    pre = Preprocess(**IDENTITY)
    feats = torch.relu(net.conv(x[None])).detach()
    return Problem(model=net, features=feats,
                   rows=ClassRows(torch.tensor([target]), torch.tensor([0])),
                   masker=Masker(pre, x[None], "constructive"),
                   score_fn=lambda logits, rows: rows.score(logits),
                   size=tuple(x.shape[-2:]), sign=1.0)


def test_start_point_and_optimizer_are_pluggable():
    net, x = ColourNet().eval().requires_grad_(False), two_squares()
    problem = _problem(net, x, 0)
    # a frozen optimiser (SGD, lr 0) from a start that favours the red channel: every step
    # scores that start point, and the best map is the start's
    start = torch.tensor([[3.0, 0.0, 0.0, 0.0]])

    def frozen(u):
        return torch.optim.SGD([u], lr=0.0), None

    run = OptimizationRun.start(problem, start, frozen).run(5)
    summary = run.summary()
    assert summary.iterations == 5 and torch.equal(summary.u, start)
    assert torch.allclose(summary.scores, summary.scores[:, :1].expand(-1, 6))
    # the default start and optimiser climb from the channel mean
    default = OptimizationRun.start(problem, initial_logits(1, 1, 4, 0, torch.device("cpu")),
                                    adam_factory(0.2)).run(5).summary()
    assert default.scores[0, -1] > default.scores[0, 0]
    assert summary.scores[0, 0] > default.scores[0, 0]  # red-heavy start beats uniform weights


def test_initial_logits_are_zero_then_seeded_noise():
    u = initial_logits(2, 3, 4, seed=7, device=torch.device("cpu"))
    assert u.shape == (6, 4) and torch.equal(u[0], torch.zeros(4)) and torch.equal(u[3], u[0])
    assert torch.equal(u, initial_logits(2, 3, 4, seed=7, device=torch.device("cpu")))
    assert not torch.equal(u[1], u[2])
