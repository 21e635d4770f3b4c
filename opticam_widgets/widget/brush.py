"""Brush to test: paint over the photo and see the class probabilities change, live.

A one-gesture deletion test of a map: hide what the map says matters, and the class should
fall. The **Brush to test** toggle opens a panel with the photo on its own canvas; a pointer
drag paints over it (the painted pixels are filled with black, as Opti-CAM's masks fill what
they hide), and the probabilities of the image's listed classes are computed again with the
painted pixels filled: before → after, as text (a polite live region, so a screen reader reads
the new numbers). The keyboard way: **Hide top 10% / 20% / 50%** fill the most important
pixels of the map on screen; **Reset** brings the photo back.

The forward pass is the package's own evaluation helper
(:func:`~opticam_widgets.evaluation.metrics.masked_probabilities`) on the photo as the model
sees it (resized to its input size; never a full-size float copy of a big photo), in a job of
the widget's worker (one job at a time uses the model: during a run, the numbers come when
the run ends). Strokes made while a forward pass runs are folded into the next one.

Example:
    >>> import numpy as np
    >>> keep = np.ones((5, 9), np.float32)
    >>> stamp_segment(keep, 1.0, 2.0, 7.0, 2.0, 1.0)
    >>> keep.astype(int)
    array([[1, 1, 1, 1, 1, 1, 1, 1, 1],
           [1, 0, 0, 0, 0, 0, 0, 0, 1],
           [0, 0, 0, 0, 0, 0, 0, 0, 0],
           [1, 0, 0, 0, 0, 0, 0, 0, 1],
           [1, 1, 1, 1, 1, 1, 1, 1, 1]])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w
import numpy as np
import torch
from ipycanvas import Canvas, hold_canvas

from ..engine.explainer import OptiCAM
from ..support.jobs import Worker, exiting
from .canvas import display_size, scale_picture
from .common import DRAW_LOCK, close_widgets
from .compare import Cancelled, interruptible
from .messages import brush_html, error_html, note_html
from .state import ClassNames, ImageState, Session

__all__ = ["HIDE_FRACTIONS", "BrushPanel", "brushed_probabilities", "hide_top", "stamp_segment"]

#: The keyboard alternative's buttons: fractions of the map's most important pixels hidden.
HIDE_FRACTIONS = (0.1, 0.2, 0.5)


def stamp_segment(keep: np.ndarray, x0: float, y0: float, x1: float, y1: float,
                  radius: float) -> None:
    """Set ``keep`` to 0 within ``radius`` pixels of the segment (x0, y0)–(x1, y1), in place.

    Pixel centres are at integer coordinates (a canvas's pixel (i, j) covers [j, j+1) × [i, i+1),
    its centre j + 0.5 is at coordinate j here: events give the pointer's position in the
    drawing's pixels).
    """
    h, w = keep.shape
    r = max(float(radius), 0.5)
    left, right = int(max(0, np.floor(min(x0, x1) - r))), int(min(w - 1, np.ceil(max(x0, x1) + r)))
    top, bottom = int(max(0, np.floor(min(y0, y1) - r))), int(min(h - 1, np.ceil(max(y0, y1) + r)))
    if left > right or top > bottom:
        return
    ys, xs = np.mgrid[top:bottom + 1, left:right + 1].astype(np.float32)
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.zeros_like(xs) if length2 == 0 else np.clip(
        ((xs - x0) * dx + (ys - y0) * dy) / length2, 0.0, 1.0)
    near = (xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2 <= r * r
    keep[top:bottom + 1, left:right + 1][near] = 0.0


def hide_top(saliency: np.ndarray, fraction: float) -> np.ndarray:
    """A keep-mask hiding the ``fraction`` most important pixels of a map (ties: first pixels).

    Example:
        >>> hide_top(np.array([[0.1, 0.9], [0.5, 0.2]]), 0.5).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"`fraction` must be in [0, 1], got {fraction!r}")
    flat = np.asarray(saliency, dtype=np.float32).ravel()
    keep = np.ones(flat.shape, np.float32)
    keep[np.argsort(-flat, kind="stable")[:round(fraction * flat.size)]] = 0.0
    return keep.reshape(np.shape(saliency))


