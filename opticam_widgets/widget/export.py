"""Static pictures of a result: a canvas view as an array, PNG files, a matplotlib figure.

:func:`render_view` is the one compositor of the canvas views (the canvas's
:meth:`~opticam_widgets.widget.canvas.SaliencyCanvas.to_array` and the saved picture of a
notebook output use it); :class:`Exporter` makes the widget's files and figures at the image's
own resolution.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..display.render import colorize, mask_image, overlay, to_png_bytes
from .record import download_link, map_record, record_json, reproduce_code
from .saving import SaveFolder, check_file_name, with_suffix, write_new
from .state import Session

__all__ = ["Exporter", "png_name", "render_view", "summary_figure"]

#: Raised (as RuntimeError) when a picture is asked for before any map.
NO_MAP = "no saliency map yet: run the widget first (`widget.run()`)"


def render_view(rgb: np.ndarray, saliency: np.ndarray | None, *, view: str = "overlay",
                opacity: float = 0.5, cmap: str = "jet", inverse: bool = False) -> np.ndarray:
    """What a canvas view shows, as one uint8 (H, W, 3) array.

    Args:
        rgb: The image, uint8 (H, W, 3).
        saliency: Its map (any size, resized), or ``None`` (then the image is returned).
        view: ``"overlay"``, ``"saliency"``, ``"masked"`` or ``"original"``.
        opacity: Heatmap opacity in the overlay view.
        cmap: Colormap name.
        inverse: Masked view shows ``x ⊙ (1 − S)``.

    Example:
        >>> img = np.zeros((2, 3, 3), np.uint8)
        >>> render_view(img, np.ones((2, 3)), view="masked").shape
        (2, 3, 3)
    """
    if saliency is None or view == "original":
        return rgb
    if view == "saliency":
        from ..display.render import resize_map

        return colorize(resize_map(saliency, rgb.shape[:2]), cmap)[..., :3]
    if view == "masked":
        return mask_image(rgb, saliency, inverse=inverse)
    return overlay(rgb, saliency, alpha=opacity, cmap=cmap)


def png_name(image_index: int, label: str | None) -> str:
    """Default file name of a saved overlay: ``opticam_<image number>_<class name>.png``.

    Example:
        >>> png_name(0, "tabby, tabby cat")
        'opticam_1_tabby__tabby_cat.png'
    """
    safe = "".join(ch if ch.isalnum() else "_" for ch in label or "").strip("_") or "map"
    return f"opticam_{image_index + 1}_{safe}.png"


def summary_figure(rgb: np.ndarray, result: Any, *, title: str, cmap: str = "jet",
                   opacity: float = 0.5) -> Any:
    """Image, saliency map, overlay and score-over-iterations in one matplotlib figure.

    Args:
        rgb: The image, uint8 (H, W, 3).
        result: An :class:`~opticam_widgets.engine.result.OptiCAMResult` (its first row is
            drawn).
        title: Title of the image panel (e.g. the class name).
        cmap: Colormap name.
        opacity: Heatmap opacity of the overlay.

    Returns:
        A ``matplotlib.figure.Figure`` (built without pyplot).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sal = result.numpy()[0]
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4, width_ratios=(1, 1, 1, 1.2))
    axes[0].imshow(rgb)
    axes[0].set_title(title)
    im = axes[1].imshow(sal, cmap=cmap, vmin=0, vmax=1)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title(f"Opti-CAM ({result.convention}, {result.layer})")
    axes[2].imshow(overlay(rgb, sal, alpha=opacity, cmap=cmap))
    axes[2].set_title("overlay")
    for ax in axes[:3]:
        ax.set_axis_off()
    axes[3].plot(result.scores[0].numpy())
    axes[3].set_xlabel("iteration")
    axes[3].set_ylabel(result.score)
    axes[3].set_title(f"score {float(result.initial_score[0]):.4g} → "
                      f"{float(result.final_score[0]):.4g}")
    axes[3].grid(alpha=0.3)
    return fig


