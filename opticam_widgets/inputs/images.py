"""Image input: one coercion to pixel tensors, float in [0, 1] or kept as 8 bits.

Everything the explainer and the widget receive as an "image" passes through
:func:`to_image_tensor` (one image) or :func:`as_image_batch` (one or several images), so every
entry point accepts the same inputs and rejects bad ones with the same clear messages.

Conventions:

* numpy arrays are channels-last, as PIL, scikit-image and matplotlib produce them:
  (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). A channels-first array (1 or 3, H, W) is accepted
  only when its shape cannot be read channels-last; a shape that reads both ways, such as
  (3, 5, 3), is refused with a message rather than guessed.
* torch tensors are channels-first: (3, H, W), (1, H, W), (H, W) or (1, 3, H, W).
* Values are pixels in [0, 1] (uint8 data is divided by 255); the model's normalization is
  applied later by :class:`~opticam_widgets.inputs.preprocess.Preprocess`, after Opti-CAM's masking.
* ``keep_uint8=True`` keeps 8-bit sources (RGB/grey/palette PIL images and files without
  transparency, uint8 arrays and tensors) as uint8 (0-255): a 12-megapixel photo is 36 MB then,
  not 146 MB of float32. :meth:`~opticam_widgets.inputs.preprocess.Preprocess.resize` reads them as
  ``x / 255`` without a full-size float copy, and :func:`as_float_pixels` gives the float pixels
  (exactly those of ``keep_uint8=False``) where they are needed.

The readers of each kind of source live in :mod:`opticam_widgets.inputs.decode`.

Example:
    >>> import numpy as np
    >>> photo = np.zeros((4, 5, 3), dtype=np.uint8)
    >>> to_image_tensor(photo).dtype, to_image_tensor(photo, keep_uint8=True).dtype
    (torch.float32, torch.uint8)
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .decode import (
    MIN_SIZE,
    ImageFileNotFoundError,
    ImageLike,
    check_size,
    check_values,
    is_pil,
    read_array,
    read_file,
    read_path,
    read_pil,
    read_tensor,
    refuse_url,
    to_chw,
    uint8_hwc,
    uint8_view,
)

__all__ = ["MIN_SIZE", "ImageFileNotFoundError", "ImageLike", "as_float_pixels", "as_image_batch",
           "to_image_tensor"]


def _float_image(image: Any, name: str) -> Tensor:
    """One image as float32 (3, H, W) in [0, 1] (see :func:`to_image_tensor`)."""
    if isinstance(image, (str, os.PathLike)):
        t = to_chw(read_path(image, name))
    elif isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ValueError(f"`{name}` is empty bytes; give the content of an image file")
        if len(image) < 4096 and bytes(image[:5]).isascii():  # b"https://..." is no image
            refuse_url(bytes(image[:100]).decode("ascii", "replace"), name)
        t = to_chw(read_file(io.BytesIO(bytes(image)), "the given bytes", name))
    elif isinstance(image, Tensor):
        t = read_tensor(image, name)
    elif isinstance(image, np.ndarray):
        t = read_array(image, name)
    elif is_pil(image):
        t = to_chw(read_pil(image, name))
    elif hasattr(image, "read") and callable(image.read):
        t = to_chw(read_file(image, "the given file object", name))
    else:
        raise TypeError(
            f"`{name}` must be a path, image bytes, a PIL image, a numpy array or a torch "
            f"tensor; got {type(image).__name__}"
        )
    if not isinstance(image, (Tensor, np.ndarray)):
        check_values(t, name)  # e.g. an "F" mode PIL image outside [0, 1]
    return check_size(t, name)


def _uint8_image(image: Any) -> Tensor | None:
    """One 8-bit image as uint8 (3, H, W), or ``None`` where it is not 8-bit."""
    view = uint8_view(image)
    if view is not None:
        return view
    hwc = uint8_hwc(image)
    if hwc is None or min(hwc.shape[:2]) < MIN_SIZE:
        return None
    return torch.from_numpy(hwc).permute(2, 0, 1)


def to_image_tensor(image: Any, *, name: str = "image", keep_uint8: bool = False) -> Tensor:
    """Coerce one image to a tensor (3, H, W): float32 in [0, 1], or uint8 for 8-bit sources.

    Args:
        image: One of

            * a path (``str`` or :class:`os.PathLike`) to an image file;
            * encoded file content (``bytes``, ``bytearray``, ``memoryview``, e.g. from an
              upload widget) or a binary file object;
            * a PIL image of any mode (RGB, RGBA, L, LA, P, 1, CMYK, YCbCr, I;16, I, F, ...);
              EXIF orientation is applied, transparency is composited onto black, 16-bit
              data is scaled from 0-65535;
            * an ndarray (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), uint8 or float in [0, 1]
              (a channels-first (3, H, W) array is accepted when unambiguous);
            * a tensor (3, H, W), (1, H, W), (H, W) or (1, 3, H, W), float in [0, 1] or uint8.
        name: Argument name used in error messages.
        keep_uint8: Keep an 8-bit source as uint8 (0-255) instead of float32 pixels. A uint8
            tensor (3, H, W) is then returned as it is (a detached view, not a copy: the results
            of :meth:`~opticam_widgets.engine.explainer.OptiCAM.explain` refuse to be read once it
            is modified in place); any other 8-bit source gives a channels-first view of an
            (H, W, 3) array of its own. Other sources are float32 either way.

    Returns:
        A tensor (3, H, W) on the input tensor's device (CPU otherwise); a new tensor, never a
        view of the caller's data, unless ``keep_uint8`` returns a uint8 tensor as it is.

    Raises:
        TypeError: For an unsupported kind of object or dtype.
        ValueError: For an unreadable file, bad shapes or channel counts, images smaller than
            2×2 pixels, or values outside [0, 1] or non-finite. A missing file raises
            :class:`ImageFileNotFoundError`, which is both a ``FileNotFoundError`` and a
            ``ValueError``.

    Example:
        >>> import numpy as np
        >>> to_image_tensor(np.zeros((4, 5, 3), dtype=np.uint8)).shape
        torch.Size([3, 4, 5])
    """
    if keep_uint8:
        t = _uint8_image(image)
        if t is not None:
            return t
    return _float_image(image, name)


def _batch_items(image: Any, name: str) -> list[Tensor] | None:
    """The float images of a list or a 4-D batch, or ``None`` for a single image."""
    if isinstance(image, (Tensor, np.ndarray)) and image.ndim == 4:
        if image.shape[0] == 0:
            raise ValueError(f"`{name}` batch is empty (shape {tuple(image.shape)})")
    elif isinstance(image, (list, tuple)):
        if not image:
            raise ValueError(f"`{name}` is an empty list; give at least one image")
    else:
        return None
    return [to_image_tensor(im, name=f"{name}[{i}]") for i, im in enumerate(image)]


def as_image_batch(image: Any, *, name: str = "image", keep_uint8: bool = False) -> Tensor:
    """Coerce one image, a list of images, or a batch to a tensor (B, 3, H, W).

    Args:
        image: One image (anything :func:`to_image_tensor` accepts), a list or tuple of
            same-size images, a tensor batch (B, 3, H, W), or an ndarray batch (B, H, W, C).
        name: Argument name used in error messages (items are named ``name[i]``).
        keep_uint8: One 8-bit image (or a batch of one) stays uint8, as in
            :func:`to_image_tensor`; several images are always float32 in [0, 1].

    Returns:
        The batch.

    Raises:
        TypeError: See :func:`to_image_tensor`.
        ValueError: See :func:`to_image_tensor`; also an empty list or images of different
            sizes (resize them first, or explain them one at a time; the explainer's
            :class:`~opticam_widgets.inputs.preprocess.Preprocess` resizes every image to the
            model's size anyway).

    Example:
        >>> import torch
        >>> as_image_batch(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    if keep_uint8 and isinstance(image, (Tensor, np.ndarray)) and image.ndim == 4 \
            and image.shape[0] == 1:
        return to_image_tensor(image[0], name=name, keep_uint8=True).unsqueeze(0)
    items = _batch_items(image, name)
    if items is None:
        return to_image_tensor(image, name=name, keep_uint8=keep_uint8).unsqueeze(0)
    shapes = {tuple(t.shape) for t in items}
    if len(shapes) > 1:
        raise ValueError(
            f"`{name}` images have different sizes {sorted(shapes)}; resize them to one size "
            "or explain them one at a time"
        )
    devices = {t.device for t in items}
    if len(devices) > 1:
        raise ValueError(f"`{name}` images are on different devices {sorted(map(str, devices))}")
    return torch.stack(items)


def as_float_pixels(pixels: Tensor) -> Tensor:
    """Float32 pixels in [0, 1] of a uint8 (``/ 255``) or float tensor (returned as it is).

    Example:
        >>> as_float_pixels(torch.full((1, 1), 255, dtype=torch.uint8))
        tensor([[1.]])
    """
    if pixels.dtype != torch.uint8:
        return pixels
    return pixels.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
