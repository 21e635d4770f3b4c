"""Matplotlib figures of a dataset's results: distributions, worst and best maps, yardsticks."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cases", "overview_figure", "yardsticks_figure"]


def cases(table: Any, n: int) -> tuple[list[int], list[int]]:
    """Index labels of the ``n`` worst and the ``n`` best rows with faithfulness terms.

    Worst: highest drop, then lowest ``o − p``; best: highest gain, then highest ``o − p``.
    """
    ok = table[table["error"].isna() & table["masked_prob"].notna()]
    delta = ok["masked_prob"] - ok["prob"]
    ranked = ok.assign(_delta=delta)
    worst = ranked.sort_values(["drop", "_delta"], ascending=[False, True]).index[:n]
    best = ranked.sort_values(["gain", "_delta"], ascending=[False, False]).index[:n]
    return [int(i) for i in worst], [int(i) for i in best]


def _caption(row: Any) -> str:
    name = row["target_name"] if isinstance(row["target_name"], str) else f"class {row['target']}"
    import pandas as pd

    mark = "" if pd.isna(row["correct"]) else " ✓" if bool(row["correct"]) else " ✗"
    return f"{name[:18]}{mark}\np {row['prob']:.2f} → o {row['masked_prob']:.2f}"


def overview_figure(results: Any, n: int = 4, *, alpha: float = 0.5, cmap: str = "jet") -> Any:
    """Histograms of drop and score gain, then the worst and best ``n`` maps over their images.

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot; shows once in Jupyter).
    """
    from matplotlib.figure import Figure

    t = results.table
    ok = t[t["error"].isna() & t["masked_prob"].notna()]
    if ok.empty:
        raise ValueError("no rows with faithfulness terms to plot (all failed, or metrics=False)")
    worst, best = cases(t, n)
    cols = max(n, 2)
    fig = Figure(figsize=(2.4 * cols, 7.6), layout="constrained")
    grid = fig.add_gridspec(3, cols)
    ax = fig.add_subplot(grid[0, : cols // 2])
    ax.hist(ok["drop"], bins=20, color="#c44e52")
    ax.set(xlabel="drop (%) — AD term, lower is better", ylabel="rows")
    ax = fig.add_subplot(grid[0, cols // 2:])
    gain = (ok["final_score"] - ok["initial_score"]).to_numpy()
    ax.hist(gain[np.isfinite(gain)], bins=20, color="#4c72b0")
    ax.set(xlabel="final − iteration-0 score", ylabel="rows")
    for r, (title, rows) in enumerate((("worst (highest drop)", worst),
                                       ("best (highest gain)", best)), start=1):
        for c in range(cols):
            ax = fig.add_subplot(grid[r, c])
            ax.set_axis_off()
            if c >= len(rows):
                continue
            ax.imshow(results.overlay(rows[c], alpha=alpha, cmap=cmap))
            ax.set_title(_caption(t.loc[rows[c]]), fontsize=8)
        fig.axes[-cols].text(-0.05, 0.5, title, rotation=90, va="center", ha="right",
                              transform=fig.axes[-cols].transAxes, fontsize=9)
    return fig


def yardsticks_figure(summary: Any, columns: int = 4) -> Any:
    """One panel per yardstick: each method's mean with its 95 % margin, the best in colour.

    Every method tied for the best mean is coloured.

    Args:
        summary: What :func:`~opticam_widgets.dataset.comparison.yardstick_summary` returns
            (its ``"all"`` group is drawn).
        columns: Panels per row.

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot).

    Raises:
        ValueError: no yardsticks in ``summary``.
    """
    from matplotlib.figure import Figure

    overall = summary[summary["group"] == "all"]
    keys = list(dict.fromkeys(overall["yardstick"]))
    if not keys:
        raise ValueError("`summary` holds no yardsticks (a store measured without them)")
    rows = -(-len(keys) // columns)
    methods = list(dict.fromkeys(overall["method"]))
    fig = Figure(figsize=(3.0 * min(columns, len(keys)), 0.5 + rows * (0.35 * len(methods) + 0.9)),
                 layout="constrained")
    for i, key in enumerate(keys):
        g = overall[overall["yardstick"] == key].set_index("method").reindex(methods)
        means = g["mean"].to_numpy(float)
        lower = g["better"].dropna().iloc[0] == "lower" if g["better"].notna().any() else True
        finite = np.where(np.isfinite(means), means, np.inf if lower else -np.inf)
        best = int(np.argmin(finite) if lower else np.argmax(finite))
        colours = ["#4c72b0" if finite[j] == finite[best] else "#b0b0b0"  # ties: all best
                   for j in range(len(methods))]
        ax = fig.add_subplot(rows, min(columns, len(keys)), i + 1)
        ax.barh(range(len(methods)), np.nan_to_num(means), xerr=np.nan_to_num(
            g["margin"].to_numpy(float)), color=colours, capsize=2)
        ax.set_yticks(range(len(methods)), methods if i % columns == 0 else [""] * len(methods),
                      fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{key} {'↓' if lower else '↑'}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    return fig
