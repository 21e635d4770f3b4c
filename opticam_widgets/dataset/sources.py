"""Dataset sources: a folder, a list of paths, a torch ``Dataset`` or any iterable of images.

:func:`open_source` turns what the user gives into a :class:`Source`: a sequence (or stream) of
:class:`Item` records (a stable id, a path when there is one, the true label when known) and a
:meth:`Source.fetch` that returns the image of an item (a path or an in-memory image) and its
label. Nothing is decoded here: decoding happens in the engine's workers.

Labels come from an ImageFolder layout (``root/<class>/.../image.jpg``) or from a
``Dataset`` yielding ``(image, label)``. A class folder name is matched to the model's label
names (case, ``_`` and ``-`` ignored) or read as a class index when it is an integer; a name
that matches nothing keeps its text and gets no index.

Example:
    >>> source = open_source(["a.png", "b.png"])  # doctest: +SKIP
    >>> [item.id for item in source.items]  # doctest: +SKIP
    ['a.png', 'b.png']
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, IterableDataset

from ..engine.targets import Annotation
from .annotations import MANIFEST_SUFFIXES, from_target, is_target_dict, read_manifest

__all__ = ["IMAGE_EXTENSIONS", "Item", "Source", "match_label", "open_source"]

#: File extensions a folder source picks up (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff",
                                     ".webp", ".ppm", ".pgm", ".pbm")


@dataclass(frozen=True)
class Item:
    """One image of a source (not decoded).

    Attributes:
        position: Index in the source's order (the table is sorted by it).
        id: Stable identifier: the path relative to a folder source, the path as given in a
            list, or the position for in-memory sources. ``resume`` skips stored ids.
        path: The image file, or ``None`` for in-memory images.
        label: True class index, or ``None`` when unknown.
        label_name: True class name (the class folder's name), or ``None``.
        annotations: The image's annotated objects (a manifest's ``boxes`` / ``masks``, a
            dataset's target dict), in pixels of the original image; ``()`` when none
            (:mod:`.annotations`).
    """

    position: int
    id: str
    path: str | None = None
    label: int | None = None
    label_name: str | None = None
    annotations: tuple[Annotation, ...] = ()


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def match_label(name: Any, labels: Sequence[str] | None) -> tuple[int | None, str | None]:
    """Map a label (class index, or a class name) to ``(index, name)`` of the model's labels.

    Example:
        >>> match_label("tiger_cat", ["tabby", "tiger cat"])
        (1, 'tiger cat')
        >>> match_label("7", None)
        (7, '7')
        >>> match_label("zebra", ["tabby"])
        (None, 'zebra')
    """
    if name is None:
        return None, None
    if hasattr(name, "item") and not isinstance(name, str):  # 0-d tensor / numpy scalar
        name = name.item()
    if isinstance(name, bool) or not isinstance(name, (int, str)):
        return None, str(name)
    text = str(name)
    if isinstance(name, int) or text.isdigit():
        index = int(text)
        ok = labels is None or 0 <= index < len(labels)
        return (index if ok else None), (labels[index] if labels is not None and ok else text)
    if labels:
        lookup = {_norm(lab): i for i, lab in enumerate(labels)}
        index = lookup.get(_norm(text))
        if index is not None:
            return index, labels[index]
    return None, text


class Source:
    """Items of a dataset and how to fetch each one's image (picklable for worker processes).

    Attributes:
        name: What the source is, for messages.
        items: The items (a list), or ``None`` for a stream (see :meth:`stream`).
        length: Number of items when known.
        skipped_files: Files of a folder source that are not read (not images, or hidden).
    """

    def __init__(self, name: str, items: list[Item] | None, *, dataset: Any = None,
                 stream: Iterable[Any] | None = None, labels: Sequence[str] | None = None
                 ) -> None:
        self.name = name
        self.items = items
        self._dataset = dataset
        self._stream = stream
        self._labels = list(labels) if labels is not None else None
        self.length = len(items) if items is not None else _safe_len(stream)
        self.skipped_files = 0

    def fetch(self, item: Item) -> tuple[Any, Item]:
        """The image of ``item`` (a path or an in-memory image) and the item with its label."""
        if self._dataset is None:
            return item.path, item
        return self._split(self._dataset[item.position], item)

    def stream(self) -> Iterator[tuple[Any, Item]]:
        """``(image, item)`` pairs of a stream source, in order (ids are positions)."""
        if self._stream is None:
            raise TypeError("this source is a sequence: use `items` and `fetch`")
        for position, value in enumerate(self._stream):
            yield self._split(value, Item(position, str(position)))

    def _split(self, value: Any, item: Item) -> tuple[Any, Item]:
        if isinstance(value, (tuple, list)) and len(value) == 2:
            image, raw = value
            if is_target_dict(raw):  # torchvision's detection format: the image's objects
                objects = from_target(raw, name=f"image {item.id}")
                return image, dataclasses.replace(item, annotations=objects)
            index, name = match_label(raw, self._labels)
            return image, dataclasses.replace(item, label=index, label_name=name)
        return value, item


def _safe_len(obj: Any) -> int | None:
    try:
        return len(obj)  # type: ignore[arg-type]
    except TypeError:
        return None


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _folder_items(root: Path, labels: Sequence[str] | None) -> tuple[list[Item], int]:
    """The image files of a folder as items, and the number of other files skipped."""
    every = [p for p in root.rglob("*") if p.is_file()]
    files = sorted(p for p in every if _is_image_file(p))
    if not files:
        raise ValueError(f"`source` folder {str(root)!r} holds no image files (looked for "
                         f"{', '.join(IMAGE_EXTENSIONS)}, recursively)")
    items = []
    for position, path in enumerate(files):
        rel = path.relative_to(root)
        index, name = (match_label(rel.parts[0], labels) if len(rel.parts) > 1
                       else (None, None))
        items.append(Item(position, rel.as_posix(), str(path), index, name))
    return items, len(every) - len(files)


def _path_items(paths: Sequence[Any]) -> list[Item]:
    items, seen = [], {}
    for position, p in enumerate(paths):
        text = os.fspath(p)
        seen[text] = seen.get(text, 0) + 1
        key = text if seen[text] == 1 else f"{text}#{seen[text]}"
        items.append(Item(position, key, text))
    return items


def _manifest_source(path: Path, labels: Sequence[str] | None) -> Source:
    """A manifest's images as items, with their labels and annotations."""
    items = []
    for position, (key, image, raw, objects) in enumerate(read_manifest(path)):
        index, name = match_label(raw, labels)
        items.append(Item(position, key, image, index, name, objects))
    return Source(f"manifest {str(path)!r}", items, labels=labels)


def open_source(source: Any, labels: Sequence[str] | None = None) -> Source:
    """Turn a folder, a list of paths, a torch ``Dataset`` or an iterable into a :class:`Source`.

    Args:
        source: A folder (searched recursively; an ImageFolder layout gives true labels), an
            image file, a manifest (a ``.csv``, ``.json``, ``.jsonl`` or ``.parquet`` table:
            ``path``, optional ``label``, ``boxes``, ``masks``; see :mod:`.annotations`), a
            list of image paths, a map-style ``torch.utils.data.Dataset`` yielding images,
            ``(image, label)`` or ``(image, {"boxes", "labels", "masks"})`` (annotated
            objects), or any other iterable of images (or of such pairs), e.g. a list of PIL
            images or an ``IterableDataset``.
        labels: The model's class names, to match folder names and string labels.

    Returns:
        The source.

    Raises:
        ValueError: A missing path, an empty folder, an empty list.
        TypeError: Something that is not a path, a dataset or an iterable.

    Example:
        >>> open_source([]).length  # doctest: +SKIP
        Traceback (most recent call last):
        ValueError: `source` is empty ...
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            items, skipped = _folder_items(path, labels)
            src = Source(f"folder {str(path)!r}", items, labels=labels)
            src.skipped_files = skipped
            return src
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            return _manifest_source(path, labels)
        if path.is_file():
            return Source(f"file {str(path)!r}", _path_items([path]), labels=labels)
        raise ValueError(f"`source` {str(path)!r} does not exist; give a folder of images, a "
                         "list of image paths, a torch Dataset or an iterable of images")
    if isinstance(source, Dataset) and not isinstance(source, IterableDataset) \
            and _safe_len(source) is not None:
        n = len(source)
        if n == 0:
            raise ValueError("`source` dataset is empty (len 0)")
        items = [Item(i, str(i)) for i in range(n)]
        return Source(f"dataset {type(source).__name__}", items, dataset=source, labels=labels)
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("`source` is empty; give at least one image or path")
        if all(isinstance(p, (str, os.PathLike)) for p in source):
            return Source(f"{len(source)} paths", _path_items(source), labels=labels)
    if isinstance(source, (bytes, str)) or not isinstance(source, Iterable):
        raise TypeError(f"`source` must be a folder, a list of image paths, a torch Dataset or "
                        f"an iterable of images; got {type(source).__name__}")
    return Source(f"iterable {type(source).__name__}", None, stream=source, labels=labels)
