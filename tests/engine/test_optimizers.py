"""Issue 17: ``OptiCAM(optimizer=...)``: the paper's Adam stays the default and unchanged;
``"fast"`` (Adam on the map, projected onto channel weights) and its pieces.

The quality test runs the default model on sample photos with a fixed setting: it counts
passes, never seconds, and states its claims over the photos (median, every photo at a lower
bar), since one photo's count moves with the CPU's float rounding (issue 25). It runs with the
thread count the process has: ``make portable`` reruns it capped at AVX2, on 1 and 2 threads.
"""

from __future__ import annotations

import functools
import statistics

import pytest
import torch
from torch import Tensor

from opticam_widgets.engine.explainer import OptiCAM
from opticam_widgets.engine.maps import low_res_saliency
from opticam_widgets.engine.nnls import nnls, project_to_logits, projection_system
from opticam_widgets.engine.optimize import adam_factory
from opticam_widgets.engine.optimizers import (
    FAST_BETAS,
    FAST_MAP_STEP,
    RESTART_LR,
    RESTART_STEPS,
    MapSpaceAdam,
    OptimizerSetup,
    map_gradient,
    map_jacobian,
    optimizer_factory,
)

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

#: Photos where the fast schedule is tested against the paper's 100-iteration run: all eight
#: sample photos. Per photo, the number of passes is a chaotic function of float rounding (Adam's
#: sign-like steps amplify it): it moves by several passes between CPUs (AVX-512 vs AVX2) and
#: thread counts, so the claims are made over the eight photos, with margins; the per-photo
#: figures for each ISA are in benchmarks/results/time_to_quality*.md.
QUALITY_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "camera", "coins",
                  "clock")
#: Passes within which the fast schedule stops on its own on every sample photo (issue 29:
#: its own tolerance, run with the default ``max_iter``, 100; measured 19–38 with AVX-512 BF16
#: on 1 thread, at most 47 on 34 photos, benchmarks/results/fast_stopping.md).
FAST_PASSES = 60
#: Median over the photos of the passes "fast" needs to reach 95% of the paper run's gain.
#: Measured medians: 14 (AVX-512 BF16, 1 thread), see the benchmark for the others.
MEDIAN_PASSES = 20
#: Median over the photos of fast's passes ÷ the paper's passes to that bar (measured 0.23).
MEDIAN_RATIO = 1 / 3
#: Every photo reaches 90% of the paper run's gain within the passes it is given.
WORST_FRACTION = 0.90


@functools.lru_cache(maxsize=1)
def _bundle():  # noqa: ANN202 - a ModelBundle
    from opticam_widgets.model.zoo import load_default_model

    return load_default_model()


def _passes_to(scores: Tensor, bar: float) -> int | None:
    """Passes (scored iterates, iteration 0 included) until the best score reaches ``bar``."""
    best = torch.cummax(scores, 0).values
    hit = torch.nonzero(best >= bar).flatten()
    return int(hit[0]) + 1 if len(hit) else None


# ------------------------------------------------------------------ the paper stays the default
def test_paper_is_the_default_and_unchanged() -> None:
    from tinynets import small_cnn

    net = small_cnn()
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    pre = {"size": None}
    default = OptiCAM(net, max_iter=15, preprocess=pre).explain(image)
    paper = OptiCAM(net, max_iter=15, preprocess=pre, optimizer="paper").explain(image)
    assert OptiCAM(net, preprocess=pre).settings.optimizer == "paper"
    assert torch.equal(default.scores, paper.scores)
    assert torch.equal(default.saliency, paper.saliency)
    assert torch.equal(default.weights, paper.weights)
    # "paper" builds exactly the engine's Adam
    u = torch.zeros(1, 4, requires_grad=True)
    setup = OptimizerSetup(lr=0.3, features=torch.rand(1, 4, 2, 2), size=(4, 4))
    opt, sched = optimizer_factory("paper", setup)(u)
    ref, _ = adam_factory(0.3)(torch.zeros(1, 4, requires_grad=True))
    assert type(opt) is type(ref) and opt.defaults == ref.defaults and sched is None


