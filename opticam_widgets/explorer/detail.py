"""The explorer's detail view: one row, live in an ``OptiCAMWidget`` or as a large static view.

With a model, the row's photo is loaded into an embedded :class:`~opticam_widgets.widget.app.
OptiCAMWidget` (made once, on the first open, with the store's layer, iterations, learning
rate and early stopping) and the row's class is explained again, live: the widget's own
sliders, class selector, comparison and export all work. Without a model, the stored map is
shown over the photo (rebuilt exactly from the store, see :meth:`DatasetResults.saliency
<opticam_widgets.dataset.results.DatasetResults.saliency>`) with the row's numbers.

Example:
    >>> view = DetailView(results, model=None, thumbnail=reader_fn)  # doctest: +SKIP
    >>> view.open(3)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as w
import numpy as np

from ..dataset.yardsticks import parse_column
from ..display.render import overlay, to_png_bytes
from ..model.bundle import ModelBundle
from ..widget.common import close_widgets
from .grid import FONT
from .query import is_unknown, is_wrong
from .summary import yardsticks_html

__all__ = ["DetailView", "check_model", "facts_html", "row_yardsticks"]

#: Longest side of the static view, in pixels (the widget's canvas default).
STATIC_SIZE = 448


def check_model(model: Any, settings: dict[str, Any]) -> Any:
    """The model to re-run maps with: ``None``, a spec (loaded), a module or bundle (checked).

    Raises:
        TypeError: ``model`` is not a module, bundle, spec or ``None``.
        ValueError: ``model`` is not the one the results were made with (by name).
    """
    if model is None:
        return None
    if isinstance(model, str):
        from ..model.zoo import load_model

        model = load_model(model)
    from torch import nn

    if not isinstance(model, (nn.Module, ModelBundle)):
        raise TypeError(f"`model` must be the classifier (a torch module or ModelBundle) the "
                        f"results were made with, a spec such as 'default', or None; got "
                        f"{type(model).__name__}")
    name = model.name if isinstance(model, ModelBundle) else type(model).__name__
    stored = settings.get("model")
    if stored is not None and name != stored:
        raise ValueError(f"`model` is {name!r} but the results were made with {stored!r}; "
                         "pass that model (the live maps would differ), or model=None to "
                         "browse the stored maps")
    return model


def facts_html(row: Any) -> str:
    """The numbers of one row, and its yardsticks per method when the store has them."""
    def num(v: Any, spec: str) -> str:
        return "—" if is_unknown(v) else format(float(v), spec)

    verdict = ("unknown (no label)" if is_unknown(row["correct"])
               else "wrong" if is_wrong(row["correct"]) else "right")
    items = [("image", row["id"]), ("true class", row["true_class"]),
             ("predicted", f"{row['predicted_class']} ({num(row['predicted_prob'], '.1%')})"
                           f" · {verdict}"),
             ("map of", row["target_class"]),
             ("p → o", f"{num(row['prob'], '.3f')} → {num(row['masked_prob'], '.3f')}"),
             ("drop / gain", f"{num(row['drop'], '.1f')}% / {num(row['gain'], '.1f')}%"),
             ("score gain", f"{num(row['score_gain'], '.3g')} in {row['iterations']} "
                            "iterations")]
    cells = "".join(f"<tr><td style='padding-right:8px;opacity:0.85'>{escape(k)}</td>"
                    f"<td>{escape(str(v))}</td></tr>" for k, v in items)
    return (f"<table style='color:{FONT};font-size:var(--jp-ui-font-size1, 13px)'>{cells}</table>"
            + yardsticks_html(row_yardsticks(row), "Yardsticks of this row, per method"))


def row_yardsticks(row: Any) -> dict[str, dict[str, tuple[float, float, int]]]:
    """``{yardstick: {method: (value, nan, 1)}}`` of one row (missing values left out).

    Example:
        >>> import pandas as pd
        >>> row_yardsticks(pd.Series({"drop": 1.0, "gradcam:AD_mean": 4.0,
        ...                           "opticam:AD_mean": None}))
        {'AD_mean': {'gradcam': (4.0, nan, 1)}}
    """
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for col, value in row.items():
        parsed = parse_column(col)
        if parsed is not None and not is_unknown(value):
            out.setdefault(parsed[1], {})[parsed[0]] = (float(value), float("nan"), 1)
    return out


class DetailView:
    """The row opened from the grid.

    Args:
        results: The :class:`~opticam_widgets.dataset.results.DatasetResults`.
        model: The checked model (see :func:`check_model`), or ``None`` (static view).
        thumbnail: Returns a row's stored thumbnail, uint8 (h, w, 3) (photos without a file).
    """

    def __init__(self, results: Any, model: Any, thumbnail: Callable[[int], np.ndarray]) -> None:
        self.results = results
        self.model = model
        self._thumbnail = thumbnail
        #: The embedded widget (made on the first live open), or ``None``.
        self.widget: Any = None
        #: The index label of the row shown, or ``None``.
        self.row: int | None = None
        self.title = w.HTML()
        self.title.add_class("opticam-detail-title")  # a new title scrolls the view to it
        self.close_button = w.Button(description="close", icon="times",
                                     layout=w.Layout(width="auto"))
        self.close_button.on_click(lambda _b: self.hide())
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self.facts = w.HTML(layout=w.Layout(min_width="0"))
        self.body = w.Box(layout=w.Layout(display="flex", flex_flow="row wrap",
                                          grid_gap="12px", width="100%"))
        self.box = w.VBox([w.HBox([self.title, self.close_button],
                                  layout=w.Layout(justify_content="space-between",
                                                  align_items="center", width="100%")),
                           self.body],
                          layout=w.Layout(display="none", width="100%", padding="6px 0",
                                          border_top="1px solid var(--jp-border-color2, #bdbdbd)"))

    def photo(self, row: int, r: Any) -> Any:
        """The photo of a row: its file when it is there, else the stored thumbnail."""
        path = r["path"]
        if isinstance(path, str) and os.path.isfile(path):
            return path
        return self._thumbnail(row)

    def open(self, row: int, r: Any) -> None:
        """Show row ``row`` (``r``: its row of the explorer's table)."""
        self.row = row
        live = self.model is not None
        self.title.value = (f"<b style='color:{FONT}'>{escape(str(r['id']))}</b>"
                            f"<span style='color:{FONT}'> · "
                            f"{'live Opti-CAM' if live else 'stored map'}</span>")
        self.facts.value = facts_html(r)
        if live:
            self._live(row, r)
        else:
            self._static(row, r)
        self.box.layout.display = ""

    def _static(self, row: int, r: Any) -> None:
        from PIL import Image

        photo = self.photo(row, r)
        if isinstance(photo, str):
            img = Image.open(photo).convert("RGB")
            img.thumbnail((STATIC_SIZE, STATIC_SIZE), Image.BILINEAR)
            photo = np.asarray(img)
        saliency = self.results.saliency(row, photo.shape[:2])
        self.image.value = to_png_bytes(overlay(photo, saliency))
        self.body.children = [self.image, self.facts]

    def _live(self, row: int, r: Any) -> None:
        widget = self.widget or self._make_widget()
        widget.set_images(self.photo(row, r), run=False)
        target = int(r["target"])
        if widget.target != target:
            widget.select_class(target)  # starts the run
        else:
            widget.run()
        self.body.children = [widget.widget, self.facts]

    def _make_widget(self) -> Any:
        from ..widget import OptiCAMWidget

        settings = self.results.settings
        self.widget = OptiCAMWidget(self.model, target_layer=settings.get("layer"))
        controls = self.widget.controls
        if settings.get("max_iter"):
            controls.iterations.value = min(int(settings["max_iter"]), controls.iterations.max)
        if settings.get("lr"):
            controls.lr.value = float(settings["lr"])
        if settings.get("convention") in controls.convention.options:
            controls.convention.value = settings["convention"]
        self.widget.early_stop = settings.get("tol", 1e-3) is not None
        return self.widget

    def hide(self) -> None:
        """Close the detail view (the live widget stops its run and stays for the next open)."""
        if self.widget is not None:
            self.widget.stop()
        self.row = None
        self.box.layout.display = "none"

    def close(self) -> None:
        """Close the embedded widget and every widget of the view."""
        if self.widget is not None:
            self.widget.close()
        close_widgets(self.box)
