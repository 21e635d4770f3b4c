"""How the widget appears in IPython: the live view, and a saved picture of what it shows.

:class:`Display` shows the widget as two outputs: the live view, then a picture of the canvas
(an ``<img>`` as ``text/html``, and ``image/png``). While the widget is live, its stylesheet (an
HTML widget inside the widget) hides the picture; wherever the live view cannot render (kernel
shut down or restarted, untrusted notebook, nbconvert, nbviewer, GitHub) the stylesheet is not
there and the picture shows. The picture follows the screen: it is refreshed through its
display id (``update_display``) when a run ends and a moment after any other change of the
canvas (view, opacity, colormap, class, image), never during a run. A widget is displayed once
per cell (``widget.show(img)`` as a cell's last line is not displayed again as its value).

:func:`get_shell` (from :mod:`opticam_widgets.display.jupyter`, which the explorer shares) is
the one place that looks for IPython; tests replace it here (``monkeypatch``) to drive the
display without a kernel.

Example:
    >>> data, metadata = mimebundle(None, "text", None)
    >>> data, metadata
    ({'text/plain': 'text'}, {})
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ..display.jupyter import get_shell, mimebundle
from ..support.jobs import exiting, tracked
from .messages import esc

__all__ = ["Display", "get_shell", "mimebundle", "picture_bundle", "reopened_html",
           "stylesheet"]

#: The widget-view MIME type of ipywidgets.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Seconds between the last change of the canvas and the refresh of the saved picture.
PICTURE_DELAY_S = 0.4


def picture_bundle(data: dict[str, Any], metadata: dict[str, Any],
                   name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The picture output of a widget bundle: its PNG as an ``<img>`` of CSS class ``name``.

    Without a PNG (no image yet) the picture is the widget's text, in an element of that class
    too (hidden while the widget is live, like the picture).

    Example:
        >>> import numpy as np
        >>> png = mimebundle(None, "w", np.zeros((2, 3, 3), np.uint8))
        >>> data, _ = picture_bundle(*png, "opticam-picture-1")
        >>> sorted(data), "opticam-picture-1" in data["text/html"]
        (['image/png', 'text/html', 'text/plain'], True)
        >>> picture_bundle({"text/plain": "w"}, {}, "opticam-picture-1")[0]["text/html"]
        "<pre class='opticam-picture opticam-picture-1'>w</pre>"
    """
    out: dict[str, Any] = {"text/plain": data.get("text/plain", "")}
    png = data.get("image/png")
    if png is None:
        out["text/html"] = f"<pre class='opticam-picture {name}'>{esc(out['text/plain'])}</pre>"
        return out, {}
    size = metadata.get("image/png", {})
    out["text/html"] = (
        f"<img class='opticam-picture {name}' src='data:image/png;base64,{png}' "
        f"width='{size.get('width', '')}' height='{size.get('height', '')}' "
        f"style='max-width:100%;height:auto' alt='{esc(out['text/plain'])}'>"
        + reopened_html(name))
    out["image/png"] = png
    return out, {"image/png": size}


def reopened_html(picture: str) -> str:
    """A caption under the picture, and a rule that hides the widget output's error text.

    In a reopened notebook (kernel gone) the front end cannot find the live widget's model
    and writes "Error displaying widget: model not found" in its output, just above the
    picture; that output (one holding no widget) is hidden and the caption says what the
    picture is. Hidden, like the picture, while the live widget is there.

    Example:
        >>> "run the cell" in reopened_html("opticam-picture-1")
        True
    """
    hide = (f".jp-OutputArea-child:has(+ .jp-OutputArea-child .{picture})"
            ":not(:has(.widget-box, .widget-vbox, .widget-hbox, canvas))")
    return (f"<div class='opticam-picture {picture}' style='font-size:12px;"
            "color:var(--jp-ui-font-color1, #333)'>The widget as it was when the notebook "
            "was saved: run the cell to use it live.</div>"
            f"<style>{hide} {{ display: none; }}</style>")


