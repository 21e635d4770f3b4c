"""The small score-over-iterations plot: a polyline on an ipycanvas ``Canvas``.

Drawing it costs a few draw commands (the points travel as one float array), so it can follow
the optimisation live without slowing it down; a matplotlib render would cost tens of ms per
refresh. ``widget.figure()`` gives the publication-quality matplotlib version.

The plot paints its own opaque background: its text then reads the same on any page (dark
#333 on white, 12.6:1), whatever the notebook's theme. Like the main canvas, it sends nothing
before a browser has created it (``client_ready``) and scales down with the width it is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ipycanvas import Canvas, hold_canvas

from .common import DRAW_LOCK

__all__ = ["ScorePlot"]

#: Colours of the plot (on its own opaque background): background, frame, text, curve, best.
BACKGROUND, FRAME, TEXT, CURVE, BEST = "#ffffff", "#999999", "#333333", "#1f77b4", "#d62728"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


class ScorePlot(Canvas):
    """Score of the masked image against the iteration, with the best point marked.

    Example:
        >>> plot = ScorePlot()
        >>> plot.plot([0.1, 0.4, 0.5], max_iter=10)
        >>> plot.points.shape
        (3, 2)
    """

    def __init__(self, width: int = 240, height: int = 120, **kwargs: Any) -> None:
        from ipywidgets import Layout

        super().__init__(width=width, height=height,
                         layout=Layout(width=f"{width}px", max_width="100%", height="auto"),
                         **kwargs)
        #: Last plotted points in canvas pixels, (T + 1, 2) (for tests and diagnostics).
        self.points = np.zeros((0, 2))
        self._last: tuple | None = None
        self._ready = False  # a browser has created the plot: it may be drawn
        self.on_client_ready(self._replay)

    def _replay(self, *_: Any) -> None:
        self._ready = True
        if self._last is not None:
            self.plot(*self._last[0], **self._last[1])
        else:
            self.reset()

    def reset(self) -> None:
        """Blank the plot (its background only)."""
        self._last = None
        self.points = np.zeros((0, 2))
        if not self._ready:
            return
        with DRAW_LOCK, hold_canvas():
            self._background()

    def plot(self, scores: Any, max_iter: int | None = None, *, score_name: str = "logit",
             convention: str = "constructive") -> None:
        """Draw the curve.

        Args:
            scores: 1-D sequence, the score at iterations 0..T.
            max_iter: x-axis end (iterations requested); default T.
            score_name: y-axis label.
            convention: The best point is the max (constructive) or the min (destructive).
        """
        y = np.asarray(scores, dtype=np.float64).ravel()
        self._last = ((y, max_iter), {"score_name": score_name, "convention": convention})
        width, height = int(self.width), int(self.height)
        left, right, top, bottom = 40, 8, 8, 18
        pw, ph = width - left - right, height - top - bottom
        x_end = max(1, max_iter if max_iter else y.size - 1)
        if y.size:
            lo, hi = float(np.min(y)), float(np.max(y))
            if hi - lo < 1e-12:
                lo, hi = lo - 0.5, hi + 0.5
            xs = left + np.arange(y.size) / x_end * pw
            ys = top + (hi - y) / (hi - lo) * ph
            self.points = np.stack([xs, ys], axis=1)
        else:
            lo, hi = 0.0, 1.0
            self.points = np.zeros((0, 2))
        if not self._ready:  # drawn when a browser creates the plot
            return
        best = int(np.argmax(y) if convention == "constructive" else np.argmin(y)) \
            if y.size else None
        with DRAW_LOCK, hold_canvas():
            self._background()
            self._axes((left, top, pw, ph), lo, hi, x_end, score_name)
            if len(self.points) >= 2:
                self.stroke_style = CURVE
                self.line_width = 1.5
                self.stroke_lines(self.points)
            if best is not None:
                self.fill_style = BEST
                self.fill_circle(float(self.points[best, 0]), float(self.points[best, 1]), 3)

    def _background(self) -> None:
        self.clear()
        self.fill_style = BACKGROUND
        self.fill_rect(0, 0, int(self.width), int(self.height))

    def _axes(self, box: tuple[int, int, int, int], lo: float, hi: float, x_end: int,
              score_name: str) -> None:
        """Frame, tick numbers and axis names (``box`` is the plot area: left, top, w, h)."""
        left, top, pw, ph = box
        height = int(self.height)
        self.stroke_style = FRAME
        self.line_width = 1
        self.stroke_rect(left, top, pw, ph)
        self.fill_style = TEXT
        self.font = "10px sans-serif"
        self.text_align = "right"
        self.fill_text(_fmt(hi), left - 3, top + 8)
        self.fill_text(_fmt(lo), left - 3, top + ph)
        self.text_align = "left"
        self.fill_text("0", left, height - 5)
        self.text_align = "right"
        self.fill_text(f"{x_end}  iteration", left + pw, height - 5)
        self.text_align = "left"
        self.fill_text(score_name, left + 3, top + 10)