def brushed_probabilities(cam: OptiCAM, pixels: torch.Tensor, keep: np.ndarray,
                          classes: Sequence[int],
                          cancel: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of ``classes`` on the photo, and on the photo with ``keep == 0`` filled.

    One call of :func:`~opticam_widgets.evaluation.metrics.masked_probabilities` on the photo
    resized to the model's input (as the model sees it); ``keep`` (any size, 1 keeps a pixel,
    0 fills it with black) is resized there.

    Returns:
        ``(before, after)``: float64 arrays, one probability per class.
    """
    from ..evaluation.metrics import masked_probabilities

    pre = cam.preprocess
    if getattr(pre, "size", None) is not None:
        pixels = pre.resize(pixels[None])[0]
    maps = torch.from_numpy(np.ascontiguousarray(keep, dtype=np.float32))
    maps = maps[None].expand(len(classes), -1, -1)
    with interruptible(cam.model, cancel):
        # the classes by position: one per map, whatever the keyword is named
        before, after = masked_probabilities(cam.model, pixels, maps, list(classes), pre)
    return before.double().numpy(), after.double().numpy()


class BrushPanel:
    """The **Brush to test** toggle and its panel: canvas, hide buttons, reset, probabilities.

    Args:
        cam: The widget's engine (its model and preprocessing).
        worker: The widget's worker (one job at a time uses the model).
        session: The widget's images and the map on screen.
        names: Returns the class names (``None`` before any image).
        max_size: Longest side of the panel's canvas.
    """

    def __init__(self, cam: OptiCAM, worker: Worker, session: Session,
                 names: Callable[[], ClassNames | None], max_size: int = 300) -> None:
        self.cam, self.worker, self.session, self.names = cam, worker, session, names
        self.max_size = max_size
        #: Opens and closes the panel.
        self.toggle = w.ToggleButton(description="Brush to test", icon="paint-brush",
                                     tooltip="paint over the photo and see the class "
                                             "probabilities change",
                                     layout=w.Layout(width="auto", align_self="flex-start"))
        #: The photo with the painted pixels filled (a pointer drag paints).
        self.canvas = Canvas(width=max_size, height=max_size,
                             layout=w.Layout(width=f"{max_size}px", max_width="100%",
                                             height="auto"))
        self.size = w.IntSlider(value=12, min=2, max=60, description="Brush size",
                                style={"description_width": "initial"},
                                layout=w.Layout(width="240px"))
        #: Hide the 10 / 20 / 50% most important pixels of the map shown.
        self.hide = [w.Button(description=f"Hide top {round(f * 100)}%",
                              tooltip=f"fill the {round(f * 100)}% most important pixels of "
                                      "the map shown", layout=w.Layout(width="auto"))
                     for f in HIDE_FRACTIONS]
        self.reset = w.Button(description="Reset", icon="undo", tooltip="the whole photo again",
                              layout=w.Layout(width="auto"))
        #: The probabilities before → after (a polite live region).
        self.text = w.HTML("")
        self.text.add_class("opticam-panel-live")  # announced politely (see .upload)
        self.panel = w.VBox([
            w.HBox([self.size, *self.hide, self.reset],
                   layout=w.Layout(flex_flow="row wrap", align_items="center")),
            w.HBox([self.canvas, self.text], layout=w.Layout(flex_flow="row wrap",
                                                            align_items="flex-start")),
        ], layout=w.Layout(display="none"))
        self.panel.add_class("opticam-brush")
        #: The toggle and the panel (what the widget's layout holds).
        self.box = w.VBox([self.toggle, self.panel])
        self.keep: np.ndarray | None = None  # (h, w) float32 at the canvas's size, 1 = kept
        self._picture: np.ndarray | None = None  # uint8 (h, w, 3) at the canvas's size
        self._image: ImageState | None = None
        self._last: tuple[float, float] | None = None  # the pointer while it paints
        self._lock = threading.Lock()
        self._dirty = False
        self._active = False
        self.closed = False
        self._wire()

    def _wire(self) -> None:
        self.toggle.observe(lambda ch: self.open(bool(ch["new"])), "value")
        for fraction, button in zip(HIDE_FRACTIONS, self.hide):
            button.on_click(lambda _b, f=fraction: self.hide_top(f))
        self.reset.on_click(lambda _b: self.load())
        self.canvas.on_mouse_down(self._down)
        self.canvas.on_mouse_move(self._move)
        self.canvas.on_mouse_up(self._up)
        self.canvas.on_mouse_out(self._up)
        # a finger paints too (tablets, touch screens): the first touch is the brush
        self.canvas.on_touch_start(lambda touches: self._touch(self._down, touches))
        self.canvas.on_touch_move(lambda touches: self._touch(self._move, touches))
        self.canvas.on_touch_end(lambda touches: self._touch(self._up, touches))
        self.canvas.on_touch_cancel(lambda touches: self._touch(self._up, touches))
        self.canvas.on_client_ready(lambda *_: self._paint())

    # ------------------------------------------------------------------ the photo
    def open(self, visible: bool = True) -> None:
        """Open (the photo shown, whole) or close the panel."""
        self.panel.layout.display = "" if visible else "none"
        if visible:
            self.load()

    def image_changed(self, *_: Any) -> None:
        """Another photo is shown: start again on it (when the panel is open)."""
        if self.toggle.value:
            self.load()

    def load(self) -> None:
        """The photo shown, whole again, with its probabilities."""
        if not self.session.images:
            self.text.value = note_html("no photo yet")
            return
        state = self.session.image
        h, w = display_size(*state.rgb.shape[:2], self.max_size)
        with self._lock:
            self._image = state
            self._picture = np.ascontiguousarray(scale_picture(state.rgb, (h, w)))
            self.keep = np.ones((h, w), np.float32)
            self._dirty = False
        with DRAW_LOCK:
            if (self.canvas.height, self.canvas.width) != (h, w):
                self.canvas.width, self.canvas.height = w, h
                self.canvas.layout.width = f"{w}px"
        self._paint()
        self._say(state.probs[state.classes], state.probs[state.classes])

    def _paint(self) -> None:
        """Draw the photo with the painted pixels filled."""
        if self._picture is None or self.keep is None:
            return
        rgb = (self._picture * self.keep[..., None]).astype(np.uint8)
        rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
        with DRAW_LOCK, hold_canvas():
            self.canvas.put_image_data(rgba, 0, 0)

    def hide_top(self, fraction: float) -> None:
        """Fill the ``fraction`` most important pixels of the map on screen (keyboard way)."""
        entry = self.session.shown if self.session.images else None
        if entry is None or self.keep is None:
            self.text.value = note_html("no map yet: run Opti-CAM first", "warning")
            return
        saliency = entry.result.saliency_at(self.keep.shape)[0].numpy()
        with self._lock:
            self.keep = hide_top(saliency, fraction)
        self._paint()
        self.request()

    # ------------------------------------------------------------------ the pointer
    def _down(self, x: float, y: float) -> None:
        self._last = (x, y)
        self._stroke(x, y)

    def _move(self, x: float, y: float) -> None:
        if self._last is not None:
            self._stroke(x, y)

    def _touch(self, handler: Callable[[float, float], None],
               touches: list[tuple[float, float]]) -> None:
        """A touch event as the pointer: its first touch (a lifted finger: where it was)."""
        if touches:
            handler(*touches[0])
        elif self._last is not None:
            handler(*self._last)

    def _up(self, x: float, y: float) -> None:
        if self._last is not None:
            self._stroke(x, y)
            self._last = None

    def _stroke(self, x: float, y: float) -> None:
        """Paint from the last pointer position to (x, y) and ask for new probabilities."""
        if self.keep is None or self._last is None:
            return
        (x0, y0), r = self._last, float(self.size.value) / 2
        with self._lock:
            stamp_segment(self.keep, x0 - 0.5, y0 - 0.5, x - 0.5, y - 0.5, r)
        with DRAW_LOCK, hold_canvas():
            c = self.canvas
            c.fill_style = c.stroke_style = "black"
            c.line_width, c.line_cap = 2 * r, "round"
            c.stroke_line(x0, y0, x, y)
            c.fill_circle(x, y, r)
        self._last = (x, y)
        self.request()

    # ------------------------------------------------------------------ the forward pass
    def request(self) -> None:
        """Compute the probabilities of the painted photo (folded into a pending job)."""
        with self._lock:
            self._dirty = True
            if self._active or self.closed:
                return
            self._active = True
        if self.worker.busy:
            self.text.value = note_html("the probabilities come when the run ends…")
        self._submit()

    def _submit(self) -> None:
        self.worker.submit(self._job, "brush", cancel_previous=False, on_skip=self._skipped)

    def _skipped(self) -> None:
        """A run cancelled the queued job: queue it again behind that run."""
        if self.closed or exiting():
            with self._lock:
                self._active = False
            return
        self._submit()

    def _job(self, cancel: threading.Event) -> None:
        while True:
            with self._lock:
                if not self._dirty or self._image is None or self.keep is None:
                    self._active = False
                    return
                self._dirty = False
                state, keep = self._image, self.keep.copy()
            try:
                before, after = brushed_probabilities(self.cam, state.pixels, keep,
                                                      state.classes, cancel)
            except Cancelled:
                with self._lock:
                    self._dirty = True
                continue
            except Exception as exc:  # said in the panel; the widget goes on
                with self._lock:
                    self._active = False
                self.text.value = error_html(exc)
                return
            if state is self._image and not exiting():
                self._say(before, after, hidden=1.0 - float(keep.mean()))

    def _say(self, before: np.ndarray, after: np.ndarray, hidden: float = 0.0) -> None:
        state, names = self._image, self.names()
        if state is None or names is None:
            return
        rows = [(names[i], i == state.target, float(b), float(a))
                for i, b, a in zip(state.classes, before, after)]
        self.text.value = brush_html(rows, hidden)

    def close(self) -> None:
        """Stop asking for forward passes and close the panel's widgets."""
        self.closed = True
        close_widgets(self.canvas, self.box)
