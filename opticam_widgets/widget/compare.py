"""The "compare with" panel: a baseline CAM on the same layer, beside the Opti-CAM map.

Baselines come from :func:`opticam_widgets.evaluation.baselines.baseline_map` (torchcam's and
pytorch-grad-cam's CAMs need the optional extras; without them the panel says so instead of
failing).
They cannot be cancelled by the library, so :func:`interruptible` makes the model raise
:class:`Cancelled` at its next forward pass once the job's cancel event is set: a Score-CAM
(one forward pass per channel) never holds up a new run or ``widget.close()`` for long.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import numpy as np
from torch import Tensor, nn

from ..engine.explainer import OptiCAM
from ..support.hooks import own_hook
from ..support.jobs import Worker, exiting
from .canvas import SaliencyCanvas
from .common import close_widgets
from .messages import caption_html, metrics_html, note_html
from .state import Session

__all__ = ["BaselineKey", "Cancelled", "ComparePanel", "Comparison", "compute_baseline",
           "interruptible"]


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

    handle = model.register_forward_pre_hook(own_hook(hook))
    try:
        yield
    finally:
        handle.remove()


def compute_baseline(method: str, model: nn.Module, pixels: Tensor, target: int, *,
                     layer: str, preprocess: Any,
                     cancel: threading.Event | None = None) -> tuple[np.ndarray, dict]:
    """A baseline map of one image and its faithfulness metrics.

    Args:
        method: A name from :data:`opticam_widgets.evaluation.baselines.BASELINES`.
        model: The classifier.
        pixels: Image (3, H, W) in [0, 1].
        target: Class index.
        layer: Target layer name (Opti-CAM's, so the comparison is fair).
        preprocess: The model's :class:`~opticam_widgets.inputs.preprocess.Preprocess`.
        cancel: Set it to abort at the next forward pass (raises :class:`Cancelled`).

    Returns:
        ``(map float32 in [0, 1], metrics dict)``; the dict holds ``"error"`` when the
        metrics could not be computed. With a fixed model input size the map and the metrics
        are computed on the image resized to it, as the model sees it and as the widget
        computes Opti-CAM's metrics (a fair comparison, and no full-size float copy of a big
        photo); the canvas scales the map to the drawing.

    Raises:
        ImportError: The method needs torchcam and it is not installed.
        Cancelled: ``cancel`` was set.
    """
    from ..evaluation.baselines import baseline_map

    if getattr(preprocess, "size", None) is not None:
        pixels = preprocess.resize(pixels[None])[0]
    with interruptible(model, cancel):
        saliency = baseline_map(method, model, pixels, target, target_layer=layer,
                                preprocess=preprocess)
        saliency = saliency.detach().float().cpu()
        try:
            from ..evaluation.metrics import faithfulness

            metrics = faithfulness(model, pixels[None], saliency[:1], [target],
                                   preprocess=preprocess)
        except Cancelled:
            raise
        except Exception as exc:  # metrics are an extra: say why they are missing
            metrics = {"error": f"{type(exc).__name__}: {exc}"}
    return saliency[0].numpy(), metrics


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

    def set_visible(self, visible: bool) -> None:
        """Show or hide the panel."""
        self.box.layout.display = "" if visible else "none"

    def show_result(self, method: str, layer: str, saliency: np.ndarray,
                    metrics: dict | None) -> None:
        """Draw a baseline map with its caption."""
        self.canvas.set_saliency(saliency)
        self.caption.value = caption_html(method, layer, metrics)

    def show_message(self, message: str, *, tone: str = "muted") -> None:
        """Clear the map and show a plain-text message (escaped here) in a message tone."""
        self.canvas.set_saliency(None)
        self.caption.value = note_html(message, tone)

    def close(self) -> None:
        """Close the panel's widgets."""
        self.canvas.close()
        close_widgets(self.caption, self.box)


@dataclass(frozen=True)
class BaselineKey:
    """What a baseline map depends on."""

    #: Index of the image.
    image: int
    #: Class index, or the target pointed at (``Session.chosen``).
    target: Any
    #: Baseline method name.
    method: str


