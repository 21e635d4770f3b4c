"""The explorer's grid: a fixed pool of clickable tiles (an ipycanvas thumbnail and a caption).

The grid holds one page of tiles, made once and refilled on every page (hidden when the page
is short), so paging sends pixels, never new widgets. Each tile's thumbnail is an ipycanvas
``Canvas``: a click on it (``mouse_down``) opens the row; :meth:`Tile.click` does the same from
Python (tests, scripts). The grid wraps (``repeat(auto-fill, minmax(120px, 1fr))``), so it
fits a narrow output; colours come from JupyterLab's theme variables (light and dark).

Example:
    >>> grid = Grid(4, on_open=print)
    >>> len(grid.tiles), grid.box.layout.grid_template_columns
    (4, 'repeat(auto-fill, minmax(120px, 1fr))')
    >>> grid.close()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape
from typing import Any

import ipywidgets as w
import numpy as np
from ipycanvas import Canvas, hold_canvas

from ..widget.common import DRAW_LOCK, close_widgets
from .query import is_unknown, is_wrong

__all__ = ["BORDER", "FONT", "WRONG", "Grid", "Tile", "caption_html"]

#: Text colour (JupyterLab theme, with a light-theme fallback).
FONT = "var(--jp-ui-font-color1, #1a1a1a)"
#: Mark and border of a wrong prediction.
WRONG = "var(--jp-error-color1, #c62828)"
#: Border of a tile.
BORDER = "var(--jp-border-color2, #bdbdbd)"
#: Border of the tile opened in the detail view.
OPENED = "var(--jp-brand-color1, #1976d2)"


def _line(text: str, title: str = "", colour: str = FONT, bold: bool = False) -> str:
    weight = "font-weight:600;" if bold else ""
    return (f"<div title='{escape(title or text, quote=True)}' style='white-space:normal;"
            f"overflow-wrap:anywhere;color:{colour};{weight}'>"
            f"{escape(text)}</div>")


def caption_html(row: Mapping[str, Any], *, name: bool = True) -> str:
    """The caption of a tile: file name, true class, predicted class and probability.

    A wrong prediction is marked ``✗`` in the theme's error colour; a right one ``✓``; a row
    that explains another class than the prediction (``target``) says which.

    Example:
        >>> caption_html({"id": "cat/a.png", "true_class": "tabby", "correct": False,
        ...               "predicted_class": "Egyptian cat", "predicted_prob": 0.79,
        ...               "target_class": "Egyptian cat", "rank": 0}).count(">✗ Egyptian cat 79%<")
        1
    """
    correct = row.get("correct")
    wrong = is_wrong(correct)
    mark = "✗ " if wrong else "" if is_unknown(correct) else "✓ "
    file_name = str(row["id"]).rsplit("/", 1)[-1]
    lines = [_line(file_name, str(row["id"]))] if name else []
    lines += [_line(f"true: {row['true_class']}"),
             _line(f"{mark}{row['predicted_class']} {100 * float(row['predicted_prob']):.0f}%",
                   colour=WRONG if wrong else FONT, bold=True)]
    if row.get("target_class") != row.get("predicted_class"):
        lines.append(_line(f"map of: {row['target_class']}"))
    return (f"<div style='font-size:var(--jp-ui-font-size0, 11px);line-height:1.3;"
            f"color:{FONT}'>{''.join(lines)}</div>")


class Tile:
    """One thumbnail of the grid: a canvas (click to open), an open button and a caption.

    The button (CSS class ``opticam-tile-open``) is the tile for the keyboard and screen
    readers: named by the row's file name, Enter or Space opens the row, ←/→ move to the
    neighbouring tile (see :mod:`~opticam_widgets.widget.upload`).

    Args:
        on_open: Called with the row's index label when the tile is clicked.
    """

    def __init__(self, on_open: Callable[[int], Any]) -> None:
        self._on_open = on_open
        #: The index label of the row shown, or ``None`` for an empty tile.
        self.row: int | None = None
        self.canvas = Canvas(width=160, height=120,
                             layout=w.Layout(width="100%", height="auto"))
        self.canvas.on_mouse_down(lambda _x, _y: self.click())
        self.open_button = w.Button(layout=w.Layout(width="100%", height="auto", min_width="0"))
        self.open_button.add_class("opticam-tile-open")
        self.open_button.on_click(lambda _b: self.click())
        self.caption = w.HTML(layout=w.Layout(width="100%", overflow="hidden"))
        self.box = w.VBox([self.canvas, self.open_button, self.caption], layout=w.Layout(
            border=f"1px solid {BORDER}", padding="3px", overflow="hidden", min_width="0"))
        self.box.add_class("opticam-explorer-tile")

    def draw(self, row: int, rgb: np.ndarray, caption: str, *, wrong: bool,
             name: str = "") -> None:
        """Show a row (call inside :func:`ipycanvas.hold_canvas` to batch a page)."""
        self.row = row
        self.open_button.description = name or f"row {row}"
        self.open_button.tooltip = f"open {name or row} in the detail view"
        h, w_ = rgb.shape[:2]
        if (self.canvas.height, self.canvas.width) != (h, w_):
            self.canvas.width, self.canvas.height = w_, h
        self.canvas.put_image_data(np.ascontiguousarray(rgb), 0, 0)
        self.caption.value = caption
        self.mark(opened=False, wrong=wrong)
        self.box.layout.display = ""

    def mark(self, *, opened: bool, wrong: bool) -> None:
        """Border: the opened tile in the theme's brand colour, wrong predictions in red."""
        colour = OPENED if opened else WRONG if wrong else BORDER
        self.box.layout.border = f"{2 if opened or wrong else 1}px solid {colour}"
        self.box.layout.padding = "2px" if opened or wrong else "3px"

    def hide(self) -> None:
        """An empty tile (the last page is short)."""
        self.row = None
        self.box.layout.display = "none"

    def click(self) -> None:
        """Open the row shown, as a click on the thumbnail does."""
        if self.row is not None:
            self._on_open(self.row)


class Grid:
    """A wrapping grid of ``size`` tiles.

    Args:
        size: Tiles per page.
        on_open: Called with a row's index label when its tile is clicked.
    """

    def __init__(self, size: int, on_open: Callable[[int], Any]) -> None:
        self.tiles = [Tile(on_open) for _ in range(size)]
        self.box = w.GridBox([t.box for t in self.tiles], layout=w.Layout(
            grid_template_columns="repeat(auto-fill, minmax(120px, 1fr))",
            grid_gap="6px", width="100%"))

    def fill(self, rows: list[tuple[int, np.ndarray, str, bool, str]]) -> None:
        """Show ``(row, tile pixels, caption HTML, wrong, name)`` in order; hide the others."""
        with DRAW_LOCK, hold_canvas():
            for tile, (row, rgb, caption, wrong, name) in zip(self.tiles, rows):
                tile.draw(row, rgb, caption, wrong=wrong, name=name)
        for tile in self.tiles[len(rows):]:
            tile.hide()

    def mark_opened(self, row: int | None, wrong: Mapping[int, bool]) -> None:
        """Highlight the tile of ``row`` (the one in the detail view)."""
        for tile in self.tiles:
            if tile.row is not None:
                tile.mark(opened=tile.row == row, wrong=wrong.get(tile.row, False))

    def close(self) -> None:
        """Close every widget of the grid."""
        close_widgets(self.box, *(t.canvas for t in self.tiles),
                      *(t.open_button for t in self.tiles))
