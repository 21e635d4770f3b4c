"""``optimizer="fast"`` with its own stopping rule, on photos beyond the samples (issue 29).

For each photo (the eight samples and the 26 of ``benchmarks/photos.py``: scikit-learn's,
matplotlib's and scikit-image's photos and crops) the default model (EfficientNet-Lite0) runs
the paper's optimiser (Adam, lr 0.2, 100 iterations) and ``"fast"`` for 100 iterations without
stopping, one after the other (the order alternates), on one thread, recording the score and the
elapsed time of every pass. A run with a stopping rule takes the same steps up to where it
stops (one row, no batching), so the traces give, for any ``(tol, patience)``, where ``"fast"``
stops and what it had reached by then (the rule itself runs in ``tests/engine/test_stopping.py``).

Per photo: passes (scored iterates, iteration 0 included) until the best score reaches 95% of
the paper run's 100-iteration gain, for both; where ``"fast"`` stops; the time ratios fast ÷
paper to the bar, and fast's stopped run ÷ the paper's whole run. Pass counts do not depend on
the machine's load; times do (the load is reported).

Run: ``python benchmarks/bench_fast_stopping.py --here OUT.json`` (one setting: its ISA is the
process's, e.g. with ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``), then
``python benchmarks/bench_fast_stopping.py --report A.json B.json`` (writes
``results/fast_stopping.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results" / "fast_stopping.md"
FRACTION = 0.95
#: Stopping rules compared in the report (the chosen one is the registry's).
RULES = ((1e-3, 3), (1e-3, 5), (1e-3, 10), (3e-3, 3), (3e-3, 5), (1e-2, 3), (1e-2, 5))


def trace(out: Path, photos: dict | None = None) -> None:
    """Score and elapsed time of every pass, paper and fast (100 iterations each)."""
    import common as C
    import torch
    from photos import all_photos

    from opticam_widgets.engine.explainer import OptiCAM
    from opticam_widgets.model.zoo import load_default_model

    torch.set_num_threads(1)
    bundle, photos = load_default_model(), photos or all_photos()
    paper = OptiCAM(bundle, max_iter=100)
    fast = OptiCAM(bundle, max_iter=100, optimizer="fast", tol=None)
    first = next(iter(photos.values()))
    paper.explain(first, max_iter=2)
    fast.explain(first, max_iter=2)
    res = {"isa": C.cpu_isa(), "load_start": C.load_average(), "rows": {}}
    for i, (name, image) in enumerate(photos.items()):
        row = {}
        for key in (("paper", "fast") if i % 2 == 0 else ("fast", "paper")):
            times: list[float] = []
            r = (paper if key == "paper" else fast).explain(
                image, callback=lambda _s, p, t=times: t.append(p.elapsed_s))
            row[key] = (r.scores[0].tolist(), times)
        res["rows"][name] = row
        res["load_end"] = C.load_average()
        out.write_text(json.dumps(res))


def stop_pass(scores: list[float], tol: float, patience: int) -> int:
    """Passes a run with this rule takes (``OptimizationRun.stop_plateaued``, replayed)."""
    best, window = -math.inf, []
    for i, s in enumerate(scores):
        best = max(best, s)
        if i == len(scores) - 1:
            break
        window.append(best)
        if len(window) > patience and best - window.pop(0) <= tol * max(abs(best), 1e-6):
            return i + 1
    return len(scores)


def passes_to(scores: list[float], bar: float) -> int | None:
    """Passes until the best score reaches ``bar`` (``None``: never)."""
    best = -math.inf
    for i, s in enumerate(scores):
        best = max(best, s)
        if best >= bar:
            return i + 1
    return None


def photo_row(row: dict, tol: float, patience: int) -> dict:
    """One photo's figures under a stopping rule."""
    (ps, pt), (fs, ft) = row["paper"], row["fast"]
    s0, best = ps[0], max(ps)
    bar = s0 + FRACTION * (best - s0)
    pp, fp, stop = passes_to(ps, bar), passes_to(fs, bar), stop_pass(fs, tol, patience)
    return {"paper_bar": pp, "fast_bar": fp, "stop": stop, "at_stop": max(fs[:stop]) >= bar,
            "gain_at_stop": (max(fs[:stop]) - s0) / (best - s0),
            "t_bar": (ft[fp - 1] / pt[pp - 1]) if fp else math.inf,
            "t_stop": ft[stop - 1] / pt[-1], "per_pass": (ft[-1] / len(ft)) / (pt[-1] / len(pt))}


