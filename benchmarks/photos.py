"""Photos beyond the eight samples, all shipped inside installed libraries (offline, no download).

scikit-learn's ``load_sample_images`` (china, flower), matplotlib's ``get_sample_data``
(grace_hopper, Minduka_Present_Blue_Pack), scikit-image photos that are not samples
(hubble_deep_field, retina, immunohistochemistry, the right view of the motorcycle pair, the
grey textures brick / grass / gravel, moon), and crops of these and of the samples (a crop is
a new framing: the object larger, another part of the scene). Each is a PIL RGB image.

Example (benchmarks only, not part of the package)::

    from photos import extra_photos
    photos = extra_photos()          # 26 photos: name -> PIL.Image
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3]).astype(np.uint8)


def _crop(a: np.ndarray, top: float, left: float, bottom: float, right: float) -> np.ndarray:
    """The crop between fractions of the height (top, bottom) and width (left, right)."""
    h, w = a.shape[:2]
    return a[int(top * h):int(bottom * h), int(left * w):int(right * w)]


def _sklearn(index: int) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    return load_sample_images().images[index]


def _mpl(name: str) -> np.ndarray:
    from matplotlib.cbook import get_sample_data
    from PIL import Image

    with get_sample_data(name) as f:
        return np.asarray(Image.open(f).convert("RGB"))


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle_right":
        return data.stereo_motorcycle()[1]
    return getattr(data, name)()


def _sample(name: str) -> np.ndarray:
    from opticam_widgets.inputs.samples import sample_image

    return np.asarray(sample_image(name))


#: name -> how to make it (an RGB uint8 array).
SOURCES: dict[str, Callable[[], np.ndarray]] = {
    "sklearn:china": lambda: _sklearn(0),
    "sklearn:flower": lambda: _sklearn(1),
    "sklearn:china-left": lambda: _crop(_sklearn(0), 0.1, 0.0, 0.9, 0.5),
    "sklearn:china-right": lambda: _crop(_sklearn(0), 0.1, 0.5, 0.9, 1.0),
    "sklearn:flower-centre": lambda: _crop(_sklearn(1), 0.15, 0.2, 0.85, 0.8),
    "mpl:grace_hopper": lambda: _mpl("grace_hopper.jpg"),
    "mpl:grace_hopper-face": lambda: _crop(_mpl("grace_hopper.jpg"), 0.05, 0.2, 0.6, 0.8),
    "mpl:present": lambda: _mpl("Minduka_Present_Blue_Pack.png"),
    "skimage:hubble": lambda: _skimage("hubble_deep_field"),
    "skimage:retina": lambda: _skimage("retina"),
    "skimage:ihc": lambda: _skimage("immunohistochemistry"),
    "skimage:motorcycle_right": lambda: _skimage("motorcycle_right"),
    "skimage:brick": lambda: _skimage("brick"),
    "skimage:grass": lambda: _skimage("grass"),
    "skimage:gravel": lambda: _skimage("gravel"),
    "skimage:moon": lambda: _skimage("moon"),
    "crop:chelsea-face": lambda: _crop(_sample("chelsea"), 0.0, 0.2, 0.8, 0.8),
    "crop:coffee-cup": lambda: _crop(_sample("coffee"), 0.0, 0.15, 0.75, 0.75),
    "crop:astronaut-face": lambda: _crop(_sample("astronaut"), 0.0, 0.3, 0.5, 0.65),
    "crop:astronaut-shuttle": lambda: _crop(_sample("astronaut"), 0.55, 0.55, 1.0, 1.0),
    "crop:rocket-top": lambda: _crop(_sample("rocket"), 0.0, 0.2, 0.6, 0.8),
    "crop:motorcycle-front": lambda: _crop(_sample("motorcycle"), 0.1, 0.0, 0.9, 0.6),
    "crop:camera-tripod": lambda: _crop(_sample("camera"), 0.3, 0.2, 1.0, 0.8),
    "crop:clock-face": lambda: _crop(_sample("clock"), 0.0, 0.1, 0.9, 0.9),
    "crop:coins-left": lambda: _crop(_sample("coins"), 0.0, 0.0, 1.0, 0.5),
    "crop:hubble-centre": lambda: _crop(_skimage("hubble_deep_field"), 0.25, 0.25, 0.75, 0.75),
}


def extra_photos(names: list[str] | None = None) -> dict[str, Any]:
    """``name -> PIL RGB image`` for ``names`` (default: every one of :data:`SOURCES`)."""
    from PIL import Image

    return {n: Image.fromarray(_rgb(SOURCES[n]())) for n in (names or list(SOURCES))}


def all_photos(quick: bool = False) -> dict[str, Any]:
    """The eight samples (``sample:NAME``) then the extra photos; ``quick``: 1 + 1 of them."""
    from opticam_widgets.inputs.samples import SAMPLE_NAMES, sample_image

    samples = SAMPLE_NAMES[:1] if quick else SAMPLE_NAMES
    extra = ["sklearn:china"] if quick else None
    return {**{f"sample:{n}": sample_image(n) for n in samples}, **extra_photos(extra)}
