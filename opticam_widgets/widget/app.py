"""``OptiCAMWidget``: Opti-CAM, live in a notebook.

The widget composes the controls (:mod:`.controls`) and a layered canvas (:mod:`.canvas`) and
drives the headless engine (:class:`~opticam_widgets.explainer.OptiCAM`) in a worker thread
(:mod:`.worker`), so the kernel stays usable while a map is optimized. The iteration-0 map
(the channel-mean CAM) is drawn at once; the map, progress bar, status line and score plot then
refresh a few times per second until the run ends, is stopped, or stops early on a plateau.

Example:
    >>> from opticam_widgets import OptiCAMWidget, sample_image  # doctest: +SKIP
    >>> OptiCAMWidget.default().show(sample_image("chelsea"))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import ipywidgets as w
import numpy as np
from torch import Tensor, nn
from traitlets import Any as AnyTrait
from traitlets import Bool, HasTraits, Int, dlink

from ..bundle import ModelBundle
from ..explainer import OptiCAM, OptiCAMResult
from ..images import to_pixel_tensor
from ..render import as_uint8_image, overlay, to_png_bytes
from .canvas import SaliencyCanvas
from .compare import Cancelled, ComparePanel, compute_baseline, metrics_html
from .controls import (
    BASELINE_NAMES,
    DEFAULT_ITERATIONS,
    DEFAULT_LR,
    Controls,
    build_controls,
    close_widgets,
    layout,
)
from .export import render_view, summary_figure
from .worker import Worker

__all__ = ["OptiCAMWidget"]

#: Early stopping used by the widget (the engine's default is off): stop when the best score
#: gained at most ``tol × |best|`` over the last ``patience`` iterations.
EARLY_STOP_TOL = 1e-3
EARLY_STOP_PATIENCE = 10
#: Seconds between two redraws of the map and score plot during a run (4 per second). When a
#: redraw itself is slow (a loaded machine, a huge image) the interval grows to twice its cost,
#: so that drawing never takes more than a third of the run's time.
MAP_REFRESH_S = 0.25
#: Seconds between two updates of the progress bar and status line during a run.
STATUS_REFRESH_S = 0.1

_Key = tuple  # (image index, class, iterations, lr, convention, early stop)


@dataclass
class _ImageState:
    """One input image with its own predictions and selected class."""

    name: str
    pixels: Tensor  # (3, H, W) in [0, 1]
    rgb: np.ndarray  # uint8 (H, W, 3)
    probs: np.ndarray  # (C,)
    top: list[int]  # top-k class indices
    target: int  # class currently selected for this image
    extra: list[int] = field(default_factory=list)  # classes picked through the search box
    #: iteration-0 map (channel-mean CAM): the same for every class, drawn at once on Run
    iter0: np.ndarray | None = None


@dataclass(frozen=True)
class _Entry:
    """A result shown on the canvas, with its faithfulness metrics when computed."""

    key: _Key
    result: OptiCAMResult
    metrics: dict | None = None
    live: bool = False


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class OptiCAMWidget(HasTraits):
    """Interactive Opti-CAM explanation of a CNN's prediction, for Jupyter.

    Args:
        model: A classifier returning logits (B, classes), or a
            :class:`~opticam_widgets.bundle.ModelBundle` (its preprocessing and labels are
            then used).
        labels: One name per class. Default: the bundle's labels, else the ImageNet names when
            the model has 1000 outputs, else ``"class 0" … "class C-1"``.
        preprocess: The model's resize and normalization (see
            :func:`~opticam_widgets.images.coerce_preprocess`). Default for a bare module:
            ImageNet mean/std at 224×224 (said in the status line).
        target_layer: Module or dotted name of the feature layer; ``None`` auto-detects.
        device: Device of the model (``None``: where its parameters are).
        top_k: How many top predictions the class selector lists.
        max_size: Longest side of the canvas in pixels (the image keeps its aspect ratio).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(8, 3))
        >>> widget = OptiCAMWidget(net, preprocess={"size": None}).set_images(
        ...     torch.rand(3, 32, 32), run=False)
        >>> widget.controls.iterations.value = 5
        >>> widget.run(blocking=True).saliency.shape
        torch.Size([1, 32, 32])
        >>> widget.close()
    """

    #: True while an optimisation runs (in the worker thread or blocking).
    running = Bool(False, read_only=True)
    #: The exception raised by the last failed job (optimisation, baseline, export), or None.
    error = AnyTrait(None, allow_none=True, read_only=True)
    #: Stop a run early when the best score stalls (``tol=1e-3``, ``patience=10``); set False
    #: to always run every iteration.
    early_stop = Bool(True)
    #: Optimisations started by the widget so far (cached results and redraws don't count).
    explain_count = Int(0, read_only=True)

    def __init__(
        self,
        model: nn.Module | ModelBundle,
        *,
        labels: Sequence[str] | None = None,
        preprocess: Any = None,
        target_layer: Any = None,
        device: Any = None,
        top_k: int = 5,
        max_size: int = 448,
    ) -> None:
        super().__init__()
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive int, got {top_k!r}")
        if labels is not None and (isinstance(labels, str) or not isinstance(labels, Sequence)):
            raise TypeError(f"`labels` must be a sequence of class names, got "
                            f"{type(labels).__name__}")
        bundle = model if isinstance(model, ModelBundle) else None
        self.cam = OptiCAM(model, target_layer=target_layer, preprocess=preprocess,
                           device=device, max_iter=DEFAULT_ITERATIONS, lr=DEFAULT_LR,
                           tol=EARLY_STOP_TOL, patience=EARLY_STOP_PATIENCE)
        self.name = bundle.name if bundle is not None else type(self.cam.model).__name__
        self.top_k = top_k
        self.labels: list[str] | None = None
        self._search_index: dict[str, int] = {}
        self._labels_arg = list(labels) if labels is not None else (
            list(bundle.labels) if bundle is not None and bundle.labels is not None else None)
        self._notes: list[str] = []
        if bundle is None and preprocess is None:
            self._notes.append("preprocess not given: ImageNet mean/std, 224×224 input")

        self._baselines = self._baseline_names()
        self.controls: Controls = build_controls(self._baselines)
        self.canvas = SaliencyCanvas(max_size)
        self.compare = ComparePanel(max(16, round(max_size * 0.6)))
        self._root = layout(self.controls, self.canvas.canvas, self.compare.box)

        self._images: list[_ImageState] = []
        self._cache: dict[_Key, _Entry] = {}
        self._entry: _Entry | None = None
        self._worker = Worker()
        self._quiet = 0
        self._run_serial = 0
        self._closed = False
        self._display_id: str | None = None
        self._running_key: _Key | None = None
        self._skip_display_in: int | None = None
        self._update_display_after_run = False
        self._wire()
        self._status("Give an image: <code>widget.show(img)</code>")

    # ------------------------------------------------------------------ construction
    @classmethod
    def default(cls, **kwargs: Any) -> OptiCAMWidget:
        """A widget on the embedded default model (EfficientNet-Lite0, ImageNet, offline).

        Example:
            >>> OptiCAMWidget.default().show(sample_image("chelsea"))  # doctest: +SKIP
        """
        from ..zoo import load_default_model

        return cls(load_default_model(), **kwargs)

    @staticmethod
    def _baseline_names() -> tuple[str, ...]:
        try:
            from ..baselines import BASELINES
        except ImportError:
            return BASELINE_NAMES
        return tuple(BASELINES)

    def _wire(self) -> None:
        c = self.controls
        for target in (self.canvas, self.compare.canvas):
            dlink((c.opacity, "value"), (target, "opacity"))
            dlink((c.colormap, "value"), (target, "cmap"))
            dlink((c.view, "value"), (target, "view"))
        c.class_select.observe(self._on_class, "value")
        c.class_search.observe(self._on_search, "value")
        c.image_select.observe(self._on_image, "value")
        for ctrl in (c.iterations, c.lr, c.convention):
            ctrl.observe(self._on_settings, "value")
        c.compare.observe(self._on_compare, "value")
        c.run_button.on_click(lambda _b: self.run())
        c.stop_button.on_click(lambda _b: self.stop())
        c.save_button.on_click(self._on_save)

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        """Change controls programmatically without triggering their handlers."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    # ------------------------------------------------------------------ images
    def set_images(self, images: Any, *, run: bool = True) -> OptiCAMWidget:
        """Load one image or a list of images (their predictions are computed now).

        Args:
            images: One image (path, PIL, ndarray, tensor (3, H, W) in [0, 1]), a list of
                images (any sizes), or a batch tensor (B, 3, H, W).
            run: Start explaining the first image's top-1 class in the background.

        Returns:
            The widget itself.

        Example:
            >>> widget.set_images([img1, img2], run=False)  # doctest: +SKIP
        """
        self._check_open()
        if isinstance(images, (list, tuple)) or (isinstance(images, Tensor) and images.ndim == 4):
            if len(images) == 0:
                raise ValueError("`images` is empty; give at least one image")
            items = list(images)
            names = [self._image_name(im, i) for i, im in enumerate(items)]
            tensors = [to_pixel_tensor(im, name=f"images[{i}]") for i, im in enumerate(items)]
        else:
            names = [self._image_name(images, 0)]
            tensors = [to_pixel_tensor(images, name="image")]
        self._worker.cancel()
        self._worker.join()
        states = []
        for name, t in zip(names, tensors):
            probs = self.cam.predict(t)[0].double().numpy()
            if self.labels is None or len(self.labels) != probs.shape[0]:
                self._set_labels(probs.shape[0])
            top = [int(i) for i in np.argsort(-probs, kind="stable")[:self.top_k]]
            rgb = as_uint8_image(t.permute(1, 2, 0).numpy())
            states.append(_ImageState(name=name, pixels=t, rgb=rgb, probs=probs, top=top,
                                      target=top[0]))
        self._images = states
        self._cache.clear()
        self.compare.cache.clear()
        self._entry = None
        c = self.controls
        with self._quietly():
            c.image_select.options = [(s.name, i) for i, s in enumerate(states)]
            c.image_select.value = 0
            c.image_select.layout.display = "" if len(states) > 1 else "none"
        self._show_image(0, run=run)
        return self

    @staticmethod
    def _image_name(image: Any, index: int) -> str:
        if isinstance(image, (str, os.PathLike)):
            return Path(image).name
        return f"image {index + 1}"

    def _set_labels(self, classes: int) -> None:
        labels = self._labels_arg
        if labels is not None:
            if len(labels) != classes:
                raise ValueError(f"`labels` has {len(labels)} names but the model has "
                                 f"{classes} outputs; give one name per class")
            self.labels = [str(s) for s in labels]
        elif classes == 1000:
            from ..zoo import imagenet_labels

            self.labels = list(imagenet_labels())
        else:
            self.labels = [f"class {i}" for i in range(classes)]
        self._search_index = {f"{name} ({i})": i for i, name in enumerate(self.labels)}
        with self._quietly():
            self.controls.class_search.options = list(self._search_index)

    def _show_image(self, index: int, *, run: bool) -> None:
        state = self._images[index]
        self.canvas.set_image(state.rgb)
        self.compare.canvas.set_image(state.rgb)
        self._fill_classes(state)
        self._select(run=run)

    def _fill_classes(self, state: _ImageState) -> None:
        labels = self.labels or []
        classes = state.top + [i for i in state.extra if i not in state.top]
        with self._quietly():
            self.controls.class_select.options = [
                (f"{labels[i]} — {state.probs[i]:.1%}", i) for i in classes]
            self.controls.class_select.value = state.target

    # ------------------------------------------------------------------ selection
    @property
    def image_index(self) -> int:
        """Index of the image shown."""
        value = self.controls.image_select.value
        return int(value) if value is not None else 0

    @property
    def target(self) -> int | None:
        """Class index shown (``None`` before an image is given)."""
        return self._images[self.image_index].target if self._images else None

    def _key(self) -> _Key:
        c = self.controls
        lr = float(f"{c.lr.value:.6g}")
        return (self.image_index, self.target, int(c.iterations.value), lr,
                str(c.convention.value), bool(self.early_stop))

    def select_class(self, target: int) -> None:
        """Explain class ``target`` for the current image (cached result or a new run).

        Example:
            >>> widget.select_class(281)  # doctest: +SKIP
        """
        self._check_images()
        if self.labels is None or not 0 <= int(target) < len(self.labels):
            raise ValueError(f"`target` must be a class index in 0..{len(self.labels or []) - 1},"
                             f" got {target!r}")
        state = self._images[self.image_index]
        target = int(target)
        if target not in state.top and target not in state.extra:
            state.extra.append(target)
            self._fill_classes(state)
        self.controls.class_select.value = target
        if state.target != target:  # the value was already shown: no change event
            state.target = target
            self._select(run=True)

    def select_image(self, index: int) -> None:
        """Show image ``index`` (its cached result, or a new run for its selected class)."""
        self._check_images()
        if not 0 <= int(index) < len(self._images):
            raise ValueError(f"`index` must be in 0..{len(self._images) - 1}, got {index!r}")
        self.controls.image_select.value = int(index)

    def _on_class(self, change: dict) -> None:
        if self._quiet or change["new"] is None or not self._images:
            return
        self._images[self.image_index].target = int(change["new"])
        self._select(run=True)

    def _on_search(self, change: dict) -> None:
        index = self._search_index.get(change["new"])
        if self._quiet or index is None or not self._images:
            return
        self.select_class(index)

    def _on_image(self, change: dict) -> None:
        if self._quiet or change["new"] is None or not self._images:
            return
        self._show_image(int(change["new"]), run=True)

    def _on_settings(self, _change: dict) -> None:
        # Sliders never start a run (see controls.py): show the cache or invite to press Run.
        if self._quiet or not self._images:
            return
        entry = self._cache.get(self._key())
        if entry is not None:
            self._show_cached(entry)
        elif not self.running:
            self._status("Settings changed: press <b>Run</b> to optimize with "
                         f"{self.controls.iterations.value} iterations, lr "
                         f"{_fmt(self.controls.lr.value)}, {_esc(self.controls.convention.value)}.")

    def _select(self, *, run: bool) -> None:
        """Show what the controls select: the cached result, or start a run."""
        entry = self._cache.get(self._key())
        if entry is not None:
            self._show_cached(entry)
            return
        self._entry = None
        self.canvas.set_saliency(None)
        self.controls.progress.value = 0
        self.controls.metrics.value = ""
        self.controls.score_plot.reset()
        if run:
            self.run()
        else:
            self._worker.cancel()
            self._status(f"{self._label_html()}: press <b>Run</b> to optimize the map.")
        self._refresh_compare()

    def _show_cached(self, entry: _Entry) -> None:
        """Show a cached result at once; a run still going is cancelled and may not draw."""
        self._run_serial += 1
        self._worker.cancel()
        self._show_entry(entry)
        self._refresh_compare()

    # ------------------------------------------------------------------ running
    def run(self, *, blocking: bool = False, force: bool = False) -> OptiCAMResult | None:
        """Optimize the map for the selected image, class and settings.

        A cached result for the same (image, class, iterations, lr, convention) is shown
        instead unless ``force``; a background run already going for the same key is left
        to finish. Any other run going is cancelled first.

        Args:
            blocking: Run in the caller's thread and return the result; errors are raised
                (for scripts and tests). Otherwise the run goes to a worker thread and errors
                show in the status line and in :attr:`error`.
            force: Optimize again even when the result is cached.

        Returns:
            The result when ``blocking``, else ``None``.

        Raises:
            RuntimeError: No image was given yet.

        Example:
            >>> result = widget.run(blocking=True)  # doctest: +SKIP
        """
        self._check_images()
        key = self._key()
        entry = self._cache.get(key)
        if entry is not None and not force:
            self._show_cached(entry)
            return entry.result if blocking else None
        if not blocking and not force and self._running_key == key and self._worker.busy:
            return None  # already optimizing exactly this
        self._run_serial += 1
        serial = self._run_serial

        def job(cancel: threading.Event) -> None:
            self._optimize(key, serial, cancel)

        if not blocking:
            state = self._images[key[0]]
            if state.iter0 is not None:  # first map on screen before the worker even starts
                self.canvas.inverse = key[4] == "destructive"
                self.canvas.set_saliency(state.iter0)
            self._worker.submit(self._reporting(job), "opticam")
            return None
        try:
            self._worker.run_here(job, "opticam")
        except BaseException as exc:
            self._report_error(exc)
            raise
        return self.result

    def stop(self) -> None:
        """Cancel the running optimisation; the best map so far stays shown."""
        self._worker.cancel()

    def wait(self, timeout: float | None = None) -> OptiCAMResult | None:
        """Wait for background work to end; re-raise the error of a failed run.

        Returns:
            The current result.

        Raises:
            TimeoutError: The work did not end within ``timeout`` seconds.
        """
        if not self._worker.join(timeout):
            raise TimeoutError(f"the widget's worker is still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result

    def _reporting(self, job: Callable[[threading.Event], None]) -> Callable[..., None]:
        def wrapped(cancel: threading.Event) -> None:
            try:
                job(cancel)
            except BaseException as exc:  # shown in the widget and kept in `error`
                self._report_error(exc)

        return wrapped

    def _is_current(self, serial: int, key: _Key) -> bool:
        """Whether a run may draw: it is the latest run and its image and class are shown."""
        return (not self._closed and serial == self._run_serial and bool(self._images)
                and key[:2] == (self.image_index, self.target))

    def _optimize(self, key: _Key, serial: int, cancel: threading.Event) -> None:
        index, target, iterations, lr, convention, early_stop = key
        state = self._images[index]
        c = self.controls
        self.set_trait("error", None)
        self.set_trait("explain_count", self.explain_count + 1)
        self._running_key = key
        self._set_running(True, iterations)
        last = {"map": -np.inf, "status": -np.inf, "cost": 0.0}
        label = self._label_html(target)

        def callback(step: int, progress: Any) -> None:
            if cancel.is_set() or not self._is_current(serial, key):
                return
            now = time.monotonic()
            if step == 0 or now - last["map"] >= max(MAP_REFRESH_S, 2.0 * last["cost"]):
                entry = _Entry(key, progress.result(), None, live=True)
                if step == 0:
                    state.iter0 = entry.result.saliency[0].numpy()
                self._show_entry(entry, live=True, max_iter=progress.max_iter)
                last["map"] = time.monotonic()
                last["cost"] = last["map"] - now
            if step == 0 or now - last["status"] >= STATUS_REFRESH_S:
                last["status"] = now
                c.progress.value = step
                self._status(
                    f"{label} · iteration {step}/{progress.max_iter} · score "
                    f"{_fmt(float(progress.current_score[0]))} (best "
                    f"{_fmt(float(progress.best_score[0]))}) · {progress.elapsed_s:.1f} s")

        try:
            result = self.cam.explain(state.pixels, target, max_iter=iterations, lr=lr,
                                      convention=convention, callback=callback, cancel=cancel,
                                      tol=EARLY_STOP_TOL if early_stop else None,
                                      patience=EARLY_STOP_PATIENCE)
        finally:
            self._running_key = None
            self._set_running(False)
        shown = self._is_current(serial, key) and (not cancel.is_set() or result.cancelled)
        metrics = self._metrics(result) if shown or not result.cancelled else None
        entry = _Entry(key, result, metrics)
        if not result.cancelled:
            self._cache[key] = entry
        if shown:
            self._show_entry(entry)
            if not result.cancelled:
                self._refresh_compare(cancel=cancel)
                self._update_display()

    def _set_running(self, running: bool, iterations: int | None = None) -> None:
        c = self.controls
        if iterations is not None:
            c.progress.max = iterations
            c.progress.value = 0
        c.progress.bar_style = "info" if running else ""
        c.stop_button.disabled = not running
        self.set_trait("running", running)

    def _metrics(self, result: OptiCAMResult) -> dict:
        try:
            from ..metrics import faithfulness

            return faithfulness(self.cam.model, result.images, result.saliency,
                                list(result.target), preprocess=self.cam.preprocess)
        except Exception as exc:  # metrics are an extra: say why they are missing
            return {"error": f"{type(exc).__name__}: {exc}"}

    # ------------------------------------------------------------------ display
    def _show_entry(self, entry: _Entry, *, live: bool = False,
                    max_iter: int | None = None) -> None:
        result = entry.result
        self._entry = entry
        self.canvas.inverse = result.convention == "destructive"
        self.canvas.set_saliency(result.saliency[0].numpy())
        scores = result.scores[0].numpy()
        c = self.controls
        c.score_plot.plot(scores, max_iter or entry.key[2], score_name=result.score,
                          convention=result.convention)
        if live:
            return
        c.metrics.value = metrics_html(entry.metrics)
        iterations = entry.key[2]
        c.progress.max = iterations
        c.progress.value = result.iterations if result.cancelled else iterations
        if result.cancelled:
            how = f"stopped at iteration {result.iterations}/{iterations} (best map so far)"
        elif result.iterations < iterations:
            how = f"converged after {result.iterations} iterations (early stop)"
        else:
            how = f"{result.iterations} iterations"
        self._status(
            f"{self._label_html(result.target[0])} · {how} · score "
            f"{_fmt(float(result.initial_score[0]))} → {_fmt(float(result.final_score[0]))} "
            f"(unmasked {_fmt(float(result.original_score[0]))}, {_esc(result.score)}, "
            f"{_esc(result.convention)}) · {result.elapsed_s:.1f} s")

    def _label_html(self, target: int | None = None) -> str:
        target = self.target if target is None else target
        if target is None or self.labels is None:
            return ""
        return f"<b>{_esc(self.labels[target])}</b> ({target})"

    def _status(self, message: str) -> None:
        """Set the status line; ``message`` is HTML whose dynamic parts are already escaped."""
        notes = "".join(f"<br><span style='color:#777'>{_esc(n)}</span>" for n in self._notes)
        self.controls.status.value = f"<span>{message}</span>{notes}"

    def _report_error(self, exc: BaseException) -> None:
        self.set_trait("error", exc)
        self._status(f"<span style='color:#c00'><b>Error</b>: "
                     f"{_esc(type(exc).__name__)}: {_esc(exc)}</span>")

    # ------------------------------------------------------------------ comparison
    def _on_compare(self, _change: dict) -> None:
        if self._quiet:
            return
        self._refresh_compare()

    def _refresh_compare(self, cancel: threading.Event | None = None) -> None:
        """Show the chosen baseline for the shown image and class (computing it if needed).

        With ``cancel`` (called from a worker job) the baseline is computed in this thread;
        otherwise a job is queued behind the current one (it does not cancel a running
        optimisation; a new run or Stop cancels it).
        """
        method = self.controls.compare.value
        panel = self.compare
        panel.set_visible(method is not None and bool(self._images))
        if method is None or not self._images:
            return
        key = (self.image_index, self.target, method)
        cached = panel.cache.get(key)
        if cached is not None:
            panel.show_result(method, self.cam.layer_name, *cached)
            return
        panel.show_message(f"computing {method}…")
        if cancel is not None:
            self._compute_baseline(key, cancel)
        else:
            self._worker.submit(lambda job_cancel: self._compute_baseline(key, job_cancel),
                                "baseline", cancel_previous=False)

    def _compute_baseline(self, key: tuple, cancel: threading.Event) -> None:
        index, target, method = key
        panel = self.compare

        def shown() -> bool:
            return bool(self._images) and key == (self.image_index, self.target,
                                                  self.controls.compare.value)

        if key not in panel.cache:
            try:
                panel.cache[key] = compute_baseline(
                    method, self.cam.model, self._images[index].pixels, target,
                    layer=self.cam.layer_name, preprocess=self.cam.preprocess, cancel=cancel)
            except Cancelled:
                if shown():
                    panel.show_message(f"{method}: cancelled (choose it again to compute it)")
                return
            except ImportError as exc:
                panel.show_message(f"{method} needs torchcam: pip install "
                                   f"'opticam-widgets[baselines]' ({exc})", color="#a60")
                return
            except Exception as exc:  # shown in the panel and kept in `error`
                self.set_trait("error", exc)
                panel.show_message(f"{method} failed: {type(exc).__name__}: {exc}",
                                   color="#c00")
                return
        if shown():
            panel.show_result(method, self.cam.layer_name, *panel.cache[key])

    # ------------------------------------------------------------------ export
    @property
    def result(self) -> OptiCAMResult | None:
        """The :class:`~opticam_widgets.explainer.OptiCAMResult` shown (live during a run)."""
        entry = self._entry
        return entry.result if entry is not None else None

    @property
    def saliency(self) -> np.ndarray | None:
        """The map shown, float32 (H, W) in [0, 1] at the image's own resolution."""
        result = self.result
        return None if result is None else result.numpy()[0]

    @property
    def metrics(self) -> dict | None:
        """Faithfulness of the map shown (``metrics.faithfulness`` output), when computed."""
        entry = self._entry
        return None if entry is None else entry.metrics

    def overlay_image(self) -> np.ndarray:
        """The overlay at the image's own resolution, uint8 (H, W, 3).

        Uses the current opacity and colormap.

        Raises:
            RuntimeError: No map yet.
        """
        sal = self.saliency
        if sal is None:
            raise RuntimeError("no saliency map yet: run the widget first (`widget.run()`)")
        c = self.controls
        return overlay(self._images[self.image_index].rgb, sal, alpha=float(c.opacity.value),
                       cmap=c.colormap.value)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Save the overlay as a PNG at the image's own resolution.

        Args:
            path: File to write; default ``opticam_<class>.png`` in the working directory.

        Returns:
            The path written.

        Example:
            >>> widget.save("cat.png")  # doctest: +SKIP
        """
        data = to_png_bytes(self.overlay_image())
        if path is None or str(path) == "":
            label = (self.labels or ["map"])[self.target or 0] if self.labels else "map"
            safe = "".join(ch if ch.isalnum() else "_" for ch in label).strip("_") or "map"
            path = f"opticam_{self.image_index + 1}_{safe}.png"
        out = Path(path)
        out.write_bytes(data)
        return out

    def _on_save(self, _button: Any) -> None:
        try:
            out = self.save(self.controls.save_path.value.strip() or None)
        except Exception as exc:
            self._report_error(exc)
            return
        self._status(f"Saved <code>{_esc(out)}</code>")

    def figure(self) -> Any:
        """A matplotlib figure: image, saliency map, overlay and score over iterations.

        Returns:
            A ``matplotlib.figure.Figure`` (no pyplot: it is shown only if you display it).

        Raises:
            RuntimeError: No map yet.

        Example:
            >>> widget.figure().savefig("opticam.pdf")  # doctest: +SKIP
        """
        result = self.result
        if result is None:
            raise RuntimeError("no saliency map yet: run the widget first (`widget.run()`)")
        c = self.controls
        t = result.target[0]
        title = f"{self.labels[t]} ({t})" if self.labels else f"class {t}"
        return summary_figure(self._images[self.image_index].rgb, result, title=title,
                              cmap=c.colormap.value, opacity=float(c.opacity.value))

    # ------------------------------------------------------------------ display
    def show(self, images: Any = None, *, run: bool = True) -> OptiCAMWidget:
        """Display the widget (and load ``images`` first); returns the widget.

        With ``run`` the iteration-0 map (the channel-mean CAM, two forward passes) is computed
        before displaying, so the output's static PNG already shows a map, and the
        optimisation then starts in the background. When it finishes, the output is updated
        once so that a notebook saved afterwards shows the optimized map. The widget is not
        displayed a second time as the cell's value.

        Args:
            images: One image or a list of images (see :meth:`set_images`); ``None`` keeps
                the current ones.
            run: Start explaining the first image's top-1 class at once.

        Example:
            >>> OptiCAMWidget(model).show(img)  # doctest: +SKIP
        """
        if images is not None:
            self.set_images(images, run=False)
        start = run and images is not None
        if start:
            self._preview()
        self._publish()
        shell = _shell()
        self._skip_display_in = shell.execution_count if shell is not None else None
        if start:
            self._update_display_after_run = self._display_id is not None
            self.run()
        return self

    def _preview(self) -> None:
        """Compute and draw the iteration-0 (channel-mean) map in this thread."""
        stop = threading.Event()
        stop.set()  # the engine stops right after scoring iteration 0
        state = self._images[self.image_index]
        result = self.cam.explain(state.pixels, state.target, max_iter=1, cancel=stop,
                                  tol=None)
        state.iter0 = result.saliency[0].numpy()
        self._show_entry(_Entry(self._key(), result, None, live=True), live=True)

    def _publish(self) -> None:
        """Display the widget's mimebundle under this widget's display id."""
        if _shell() is None:  # plain Python: no rich display
            print(repr(self))
            return
        from IPython.display import display

        if self._display_id is None:
            self._display_id = f"opticam-widget-{uuid.uuid4().hex}"
        data, metadata = self._repr_mimebundle_()
        display(data, raw=True, metadata=metadata, display_id=self._display_id)

    def _update_display(self) -> None:
        """Refresh the PNG of the displayed outputs (once, after the run started by show)."""
        if not self._update_display_after_run or self._display_id is None or self._closed:
            return
        self._update_display_after_run = False
        from IPython.display import update_display

        data, metadata = self._repr_mimebundle_()
        update_display(data, raw=True, metadata=metadata, display_id=self._display_id)

    def _ipython_display_(self) -> None:
        """Display the widget: IPython calls this for ``display(widget)`` and a cell's value."""
        shell = _shell()
        if shell is not None and self._skip_display_in == shell.execution_count:
            self._skip_display_in = None  # `widget.show(img)` as a cell's last line
            return
        self._publish()

    def _snapshot(self) -> np.ndarray | None:
        """The canvas view at display size, uint8, or None without an image."""
        rgb = self.canvas._image
        if not self._images or rgb is None:
            return None
        c = self.controls
        return render_view(rgb, self.canvas._saliency, view=c.view.value,
                           opacity=float(c.opacity.value), cmap=c.colormap.value,
                           inverse=self.canvas.inverse)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> tuple[dict, dict]:
        """The live widget view, plus a PNG of the canvas for saved or exported notebooks.

        Returns:
            ``(data, metadata)``: ``application/vnd.jupyter.widget-view+json`` of the root box
            (while open), ``image/png`` (base64) of the canvas view and ``text/plain``.
        """
        data: dict[str, Any] = {}
        if not self._closed:
            data.update(self._root._repr_mimebundle_() or {})
        data["text/plain"] = repr(self)
        metadata: dict[str, Any] = {}
        snap = self._snapshot()
        if snap is not None:
            data["image/png"] = base64.b64encode(to_png_bytes(snap)).decode("ascii")
            metadata["image/png"] = {"width": int(snap.shape[1]), "height": int(snap.shape[0])}
        return data, metadata

    def __repr__(self) -> str:
        layer = self.cam._layer_name or "auto"
        shown = ""
        if self._images and self.labels is not None and self.target is not None:
            shown = f", class={self.labels[self.target]!r}"
        return (f"OptiCAMWidget(model={self.name}, layer={layer}, images={len(self._images)}"
                f"{shown})")

    @property
    def widget(self) -> w.VBox:
        """The root ipywidgets box (to embed the widget in your own layout)."""
        return self._root

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Cancel and join the worker, then close every child widget. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._worker.cancel()
        self._worker.join()
        self.canvas.close()
        self.compare.close()
        close_widgets(*self.controls.widgets(), self._root)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this OptiCAMWidget is closed; create a new one")

    def _check_images(self) -> None:
        self._check_open()
        if not self._images:
            raise RuntimeError("no image yet: call `widget.show(img)` or "
                               "`widget.set_images(img)` first")


def _shell() -> Any:
    """The running IPython shell, or None (plain Python, tests)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return None
    return get_ipython()
