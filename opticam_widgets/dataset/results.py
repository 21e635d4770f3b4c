"""The results of :func:`explain_dataset`, read back from the store: table, maps, summary, figure.

Example:
    >>> results = load_results("results/")  # doctest: +SKIP
    >>> results.table[["id", "target_name", "drop", "gain"]].head()  # doctest: +SKIP
    >>> results.saliency(0).shape  # (photo height, photo width)  # doctest: +SKIP
    >>> results.summary()  # the paper's AD / AI / AG, overall and per class  # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch

from ..engine.maps import saliency_from_weights
from ..evaluation.metrics import average_drop, average_gain, average_increase
from .store import Store

__all__ = ["HEAVY_COLUMNS", "DatasetResults", "load_results", "rebuild_saliency"]

#: Columns left out of :attr:`DatasetResults.table` (read on demand: ``weights``, ``thumbnail``).
HEAVY_COLUMNS = ("weights", "thumbnail")


def rebuild_saliency(low_res: Any, size: tuple[int, int]) -> np.ndarray:
    """The full-resolution map (H, W) from a stored feature-resolution map (h, w).

    The engine's map is ``minmax(upsample(cam))`` with the min and max of the upsampled map;
    the stored map is an affine image of ``cam`` (positive scale), and min-max normalisation
    ignores positive affine changes, so ``minmax(upsample(stored))`` (the engine's own maths,
    :func:`~opticam_widgets.engine.maps.saliency_from_weights` with a single unit weight) is the map
    ``explain`` returns at that size, to float rounding.

    Example:
        >>> rebuild_saliency(np.array([[0.0, 1.0], [0.5, 0.25]]), (4, 4)).shape
        (4, 4)
    """
    cam = torch.tensor(np.asarray(low_res, dtype=np.float32))[None, None]
    full = saliency_from_weights(torch.ones(1, 1), cam, (int(size[0]), int(size[1])))
    return full[0, 0].clamp_(0.0, 1.0).numpy()


class DatasetResults:
    """A results folder of :func:`explain_dataset` (rows are read when first needed).

    Args:
        out: The folder.

    Attributes:
        out: The folder (a ``Path``).
        settings: The run's settings (model, layer, iterations, target, ...).
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self._store = Store(out)
        self.out = self._store.out
        settings = self._store.read_settings()
        if settings is None:
            raise ValueError(f"`out` {str(self.out)!r} holds no explain_dataset results "
                             "(no _opticam.json)")
        self.settings: dict[str, Any] = settings
        self._table: Any = None
        self._heavy: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        t = self.table
        errors = int(t["error"].notna().sum()) if len(t) else 0
        skipped = f", {self.skipped_files} non-image files skipped" if self.skipped_files else ""
        return (f"DatasetResults({str(self.out)!r}: {len(t)} rows, {t['id'].nunique()} images, "
                f"{errors} errors{skipped}; model {self.settings.get('model')}, layer "
                f"{self.settings.get('layer')})")

    @property
    def skipped_files(self) -> int:
        """Files of the source folder that were not read (not images, or hidden)."""
        return int(self.settings.get("source", {}).get("skipped_files", 0))

    # ------------------------------------------------------------------ tables
    @property
    def table(self) -> Any:
        """All rows as a pandas DataFrame (without ``weights`` and ``thumbnail``), in source order.

        One row per (image, class); images that could not be explained have ``error`` set.
        """
        if self._table is None:
            cols = [c for c in self._store.schema.names if c not in HEAVY_COLUMNS]
            self._table = self._store.read(cols).to_pandas(types_mapper=_nullable_types())
        return self._table

    @property
    def errors(self) -> Any:
        """The rows of images that were skipped, with the reason (``id``, ``path``, ``error``)."""
        t = self.table
        return t.loc[t["error"].notna(), ["position", "id", "path", "error"]]

    def _column(self, name: str) -> list[Any]:
        if name not in self._heavy:
            table = self._store.read([name, "position", "rank"])
            self._heavy[name] = table.column(name).to_pylist()
        return self._heavy[name]

    def _row(self, row: int) -> Any:
        t = self.table
        if row not in t.index:
            raise ValueError(f"`row` {row!r} is not a row of the table (0..{len(t) - 1})")
        r = t.loc[row]
        if isinstance(r["error"], str):
            raise ValueError(f"`row` {row} has no map: {r['error']}")
        return r

    # ------------------------------------------------------------------ per row
    def weights(self, row: int) -> np.ndarray:
        """The optimized softmax channel weights (K,) of a row."""
        self._row(row)
        return np.asarray(self._column("weights")[row], dtype=np.float32)

    def low_res(self, row: int) -> np.ndarray:
        """The stored feature-resolution normalized map (h, w) of a row."""
        r = self._row(row)
        return np.asarray(r["map"], dtype=np.float32).reshape(int(r["map_height"]),
                                                              int(r["map_width"]))

    def saliency(self, row: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """The map of a row, float32 (H, W) in [0, 1], at the photo's size (or ``size``).

        Equal to ``OptiCAM.explain``'s map on the photo, to float rounding (see
        :func:`rebuild_saliency`).

        Args:
            row: An index label of :attr:`table`.
            size: ``(height, width)`` to rebuild at; default the photo's own size.
        """
        r = self._row(row)
        shape = size or (int(r["photo_height"]), int(r["photo_width"]))
        return rebuild_saliency(self.low_res(row), shape)

    def thumbnail(self, row: int) -> np.ndarray:
        """The stored thumbnail of a row's image, uint8 (h, w, 3)."""
        from PIL import Image

        data = self._column("thumbnail")[row]
        if data is None:
            raise ValueError(f"`row` {row} has no thumbnail: {self.table.loc[row, 'error']}")
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def image(self, row: int) -> np.ndarray:
        """A row's photo, uint8 (H, W, 3): read from its path, else the thumbnail."""
        r = self.table.loc[row]
        if isinstance(r["path"], str) and os.path.isfile(r["path"]):
            from ..inputs.images import to_image_tensor

            pixels = to_image_tensor(r["path"], name="path")
            return (pixels.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
        return self.thumbnail(row)

    def overlay(self, row: int, alpha: float = 0.5, cmap: str = "jet",
                full: bool = False) -> np.ndarray:
        """The map over the image, uint8 RGB: the thumbnail (or the photo with ``full``)."""
        from ..display.render import overlay

        img = self.image(row) if full else self.thumbnail(row)
        return overlay(img, self.saliency(row, img.shape[:2]), alpha=alpha, cmap=cmap)

    # ------------------------------------------------------------------ aggregates
    def summary(self, by: str | None = "target_name") -> Any:
        """The paper's table: AD / AI / AG (%) overall and per class (``by``; None: overall).

        With true labels: ``accuracy`` (overall, % of labelled images predicted right), and
        per class ``precision`` (% of the labelled images predicted as the class that are of
        it) and ``recall`` (% of the images of the class predicted as it). Computed with
        :func:`~opticam_widgets.evaluation.metrics.average_drop`,
        :func:`~opticam_widgets.evaluation.metrics.average_increase` and
        :func:`~opticam_widgets.evaluation.metrics.average_gain` on the stored probabilities;
        insertion and deletion AUC means when they were computed (``metrics="full"``).
        """
        import pandas as pd

        t = self.table
        ok = t[t["error"].isna() & t["masked_prob"].notna()]
        if ok.empty:
            raise ValueError("no rows with faithfulness terms (all failed, or metrics=False)")
        rows = [_summary_row("all", ok)]
        labelled = ok["correct"].notna().any()
        if labelled:
            rows[0]["accuracy"] = _percent(ok.drop_duplicates("id")["correct"])
        if by is not None:
            key = by if ok[by].notna().all() else "target"
            for name in ok[key].value_counts(sort=True).index:
                g = ok[ok[key] == name]
                rows.append(_summary_row(str(name), g))
                if labelled:
                    rows[-1].update(_precision_recall(ok, int(g["target"].iloc[0])))
        return pd.DataFrame(rows).set_index("group")

    def yardsticks(self, by: str | None = "target_name", min_rows: int = 5) -> Any:
        """Every yardstick per method, overall and per class: mean and 95 % margin.

        See :func:`~opticam_widgets.dataset.comparison.yardstick_summary` (empty for a store
        measured without yardsticks, e.g. one written before them).

        Args:
            by: The column of the classes (``None``: overall only).
            min_rows: Classes with fewer rows are left out.
        """
        from .comparison import yardstick_summary

        return yardstick_summary(self.table, by, min_rows)

    def best_methods(self) -> Any:
        """The best method per yardstick, with the paired lead over the runner-up.

        See :func:`~opticam_widgets.dataset.comparison.best_methods`.
        """
        from .comparison import best_methods

        return best_methods(self.table)

    def figure(self, n: int = 4, *, alpha: float = 0.5, cmap: str = "jet") -> Any:
        """A matplotlib figure: distributions of drop and score gain, the worst and best maps.

        Worst: highest drop (then lowest masked probability); best: highest gain.
        """
        from .figures import overview_figure

        return overview_figure(self, n, alpha=alpha, cmap=cmap)


def _nullable_types() -> Any:
    """The pandas dtypes that keep integer and boolean columns exact when some rows are null."""
    import pandas as pd
    import pyarrow as pa

    return {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
            pa.bool_(): pd.BooleanDtype()}.get


def _summary_row(name: str, g: Any) -> dict[str, Any]:
    p, o = g["prob"].to_numpy(), g["masked_prob"].to_numpy()
    row = {"group": name, "rows": len(g), "images": g["id"].nunique(),
           "AD": average_drop(p, o), "AI": average_increase(p, o), "AG": average_gain(p, o),
           "iterations": float(g["iterations"].mean())}
    if g["insertion_auc"].notna().any():
        row["insertion_auc"] = float(g["insertion_auc"].mean())
        row["deletion_auc"] = float(g["deletion_auc"].mean())
    return row


def _precision_recall(ok: Any, cls: int) -> dict[str, float]:
    """Precision and recall (%) of class ``cls`` over the labelled images (one row each)."""
    images = ok[ok["true_label"].notna()].drop_duplicates("id")
    predicted = images[images["predicted"] == cls]
    truly = images[images["true_label"] == cls]
    return {"precision": _percent(predicted["true_label"] == cls),
            "recall": _percent(truly["predicted"] == cls)}


def _percent(flags: Any) -> float:
    """% of true values among the known ones (NaN when none is known)."""
    known = flags.dropna().astype(float)
    return 100.0 * float(known.mean()) if len(known) else float("nan")


def load_results(out: str | os.PathLike) -> DatasetResults:
    """Open a results folder written by :func:`explain_dataset`.

    Example:
        >>> results = load_results("results/")  # doctest: +SKIP
        >>> len(results.table)  # doctest: +SKIP
    """
    return DatasetResults(out)
