"""The summary of the explorer's selection: a line of numbers and a small matplotlib plot.

The numbers come from :func:`~.query.selection_summary` (the paper's AD / AI / AG through
:mod:`opticam_widgets.evaluation.metrics`); the plot is the distribution of the selection's drop or
gain term (what the faithfulness filter looks at), or the mean drop per predicted class. It is a
PNG with its own white background, so it reads the same in light and dark themes.

Example:
    >>> summary_html({"rows": 3, "images": 3, "measured": 3, "AD": 12.0, "AI": 33.3,
    ...               "AG": 5.0, "accuracy": None}, errors=1).count("AD")
    1
"""

from __future__ import annotations

import io
from html import escape
from typing import Any

import ipywidgets as w

from .grid import FONT
from .query import FAITHFULNESS

__all__ = ["PLOTS", "SummaryView", "plot_png", "summary_html", "yardsticks_html"]

#: What the summary plot shows.
PLOTS = ("histogram", "per class")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def summary_html(stats: dict[str, Any], errors: int = 0) -> str:
    """The summary line: count, accuracy, AD (lower is better), AI and AG (higher is better).

    Args:
        stats: What :func:`~.query.selection_summary` returns.
        errors: Images of the store that could not be explained (not browsable).
    """
    parts = [f"<b>{stats['rows']}</b> rows ({stats['images']} images)"]
    if stats["accuracy"] is not None:
        labelled = stats.get("labelled", stats["rows"])
        over = "" if labelled == stats["rows"] else f" over the {labelled} labelled rows"
        parts.append(f"accuracy {_pct(stats['accuracy'])}{over}")
    parts.append(f"AD {_pct(stats['AD'])} ↓ · AI {_pct(stats['AI'])} ↑ · "
                 f"AG {_pct(stats['AG'])} ↑")
    if stats["rows"] and stats["measured"] < stats["rows"]:
        parts.append(f"{stats['rows'] - stats['measured']} rows without faithfulness terms")
    if errors:
        parts.append(f"{errors} images of the store failed (see results.errors)")
    return (f"<div style='color:{FONT};line-height:1.5'>Selection: "
            f"{escape(' · ', quote=False).join(parts)}"
            f"{yardsticks_html(stats.get('yardsticks') or {})}{_by_class(stats)}</div>")


def _by_class(stats: dict[str, Any]) -> str:
    from ..evaluation.yardsticks import describe_yardstick

    by = stats.get("by_class") or {}
    if not by.get("classes"):
        return ""
    key = by["yardstick"]
    better = describe_yardstick(key)[0]
    return yardsticks_html(by["classes"], f"{key} {'↓' if better == 'lower' else '↑'} per "
                                          "explained class (mean ± 95 % margin)", better)


def _num(value: float) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def yardsticks_html(values: dict[str, dict[str, tuple[float, float, int]]],
                    caption: str = "Yardsticks per method (mean ± 95 % margin over the "
                                   "selection)", better: str | None = None) -> str:
    """A table of every yardstick (rows) per method (columns): mean ± 95 % margin, best bold.

    Args:
        values: What :func:`~.query.method_values` returns (``{}``: no table).
        caption: The table's caption.
        better: ``"lower"`` or ``"higher"`` for every row (rows that are classes of one
            yardstick); ``None``: each row is a yardstick, its own direction.

    Example:
        >>> "<b>1.000" in yardsticks_html({"AD_mean": {"opticam": (1.0, 0.5, 4),
        ...                                            "gradcam": (3.0, 0.5, 4)}})
        True
    """
    from ..evaluation.yardsticks import describe_yardstick

    if not values:
        return ""
    methods = list(dict.fromkeys(m for per in values.values() for m in per))
    head = "".join(f"<th style='padding:0 6px'>{escape(m)}</th>" for m in methods)
    rows = []
    for key, per in values.items():
        lower = (better or describe_yardstick(key)[0]) == "lower"
        means = {m: v[0] for m, v in per.items() if v[0] == v[0]}
        best = (min if lower else max)(means, key=means.get) if len(means) > 1 else None
        cells = []
        for m in methods:
            mean, margin, n = per.get(m, (float("nan"), float("nan"), 0))
            text = _num(mean) + ("" if margin != margin else f" ± {_num(margin)}")
            text = f"<b>{text}</b>" if m == best else text
            cells.append(f"<td style='padding:0 6px;text-align:right' title='{n} rows'>"
                         f"{text}</td>")
        label = escape(key) if better else f"{escape(key)} {'↓' if lower else '↑'}"
        rows.append(f"<tr><td>{label}</td>{''.join(cells)}</tr>")
    return (f"<table style='font-size:12px;margin-top:4px'><caption style='text-align:left'>"
            f"{escape(caption)}</caption>"
            f"<tr><th scope='col'>yardstick</th>{head}</tr>{''.join(rows)}</table>")


