"""The yardsticks of a results table per method and per class, with margins, and the best method.

A store measured with yardsticks (:mod:`~.yardsticks`) has one float column per method and
yardstick (``"opticam:deletion_black"``, ``"gradcam:AD_mean"``, ...). Here they are averaged
over rows (overall or per class), each mean with its 95 % margin: ``1.96 × the standard error``
(``std / √n``, a normal interval over the rows), and the best method per yardstick is named
with the paired difference to the runner-up (the rows where both were measured), so a sceptic
sees whether the lead is larger than its own margin. For AD / AI / AG the mean of the per-row
terms is exactly :func:`~opticam_widgets.evaluation.metrics.average_drop` (...) of the rows.
A row without a value (a store written before yardsticks, a method that could not explain the
row) is missing, never 0: it is left out of the mean, and ``rows`` says how many were used.

Example:
    >>> import pandas as pd
    >>> t = pd.DataFrame({"error": [None] * 3, "target_name": ["a", "a", "b"],
    ...                   "opticam:AD_mean": [0.0, 10.0, 20.0],
    ...                   "gradcam:AD_mean": [30.0, 40.0, 50.0]})
    >>> row = yardstick_summary(t).iloc[0]
    >>> row["method"], row["yardstick"], int(row["rows"]), float(row["mean"])
    ('opticam', 'AD_mean', 3, 10.0)
    >>> best_methods(t).loc[0, ["yardstick", "best", "runner_up"]].tolist()
    ['AD_mean', 'opticam', 'gradcam']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..evaluation.yardsticks import describe_yardstick
from .yardsticks import parse_column

__all__ = ["MARGIN_Z", "best_methods", "yardstick_columns", "yardstick_summary"]

#: The margin is ``MARGIN_Z`` standard errors (a 95 % normal interval).
MARGIN_Z = 1.96


def yardstick_columns(table: Any) -> dict[tuple[str, str], str]:
    """``{(method, yardstick): column}`` of a table's yardstick columns, in the table's order.

    Example:
        >>> import pandas as pd
        >>> yardstick_columns(pd.DataFrame(columns=["drop", "gradcam:AD_mean"]))
        {('gradcam', 'AD_mean'): 'gradcam:AD_mean'}
    """
    out = {}
    for col in table.columns:
        parsed = parse_column(col)
        if parsed is not None:
            out[parsed] = col
    return out


def _mean_margin(values: np.ndarray) -> tuple[float, float]:
    """Mean and ``MARGIN_Z`` standard errors (NaN margin with fewer than 2 values)."""
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), MARGIN_Z * float(values.std(ddof=1)) / np.sqrt(len(values))


def _explained(table: Any) -> Any:
    return table[table["error"].isna()] if "error" in table else table


def _groups(table: Any, by: str | None, min_rows: int) -> list[tuple[str, Any]]:
    ok = _explained(table)
    groups = [("all", ok)]
    if by is not None and by in ok and len(ok):
        counts = ok[by].value_counts(sort=True)
        groups += [(str(name), ok[ok[by] == name]) for name, n in counts.items()
                   if n >= min_rows]
    return groups


def yardstick_summary(table: Any, by: str | None = None, min_rows: int = 1) -> Any:
    """Every yardstick of every method: mean and 95 % margin over the rows, overall and per group.

    Args:
        table: A results table (``DatasetResults.table`` or an explorer selection).
        by: A column to group by too (``"target_name"``: per explained class); ``None``:
            overall only.
        min_rows: Groups with fewer rows are left out (their means say little).

    Returns:
        A DataFrame with one row per (group, yardstick, method): ``group``, ``yardstick``,
        ``method``, ``rows`` (the rows with a value), ``mean``, ``margin`` (± 95 %) and
        ``better`` (``"lower"`` or ``"higher"``); empty without yardstick columns.
    """
    import pandas as pd

    columns = yardstick_columns(table)
    out = []
    for group, rows in _groups(table, by, min_rows):
        for (method, key), col in columns.items():
            values = rows[col].astype(float).dropna().to_numpy()
            mean, margin = _mean_margin(values)
            out.append({"group": group, "yardstick": key, "method": method,
                        "rows": int(len(values)), "mean": mean, "margin": margin,
                        "better": describe_yardstick(key)[0]})
    cols = ["group", "yardstick", "method", "rows", "mean", "margin", "better"]
    return pd.DataFrame(out, columns=cols)


def best_methods(table: Any) -> Any:
    """Per yardstick: the best method (by mean), the runner-up and their paired difference.

    The difference ``best − runner-up`` is taken row by row over the rows where both were
    measured; its ``margin`` is 1.96 standard errors, and ``clear`` says whether the lead is
    larger than that margin (``False`` also when a single method was measured).

    Returns:
        A DataFrame: ``yardstick``, ``better``, ``best``, ``best_mean``, ``runner_up``,
        ``runner_up_mean``, ``difference``, ``margin``, ``rows``, ``clear``.
    """
    import pandas as pd

    ok = _explained(table)
    columns = yardstick_columns(ok)
    out = []
    for key in dict.fromkeys(k for _, k in columns):
        better = describe_yardstick(key)[0]
        means = {m: float(ok[c].astype(float).mean()) for (m, k), c in columns.items()
                 if k == key and ok[c].notna().any()}
        if not means:
            continue
        ranked = sorted(means, key=lambda m: means[m], reverse=better == "higher")
        row = {"yardstick": key, "better": better, "best": ranked[0],
               "best_mean": means[ranked[0]], "runner_up": None, "runner_up_mean": None,
               "difference": None, "margin": None, "rows": 0, "clear": False}
        if len(ranked) > 1:
            a, b = columns[(ranked[0], key)], columns[(ranked[1], key)]
            diff = (ok[a].astype(float) - ok[b].astype(float)).dropna().to_numpy()
            mean, margin = _mean_margin(diff)
            row.update(runner_up=ranked[1], runner_up_mean=means[ranked[1]], difference=mean,
                       margin=margin, rows=int(len(diff)),
                       clear=bool(np.isfinite(margin) and abs(mean) > margin))
        out.append(row)
    cols = ["yardstick", "better", "best", "best_mean", "runner_up", "runner_up_mean",
            "difference", "margin", "rows", "clear"]
    return pd.DataFrame(out, columns=cols)
