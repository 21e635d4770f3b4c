"""A Markdown report of a results folder and its PNG figures.

The paper's table, every yardstick per method and per class with the best method per
yardstick (:mod:`.comparison`), the worst and best cases, the errors.

Example:
    >>> write_report("results/")  # doctest: +SKIP
    PosixPath('results/_report/report.md')
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .figures import cases
from .results import DatasetResults, load_results

__all__ = ["markdown_table", "write_report"]

#: Folder of the report inside a results folder (the ``_`` keeps Parquet readers out of it).
REPORT_DIR = "_report"


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or value is pd.NA:
        return ""
    if isinstance(value, numbers.Integral):  # numpy integers and bools included
        return str(value)
    if isinstance(value, numbers.Real):  # numpy floats included (float32 is not a float)
        return "" if math.isnan(float(value)) else f"{float(value):.2f}"
    return str(value).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats with two decimals.

    Example:
        >>> print(markdown_table(["a", "b"], [[1, 0.5]]))
        | a | b |
        | --- | --- |
        | 1 | 0.50 |
    """
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _summary_md(results: DatasetResults, classes: int) -> list[str]:
    summary = results.summary()
    head = summary.iloc[: classes + 1]
    cols = list(summary.columns)
    rows = [[name, *[head.loc[name, c] for c in cols]] for name in head.index]
    more = len(summary) - len(head)
    note = [f"_{more} more classes in `results.summary()`._"] if more > 0 else []
    return ["## Faithfulness (the Opti-CAM paper's table)", "",
            "AD ↓, AI ↑, AG ↑ in % on the class probability of x ⊙ S; per class by the "
            "explained class, most frequent first. accuracy: % of images predicted right; "
            "precision: % of a class's rows whose image is of that class; recall: % of the "
            "images of a class predicted as it.", "",
            markdown_table(["group", *cols], rows), "", *note]


def _arrow(key: str) -> str:
    from ..evaluation.yardsticks import describe_yardstick

    return f"{key} {'↓' if describe_yardstick(key)[0] == 'lower' else '↑'}"


