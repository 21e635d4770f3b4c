"""A dataset's own annotations as targets: one row per annotated object of each image.

An :class:`Annotation` is one object of one image, in the pixels of the *original* image: a box
``(x0, y0, x1, y1)`` and/or a mask (H, W), with its class. A dataset source carries them per
image (a manifest's ``boxes`` column, a torchvision-style ``(image, {"boxes", "labels",
"masks"})`` dataset: :mod:`opticam_widgets.dataset.sources`); ``explain_dataset(...,
target=Annotations())`` then explains each object as one row:

* a detector (a torchvision detector, or any model with ``decode=``): ``Box(box, label)``;
* a segmentation model: ``Region(label, mask=...)`` when the object has a mask (and ``use`` is
  not ``"box"``), else ``Region(label, box=...)``.

:meth:`Annotation.seen_at` maps an object from the photo's pixels to those of the image the
model sees (the model's resize; boxes scaled, masks resized by area), after checking that it
lies inside the photo.

Example:
    >>> obj = Annotation("cat", box=(10, 20, 50, 60))
    >>> obj.seen_at((100, 200), (50, 100)).box  # the photo 100×200 resized to 50×100
    (5.0, 10.0, 25.0, 30.0)
    >>> Annotations().target_for(obj, detector=True, labels=["dog", "cat"])
    Box(box=(10.0, 20.0, 50.0, 60.0), label=1, decode=None)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Context, Target, check_range, label_index
from .boxes import Box, Decoder
from .regions import Region

__all__ = ["ANNOTATION_USES", "Annotation", "Annotations"]

#: Accepted values of ``Annotations(use=...)``.
ANNOTATION_USES = ("auto", "box", "mask")


def _check_label(label: Any, name: str) -> Any:
    if hasattr(label, "item") and not isinstance(label, str):
        label = label.item()
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer, str)):
        raise TypeError(f"`{name}` label must be a class index (an int) or a label name, got "
                        f"{type(label).__name__} {label!r}")
    return int(label) if not isinstance(label, str) else label


def _check_box(box: Any, name: str) -> tuple[float, float, float, float]:
    values = np.asarray(box.tolist() if isinstance(box, Tensor) else box, dtype=float).ravel()
    if values.shape != (4,) or not np.isfinite(values).all():
        raise ValueError(f"`{name}` box must be four numbers (x0, y0, x1, y1) in pixels of the "
                         f"original image, got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in values)
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"`{name}` box {(x0, y0, x1, y1)} is empty; give x0 < x1 and y0 < y1 "
                         f"(corners, not x, y, width, height)")
    return x0, y0, x1, y1


@dataclass(frozen=True, eq=False)
class Annotation:
    """One annotated object of an image, in the pixels of the original image.

    Args:
        label: Its class: an index of the model's classes or a label name.
        box: ``(x0, y0, x1, y1)``, pixel edges of the original image.
        mask: A (H, W) boolean or weight mask at the original image's size (an array, a
            tensor), or the path of a mask image (non-zero pixels are inside).
        name: Where the annotation comes from, for messages.

    Raises:
        TypeError, ValueError: no box and no mask, a box that is not four numbers with
            ``x0 < x1``, ``y0 < y1``, a label that is neither an int nor a name.
    """

    label: Any
    box: Any = None
    mask: Any = None
    name: str = field(default="annotation", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", _check_label(self.label, self.name))
        if self.box is None and self.mask is None:
            raise ValueError(f"`{self.name}` has neither a box nor a mask; give one")
        if self.box is not None:
            object.__setattr__(self, "box", _check_box(self.box, self.name))

    def mask_array(self, size: tuple[int, int] | None = None) -> np.ndarray | None:
        """The mask as a float32 (H, W) array (read from its file when a path), or ``None``.

        Raises:
            ValueError: a mask of another size than ``size`` (the photo's).
        """
        if self.mask is None:
            return None
        if isinstance(self.mask, (str, bytes)) or hasattr(self.mask, "__fspath__"):
            from PIL import Image

            with Image.open(self.mask) as img:
                mask = np.asarray(img.convert("L")) > 0
        else:
            mask = np.asarray(self.mask.detach().cpu() if isinstance(self.mask, Tensor)
                              else self.mask)
        mask = np.squeeze(mask).astype(np.float32)
        if mask.ndim != 2 or (size is not None and tuple(mask.shape) != tuple(size)):
            want = f"{size[0]}×{size[1]}" if size else "(H, W)"
            raise ValueError(f"`{self.name}` mask has shape {tuple(mask.shape)}; give one (H, W) "
                             f"mask of the original image, {want}")
        return mask

    def check_inside(self, size: tuple[int, int]) -> None:
        """Refuse a box outside the ``(H, W)`` original image, or a mask of another size."""
        h, w = size
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h):
                raise ValueError(f"`{self.name}` box {self.box} is outside the {h}×{w} image; "
                                 f"give pixels of the original image, 0 <= x0 < x1 <= {w} and "
                                 f"0 <= y0 < y1 <= {h} (corners, not x, y, width, height)")
        self.mask_array(size)

    def seen_at(self, photo: tuple[int, int], seen: tuple[int, int]) -> Annotation:
        """This object in the pixels of the image the model sees (``photo`` resized to ``seen``).

        Raises:
            ValueError: the object is not inside the ``photo`` (see :meth:`check_inside`).
        """
        self.check_inside(photo)
        sy, sx = seen[0] / photo[0], seen[1] / photo[1]
        box = None if self.box is None else tuple(
            float(v) * s for v, s in zip(self.box, (sx, sy, sx, sy)))
        mask = self.mask_array(photo)
        if mask is not None and tuple(photo) != tuple(seen):
            mask = F.interpolate(torch.from_numpy(mask)[None, None], size=tuple(seen),
                                 mode="area")[0, 0].numpy()
        return Annotation(self.label, box=box, mask=mask, name=self.name)


@dataclass(frozen=True, eq=False)
class Annotations(Target):
    """Each image's annotated objects, one row per object (dataset runs: ``explain_dataset``).

    Args:
        use: ``"auto"`` (a detector explains boxes; a segmentation model an object's mask
            when it has one, else its box), ``"box"`` or ``"mask"`` (the object's box or mask
            only; an object without it is refused).
        decode: For a raw-tensor detector: its decoder (see :class:`~.boxes.Box`); the objects
            are then explained as boxes.

    Example:
        >>> Annotations("mask").spec()
        {'annotations': 'mask'}
    """

    use: str = "auto"
    decode: Decoder | None = None

    def __post_init__(self) -> None:
        if self.use not in ANNOTATION_USES:
            raise ValueError(f"Annotations: `use` must be one of {', '.join(ANNOTATION_USES)}; "
                             f"got {self.use!r}")

    def target_for(self, obj: Annotation, detector: bool,
                   labels: Sequence[str] | None = None) -> Target:
        """The target explaining ``obj`` (in the pixels the model sees) on this kind of model.

        Args:
            obj: The object, in the pixels the model sees (:meth:`Annotation.seen_at`).
            detector: Whether the model is a detector (else a segmentation model).
            labels: The model's class names (a label name is looked up there).

        Raises:
            ValueError: the object lacks what ``use`` (or a detector) needs; an unknown name.
        """
        context = Context(labels=labels, name=obj.name)
        label = label_index(obj.label, context)
        check_range([label], len(labels) if labels else None, context)  # before any forward
        if detector or self.decode is not None:
            if obj.box is None or self.use == "mask":
                raise ValueError(f"`{obj.name}`: a detector explains boxes; give the object a "
                                 f"box (use='auto' or 'box'), or explain a segmentation model")
            return Box(obj.box, label, decode=self.decode)
        if self.use != "box" and obj.mask is not None:
            return Region(label, mask=obj.mask_array())
        if self.use == "mask" or obj.box is None:
            raise ValueError(f"`{obj.name}` has no {'mask' if self.use == 'mask' else 'box'}; "
                             f"give one, or Annotations(use='auto')")
        return Region(label, box=obj.box)

    def resolve(self, output: Any, context: Context | None = None) -> Any:
        """Refused: the objects come with a dataset's images (see the class)."""
        raise ValueError("Annotations explain a dataset's own annotations: pass it as "
                         "explain_dataset(..., target=Annotations()); for one image give "
                         "Box(box, label) or Region(label, box=/mask=)")

    def spec(self) -> Any:
        """Annotations's description: the annotation mode (a store's fingerprint holds it)."""
        return {"annotations": self.use, **({"decode": repr(self.decode)}
                                            if self.decode is not None else {})}

