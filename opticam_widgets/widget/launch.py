"""The photo first, the model after: what an app shows while its model loads.

Loading a model takes seconds to tens of seconds. :class:`AppLoader` shows the first photo
(as soon as it is read) under a progress line ("Loading the model… 1/3 · 4 s"), loads the
model and predicts the photos, then puts the live widget in the photo's place and starts
explaining once the page shows it. The app notebook displays the loader in one cell and calls
:meth:`AppLoader.load_here` in the next: Voilà, with progressive rendering, shows the photo
while the next cell loads the model in the kernel's own thread (:meth:`AppLoader.start` loads
in a background thread instead, for a notebook that must end at once). A failure is said on the
progress line, in words. Displayed in a notebook, it keeps the widget's saved picture (an
output under its own display id, which the widget adopts; see
:mod:`~opticam_widgets.widget.display`), so a saved notebook shows the last map.

Example:
    >>> from opticam_widgets import sample_image  # doctest: +SKIP
    >>> app = AppLoader({"cat": sample_image("chelsea")}, start=False)  # doctest: +SKIP
    >>> app  # the photo and the progress line  # doctest: +SKIP
    >>> widget = app.load_here()  # next cell: then the widget  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w
import numpy as np
from PIL import Image

from .messages import esc, toned
from .upload import KeyboardHelper

__all__ = ["STAGES", "AppLoader", "photo_html"]

#: The loader's stages, as the progress line says them.
STAGES = ("Loading the model (runs on this computer, offline)…", "Reading the photos' classes…",
          "Opening the app…")

#: Longest side of the photo shown while the model loads (the widget's canvas size).
PHOTO_SIZE = 448


def photo_html(image: Any, name: str, size: int = PHOTO_SIZE) -> str:
    """An ``<img>`` of a photo (PIL, uint8 array or file path), named by ``name``.

    Example:
        >>> photo_html(np.zeros((4, 6, 3), np.uint8), "cat").startswith("<img alt='photo: cat'")
        True
    """
    if isinstance(image, Image.Image):
        picture = image.convert("RGB")
    elif isinstance(image, np.ndarray):
        picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    else:
        with Image.open(image) as opened:
            picture = opened.convert("RGB")
    picture = picture.copy()
    picture.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=88)
    src = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return (f"<img alt='photo: {esc(name)}' src='{src}' width='{picture.width}' "
            f"height='{picture.height}' style='max-width:100%;height:auto'>")


class AppLoader:
    """The first photo and a progress line at once; the widget when the model is ready.

    Args:
        photos: ``{name: image}`` (named in the widget's image strip), or one image.
        load: Builds the widget (default: :meth:`OptiCAMWidget.default`); called in the
            background thread.
        start: Start loading now (``False``: call :meth:`start`).
    """

    def __init__(self, photos: Any, load: Callable[[], Any] | None = None, *,
                 start: bool = True) -> None:
        self.photos = photos
        self.load = load
        #: The widget, once loaded (``None`` before).
        self.widget: Any = None
        #: The exception that stopped the loading, or ``None``.
        self.error: BaseException | None = None
        self.ready = threading.Event()
        first_name, first = self._first()
        self.stage = w.HTML(toned("muted", esc(STAGES[0])))
        self.stage.add_class("opticam-status")  # announced politely (see .upload)
        self.elapsed = w.HTML("")
        self.picture = w.HTML(photo_html(first, first_name))
        #: What is displayed: the progress line and the photo, then the widget.
        self.box = w.VBox([w.HBox([self.stage, self.elapsed]), self.picture, KeyboardHelper()])
        self.box.add_class("opticam-widget")
        self.box.add_class("opticam-loading")
        self._thread: threading.Thread | None = None
        #: The display id of the saved picture's output, once displayed.
        self.display_id: str | None = None
        if start:
            self.start()

    def _first(self) -> tuple[str, Any]:
        if isinstance(self.photos, Mapping):
            name, image = next(iter(self.photos.items()))
            return str(name), image
        return "photo", self.photos

    def start(self) -> None:
        """Load the model and the widget in a background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="opticam-app-loader",
                                            daemon=True)
            self._thread.start()

    def load_here(self) -> Any:
        """Load the model and the widget in this thread; return the widget.

        The photo and the progress line stay on screen meanwhile (the seconds tick on); then
        the widget takes their place. Raises the error that stopped the loading (also said on
        the progress line, in words).
        """
        if self._thread is not None:
            return self.wait()
        self._thread = threading.current_thread()
        self._run()
        return self.wait(0)

    def _say(self, stage: int, started: float) -> None:
        self.stage.value = toned("muted", esc(f"{STAGES[stage]} {stage + 1}/{len(STAGES)}"))
        self.elapsed.value = toned("muted", f"· {time.monotonic() - started:.0f} s")

    def _run(self) -> None:
        started, stage = time.monotonic(), [0]
        done = threading.Event()

        def tick() -> None:  # the seconds go on while a stage works
            while not done.wait(1.0):
                self.elapsed.value = toned("muted", f"· {time.monotonic() - started:.0f} s")

        threading.Thread(target=tick, name="opticam-app-clock", daemon=True).start()
        try:
            self._say(0, started)
            widget = self._build()
            stage[0] = 1
            self._say(1, started)
            widget.set_images(self.photos, run=False)
            self._say(2, started)
            self.widget = widget
            self.box.children = (widget.widget,)
            if self.display_id is not None:
                widget.adopt_picture(self.display_id)
            # explain once a page shows it: a browser that already holds the widget's models
            # (it made them as the kernel built them) said so before this line, a later one will
            widget.canvas.canvas.on_client_ready(lambda *_: widget.run())
            if widget.canvas.on_screen:
                widget.run()
        except Exception as exc:  # said on the progress line, in words
            self.error = exc
            self.stage.value = toned("error", esc(
                f"The app could not start ({STAGES[stage[0]].rstrip('…').lower()}): "
                f"{type(exc).__name__}: {exc}"))
        finally:
            done.set()
            self.ready.set()

    def _build(self) -> Any:
        if self.load is not None:
            return self.load()
        from .app import OptiCAMWidget

        return OptiCAMWidget.default()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the widget; return it (or raise the error that stopped the loading).

        Raises:
            TimeoutError: It is still loading after ``timeout`` seconds.
        """
        if not self.ready.wait(timeout):
            raise TimeoutError(f"the app is still loading after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.widget

    def _ipython_display_(self) -> None:
        """The live box, then the (empty for now) output of the widget's saved picture."""
        from IPython.display import display

        from .display import picture_bundle

        view = {"model_id": self.box.model_id, "version_major": 2, "version_minor": 0}
        display({"application/vnd.jupyter.widget-view+json": view,  # no photo in the text repr
                 "text/plain": "Opti-CAM app (the photo, then the widget)"}, raw=True)
        if self.display_id is None:
            self.display_id = f"opticam-picture-{uuid.uuid4().hex}"
            data, metadata = picture_bundle({"text/plain": ""}, {}, self.display_id)
            display(data, raw=True, metadata=metadata, display_id=self.display_id)
        if self.widget is not None:
            self.widget.adopt_picture(self.display_id)
