"""A two-layer ipycanvas view of an image and its saliency map.

Layer 0 holds the image (or the masked input ``x ⊙ S``), layer 1 the heatmap. Both are drawn
at a fixed pixel size that keeps the image's aspect ratio, from cached display-size arrays, so
changing the opacity, colormap or view redraws without recomputing anything. Every layer is
sent as RGBA (``put_image_data`` with an (H, W, 4) array): ipycanvas encodes RGB arrays as lossy
JPEG but RGBA as PNG, and the heatmap needs its alpha channel anyway.

The heatmap is smooth (a 7 × 7 map, bilinearly upsampled), so it is sent at half the drawing's
resolution and scaled up by the canvas (``put_image_data`` follows the canvas transform): a
quarter of the pixels to PNG-encode in the kernel and to send, on every refresh during a run.
:meth:`SaliencyCanvas.to_array` composites the view at full resolution with
:func:`~opticam_widgets.widget.export.render_view`, the one compositor of the package's views.

Nothing is sent to a layer before a browser has created it (its ``client_ready`` event): draw
commands that reach a page before the page holds the layer's model make ipycanvas drop every
later command of that page (Voilà connects to a kernel whose run is already drawing). The
arrays are kept meanwhile, and each layer is drawn when a browser announces it. On screen the
drawing scales down with the width it is given (CSS ``max-width: 100%``, height following the
aspect ratio); the drawing itself keeps its pixel size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ipycanvas import MultiCanvas, hold_canvas
from ipywidgets import Layout
from traitlets import Bool, Enum, Float, HasTraits, Int, Unicode, observe

from ..display.render import as_uint8_image, colorize, mask_image, resize_map
from .common import DRAW_LOCK, close_widgets
from .export import render_view

__all__ = ["SaliencyCanvas", "display_size", "scale_picture"]

#: Layers of the canvas: 0 the image (or the masked input), 1 the heatmap.
LAYERS = 2


def display_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """Fit ``(height, width)`` into a ``max_size`` square, keeping the aspect ratio.

    Small images are scaled up, large ones down.

    Example:
        >>> display_size(300, 600, 448)
        (224, 448)
    """
    scale = max_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def scale_picture(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 (H, W, 3) picture at ``size = (h, w)``: antialiased bicubic when it shrinks.

    PIL's ``BICUBIC`` picture, read in place: torch's uint8 resampling runs on the array's
    channels-last view, so a big photo is not copied (PIL would copy it in first).

    Example:
        >>> scale_picture(np.zeros((40, 60, 3), np.uint8), (20, 30)).shape
        (20, 30, 3)
    """
    import torch
    import torch.nn.functional as F

    if image.shape[:2] == tuple(size):
        return image
    if not image.flags.writeable:  # torch would warn on a read-only view
        image = image.copy()
    shrink = size[0] <= image.shape[0] and size[1] <= image.shape[1]
    view = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)  # channels-last: no copy
    out = F.interpolate(view, size=tuple(size), mode="bicubic" if shrink else "bilinear",
                        align_corners=False, antialias=shrink)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())


def _rgba(rgb: np.ndarray) -> np.ndarray:
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=-1)


