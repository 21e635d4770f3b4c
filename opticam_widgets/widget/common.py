"""What every widget module shares: the draw lock and closing widgets for good.

A leaf module (it imports no other module of the widget), so that the canvas, the score plot,
the controls and the panels can all use it without importing one another.

Example:
    >>> import ipywidgets as w
    >>> box = w.VBox([w.Button()])
    >>> close_widgets(box)
    >>> box.comm is None
    True
"""

from __future__ import annotations

import threading

import ipywidgets as w

__all__ = ["DRAW_LOCK", "close_widgets"]

#: ipycanvas batches draw commands in one process-wide manager (``hold_canvas``); the worker
#: thread and the kernel thread both draw, so every batch is taken under this lock.
DRAW_LOCK = threading.RLock()


def close_widgets(*widgets: w.Widget) -> None:
    """Close widgets, the boxes' children, and each one's layout and style models.

    ``Widget.close()`` alone leaves the ``Layout`` and ``Style`` models (widgets too) open in
    the kernel. Safe on widgets that are already closed.

    Example:
        >>> box = w.VBox([w.Button()])
        >>> close_widgets(box)
        >>> box.comm is None and box.children[0].layout.comm is None
        True
    """
    for widget in widgets:
        close_widgets(*getattr(widget, "children", ()))
        for part in ("layout", "style"):
            sub = getattr(widget, part, None)
            if isinstance(sub, w.Widget):
                sub.close()
        widget.close()
