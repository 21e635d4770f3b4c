"""Why A and not B: the maps of two classes of the photo, and their difference.

The **Why A and not B** toggle opens a panel: two class pickers (*Why* … *and not* …, the
image's listed classes, the class shown and the next one chosen first) and **Explain the
difference**. It shows three titled maps: Opti-CAM's map of A, of B (each with the widget's
settings, from the widget's cache when the class was already explained there, else both
optimized together in one batch), and A − B on a diverging colormap (red: what the model
needs for A more than for B; blue: the reverse; white: as much for both), with a colour scale,
and the faithfulness metrics of each map with its own class in one table.

The maps are optimized in a job of the widget's worker, queued behind its current job; a new
run cancels it (the panel says so).

Example:
    >>> import numpy as np
    >>> difference_map(np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]])).tolist()
    [[1.0, 0.5]]
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import numpy as np

from ..engine.explainer import OptiCAM
from ..engine.result import OptiCAMResult
from ..support.jobs import Worker, exiting
from .canvas import SaliencyCanvas
from .common import close_widgets
from .messages import contrast_titles, diverging_bar_html, error_html, metrics_html, note_html
from .state import ClassNames, RunKey, Session

__all__ = ["DIVERGING", "ContrastPanel", "difference_map", "per_map_metrics"]

#: The difference's colormap: blue (B) – white (as much) – red (A).
DIVERGING = "RdBu_r"


def difference_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A − B (maps in [0, 1]) mapped to [0, 1] for a diverging colormap: 0.5 where equal."""
    return ((np.asarray(a, np.float32) - np.asarray(b, np.float32)) + 1.0) / 2.0


def per_map_metrics(metrics: dict, row: int) -> dict:
    """One map's AD and AG, out of the per-image terms of ``faithfulness`` (or its error).

    Example:
        >>> per_map_metrics({"AD_per_image": [1.0, 2.0], "AG_per_image": [3.0, 4.0]}, 1)
        {'AD': 2.0, 'AG': 4.0}
    """
    if "error" in metrics:
        return {"error": metrics["error"]}
    return {"AD": float(metrics["AD_per_image"][row]), "AG": float(metrics["AG_per_image"][row])}


