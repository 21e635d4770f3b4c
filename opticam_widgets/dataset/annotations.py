"""Annotations carried by a dataset: read from a manifest or a torchvision-style target dict.

Two ways for a source to say where each image's objects are (in pixels of the original image):

* a **manifest**, a ``.csv``, ``.json``, ``.jsonl`` or ``.parquet`` table with one row per
  image: ``path`` (relative to the manifest's folder), optionally ``label`` (the image's class),
  ``boxes`` (``[[x0, y0, x1, y1, label], ...]``; a JSON string in a CSV) and ``masks``
  (``[[mask image path, label], ...]``, non-zero pixels inside);
* a map-style dataset yielding ``(image, target)`` where ``target`` is a dict with ``boxes``
  (N, 4) ``(x0, y0, x1, y1)`` and ``labels`` (N,), and/or ``masks`` (N, H, W): torchvision's
  detection format, e.g. ``torchvision.datasets.wrap_dataset_for_transforms_v2(CocoDetection(
  ...))`` (boxes in another format, e.g. ``XYWH``, are converted).

Each object becomes an :class:`~opticam_widgets.engine.targets.Annotation`;
``explain_dataset(..., target=Annotations())`` explains one row per object, and the store keeps
the object's box (``region_box``, photo pixels) and mask (``region_mask``, a PNG).

Example:
    >>> import torch
    >>> objs = from_target({"boxes": torch.tensor([[0., 0., 4., 4.]]), "labels": torch.tensor([2])})
    >>> objs[0].box, objs[0].label
    ((0.0, 0.0, 4.0, 4.0), 2)
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.targets import Annotation

__all__ = ["MANIFEST_SUFFIXES", "annotation_columns", "from_target", "is_target_dict",
           "read_manifest"]

#: File suffixes read as a manifest (a table of images and their annotations).
MANIFEST_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")


def is_target_dict(value: Any) -> bool:
    """Whether a dataset's second element is a detection/segmentation target dict.

    Example:
        >>> is_target_dict({"boxes": [], "labels": []}), is_target_dict(3)
        (True, False)
    """
    return isinstance(value, Mapping) and ("boxes" in value or "masks" in value)


def _xyxy(boxes: Any) -> np.ndarray:
    """(N, 4) corners of a target's boxes (a tv_tensors ``BoundingBoxes`` in any format)."""
    fmt = getattr(getattr(boxes, "format", None), "name", "XYXY")
    if fmt != "XYXY":
        import torch
        from torchvision.ops import box_convert

        boxes = box_convert(torch.as_tensor(boxes).float(), fmt.lower(), "xyxy")
    array = np.asarray(boxes.tolist() if hasattr(boxes, "tolist") else boxes, dtype=float)
    return array.reshape(-1, 4)


def from_target(target: Mapping[str, Any], name: str = "target") -> tuple[Annotation, ...]:
    """The objects of a torchvision-style target dict (``boxes``, ``labels``, ``masks``).

    Raises:
        ValueError: ``labels`` missing, or counts of boxes, masks and labels that differ.
    """
    if "labels" not in target:
        raise ValueError(f"`{name}` has boxes or masks but no 'labels'; give one class per "
                         "object (torchvision's detection format)")
    labels = list(np.asarray(target["labels"]).reshape(-1).tolist())
    boxes = _xyxy(target["boxes"]) if "boxes" in target else None
    masks = target.get("masks")
    counts = {len(labels), *(() if boxes is None else (len(boxes),)),
              *(() if masks is None else (len(masks),))}
    if len(counts) != 1:
        raise ValueError(f"`{name}` has {len(labels)} labels, "
                         f"{'no' if boxes is None else len(boxes)} boxes and "
                         f"{'no' if masks is None else len(masks)} masks; give one per object")
    return tuple(Annotation(lab, box=None if boxes is None else boxes[k],
                            mask=None if masks is None else np.asarray(masks[k]),
                            name=f"{name} object {k}")
                 for k, lab in enumerate(labels))


def _listed(value: Any, column: str, where: str) -> list[Any]:
    """A manifest cell holding a list (a JSON string in a CSV); empty for a missing one."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            raise ValueError(f"`source` {where}: column {column!r} is not JSON ({value!r}); "
                             f"write [[x0, y0, x1, y1, label], ...]") from None
    return [list(v) if not isinstance(v, str) else v for v in value]


def _objects(row: Mapping[str, Any], root: Path, where: str) -> tuple[Annotation, ...]:
    objs = []
    for k, entry in enumerate(_listed(row.get("boxes"), "boxes", where)):
        if len(entry) != 5:
            raise ValueError(f"`source` {where}: box {k} is {entry!r}; give [x0, y0, x1, y1, "
                             f"label] in pixels of the original image")
        objs.append(Annotation(entry[4], box=entry[:4], name=f"{where} box {k}"))
    for k, entry in enumerate(_listed(row.get("masks"), "masks", where)):
        if len(entry) != 2:
            raise ValueError(f"`source` {where}: mask {k} is {entry!r}; give [mask image "
                             f"path, label]")
        objs.append(Annotation(entry[1], mask=str(root / entry[0]), name=f"{where} mask {k}"))
    return tuple(objs)


def _table(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet,
               ".jsonl": lambda p: pd.read_json(p, lines=True), ".json": pd.read_json}
    frame = readers[path.suffix.lower()](path)
    if "path" not in frame.columns:
        raise ValueError(f"`source` manifest {str(path)!r} has no 'path' column (columns: "
                         f"{', '.join(map(str, frame.columns))}); give one image path per row")
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def read_manifest(path: str | Path) -> list[tuple[str, str, Any, tuple[Annotation, ...]]]:
    """``(id, image path, label or None, objects)`` of each row of a manifest.

    Raises:
        ValueError: no ``path`` column, an empty manifest, a malformed box or mask entry.
    """
    path = Path(path)
    rows = _table(path)
    if not rows:
        raise ValueError(f"`source` manifest {str(path)!r} has no rows")
    out = []
    for n, row in enumerate(rows):
        image = str(row["path"])
        where = f"manifest row {n} ({image})"
        out.append((image, str(path.parent / image), row.get("label"),
                    _objects(row, path.parent, where)))
    return out


def _png(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(((mask > 0) * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def annotation_columns(obj: Annotation | None, photo: Sequence[int]) -> dict[str, Any]:
    """The store columns of one object: its box (photo pixels) and its mask (a PNG).

    Example:
        >>> annotation_columns(Annotation(1, box=(0, 0, 2, 2)), (4, 4))["region_box"]
        [0.0, 0.0, 2.0, 2.0]
    """
    if obj is None:
        return {"region_box": None, "region_mask": None}
    mask = obj.mask_array(tuple(photo))  # type: ignore[arg-type]
    return {"region_box": None if obj.box is None else list(obj.box),
            "region_mask": None if mask is None else _png(mask)}
