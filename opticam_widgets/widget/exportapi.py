"""The widget's files and pictures, as its public API.

A mixin of :class:`~opticam_widgets.widget.app.OptiCAMWidget`: every method forwards to
the widget's :class:`~opticam_widgets.widget.export.Exporter`.

Example:
    >>> widget.save("cat.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ExportAPI"]


class ExportAPI:
    """Overlay, PNG file, JSON record, reproducing code and figure of the map shown."""

    _parts: Any

    def overlay_image(self) -> np.ndarray:
        """The overlay at the image's own resolution, uint8 (H, W, 3), in the current style.

        Raises:
            RuntimeError: No map yet.
        """
        return self._parts.exporter.overlay()

    def save(self, path: str | os.PathLike | None = None, *, overwrite: bool = False) -> Path:
        """Save the overlay as a PNG at the image's own resolution.

        Args:
            path: File to write (``.png`` is added when missing); default
                ``opticam_<image>_<class>.png`` in the save folder (``save_dir``).
            overwrite: Replace an existing file; by default a taken name becomes
                ``name (2).png`` (the path returned says which).

        Returns:
            The path written.

        Example:
            >>> widget.save("cat.png")  # doctest: +SKIP
        """
        return self._parts.exporter.save(path, overwrite=overwrite)

    def record(self) -> dict:
        """The map shown, described: model, layer, class, settings, scores and metrics.

        The same JSON the **Download** button offers beside the PNG.

        Example:
            >>> widget.record()["settings"]["max_iter"]  # doctest: +SKIP
            100
        """
        return self._parts.exporter.record()

    def code(self) -> str:
        """The Python code whose ``OptiCAM(...).explain(...)`` reproduces the map shown.

        Example:
            >>> print(widget.code())  # doctest: +SKIP
        """
        return self._parts.exporter.code()

    def figure(self) -> Any:
        """A matplotlib figure: image, saliency map, overlay and score over iterations.

        Returns:
            A ``matplotlib.figure.Figure`` (no pyplot: it is shown only if you display it).

        Raises:
            RuntimeError: No map yet.

        Example:
            >>> widget.figure().savefig("opticam.pdf")  # doctest: +SKIP
        """
        return self._parts.exporter.figure()