class ContrastPanel:
    """The **Why A and not B** toggle, class pickers, button and the three titled maps.

    Args:
        cam: The widget's engine.
        worker: The widget's worker.
        session: Images, cache (maps already optimized are reused).
        names: Returns the class names.
        key: Returns the run key the controls select (image, class, settings).
        metrics: Faithfulness of a result (the widget's, at the model's input size).
        max_size: Longest side of each map's canvas.
    """

    def __init__(self, cam: OptiCAM, worker: Worker, session: Session,
                 names: Callable[[], ClassNames | None], key: Callable[[], RunKey],
                 metrics: Callable[[OptiCAMResult], dict], max_size: int = 200) -> None:
        self.cam, self.worker, self.session = cam, worker, session
        self.names, self.key, self.metrics = names, key, metrics
        wide = {"description_width": "initial"}
        self.toggle = w.ToggleButton(description="Why A and not B", icon="balance-scale",
                                     tooltip="the maps of two classes and their difference",
                                     layout=w.Layout(width="auto", align_self="flex-start"))
        self.class_a = w.Dropdown(options=[], description="Why", style=wide,
                                  layout=w.Layout(width="260px"))
        self.class_b = w.Dropdown(options=[], description="and not", style=wide,
                                  layout=w.Layout(width="280px"))
        self.go = w.Button(description="Explain the difference", icon="play",
                           tooltip="optimize both maps (the widget's settings) and subtract",
                           layout=w.Layout(width="auto"))
        self.canvases = [SaliencyCanvas(max_size) for _ in range(3)]
        self.canvases[2].cmap, self.canvases[2].opacity = DIVERGING, 0.75
        self.titles = [w.HTML("") for _ in range(3)]
        self.scale = w.HTML("")
        self.table = w.HTML("")
        self.status = w.HTML("")
        self.status.add_class("opticam-panel-live")  # announced politely
        column = w.Layout(width=f"{max_size + 12}px", margin="0 8px 4px 0")
        maps = [w.VBox([t, c.canvas], layout=column) for t, c in zip(self.titles, self.canvases)]
        maps[2].children = (*maps[2].children, self.scale)
        row = w.Layout(flex_flow="row wrap", align_items="flex-start")
        self.panel = w.VBox([
            w.HBox([self.class_a, self.class_b, self.go], layout=w.Layout(
                flex_flow="row wrap", align_items="center")),
            self.status, w.HBox([*maps, self.table], layout=row),
        ], layout=w.Layout(display="none"))
        #: The toggle and the panel (what the widget's layout holds).
        self.box = w.VBox([self.toggle, self.panel])
        self._serial = 0
        self.toggle.observe(lambda ch: setattr(self.panel.layout, "display",
                                               "" if ch["new"] else "none"), "value")
        self.go.on_click(lambda _b: self.explain())

    def classes_changed(self, options: Any) -> None:
        """The image's listed classes (the class selector's options) changed: offer them."""
        options = list(options if not isinstance(options, dict) else options["new"])
        values = [v for _, v in options]
        target = self.session.target if self.session.images else None
        self.class_a.options = options
        self.class_b.options = options
        if values:
            self.class_a.value = target if target in values else values[0]
            others = [v for v in values if v != self.class_a.value]
            self.class_b.value = others[0] if others else values[0]
        self._clear()

    def _clear(self) -> None:
        self._serial += 1
        for canvas in self.canvases:
            canvas.set_saliency(None)
        for title in (*self.titles, self.scale, self.table, self.status):
            title.value = ""

    def explain(self, *, blocking: bool = False) -> None:
        """Optimize the maps of the chosen classes and show them with their difference."""
        a, b = self.class_a.value, self.class_b.value
        if not self.session.images or a is None or b is None:
            self.status.value = note_html("no image yet")
            return
        if a == b:
            self.status.value = note_html("choose two different classes", "warning")
            return
        key = self.key()
        self._serial += 1
        serial = self._serial
        state = self.session.image
        for canvas in self.canvases:
            canvas.set_image(state.rgb)
        self.status.value = note_html("optimizing the two maps…")
        job = lambda cancel: self._job(key, int(a), int(b), serial, cancel)  # noqa: E731
        if blocking:
            job(threading.Event())
        else:
            self.worker.submit(job, "contrast", cancel_previous=False,
                               on_skip=lambda: self._say_cancelled(serial))

    def _say_cancelled(self, serial: int) -> None:
        if serial == self._serial and not exiting():
            self.status.value = note_html("cancelled by a new run: press Explain the "
                                          "difference again")

    def _maps(self, key: RunKey, classes: list[int], cancel: threading.Event,
              serial: int) -> dict[int, tuple[OptiCAMResult, int, dict]] | None:
        """Each class's (result, row, metrics): cached in the widget, or optimized here."""
        found, missing = {}, []
        for c in classes:
            entry = self.session.cache.get(dataclasses.replace(key, target=c))
            if entry is not None and entry.metrics is not None:
                found[c] = (entry.result, 0, per_map_metrics_of(entry.metrics))
            else:
                missing.append(c)
        if missing:
            result = self.cam.explain(
                self.session.images[key.image].pixels, missing, cancel=cancel,
                callback=self._progress(serial), **key.overrides())
            if result.cancelled:
                return None
            metrics = self.metrics(result)
            for row, c in enumerate(missing):
                found[c] = (result, row, per_map_metrics(metrics, row))
        return found

    def _progress(self, serial: int) -> Callable[[int, Any], None]:
        last = [0.0]

        def callback(step: int, progress: Any) -> None:
            now = time.monotonic()
            if serial == self._serial and now - last[0] > 0.5:
                last[0] = now
                self.status.value = note_html(
                    f"optimizing the two maps… iteration {step}/{progress.max_iter}")
        return callback

    def _job(self, key: RunKey, a: int, b: int, serial: int, cancel: threading.Event) -> None:
        try:
            found = self._maps(key, [a, b], cancel, serial)
        except Exception as exc:  # said in the panel; the widget goes on
            self.status.value = error_html(exc)
            return
        if found is None:
            self._say_cancelled(serial)
            return
        if serial != self._serial or exiting():
            return
        size = self.canvases[0].size
        maps = [found[c][0].saliency_at(size, rows=[found[c][1]])[0].numpy() for c in (a, b)]
        for canvas, saliency in zip(self.canvases, [*maps, difference_map(*maps)]):
            canvas.set_saliency(saliency)
        names = self.names()
        na, nb = (names[a], names[b]) if names is not None else (str(a), str(b))
        for title, text in zip(self.titles, contrast_titles(na, nb)):
            title.value = text
        self.scale.value = diverging_bar_html(na, nb)
        self.table.value = metrics_html(found[a][2], [(f"map of {nb}", found[b][2])],
                                        first=f"map of {na}")
        self.status.value = note_html(f"why {na} and not {nb}: {key.iterations} iterations, "
                                      f"lr {key.lr:g}, {key.convention}")

    def close(self) -> None:
        """Close the panel's widgets."""
        self._serial += 1
        for canvas in self.canvases:
            canvas.close()
        close_widgets(self.box)


def per_map_metrics_of(metrics: dict) -> dict:
    """A cached single-map entry's metrics, as :func:`per_map_metrics` gives them."""
    if "error" in metrics:
        return {"error": metrics["error"]}
    return {"AD": float(metrics["AD"]), "AG": float(metrics["AG"])}
