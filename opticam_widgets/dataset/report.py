"""A Markdown report (the paper's table, worst cases, errors) and PNG figures of a results folder.

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
                 *, n: int = 4, classes: int = 20) -> Path:
    """Write ``report.md`` and ``overview.png`` for a results folder.

    Args:
        results: A :class:`DatasetResults` or its folder.
        out: Report folder; default ``<results>/_report``.
        n: Worst and best cases shown.
        classes: Classes listed in the table (most frequent first).

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
        lines += _summary_md(res, classes) + [""] + _cases_md(res, n)
        lines += ["![distributions, worst and best maps](overview.png)", ""]
    lines += _errors_md(res)
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
