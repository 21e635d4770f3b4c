"""The "point at what to explain" panel: the photo with the model's segments or boxes on it.

Shown for segmentation models and detectors only (the kind of the model's output on the
first photo, :func:`~opticam_widgets.widget.pointing.output_kind`; a classifier keeps its class
list). The photo is drawn with each predicted segment filled in its class's colour and
outlined, or with each detected box and its ``class · score``. A click (or a tap) on a
segment or a box explains it; on a segmentation model a box dragged over the photo explains
that region. The keyboard way: the **Explain** list names every segment and box (class,
size or score, where), choosing one is the click. The choice is said in a polite live region.

For an embedding model (a dual encoder's ``image_tower`` bundle, or a model declared with
``OptiCAMWidget(model, kind="embedding")``) the panel holds the
:class:`~.reference.ReferenceChooser` instead: the **Reference photo** strip and a **Use as
reference** button (each photo's map explains its likeness to the reference), and for a dual
encoder a **Prompt** box (Enter explains the prompt). Until one is chosen, a photo is explained
by the likeness to its own embedding. The class list and the panels that compare classes
(why A and not B, brush to test) are hidden then: an embedding has no classes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w
import numpy as np
from ipycanvas import Canvas, hold_canvas

from ..engine.explainer import OptiCAM
from ..engine.targets import Detected, MultiLabel, Region, Target
from ..support.outputs import dense_output
from .canvas import display_size, scale_picture
from .common import DRAW_LOCK, close_widgets
from .messages import esc, note_html
from .pointing import (
    EMBEDDING_KINDS,
    Pointable,
    detections,
    dragged,
    pick,
    pointed_label,
    resolve_kind,
    segments,
)
from .reference import ReferenceChooser, model_output
from .state import ClassNames, ImageState, Session

__all__ = ["PointingPanel"]

#: Fill colours of the classes (RGB), cycled; a segment is filled at :data:`FILL` opacity.
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                    [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230]], np.uint8)
FILL = 0.35
#: A press and release farther apart than this (canvas pixels) is a dragged box.
DRAG_PX = 4


def paint(picture: np.ndarray, things: Sequence[Pointable], chosen: Pointable | None,
          size: tuple[int, int]) -> np.ndarray:
    """The photo (h, w, 3) with each segment filled and outlined (RGBA uint8)."""
    h, w = picture.shape[:2]
    rgb = picture.astype(np.float32)
    for thing in things:
        if thing.mask is None:
            continue
        rows = (np.arange(h) * size[0] // h)[:, None]
        cols = (np.arange(w) * size[1] // w)[None, :]
        mask = thing.mask[rows, cols]
        colour = PALETTE[thing.label % len(PALETTE)].astype(np.float32)
        rgb[mask] = (1 - FILL) * rgb[mask] + FILL * colour
        edge = mask & ~_eroded(mask)
        rgb[edge] = 255.0 if thing is chosen else colour
    alpha = np.full((h, w, 1), 255, np.uint8)
    return np.concatenate([rgb.clip(0, 255).astype(np.uint8), alpha], axis=-1)


def _eroded(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


class PointingPanel:
    """The photo with what the model finds on it; a click picks what to explain.

    Args:
        cam: The engine (its model and preprocessing).
        names: Returns the class names, once known.
        choose: Called with the target picked (a ``Region`` or a ``Box``): explain it.
        max_size: Longest side of the panel's canvas.
        session: The widget's photos (an embedding model's reference is one of them).
        classes: The class list's controls and the panels that compare classes (hidden for
            an embedding model).
    """

    def __init__(self, cam: OptiCAM, names: Callable[[], ClassNames | None],
                 choose: Callable[[Target], None], max_size: int = 300, *,
                 session: Session | None = None, classes: Sequence[w.Widget] = ()) -> None:
        self.cam = cam
        self.names = names
        self.choose = choose
        self.max_size = int(max_size)
        self.classes = tuple(classes)
        #: The model's kind (:data:`~opticam_widgets.widget.pointing.KINDS`), from the first
        #: photo; ``None`` before.
        self.kind: str | None = None
        #: The kind declared by the widget's ``kind=`` (``None``: read from the output).
        self.declared: str | None = None
        #: The class head's activation: ``"sigmoid"`` lists a multi-label head's sigmoids.
        self.activation = "softmax"
        #: The segments or boxes of the photo shown.
        self.things: list[Pointable] = []
        self.chosen: Pointable | None = None
        self.canvas = Canvas(width=self.max_size, height=self.max_size,
                             layout=w.Layout(width=f"{self.max_size}px", max_width="100%",
                                             height="auto"))
        self.canvas.add_class("opticam-pointing-canvas")
        #: The keyboard way: every segment or box, by name.
        self.objects = w.Dropdown(options=[], description="Explain",
                                  tooltip="What to explain: a segment or a box on the photo",
                                  layout=w.Layout(width="auto"))
        #: What was picked (a polite live region).
        self.text = w.HTML("")
        self.text.add_class("opticam-panel-live")
        self.title = w.HTML("<b>Point at what to explain</b>: click a segment or a box on the "
                            "photo, or choose it in the list")
        #: An embedding model's reference strip, **Use as reference** and prompt.
        self.chooser = ReferenceChooser(cam, session or Session(), self._pick)
        self.chooser.box.layout.display = "none"
        self.prompt, self.reference = self.chooser.prompt, self.chooser.reference
        self._dual = self.chooser.box
        self._spatial = w.VBox([self.objects, self.canvas])
        #: What the widget's layout holds (hidden for a classifier).
        self.box = w.VBox([self.title, self._dual, self._spatial, self.text],
                          layout=w.Layout(display="none"))
        self.box.add_class("opticam-pointing")
        self._picture: np.ndarray | None = None
        self._output: Any = None
        self._size = (1, 1)
        self._press: tuple[float, float] | None = None
        self._lock = threading.Lock()
        self._quiet = False
        self._state: ImageState | None = None
        self._per_class: dict[int, Target] = {}
        self.closed = False
        self._wire()

    def _wire(self) -> None:
        self.objects.observe(self._on_list, "value")
        self.canvas.on_mouse_down(self._down)
        self.canvas.on_mouse_up(self._up)
        self.canvas.on_touch_start(lambda t: self._down(*t[0]) if t else None)
        self.canvas.on_touch_end(lambda t: self._up(*t[0]) if t else self._tap())
        self.canvas.on_client_ready(lambda *_: self._paint())

    def class_target(self, label: int) -> Any:
        """What a class chosen in the class list explains, for the model's kind.

        A classifier: the class (``MultiLabel(class)`` for a sigmoid head); a segmentation
        model: ``Region(class)``, where the model predicts it; a detector: its best box of
        that class (``Detected(label=class)``). One target object per class, so that a class
        chosen again finds its cached run.
        """
        if self.kind == "segmentation":
            return self._per_class.setdefault(label, Region(label))
        if self.kind == "detection":
            return self._per_class.setdefault(label, Detected(label=label))
        return MultiLabel(label) if self.activation == "sigmoid" else label

    def _tap(self) -> None:
        if self._press is not None:
            self._up(*self._press)

    # ------------------------------------------------------------------ a new photo
    def image_shown(self, state: ImageState) -> None:
        """A photo goes on screen: find its segments or boxes; pick a default target.

        The default (so that the first run explains something the model can explain) is the
        largest segment of the most probable class, or the best box.
        """
        if self.closed or self.kind == "classes" and self.activation == "softmax":
            return
        output, size = model_output(self.cam, state.pixels)
        self.kind = self.kind or resolve_kind(self.declared, output, self.cam.model)
        if self.kind == "classes":
            if self.activation == "sigmoid":  # a multi-label head: the labels' sigmoids
                state.probs = MultiLabel().probabilities(output)[0].double().numpy()
            return
        self._state = state
        self.box.layout.display = ""
        if self.kind in EMBEDDING_KINDS:
            self._embedding_shown(state, output)
            return
        with self._lock:
            self._output, self._size = output, size
            dense = dense_output(output)
            self.things = (segments(dense[0], size) if self.kind == "segmentation"
                           else detections(output[0]))
        self._load_picture(state)
        if getattr(state, "pointed", None) is None and self.things:
            first = [t for t in self.things if t.label == int(np.argmax(state.probs))]
            state.pointed = (first or self.things)[0].target()
            self.chosen = (first or self.things)[0]
        self._list()
        self._paint()
        self._say(state)

    def _embedding_shown(self, state: ImageState, output: Any) -> None:
        self._dual.layout.display, self._spatial.layout.display = "", "none"
        for control in self.classes:  # an embedding has no classes to list
            control.layout.display = "none"
        dual = self.kind == "dual"
        self.chooser.show_prompt(dual)
        self.title.value = ("<b>What to explain</b>: the likeness of each photo to a reference "
                            "photo (pick it in the strip, or use the photo shown)"
                            + (", or type a prompt and press Enter" if dual else ""))
        state.pointed = self.chooser.target(output)
        self._say(state)

    def use_as_reference(self) -> None:
        """The photo shown becomes the reference (an embedding model): its likeness is explained."""
        if self._state is not None and self.kind in EMBEDDING_KINDS:
            self.chooser.use_as_reference()

    def _load_picture(self, state: ImageState) -> None:
        h, w = display_size(*state.rgb.shape[:2], self.max_size)
        self._picture = np.ascontiguousarray(scale_picture(state.rgb, (h, w)))
        with DRAW_LOCK:
            if (self.canvas.height, self.canvas.width) != (h, w):
                self.canvas.width, self.canvas.height = w, h
                self.canvas.layout.width = f"{w}px"

    def _list(self) -> None:
        names = self.names()
        labels = names.names if names is not None else None
        self._quiet = True
        try:
            self.objects.options = [(t.describe(labels), i) for i, t in enumerate(self.things)]
            chosen = self.things.index(self.chosen) if self.chosen in self.things else None
            self.objects.value = chosen
        finally:
            self._quiet = False

    # ------------------------------------------------------------------ pointing
    def _to_model(self, x: float, y: float) -> tuple[float, float]:
        """Canvas pixels → pixels of the image the model sees."""
        h, w = self._picture.shape[:2] if self._picture is not None else self._size
        return x * self._size[1] / w, y * self._size[0] / h

    def _down(self, x: float, y: float) -> None:
        self._press = (x, y)

    def _up(self, x: float, y: float) -> None:
        start, self._press = self._press, None
        if start is None or not self.things and self.kind != "segmentation":
            return
        if self.kind == "segmentation" and max(abs(x - start[0]), abs(y - start[1])) > DRAG_PX:
            (x0, y0), (x1, y1) = self._to_model(*start), self._to_model(x, y)
            box = (max(min(x0, x1), 0), max(min(y0, y1), 0),
                   min(max(x0, x1), self._size[1]), min(max(y0, y1), self._size[0]))
            self.chosen = None
            self._list()
            self._paint()
            self._pick(dragged(dense_output(self._output)[0], box, self._size))
            return
        thing = pick(self.things, *self._to_model(x, y))
        if thing is None:
            self.text.value = note_html("nothing there: click a segment or a box", "warning")
            return
        self.point(thing)

    def _on_list(self, change: dict) -> None:
        if not self._quiet and change["new"] is not None:
            self.point(self.things[int(change["new"])])

    def point(self, thing: Pointable) -> None:
        """Explain ``thing`` (one of :attr:`things`)."""
        self.chosen = thing
        self._list()
        self._paint()
        self._pick(thing.target())

    def _pick(self, target: Target) -> None:
        names = self.names()
        label = pointed_label(target, names.names if names is not None else None)
        self.text.value = f"Explaining {esc(label)}"
        self.choose(target)

    # ------------------------------------------------------------------ drawing
    def _say(self, state: ImageState) -> None:
        what = "segments" if self.kind == "segmentation" else "boxes"
        if self.kind in EMBEDDING_KINDS:
            self.text.value = f"Explaining {esc(pointed_label(state.pointed, None))}"
            return
        if not self.things:
            self.text.value = note_html(f"the model finds no {what} on this photo", "warning")
            return
        pointed = getattr(state, "pointed", None)
        names = self.names()
        label = pointed_label(pointed, names.names if names is not None else None)
        self.text.value = f"{len(self.things)} {what} · explaining {esc(label)}"

    def _paint(self) -> None:
        if self._picture is None or self.closed:
            return
        rgba = paint(self._picture, self.things, self.chosen, self._size)
        h, w = self._picture.shape[:2]
        sy, sx = h / self._size[0], w / self._size[1]
        names = self.names()
        with DRAW_LOCK, hold_canvas():
            self.canvas.clear()
            self.canvas.put_image_data(rgba, 0, 0)
            for thing in self.things if self.kind == "detection" else ():
                x0, y0, x1, y1 = thing.box
                colour = PALETTE[thing.label % len(PALETTE)]
                chosen = thing is self.chosen
                self.canvas.stroke_style = "#ffffff" if chosen else "rgb({},{},{})".format(
                    *colour)
                self.canvas.line_width = 3 if chosen else 2
                self.canvas.stroke_rect(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
                self.canvas.fill_style = self.canvas.stroke_style
                self.canvas.font = "12px sans-serif"
                text = thing.describe(names.names if names is not None else None)
                self.canvas.fill_text(text.split(" · box")[0], x0 * sx + 2, max(y0 * sy - 2, 10))

    def close(self) -> None:
        """Close the panel's widgets."""
        self.closed = True
        self.chooser.close()
        close_widgets(self.canvas, self.box)
