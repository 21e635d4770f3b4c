"""Issue 29: each optimiser brings its own stopping rule (``tol="auto"``, ``patience="auto"``):
``"fast"`` stops on its own plateau, so choosing it gives its speed without lowering
``max_iter``; the paper's run keeps every step (and its maps, bit for bit)."""

from __future__ import annotations

import pytest
import torch
from tinynets import small_cnn

from opticam_widgets import OptiCAM, OptiCAMSettings
from opticam_widgets.engine import optimizers
from opticam_widgets.engine.optimize import adam_factory
from opticam_widgets.engine.optimizers import FAST_PATIENCE, FAST_TOL, optimizer_stopping
from opticam_widgets.support.defaults import DEFAULT_PATIENCE

PRE = {"size": (32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
IMAGE = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def test_auto_resolves_to_the_optimizers_own_rule() -> None:
    assert OptiCAMSettings().stopping == (None, DEFAULT_PATIENCE)  # the paper: every step
    fast = OptiCAMSettings(optimizer="fast")
    assert fast.stopping == (FAST_TOL, FAST_PATIENCE) == optimizer_stopping("fast")
    assert fast.tol == "auto" and fast.replace(optimizer="paper").stopping == (None, 10)
    assert OptiCAMSettings(optimizer="fast", tol=None).stopping == (None, FAST_PATIENCE)
    assert OptiCAMSettings(optimizer="fast", patience=3).stopping == (FAST_TOL, 3)
    assert OptiCAMSettings(tol=0.5).stopping == (0.5, DEFAULT_PATIENCE)
    cam = OptiCAM(small_cnn(), preprocess=PRE, optimizer="fast")
    assert (cam.tol, cam.patience) == (FAST_TOL, FAST_PATIENCE)  # what a run stops with


@pytest.mark.parametrize(("field", "value", "message"), [
    ("tol", "soon", "`tol` must be None, a number >= 0 or 'auto', got 'soon'"),
    ("patience", "auto-ish", "`patience` must be an int >= 1 or 'auto', got 'auto-ish'"),
    ("patience", 0, "`patience` must be >= 1"),
])
def test_bad_stopping_values_are_refused_by_name(field, value, message) -> None:
    with pytest.raises(ValueError, match=message):
        OptiCAMSettings(**{field: value})


@pytest.mark.numeric
def test_fast_stops_on_its_own_plateau_the_paper_runs_every_step() -> None:
    net, pre = small_cnn(), {**PRE, "size": (16, 16)}
    image = IMAGE[:, :, :16, :16]
    fast = OptiCAM(net, preprocess=pre, optimizer="fast", max_iter=150).explain(image, [1, 2])
    assert all(fast.stopped_early) and max(fast.iterations_per_row) < 60, fast
    every = OptiCAM(net, preprocess=pre, optimizer="fast", max_iter=25, tol=None).explain(
        image, [1, 2])
    assert every.iterations_per_row == (25, 25) and not any(every.stopped_early)
    for row, stop in enumerate(fast.iterations_per_row):  # the same steps, up to the stop
        seen = min(stop, 25) + 1
        torch.testing.assert_close(fast.scores[row, :seen], every.scores[row, :seen],
                                   rtol=1e-4, atol=1e-5)
        best = torch.cummax(fast.scores[row, :stop + 1], 0).values  # the rule held there
        assert float(best[-1] - best[-1 - FAST_PATIENCE]) <= FAST_TOL * float(best[-1].abs())
    paper = OptiCAM(net, preprocess=pre, max_iter=30).explain(image, [1, 2])
    assert paper.iterations_per_row == (30, 30) and not any(paper.stopped_early)


def test_the_paper_run_is_unchanged_by_auto() -> None:
    net = small_cnn()
    default = OptiCAM(net, preprocess=PRE, max_iter=12).explain(IMAGE)
    explicit = OptiCAM(net, preprocess=PRE, max_iter=12, optimizer="paper", tol=None,
                       patience=10).explain(IMAGE)
    assert torch.equal(default.scores, explicit.scores)
    assert torch.equal(default.saliency, explicit.saliency)


def test_a_new_optimizer_registers_its_stopping_rule() -> None:
    @optimizers.register_optimizer("adam-stops", tol=1e9, patience=2)
    def stops(setup: optimizers.OptimizerSetup):  # noqa: ANN202 - an OptimizerFactory
        return adam_factory(setup.lr)

    try:
        r = OptiCAM(small_cnn(), preprocess=PRE, max_iter=50, optimizer="adam-stops").explain(
            IMAGE)
        assert r.iterations_per_row == (2, 2) and all(r.stopped_early)  # 1e9: flat at once
        with pytest.raises(ValueError, match="`tol` must be None or a number >= 0"):
            optimizers.register_optimizer("bad", tol=-1.0)
    finally:
        del optimizers.OPTIMIZERS["adam-stops"], optimizers.OPTIMIZER_STOPPING["adam-stops"]
