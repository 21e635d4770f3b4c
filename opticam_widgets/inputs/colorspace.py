"""Colour spaces: photos are read as sRGB, the space image classifiers are trained in.

A photo may carry an ICC profile of another space: phones write Display P3, cameras Adobe RGB,
print workflows CMYK. Read as if it were sRGB, its colours are silently off (P3 reds come out
dull, CMYK is inverted through a naive formula). :func:`to_srgb` applies the embedded profile
with littlecms (Pillow's ``ImageCms``); :func:`lab_to_rgb` converts CIE L*a*b* images.

Example:
    >>> from PIL import Image
    >>> to_srgb(Image.new("RGB", (2, 2))).mode  # no profile: unchanged
    'RGB'
"""

from __future__ import annotations

import io
import warnings
from typing import Any

__all__ = ["lab_to_rgb", "to_srgb"]

#: Modes whose embedded profile is applied (others are converted by Pillow as they are).
PROFILE_MODES = ("RGB", "RGBA", "CMYK", "L")


def _is_srgb(profile: Any) -> bool:
    from PIL import ImageCms

    name = ImageCms.getProfileDescription(profile) or ""
    return "srgb" in name.lower().replace(" ", "")


def to_srgb(img: Any) -> Any:
    """``img`` with its embedded ICC profile applied: an sRGB ("RGB"/"RGBA") PIL image.

    Images without a profile, with an sRGB profile or of another mode are returned as they
    are. A profile littlecms cannot read or apply leaves the pixels as they are, with a
    warning (they are then read as sRGB, as most tools do).

    Example:
        >>> from PIL import Image
        >>> to_srgb(Image.new("L", (2, 2))).mode
        'L'
    """
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in PROFILE_MODES:
        return img
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if _is_srgb(profile):
            return img
        return ImageCms.profileToProfile(
            img, profile, ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if img.mode == "RGBA" else "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        warnings.warn(f"the image's embedded colour profile could not be applied ({exc}); its "
                      "pixels are read as sRGB. Convert the photo to sRGB to silence this.",
                      UserWarning, stacklevel=3)
        return img


def lab_to_rgb(img: Any, name: str) -> Any:
    """An RGB image from a CIE L*a*b* one, with littlecms (D50, the ICC convention).

    Raises:
        ValueError: This Pillow cannot convert it (no littlecms).
    """
    from PIL import ImageCms

    try:
        lab = ImageCms.createProfile("LAB")
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.applyTransform(img, ImageCms.buildTransform(lab, srgb, "LAB", "RGB"))
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:  # pragma: no cover - no lcms
        raise ValueError(f"`{name}` is a LAB image and this Pillow cannot convert it ({exc}); "
                         "convert it to RGB first (e.g. skimage.color.lab2rgb)") from None