def stylesheet(picture: str, css: str = "") -> str:
    """The live widget's ``<style>``: ``css``, and the rules that hide the picture ``picture``.

    The picture is hidden only while the live widget (CSS class ``{picture}-live``) shows a
    canvas: where the canvas front end cannot load (VS Code without its widget CDN, a server
    without ipycanvas), the controls render but the picture stays visible.

    Example:
        >>> ".opticam-picture-1 { display: none" in stylesheet("opticam-picture-1")
        True
    """
    live = f"body:has(.{picture}-live canvas)"
    return (f"<style>{css}\n{live} .{picture} {{ display: none !important; }}\n"
            f"{live} .jp-OutputArea-child:has(.{picture}) {{ display: none !important; }}"
            "</style>")


class Display:
    """The IPython outputs of one widget: the live view and its saved picture.

    Args:
        bundle: Returns the widget's current ``(data, metadata)`` (see :func:`mimebundle`).
        text: Returns the widget's ``repr`` (printed in plain Python).
        busy: Whether a run is going (the picture waits for its end).
        css: Extra CSS of the live widget (its layout rules).
    """

    def __init__(self, bundle: Callable[[], tuple[dict, dict]], text: Callable[[], str],
                 busy: Callable[[], bool] = lambda: False, css: str = "") -> None:
        self._bundle = bundle
        self._text = text
        self._busy = busy
        self._css = css
        #: The picture output's display id, once displayed.
        self.display_id: str | None = None
        #: The widget's stylesheet (put it inside the displayed widget).
        self.style = w.HTML(value=f"<style>{css}</style>", layout=w.Layout(display="none"))
        self._root: w.Box | None = None
        self._skip_in: int | None = None  # execution count whose cell value is not displayed
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._closed = False

    def attach(self, root: w.Box) -> None:
        """Put the stylesheet inside the widget's root box (what is displayed)."""
        self._root = root
        root.children = (*root.children, self.style)

    def publish(self) -> None:
        """Display the live view, then the picture under its display id (plain Python: print)."""
        if get_shell() is None:
            print(self._text())
            return
        from IPython.display import display

        if self.display_id is None:
            self._name_picture(f"opticam-picture-{uuid.uuid4().hex}")
        data, metadata = self._bundle()
        live = {k: v for k, v in data.items() if k in (WIDGET_VIEW, "text/plain")}
        display(live, raw=True)
        picture, picture_metadata = picture_bundle(data, metadata, self.display_id)
        display(picture, raw=True, metadata=picture_metadata, display_id=self.display_id)

    def _name_picture(self, display_id: str) -> None:
        self.display_id = display_id
        self.style.value = stylesheet(display_id, self._css)
        if self._root is not None:
            self._root.add_class(f"{display_id}-live")

    def adopt(self, display_id: str) -> None:
        """Keep the picture in the output ``display_id`` (an app's loader), refreshed now.

        The live view is wherever that app put the root.
        """
        self._name_picture(display_id)
        self.update()

    def shown(self) -> None:
        """``show`` has displayed the widget: this cell's value is not displayed again."""
        shell = get_shell()
        self._skip_in = shell.execution_count if shell is not None else None

    def schedule(self, *_: Any) -> None:
        """Refresh the picture a moment after the last of a burst of changes."""
        if self.display_id is None or self._closed:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(PICTURE_DELAY_S, self._scheduled)
            self._timer.daemon = True
            self._timer.start()

    def _scheduled(self) -> None:
        with self._lock:
            self._timer = None
        with tracked("picture"):  # a job of the package: joined at interpreter exit
            if not self._busy() and not exiting():  # a run refreshes it when it ends
                self.update()

    def update(self) -> None:
        """Refresh the picture now (what the canvas shows)."""
        if self.display_id is None or self._closed:
            return
        self._cancel_timer()  # a refresh pending would redo this very picture
        from IPython.display import update_display

        data, metadata = picture_bundle(*self._bundle(), self.display_id)
        update_display(data, raw=True, metadata=metadata, display_id=self.display_id)

    def ipython_display(self) -> None:
        """Display for ``display(widget)`` and a cell's value (not twice in one cell)."""
        shell = get_shell()
        if shell is not None and self._skip_in == shell.execution_count:
            self._skip_in = None  # `widget.show(img)` as a cell's last line
            return
        self.publish()

    def close(self) -> None:
        """No more updates: the picture stays as it was last refreshed."""
        self._closed = True
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
