"""Thumbnails of a results store with the map over them, read and drawn one page at a time.

:class:`ThumbnailReader` finds where each row of a results folder lives (shard, row group,
offset: from the light ``position`` and ``rank`` columns) and reads the JPEG thumbnails of the
rows asked for, one row group at a time: memory follows the page and the store's row-group
size, never the dataset. :class:`Thumbnails` overlays each row's stored map
(:meth:`DatasetResults.low_res <opticam_widgets.dataset.results.DatasetResults.low_res>`,
resized and drawn by :func:`opticam_widgets.display.render.overlay`) and keeps the tiles in a small
LRU cache bounded by a few pages.

Example:
    >>> tiles = Thumbnails(load_results("results/"), capacity=48)  # doctest: +SKIP
    >>> tiles.get([0, 1, 2])[0].shape  # uint8 (h, w, 3), longest side 160  # doctest: +SKIP
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..dataset.store import Store
from ..display.render import overlay

__all__ = ["ThumbnailReader", "Thumbnails", "decode_jpeg"]


def decode_jpeg(data: bytes) -> np.ndarray:
    """A stored thumbnail (JPEG bytes) as uint8 RGB (h, w, 3)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class ThumbnailReader:
    """Reads the stored thumbnails of chosen rows of a results folder.

    Args:
        results: A :class:`~opticam_widgets.dataset.results.DatasetResults`; its table's index
            labels name the rows.
    """

    def __init__(self, results: Any) -> None:
        self.shards = Store(results.out).shards()
        where: dict[tuple[int, int], tuple[int, int, int]] = {}
        for s, path in enumerate(self.shards):
            shard = pq.ParquetFile(path)  # its footer parsed once
            meta, keys = shard.metadata, shard.read(columns=["position", "rank"])
            positions = keys.column("position").to_pylist()
            ranks = keys.column("rank").to_pylist()
            start = 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                for i in range(start, start + n):
                    where[(positions[i], -1 if ranks[i] is None else ranks[i])] = (s, g, i - start)
                start += n
        table = results.table
        ranks = table["rank"].astype("Int64").fillna(-1).astype(int)
        self._where = {label: where.get((int(p), int(r)))
                       for label, p, r in zip(table.index, table["position"], ranks)}

    def read(self, rows: Iterable[int]) -> dict[int, bytes | None]:
        """The JPEG bytes of each row (``None`` for a row without a thumbnail)."""
        wanted: dict[tuple[int, int], list[tuple[int, int]]] = {}
        out: dict[int, bytes | None] = {}
        for row in rows:
            loc = self._where.get(row)
            if loc is None:
                out[row] = None
                continue
            wanted.setdefault(loc[:2], []).append((row, loc[2]))
        files: dict[int, Any] = {}  # each shard opened once per page
        for (shard, group), items in sorted(wanted.items()):
            if shard not in files:
                files[shard] = pq.ParquetFile(self.shards[shard])
            column = files[shard].read_row_group(group, columns=["thumbnail"]).column("thumbnail")
            for row, offset in items:
                out[row] = column[offset].as_py()
        return out


class Thumbnails:
    """Tiles (thumbnail + map overlay) of result rows, with an LRU cache.

    Args:
        results: A :class:`~opticam_widgets.dataset.results.DatasetResults`.
        capacity: Tiles kept (a few pages' worth: memory is bounded by it).
        alpha: Opacity of the map.
        cmap: Colormap of the map.
    """

    def __init__(self, results: Any, capacity: int = 48, *, alpha: float = 0.5,
                 cmap: str = "jet") -> None:
        self.results = results
        self.reader = ThumbnailReader(results)
        self.capacity = int(capacity)
        self.alpha, self.cmap = 0.5, "jet"
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.style(alpha, cmap)

    def __len__(self) -> int:
        return len(self._cache)

    def style(self, alpha: float, cmap: str) -> None:
        """Change the opacity or colormap (the cached tiles are dropped when it changes)."""
        if (float(alpha), cmap) != (self.alpha, self.cmap):
            overlay(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1)), alpha, cmap)  # validate
            self.alpha, self.cmap = float(alpha), cmap
            self._cache.clear()

    def tiles(self, jpegs: dict[int, bytes | None]) -> dict[int, np.ndarray]:
        """Tiles of rows from their thumbnail bytes (grey for ``None``).

        The stored feature-resolution map is drawn as it is (resized by
        :func:`~opticam_widgets.display.render.overlay`, no engine call): it is normalised to span
        [0, 1] at the photo's size, so at the thumbnail's size it spans [0, 1] to within the
        resampling of its extremes (under 1% of the range). The detail view shows the exact map.
        """
        out = {}
        for row, data in jpegs.items():
            if data is None:
                out[row] = np.full((120, 160, 3), 128, np.uint8)
                continue
            out[row] = overlay(decode_jpeg(data), self.results.low_res(row), alpha=self.alpha,
                               cmap=self.cmap)
        return out

    def get(self, rows: Sequence[int]) -> dict[int, np.ndarray]:
        """Tiles of ``rows`` (cached ones reused; the others read in one pass)."""
        missing = [r for r in rows if r not in self._cache]
        self._cache.update(self.tiles(self.reader.read(missing)))
        out = {}
        for r in rows:
            self._cache.move_to_end(r)
            out[r] = self._cache[r]
        while len(self._cache) > max(self.capacity, len(rows)):
            self._cache.popitem(last=False)
        return out

    def clear(self) -> None:
        """Drop every cached tile."""
        self._cache.clear()
