"""What the widget shows, without any widget: images, selection, run keys, results, labels.

Pure Python (numpy and tensors, no ipywidgets), so every rule here is unit-tested on its own:

* :class:`RunKey`: what one optimisation depends on (image, class and settings);
* :class:`ImageState`: one input image with its predictions and its selected class;
* :class:`Entry`: a result with its faithfulness metrics; :class:`ResultCache` keeps the
  finished ones by key;
* :class:`Session`: the images, which one is shown, the cache and the entry on screen;
* :class:`ClassNames`: the class names and the search over them.

Example:
    >>> import numpy as np, torch
    >>> session = Session()
    >>> session.load([ImageState.from_probs("cat", torch.rand(3, 8, 8), np.array([.1, .9]), 5)])
    >>> key = session.key(iterations=10, lr=0.2, convention="constructive")
    >>> session.target, key.target, key in session.cache
    (1, 1, False)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL.Image import Image as PILImage
from torch import Tensor

from ..display.render import as_uint8_image
from ..engine.result import OptiCAMResult
from ..inputs.images import to_image_tensor
from ..support.defaults import WIDGET_PATIENCE, WIDGET_TOL

__all__ = ["ClassNames", "Entry", "ImageState", "ResultCache", "RunKey", "Session",
           "check_labels", "check_top_k", "expand_folder", "image_name", "image_sources",
           "named_pixels"]


@dataclass(frozen=True)
class RunKey:
    """What one optimisation depends on: two runs with equal keys give the same map.

    ``lr`` is rounded to 6 significant digits, so that a log slider's float noise does not
    make a new key.
    """

    #: Index of the image.
    image: int
    #: Class index explained, or the target pointed at (``ImageState.pointed``).
    target: Any
    #: Adam steps requested.
    iterations: int
    #: Learning rate.
    lr: float
    #: "constructive" or "destructive".
    convention: str
    #: Whether the run stops early on a plateau.
    early_stop: bool = True
    #: The optimiser's name (``"paper"`` or ``"fast"``: the engine's ``OPTIMIZERS``).
    optimizer: str = "paper"
    #: ``(tol, patience)`` of the plateau rule used with ``early_stop``: the widget's
    #: settings, ``"auto"`` resolved for ``optimizer`` (``OptiCAMSettings.stopping``).
    plateau: tuple[float | None, int] = (WIDGET_TOL, WIDGET_PATIENCE)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", float(f"{float(self.lr):.6g}"))

    def overrides(self) -> dict[str, Any]:
        """The settings of the ``explain`` call of this run (stopping included).

        Example:
            >>> key = RunKey(0, 1, 50, 0.2, "constructive", optimizer="fast", plateau=(1e-3, 5))
            >>> key.overrides()["tol"], key.overrides()["patience"], key.overrides()["optimizer"]
            (0.001, 5, 'fast')
        """
        tol, patience = self.plateau
        return {"max_iter": self.iterations, "lr": self.lr, "convention": self.convention,
                "optimizer": self.optimizer, "tol": tol if self.early_stop else None,
                "patience": patience}


@dataclass
class ImageState:
    """One input image with its predictions and the class selected for it."""

    #: Name shown in the image selector.
    name: str
    #: (3, H, W): uint8 (0-255) for an 8-bit photo (a view of ``rgb``), else float in [0, 1].
    pixels: Tensor
    #: uint8 (H, W, 3).
    rgb: np.ndarray
    #: Class probabilities (C,).
    probs: np.ndarray
    #: Top-k class indices, most probable first.
    top: list[int]
    #: Class currently selected for this image.
    target: int
    #: Classes picked through the search box, in the order picked.
    extra: list[int] = field(default_factory=list)
    #: Iteration-0 map (channel-mean CAM): the same for every class, drawn at once on Run.
    iter0: np.ndarray | None = None
    #: The file the image was read from (as given), or ``None``.
    source: str | None = None
    #: What was pointed at in it (a ``Region`` or ``Box`` target), explained instead of
    #: :attr:`target`; ``None``: the class (see :mod:`~opticam_widgets.widget.pointing`).
    pointed: Any = None

    @classmethod
    def from_probs(cls, name: str, pixels: Tensor, probs: np.ndarray, top_k: int) -> ImageState:
        """The state of a new image: its top-``top_k`` classes, the first one selected.

        Example:
            >>> import torch
            >>> s = ImageState.from_probs("x", torch.zeros(3, 2, 2), np.array([.2, .5, .3]), 2)
            >>> s.top, s.target, s.rgb.shape
            ([1, 2], 1, (2, 2, 3))
        """
        top = [int(i) for i in np.argsort(-probs, kind="stable")[:top_k]]
        rgb = as_uint8_image(pixels.permute(1, 2, 0).numpy())
        return cls(name=name, pixels=pixels, rgb=rgb, probs=probs, top=top, target=top[0])

    @property
    def classes(self) -> list[int]:
        """The classes the selector lists: the top-k, then those picked by search."""
        return self.top + [i for i in self.extra if i not in self.top]

    def offer(self, target: int) -> bool:
        """Add ``target`` to the listed classes; ``True`` when the list changed."""
        if target in self.top or target in self.extra:
            return False
        self.extra.append(target)
        return True


@dataclass(frozen=True)
class Entry:
    """A result shown on the canvas, with its faithfulness metrics when computed."""

    #: What the result was computed for.
    key: RunKey
    #: The engine's result (live ones are partial).
    result: OptiCAMResult
    #: ``metrics.faithfulness`` output, ``{"error": ...}``, or ``None`` when not computed.
    metrics: dict | None = None


class ResultCache:
    """Finished (not cancelled) results by :class:`RunKey`.

    Example:
        >>> cache = ResultCache()
        >>> len(cache), cache.get(RunKey(0, 1, 10, 0.2, "constructive"))
        (0, None)
    """

    def __init__(self) -> None:
        self._entries: dict[RunKey, Entry] = {}

    def get(self, key: RunKey) -> Entry | None:
        """The cached entry of ``key``, or ``None``."""
        return self._entries.get(key)

    def add(self, entry: Entry) -> bool:
        """Keep a finished result; a cancelled one is refused (``False``): it is partial."""
        if entry.result.cancelled:
            return False
        self._entries[entry.key] = entry
        return True

    def clear(self) -> None:
        """Forget every result (new images)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


