"""The "compare with" panel: a baseline CAM on the same layer, beside the Opti-CAM map.

Baselines come from :func:`opticam_widgets.baselines.baseline_map` (Grad-CAM, Grad-CAM++ and
Score-CAM need the optional torchcam extra; without it the panel says so instead of failing).
They cannot be cancelled by the library, so :func:`interruptible` makes the model raise
:class:`Cancelled` at its next forward pass once the job's cancel event is set: a Score-CAM
(one forward pass per channel) never holds up a new run or ``widget.close()`` for long.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Iterator
from typing import Any

import ipywidgets as w
import numpy as np
from torch import Tensor, nn

from .canvas import SaliencyCanvas

__all__ = ["Cancelled", "ComparePanel", "compute_baseline", "interruptible"]


class Cancelled(Exception):
    """Raised inside the model's forward pass when a baseline job is cancelled."""


@contextlib.contextmanager
def interruptible(model: nn.Module, cancel: threading.Event | None) -> Iterator[None]:
    """Make ``model`` raise :class:`Cancelled` at its next forward once ``cancel`` is set.

    The hook lives for the block only and is removed however it exits.

    Example:
        >>> import threading
        >>> from torch import nn
        >>> net, stop = nn.Identity(), threading.Event()
        >>> with interruptible(net, stop):
        ...     stop.set()
        ...     try:
        ...         net(1)
        ...     except Cancelled:
        ...         print("cancelled")
        cancelled
        >>> len(net._forward_pre_hooks)
        0
    """
    if cancel is None:
        yield
        return

    def hook(_module: nn.Module, _inputs: Any) -> None:
        if cancel.is_set():
            raise Cancelled("cancelled")

    handle = model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def compute_baseline(method: str, model: nn.Module, pixels: Tensor, target: int, *,
                     layer: str, preprocess: Any,
                     cancel: threading.Event | None = None) -> tuple[np.ndarray, dict]:
    """A baseline map of one image and its faithfulness metrics.

    Args:
        method: A name from :data:`opticam_widgets.baselines.BASELINES`.
        model: The classifier.
        pixels: Image (3, H, W) in [0, 1].
        target: Class index.
        layer: Target layer name (Opti-CAM's, so the comparison is fair).
        preprocess: The model's :class:`~opticam_widgets.images.Preprocess`.
        cancel: Set it to abort at the next forward pass (raises :class:`Cancelled`).

    Returns:
        ``(map (H, W) float32 in [0, 1], metrics dict)``; the dict holds ``"error"`` when the
        metrics could not be computed.

    Raises:
        ImportError: The method needs torchcam and it is not installed.
        Cancelled: ``cancel`` was set.
    """
    from ..baselines import baseline_map

    with interruptible(model, cancel):
        saliency = baseline_map(method, model, pixels, target, target_layer=layer,
                                preprocess=preprocess)
        saliency = saliency.detach().float().cpu()
        try:
            from ..metrics import faithfulness

            metrics = faithfulness(model, pixels[None], saliency[:1], [target],
                                   preprocess=preprocess)
        except Cancelled:
            raise
        except Exception as exc:  # metrics are an extra: say why they are missing
            metrics = {"error": f"{type(exc).__name__}: {exc}"}
    return saliency[0].numpy(), metrics


def metrics_html(metrics: dict | None) -> str:
    """One line "AD x% · AG y%" (escaped HTML), or why the metrics are missing.

    Example:
        >>> metrics_html({"AD": 12.5, "AG": 3.0}).endswith("AD 12.5% · AG 3.0%</span>")
        True
    """
    if not metrics:
        return ""
    if "error" in metrics:
        return ("<span style='color:#a60'>metrics unavailable: "
                f"{html.escape(str(metrics['error']))}</span>")
    return ("<span title='Average Drop (lower is better) and Average Gain (higher is better) "
            f"of the class probability on x⊙S'>AD {metrics['AD']:.1f}% · "
            f"AG {metrics['AG']:.1f}%</span>")


class ComparePanel:
    """Caption + canvas showing a baseline map; hidden while no baseline is chosen.

    Args:
        max_size: Longest side of its canvas in pixels.

    Example:
        >>> panel = ComparePanel(64)
        >>> panel.box.layout.display
        'none'
    """

    def __init__(self, max_size: int) -> None:
        #: The baseline's canvas (its view, opacity and colormap follow the main canvas).
        self.canvas = SaliencyCanvas(max_size)
        #: Method name, layer and metrics, or a message (HTML, escaped).
        self.caption = w.HTML("")
        #: The panel (hidden while the "compare with" choice is None).
        self.box = w.VBox([self.caption, self.canvas.canvas], layout=w.Layout(display="none"))
        #: (image index, class, method) -> (map, metrics).
        self.cache: dict[tuple, tuple[np.ndarray, dict]] = {}

    def set_visible(self, visible: bool) -> None:
        """Show or hide the panel."""
        self.box.layout.display = "" if visible else "none"

    def show_result(self, method: str, layer: str, saliency: np.ndarray,
                    metrics: dict | None) -> None:
        """Draw a baseline map with its caption."""
        self.canvas.set_saliency(saliency)
        self.caption.value = (f"<b>{html.escape(method)}</b> · same layer "
                              f"<code>{html.escape(layer)}</code><br>{metrics_html(metrics)}")

    def show_message(self, message: str, *, color: str = "#555") -> None:
        """Clear the map and show a plain-text message (escaped here)."""
        self.canvas.set_saliency(None)
        self.caption.value = f"<span style='color:{color}'>{html.escape(message)}</span>"

    def close(self) -> None:
        """Close the panel's widgets."""
        from .controls import close_widgets

        self.canvas.close()
        close_widgets(self.caption, self.box)
