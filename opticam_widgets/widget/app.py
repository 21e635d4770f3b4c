"""``OptiCAMWidget``: Opti-CAM, live in a notebook.

The widget composes the controls (:mod:`.controls`) and a layered canvas (:mod:`.canvas`) and
drives the headless engine (:class:`~opticam_widgets.engine.explainer.OptiCAM`) in a worker thread
(:mod:`.runner`), so the kernel stays usable while a map is optimized. The iteration-0 map
(the channel-mean CAM) is drawn at once; the map, progress bar, status line and score plot then
refresh a few times per second until the run ends, is stopped, or stops early on a plateau.

This module is the front: the public API and the assembly of the parts — :mod:`.state` (images,
selection, cache), :mod:`.selection` (what choosing a class, image or setting does),
:mod:`.runner` (runs), :mod:`.view` (drawing results), :mod:`.compare` (baselines),
:mod:`.display` (IPython output) and :mod:`.export` (files and figures).

Lifecycle: the widget's own controls keep it alive while they are open (a displayed widget
keeps working when its Python name is dropped); :meth:`OptiCAMWidget.close` cancels and joins
its jobs and closes every widget, after which nothing of the package holds it. Jobs still
running when the interpreter exits (a script ending during a run, a kernel shut down) are
cancelled and joined by :mod:`opticam_widgets.support.jobs`, so the process exits cleanly.

Example:
    >>> from opticam_widgets import OptiCAMWidget, sample_image  # doctest: +SKIP
    >>> OptiCAMWidget.default().show(sample_image("chelsea"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import numpy as np
from torch import nn
from traitlets import Any as AnyTrait
from traitlets import Bool, HasTraits, Int

from ..engine.config import AUTO
from ..engine.explainer import OptiCAM
from ..engine.result import OptiCAMResult
from ..engine.targets import ACTIVATIONS
from ..model.bundle import ModelBundle
from ..support.defaults import DEFAULT_LR, DEFAULT_MAX_ITER, WIDGET_TOL
from .assembly import assemble
from .canvas import SaliencyCanvas
from .compare import ComparePanel
from .controls import Controls
from .display import mimebundle
from .exportapi import ExportAPI
from .pointing import check_kind
from .saving import SaveFolder
from .state import (
    ImageState,
    check_labels,
    check_top_k,
    expand_folder,
    image_sources,
    named_pixels,
)

__all__ = ["OptiCAMWidget"]


class OptiCAMWidget(ExportAPI, HasTraits):
    """Interactive Opti-CAM explanation of a CNN's prediction, for Jupyter.

    Args:
        model: A classifier returning logits (B, classes), or a
            :class:`~opticam_widgets.model.bundle.ModelBundle` (its preprocessing and labels are
            then used).
        labels: One name per class. Default: the bundle's labels, else the ImageNet names when
            the model has 1000 outputs, else ``"class 0" … "class C-1"``.
        preprocess: The model's resize and normalization (see
            :func:`~opticam_widgets.inputs.images.coerce_preprocess`). Default for a bare module:
            ImageNet mean/std at 224×224 (said in the status line).
        target_layer: Module or dotted name of the feature layer; ``None`` auto-detects.
        device: Device of the model (``None``: where its parameters are).
        top_k: How many top predictions the class selector lists.
        max_size: Longest side of the canvas in pixels (the image keeps its aspect ratio).
        save_dir: The one folder the **Save PNG** button writes into (the name typed in the
            widget is a plain file name, never a path). ``None``: the working directory (in
            Jupyter, the notebook's folder), except in Voilà, where visitors get no server
            write, only **Download** (an app's author who wants server files names a folder);
            ``False``: no server write anywhere.
        **settings: Opti-CAM's settings (:class:`~opticam_widgets.engine.config.OptiCAMSettings`),
            e.g. ``optimizer="fast"``; the iterations, learning-rate, convention and optimizer
            controls start at them. The widget's own defaults: 100 iterations, lr 0.2, early
            stop on a plateau (``tol=1e-3``, the optimiser's own ``patience``: 10 for the
            paper's, 5 for ``"fast"``); the runs stop with these settings. One more:
            ``activation="sigmoid"`` for a multi-label head: the class list shows each label's
            sigmoid and every class is explained as ``MultiLabel(class)`` (sigmoid metrics).
            And ``kind=``: what the model's output is, when it cannot be read from it:
            ``kind="embedding"`` for a model returning embeddings (B, D) (retrieval, faces),
            which look like logits: the class list is hidden, and each photo is explained by
            its likeness (``Similarity``) to the reference photo picked in the **Reference
            photo** strip (or **Use as reference**). Other kinds (``"classes"``,
            ``"segmentation"``, ``"detection"``, ``"dual"``) are read from the output; a kind
            declared that the first photo's output contradicts is a ``ValueError``.

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

    def __init__(self, model: nn.Module | ModelBundle, *, labels: Sequence[str] | None = None,
                 preprocess: Any = None, target_layer: Any = None, device: Any = None,
                 top_k: int = 5, max_size: int = 448,
                 save_dir: str | os.PathLike | bool | None = None, **settings: Any) -> None:
        super().__init__()
        bundle = model if isinstance(model, ModelBundle) else None
        self._labels_arg = check_labels(labels, bundle.labels if bundle is not None else None)
        self.top_k = check_top_k(top_k)
        activation = settings.pop("activation", "softmax")
        if activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {ACTIVATIONS}, got {activation!r}")
        kind = check_kind(settings.pop("kind", None))
        if activation == "sigmoid" and kind not in (None, "classes"):
            raise ValueError(f"`activation='sigmoid'` is for a classifier's head, not "
                             f"kind={kind!r}; give one of the two")
        widget_defaults = {"max_iter": DEFAULT_MAX_ITER, "lr": DEFAULT_LR, "tol": WIDGET_TOL,
                           "patience": AUTO}
        self.cam = OptiCAM(model, target_layer=target_layer, preprocess=preprocess,
                           device=device, **{**widget_defaults, **settings})
        self.name = bundle.name if bundle is not None else type(self.cam.model).__name__
        notes = ["preprocess not given: ImageNet mean/std, 224×224 input"] if (
            bundle is None and preprocess is None) else []
        folder = SaveFolder.from_option(save_dir)
        self._closed = False
        self._parts = parts = assemble(self, self.cam, max_size, notes,
                                       bundle=self._repr_mimebundle_, text=self.__repr__,
                                       folder=folder, model=self.name)
        parts.pointing.activation, parts.pointing.declared = activation, kind
        #: Every control, by name (tests and users may set their ``value``).
        self.controls: Controls = parts.controls
        #: The main canvas (image and heatmap layers).
        self.canvas: SaliencyCanvas = parts.canvas
        #: The "compare with" panel.
        self.compare: ComparePanel = parts.compare

    @classmethod
    def default(cls, **kwargs: Any) -> OptiCAMWidget:
        """A widget on the embedded default model (EfficientNet-Lite0, ImageNet, offline).

        Example:
            >>> OptiCAMWidget.default().show(sample_image("chelsea"))  # doctest: +SKIP
        """
        from ..model.zoo import load_default_model

        return cls(load_default_model(), **kwargs)

    # ------------------------------------------------------------------ images and classes
    def set_images(self, images: Any, *, run: bool = True) -> OptiCAMWidget:
        """Load one image or a list of images (their predictions are computed now).

        Args:
            images: One image (path, PIL, ndarray, tensor (3, H, W) in [0, 1]), a list of
                images (any sizes), a batch tensor (B, 3, H, W), a dict ``{name: image}``
                (named in the selector), or a folder path (its photos, in name order, become
                the image selector).
            run: Start explaining the first image's top-1 class in the background.

        Returns:
            The widget itself.

        Example:
            >>> widget.set_images([img1, img2], run=False)  # doctest: +SKIP
        """
        self._check_open()
        images = expand_folder(images)  # a folder: its photos, in name order
        self._parts.selection.load_images(named_pixels(images), self._labels_arg, self.top_k,
                                          run=run, sources=image_sources(images))
        return self

    @property
    def labels(self) -> list[str] | None:
        """The class names (``None`` before the first image gives the number of classes)."""
        names = self._parts.view.names
        return names.names if names is not None else None

    @property
    def images(self) -> list[ImageState]:
        """The loaded images with their predictions (read-only view, for inspection)."""
        return list(self._parts.session.images)

    @property
    def image_index(self) -> int:
        """Index of the image shown."""
        return self._parts.session.index

    @property
    def target(self) -> int | None:
        """Class index shown (``None`` before an image is given)."""
        return self._parts.session.target

    def select_class(self, target: Any) -> None:
        """Explain class ``target`` for the current image (cached result or a new run).

        ``target`` is one class in the target grammar
        (:mod:`~opticam_widgets.engine.targets`): a class index, a label name (exact, then
        case-insensitive), ``ClassIndex``/``Label``, or ``None``/``TopK()`` for the image's
        top class; a float or a bool is refused (``TypeError``), an unknown name or index, or
        a target of several classes too (``ValueError``).

        Example:
            >>> widget.select_class(281)  # doctest: +SKIP
            >>> widget.select_class("tabby")  # doctest: +SKIP
        """
        self._check_open(images=True)
        self._parts.selection.select_class(target)

    def select_image(self, index: int) -> None:
        """Show image ``index`` (its cached result, or a new run for its selected class)."""
        self._check_open(images=True)
        self._parts.selection.select_image(index)

    # ------------------------------------------------------------------ running
    def run(self, *, blocking: bool = False, force: bool = False) -> OptiCAMResult | None:
        """Optimize the map for the selected image, class and settings.

        A cached result for the same (image, class, iterations, lr, convention) is shown
        instead unless ``force``; a background run already going for the same key is left
        to finish. Any other run going is cancelled first.

        Args:
            blocking: Run in the caller's thread and return the result; errors are raised
                (for scripts and tests), and Ctrl-C stops the run within one iteration and
                raises ``KeyboardInterrupt``. Otherwise the run goes to a worker thread and
                errors show in the status line and in :attr:`error`.
            force: Optimize again even when the result is cached.

        Returns:
            The result when ``blocking``, else ``None``.

        Raises:
            RuntimeError: No image was given yet.

        Example:
            >>> result = widget.run(blocking=True)  # doctest: +SKIP
        """
        self._check_open(images=True)
        return self._parts.selection.run(blocking=blocking, force=force)

    def stop(self) -> None:
        """Cancel the running optimisation; the best map so far stays shown."""
        self._parts.runner.cancel()

    def wait(self, timeout: float | None = None) -> OptiCAMResult | None:
        """Wait for background work to end; re-raise the error of a failed run.

        Ctrl-C stops the background work (within one iteration) and raises KeyboardInterrupt.

        Returns:
            The current result.

        Raises:
            TimeoutError: The work did not end within ``timeout`` seconds.
        """
        if not self._parts.runner.join(timeout):
            raise TimeoutError(f"the widget's worker is still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result

    # ------------------------------------------------------------------ results and export
    @property
    def result(self) -> OptiCAMResult | None:
        """The :class:`~opticam_widgets.engine.result.OptiCAMResult` shown (live during a run)."""
        entry = self._parts.session.shown
        return entry.result if entry is not None else None

    @property
    def saliency(self) -> np.ndarray | None:
        """The map shown, float32 (H, W) in [0, 1] at the image's own resolution."""
        result = self.result
        return None if result is None else result.numpy()[0]

    @property
    def metrics(self) -> dict | None:
        """Faithfulness of the map shown (``metrics.faithfulness`` output), when computed."""
        entry = self._parts.session.shown
        return None if entry is None else entry.metrics

    # ------------------------------------------------------------------ display
    def show(self, images: Any = None, *, run: bool = True) -> OptiCAMWidget:
        """Display the widget (and load ``images`` first); returns the widget.

        With ``run`` the iteration-0 map (channel-mean CAM, one forward pass) is drawn before
        displaying, then the optimisation runs in the background. The output's saved picture
        follows the screen (see :mod:`~opticam_widgets.widget.display`). The widget is not
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
            self._parts.runner.preview(self._parts.selection.key())
        self._parts.display.publish()
        self._parts.display.shown()
        if start:
            self.run()
        return self

    def adopt_picture(self, display_id: str) -> None:
        """Keep the saved picture in the output ``display_id`` (shown by an app's loader).

        For an app that shows the widget inside its own box (see
        :class:`~opticam_widgets.widget.launch.AppLoader`).
        """
        self._parts.display.adopt(display_id)

    def _ipython_display_(self) -> None:
        """Display the widget: IPython calls this for ``display(widget)`` and a cell's value."""
        self._parts.display.ipython_display()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **kwargs: Any) -> tuple[dict, dict]:
        """The live widget view, plus a PNG of the canvas for saved or exported notebooks.

        Returns:
            ``(data, metadata)``: ``application/vnd.jupyter.widget-view+json`` of the root box
            (while open), ``image/png`` (base64) of the canvas view and ``text/plain``.
        """
        picture = self.canvas.to_array() if self._parts.session.images else None
        return mimebundle(None if self._closed else self._parts.root, repr(self), picture)

    def __repr__(self) -> str:
        labels, target = self.labels, self.target
        shown = f", class={labels[target]!r}" if labels and target is not None else ""
        return (f"OptiCAMWidget(model={self.name}, layer={self._parts.session.layer or 'auto'}, "
                f"images={len(self._parts.session.images)}{shown})")

    @property
    def widget(self) -> w.VBox:
        """The root ipywidgets box (to embed the widget in your own layout)."""
        return self._parts.root

    def close(self) -> None:
        """Cancel and join the background jobs, then close every child widget (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._parts.close()

    def _check_open(self, *, images: bool = False) -> None:
        if self._closed:
            raise RuntimeError("this OptiCAMWidget is closed; create a new one")
        if images:
            self._parts.session.check_images()