def test_unknown_optimizer_is_refused() -> None:
    from tinynets import small_cnn

    with pytest.raises(ValueError, match="`optimizer` must be one of 'paper', 'fast'; got 'quick'"):
        OptiCAM(small_cnn(), optimizer="quick")
    setup = OptimizerSetup(lr=0.2, features=torch.rand(1, 4, 2, 2), size=(4, 4))
    with pytest.raises(ValueError, match="`optimizer`"):
        optimizer_factory("adam", setup)


# ------------------------------------------------------------------ pieces of "fast"
def test_map_jacobian_matches_finite_differences() -> None:
    gen = torch.Generator().manual_seed(1)
    feats = torch.rand(6, 3, 3, generator=gen, dtype=torch.float64)
    u = torch.randn(6, generator=gen, dtype=torch.float64)
    m, jac = map_jacobian(u, feats, (12, 12))
    assert torch.allclose(m, low_res_saliency(torch.softmax(u, 0)[None], feats[None],
                                              (12, 12)).flatten())
    h = 1e-6
    for k in range(6):
        e = torch.zeros(6, dtype=torch.float64)
        e[k] = h
        plus = map_jacobian(u + e, feats, (12, 12))[0]
        minus = map_jacobian(u - e, feats, (12, 12))[0]
        assert torch.allclose((plus - minus) / (2 * h), jac[:, k], atol=1e-6)


def test_map_gradient_recovers_the_map_gradient() -> None:
    gen = torch.Generator().manual_seed(2)
    jac = torch.randn(5, 40, generator=gen, dtype=torch.float64)  # full row rank
    g_m = torch.randn(5, generator=gen, dtype=torch.float64)
    assert torch.allclose(map_gradient(jac, jac.T @ g_m), g_m, atol=1e-4)
    # a pixel the map cannot move (a zero row: the min or max) gets no gradient
    jac[2] = 0.0
    assert abs(float(map_gradient(jac, jac.T @ g_m)[2])) < 1e-8
    assert not map_gradient(torch.zeros(3, 4), torch.ones(4)).any()


def test_projection_reproduces_a_reachable_map() -> None:
    gen = torch.Generator().manual_seed(3)
    feats = torch.rand(64, 3, 3, generator=gen)
    w = torch.softmax(3 * torch.randn(64, generator=gen), 0)
    target = low_res_saliency(w[None], feats[None], (3, 3)).flatten()
    u = project_to_logits(target, feats, floor=1e-6)
    assert u is not None and torch.isfinite(u).all()
    got = low_res_saliency(torch.softmax(u, 0)[None], feats[None], (3, 3)).flatten()
    assert float((got - target).abs().max()) < 1e-3
    # a flat target has no Opti-CAM map: refused, not a made-up map
    assert project_to_logits(torch.zeros(9), torch.zeros(4, 3, 3)) is None


def test_nnls_matches_scipy_and_warm_starts() -> None:
    from scipy.optimize import nnls as scipy_nnls

    gen = torch.Generator().manual_seed(6)
    feats = torch.rand(300, 5, 5, generator=gen) ** 4  # sparse-ish, like ReLU'd features
    a = projection_system(feats)
    assert a.shape == (25, 301) and a.dtype == torch.float64
    for seed in range(3):
        target = torch.rand(25, generator=torch.Generator().manual_seed(seed), dtype=a.dtype)
        ref, ref_residual = scipy_nnls(a.numpy(), target.numpy(), maxiter=3000)
        x = nnls(a, target)
        assert bool((x >= 0).all())
        assert float((a @ x - target).norm()) == pytest.approx(ref_residual, rel=1e-6, abs=1e-9)
        # warm start from a nearby problem's solution: the same optimum
        moved = (target + 0.05 * torch.randn(25, generator=gen, dtype=a.dtype)).clamp(0, 1)
        cold, warm = nnls(a, moved), nnls(a, moved, start=x)
        assert float((a @ warm - moved).norm()) == pytest.approx(
            float((a @ cold - moved).norm()), rel=1e-6, abs=1e-9)
    assert not nnls(a, -torch.ones(25, dtype=a.dtype))[:-1].any()  # only the offset can help


