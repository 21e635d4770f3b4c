"""``OptiCAMExplorer``: browse a dataset's Opti-CAM maps in Jupyter, and open any image live.

The explorer reads the results of :func:`~opticam_widgets.dataset.api.explain_dataset` (the
results object or its folder) and shows a paged grid of thumbnails with their maps, filters
(true and predicted class with a search over the names, right / wrong, confidence range,
faithfulness range), a sort, a summary of the selection (the paper's AD / AI / AG, the count,
a small plot, a clickable confusion matrix of the labelled rows that filters the grid to
one cell), a detail view (live :class:`~opticam_widgets.widget.app.OptiCAMWidget` when a
model is given, else the stored map) and the export of the selection (CSV of ids, PNG contact
sheet). Only the current page is drawn: thumbnails are read from the store page by page, so
memory follows the page, not the dataset (the table of numbers is in memory; thumbnails, maps
at full size and photos are not).

Parts: :mod:`.query` (filter, sort, page, summary numbers) and :mod:`.confusion` (the
matrix's counts): pure pandas; :mod:`.thumbs` (reading and drawing tiles), :mod:`.grid`,
:mod:`.controls`, :mod:`.summary`, :mod:`.matrix`, :mod:`.detail` (widgets) and
:mod:`.export` (files).

Example:
    >>> from opticam_widgets import OptiCAMExplorer  # doctest: +SKIP
    >>> explorer = OptiCAMExplorer("results/", model="default").show()  # doctest: +SKIP
    >>> explorer.controls.correctness.value = "wrong"  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np

from ..display.jupyter import get_shell, mimebundle
from ..support.checks import check_int
from ..widget.common import close_widgets
from ..widget.upload import KeyboardHelper
from .confusion import confusion_counts
from .controls import FilterControls, Pager
from .detail import DetailView, check_model
from .export import sheet_array, tile_caption, write_contact_sheet, write_csv
from .grid import FONT, Grid, caption_html
from .matrix import ConfusionMatrix
from .query import Query, browse_table, is_wrong, page_count, page_of, select, selection_summary
from .summary import SummaryView
from .thumbs import Thumbnails, decode_jpeg

__all__ = ["EXPLORER_CSS", "OptiCAMExplorer"]

#: The explorer's stylesheet (inside its root): two panes, the grid beside the detail, which
#: stays in view while the grid scrolls; tile buttons wrap their names (never cut); a visible
#: focus outline.
EXPLORER_CSS = """<style>
.opticam-explorer .jupyter-widgets { max-width: 100%; min-width: 0; }
.opticam-explorer .widget-text input { min-width: 0; }
.opticam-explorer .opticam-explorer-grid { flex: 1 1 300px; min-width: 0; }
.opticam-explorer .opticam-explorer-detail { flex: 2 1 440px; min-width: 0; position: sticky;
  top: 0; z-index: 1; background: var(--jp-layout-color0, #fff); }
.opticam-explorer .opticam-tile-open { white-space: normal; overflow-wrap: anywhere;
  line-height: 1.25; padding: 2px 4px; text-align: left; font-size: 12px; }
.opticam-explorer :focus-visible, .opticam-explorer select:focus,
.opticam-explorer input:focus { outline: 2px solid var(--jp-brand-color1, #1565c0) !important;
  outline-offset: 1px; }
</style>"""


def _as_results(results: Any) -> Any:
    from ..dataset import DatasetResults, load_results

    if isinstance(results, DatasetResults):
        return results
    if isinstance(results, (str, os.PathLike)):
        return load_results(results)
    raise TypeError(f"`results` must be what explain_dataset returns or its output folder; "
                    f"got {type(results).__name__}")


class OptiCAMExplorer:
    """Browse the maps of a dataset: filter, sort, page, summarise, open, export.

    Args:
        results: What :func:`~opticam_widgets.dataset.api.explain_dataset` returns, or its
            output folder.
        model: The classifier the results were made with (module, bundle or spec such as
            ``"default"``): a clicked thumbnail then opens in a live ``OptiCAMWidget``.
            ``None``: the stored map, large.
        page_size: Thumbnails per page.
        alpha: Opacity of the maps over the thumbnails.
        cmap: Colormap of the maps.

    Attributes:
        results: The :class:`~opticam_widgets.dataset.results.DatasetResults`.
        table: The browsable rows (explained rows, with display names and score gain).
        controls: The filters and sort (set their ``value`` to filter from code).
        matrix: The clickable confusion matrix of the labelled rows, a filter
            (``explorer.matrix.choose("tabby", "tiger cat")``; ``.clear()`` shows all cells).
        grid: The tiles of the page (``explorer.grid.tiles[i].click()`` opens one).
        detail: The detail view (``explorer.detail.widget`` is the live widget).

    Example:
        >>> explorer = OptiCAMExplorer(results, model=load_default_model())  # doctest: +SKIP
        >>> explorer.show()  # doctest: +SKIP
        >>> explorer.controls.correctness.value = "wrong"  # doctest: +SKIP
        >>> explorer.open(explorer.page_rows[0])  # doctest: +SKIP
        >>> explorer.export_csv("wrong.csv")  # doctest: +SKIP
    """

    def __init__(self, results: Any, model: Any = None, *, page_size: int = 24,
                 alpha: float = 0.5, cmap: str = "jet") -> None:
        self.results = _as_results(results)
        model = check_model(model, self.results.settings)
        self.page_size = check_int("page_size", page_size, 1)
        self.table = browse_table(self.results.table)
        self.thumbs = Thumbnails(self.results, capacity=2 * self.page_size, alpha=alpha,
                                 cmap=cmap)
        self.controls = FilterControls(self.table)
        self.grid = Grid(self.page_size, self.open)
        self.pager = Pager(self.go_to)
        self.matrix = ConfusionMatrix()
        self.summary_view = SummaryView(self.matrix)
        self.detail = DetailView(self.results, model, self._thumbnail)
        self._errors = int(self.results.errors["id"].nunique())
        self._build_export()
        self.grid.box.add_class("opticam-explorer-grid")
        self.detail.box.add_class("opticam-explorer-detail")
        panes = w.Box([self.grid.box, self.detail.box], layout=w.Layout(
            display="flex", flex_flow="row wrap", align_items="flex-start", grid_gap="10px",
            width="100%"))
        self.root = w.VBox([w.HTML(EXPLORER_CSS), KeyboardHelper(), self.controls.box,
                            self.summary_view.box, self.pager.box, panes, self._export_box],
                           layout=w.Layout(width="100%", grid_gap="6px"))
        self.root.add_class("opticam-explorer")
        self._skip_in: int | None = None  # execution count whose cell value is not displayed
        self.selection = self.table
        self.page = 0
        self._closed = False
        self.controls.observe(lambda _c: self.refresh())
        self.matrix.observe(lambda _c: self.refresh(), "chosen")
        self.summary_view.kind.observe(lambda _c: self._summarise(), "value")
        self.refresh()

    # ------------------------------------------------------------------ selection and pages
    @property
    def query(self) -> Query:
        """The :class:`~.query.Query` the controls and the matrix's chosen cell describe."""
        return replace(self.controls.query(), cell=self.matrix.cell)

    @property
    def pages(self) -> int:
        """Pages of the selection (at least 1)."""
        return page_count(len(self.selection), self.page_size)

    @property
    def page_rows(self) -> list[int]:
        """Index labels (rows of ``results.table``) of the thumbnails on the current page."""
        return [int(i) for i in page_of(self.selection, self.page, self.page_size).index]

    def refresh(self) -> None:
        """Apply the controls: new selection, first page, summary, confusion matrix.

        The matrix counts the rows every other filter keeps (its own cell aside), so another
        cell can be chosen from it at any time.
        """
        query = self.query
        self.matrix.update(confusion_counts(select(self.table, replace(query, cell=None))))
        self.selection = select(self.table, query)
        self.matrix.say(len(self.selection))
        self._summarise()
        self.go_to(0)

    def go_to(self, page: int) -> None:
        """Show page ``page`` (0-based) of the selection.

        Raises:
            ValueError: ``page`` is outside ``0 .. pages - 1``.
        """
        rows = page_of(self.selection, page, self.page_size)
        self.page = page
        tiles = self.thumbs.get([int(i) for i in rows.index])
        self.grid.fill([(int(label), tiles[int(label)], caption_html(r, name=False),
                         is_wrong(r["correct"]), str(r["id"]).rsplit("/", 1)[-1])
                        for label, r in rows.iterrows()])
        self.grid.mark_opened(self.detail.row, self._wrong(rows))
        first = page * self.page_size
        self.pager.update(page, self.pages, len(self.selection), first, first + len(rows))

    def next_page(self) -> None:
        """Show the next page (no-op on the last)."""
        if self.page < self.pages - 1:
            self.go_to(self.page + 1)

    def previous_page(self) -> None:
        """Show the previous page (no-op on the first)."""
        if self.page > 0:
            self.go_to(self.page - 1)

    def summary(self) -> dict[str, Any]:
        """Count, images, accuracy, AD / AI / AG (%) and the yardsticks of the selection.

        Per method, and per class for the yardstick of the "worse than" filter (else
        ``AD_mean``). See :func:`~.query.selection_summary`.
        """
        worse = self.query.worse
        return selection_summary(self.selection, worse[0] if worse else None)

    def _summarise(self) -> None:
        self.summary_view.update(self.summary(), self.selection, self.query.faithfulness,
                                 self._errors)

    @staticmethod
    def _wrong(rows: Any) -> dict[int, bool]:
        return {int(k): is_wrong(v) for k, v in rows["correct"].items()}

    # ------------------------------------------------------------------ detail view
    def open(self, row: int) -> None:
        """Open a row (an index label of ``results.table``) in the detail view.

        With a model: the embedded ``OptiCAMWidget`` explains the row's class again, live
        (``explorer.detail.widget``); without: the stored map over the photo.

        Raises:
            ValueError: ``row`` is not a browsable row (unknown, or an image that failed).
        """
        if row not in self.table.index:
            raise ValueError(f"`row` {row!r} is not an explained row of the results")
        r = self.table.loc[row]
        self.detail.open(int(row), r)
        self.grid.mark_opened(int(row), self._wrong(self.table.loc[
            [t.row for t in self.grid.tiles if t.row is not None]]))

    def _thumbnail(self, row: int) -> np.ndarray:
        data = self.thumbs.reader.read([row])[row]
        if data is None:
            raise ValueError(f"`row` {row} has no stored thumbnail and no photo file")
        return decode_jpeg(data)

    # ------------------------------------------------------------------ export
    def _build_export(self) -> None:
        self.export_path = w.Text(value="opticam_selection", description="Export to",
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width="260px"))
        self.csv_button = w.Button(description="CSV of ids", icon="table",
                                   layout=w.Layout(width="auto"))
        self.sheet_button = w.Button(description="PNG contact sheet", icon="image",
                                     layout=w.Layout(width="auto"))
        self.export_status = w.HTML()
        self.csv_button.on_click(lambda _b: self._export(self.export_csv, ".csv"))
        self.sheet_button.on_click(lambda _b: self._export(self.contact_sheet, ".png"))
        self._export_box = w.Box(
            [self.export_path, self.csv_button, self.sheet_button, self.export_status],
            layout=w.Layout(display="flex", flex_flow="row wrap", align_items="center",
                            grid_gap="6px"))

    def _export(self, fn: Any, suffix: str) -> None:
        from html import escape

        stem = self.export_path.value.strip() or "opticam_selection"
        try:
            out = fn(Path(stem).with_suffix(suffix))
        except (OSError, ValueError) as exc:
            self.export_status.value = (f"<span style='color:var(--jp-error-color1, #c62828)'>"
                                        f"{escape(str(exc))}</span>")
            return
        self.export_status.value = f"<span style='color:{FONT}'>saved {escape(str(out))}</span>"

    def export_csv(self, path: str | os.PathLike = "opticam_selection.csv") -> Path:
        """Write the selection (ids, classes, probabilities, faithfulness) as CSV, in order.

        Example:
            >>> explorer.export_csv("wrong.csv")  # doctest: +SKIP
        """
        return write_csv(self.selection, path)

    def contact_sheet(self, path: str | os.PathLike = "opticam_selection.png", *,
                      limit: int = 96, columns: int = 8) -> Path:
        """Write the selection's first ``limit`` maps as a PNG contact sheet (wrong: red frame).

        Example:
            >>> explorer.contact_sheet("wrong.png", limit=48)  # doctest: +SKIP
        """
        return write_contact_sheet(self.selection, self.thumbs, path, limit=limit,
                                   columns=columns, chunk=self.page_size)

    # ------------------------------------------------------------------ display
    @property
    def widget(self) -> w.VBox:
        """The root ipywidgets box (to embed the explorer in your own layout)."""
        return self.root

    def show(self) -> OptiCAMExplorer:
        """Display the explorer; returns it (not displayed a second time as the cell's value).

        Example:
            >>> explorer = OptiCAMExplorer("results/").show()  # doctest: +SKIP
        """
        shell = get_shell()
        self._publish(shell)
        self._skip_in = shell.execution_count if shell is not None else None
        return self

    def _publish(self, shell: Any) -> None:
        if shell is None:  # plain Python
            print(repr(self))
            return
        from IPython.display import display

        data, metadata = self._repr_mimebundle_()
        display(data, raw=True, metadata=metadata)

    def _ipython_display_(self) -> None:
        """Display for ``display(explorer)`` and a cell's value (not twice in one cell)."""
        shell = get_shell()
        if shell is not None and self._skip_in == shell.execution_count:
            self._skip_in = None  # `explorer.show()` as a cell's last line
            return
        self._publish(shell)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> tuple[dict, dict]:
        """The live view, plus a PNG of the current page (for saved notebooks) and text."""
        rows = page_of(self.selection, self.page, self.page_size)
        tiles = self.thumbs.get([int(i) for i in rows.index])
        picture = sheet_array([(tiles[int(k)], tile_caption(r), is_wrong(r["correct"]))
                               for k, r in rows.iterrows()], columns=8, cell=96) if len(
            rows) else None
        return mimebundle(None if self._closed else self.root, repr(self), picture, "jpeg")

    def __repr__(self) -> str:
        return (f"OptiCAMExplorer({str(self.results.out)!r}: {len(self.selection)} of "
                f"{len(self.table)} rows selected, page {self.page + 1}/{self.pages}, "
                f"{'live' if self.detail.model is not None else 'stored'} detail view)")

    def close(self) -> None:
        """Close the live widget (its jobs joined) and every widget (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.detail.close()
        self.grid.close()
        self.controls.close()
        close_widgets(self.root)
