"""Faithfulness of Opti-CAM and the baseline CAMs on the sample photos (make bench-faithfulness).

For each photo the default model (EfficientNet-Lite0) predicts its top-1 class; Opti-CAM (the
engine's defaults: 100 iterations, lr 0.2, constructive, logit score) and each baseline of
``opticam_widgets.evaluation.baselines`` explain that class on the same target layer. Every map is
scored
with Average Drop / Average Increase / Average Gain (masking in pixel space, black baseline) and
RISE insertion (blurred baseline) / deletion (black baseline) AUCs. The markdown table goes to
stdout and to ``benchmarks/results/faithfulness.md``.

Usage::

    python benchmarks/faithfulness.py [--photos chelsea coffee ...] [--max-iter 100]
        [--steps 50] [--methods opticam gradcam ...] [--output PATH]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from opticam_widgets.engine.explainer import OptiCAM
from opticam_widgets.evaluation.baselines import BASELINES, baseline_map
from opticam_widgets.evaluation.metrics import deletion, faithfulness, insertion
from opticam_widgets.model.zoo import SAMPLE_NAMES, load_default_model, sample_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

NAMES = {
    "opticam": "Opti-CAM",
    "channel-mean": "Channel mean (Opti-CAM iter. 0)",
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM",
}
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "faithfulness.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", nargs="+", default=list(SAMPLE_NAMES), choices=SAMPLE_NAMES)
    ap.add_argument("--methods", nargs="+", default=["opticam", *BASELINES],
                    choices=["opticam", *BASELINES])
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--steps", type=int, default=50, help="insertion/deletion steps")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_default_model()
    cam = OptiCAM(bundle, max_iter=args.max_iter, lr=args.lr)
    layer = cam.layer_name
    rows: dict[str, dict[str, list[float]]] = {
        m: {k: [] for k in ("AD", "AI", "AG", "ins", "del", "s")} for m in args.methods
    }
    photo_lines = []
    for name in args.photos:
        image = sample_image(name)
        start = time.perf_counter()
        result = cam.explain(image)
        opticam_s = time.perf_counter() - start
        images, target = result.images, list(result.target)
        p = float(cam.predict(images)[0, target[0]])
        photo_lines.append(f"`{name}` → {bundle.labels[target[0]]} (p = {p:.3f})")
        for method in args.methods:
            if method == "opticam":
                maps, seconds = result.saliency, opticam_s
            else:
                start = time.perf_counter()
                maps = baseline_map(method, bundle, images, target, target_layer=layer)
                seconds = time.perf_counter() - start
            f = faithfulness(bundle, images, maps, target)
            ins = insertion(bundle, images, maps, target, steps=args.steps)
            dele = deletion(bundle, images, maps, target, steps=args.steps)
            row = rows[method]
            row["AD"].append(f["AD"])
            row["AI"].append(f["AI"])
            row["AG"].append(f["AG"])
            row["ins"].append(ins.mean_auc)
            row["del"].append(dele.mean_auc)
            row["s"].append(seconds)
            print(f"[{name}] {NAMES[method]}: AD {f['AD']:.1f} AG {f['AG']:.1f} "
                  f"ins {ins.mean_auc:.3f} del {dele.mean_auc:.3f} ({seconds:.1f}s)",
                  file=sys.stderr, flush=True)

    lines = [
        "| method | AD ↓ | AI ↑ | AG ↑ | insertion AUC ↑ | deletion AUC ↓ | s / image |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for method, row in rows.items():
        m = {k: float(np.mean(v)) for k, v in row.items()}
        lines.append(f"| {NAMES[method]} | {m['AD']:.1f} | {m['AI']:.1f} | {m['AG']:.1f} | "
                     f"{m['ins']:.3f} | {m['del']:.3f} | {m['s']:.1f} |")
    table = "\n".join(lines)
    report = "\n".join([
        "# Faithfulness on the sample photos",
        "",
        f"Model: {bundle.name} (default bundle), target layer `{layer}`, top-1 class of each "
        f"photo. Opti-CAM: {args.max_iter} iterations, lr {args.lr}, constructive, logit score. "
        f"AD / AI / AG in % (mask x ⊙ S in pixel space, black baseline); insertion (blurred "
        f"baseline) and deletion (black baseline) AUC over {args.steps} steps, probability of "
        f"the class, x-axis in [0, 1]. Means over {len(args.photos)} photos.",
        "",
        table,
        "",
        "Photos: " + "; ".join(photo_lines) + ".",
        "",
        f"Timings: torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{platform.machine()} ({C.cpu_isa()}); they include only the map, not the metrics, and "
        "depend on the machine's load.",
        "",
        "Reproduce: `make bench-faithfulness` (or `python benchmarks/faithfulness.py --help`).",
        "",
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(report)
    return report


if __name__ == "__main__":
    main()
