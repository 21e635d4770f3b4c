"""Q5 — widget latency, headless: Run → first map drawn, and map refreshes per second.

The widget is driven through its public API: ``OptiCAMWidget(bundle).show(img, run=False)``,
``run(force=True)`` (what the Run button does for settings not cached yet) and ``wait()``.
Drawing is observed by wrapping ``put_image_data`` of the heatmap layer of its ipycanvas
``MultiCanvas`` (``widget.canvas.canvas[1]``), which records the time of every heatmap sent to
the browser. No browser is needed: the bench sends each canvas's ``client_ready`` event as a
page does, and ipycanvas serializes the image and hands it to the comm layer, which is a no-op
without a kernel.

Reported against one no-grad forward of the model (interleaved): iteration 0 needs the feature
capture pass and the scoring pass of the channel-mean map, so ≈ 2 forwards is the floor.

Run alone: ``python benchmarks/bench_widget_latency.py``.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import common as C

RUN_ITERATIONS = 60


@dataclass
class Spy:
    """Timestamps (perf_counter) of heatmap draws, and of the run's end."""

    draws: list[float] = field(default_factory=list)
    draw_s: list[float] = field(default_factory=list)
    first: threading.Event = field(default_factory=threading.Event)
    ended: float = 0.0
    step0: float = 0.0  # when the engine called back with iteration 0 scored

    def reset(self) -> None:
        self.draws.clear()
        self.draw_s.clear()
        self.first.clear()
        self.ended = 0.0
        self.step0 = 0.0


def page_ready(widget: Any) -> None:
    """What a browser does when it shows the widget: each canvas sends ``client_ready``.

    The widget sends nothing to a canvas no browser has created yet, so without this a
    headless run would draw nothing and measure nothing.
    """
    for canvas in (widget.canvas.canvas[0], widget.canvas.canvas[1],
                   widget.controls.score_plot):
        canvas._handle_frontend_event(None, {"event": "client_ready"}, [])