class Exporter:
    """The widget's pictures and files of the map shown, at the image's own resolution.

    Args:
        session: The widget's images and the entry shown.
        style: Returns the current ``(opacity, colormap, view)``.
        names: Returns the class names (or ``None`` before they are known).
        folder: Where the Save button writes, and whether it may.
        model: The model's name (for the record).
        preprocess: The engine's preprocessing (:func:`~.record.preprocess_spec`).
    """

    def __init__(self, session: Session, style: Callable[[], tuple[float, str, str]],
                 names: Callable[[], Sequence[str] | None], *, folder: SaveFolder,
                 model: str = "model", preprocess: dict | None = None) -> None:
        self.session = session
        self.style = style
        self.names = names
        self.folder = folder
        self.model = model
        self.preprocess = preprocess

    def _entry(self) -> Any:
        entry = self.session.shown
        if entry is None:
            raise RuntimeError(NO_MAP)
        return entry

    def _shown(self) -> Any:
        return self._entry().result

    def _label(self, target: int | None) -> str | None:
        names = self.names()
        return names[target] if names and target is not None else None

    def default_name(self) -> str:
        """:func:`png_name` of the image and class shown."""
        return png_name(self.session.index, self._label(self.session.target))

    def overlay(self) -> np.ndarray:
        """The overlay, uint8 (H, W, 3), in the current opacity and colormap."""
        opacity, cmap, _view = self.style()
        return overlay(self.session.image.rgb, self._shown().numpy()[0], alpha=opacity,
                       cmap=cmap)

    def save(self, path: str | os.PathLike | None, *, overwrite: bool = False) -> Path:
        """Write :meth:`overlay` as a PNG (the Python API: ``path`` is the owner's).

        ``None`` or ``""``: :meth:`default_name` in the save folder. ``.png`` is added when
        missing; a taken name becomes ``name (2).png`` unless ``overwrite``.
        """
        data = to_png_bytes(self.overlay())
        if path is None or str(path) == "":
            out = self.folder.folder / self.default_name()
            self.folder.folder.mkdir(parents=True, exist_ok=True)
        else:
            out = Path(path).expanduser()
            out = out.with_name(with_suffix(out.name))
        if overwrite:
            out.write_bytes(data)
            return out
        return write_new(out, data)

    def save_from_ui(self, text: str) -> Path:
        """The Save button: a plain file name (``""``: automatic) written in the save folder.

        Raises:
            PermissionError: Server saving is off (Voilà, unless enabled).
            ValueError: Not a plain file name; nothing is written.
        """
        name = text.strip() or self.default_name()
        check_file_name(name)  # refuse before encoding anything
        return self.folder.write(name, to_png_bytes(self.overlay()))

    def record(self) -> dict:
        """The map's JSON sidecar (:func:`~.record.map_record`)."""
        entry = self._entry()
        state = self.session.image
        return map_record(model=self.model, entry=entry,
                          label=self._label(int(entry.result.target[0])), image=state.name,
                          source=state.source, style=self.style(),
                          preprocess=self.preprocess)

    def code(self) -> str:
        """The Python code that reproduces the map shown (:func:`~.record.reproduce_code`)."""
        return reproduce_code(self.record())

    def download_html(self) -> str:
        """Browser download links of the PNG and its JSON sidecar (no server write)."""
        name = self.default_name()
        png = to_png_bytes(self.overlay())
        sidecar = record_json(self.record())
        json_name = name[:-len(".png")] + ".json"
        return (f"{download_link(name, 'image/png', png, f'⤓ {name}')} "
                f"({len(png) / 1024:.0f} kB) · "
                f"{download_link(json_name, 'application/json', sidecar, f'⤓ {json_name}')}"
                " (model, layer, class, settings, metrics)")

    def figure(self) -> Any:
        """:func:`summary_figure` of the map shown."""
        result = self._shown()
        names, t = self.names(), result.target[0]
        opacity, cmap, _view = self.style()
        return summary_figure(self.session.image.rgb, result,
                              title=f"{names[t]} ({t})" if names else f"class {t}",
                              cmap=cmap, opacity=opacity)
