"""Q4 — several classes of one image in one batch vs one class at a time.

``explain(image, target=[c1, c2, c3, c4])`` optimizes the four maps together (one batch of 4
masked images per step) instead of four calls of batch 1. We report the cost per class of each,
the speed-up, and check that the maps agree (Pearson r between the batched and the separate map
of each class; the optimization is the same per row, up to floating-point summation order).

Run alone: ``python benchmarks/bench_batching.py``.
"""

from __future__ import annotations

from typing import Any

import common as C
from torch import Tensor, nn

CLASSES = 4


def measure(name: str, model: nn.Module, pre: dict, image: Tensor, max_iter: int,
            repeats: int) -> tuple:
    """One table row: per-class cost batched vs sequential, speed-up, map agreement."""
    from opticam_widgets.engine.explainer import OptiCAM

    cam = OptiCAM(model, preprocess=pre)
    probs = cam.predict(image)[0]
    classes = [int(c) for c in probs.topk(CLASSES).indices]
    out: dict[str, Any] = {}

    def batched() -> None:
        out["batched"] = cam.explain(image, classes, max_iter=max_iter)

    def sequential() -> None:
        out["sequential"] = [cam.explain(image, c, max_iter=max_iter) for c in classes]

    times = C.interleaved({"batched": batched, "sequential": sequential}, repeats=repeats,
                          warmup=1)
    tb, ts = C.median(times["batched"]), C.median(times["sequential"])
    agree = [C.pearson(out["batched"].saliency[i], out["sequential"][i].saliency[0])
             for i in range(CLASSES)]
    dscore = max(abs(float(out["batched"].final_score[i]) - float(r.final_score[0]))
                 for i, r in enumerate(out["sequential"]))
    return (name, f"{max_iter}, {repeats}", f"{1e3 * ts / CLASSES:.0f}",
            f"{1e3 * tb / CLASSES:.0f}", C.fmt_ratio(ts / tb), f"{min(agree):.4f}",
            f"{dscore:.2e}")


def run() -> C.Section:
    """Lite0 (default model, chelsea) and ResNet-50 (random weights, random image)."""
    C.setup()
    quick = C.QUICK
    repeats = 2 if quick else 3
    rows = []
    try:
        b = C.default_bundle()
        rows.append(measure("EfficientNet-Lite0 (default model), chelsea", b.model,
                            {"mean": b.preprocess.mean, "std": b.preprocess.std, "size": None},
                            C.chelsea(), 5 if quick else 20, repeats))
    except ImportError:  # pragma: no cover
        pass
    from opticam_widgets.inputs.preprocess import IMAGENET_MEAN, IMAGENET_STD

    rows.append(measure("ResNet-50 (random weights), random image", C.resnet50(),
                        {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "size": None},
                        C.random_image(), 3 if quick else 8, repeats))
    section = C.Section(f"Q4 — {CLASSES} classes of one image: one batch vs one at a time")
    section.tables.append(C.table(
        ["model", "max_iter, repeats", "per class, one at a time (ms)",
         "per class, batched (ms)", "speed-up of batching", "min Pearson r batched vs separate",
         "max |Δ final score|"], rows))
    section.notes += [
        f"Top-{CLASSES} predicted classes; whole explain calls (fixed costs included: the "
        "batched call captures the features once for all classes).",
        "The per-call fixed costs (≈ 2 forwards, Q1) are only ≈ 4% of a 20-iteration call, so "
        "most of the gain is per iteration: at batch 1 the deep layers (7×7 maps) do not keep "
        "2 cores busy; a batch of 4 does. Expect more on a GPU.",
        "Batched and separate maps are not bit-identical (the convolution algorithms differ "
        "with the batch size) and the optimization amplifies tiny differences (see the lever "
        "tests: 1/255 pixel noise alone gives r ≈ 0.9 after 20–100 iterations).",
    ]
    return section


if __name__ == "__main__":
    print(C.run_section(run).markdown())
