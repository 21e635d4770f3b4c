"""Matplotlib figures of a dataset's results: distributions, worst and best maps."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cases", "overview_figure"]


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
