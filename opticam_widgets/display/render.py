"""Rendering saliency maps: colormaps, overlays, resizing and PNG encoding.

Pure numpy + matplotlib colormaps + PIL; nothing here needs torch or computes a saliency map.
Arrays are accepted in the usual layouts (torch tensors work too, through ``np.asarray``).

Example:
    >>> import numpy as np
    >>> image = np.zeros((4, 6, 3), dtype=np.uint8)
    >>> saliency = np.linspace(0, 1, 6, dtype=np.float32)[None].repeat(4, 0)
    >>> overlay(image, saliency, alpha=0.5).shape
    (4, 6, 3)

"""

from __future__ import annotations

import io
from typing import Any, Union

import numpy as np

from ..support.sizes import check_size

__all__ = [
    "COLORMAPS",
    "as_uint8_image",
    "colorize",
    "mask_image",
    "overlay",
    "resize_map",
    "to_png_bytes",
]

#: A short, curated list of matplotlib colormap names offered by the widget. ``jet`` first: it
#: is what the Opti-CAM paper and most CAM papers show. Any matplotlib name is accepted anyway.
COLORMAPS: tuple[str, ...] = ("jet", "turbo", "viridis", "inferno", "magma", "plasma", "hot",
                              "gray")

#: A colormap given by name or as a ``matplotlib.colors.Colormap``.
ColormapLike = Union[str, "matplotlib.colors.Colormap"]  # noqa: F821


def _get_cmap(cmap: Any) -> Any:
    """Return a matplotlib ``Colormap`` for a name or a colormap object."""
    import matplotlib
    from matplotlib.colors import Colormap

    if isinstance(cmap, Colormap):
        return cmap
    if not isinstance(cmap, str):
        raise TypeError(f"`cmap` must be a colormap name or a matplotlib Colormap, got "
                        f"{type(cmap).__name__}")
    try:
        return matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(
            f"`cmap` {cmap!r} is not a matplotlib colormap; try one of {', '.join(COLORMAPS)}"
        ) from None


def _as_map(saliency: Any, name: str = "saliency") -> np.ndarray:
    """Return a float32 (H, W) array with NaN replaced by 0 (accepts (1, H, W) too)."""
    arr = np.asarray(saliency, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 2-D array (H, W); got shape {arr.shape}")
    return np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)