def _num(value: Any) -> str:
    """A yardstick's value: AUCs and ROAD (under 10) with 3 decimals, percentages with 1."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    return f"{float(value):.3f}" if abs(float(value)) < 10 else f"{float(value):.1f}"


def _plus_minus(mean: float, margin: float, bold: bool = False) -> str:
    text = _num(mean) + ("" if math.isnan(margin) else f" ± {_num(margin)}")
    return f"**{text}**" if bold else text


def _yardsticks_md(results: DatasetResults, classes: int, min_rows: int,
                   folder: Path) -> list[str]:
    """Every yardstick per method (mean ± 95 % margin), the best per yardstick, per class."""
    from .figures import yardsticks_figure

    summary = results.yardsticks(min_rows=min_rows)
    if summary.empty:
        return []
    yardsticks_figure(summary).savefig(folder / "yardsticks.png", dpi=100)
    best = results.best_methods()
    winner = dict(zip(best["yardstick"], best["best"]))
    overall = summary[summary["group"] == "all"]
    methods = list(dict.fromkeys(overall["method"]))
    rows = []
    for key, g in overall.groupby("yardstick", sort=False):
        cells = {r.method: _plus_minus(r.mean, r.margin,
                                       len(methods) > 1 and r.method == winner.get(key))
                 for r in g.itertuples()}
        rows.append([_arrow(key), int(g["rows"].max()), *[cells.get(m, "") for m in methods]])
    lines = ["## Yardsticks per method", "",
             "Each map judged on every yardstick measured (`results.yardsticks()`): AD/AI/AG in "
             "% under each fill (black: the paper's x ⊙ S; mean: the dataset's mean colour; "
             "blur), deletion/insertion AUC, ROAD. Mean over the rows ± 1.96 standard errors; "
             "↓ lower is better, ↑ higher; the best mean in bold. Baselines explain the same "
             "image and class on the same layer.", "",
             markdown_table(["yardstick", "rows", *methods], rows), "",
             "![every yardstick per method, mean ± 95 % margin](yardsticks.png)", ""]
    lead = [[_arrow(r.yardstick), r.best, _num(r.best_mean), r.runner_up or "—",
             _num(r.runner_up_mean),
             "" if r.runner_up is None else _plus_minus(r.difference, r.margin),
             "yes" if r.clear else "no"] for r in best.itertuples()]
    lines += ["## Best method per yardstick", "",
              "The lead is the paired difference best − runner-up over the rows where both "
              "were measured (± 1.96 standard errors); clear: larger than its margin.", "",
              markdown_table(["yardstick", "best", "mean", "runner-up", "mean",
                              "lead ± margin", "clear"], lead), ""]
    return lines + _per_class_md(summary, classes, min_rows)


def _per_class_md(summary: Any, classes: int, min_rows: int) -> list[str]:
    per = summary[summary["group"] != "all"]
    names = list(dict.fromkeys(per["group"]))[:classes]
    if not names:
        return []
    keys = list(dict.fromkeys(per["yardstick"]))
    rows = []
    for name in names:
        g = per[per["group"] == name]
        for method, m in g.groupby("method", sort=False):
            means = dict(zip(m["yardstick"], m["mean"]))
            rows.append([name, method, int(m["rows"].max()),
                         *[_num(means.get(k)) for k in keys]])
    return ["## Yardsticks per class", "",
            f"Means per explained class with at least {min_rows} rows (most frequent first; "
            "margins in `results.yardsticks()`).", "",
            markdown_table(["class", "method", "rows", *[_arrow(k) for k in keys]], rows), ""]


def _cases_md(results: DatasetResults, n: int) -> list[str]:
    t = results.table
    worst, best = cases(t, n)
    cols = ["id", "target_name", "prob", "masked_prob", "drop", "gain", "iterations"]
    parts = []
    for title, rows in (("Worst cases (highest drop)", worst), ("Best cases (highest gain)", best)):
        parts += [f"## {title}", "",
                  markdown_table(cols, [[t.loc[i, c] for c in cols] for i in rows]), ""]
    return parts


def _errors_md(results: DatasetResults) -> list[str]:
    errors = results.errors
    if errors.empty:
        return []
    rows = [[r.id, r.error] for r in errors.itertuples()]
    return [f"## Skipped images ({len(rows)})", "", markdown_table(["id", "error"], rows), ""]


def write_report(results: DatasetResults | str | os.PathLike, out: str | os.PathLike | None = None,
                 *, n: int = 4, classes: int = 20, min_rows: int = 5) -> Path:
    """Write ``report.md``, ``overview.png`` and ``yardsticks.png`` for a results folder.

    Args:
        results: A :class:`DatasetResults` or its folder.
        out: Report folder; default ``<results>/_report``.
        n: Worst and best cases shown.
        classes: Classes listed in the tables (most frequent first).
        min_rows: Classes with fewer rows are left out of the yardsticks per class.

    Returns:
        The path of ``report.md``.
    """
    res = results if isinstance(results, DatasetResults) else load_results(results)
    folder = Path(out) if out is not None else res.out / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    t = res.table
    s = res.settings
    lines = [f"# Opti-CAM dataset report: `{res.out}`", "",
             f"- model: {s.get('model')}, layer `{s.get('layer')}`, target {s.get('target')!r}",
             f"- {t['id'].nunique()} images, {len(t)} rows, {len(res.errors)} could not be "
             f"explained; {res.skipped_files} files in the source skipped (not images)",
             f"- max_iter {s.get('max_iter')}, lr {s.get('lr')}, tol {s.get('tol')}", ""]
    if t["masked_prob"].notna().any():
        fig = res.figure(n)
        fig.savefig(folder / "overview.png", dpi=100)
        lines += _summary_md(res, classes) + [""] + _yardsticks_md(res, classes, min_rows,
                                                                    folder)
        lines += _cases_md(res, n)
        lines += ["![distributions, worst and best maps](overview.png)", ""]
    lines += _errors_md(res)
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
