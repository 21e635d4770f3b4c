"""Sample photos that ship inside scikit-image: always available offline, no download.

Example:
    >>> sample_image("coffee").size  # (width, height)
    (600, 400)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SAMPLE_DESCRIPTIONS", "SAMPLE_NAMES", "sample_image", "sample_images"]

#: Photos shipped inside scikit-image (no download needed): name → what it shows.
SAMPLE_DESCRIPTIONS: dict[str, str] = {
    "chelsea": "a tabby cat's face (ImageNet: Egyptian cat, tabby, tiger cat)",
    "coffee": "a cup of espresso on a saucer",
    "astronaut": "astronaut Eileen Collins with a flag and a model shuttle",
    "rocket": "a rocket on its launch pad",
    "motorcycle": "a motorcycle (left view of scikit-image's stereo pair)",
    "camera": "the cameraman with his tripod (grey)",
    "coins": "Greek coins on a dark background (grey)",
    "clock": "a wall clock (grey)",
}

#: Names accepted by :func:`sample_image`, in display order. Grey photos come as RGB.
SAMPLE_NAMES: tuple[str, ...] = tuple(SAMPLE_DESCRIPTIONS)


def _sample_array(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def sample_image(name: str) -> Any:
    """One of scikit-image's shipped photos, as a PIL RGB image (no download).

    Args:
        name: One of :data:`SAMPLE_NAMES` (``"chelsea"``, ``"coffee"``, ``"astronaut"``,
            ``"rocket"``, ``"motorcycle"``, ``"camera"``, ``"coins"``, ``"clock"``); a
            ``"sample:"`` prefix is accepted.

    Returns:
        A new ``PIL.Image.Image`` in mode RGB.

    Raises:
        ValueError: An unknown name (the message lists the names).

    Example:
        >>> sample_image("chelsea").size  # (width, height)
        (451, 300)
    """
    from PIL import Image

    if not isinstance(name, str):
        raise TypeError(f"`name` must be a sample name, got {type(name).__name__}")
    key = name.removeprefix("sample:")
    if key not in SAMPLE_NAMES:
        raise ValueError(f"unknown sample image {name!r}; choose one of "
                         f"{', '.join(SAMPLE_NAMES)}")
    return Image.fromarray(np.ascontiguousarray(_sample_array(key))).convert("RGB")


def sample_images() -> dict[str, Any]:
    """All sample photos, name → PIL RGB image, in the order of :data:`SAMPLE_NAMES`.

    Example:
        >>> list(sample_images())[:2]
        ['chelsea', 'coffee']
    """
    return {name: sample_image(name) for name in SAMPLE_NAMES}
