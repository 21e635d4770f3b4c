"""Export of the explorer's selection: a CSV of its rows' ids, a PNG contact sheet of its maps.

The contact sheet is drawn a page at a time from the store's thumbnails (through
:class:`~.thumbs.Thumbnails`), into one preallocated picture of at most ``limit`` tiles, so its
memory is that picture's, whatever the selection's size. Wrong predictions get a red frame.

Example:
    >>> sheet_array([(np.zeros((4, 6, 3), np.uint8), "a", True)], columns=2, cell=8).shape
    (38, 16, 3)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..display.render import to_png_bytes
from .query import is_unknown, is_wrong

__all__ = ["CSV_COLUMNS", "sheet_array", "tile_caption", "write_contact_sheet", "write_csv"]

#: Columns of the exported CSV (those of the selection that exist), ``id`` first.
CSV_COLUMNS = ("id", "path", "position", "rank", "true_class", "predicted_class",
               "predicted_prob", "correct", "target", "target_class", "prob", "masked_prob",
               "drop", "gain", "score_gain")
#: Caption band under each tile of a contact sheet, in pixels.
CAPTION = 22
_RED = np.array([198, 40, 40], np.uint8)


def write_csv(selection: Any, path: str | os.PathLike) -> Path:
    """Write the selection's ids (and what it was filtered on) as CSV, in its order.

    Returns:
        The path written.
    """
    out = Path(path)
    cols = [c for c in CSV_COLUMNS if c in selection.columns]
    selection[cols].to_csv(out, index=False)
    return out


def _fit(rgb: np.ndarray, cell: int) -> np.ndarray:
    """``rgb`` scaled to fit a ``cell`` square (aspect kept)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if max(h, w) == cell:
        return rgb
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def sheet_array(tiles: Sequence[tuple[np.ndarray, str, bool]], columns: int = 6,
                cell: int = 160) -> np.ndarray:
    """A contact sheet: tiles in a grid of ``columns``, each with a caption; uint8 RGB.

    Args:
        tiles: ``(pixels uint8 (h, w, 3), caption, wrong)``; wrong ones get a red frame.
        columns: Tiles per line.
        cell: Side of a tile's square, in pixels (tiles are scaled to fit).
    """
    from PIL import Image, ImageDraw

    columns = max(1, min(columns, len(tiles) or 1))
    lines = max(1, -(-len(tiles) // columns))
    pad = 4
    step_x, step_y = cell + pad, cell + CAPTION + pad
    sheet = np.full((lines * step_y + pad, columns * step_x + pad, 3), 255, np.uint8)
    for i, (rgb, _caption, wrong) in enumerate(tiles):
        y, x = pad + (i // columns) * step_y, pad + (i % columns) * step_x
        img = _fit(rgb, cell)
        oy, ox = (cell - img.shape[0]) // 2, (cell - img.shape[1]) // 2
        sheet[y + oy:y + oy + img.shape[0], x + ox:x + ox + img.shape[1]] = img
        if wrong:
            for a, b in ((slice(y, y + 3), slice(x, x + cell)),
                         (slice(y + cell - 3, y + cell), slice(x, x + cell)),
                         (slice(y, y + cell), slice(x, x + 3)),
                         (slice(y, y + cell), slice(x + cell - 3, x + cell))):
                sheet[a, b] = _RED
    picture = Image.fromarray(sheet)
    draw = ImageDraw.Draw(picture)
    for i, (_rgb, caption, wrong) in enumerate(tiles):
        y, x = pad + (i // columns) * step_y, pad + (i % columns) * step_x
        draw.text((x + 2, y + cell + 3), caption[: max(4, cell // 6)],
                  fill=tuple(_RED) if wrong else (20, 20, 20))
    return np.asarray(picture)


def tile_caption(row: Any) -> str:
    """Short caption of a contact-sheet tile: ``x``/``ok`` mark, predicted class, probability."""
    correct = row["correct"]
    mark = "x " if is_wrong(correct) else "" if is_unknown(correct) else "ok "
    return f"{mark}{row['predicted_class']} {100 * float(row['predicted_prob']):.0f}%"


def write_contact_sheet(selection: Any, thumbs: Any, path: str | os.PathLike, *,
                        limit: int = 96, columns: int = 8, chunk: int = 24) -> Path:
    """Write the first ``limit`` rows of the selection as a PNG contact sheet.

    Args:
        selection: Rows of a :func:`~.query.browse_table` frame, in the order to draw.
        thumbs: A :class:`~.thumbs.Thumbnails` of the same results (style and store).
        path: The PNG file to write.
        limit: Most tiles drawn (the selection's first rows).
        columns: Tiles per line.
        chunk: Rows read from the store at a time.

    Returns:
        The path written.

    Raises:
        ValueError: An empty selection, or ``limit`` < 1.
    """
    if limit < 1:
        raise ValueError(f"`limit` must be at least 1, got {limit!r}")
    rows = selection.head(limit)
    if rows.empty:
        raise ValueError("the selection is empty: nothing to put in a contact sheet; "
                         "loosen the filters")
    tiles = []
    for start in range(0, len(rows), chunk):
        part = rows.iloc[start:start + chunk]
        drawn = thumbs.tiles(thumbs.reader.read(list(part.index)))
        for label, row in part.iterrows():
            tiles.append((drawn[label], tile_caption(row), is_wrong(row["correct"])))
    out = Path(path)
    out.write_bytes(to_png_bytes(sheet_array(tiles, columns=columns)))
    return out
