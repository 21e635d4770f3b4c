"""8-bit photos kept as 8 bits: the image coercion for big inputs.

A 12-megapixel photo is 36 MB as uint8 and 146 MB as float32 pixels (50 megapixels: 150 MB and
600 MB). :func:`to_image_tensor` and :func:`as_image_batch` accept exactly what
:func:`~opticam_widgets.inputs.images.to_pixel_tensor` and
:func:`~opticam_widgets.inputs.images.as_pixel_batch` accept, with the same checks and messages, but
keep 8-bit sources (RGB/grey/palette PIL images and files without transparency, uint8 arrays and
tensors) as uint8 (0-255): :meth:`~opticam_widgets.inputs.preprocess.Preprocess.resize` reads them
as ``x / 255`` without a full-size float copy, and :func:`as_float_pixels` gives the float pixels
(exactly those of :func:`~opticam_widgets.inputs.images.to_pixel_tensor`) where they are needed.

Example:
    >>> import numpy as np
    >>> t = to_image_tensor(np.zeros((4, 5, 3), dtype=np.uint8))
    >>> t.dtype, tuple(t.shape), as_float_pixels(t).dtype
    (torch.uint8, (3, 4, 5), torch.float32)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .colorspace import to_srgb
from .images import MIN_SIZE, as_pixel_batch, to_pixel_tensor

__all__ = ["as_float_pixels", "as_image_batch", "to_image_tensor"]

#: PIL modes read as 8-bit RGB by ``convert("RGB")`` with no compositing or scaling.
_EIGHT_BIT_MODES = ("RGB", "L", "P", "1", "CMYK", "YCbCr", "HSV")
#: Bytes of a PIL image (4 a pixel inside PIL) copied into the uint8 array at a time: strips
#: this small stay in cache and reuse their memory (512-row strips of a 12-megapixel photo,
#: 8 MB each, made the copy 5 times slower).
_STRIP_BYTES = 2 << 20


def _new_hwc(height: int, width: int) -> np.ndarray:
    """An uninitialised (H, W, 3) uint8 array in memory from torch's allocator.

    Not numpy's: numpy asks the kernel for transparent huge pages for big arrays, and their
    first touch can stall on memory compaction (measured in the widget: 75 ms for a
    12-megapixel photo's 36 MB, against 12 ms in 4 KB pages).
    """
    return torch.empty((height, width, 3), dtype=torch.uint8).numpy()


def _pil_uint8(img: Any) -> np.ndarray | None:
    """(H, W, 3) uint8 of an 8-bit PIL image without transparency, else ``None``.

    EXIF orientation is applied, as :func:`~opticam_widgets.inputs.images.to_pixel_tensor` does.
    """
    from PIL import ImageOps

    if (img.mode not in _EIGHT_BIT_MODES or "transparency" in img.info or 0 in img.size
            or "A" in img.getbands()):
        return None
    if img.getexif().get(0x0112, 1) not in (None, 1):  # a copy only when it rotates
        img = ImageOps.exif_transpose(img)
    img = to_srgb(img)  # an embedded colour profile other than sRGB applied (a copy then)
    width, height = img.size
    arr = _new_hwc(height, width)
    rows = max(1, _STRIP_BYTES // (4 * width))
    for top in range(0, height, rows):  # in strips: no second full-size copy on the way
        strip = img.crop((0, top, width, min(top + rows, height)))
        arr[top:top + rows] = np.asarray(strip if img.mode == "RGB" else strip.convert("RGB"))
    return arr


def _open_uint8(source: Any) -> np.ndarray | None:
    """The uint8 pixels of an 8-bit image file, or ``None`` (anything else, errors included)."""
    from PIL import Image

    try:
        with Image.open(source) as img:
            img.load()
            return _pil_uint8(img)
    except Exception:  # the float path reports the error with its own message
        return None


def _uint8_hwc(image: Any) -> np.ndarray | None:
    """An (H, W, 3) uint8 array of our own for an 8-bit source, else ``None``."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return _pil_uint8(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        return _open_uint8(path) if path.is_file() else None
    if isinstance(image, (bytes, bytearray, memoryview)) and len(image) >= 4096:
        return _open_uint8(io.BytesIO(bytes(image)))
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 \
            and image.shape[-1] == 3 and image.shape[0] not in (1, 3):
        arr = _new_hwc(*image.shape[:2])
        np.copyto(arr, image)
        return arr
    return None


def _uint8_view(image: Any) -> Tensor | None:
    """A (3, H, W) uint8 CPU tensor (or (1, 3, H, W)) as a detached view, else ``None``."""
    if isinstance(image, Tensor) and image.dtype == torch.uint8 and image.layout == torch.strided \
            and not image.is_meta and image.device.type == "cpu" and image.ndim in (3, 4) \
            and image.shape[-3] == 3 and (image.ndim == 3 or image.shape[0] == 1) \
            and min(image.shape[-2:]) >= MIN_SIZE:
        return image.detach().reshape(image.shape[-3:])
    return None


def to_image_tensor(image: Any, *, name: str = "image") -> Tensor:
    """One image as a (3, H, W) tensor: uint8 (0-255) for 8-bit sources, else float32 in [0, 1].

    Accepts what :func:`~opticam_widgets.inputs.images.to_pixel_tensor` accepts and raises the same
    errors. A uint8 tensor (3, H, W) is returned as it is (a detached view, not a copy: the
    results of :meth:`~opticam_widgets.engine.explainer.OptiCAM.explain` refuse to be read once it
    is modified in place); any other 8-bit source gives a channels-first view of an (H, W, 3) array
    of its own, so ``t.permute(1, 2, 0).numpy()`` is that array, without a copy.

    Example:
        >>> import numpy as np
        >>> to_image_tensor(np.full((2, 3, 3), 255, dtype=np.uint8)).dtype
        torch.uint8
    """
    view = _uint8_view(image)
    if view is not None:
        return view
    hwc = _uint8_hwc(image)
    if hwc is None or min(hwc.shape[:2]) < MIN_SIZE:
        return to_pixel_tensor(image, name=name)
    return torch.from_numpy(hwc).permute(2, 0, 1)


def as_image_batch(image: Any, *, name: str = "image") -> Tensor:
    """One image or several as (B, 3, H, W): uint8 for one 8-bit image, else float32 in [0, 1].

    A batch or a list goes through :func:`~opticam_widgets.inputs.images.as_pixel_batch` (float32).

    Example:
        >>> import numpy as np
        >>> as_image_batch(np.zeros((4, 5, 3), dtype=np.uint8)).shape
        torch.Size([1, 3, 4, 5])
    """
    if isinstance(image, (Tensor, np.ndarray)) and image.ndim == 4 and image.shape[0] == 1:
        return to_image_tensor(image[0], name=name).unsqueeze(0)
    if isinstance(image, (list, tuple)) or (isinstance(image, (Tensor, np.ndarray))
                                            and image.ndim == 4):
        return as_pixel_batch(image, name=name)
    return to_image_tensor(image, name=name).unsqueeze(0)


def as_float_pixels(pixels: Tensor) -> Tensor:
    """Float32 pixels in [0, 1] of a uint8 (``/ 255``) or float tensor (returned as it is).

    Example:
        >>> as_float_pixels(torch.full((1, 1), 255, dtype=torch.uint8))
        tensor([[1.]])
    """
    if pixels.dtype != torch.uint8:
        return pixels
    return pixels.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
