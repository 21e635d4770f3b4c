"""What the explorer shows: filter, sort and page a results table (pure pandas, no widgets).

:func:`browse_table` turns :attr:`DatasetResults.table
<opticam_widgets.dataset.results.DatasetResults.table>` into the light frame the explorer
filters (the explained rows only, with display names and the score gain); a :class:`Query`
says which rows to keep and in which order; :func:`select` applies it; :func:`page_of` cuts
one page; :func:`selection_summary` gives the paper's AD / AI / AG of any selection with the
public functions of :mod:`opticam_widgets.evaluation.metrics`.

Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"id": ["a", "b"], "position": [0, 1],
    ...                       "predicted_prob": [0.9, 0.2], "correct": [True, False]})
    >>> select(table, Query(correctness="wrong"))["id"].tolist()
    ['b']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dataset.comparison import yardstick_columns, yardstick_summary
from ..dataset.yardsticks import column_name, parse_column
from ..evaluation.metrics import average_drop, average_gain, average_increase
from ..evaluation.yardsticks import describe_yardstick

__all__ = [
    "CORRECTNESS",
    "FAITHFULNESS",
    "NO_LABEL",
    "SORT_KEYS",
    "Query",
    "browse_table",
    "class_names",
    "class_values",
    "is_unknown",
    "is_wrong",
    "matching",
    "method_values",
    "page_count",
    "page_of",
    "range_bounds",
    "select",
    "selection_summary",
]

#: Values of :attr:`Query.correctness`.
CORRECTNESS = ("all", "correct", "wrong", "no label")
#: Faithfulness columns a range can filter on: the row's Average Drop or Average Gain term (%).
FAITHFULNESS = ("drop", "gain")
#: Sort keys: (label, column).
SORT_KEYS = (("source order", "position"), ("confidence", "predicted_prob"),
             ("drop", "drop"), ("gain", "gain"), ("score gain", "score_gain"),
             ("true class", "true_class"), ("predicted class", "predicted_class"),
             ("wrong / right", "correct"))
#: The true class of images without a label.
NO_LABEL = "(no label)"

_COLUMNS = ("position", "id", "path", "rank", "true_name", "true_label", "predicted",
            "predicted_name", "predicted_prob", "correct", "target", "target_name", "prob",
            "masked_prob", "drop", "increase", "gain", "initial_score", "final_score",
            "iterations")


def _names(names: Any, index: Any) -> Any:
    """Class names, with ``class N`` where the model has no label names."""
    named = names.astype(object)
    fallback = "class " + index.astype("Int64").astype(str)
    return named.where(named.notna(), fallback)


def browse_table(table: Any) -> Any:
    """The explained rows of a results table, with what the explorer filters and sorts on.

    Adds ``true_class`` (the true name, ``class N`` for a label without a name,
    :data:`NO_LABEL` without either), ``predicted_class`` and ``target_class`` (names,
    ``class N`` without label names) and ``score_gain`` (final minus iteration-0 score: what
    the optimisation gained). Rows of images that failed
    (``error`` set) are left out; the index labels stay those of ``table`` (rows of
    :class:`~opticam_widgets.dataset.results.DatasetResults`).

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({c: [None] for c in _COLUMNS} | {"error": [None]})
        >>> list(browse_table(t).columns)[-4:]
        ['true_class', 'predicted_class', 'target_class', 'score_gain']
    """
    missing = [c for c in (*_COLUMNS, "error") if c not in table.columns]
    if missing:
        raise ValueError(f"`results` table lacks the columns {missing}: not explain_dataset "
                         "results")
    kept = [*_COLUMNS, *[c for c in table.columns if parse_column(c) is not None]]
    ok = table.loc[table["error"].isna(), kept].copy()
    known = ok["true_name"].notna() | ok["true_label"].notna()
    ok["true_class"] = _names(ok["true_name"], ok["true_label"]).where(known, NO_LABEL)
    ok["predicted_class"] = _names(ok["predicted_name"], ok["predicted"])
    ok["target_class"] = _names(ok["target_name"], ok["target"])
    ok["score_gain"] = (ok["final_score"].astype(float) - ok["initial_score"].astype(float))
    return ok


def class_names(column: Any, search: str = "") -> list[str]:
    """The distinct names of a class column that contain ``search`` (case-insensitive), sorted.

    Example:
        >>> import pandas as pd
        >>> class_names(pd.Series(["tabby", "tiger cat", "tabby"]), "TA")
        ['tabby']
    """
    return matching(sorted({str(v) for v in column.dropna().unique()}, key=str.lower), search)


def matching(names: Sequence[str], search: str) -> list[str]:
    """The names that contain ``search`` (case-insensitive), in their order; all when empty.

    Example:
        >>> matching(["tabby", "tiger cat"], " cat")
        ['tiger cat']
    """
    needle = search.strip().lower()
    return [n for n in names if needle in n.lower()] if needle else list(names)


@dataclass(frozen=True)
class Query:
    """Which rows the explorer shows, and in which order.

    Attributes:
        true_classes: Keep these true classes (names of ``true_class``); empty: all.
        predicted_classes: Keep these predicted classes (names of ``predicted_class``).
        correctness: One of :data:`CORRECTNESS`.
        confidence: ``(low, high)`` range of the predicted class's probability (inclusive).
        faithfulness: The column of the range filter: one of :data:`FAITHFULNESS` (the row's
            AD or AG term, %) or a yardstick column (``"gradcam:deletion_black"``).
        faithfulness_range: ``(low, high)`` range of that column, in its own units
            (inclusive). A range that covers :func:`range_bounds` filters nothing (rows
            without a value stay); a narrower one keeps the rows with a value in it.
        sort: A column of :data:`SORT_KEYS`.
        descending: Sort from high to low.
        cell: ``(true class, predicted class)``: keep the labelled rows of that pair only (a
            cell of the confusion matrix); ``None``: no such filter.
        worse: ``(yardstick, method, rival)``: keep the rows where ``method``'s map is worse
            than ``rival``'s on that yardstick (e.g. ``("deletion_black", "opticam",
            "gradcam")``: Opti-CAM's deletion AUC higher than Grad-CAM's); rows where either is
            missing are left out. ``None``: no such filter.

    The sort may also be a yardstick column (``"gradcam:AD_mean"``).
    """

    true_classes: tuple[str, ...] = ()
    predicted_classes: tuple[str, ...] = ()
    correctness: str = "all"
    confidence: tuple[float, float] = (0.0, 1.0)
    faithfulness: str = "drop"
    faithfulness_range: tuple[float, float] = (0.0, 100.0)
    sort: str = "position"
    descending: bool = False
    cell: tuple[str, str] | None = None
    worse: tuple[str, str, str] | None = None

    def __post_init__(self) -> None:
        if self.correctness not in CORRECTNESS:
            raise ValueError(f"`correctness` must be one of {CORRECTNESS}, got "
                             f"{self.correctness!r}")
        if self.faithfulness not in FAITHFULNESS and parse_column(self.faithfulness) is None:
            raise ValueError(f"`faithfulness` must be one of {FAITHFULNESS} or a yardstick "
                             f"column ('method:yardstick'), got {self.faithfulness!r}")
        if self.sort not in dict(SORT_KEYS).values() and parse_column(self.sort) is None:
            raise ValueError(f"`sort` must be one of {[c for _, c in SORT_KEYS]} or a yardstick "
                             f"column ('method:yardstick'), got {self.sort!r}")
        if self.worse is not None:
            if len(self.worse) != 3 or not all(isinstance(n, str) for n in self.worse):
                raise ValueError(f"`worse` must be (yardstick, method, rival) names or None, "
                                 f"got {self.worse!r}")
            describe_yardstick(self.worse[0])  # an unknown yardstick: ValueError
        for name in ("confidence", "faithfulness_range"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"`{name}` must be (low, high) with low <= high, got "
                                 f"{(low, high)}")
        if self.cell is not None and (len(self.cell) != 2
                                      or not all(isinstance(n, str) for n in self.cell)):
            raise ValueError(f"`cell` must be (true class, predicted class) names or None, "
                             f"got {self.cell!r}")


def range_bounds(table: Any, column: str) -> tuple[float, float]:
    """The whole range of a range filter's column.

    0–100 for the row's AD and AG terms (%), else the lowest and highest value of the column in
    ``table`` (``(0, 0)`` when it has none).

    Example:
        >>> import pandas as pd
        >>> range_bounds(pd.DataFrame({"drop": [5.0]}), "drop")
        (0.0, 100.0)
        >>> range_bounds(pd.DataFrame({"m:AUC": [0.2, None, 0.05]}), "m:AUC")
        (0.05, 0.2)
    """
    if column in FAITHFULNESS:
        return 0.0, 100.0
    values = table[column].astype(float).dropna()
    return (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)


def _in_range(values: Any, bounds: tuple[float, float]) -> Any:
    """Rows whose value lies in ``bounds`` (rows without a value do not: a narrowed range)."""
    v = values.astype(float)
    return ((v >= bounds[0] - 1e-9) & (v <= bounds[1] + 1e-9)).fillna(False)


def select(table: Any, query: Query) -> Any:
    """The rows of a :func:`browse_table` frame that ``query`` keeps, in its order.

    Sorting is stable (ties keep the source order); rows without a value sort last.
    """
    keep = np.ones(len(table), dtype=bool)
    if query.true_classes and "true_class" in table:
        keep &= table["true_class"].isin(query.true_classes).to_numpy()
    if query.predicted_classes and "predicted_class" in table:
        keep &= table["predicted_class"].isin(query.predicted_classes).to_numpy()
    if query.correctness != "all":
        correct = table["correct"].astype("boolean")
        wanted = {"correct": correct.fillna(False), "wrong": (~correct).fillna(False),
                  "no label": correct.isna()}[query.correctness]
        keep &= wanted.to_numpy(dtype=bool)
    if tuple(query.confidence) != (0.0, 1.0):
        keep &= _in_range(table["predicted_prob"], query.confidence).to_numpy()
    keep &= _faithful(table, query.faithfulness, tuple(query.faithfulness_range))
    if query.cell is not None:
        keep &= (table["correct"].notna() & (table["true_class"] == query.cell[0])
                 & (table["predicted_class"] == query.cell[1])).to_numpy(dtype=bool)
    if query.worse is not None:
        keep &= _worse(table, *query.worse)
    chosen = table[keep]
    if query.sort not in chosen:
        raise ValueError(f"`sort` {query.sort!r} is not a column of these results")
    key = chosen[query.sort]
    if key.dtype == object:
        key = key.astype(str).str.lower()
    order = key.sort_values(ascending=not query.descending, kind="stable",
                            na_position="last").index
    return chosen.loc[order]


def _faithful(table: Any, column: str, bounds: tuple[float, float]) -> np.ndarray:
    """The rows the range filter keeps: all of them unless ``bounds`` narrows the column."""
    if column not in table:
        if column in FAITHFULNESS and bounds == (0.0, 100.0):
            return np.ones(len(table), dtype=bool)  # no AD / AG terms, no filter asked
        raise ValueError(f"`faithfulness` {column!r} is not a column of these results "
                         "(measure it with explain_dataset(..., yardsticks=...))")
    low, high = range_bounds(table, column)
    if bounds[0] > low or bounds[1] < high:
        return _in_range(table[column], bounds).to_numpy()
    return np.ones(len(table), dtype=bool)


def _worse(table: Any, key: str, method: str, rival: str) -> np.ndarray:
    """Rows where ``method``'s value of yardstick ``key`` is worse than ``rival``'s."""
    cols = [column_name(m, key) for m in (method, rival)]
    missing = [c for c in cols if c not in table]
    if missing:
        raise ValueError(f"`worse`: these results have no column {missing} (measure them with "
                         "explain_dataset(..., yardsticks=..., methods=[...]))")
    a, b = (table[c].astype(float) for c in cols)
    worse = a > b if describe_yardstick(key)[0] == "lower" else a < b
    return worse.fillna(False).to_numpy(dtype=bool)


def method_values(selection: Any) -> dict[str, dict[str, tuple[float, float, int]]]:
    """``{yardstick: {method: (mean, 95 % margin, rows)}}`` of a selection's yardstick columns.

    From :func:`~opticam_widgets.dataset.comparison.yardstick_summary` (a missing value is left
    out, never counted as 0); ``{}`` for results without yardsticks or an empty selection.

    Example:
        >>> import pandas as pd
        >>> method_values(pd.DataFrame({"opticam:AD_mean": [10.0, None]}))
        {'AD_mean': {'opticam': (10.0, nan, 1)}}
    """
    if not len(selection) or not yardstick_columns(selection):
        return {}
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for r in yardstick_summary(selection).itertuples():
        out.setdefault(r.yardstick, {})[r.method] = (r.mean, r.margin, r.rows)
    return out


def is_wrong(correct: Any) -> bool:
    """Whether a row's ``correct`` value says the prediction is wrong (unknown: not wrong).

    Example:
        >>> is_wrong(False), is_wrong(True), is_wrong(None)
        (True, False, False)
    """
    return not is_unknown(correct) and not bool(correct)


def is_unknown(correct: Any) -> bool:
    """Whether a row's ``correct`` value is missing (no true label).

    Example:
        >>> import pandas as pd
        >>> is_unknown(pd.NA), is_unknown(None), is_unknown(False)
        (True, True, False)
    """
    import pandas as pd

    return correct is None or bool(pd.isna(correct))


def page_count(rows: int, page_size: int) -> int:
    """Pages needed for ``rows`` rows (at least 1: an empty selection has one empty page).

    Example:
        >>> page_count(0, 24), page_count(24, 24), page_count(25, 24)
        (1, 1, 2)
    """
    return max(1, -(-rows // page_size))


def page_of(selection: Any, page: int, page_size: int) -> Any:
    """Page ``page`` (0-based) of a selection: at most ``page_size`` rows.

    Raises:
        ValueError: ``page`` is outside ``0 .. page_count - 1``.
    """
    pages = page_count(len(selection), page_size)
    if not 0 <= page < pages:
        raise ValueError(f"`page` must be in 0..{pages - 1}, got {page!r}")
    return selection.iloc[page * page_size:(page + 1) * page_size]


def class_values(selection: Any, yardstick: str | None = None, *, min_rows: int = 2,
                 limit: int = 8) -> dict[str, Any]:
    """One yardstick per method and per explained class of a selection.

    Args:
        selection: Rows of a :func:`browse_table` frame.
        yardstick: The yardstick (``"deletion_black"``); ``None``: ``AD_mean`` when measured,
            else the first one.
        min_rows: Classes with fewer rows are left out.
        limit: At most this many classes, the most frequent first.

    Returns:
        ``{"yardstick": key, "classes": {class: {method: (mean, 95 % margin, rows)}}}``;
        ``{}`` for results without yardsticks.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"target_class": ["a", "a", "b"],
        ...                   "opticam:AD_mean": [1.0, 3.0, 5.0]})
        >>> class_values(t)["classes"]["a"]["opticam"][0]
        2.0
    """
    keys = list(dict.fromkeys(k for _, k in yardstick_columns(selection)))
    if not keys:
        return {}
    key = yardstick if yardstick in keys else "AD_mean" if "AD_mean" in keys else keys[0]
    summary = yardstick_summary(selection, "target_class", min_rows)
    summary = summary[(summary["group"] != "all") & (summary["yardstick"] == key)]
    classes: dict[str, dict[str, tuple[float, float, int]]] = {}
    for r in summary.itertuples():
        if r.group in classes or len(classes) < limit:
            classes.setdefault(r.group, {})[r.method] = (r.mean, r.margin, r.rows)
    return {"yardstick": key, "classes": classes}


def selection_summary(selection: Any, yardstick: str | None = None) -> dict[str, Any]:
    """Count, images, accuracy, the paper's AD / AI / AG (%) and the yardsticks of a selection.

    AD / AI / AG are :func:`~opticam_widgets.evaluation.metrics.average_drop`,
    :func:`~opticam_widgets.evaluation.metrics.average_increase` and
    :func:`~opticam_widgets.evaluation.metrics.average_gain` of the rows with faithfulness terms
    (``None`` when no row has them, e.g. ``metrics=False``); accuracy over the rows with a true
    label only (``labelled`` of them); ``yardsticks``: every yardstick per method
    (:func:`method_values`); ``by_class``: ``yardstick`` (or ``AD_mean``) per method and class
    (:func:`class_values`).

    Example:
        >>> import pandas as pd
        >>> s = selection_summary(pd.DataFrame({"id": ["a", "b"], "prob": [0.8, 0.5],
        ...     "masked_prob": [0.4, 0.6], "correct": [True, None]}))
        >>> s["rows"], s["AD"], s["AI"], s["accuracy"]
        (2, 25.0, 50.0, 100.0)
    """
    measured = selection[selection["masked_prob"].notna() & selection["prob"].notna()]
    p = measured["prob"].to_numpy(dtype=float)
    o = measured["masked_prob"].to_numpy(dtype=float)
    labelled = selection["correct"].dropna()
    return {
        "rows": int(len(selection)),
        "images": int(selection["id"].nunique()),
        "measured": int(len(measured)),
        "AD": average_drop(p, o) if len(p) else None,
        "AI": average_increase(p, o) if len(p) else None,
        "AG": average_gain(p, o) if len(p) else None,
        "accuracy": 100.0 * float(labelled.astype(float).mean()) if len(labelled) else None,
        "labelled": int(len(labelled)),
        "yardsticks": method_values(selection),
        "by_class": class_values(selection, yardstick) if "target_class" in selection else {},
    }
