"""Q — a 12-megapixel photo in the widget against the same photo at 600×400 (issue 19).

The same photo (scikit-image's ``chelsea`` upscaled with PIL, bicubic) at 600×400 and at
4032×3024, the size phones take, in the widget on the default model (EfficientNet-Lite0):

* ``show(img)``: until it returns, with the widget on screen and the iteration-0 map drawn
  (headless: the canvas's ``put_image_data`` is called before ``show`` returns);
* Run → first map: ``run(force=True)`` (what the Run button does) until the first heatmap is
  sent to the canvas;
* Run → finished: until ``wait()`` returns: the run, the faithfulness metrics and whatever the
  widget computes after a run;
* ``OptiCAM.explain`` alone (default settings, 100 steps) on each photo.

Times: both sizes in this process, interleaved (small, big, small, big, ...), medians. Memory:
each size in a subprocess of its own (``VmHWM`` of ``/proc/self/status``: the peak RSS of the
process, the model and the widget included), so that one size's peak does not hide the other's.

Run alone: ``python benchmarks/bench_big_photo.py`` (writes ``benchmarks/results/big_photo.md``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common as C

SIZES = {"600×400": (600, 400), "4032×3024": (4032, 3024)}
RESULTS = Path(__file__).resolve().parent / "results" / "big_photo.md"
TIME_RATIO = 1.3
MEMORY_MB = 300.0


def photo(width: int, height: int) -> Any:
    """``chelsea`` resized with PIL (bicubic) to ``width`` × ``height``, an RGB PIL image."""
    from PIL import Image

    from opticam_widgets.model.zoo import sample_image

    img = sample_image("chelsea")
    img = img if isinstance(img, Image.Image) else Image.fromarray(img)
    return img.convert("RGB").resize((width, height), Image.BICUBIC)


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    ``VmHWM`` of ``/proc/self/status`` (reset by ``exec``); not ``ru_maxrss``, which a
    subprocess inherits from the process that forked it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class FirstDraw:
    """Records when the widget's heatmap layer is first sent a picture (``put_image_data``).

    Both layers of the canvas get the ``client_ready`` event a browser sends when it shows
    them: without it the canvas draws nothing (nobody would see it).
    """

    def __init__(self, widget: Any) -> None:
        self.event = threading.Event()
        self.at = 0.0
        layer = widget.canvas.canvas[1]
        original = layer.put_image_data

        def put_image_data(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if not self.event.is_set():
                self.at = time.perf_counter()
                self.event.set()
            return out

        layer.put_image_data = put_image_data
        for canvas in (widget.canvas.canvas[0], layer):  # what a browser does on display
            canvas._handle_frontend_event(None, {"event": "client_ready"}, [])

    def reset(self) -> None:
        self.event.clear()
        self.at = 0.0


def widget_session(bundle: Any, image: Any) -> dict[str, float]:
    """One user session on one photo: show, then Run (forced) to the first map and to the end.

    Returns seconds for ``show``, ``first`` and ``finished``.
    """
    from opticam_widgets.widget import OptiCAMWidget

    with contextlib.redirect_stdout(io.StringIO()):
        widget = OptiCAMWidget(bundle)
        spy = FirstDraw(widget)
        start = time.perf_counter()
        widget.show(image)  # draws iteration 0, then starts the run in the background
        show = time.perf_counter() - start
        widget.wait(timeout=900)
        spy.reset()
        start = time.perf_counter()
        widget.run(force=True)
        spy.event.wait(timeout=900)
        first = spy.at - start
        widget.wait(timeout=900)
        finished = time.perf_counter() - start
        widget.close()
    return {"show": show, "first": first, "finished": finished}


def explain_once(bundle: Any, image: Any) -> float:
    """Seconds of one default ``OptiCAM(bundle).explain(image)``."""
    from opticam_widgets.engine.explainer import OptiCAM

    cam = OptiCAM(bundle)
    start = time.perf_counter()
    cam.explain(image)
    return time.perf_counter() - start


def child(label: str, what: str) -> dict[str, float]:
    """In a subprocess: the peak RSS of the model alone, then of ``what`` on photo ``label``."""
    C.setup()
    bundle = C.default_bundle()
    image = photo(*SIZES[label])
    base = peak_mb()
    start = time.perf_counter()
    if what == "widget":
        widget_session(bundle, image)
    else:
        explain_once(bundle, image)
    return {"base_mb": base, "peak_mb": peak_mb(), "s": time.perf_counter() - start}


def memory(label: str, what: str) -> dict[str, float]:
    """Run :func:`child` in a fresh interpreter and read its JSON answer."""
    env = dict(os.environ, PYTHONPATH=str(C.ROOT))
    out = subprocess.run([sys.executable, __file__, "--child", label, what], env=env,
                         capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> C.Section:
    """The big-photo section: interleaved times, per-size peak memory, targets."""
    C.setup()
    section = C.Section("Q — a 12-megapixel photo in the widget (issue 19)")
    bundle = C.default_bundle()
    images = {label: photo(*wh) for label, wh in SIZES.items()}
    repeats = 1 if C.QUICK else 5
    sessions: dict[str, list[dict[str, float]]] = {k: [] for k in SIZES}
    explains: dict[str, list[float]] = {k: [] for k in SIZES}
    widget_session(bundle, images["600×400"])  # warm-up (first-use costs of torch, ipycanvas)
    for r in range(repeats):
        for label in (list(SIZES) if r % 2 == 0 else list(SIZES)[::-1]):
            sessions[label].append(widget_session(bundle, images[label]))
            explains[label].append(explain_once(bundle, images[label]))
    mem = {label: {what: memory(label, what) for what in ("widget", "explain")}
           for label in SIZES}
    small, big = SIZES
    rows = []
    for key, name in (("show", "`show(img)` returns (iteration 0 drawn)"),
                      ("first", "Run → first map drawn"),
                      ("finished", "Run → finished (metrics included)")):
        s = C.median(x[key] for x in sessions[small])
        b = C.median(x[key] for x in sessions[big])
        rows.append((name, f"{s:.2f} s", f"{b:.2f} s", C.fmt_ratio(b / s),
                     C.verdict(b / s <= TIME_RATIO)))
    ws, wb = mem[small]["widget"]["peak_mb"], mem[big]["widget"]["peak_mb"]
    rows.append(("peak memory of the process (widget session)", f"{ws:.0f} MB", f"{wb:.0f} MB",
                 f"+{wb - ws:.0f} MB", C.verdict(wb - ws <= MEMORY_MB)))
    es, eb = C.median(explains[small]), C.median(explains[big])
    rows.append(("`OptiCAM.explain` alone (100 steps)", f"{es:.2f} s", f"{eb:.2f} s",
                 C.fmt_ratio(eb / es), C.verdict(eb / es <= TIME_RATIO)))
    xs, xb = mem[small]["explain"]["peak_mb"], mem[big]["explain"]["peak_mb"]
    rows.append(("peak memory of the process (`explain` alone)", f"{xs:.0f} MB", f"{xb:.0f} MB",
                 f"+{xb - xs:.0f} MB", C.verdict(xb - xs <= MEMORY_MB)))
    section.tables.append(
        f"Default model (Lite0), `chelsea` upscaled (PIL bicubic), widget defaults; times are "
        f"medians of {repeats} interleaved sessions in one process; memory is the peak RSS of a "
        "fresh process per size (model, widget and photo included)\n\n"
        + C.table(["measure", small, big, "big / small", f"target (≤ {TIME_RATIO}×, "
                   f"≤ +{MEMORY_MB:.0f} MB)"], rows))
    section.notes += [
        f"Peak RSS with the model loaded, before any photo: {mem[small]['widget']['base_mb']:.0f}"
        " MB (this torch build's import alone is most of it).",
        "`show(img)` includes decoding the PIL image into pixels, the predictions and the "
        "iteration-0 map (one forward each); the optimisation then starts in the background.",
    ]
    return section


def main() -> None:
    """``--child LABEL WHAT`` prints one JSON line; otherwise run and write the report."""
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3])))
        return
    section = C.run_section(run)
    text = section.markdown()
    header = ("# Big photos in the widget (issue 19)\n\nGenerated by "
              "`python benchmarks/bench_big_photo.py`; machine:\n\n" + C.machine_table() + "\n\n")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(header + text)
    print(header + text)


if __name__ == "__main__":
    main()