def attach(widget: Any) -> Spy:
    """Act as the page (:func:`page_ready`), wrap the heatmap layer's ``put_image_data`` and
    observe ``running``."""
    page_ready(widget)
    spy = Spy()
    layer = widget.canvas.canvas[1]
    original = layer.put_image_data

    def put_image_data(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            end = time.perf_counter()
            spy.draws.append(end)
            spy.draw_s.append(end - start)
            spy.first.set()

    layer.put_image_data = put_image_data

    def on_running(change: dict) -> None:
        if not change["new"]:
            spy.ended = time.perf_counter()

    widget.observe(on_running, "running")

    # time the engine's iteration-0 callback, to split latency into engine and drawing
    cam = widget.cam
    explain = cam.explain

    def timed_explain(*args: Any, callback: Any = None, **kwargs: Any) -> Any:
        def wrapped(step: int, progress: Any) -> Any:
            if step == 0 and not spy.step0:
                spy.step0 = time.perf_counter()
            return callback(step, progress) if callback is not None else None

        return explain(*args, callback=wrapped, **kwargs)

    cam.explain = timed_explain
    return spy


def one_run(widget: Any, spy: Spy) -> dict[str, float]:
    """Start a run in the background as the Run button does (``run(force=True)``, so that the
    cached result of the previous repeat is not reused); return latency to the first map,
    refresh rate, run time."""
    spy.reset()
    start = time.perf_counter()
    widget.run(force=True)
    spy.first.wait(timeout=120)
    first = spy.draws[0] - start if spy.draws else float("nan")
    widget.wait(timeout=600)
    end = spy.ended or time.perf_counter()
    during = [t for t in spy.draws if t <= end]
    span = during[-1] - during[0] if len(during) > 1 else float("nan")
    gaps = [b - a for a, b in zip(during, during[1:])]
    return {
        "first": first,
        "engine0": spy.step0 - start if spy.step0 else float("nan"),
        "draw0": spy.draws[0] - spy.step0 if spy.draws and spy.step0 else float("nan"),
        "rate": (len(during) - 1) / span if len(during) > 1 else float("nan"),
        "max_gap": max(gaps) if gaps else float("nan"),
        "draws": float(len(during)),
        "run": end - start,
        "draw_ms": C.median(spy.draw_s) if spy.draw_s else float("nan"),
        "iterations": float(widget.result.iterations) if widget.result is not None else 0.0,
    }


def thread_penalty(bundle: Any, image: Any, repeats: int) -> dict[str, float]:
    """Engine time to iteration 0 in the calling thread, in a new thread (what the widget's
    worker does for every run), and in a persistent thread fed by a queue."""
    import queue

    from opticam_widgets.engine.explainer import OptiCAM
    from opticam_widgets.inputs.images import to_image_tensor

    cam = OptiCAM(bundle)
    pixels = to_image_tensor(image)
    stop = threading.Event()
    stop.set()  # the engine returns right after scoring iteration 0

    def iteration0() -> float:
        start = time.perf_counter()
        seen: dict[str, float] = {}

        def callback(step: int, _progress: Any) -> None:
            if step == 0:
                seen["t"] = time.perf_counter() - start

        cam.explain(pixels, None, max_iter=1, cancel=stop, callback=callback, tol=None)
        return seen["t"]

    def new_thread() -> float:
        out: list[float] = []
        thread = threading.Thread(target=lambda: out.append(iteration0()))
        thread.start()
        thread.join()
        return out[0]

    jobs: queue.Queue = queue.Queue()
    answers: queue.Queue = queue.Queue()

    def serve() -> None:
        while jobs.get() is not None:
            answers.put(iteration0())

    server = threading.Thread(target=serve, daemon=True)
    server.start()

    def persistent() -> float:
        jobs.put(1)
        return answers.get()

    fns = {"here": iteration0, "new": new_thread, "persistent": persistent}
    for fn in fns.values():
        fn()
    values: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            values[key].append(fn())
    jobs.put(None)
    return {k: C.median(v) for k, v in values.items()}


def run() -> C.Section:
    """Latency on the default model and chelsea; returns the markdown section."""
    C.setup()
    section = C.Section("Q5 — widget latency (headless)")
    try:
        from opticam_widgets.widget import OptiCAMWidget
    except ImportError as exc:
        section.notes.append(f"the widget is not available ({exc}): skipped.")
        return section
    from opticam_widgets.model.zoo import sample_image

    bundle = C.default_bundle(wait_s=300)
    image = sample_image("chelsea")
    repeats = 2 if C.QUICK else 3
    with contextlib.redirect_stdout(io.StringIO()):
        widget = OptiCAMWidget(bundle)
        widget.show(image, run=False)
    try:
        widget.controls.iterations.value = 15 if C.QUICK else RUN_ITERATIONS
        spy = attach(widget)
        pixels = bundle.preprocess.normalize(C.chelsea())
        fwd = C.forward_only(bundle.model, pixels)
        results: list[dict[str, float]] = []
        fwd_times: list[float] = []
        one_run(widget, spy)  # warm-up
        for _ in range(repeats):
            fwd_times.append(C.timed(fwd)[0])
            results.append(one_run(widget, spy))
            fwd_times.append(C.timed(fwd)[0])
        # show(img) in a fresh widget: the user's first call (predictions + preview + run).
        show_first: list[float] = []
        for _ in range(repeats):
            with contextlib.redirect_stdout(io.StringIO()):
                fresh = OptiCAMWidget(bundle)
                fresh_spy = attach(fresh)
                start = time.perf_counter()
                fresh.show(image)
                fresh_spy.first.wait(timeout=120)
                show_first.append(fresh_spy.draws[0] - start if fresh_spy.draws
                                  else float("nan"))
                fresh.stop()
                fresh.close()
    finally:
        widget.close()
    forward = C.median(fwd_times)
    threads = thread_penalty(bundle, image, 3 if C.QUICK else 7)

    def med(key: str) -> float:
        return C.median([r[key] for r in results])

    rows = [
        ("Run (background, as the button) → first map drawn (iteration 0)",
         f"{1e3 * med('first'):.0f} ms",
         f"{med('first') / forward:.1f} forwards"),
        ("Run → iteration 0 scored by the engine in the worker (capture + scoring pass)",
         f"{1e3 * med('engine0'):.0f} ms", f"{med('engine0') / forward:.1f} forwards"),
        ("`show(img)` on a new widget → first map drawn (predictions + iteration 0)",
         f"{1e3 * C.median(show_first):.0f} ms", f"{C.median(show_first) / forward:.1f} forwards"),
        ("one no-grad forward of the model (reference)", f"{1e3 * forward:.1f} ms", "1.0"),
        (f"map refreshes per second during a run ({med('iterations'):.0f} iterations)",
         f"{med('rate'):.1f} /s", ""),
        ("longest gap between two map refreshes", f"{1e3 * med('max_gap'):.0f} ms", ""),
        ("maps drawn per run", f"{med('draws'):.0f}", ""),
        ("one put_image_data of the heatmap (serialization)", f"{1e3 * med('draw_ms'):.1f} ms",
         ""),
        ("Run → run finished (incl. faithfulness metrics)", f"{1e3 * med('run'):.0f} ms", ""),
        ("engine alone, iteration 0 in the calling thread", f"{1e3 * threads['here']:.0f} ms",
         f"{threads['here'] / forward:.1f} forwards"),
        ("engine alone, iteration 0 in a new thread (the widget starts one per run)",
         f"{1e3 * threads['new']:.0f} ms", f"{threads['new'] / forward:.1f} forwards"),
        ("engine alone, iteration 0 in a persistent worker thread (proposal)",
         f"{1e3 * threads['persistent']:.0f} ms",
         f"{threads['persistent'] / forward:.1f} forwards"),
    ]
    section.tables.append(
        f"Default model (Lite0), `chelsea`, widget defaults (early stop on), iterations "
        f"{widget.controls.iterations.value}; medians of {repeats} runs\n\n"
        + C.table(["measure", "value", "in forwards"], rows))
    section.notes += [
        "Times are wall-clock in the calling process; the run happens in the widget's worker "
        "thread, as when the button is pressed in a notebook. Browser rendering is not included.",
        "The iteration-0 map (channel-mean CAM) does not depend on the class: the widget keeps it "
        "per image and draws it the moment Run is pressed, before the worker starts; the "
        "engine's own iteration 0 then redraws the same map.",
        "Drawing a map is mostly PNG encoding in the kernel (ipycanvas sends RGBA as PNG): the "
        "smooth heatmap is sent at half the drawing's resolution and scaled up by the canvas, "
        "a quarter of the pixels (one put_image_data: 9.7 ms at full resolution before).",
        "The first torch work in a new thread pays a one-off set-up (OpenMP team, per-thread "
        "caches): the widget's worker starts a new thread for every job, so every Run pays it; "
        "a persistent worker thread fed by a queue would not (last three rows).",
    ]
    return section


if __name__ == "__main__":
    print(C.run_section(run).markdown())