class Session:
    """The images, which one is shown, the result cache and the entry on screen."""

    def __init__(self) -> None:
        #: The loaded images, in the selector's order.
        self.images: list[ImageState] = []
        #: Index of the image shown.
        self.index = 0
        #: Finished results.
        self.cache = ResultCache()
        #: The entry on screen (live during a run), or ``None``.
        self.shown: Entry | None = None
        #: Name of the target layer, once the engine has resolved it.
        self.layer: str | None = None
        #: What a class chosen in the list explains: ``class -> target`` (the class itself;
        #: the pointing panel's :meth:`~.pointpanel.PointingPanel.class_target` in a widget).
        self.class_target: Callable[[int], Any] = int

    def load(self, images: Sequence[ImageState]) -> None:
        """Replace the images; the first is shown, the cache and the screen are cleared."""
        self.images = list(images)
        self.index = 0
        self.cache.clear()
        self.shown = None

    def check_images(self) -> None:
        """Raise ``RuntimeError`` when no image was loaded."""
        if not self.images:
            raise RuntimeError("no image yet: call `widget.show(img)` or "
                               "`widget.set_images(img)` first")

    @property
    def image(self) -> ImageState:
        """The image shown.

        Raises:
            RuntimeError: No image was loaded.
        """
        self.check_images()
        return self.images[self.index]

    @property
    def target(self) -> int | None:
        """The class selected for the image shown (``None`` before any image)."""
        return self.images[self.index].target if self.images else None

    def key(self, *, iterations: int, lr: float, convention: str, early_stop: bool = True,
            optimizer: str = "paper",
            plateau: tuple[float | None, int] = (WIDGET_TOL, WIDGET_PATIENCE)) -> RunKey:
        """The run key of the image and class shown with these settings."""
        return RunKey(self.index, self.chosen, int(iterations), lr, str(convention),
                      bool(early_stop), str(optimizer), plateau)

    def shows(self, key: RunKey) -> bool:
        """Whether ``key``'s image and class are the ones on screen."""
        return bool(self.images) and (key.image, key.target) == (self.index, self.chosen)

    @property
    def chosen(self) -> Any:
        """What is explained in the image shown: the target pointed at, else the class.

        The class as :attr:`class_target` says (``MultiLabel(class)`` for a sigmoid head).
        """
        image = self.image
        return self.class_target(image.target) if image.pointed is None else image.pointed


class ClassNames:
    """Class names, and the search box's ``"name (index)"`` entries.

    Args:
        names: One name per class.

    Example:
        >>> names = ClassNames.for_model(None, 3)
        >>> names[2], names.find("class 1 (1)"), names.find("nope")
        ('class 2', 1, None)
    """

    def __init__(self, names: Sequence[str]) -> None:
        #: One name per class.
        self.names = [str(n) for n in names]
        self._search = {f"{name} ({i})": i for i, name in enumerate(self.names)}

    @classmethod
    def for_model(cls, given: Sequence[str] | None, classes: int) -> ClassNames:
        """``given`` names, else the ImageNet names for 1000 classes, else ``"class i"``.

        Raises:
            ValueError: ``given`` does not have one name per class.
        """
        if given is not None:
            if len(given) != classes:
                raise ValueError(f"`labels` has {len(given)} names but the model has "
                                 f"{classes} outputs; give one name per class")
            return cls(given)
        if classes == 1000:
            from ..model.zoo import imagenet_labels

            return cls(imagenet_labels())
        return cls([f"class {i}" for i in range(classes)])

    @property
    def search_options(self) -> list[str]:
        """The search box's options, ``"name (index)"``."""
        return list(self._search)

    def find(self, text: Any) -> int | None:
        """The class index of a search option, or ``None``."""
        return self._search.get(text)

    def option(self, index: int, prob: float) -> str:
        """The class selector's label: ``"name — 12.3%"``."""
        return f"{self.names[index]} — {prob:.1%}"

    def __getitem__(self, index: int) -> str:
        return self.names[index]

    def __len__(self) -> int:
        return len(self.names)


