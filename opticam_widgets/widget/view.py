"""Puts results on screen: the canvas, the score plot, the progress bar, status and metrics.

:class:`ResultView` is the only writer of those widgets' values during and after a run; it
draws what it is given (an :class:`~opticam_widgets.widget.state.Entry`, a progress step, an
error) and decides nothing about runs or caching.

Example:
    >>> from opticam_widgets.widget.canvas import SaliencyCanvas
    >>> from opticam_widgets.widget.controls import build_controls
    >>> view = ResultView(build_controls(), SaliencyCanvas(64))
    >>> view.status("hello")
    >>> view.controls.status.value
    '<span>hello</span>'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.targets import MultiLabel
from .canvas import SaliencyCanvas
from .controls import Controls
from .messages import (
    error_html,
    esc,
    label_html,
    metrics_html,
    result_html,
    status_html,
    step_html,
)
from .pointing import pointed_label
from .state import ClassNames, Entry, ImageState

__all__ = ["ResultView"]


class ResultView:
    """Draws entries, progress and messages on the widget's controls and canvas.

    Args:
        controls: The widget's controls.
        canvas: The main canvas.
        notes: Grey notes kept under every status message (plain text).
    """

    def __init__(self, controls: Controls, canvas: SaliencyCanvas,
                 notes: list[str] | None = None) -> None:
        self.controls = controls
        self.canvas = canvas
        #: Grey notes shown under every status message.
        self.notes = list(notes or [])
        #: Class names (set once the model's number of classes is known).
        self.names: ClassNames | None = None

    # ------------------------------------------------------------------ text
    def status(self, message: str) -> None:
        """Set the status line; ``message`` is HTML whose dynamic parts are already escaped."""
        self.controls.status.value = status_html(message, self.notes)

    def error(self, exc: BaseException) -> None:
        """Show an error in the status line."""
        self.status(error_html(exc))

    def label(self, target: Any) -> str:
        """The HTML label of a class or of a target pointed at (``""`` before any name)."""
        names = self.names.names if self.names is not None else None
        if isinstance(target, MultiLabel) and len(target.classes or ()) == 1:
            return label_html(names, target.classes[0].index) + " · sigmoid"
        if target is not None and not isinstance(target, (int, np.integer)):
            return f"<b>{esc(pointed_label(target, names))}</b>"
        return label_html(names, target)

    def classes(self, state: ImageState) -> list[tuple[str, int]]:
        """The class selector's options for an image."""
        names = self.names
        if names is None:
            return []
        return [(names.option(i, state.probs[i]), i) for i in state.classes]

    # ------------------------------------------------------------------ runs
    def running(self, running: bool, iterations: int | None = None) -> None:
        """Progress bar and Stop button of a run starting (with its iterations) or ending."""
        c = self.controls
        if iterations is not None:
            c.progress.max = iterations
            c.progress.value = 0
        c.progress.bar_style = "info" if running else ""
        c.stop_button.disabled = not running

    def preview(self, saliency: np.ndarray, convention: str) -> None:
        """Draw a map before its result exists (the cached iteration 0 when Run is pressed)."""
        self.canvas.inverse = convention == "destructive"
        self.canvas.set_saliency(saliency)

    def step(self, target: int, progress: Any) -> None:
        """Progress bar and status line of a running optimisation."""
        self.controls.progress.value = progress.step
        self.status(step_html(self.label(target), progress))

    def displayed(self, result: Any) -> np.ndarray:
        """A result's first map at the canvas's size, float32 (h, w) (what the canvas draws)."""
        return result.saliency_at(self.canvas.size)[0].numpy()

    def show(self, entry: Entry, *, live: bool = False, max_iter: int | None = None) -> None:
        """Draw an entry: map and score plot, and (unless ``live``) metrics and status."""
        result, c = entry.result, self.controls
        self.preview(self.displayed(result), result.convention)
        # live: the axis spans the iterations asked; an ended run's: those it ran (a run
        # stopped at 31 of 500 fills the plot, not 6% of it)
        c.score_plot.plot(result.scores[0].numpy(),
                          (max_iter or entry.key.iterations) if live else None,
                          score_name=result.score, convention=result.convention)
        if live:
            return
        iterations = entry.key.iterations
        c.metrics.value = metrics_html(entry.metrics)
        c.progress.max = iterations
        c.progress.value = result.iterations if result.cancelled else iterations
        pointed = not isinstance(entry.key.target, (int, np.integer))
        what = entry.key.target if pointed else result.target[0]
        self.status(result_html(self.label(what), result, iterations))

    def clear(self) -> None:
        """No map: blank the heatmap, progress, metrics and score plot."""
        self.canvas.set_saliency(None)
        self.controls.progress.value = 0
        self.controls.metrics.value = ""
        self.controls.score_plot.reset()
