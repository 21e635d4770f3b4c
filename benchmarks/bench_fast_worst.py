"""``optimizer="fast"``'s worst photos: is one map step right for every photo? (issue 29).

On the photos where ``"fast"`` is furthest from the bar in ``results/fast_stopping.md`` (it
never reaches 95% of the paper run's gain on ``mpl:grace_hopper``; it needs more than half the
paper's passes on ``sklearn:china``, ``skimage:hubble``, ``skimage:motorcycle_right`` and
``sklearn:flower``), the default model (EfficientNet-Lite0) runs the paper's optimiser and
``"fast"`` at several learning rates (``lr`` sets fast's map step, ``FAST_MAP_STEP × lr``), 100
iterations each with no stopping, one thread. Reported per photo and rate: the passes until
the best score reaches 95% of the paper run's gain (``never``: not within 100) and the best
gain reached, as a fraction of the paper's. Pass counts do not depend on the machine's load.

Run: ``python benchmarks/bench_fast_worst.py`` (writes ``results/fast_worst.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results" / "fast_worst.md"
PHOTOS = ("mpl:grace_hopper", "sklearn:china", "skimage:hubble", "skimage:motorcycle_right",
          "sklearn:flower")
RATES = (0.1, 0.2, 0.4, 0.6, 1.0)
#: fast's time per pass ÷ the paper's (median, `results/fast_stopping.md`, AVX-512).
PER_PASS = 1.2


def traces(photos: tuple[str, ...], rates: tuple[float, ...]) -> dict:
    """Scores of every pass: the paper's run and fast's at each rate, per photo."""
    import common as C
    import torch
    from photos import all_photos

    from opticam_widgets.engine.explainer import OptiCAM
    from opticam_widgets.model.zoo import load_default_model

    torch.set_num_threads(1)
    bundle, images = load_default_model(), all_photos()
    runs = {"paper": OptiCAM(bundle, max_iter=100),
            **{f"fast lr {r:g}": OptiCAM(bundle, max_iter=100, optimizer="fast", lr=r, tol=None)
               for r in rates}}
    out = {"isa": C.cpu_isa(), "load_start": C.load_average(), "rows": {}}
    for name in photos:
        out["rows"][name] = {k: cam.explain(images[name]).scores[0].tolist()
                             for k, cam in runs.items()}
        print(name, "done", file=sys.stderr, flush=True)
    out["load_end"] = C.load_average()
    return out


def cell(paper: list[float], scores: list[float]) -> str:
    """``passes to the bar (gain ÷ paper's gain)`` of one run."""
    from bench_fast_stopping import FRACTION, passes_to

    s0, best = paper[0], max(paper)
    passes = passes_to(scores, s0 + FRACTION * (best - s0))
    return f"{passes or 'never'} ({(max(scores) - s0) / (best - s0):.2f})"


def meets(paper: list[float], scores: list[float]) -> bool:
    """Whether a run reaches the bar within half the paper's passes to it, per-pass cost aside."""
    from bench_fast_stopping import FRACTION, passes_to

    s0, best = paper[0], max(paper)
    bar = s0 + FRACTION * (best - s0)
    passes = passes_to(scores, bar)
    return passes is not None and passes * PER_PASS <= 0.5 * passes_to(paper, bar)


def report(data: dict) -> str:
    """The markdown table of the traces."""
    keys = list(next(iter(data["rows"].values())))
    lines = ["# `optimizer=\"fast\"`: one map step for every photo? (issue 29)", "",
             __doc__.split("\n\n")[1], "",
             f"{data['isa']}, 1 thread; load (1/5/15 min) {data['load_start']} at start, "
             f"{data['load_end']} at end (pass counts do not depend on it).", "",
             "| photo | " + " | ".join(keys) + " |", "| --- |" + " ---: |" * len(keys)]
    for name, row in data["rows"].items():
        lines.append(f"| `{name}` | " + " | ".join(cell(row["paper"], row[k]) for k in keys)
                     + " |")
    ok = [k for k in keys[1:] if all(meets(row["paper"], row[k]) for row in data["rows"].values())]
    lines += ["", "Worst-case target: 95% of the paper's gain in at most half its passes to the "
              f"bar, over fast's cost per pass ({PER_PASS}×, `results/fast_stopping.md`). Rates "
              f"that meet it on every photo here: {', '.join(ok) or 'none'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Trace, save the JSON next to the report, write the markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", nargs="+", default=list(PHOTOS))
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    data = traces(tuple(args.photos), tuple(args.rates))
    args.output.with_suffix(".json").write_text(json.dumps(data))
    text = report(data)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