class SaliencyCanvas(HasTraits):
    """Image + heatmap layers on an ipycanvas ``MultiCanvas`` of fixed pixel size.

    Args:
        max_size: Longest side of the drawing in pixels (the image is scaled to fit).

    Example:
        >>> import numpy as np
        >>> view = SaliencyCanvas(max_size=64)
        >>> _ = view.set_image(np.zeros((30, 60, 3), np.uint8))  # the picture drawn, uint8
        >>> view.set_saliency(np.ones((30, 60)))
        >>> view.opacity = 0.3  # redraws the heatmap layer only
        >>> (view.canvas.height, view.canvas.width)
        (32, 64)
    """

    #: What the canvas shows: heatmap over the image, heatmap alone, the image times the map
    #: (``x ⊙ S``, what the model saw), or the image alone.
    view = Enum(("overlay", "saliency", "masked", "original"), default_value="overlay")
    #: Heatmap opacity in the overlay view, in [0, 1].
    opacity = Float(0.5, min=0.0, max=1.0)
    #: Matplotlib colormap name of the heatmap.
    cmap = Unicode("jet")
    #: Show ``x ⊙ (1 − S)`` instead of ``x ⊙ S`` in the masked view (destructive convention).
    inverse = Bool(False)
    #: Number of ``put_image_data`` calls sent so far (for tests and diagnostics).
    draw_count = Int(0, read_only=True)
    #: Bumped whenever what the canvas shows changes (sent to a browser or not).
    revision = Int(0, read_only=True)

    def __init__(self, max_size: int = 448, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(max_size) < 16:
            raise ValueError(f"`max_size` must be at least 16 pixels, got {max_size}")
        self.max_size = int(max_size)
        self.canvas = MultiCanvas(LAYERS, width=self.max_size, height=self.max_size,
                                  layout=self._layout(self.max_size))
        self._image: np.ndarray | None = None  # display-size uint8 (h, w, 3)
        self._saliency: np.ndarray | None = None  # display-size float32 (h, w)
        self._saliency_sent: np.ndarray | None = None  # the map at the heat layer's resolution
        self._colored: dict[str, np.ndarray] = {}  # cmap -> uint8 RGBA of the sent map
        self._ready: set[int] = set()  # layers a browser has created (may be drawn)
        self._on_ready = [self._ready_callback(i) for i in range(LAYERS)]
        for i, callback in enumerate(self._on_ready):
            self.canvas[i].on_client_ready(callback)

    @staticmethod
    def _layout(width: int) -> Layout:
        # The drawing's pixel width at most (without it the canvas stretches to the cell's
        # width), scaled down to the width available, the height following the aspect ratio.
        return Layout(width=f"{width}px", max_width="100%", height="auto", flex="0 1 auto")

    def _ready_callback(self, layer: int) -> Any:
        def ready(*_: Any) -> None:  # a browser created this layer: draw it there
            with DRAW_LOCK:
                self._ready.add(layer)
                self._draw(image=layer == 0, heat=layer == 1)
        return ready

    # ------------------------------------------------------------------ content
    @property
    def size(self) -> tuple[int, int]:
        """Drawing size ``(height, width)`` in pixels."""
        return int(self.canvas.height), int(self.canvas.width)

    @property
    def on_screen(self) -> bool:
        """Whether a browser has created the canvas's layers (what is drawn reaches a page)."""
        return bool(self._ready)

    @property
    def saliency(self) -> np.ndarray | None:
        """The map drawn, float32 (h, w) in [0, 1] at the drawing's size, or ``None``."""
        return self._saliency

    def set_image(self, image: Any) -> np.ndarray:
        """Show a new image (any size; scaled to fit) and drop the current map.

        A big photo is scaled in place (torch's uint8 antialiased bicubic, PIL's ``BICUBIC``
        picture; :func:`scale_picture`): no copy of it is made.

        Args:
            image: uint8 (H, W, 3) or float in [0, 1] (see
                :func:`~opticam_widgets.display.render.as_uint8_image`).

        Returns:
            The picture drawn, uint8 (h, w, 3) at the drawing's size.
        """
        img = as_uint8_image(image)
        h, w = display_size(img.shape[0], img.shape[1], self.max_size)
        img = scale_picture(img, (h, w))
        with DRAW_LOCK:
            self._image = np.ascontiguousarray(img)
            self._saliency = self._saliency_sent = None
            self._colored = {}
            if self.size != (h, w):
                self.canvas.width, self.canvas.height = w, h
                self.canvas.layout.width = f"{w}px"
            self.redraw()
        return img

    def set_saliency(self, saliency: Any | None) -> None:
        """Show a map (any size, resized to the drawing) or clear it with ``None``."""
        with DRAW_LOCK:
            if saliency is None or self._image is None:
                self._saliency = self._saliency_sent = None
            else:
                self._saliency = np.clip(resize_map(saliency, self.size), 0.0, 1.0)
                self._saliency_sent = np.clip(resize_map(saliency, self._sent_size()), 0.0, 1.0)
            self._colored = {}
            self._draw(image=self.view == "masked", heat=True)

    # ------------------------------------------------------------------ drawing
    def redraw(self, *_: Any) -> None:
        """Redraw both layers from the cached arrays."""
        self._draw(image=True, heat=True)

    @observe("opacity", "cmap")
    def _on_style(self, _change: dict) -> None:
        self._draw(image=False, heat=True)

    @observe("view", "inverse")
    def _on_view(self, change: dict) -> None:
        if change["name"] == "inverse" and self.view != "masked":
            return
        self._draw(image=True, heat=True)

    def _sent_size(self) -> tuple[int, int]:
        """Resolution at which the heatmap is sent: half the drawing's, rounded up."""
        h, w = self.size
        return (h + 1) // 2, (w + 1) // 2

    def _colorized(self) -> np.ndarray:
        """The heatmap colorized at the resolution it is sent at (cached per colormap)."""
        rgba = self._colored.get(self.cmap)
        if rgba is None:
            rgba = colorize(self._saliency_sent, self.cmap)
            self._colored[self.cmap] = rgba
        return rgba

    def _image_layer(self) -> np.ndarray | None:
        if self._image is None:
            return None
        if self.view == "masked" and self._saliency is not None:
            return _rgba(mask_image(self._image, self._saliency, inverse=self.inverse))
        return _rgba(self._image)

    def _heat_layer(self) -> np.ndarray | None:
        """The heatmap RGBA at the resolution it is sent at."""
        if self._saliency is None or self.view in ("masked", "original"):
            return None
        rgba = self._colorized().copy()
        alpha = 1.0 if self.view == "saliency" else float(self.opacity)
        rgba[..., 3] = round(alpha * 255)
        return rgba

    def _put(self, layer: int, data: np.ndarray | None) -> None:
        target = self.canvas[layer]
        target.clear()
        if data is not None:
            h, w = self.size
            if data.shape[:2] == (h, w):
                target.put_image_data(data, 0, 0)
            else:  # scaled up to the drawing by the canvas
                target.save()
                target.scale(w / data.shape[1], h / data.shape[0])
                target.put_image_data(data, 0, 0)
                target.restore()
            self.set_trait("draw_count", self.draw_count + 1)

    def _draw(self, *, image: bool, heat: bool) -> None:
        with DRAW_LOCK:
            self.set_trait("revision", self.revision + 1)
            image, heat = image and 0 in self._ready, heat and 1 in self._ready
            if not (image or heat):
                return
            image_data = self._image_layer() if image else None
            heat_data = self._heat_layer() if heat else None
            with hold_canvas():
                if image:
                    self._put(0, image_data)
                if heat:
                    self._put(1, heat_data)

    # ------------------------------------------------------------------ export
    def to_array(self) -> np.ndarray | None:
        """What the canvas shows, composited, as uint8 (h, w, 3); ``None`` before an image."""
        with DRAW_LOCK:
            if self._image is None:
                return None
            return render_view(self._image, self._saliency, view=self.view,
                               opacity=float(self.opacity), cmap=self.cmap, inverse=self.inverse)

    def close(self) -> None:
        """Close the canvas widgets."""
        for i, callback in enumerate(self._on_ready):
            self.canvas[i].on_client_ready(callback, remove=True)
        close_widgets(*(self.canvas[i] for i in range(LAYERS)), self.canvas)
