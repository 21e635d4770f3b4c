"""The explorer's controls: filters, sort, pager, export; they build a :class:`~.query.Query`.

Plain ipywidgets (no custom JavaScript). Sliders report when released
(``continuous_update=False``), so a drag filters once. The class pickers pair a search box with
a multiple selection over the class names present in the results: with nothing selected, the
search itself filters (every class whose name contains it).

Example:
    >>> import pandas as pd
    >>> c = FilterControls(pd.DataFrame({"true_class": ["tabby"], "predicted_class": ["tabby"]}))
    >>> c.correctness.value = "wrong"
    >>> c.query().correctness
    'wrong'
    >>> c.close()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ..dataset.comparison import yardstick_columns
from ..widget.common import close_widgets
from .query import (
    CORRECTNESS,
    FAITHFULNESS,
    SORT_KEYS,
    Query,
    class_names,
    matching,
    range_bounds,
)

__all__ = ["ClassPicker", "FilterControls", "Pager"]

_WIDE = {"description_width": "initial"}
#: What a search that matches no class name keeps (no class has this name).
NO_MATCH = "\0 no class matches the search"


class ClassPicker:
    """A search box and a multiple selection over the names of a class column.

    Args:
        names: The class names to offer.
        label: What the picker chooses (``"True class"``, ``"Predicted class"``).
    """

    def __init__(self, names: list[str], label: str) -> None:
        self.names = names
        self.search = w.Text(placeholder="search names", description=label, style=_WIDE,
                             continuous_update=True, layout=w.Layout(width="100%"))
        self.select = w.SelectMultiple(options=names, rows=min(5, max(2, len(names))),
                                       layout=w.Layout(width="100%"),
                                       tooltip=f"{label}: choose one or more")  # its name
        self.box = w.VBox([self.search, self.select],
                          layout=w.Layout(flex="1 1 220px", min_width="180px"))
        self._quiet = False  # the picker is updating its own options: one change, not three
        self.search.observe(self._on_search, "value")

    def _on_search(self, change: dict) -> None:
        matching_names = matching(self.names, change["new"])
        keep = tuple(v for v in self.select.value if v in matching_names)
        self._quiet = True
        try:
            self.select.options = matching_names
            self.select.value = keep
        finally:
            self._quiet = False

    def chosen(self) -> tuple[str, ...]:
        """The classes kept: the selection, else those matching the search, else all (``()``)."""
        if self.select.value:
            return tuple(self.select.value)
        if self.search.value.strip():
            return tuple(self.select.options) or (NO_MATCH,)
        return ()

    def observe(self, handler: Callable[[dict], Any]) -> None:
        """Call ``handler`` once when the choice changes."""
        def on_change(change: dict) -> None:
            if not self._quiet:
                handler(change)
        self.search.observe(on_change, "value")
        self.select.observe(on_change, "value")


class FilterControls:
    """Every filter and the sort order, over a :func:`~.query.browse_table` frame.

    Args:
        table: The frame (its class columns give the pickers' names).
    """

    def __init__(self, table: Any) -> None:
        self.true_class = ClassPicker(class_names(table["true_class"]), "True class")
        self.predicted_class = ClassPicker(class_names(table["predicted_class"]),
                                           "Predicted class")
        self.correctness = w.ToggleButtons(options=list(CORRECTNESS), value="all",
                                           description="Prediction", style=_WIDE)
        self.correctness.style.button_width = "78px"
        self.confidence = w.FloatRangeSlider(
            value=(0.0, 1.0), min=0.0, max=1.0, step=0.01, description="Confidence",
            continuous_update=False, readout_format=".2f", style=_WIDE,
            layout=w.Layout(width="300px"))
        measured = yardstick_columns(table)
        yardsticks = [(f"{key} · {method}", col) for (method, key), col in measured.items()]
        self._table, self._rebounding = table, False
        self.faithfulness = w.Dropdown(
            options=[*((f, f) for f in FAITHFULNESS), *yardsticks], value="drop",
            description="Faithfulness", style=_WIDE, layout=w.Layout(width="250px"))
        self.faithfulness_range = w.FloatRangeSlider(
            value=(0.0, 100.0), min=0.0, max=100.0, step=0.5, description="range (%)",
            continuous_update=False, readout_format=".1f", style=_WIDE,
            layout=w.Layout(width="300px"))
        self.faithfulness.observe(self._rebound, "value")  # first: the range follows it
        self.sort = w.Dropdown(options=[*SORT_KEYS, *yardsticks], value="position",
                               description="Sort by", style=_WIDE,
                               layout=w.Layout(width="210px"))
        self.descending = w.Checkbox(value=False, description="descending", indent=False,
                                     layout=w.Layout(width="auto"))
        self._build_worse(measured)
        wrap = w.Layout(display="flex", flex_flow="row wrap", align_items="center",
                        grid_gap="4px 16px", width="100%")
        self.box = w.VBox([
            w.Box([self.true_class.box, self.predicted_class.box], layout=wrap),
            w.Box([self.correctness, self.confidence], layout=wrap),
            w.Box([self.faithfulness, self.faithfulness_range, self.sort, self.descending],
                  layout=wrap),
            w.Box([self.worse_key, self.worse_method, self.worse_rival], layout=wrap),
        ], layout=w.Layout(width="100%"))

    def _build_worse(self, measured: dict[tuple[str, str], str]) -> None:
        """The 'rows where a method is worse than another on a yardstick' filter."""
        keys = list(dict.fromkeys(k for _, k in measured))
        methods = list(dict.fromkeys(m for m, _ in measured))
        self.worse_key = w.Dropdown(options=[("(any)", None), *[(k, k) for k in keys]],
                                    value=None, description="Rows where on", style=_WIDE,
                                    disabled=len(methods) < 2, layout=w.Layout(width="230px"))
        self.worse_method = w.Dropdown(options=methods, description="method", style=_WIDE,
                                       disabled=len(methods) < 2, layout=w.Layout(width="200px"))
        self.worse_rival = w.Dropdown(options=methods, value=methods[1] if len(methods) > 1
                                      else None, description="is worse than", style=_WIDE,
                                      disabled=len(methods) < 2, layout=w.Layout(width="250px"))

    def _rebound(self, change: dict) -> None:
        """The range slider spans the chosen column's whole range, all of it selected.

        See :func:`~.query.range_bounds`: a new column filters nothing until it is narrowed.
        """
        column = change["new"]
        low, high = range_bounds(self._table, column)
        high = high if high > low else low + 1.0  # a slider needs room
        percent = column in FAITHFULNESS
        s = self.faithfulness_range
        self._rebounding = True
        try:
            s.max, s.min = max(s.max, high), min(s.min, low)  # widen, then select, then fit
            s.value = (low, high)
            s.min, s.max = low, high
            s.step = 0.5 if percent else (high - low) / 200
            s.readout_format = ".1f" if percent else ".3g"
            s.description = "range (%)" if percent else "range"
        finally:
            self._rebounding = False

    def query(self) -> Query:
        """The :class:`~.query.Query` the controls describe."""
        return Query(true_classes=self.true_class.chosen(),
                     predicted_classes=self.predicted_class.chosen(),
                     correctness=self.correctness.value,
                     confidence=tuple(self.confidence.value),
                     faithfulness=self.faithfulness.value,
                     faithfulness_range=tuple(self.faithfulness_range.value),
                     sort=self.sort.value, descending=bool(self.descending.value),
                     worse=None if self.worse_key.value is None else (
                         self.worse_key.value, self.worse_method.value, self.worse_rival.value))

    def observe(self, handler: Callable[[dict], Any]) -> None:
        """Call ``handler`` whenever the query may have changed."""
        self.true_class.observe(handler)
        self.predicted_class.observe(handler)
        def settled(change: dict) -> None:  # not while the range follows a new column
            if not self._rebounding:
                handler(change)

        for ctrl in (self.correctness, self.confidence, self.faithfulness,
                     self.faithfulness_range, self.sort, self.descending, self.worse_key,
                     self.worse_method, self.worse_rival):
            ctrl.observe(settled, "value")

    def close(self) -> None:
        """Close every widget."""
        close_widgets(self.box)


class Pager:
    """Previous / next buttons and the page readout.

    Args:
        on_page: Called with the page wanted (0-based).
    """

    def __init__(self, on_page: Callable[[int], Any]) -> None:
        self.page, self.pages = 0, 1
        self.prev = w.Button(description="◀ previous", layout=w.Layout(width="auto"))
        self.next = w.Button(description="next ▶", layout=w.Layout(width="auto"))
        self.label = w.HTML()
        self.prev.on_click(lambda _b: on_page(self.page - 1))
        self.next.on_click(lambda _b: on_page(self.page + 1))
        self.box = w.HBox([self.prev, self.label, self.next],
                          layout=w.Layout(align_items="center", flex_flow="row wrap",
                                          grid_gap="8px"))

    def update(self, page: int, pages: int, rows: int, first: int, last: int) -> None:
        """Show page ``page`` of ``pages`` (rows ``first``..``last`` of ``rows``)."""
        self.page, self.pages = page, pages
        self.prev.disabled = page <= 0
        self.next.disabled = page >= pages - 1
        shown = f"{first + 1}–{last} of {rows}" if rows else "no rows match"
        self.label.value = (f"<span style='color:var(--jp-ui-font-color1, #1a1a1a)'>page "
                            f"{page + 1} / {pages} · {shown}</span>")