class Comparison:
    """Which baseline the panel shows, the baselines computed so far, and computing them.

    Baselines are computed in a job of the widget's worker, queued behind the current one: a
    comparison never cancels a running optimisation, while a new run or Stop cancels it.

    Args:
        panel: Where the baseline is drawn.
        cam: The widget's engine (model, preprocessing and target layer).
        worker: The widget's worker (one job at a time uses the model).
        session: The widget's images and selection.
        on_error: Called with the exception of a failed baseline.
        table: Where the metrics table goes (Opti-CAM's column, then the baseline's).
    """

    def __init__(self, panel: ComparePanel, cam: OptiCAM, worker: Worker, session: Session,
                 on_error: Callable[[BaseException], None], table: w.HTML | None = None) -> None:
        self.panel = panel
        self.table = table
        self.cam = cam
        self.worker = worker
        self.session = session
        self.on_error = on_error
        #: Method chosen in the "compare with" control, or ``None``.
        self.method: str | None = None
        #: Baselines computed so far: key -> (map, metrics).
        self.cache: dict[BaselineKey, tuple[np.ndarray, dict]] = {}
        #: Called with the job's cancel event after a baseline was computed and shown.
        self.on_computed: Callable[[threading.Event], None] | None = None

    def wanted(self) -> BaselineKey | None:
        """The baseline to show now, or ``None`` (no method chosen, or no image)."""
        if self.method is None or not self.session.images:
            return None
        return BaselineKey(self.session.index, self.session.chosen, self.method)

    def refresh(self, cancel: threading.Event | None = None) -> None:
        """Show the wanted baseline, computing it when needed.

        With ``cancel`` (called from a worker job) it is computed in this thread; otherwise a
        job is queued behind the current one.
        """
        key = self.wanted()
        self.panel.set_visible(key is not None)
        self.tabulate(key)
        if key is None:
            return
        if key in self.cache:
            self.panel.show_result(key.method, self.cam.layer_name, *self.cache[key])
            return
        self.panel.show_message(f"computing {key.method}…")
        if cancel is not None:
            self._compute(key, cancel)
        else:
            self.worker.submit(lambda job_cancel: self._compute(key, job_cancel), "baseline",
                               cancel_previous=False, on_skip=lambda: self._cancelled(key))

    def tabulate(self, key: BaselineKey | None) -> None:
        """One metrics table: the map shown's column, and the baseline's when it is known."""
        if self.table is None or exiting():
            return
        entry = self.session.shown if self.session.images else None
        ours = entry.metrics if entry is not None else None
        others = [(key.method, self.cache[key][1])] if key in self.cache else []
        self.table.value = metrics_html(ours, others)

    def _cancelled(self, key: BaselineKey) -> None:
        """Say that the baseline was cancelled (before or while it was computed)."""
        if key == self.wanted() and not exiting():
            self.panel.show_message(f"{key.method}: cancelled (choose it again to compute it)")

    def _compute(self, key: BaselineKey, cancel: threading.Event) -> None:
        panel, method = self.panel, key.method
        try:
            self.cache[key] = compute_baseline(
                method, self.cam.model, self.session.images[key.image].pixels, key.target,
                layer=self.cam.layer_name, preprocess=self.cam.preprocess, cancel=cancel)
        except Cancelled:
            self._cancelled(key)
            return
        except ImportError as exc:
            pgc = "grad-cam" in str(exc) or "pytorch_grad_cam" in str(exc)
            needs, extra = ("pytorch-grad-cam", "yardsticks") if pgc else ("torchcam",
                                                                          "baselines")
            panel.show_message(f"{method} needs {needs}: pip install "
                               f"'opticam-widgets[{extra}]' ({exc})", tone="warning")
            return
        except Exception as exc:  # shown in the panel and kept in the widget's `error`
            self.on_error(exc)
            panel.show_message(f"{method} failed: {type(exc).__name__}: {exc}", tone="error")
            return
        if key == self.wanted():
            panel.show_result(method, self.cam.layer_name, *self.cache[key])
            self.tabulate(key)
            if self.on_computed is not None:
                self.on_computed(cancel)