def image_name(image: Any, index: int) -> str:
    """The selector's name of an image: a path's (or a PIL image's ``filename``) file name.

    Else ``"image {index + 1}"``. An uploaded photo is a PIL image named by its file.

    Example:
        >>> image_name("photos/cat.jpg", 0), image_name(None, 1)
        ('cat.jpg', 'image 2')
    """
    if isinstance(image, (str, os.PathLike)):
        return Path(image).name
    filename = getattr(image, "filename", None) if isinstance(image, PILImage) else None
    if isinstance(filename, str) and filename.strip():
        return Path(filename).name
    return f"image {index + 1}"


#: File extensions read as photos when a folder is given.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def expand_folder(images: Any) -> Any:
    """A folder path becomes the sorted list of the photos in it; anything else is kept.

    Raises:
        ValueError: The folder holds no photo (the message names the extensions read).

    Example:
        >>> expand_folder("cat.jpg")
        'cat.jpg'
    """
    if not isinstance(images, (str, os.PathLike)) or not Path(images).is_dir():
        return images
    folder = Path(images)
    found = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES),
                   key=lambda p: p.name.lower())
    if not found:
        raise ValueError(f"`images` is a folder with no photo in it ({folder}); put "
                         f"{', '.join(PHOTO_SUFFIXES)} files there or give a file path")
    return [str(p) for p in found]


def image_sources(images: Any) -> list[str | None]:
    """The path each image was given as (``None`` for an in-memory image).

    Example:
        >>> image_sources(["photos/cat.jpg", None])
        ['photos/cat.jpg', None]
    """
    if isinstance(images, Mapping):
        images = list(images.values())
    many = isinstance(images, (list, tuple)) or (isinstance(images, Tensor) and images.ndim == 4)
    return [os.fspath(im) if isinstance(im, (str, os.PathLike)) else None
            for im in (images if many else [images])]


def named_pixels(images: Any) -> list[tuple[str, Tensor]]:
    """One image or several, as ``(name, pixels (3, H, W))`` pairs (uint8 for 8-bit photos).

    Args:
        images: One image (path, PIL, ndarray, tensor (3, H, W)), a list of images (any
            sizes), a batch tensor (B, 3, H, W), or a dict ``{name: image}`` (its names are
            the selector's).

    Raises:
        ValueError: An empty list or dict, or a bad image (named ``images[i]``).

    Example:
        >>> import torch
        >>> [(name, tuple(t.shape)) for name, t in named_pixels(torch.zeros(2, 3, 4, 5))]
        [('image 1', (3, 4, 5)), ('image 2', (3, 4, 5))]
    """
    if isinstance(images, Mapping):
        if len(images) == 0:
            raise ValueError("`images` is an empty dict; give at least one {name: image}")
        return [(str(name), to_image_tensor(im, name=f"images[{name!r}]", keep_uint8=True))
                for name, im in images.items()]
    if isinstance(images, (list, tuple)) or (isinstance(images, Tensor) and images.ndim == 4):
        if len(images) == 0:
            raise ValueError("`images` is empty; give at least one image")
        return [(image_name(im, i), to_image_tensor(im, name=f"images[{i}]", keep_uint8=True))
                for i, im in enumerate(images)]
    return [(image_name(images, 0), to_image_tensor(images, name="image", keep_uint8=True))]


def check_top_k(top_k: Any) -> int:
    """``top_k`` checked: a positive int.

    Raises:
        ValueError: Anything else.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive int, got {top_k!r}")
    return top_k


def check_labels(labels: Any, default: Sequence[str] | None = None) -> list[str] | None:
    """``labels`` checked (a sequence of names), else ``default`` (a bundle's), as a list.

    Raises:
        TypeError: ``labels`` is a string or not a sequence.

    Example:
        >>> check_labels(None, ("a", "b")), check_labels(["x"])
        (['a', 'b'], ['x'])
    """
    if labels is None:
        return list(default) if default is not None else None
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"`labels` must be a sequence of class names, got "
                        f"{type(labels).__name__}")
    return list(labels)