def as_uint8_image(image: Any, *, name: str = "image") -> np.ndarray:
    """Coerce an image array to uint8 (H, W, 3).

    Accepts (H, W) grey, (H, W, 3) RGB, (H, W, 4) RGBA (alpha dropped) or channel-first
    (3, H, W); uint8 data is kept, floats are read as [0, 1] and clipped.

    Args:
        image: The image array (or anything ``np.asarray`` understands, e.g. a CPU tensor).
        name: Argument name used in error messages.

    Returns:
        A C-contiguous uint8 array (H, W, 3).

    Raises:
        ValueError: For other shapes.
        TypeError: For non-numeric data or integer data other than uint8.

    Example:
        >>> as_uint8_image(np.ones((2, 3))).shape
        (2, 3, 3)

    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or arr.size == 0:
        raise ValueError(f"`{name}` must have shape (H, W), (H, W, 3), (H, W, 4) or (3, H, W); "
                         f"got {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"`{name}` must be uint8 or float, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"`{name}` integer data must be uint8, got {arr.dtype}; scale floats to "
                        "[0, 1] or convert with `.astype(np.uint8)`")
    arr = np.nan_to_num(arr.astype(np.float32), nan=0.0)
    return np.ascontiguousarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8))


def resize_map(saliency: Any, size: tuple[int, int]) -> np.ndarray:
    """Resize a saliency map to ``size = (H, W)`` with bilinear interpolation.

    Values stay within the input's range (no overshoot). Returns the map unchanged (as float32)
    when it already has that size.

    Args:
        saliency: Map (H, W).
        size: Target ``(height, width)``.

    Returns:
        float32 array of shape ``size``.

    Example:
        >>> resize_map(np.eye(2, dtype=np.float32), (4, 4)).shape
        (4, 4)

    """
    from PIL import Image

    arr = _as_map(saliency)
    h, w = check_size(size)
    if arr.shape == (h, w):
        return arr
    out = np.asarray(Image.fromarray(arr, mode="F").resize((w, h), Image.BILINEAR),
                     dtype=np.float32)
    return np.clip(out, arr.min(), arr.max())


def colorize(saliency: Any, cmap: ColormapLike = "jet", alpha: Any = 1.0) -> np.ndarray:
    """Map a saliency map in [0, 1] to RGBA colours.

    Values are clipped to [0, 1] (Opti-CAM maps already are), so 0 gets the colormap's first
    colour and 1 its last; NaN counts as 0.

    Args:
        saliency: Map (H, W) with values in [0, 1].
        cmap: A matplotlib colormap name (see :data:`COLORMAPS`) or ``Colormap``.
        alpha: Opacity in [0, 1] written to the alpha channel: a number, or an (H, W) array
            (e.g. the saliency itself, to fade out unimportant regions).

    Returns:
        uint8 array (H, W, 4), RGBA.

    Example:
        >>> rgba = colorize(np.array([[0.0, 1.0]]), "gray", alpha=0.5)
        >>> rgba[0, 0].tolist(), rgba[0, 1].tolist()
        ([0, 0, 0, 128], [255, 255, 255, 128])

    """
    arr = np.clip(_as_map(saliency), 0.0, 1.0)
    rgba = _get_cmap(cmap)(arr, bytes=True)
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim not in (0, 2) or (a.ndim == 2 and a.shape != arr.shape):
        raise ValueError(f"`alpha` must be a number or an array of the map's shape {arr.shape}; "
                         f"got shape {a.shape}")
    if a.ndim == 0 and not 0.0 <= float(a) <= 1.0:
        raise ValueError(f"`alpha` must lie in [0, 1], got {float(a)}")
    rgba[..., 3] = np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    return rgba


def overlay(image: Any, saliency: Any, alpha: float = 0.5,
            cmap: ColormapLike = "jet") -> np.ndarray:
    """Blend a colorized saliency map over an image.

    ``out = (1 - alpha) * image + alpha * colormap(saliency)``. The map is resized (bilinear)
    to the image when their shapes differ.

    Args:
        image: uint8 (H, W, 3) or float in [0, 1]; see :func:`as_uint8_image` for other
            layouts.
        saliency: Map (h, w) in [0, 1].
        alpha: Opacity of the heatmap in [0, 1] (0: the image, 1: the heatmap only).
        cmap: Colormap name or ``Colormap``.

    Returns:
        uint8 array (H, W, 3).

    Example:
        >>> img = np.full((2, 2, 3), 255, dtype=np.uint8)
        >>> overlay(img, np.zeros((1, 1)), alpha=1.0, cmap="gray")[0, 0].tolist()
        [0, 0, 0]

    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must lie in [0, 1], got {alpha}")
    img = as_uint8_image(image)
    sal = resize_map(saliency, img.shape[:2])
    heat = colorize(sal, cmap)[..., :3].astype(np.float32)
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * heat
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mask_image(image: Any, saliency: Any, inverse: bool = False) -> np.ndarray:
    """Return the image multiplied by the map, ``x ⊙ S`` (or ``x ⊙ (1 − S)``): what the model saw.

    Args:
        image: Image, as for :func:`overlay`.
        saliency: Map in [0, 1], resized to the image when shapes differ.
        inverse: Multiply by ``1 - S`` instead (the destructive convention's input).

    Returns:
        uint8 array (H, W, 3).

    Example:
        >>> mask_image(np.full((1, 2, 3), 200, np.uint8), np.array([[0.0, 0.5]]))[0, :, 0].tolist()
        [0, 100]

    """
    img = as_uint8_image(image)
    sal = np.clip(resize_map(saliency, img.shape[:2]), 0.0, 1.0)
    if inverse:
        sal = 1.0 - sal
    out = img.astype(np.float32) * sal[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_png_bytes(arr: Any) -> bytes:
    """Encode an image array as PNG.

    Args:
        arr: uint8 (or float in [0, 1]) array (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA.

    Returns:
        The PNG file content.

    Example:
        >>> to_png_bytes(np.zeros((2, 2, 3), np.uint8))[1:4]
        b'PNG'

    """
    from PIL import Image

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] == 4:
        rgb = as_uint8_image(a[..., :3], name="arr")
        alpha = as_uint8_image(a[..., 3], name="arr")[..., :1]
        a = np.concatenate([rgb, alpha], axis=-1)
        mode = "RGBA"
    elif a.ndim == 2:
        a = as_uint8_image(a, name="arr")[..., 0]
        mode = "L"
    else:
        a = as_uint8_image(a, name="arr")
        mode = "RGB"
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a), mode=mode).save(buf, format="PNG")
    return buf.getvalue()