def test_map_space_adam_moves_only_rows_with_a_gradient() -> None:
    gen = torch.Generator().manual_seed(4)
    feats = torch.rand(2, 16, 4, 4, generator=gen)
    u = torch.zeros(2, 16, requires_grad=True)
    opt = MapSpaceAdam(u, feats, (8, 8), lr=0.1)
    u.grad = torch.zeros(2, 16)
    u.grad[0] = torch.randn(16, generator=gen)
    opt.step()
    assert u[0].abs().sum() > 0 and not u[1].any()
    with pytest.raises(ValueError, match="`features`"):
        MapSpaceAdam(u, torch.rand(1, 3, 2, 2), (4, 4))
    make = optimizer_factory("fast", OptimizerSetup(lr=0.2, features=feats, size=(8, 8)))
    opt = make(torch.zeros(2, 16, requires_grad=True))[0]
    assert opt.defaults["lr"] == FAST_MAP_STEP * 0.2 and opt.defaults["betas"] == FAST_BETAS


def test_a_stalled_row_takes_adam_steps_on_u_once() -> None:
    # every channel is the same binary mask: the map sits on a corner of [0, 1]^P, no map
    # step can move it, so the row switches to RESTART_STEPS Adam steps on u, once
    feats = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    u = torch.zeros(1, 3, requires_grad=True)
    opt = MapSpaceAdam(u, feats, (4, 4), lr=FAST_MAP_STEP * 0.2)
    g0 = torch.tensor([[1.0, -2.0, 0.5]])
    u.grad = g0.clone()
    opt.step()  # Adam's first step on u (from u = 0 here): RESTART_LR × lr × sign(g)
    assert torch.allclose(u.detach(), -RESTART_LR * 0.2 * g0.sign(), atol=1e-5)
    for _ in range(RESTART_STEPS - 1):
        before = u.detach().clone()
        u.grad = torch.tensor([[0.3, 0.1, -0.2]])
        opt.step()
        assert not torch.allclose(u.detach(), before)
    assert opt.state[u]["restart"][0] is None  # spent: no second escape
    u.grad = g0.clone()
    opt.step()  # stalled again: a map step (projection), not Adam on u
    assert torch.isfinite(u).all() and not torch.allclose(u.detach(), -RESTART_LR * 0.2 * g0.sign())


def test_fast_runs_both_conventions_and_several_starts() -> None:
    from tinynets import small_cnn

    net = small_cnn()
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    pre = {"size": None}
    for convention in ("constructive", "destructive"):
        cam = OptiCAM(net, max_iter=8, preprocess=pre, optimizer="fast", convention=convention,
                      nb_premises_at_startup=2)
        r = cam.explain(image, target=[1, 2])
        sign = 1.0 if convention == "constructive" else -1.0
        assert r.saliency.shape == (2, 32, 32) and torch.isfinite(r.saliency).all()
        assert torch.allclose(r.weights.sum(1), torch.ones(2), atol=1e-5)
        assert bool((sign * r.final_score >= sign * r.initial_score).all())


# ------------------------------------------------------------------ quality on the default model
def _passes_to_fraction(photo: str) -> tuple[int | None, int | None, int | None]:
    """(fast passes to 95%, paper passes to 95%, fast passes to 90%) of the paper's gain."""
    from opticam_widgets.model.zoo import sample_image

    bundle, image = _bundle(), sample_image(photo)
    paper = OptiCAM(bundle).explain(image)  # the paper's run: Adam, lr 0.2, 100 iterations
    s0, best = float(paper.scores[0, 0]), float(paper.final_score[0])
    fast = OptiCAM(bundle, optimizer="fast").explain(image)  # 100 steps; its own stopping
    assert float(fast.scores[0, 0]) == pytest.approx(s0, rel=1e-5)  # same start
    assert fast.stopped_early[0] and fast.iterations < FAST_PASSES, fast.iterations  # issue 29
    bar95, bar90 = s0 + 0.95 * (best - s0), s0 + WORST_FRACTION * (best - s0)
    return (_passes_to(fast.scores[0], bar95), _passes_to(paper.scores[0], bar95),
            _passes_to(fast.scores[0], bar90))


