"""Q1 — per-iteration cost of ``OptiCAM.explain`` vs the model's own frozen forward+backward.

Per-iteration cost of explain = (t(explain, T2) − t(explain, T1)) / (T2 − T1): the fixed costs
(feature capture, the last scoring pass, building the result) cancel out and are reported
separately. The floor is one forward+backward of the frozen model (parameters without grad,
input with grad, ``logit[c].backward()``): Opti-CAM cannot do less per step. Target: ratio ≤ 1.05.

Run alone: ``python benchmarks/bench_iteration.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import common as C
import torch
from torch import Tensor, nn

TARGET_RATIO = 1.05


@dataclass
class IterationCost:
    """Medians in seconds for one model."""

    model: str
    forward: float
    floor: float
    per_iter: float
    fixed: float
    ratios: list[float]  # per round: explain per iteration / floor, paired in time
    t1: int
    t2: int
    repeats: int

    @property
    def ratio(self) -> float:
        return C.median(self.ratios)


def measure(name: str, model: nn.Module, mean: tuple, std: tuple, image: Tensor, t1: int,
            t2: int, repeats: int, precision: str = "fp32") -> IterationCost:
    """Interleave: frozen fwd+bwd ×(T2−T1), explain(T1), explain(T2), a no-grad forward."""
    from opticam_widgets.explainer import OptiCAM

    cam = OptiCAM(model, preprocess={"mean": mean, "std": std, "size": None},
                  precision=precision)
    with torch.no_grad():
        target = int(model((image - torch.tensor(mean).view(1, 3, 1, 1))
                           / torch.tensor(std).view(1, 3, 1, 1)).argmax())
    steps = t2 - t1
    floor_step = C.frozen_forward_backward(model, image, target, mean, std)
    norm = cam.preprocess.normalize
    fwd = C.forward_only(model, norm(image))

    def floor() -> None:
        for _ in range(steps):
            floor_step()

    def forwards() -> None:
        for _ in range(5):
            fwd()

    fns = {
        "floor": floor,
        "t1": lambda: cam.explain(image, target, max_iter=t1),
        "t2": lambda: cam.explain(image, target, max_iter=t2),
        "fwd": forwards,
    }
    times = C.interleaved(fns, repeats=repeats, warmup=1)
    per_iter = (C.median(times["t2"]) - C.median(times["t1"])) / steps
    rounds = range(repeats)
    return IterationCost(
        model=name,
        forward=C.median(times["fwd"]) / 5,
        floor=C.median(times["floor"]) / steps,
        per_iter=per_iter,
        fixed=C.median(times["t1"]) - t1 * per_iter,
        ratios=[(times["t2"][r] - times["t1"][r]) / times["floor"][r] for r in rounds],
        t1=t1, t2=t2, repeats=repeats,
    )


def models() -> list[tuple[str, nn.Module, tuple, tuple]]:
    """(name, model, mean, std): ResNet-50 (random weights) and EfficientNet-Lite0.

    Lite0 is the embedded default (real ImageNet weights) when available, else timm's
    architecture with random weights; either way the cost per iteration is the same.
    """
    from opticam_widgets.images import IMAGENET_MEAN, IMAGENET_STD

    out = [("ResNet-50 (torchvision, random weights)", C.resnet50(), IMAGENET_MEAN,
            IMAGENET_STD)]
    try:
        bundle = C.default_bundle()
        out.append(("EfficientNet-Lite0 (timm tf_efficientnet_lite0, default model)",
                    bundle.model, bundle.preprocess.mean, bundle.preprocess.std))
    except Exception:  # pragma: no cover - the zoo is part of the package
        out.append(("EfficientNet-Lite0 (timm tf_efficientnet_lite0, random weights)",
                    C.lite0_random(), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    return out


def run() -> C.Section:
    """Measure both models and build the markdown section."""
    C.setup()
    quick = C.QUICK
    repeats = 2 if quick else 5
    plan = {"ResNet-50": (2, 7) if quick else (2, 22), "EfficientNet-Lite0": (2, 12) if quick
            else (2, 42)}
    image = C.random_image()
    results = []
    for name, model, mean, std in models():
        t1, t2 = plan["ResNet-50" if name.startswith("ResNet") else "EfficientNet-Lite0"]
        results.append(measure(name, model, mean, std, image, t1, t2, repeats))
    rows = []
    for r in results:
        rows.append((
            r.model,
            f"{1e3 * r.forward:.1f}",
            f"{1e3 * r.floor:.1f}",
            f"{1e3 * r.per_iter:.1f}",
            f"{C.fmt_ratio(r.ratio)} ({min(r.ratios):.2f}–{max(r.ratios):.2f})",
            f"{1e3 * r.fixed:.0f} ms = {r.fixed / r.forward:.1f} forwards",
            f"{r.t1}/{r.t2}, {r.repeats}",
            C.verdict(r.ratio <= TARGET_RATIO),
        ))
    section = C.Section("Q1 — one Opti-CAM iteration vs the frozen model's forward+backward")
    section.tables.append(C.table(
        ["model", "no-grad forward (ms)", "frozen fwd+bwd (ms)", "explain per iteration (ms)",
         "ratio explain / fwd+bwd: median (min–max) over rounds", "fixed overhead per call",
         "T1/T2, repeats",
         f"target ≤ {TARGET_RATIO}"],
        rows))
    section.notes += [
        "explain per iteration = (t(explain, T2) − t(explain, T1)) / (T2 − T1), medians of "
        "interleaved repeats; 224×224, batch 1, fp32, logit score, lr 0.2. The ratio is computed "
        "per round (the four timings of a round are adjacent in time) and its median reported: "
        "slow drifts in the machine's load cancel out.",
        "Fixed overhead = t(explain, T1) − T1 × per-iteration: the feature-capture forward (no "
        "grad), the final scoring pass of step T (no grad) and building the result; expected "
        "≈ 2 no-grad forwards.",
        "The engine upsamples the map as two matmuls (`Rh @ cam @ Rwᵀ`, same values as "
        "F.interpolate to 3e-6): on a near-free model its own cost per step dropped from ≈ 1.6 "
        "to ≈ 1.2 ms.",
        "Noise: four runs of this section on this machine gave ResNet-50 1.00, 1.06, 1.03, 1.01 "
        "and Lite0 1.10, 1.07, 1.07, 1.07 (other processes shared the cores). The engine's own "
        "work per step (map, mask, Adam, bookkeeping), measured on a near-free model, is "
        "≈ 1.1–1.6 ms: ≈ 2% of a ResNet-50 step, 5–7% of a Lite0 step.",
    ]
    return section


if __name__ == "__main__":
    print(C.run_section(run).markdown())
