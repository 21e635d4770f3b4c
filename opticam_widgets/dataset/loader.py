"""Decoding: an item's image -> pixels at the model's input size, a thumbnail and the photo size.

Used by both engines: :class:`DecodedDataset` / :func:`make_loader` (a torch ``DataLoader``
whose workers decode and resize) for the local engine, :func:`decode` directly in Ray's read
tasks. An image that cannot be read becomes a record with an ``error`` message instead of an
exception, so one bad file never stops a run.

The resize is the model's own :meth:`~opticam_widgets.inputs.preprocess.Preprocess.resize`, the one
``OptiCAM.explain`` applies before masking: explaining the resized image optimizes exactly the
same problem as explaining the photo (masking happens at the model's input size either way).
"""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..inputs.images import to_image_tensor
from ..inputs.preprocess import Preprocess
from .sources import Item, Source

__all__ = ["THUMBNAIL", "Decoded", "DecodedDataset", "ImageBatch", "collate", "decode",
           "make_loader"]

#: Longest side of the stored JPEG thumbnails, in pixels.
THUMBNAIL = 160


@dataclass
class Decoded:
    """One decoded item: pixels (3, h, w) at the model's size, or an error."""

    item: Item
    pixels: Tensor | None
    photo_size: tuple[int, int] | None
    thumbnail: bytes | None
    error: str | None = None
    stamp: tuple[int, int] | None = None  # the file's (size, mtime_ns) when read


def file_stamp(path: str | None) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of an image file, or ``None`` (no path, or no such file)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return int(st.st_size), int(st.st_mtime_ns)


@dataclass
class ImageBatch:
    """A batch: the stacked pixels of the good items, and the records of all of them."""

    pixels: Tensor | None
    good: list[Decoded]
    bad: list[Decoded]

    def __len__(self) -> int:
        return len(self.good) + len(self.bad)


def thumbnail_jpeg(pixels: Tensor, side: int = THUMBNAIL) -> bytes:
    """A JPEG of a pixel image (3, H, W) in [0, 1], longest side ``side`` pixels."""
    from PIL import Image

    arr = (pixels.permute(1, 2, 0).clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(arr)
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def decode(image: Any, item: Item, preprocess: Preprocess) -> Decoded:
    """Decode and resize one image; a record with ``error`` set when it cannot be read."""
    stamp = file_stamp(item.path)  # before reading: a change during the read is seen later
    try:
        photo = to_image_tensor(image, name=item.id)
    except (ValueError, TypeError, OSError) as exc:  # unreadable, missing, bad values
        return Decoded(item, None, None, None, f"{type(exc).__name__}: {exc}", stamp)
    size = (int(photo.shape[1]), int(photo.shape[2]))
    pixels = preprocess.resize(photo[None])[0].contiguous()
    return Decoded(item, pixels, size, thumbnail_jpeg(photo), stamp=stamp)


def collate(records: Sequence[Decoded]) -> ImageBatch:
    """Stack the good records' pixels (a ``DataLoader`` ``collate_fn``)."""
    good = [r for r in records if r.error is None]
    bad = [r for r in records if r.error is not None]
    pixels = torch.stack([r.pixels for r in good]) if good else None  # type: ignore[misc]
    return ImageBatch(pixels, good, bad)


class DecodedDataset(Dataset):
    """A map-style dataset of :class:`Decoded` records over some items of a source."""

    def __init__(self, source: Source, items: Sequence[Item], preprocess: Preprocess) -> None:
        self.source, self.items, self.preprocess = source, list(items), preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded:
        try:
            image, item = self.source.fetch(self.items[index])
        except Exception as exc:  # noqa: BLE001 - a user dataset's __getitem__ failed
            item = self.items[index]
            return Decoded(item, None, None, None, f"{type(exc).__name__}: {exc}",
                           file_stamp(item.path))
        return decode(image, item, self.preprocess)


class DecodedStream(IterableDataset):
    """An iterable dataset of :class:`Decoded` records of a stream source, minus ``skip``."""

    def __init__(self, source: Source, skip: set[str], preprocess: Preprocess) -> None:
        self.source, self.skip, self.preprocess = source, skip, preprocess

    def __iter__(self) -> Iterator[Decoded]:
        for image, item in self.source.stream():
            if item.id not in self.skip:
                yield decode(image, item, self.preprocess)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A decoding worker's start: SIGTERM / SIGHUP are for the main process to handle.

    A closed terminal or a scheduler signals the whole process group; the main process then
    stops the run cleanly (:mod:`.signals`) and ends its workers itself.
    """
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def make_loader(source: Source, skip: set[str], preprocess: Preprocess, batch_size: int,
                num_workers: int) -> tuple[DataLoader, int | None]:
    """A ``DataLoader`` of :class:`ImageBatch` over the items not in ``skip``, and their count.

    Streams are read in the main process (``num_workers`` is ignored for them: one pass over
    a user iterator cannot be split between processes).
    """
    if source.items is not None:
        todo = [it for it in source.items if it.id not in skip]
        data: Dataset = DecodedDataset(source, todo, preprocess)
        total: int | None = len(todo)
    else:
        data, num_workers = DecodedStream(source, skip, preprocess), 0
        total = None if source.length is None else max(0, source.length - len(skip))
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate, persistent_workers=False,
                        worker_init_fn=ignore_stop_signals if num_workers else None,
                        prefetch_factor=2 if num_workers else None,
                        generator=torch.Generator())  # its base seed: not the user's RNG
    return loader, total
