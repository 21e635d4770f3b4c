"""Jupyter display, shared by the widget and the explorer: the shell, and an output's bundle.

:func:`get_shell` is the one place that looks for IPython (``None`` in plain Python and tests);
:func:`mimebundle` is the ``(data, metadata)`` of an output that carries a live widget view, a
text form and a picture of what it shows (for saved notebooks, nbconvert, nbviewer, GitHub).

Example:
    >>> import numpy as np
    >>> data, metadata = mimebundle(None, "text", np.zeros((2, 3, 3), np.uint8), "jpeg")
    >>> sorted(data), metadata["image/jpeg"]
    (['image/jpeg', 'text/plain'], {'width': 3, 'height': 2})
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from .render import to_png_bytes

__all__ = ["get_shell", "mimebundle"]


def get_shell() -> Any:
    """The running IPython shell, or ``None`` (plain Python, tests)."""
    from IPython import get_ipython

    return get_ipython()


def mimebundle(root: Any, text: str, picture: np.ndarray | None,
               image_format: str = "png") -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(data, metadata)`` of a widget output.

    Args:
        root: The live widget (its view is included), or ``None`` once closed.
        text: The ``text/plain`` representation.
        picture: uint8 (h, w, 3) sent as an image, or ``None``.
        image_format: ``"png"`` (exact pixels) or ``"jpeg"`` (photos: about ten times smaller).
    """
    data: dict[str, Any] = {}
    if root is not None:
        data.update(root._repr_mimebundle_() or {})
    data["text/plain"] = text
    metadata: dict[str, Any] = {}
    if picture is not None:
        mime = f"image/{image_format}"
        data[mime] = base64.b64encode(_encode(picture, image_format)).decode("ascii")
        metadata[mime] = {"width": int(picture.shape[1]), "height": int(picture.shape[0])}
    return data, metadata


def _encode(picture: np.ndarray, image_format: str) -> bytes:
    if image_format == "png":
        return to_png_bytes(picture)
    if image_format != "jpeg":
        raise ValueError(f"`image_format` must be 'png' or 'jpeg', got {image_format!r}")
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="JPEG", quality=80)
    return buf.getvalue()