def summary(data: dict, tol: float, patience: int) -> dict:
    """Medians and worst cases over the photos."""
    rows = [photo_row(r, tol, patience) for r in data["rows"].values()]
    return {"n": len(rows), "at_stop": sum(r["at_stop"] for r in rows),
            "min_gain": min(r["gain_at_stop"] for r in rows),
            "stop_med": statistics.median(r["stop"] for r in rows),
            "stop_max": max(r["stop"] for r in rows),
            "t_bar_med": statistics.median(r["t_bar"] for r in rows),
            "t_bar_max": max(r["t_bar"] for r in rows),
            "t_stop_med": statistics.median(r["t_stop"] for r in rows),
            "t_stop_max": max(r["t_stop"] for r in rows),
            "pass_bar_med": statistics.median((r["fast_bar"] or 101) / r["paper_bar"]
                                              for r in rows),
            "pass_bar_max": max((r["fast_bar"] or 101) / r["paper_bar"] for r in rows),
            "per_pass_med": statistics.median(r["per_pass"] for r in rows)}


def report(paths: list[Path]) -> str:
    """The markdown report of some traces (one per ISA)."""
    from opticam_widgets.engine.optimizers import FAST_PATIENCE, FAST_TOL

    lines = ["# `optimizer=\"fast\"` stops on its own (issue 29)", "", __doc__.split("\n\n")[1],
             "", f"Chosen rule: `FAST_TOL = {FAST_TOL:g}`, `FAST_PATIENCE = {FAST_PATIENCE}` "
             "(`opticam_widgets/engine/optimizers.py`).", ""]
    for path in paths:
        data = json.loads(path.read_text())
        lines += [f"## {data['isa']}, {len(data['rows'])} photos, 1 thread; load (1/5/15 min) "
                  f"{data['load_start']} at start, {data['load_end']} at end", "",
                  "| tol | patience | photos at 95% when it stops | least gain at the stop | "
                  "passes to stop: median / most | time to 95%: fast ÷ paper, median / worst "
                  "| stopped run ÷ paper's 100: median / worst | passes to 95%: fast ÷ paper, "
                  "median / worst (never: 101) | time per pass fast ÷ paper, median |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for tol, patience in RULES:
            s = summary(data, tol, patience)
            mark = " (chosen)" if (tol, patience) == (FAST_TOL, FAST_PATIENCE) else ""
            lines.append(f"| {tol:g}{mark} | {patience} | {s['at_stop']} of {s['n']} | "
                         f"{s['min_gain']:.2f} | {s['stop_med']:g} / {s['stop_max']} | "
                         f"{s['t_bar_med']:.2f} / {s['t_bar_max']:.2f} | "
                         f"{s['t_stop_med']:.2f} / {s['t_stop_max']:.2f} | "
                         f"{s['pass_bar_med']:.2f} / {s['pass_bar_max']:.2f} | "
                         f"{s['per_pass_med']:.2f} |")
        lines += ["", "Per photo (chosen rule): passes to 95% paper / fast, fast's stop, time "
                  "ratio to 95%:", ""]
        per = [f"`{n}` {r['paper_bar']}/{r['fast_bar']}, stop {r['stop']}, {r['t_bar']:.2f}"
               for n, r in ((n, photo_row(v, FAST_TOL, FAST_PATIENCE))
                            for n, v in data["rows"].items())]
        lines += ["; ".join(per) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``--here OUT.json`` traces this process's setting; ``--report`` writes the markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--here", type=Path, help="trace every photo into this JSON file")
    ap.add_argument("--every", type=int, default=1, help="every n-th photo only")
    ap.add_argument("--report", nargs="+", type=Path, help="traces to report")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.here:
        from photos import all_photos

        trace(args.here, dict(list(all_photos().items())[::args.every]))
    if args.report:
        text = report(args.report)
        args.output.write_text(text)
        print(text)


if __name__ == "__main__":
    main()
