"""How the widget appears in IPython: its mimebundle and the saved picture of the output.

The widget is displayed with a PNG of its canvas next to the live view, so that a saved or
exported notebook shows a picture where the live widget cannot render. :class:`Display` keeps
the display id of the output, displays the widget once per cell (``widget.show(img)`` as a
cell's last line is not displayed a second time as the cell's value) and refreshes the output's
PNG once the run started by ``show`` has finished.

:func:`get_shell` is the one place that looks for IPython; tests replace it (``monkeypatch``) to
drive the display without a kernel.

Example:
    >>> data, metadata = mimebundle(None, "text", None)
    >>> data, metadata
    ({'text/plain': 'text'}, {})
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import numpy as np

from ..render import to_png_bytes

__all__ = ["Display", "get_shell", "mimebundle"]

#: The widget-view MIME type of ipywidgets.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def get_shell() -> Any:
    """The running IPython shell, or ``None`` (plain Python, tests)."""
    from IPython import get_ipython

    return get_ipython()


def mimebundle(root: w.Widget | None, text: str,
               picture: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(data, metadata)`` of a widget output.

    Args:
        root: The live widget (its view is included), or ``None`` once closed.
        text: The ``text/plain`` representation.
        picture: uint8 (h, w, 3) sent as ``image/png``, or ``None``.
    """
    data: dict[str, Any] = {}
    if root is not None:
        data.update(root._repr_mimebundle_() or {})
    data["text/plain"] = text
    metadata: dict[str, Any] = {}
    if picture is not None:
        data["image/png"] = base64.b64encode(to_png_bytes(picture)).decode("ascii")
        metadata["image/png"] = {"width": int(picture.shape[1]), "height": int(picture.shape[0])}
    return data, metadata


class Display:
    """The IPython output of one widget.

    Args:
        bundle: Returns the widget's current ``(data, metadata)``.
        text: Returns the widget's ``repr`` (printed in plain Python).
    """

    def __init__(self, bundle: Callable[[], tuple[dict, dict]], text: Callable[[], str]) -> None:
        self._bundle = bundle
        self._text = text
        #: The output's display id, once displayed.
        self.display_id: str | None = None
        self._skip_in: int | None = None  # execution count whose cell value is not displayed
        self._update_pending = False
        self._closed = False

    def publish(self) -> None:
        """Display the widget's mimebundle under its display id (plain Python: print it)."""
        if get_shell() is None:
            print(self._text())
            return
        from IPython.display import display

        if self.display_id is None:
            self.display_id = f"opticam-widget-{uuid.uuid4().hex}"
        data, metadata = self._bundle()
        display(data, raw=True, metadata=metadata, display_id=self.display_id)

    def shown(self, *, update_after_run: bool) -> None:
        """``show`` has displayed the widget: skip this cell's value, maybe update later."""
        shell = get_shell()
        self._skip_in = shell.execution_count if shell is not None else None
        self._update_pending = update_after_run and self.display_id is not None

    def update(self) -> None:
        """Refresh the output's PNG once, after the run started by ``show`` finished."""
        if not self._update_pending or self.display_id is None or self._closed:
            return
        self._update_pending = False
        from IPython.display import update_display

        data, metadata = self._bundle()
        update_display(data, raw=True, metadata=metadata, display_id=self.display_id)

    def ipython_display(self) -> None:
        """Display for ``display(widget)`` and a cell's value (not twice in one cell)."""
        shell = get_shell()
        if shell is not None and self._skip_in == shell.execution_count:
            self._skip_in = None  # `widget.show(img)` as a cell's last line
            return
        self.publish()

    def close(self) -> None:
        """No more updates."""
        self._closed = True