def plot_png(selection: Any, column: str = "drop", kind: str = "histogram") -> bytes:
    """A small PNG: the histogram of ``column`` over the selection, or its mean per class.

    Args:
        selection: Rows of a :func:`~.query.browse_table` frame.
        column: ``"drop"`` or ``"gain"`` (the row's AD or AG term, %), or a yardstick column
            (``"gradcam:deletion_black"``, in its own units).
        kind: One of :data:`PLOTS`.
    """
    from matplotlib.figure import Figure

    if kind not in PLOTS:
        raise ValueError(f"`kind` must be one of {PLOTS}, got {kind!r}")
    fig = Figure(figsize=(3.6, 1.9), dpi=100, layout="constrained", facecolor="white")
    ax = fig.add_subplot()
    values = selection[column].astype(float).dropna()
    colour = "#c44e52" if column == "drop" else "#4c72b0"
    percent = column in FAITHFULNESS
    unit = " (%)" if percent else ""
    if values.empty:
        ax.text(0.5, 0.5, "no rows", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    elif kind == "histogram":
        ax.hist(values, bins=20, range=(0, 100) if percent else None, color=colour)
        ax.set(xlabel=f"{column}{unit} per row", ylabel="rows")
    else:
        means = selection.assign(v=selection[column].astype(float)).groupby(
            "predicted_class")["v"].mean().dropna().sort_values(ascending=False).head(8)
        ax.barh([str(n)[:16] for n in means.index[::-1]], means.to_numpy()[::-1], color=colour)
        ax.set(xlabel=f"mean {column}{unit}")
        if percent:
            ax.set_xlim(0, 100)
    for item in (ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()):
        item.set_fontsize(7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class SummaryView:
    """The summary line and plot (with the choice of plot).

    Args:
        below: A widget under the summary line, beside the plot (the explorer's confusion
            matrix).
    """

    def __init__(self, below: w.Widget | None = None) -> None:
        self.text = w.HTML(layout=w.Layout(width="100%"))
        self.kind = w.ToggleButtons(options=list(PLOTS), value="histogram",
                                    style={"button_width": "100px"})
        self.plot = w.Image(format="png", layout=w.Layout(width="100%", max_width="360px",
                                                          height="auto"))
        left = w.VBox([self.text] if below is None else [self.text, below],
                      layout=w.Layout(flex="1 1 260px", min_width="200px", grid_gap="4px"))
        self.box = w.Box([left, w.VBox([self.kind, self.plot],
                                       layout=w.Layout(flex="0 1 360px", min_width="0"))],
                         layout=w.Layout(display="flex", flex_flow="row wrap",
                                         align_items="flex-start", grid_gap="8px",
                                         width="100%"))

    def update(self, stats: dict[str, Any], selection: Any, column: str, errors: int) -> None:
        """Show the numbers and plot of a selection."""
        self.text.value = summary_html(stats, errors)
        self.plot.value = plot_png(selection, column, self.kind.value)