def test_fast_reaches_the_paper_bar_in_a_fraction_of_its_passes() -> None:
    rows = {photo: _passes_to_fraction(photo) for photo in QUALITY_PHOTOS}
    never = FAST_PASSES + 1  # a photo that never reaches the bar counts past the budget
    fast = [f if f is not None else never for f, _, _ in rows.values()]
    assert all(p is not None for _, p, _ in rows.values()), rows  # the paper reaches its bar
    ratios = [f / p for f, (_, p, _) in zip(fast, rows.values())]
    assert statistics.median(fast) <= MEDIAN_PASSES, rows
    assert statistics.median(ratios) <= MEDIAN_RATIO, rows
    assert all(f90 is not None for _, _, f90 in rows.values()), rows


# ----------------------------------------------------------------- opt-in beyond OptiCAM
def test_fast_schedule_in_the_widget_gives_explains_map() -> None:
    import contextlib
    import io

    import numpy as np

    from opticam_widgets.engine.optimizers import FAST_PATIENCE
    from opticam_widgets.model.zoo import sample_image
    from opticam_widgets.support.defaults import WIDGET_PATIENCE, WIDGET_TOL
    from opticam_widgets.widget import OptiCAMWidget

    bundle, img = _bundle(), sample_image("coffee")
    with pytest.raises(ValueError, match="`optimizer`"):
        OptiCAMWidget(bundle, optimizer="slow")
    widget = OptiCAMWidget(bundle, optimizer="fast")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            widget.set_images(img, run=False)
        widget.controls.iterations.value = 8
        widget.run(blocking=True)
        widget.wait(300)  # its yardstick jobs too: they use the same model
        expected = OptiCAM(bundle, optimizer="fast").explain(
            img, widget.target, max_iter=8, lr=widget.controls.lr.value, tol=WIDGET_TOL,
            patience=FAST_PATIENCE)  # the widget's tol, fast's own patience (issue 29)
        paper = OptiCAM(bundle).explain(img, widget.target, max_iter=8, tol=WIDGET_TOL,
                                        patience=WIDGET_PATIENCE)
        np.testing.assert_allclose(widget.saliency, expected.numpy()[0], rtol=0, atol=1e-6)
        assert float(np.abs(widget.saliency - paper.numpy()[0]).max()) > 0.05  # not the paper's
    finally:
        widget.close()


def test_fast_schedule_in_the_dataset_engine_and_both_commands(tmp_path, capsys) -> None:
    from opticam_widgets.cli.main import main
    from opticam_widgets.dataset import explain_dataset
    from opticam_widgets.engine.optimizers import FAST_PATIENCE
    from opticam_widgets.model.zoo import sample_image
    from opticam_widgets.support.defaults import WIDGET_TOL

    bundle, paths = _bundle(), []
    for name in ("chelsea", "rocket"):
        paths.append(tmp_path / f"{name}.png")
        sample_image(name).save(paths[-1])
    out = tmp_path / "fast"
    results = explain_dataset(bundle, paths, out, max_iter=6, optimizer="fast", metrics=False,
                              progress=False, batch_size=1)
    cam = OptiCAM(bundle, optimizer="fast")
    for row in range(2):
        target = int(results.table["target"].iloc[row])
        expected = cam.explain(paths[row], target, max_iter=6, tol=WIDGET_TOL,
                               patience=FAST_PATIENCE)  # the dataset's tol, fast's patience
        rebuilt = results.saliency(row)  # the map rebuilt at the photo's size
        assert rebuilt.shape == tuple(expected.saliency.shape[1:])
        assert float(abs(rebuilt - expected.saliency[0].numpy()).max()) < 1e-5
    with pytest.raises(ValueError, match="optimizer"):  # a store keeps one optimizer
        explain_dataset(bundle, paths, out, max_iter=6, metrics=False, progress=False,
                        batch_size=1)
    assert main(["explain", str(paths[0]), "--max-iter", "3", "--optimizer", "fast",
                 "--no-progress", "--out", str(tmp_path / "png")]) == 0
    assert main(["explain-dataset", str(tmp_path / "png"), "--out", str(tmp_path / "ds"),
                 "--iters", "2", "--schedule", "fast", "--metrics", "none",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["explain", str(paths[0]), "--schedule", "slow"]) == 2
    assert "`optimizer` must be one of 'paper', 'fast'; got 'slow'" in capsys.readouterr().err
