"""The Opti-CAM engine (Zhang et al., arXiv 2301.07002): headless, no UI imports.

Opti-CAM weights the ReLU'd feature maps ``A`` (K×h×w) of a target layer with
``softmax(u)`` and optimizes ``u`` with Adam so that the masked image ``x ⊙ S`` keeps (or, in
the destructive convention, ``x ⊙ (1 − S)`` loses) the class score, where
``S = minmax(upsample(Σ_k softmax(u)_k A_k))``. Masking happens in pixel space, before the
model's normalization, so the baseline is a black image. Only ``u`` is optimized; the model is
frozen for the duration of the call and restored afterwards.

The settings are one object (:mod:`~opticam_widgets.engine.config`), the map maths live in
:mod:`~opticam_widgets.engine.maps`, the loop in :mod:`~opticam_widgets.engine.optimize`, its
step rules in :mod:`~opticam_widgets.engine.optimizers`, the result in
:mod:`~opticam_widgets.engine.result`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..inputs.images import as_image_batch
from ..model.bundle import ModelBundle, unpack_model
from ..model.detectors import check_detector_labels, pad_classes
from ..model.features import LayerSpec, model_guard, resolve_layer
from ..model.folding import inner_loop_model
from ..model.layouts import Reshape, check_reshape
from ..support.checks import (
    check_score,
    device_for_model,
    logits_of,
    model_dtype,
    plain_tensor,
    warn_if_flat,
)
from ..support.defaults import CONVENTIONS, SCORES
from ..support.outputs import check_output, float_output, output_rows
from ..support.sizes import check_size
from .classes import model_labels
from .config import SETTING_NAMES, OptiCAMSettings
from .maps import channel_mean_map, saliency_from_weights
from .masking import Masker, prefers_channels_last
from .objectives import FillMasker, mean_output, objective_groups
from .optimize import SCORE_FNS, OptimizationRun, Problem, ScoreFn, initial_logits
from .optimizers import OptimizerSetup, optimizer_factory
from .prelude import Captured, captured
from .result import OptiCAMProgress, OptiCAMResult, ResultBuilder
from .targets import Rows, TargetLike, TopK, as_target, row_classes

__all__ = ["CONVENTIONS", "SCORES", "OptiCAM", "OptiCAMProgress", "OptiCAMResult",
           "OptiCAMSettings", "saliency_from_weights"]


class OptiCAM:
    """Opti-CAM explainer (Zhang et al., arXiv 2301.07002): binds a model, holds its settings.

    Args:
        model: A classifier returning logits (B, classes), a segmentation model or a
            detector (:mod:`~opticam_widgets.engine.targets` says which outputs each target
            kind reads), or a :class:`~opticam_widgets.model.bundle.ModelBundle` (its
            preprocessing and labels are then used).
        target_layer: Module or dotted name whose output gives the feature maps; ``None``
            picks the last spatial map before global pooling.
        preprocess: The model's resize and normalisation, applied after masking (see
            :func:`~opticam_widgets.inputs.images.coerce_preprocess`); default ImageNet
            mean/std at 224×224.
        reshape: The target layer's layout: ``None`` detects it
            (:mod:`~opticam_widgets.model.layouts`); or ``"nchw"``, ``"nhwc"``, ``"tokens"``,
            or a callable ``output -> (B, C, h, w)``.
        device: Device of the model; ``None`` uses the device of its parameters.
        labels: One name per class, so that targets may be label names (default: a bundle's
            labels, else none: indices only).
        settings: An :class:`~opticam_widgets.engine.config.OptiCAMSettings` (default: the
            paper's).
        **overrides: Settings by name, applied over ``settings`` (``max_iter``, ``lr``,
            ``optimizer``, ``nb_premises_at_startup``, ``convention``, ``tol``, ...; see
            :class:`~opticam_widgets.engine.config.OptiCAMSettings`). Read back as
            ``cam.settings`` (and ``cam.max_iter`` etc., read-only).

    Raises:
        TypeError: An unknown setting (the valid ones named) or a value of the wrong type.
        ValueError: A bad value.

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> cam = OptiCAM(resnet18().eval(), max_iter=10)
        >>> result = cam.explain(torch.rand(3, 224, 224))
        >>> result.saliency.shape, cam.layer_name, cam.settings.max_iter
        (torch.Size([1, 224, 224]), 'layer4', 10)
    """

    def __init__(
        self,
        model: nn.Module | ModelBundle,
        target_layer: LayerSpec = None,
        *,
        preprocess: Any = None,
        reshape: Reshape = None,
        device: str | torch.device | None = None,
        labels: Sequence[str] | None = None,
        settings: OptiCAMSettings | None = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and not isinstance(settings, OptiCAMSettings):
            raise TypeError(f"`settings` must be an OptiCAMSettings or None, got "
                            f"{type(settings).__name__}")
        self.settings: OptiCAMSettings = (settings or OptiCAMSettings()).replace(**overrides)
        self.labels = model_labels(model, labels)
        model, self.preprocess = unpack_model(model, preprocess)
        self._classes = check_detector_labels(model, self.labels)  # a detector's class count
        self.model = model
        self.target_layer = target_layer
        self.reshape = check_reshape(reshape)
        self.device = device_for_model(self.model, device)
        self._layer_name: str | None = None
        if target_layer is not None:
            self._layer_name = resolve_layer(model, target_layer)[0]

    # ------------------------------------------------------------------ helpers
    @property
    def layer_name(self) -> str:
        """Name of the target layer (auto-detected with one dummy forward when needed)."""
        if self._layer_name is None:
            size = self.preprocess.size or (224, 224)
            with captured(self.model, self.preprocess, torch.zeros(1, 3, *size), None,
                          reshape=self.reshape, device=self.device) as seen:
                self._layer_name = seen.layer
        return self._layer_name

    def _layer_spec(self) -> LayerSpec:
        return self.target_layer if self._layer_name is None else self._layer_name

    def _model(self, net: nn.Module, x: Tensor, dtype: torch.dtype | None = None,
               precision: str | None = None) -> Tensor:
        """``net`` on an already normalized batch, in its dtype, at the run's precision.

        ``dtype``: the model's, when known already (the inner loop passes it, to skip a walk
        over the parameters per step); ``precision``: the run's (``None``: the settings').
        """
        if (precision or self.settings.precision) == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = net(x.contiguous(memory_format=torch.channels_last))
            return float_output(logits_of(out), detach=False)
        return logits_of(net(x.to(dtype or model_dtype(net))))

    # ------------------------------------------------------------------ public API
    def predict(self, image: Any, target: TargetLike = None) -> Tensor:
        """Class probabilities (B, classes) of the unmasked image(s), on the CPU.

        Softmax; with ``target=MultiLabel()``, the labels' sigmoids; for a segmentation
        model, the softmax averaged over the pixels
        (:meth:`~opticam_widgets.engine.targets.Target.probabilities`).

        Example:
            >>> probs = cam.predict(image)  # doctest: +SKIP
            >>> probs.topk(5)  # doctest: +SKIP
        """
        x = self.preprocess.resize(as_image_batch(image, keep_uint8=True).to(self.device))
        with model_guard(self.model), torch.no_grad():  # works in inference mode too
            output = check_output(self._model(self.model, self.preprocess.normalize(x)),
                                  x.shape[0])
        probs = as_target(target, name="target").probabilities(output).cpu()
        return pad_classes(probs, self._classes)

    def channel_mean(self, image: Any, size: tuple[int, int] | None = None) -> Tensor:
        """Opti-CAM's iteration 0 (uniform channel weights) for each image, one forward pass.

        The same map as column 0 of :meth:`explain` (it does not depend on the class), without
        any optimization: a cheap preview.

        Args:
            image: One image or a batch, as for :meth:`explain`.
            size: ``(H, W)`` of the maps (e.g. the size they are shown at; the maps are those
                at the images' own size, seen at ``size``, as
                :meth:`~opticam_widgets.engine.result.OptiCAMResult.saliency_at` gives them);
                ``None``: the images' own size.

        Returns:
            (B, H, W) float32 CPU maps in [0, 1].

        Example:
            >>> cam.channel_mean(image, size=(112, 112)).shape  # doctest: +SKIP
            torch.Size([1, 112, 112])
        """
        return self.preview(image, size)[1]

    def preview(self, image: Any,
                size: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`predict` and :meth:`channel_mean` at the cost of one: one resize, one forward.

        What a viewer needs to show a new image at once: its classes and the iteration-0 map.

        Args:
            image: One image or a batch, as for :meth:`explain`.
            size: ``(H, W)`` of the maps, as for :meth:`channel_mean`.

        Returns:
            ``(probabilities, maps)``: (B, classes) and (B, H, W) float32 CPU tensors, those
            of :meth:`channel_mean` and :meth:`predict` (computed here at the model's own
            precision, whatever ``precision`` says).

        Example:
            >>> probs, maps = cam.preview(image, size=(112, 112))  # doctest: +SKIP
        """
        pixels = as_image_batch(image, keep_uint8=True)
        full = (int(pixels.shape[-2]), int(pixels.shape[-1]))
        shown = full if size is None else check_size(size)
        with captured(self.model, self.preprocess, pixels, self._layer_spec(),
                      reshape=self.reshape, device=self.device) as seen:
            self._layer_name = seen.layer
        probs = pad_classes(TopK().probabilities(seen.logits).cpu(), self._classes)
        return probs, channel_mean_map(seen.features, shown, normalize_for=full).cpu()

    def explain(
        self,
        image: Any,
        target: TargetLike = None,
        *,
        callback: Callable[[int, OptiCAMProgress], Any] | None = None,
        cancel: threading.Event | None = None,
        **overrides: Any,
    ) -> OptiCAMResult:
        """Optimize a saliency map for each (image, class) pair.

        Args:
            image: One image (path, PIL, ndarray, tensor (3, H, W) in [0, 1]), a batch tensor
                (B, 3, H, W), or a list of same-size images.
            target: What to explain (:mod:`~opticam_widgets.engine.targets`): ``None`` or
                ``TopK(k)`` (the top-1 or top-k classes of each image), a class index or a
                label name (same class for every image; names need ``labels``), a list with
                one class per image, or, for a single image, several classes explained
                together in one batch; ``MultiLabel(...)`` for a sigmoid head,
                ``Region(...)`` for a segmentation model, ``Box(...)`` / ``Detected()`` for
                a detector.
            callback: ``callback(step, progress)`` after scoring iteration 0 and after each
                step; keep it cheap (call ``progress.result()`` only every few steps).
            cancel: A :class:`threading.Event`; when set, the call returns within one
                iteration with ``cancelled=True`` and the best map so far.
            **overrides: Settings for this call only (``dataclasses.replace`` of
                :attr:`settings`), e.g. ``max_iter=20``, ``convention="destructive"``,
                ``tol=None`` (no early stopping in this call).

        Returns:
            An :class:`OptiCAMResult`.

        Raises:
            TypeError: An argument of the wrong kind; an unknown setting (the valid ones named).
            ValueError: A bad value (image shape or range, class out of range, ...).

        Example:
            >>> import torch
            >>> from torchvision.models import resnet18
            >>> cam = OptiCAM(resnet18().eval(), max_iter=5)
            >>> r = cam.explain(torch.rand(3, 64, 64), target=[1, 2], lr=0.1)
            >>> r.saliency.shape, r.target
            (torch.Size([2, 64, 64]), (1, 2))
        """
        start = time.perf_counter()
        settings = self.settings.replace(**overrides)
        _check_hooks(callback, cancel)
        with torch.inference_mode(False):  # the loop needs autograd, even when called in it
            pixels = plain_tensor(as_image_batch(image, keep_uint8=True))
            builder, run, on_model = self._prepare(pixels, target, settings, start)
            on_step = None if callback is None else (
                lambda step: callback(step, builder.progress(run, step)))
            # no copy to run on: the model itself stays frozen for the run
            with model_guard(self.model) if on_model else contextlib.nullcontext():
                run = run.run(settings.max_iter, on_step, cancel)
            warn_if_flat(run.history)
            return builder.result(run)

    # ------------------------------------------------------------------ the steps of a run
    def _prepare(self, pixels: Tensor, target: TargetLike, settings: OptiCAMSettings,
                 start: float) -> tuple[ResultBuilder, OptimizationRun, bool]:
        """Set up one run, one step each: capture, loop model, targets, score, builder, run.

        Returns the result builder, the run, and whether the run uses the model itself (no
        folded copy: ``fold_batchnorm=False`` or a model that cannot be folded).
        """
        with captured(self.model, self.preprocess, pixels, self._layer_spec(),
                      reshape=self.reshape, device=self.device) as seen:
            self._layer_name = seen.layer  # frozen for the capture and the folding check
            net = self._loop_model(seen, settings.fold_batchnorm)
        rows = seen.targets(target, self.labels)
        score_fn = _score_fn(settings.score, seen.logits)
        builder = _builder(pixels, seen, rows, score_fn, settings, start, layer=self.layer_name)
        problem = _problem(self, net, seen, rows, score_fn, settings)
        return builder, _start_run(problem, seen.features, len(rows.index), settings), \
            net is self.model

    def _loop_model(self, seen: Captured, fold_batchnorm: bool) -> nn.Module:
        """The model the loop runs on: the cached folded copy, or the model itself.

        Only a model returning one tensor is folded (its copy is checked on that tensor).
        """
        return inner_loop_model(self.model, seen.inputs, seen.logits) if fold_batchnorm \
            and isinstance(seen.logits, Tensor) else self.model


def _read_only(name: str) -> property:
    return property(lambda cam: getattr(cam.settings, name),
                    doc=f"``settings.{name}`` (read-only; see :class:`OptiCAMSettings`).")


for _name in SETTING_NAMES:  # cam.max_iter, cam.lr, ...: read-only views of cam.settings
    setattr(OptiCAM, _name, _read_only(_name))
OptiCAM.tol = property(lambda cam: cam.settings.stopping[0],
                       doc="The ``tol`` a run stops with: ``settings.stopping`` (read-only).")
OptiCAM.patience = property(lambda cam: cam.settings.stopping[1],
                            doc="The ``patience`` a run stops with (read-only).")


def _check_hooks(callback: Any, cancel: Any) -> None:
    """Refuse a ``callback`` that is not callable and a ``cancel`` that is not an event."""
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable, got {type(callback).__name__}")
    if cancel is not None and not hasattr(cancel, "is_set"):
        raise TypeError(f"`cancel` must be a threading.Event, got {type(cancel).__name__}")


def _score_fn(score: str | Callable[..., Tensor], output: Any) -> ScoreFn:
    """The score function of the settings' ``score``, refused where it means nothing.

    A callable ``(logits, targets)`` gets the rows' output and their classes on its device
    (the rows themselves when they have no classes).
    """
    if score == "probability" and isinstance(output, Tensor) and output.ndim == 2 \
            and output.shape[1] == 1:
        raise ValueError("`score`='probability' is always 1 for a model with one output "
                         "(a softmax over one class); use score='logit'")
    if not callable(score):
        return SCORE_FNS[score]

    def custom(out: Any, rows: Rows) -> Tensor:
        classes = getattr(rows, "classes", None)
        if classes is None or not isinstance(out, Tensor):
            return score(out, rows)
        return score(out, classes.to(out.device))

    return custom


def _builder(pixels: Tensor, seen: Captured, rows: Rows, score_fn: ScoreFn,
             settings: OptiCAMSettings, start: float, layer: str) -> ResultBuilder:
    """What turns the run into results: the inputs, their features, the original scores."""
    count = int(rows.index.shape[0])
    original = check_score(score_fn(output_rows(seen.logits, rows.index), rows), seen.logits,
                           count, grad=False, where="the image itself").detach()
    return ResultBuilder(
        pixels=pixels.detach().cpu(), features=seen.features, target=row_classes(rows),
        image_index=tuple(int(i) for i in rows.index.tolist()), original=original, layer=layer,
        convention=settings.convention,
        score=settings.score if isinstance(settings.score, str) else "custom",
        premises=settings.nb_premises_at_startup, max_iter=settings.max_iter, start=start)


def _problem(cam: OptiCAM, net: nn.Module, seen: Captured, rows: Rows, score_fn: ScoreFn,
             settings: OptiCAMSettings) -> Problem:
    """The run's fixed data: images once, each (image, target) row repeated per start."""
    p, x, convention = settings.nb_premises_at_startup, seen.pixels, settings.convention
    dtype = model_dtype(net)
    repeated = rows.subset(torch.arange(int(rows.index.shape[0])).repeat_interleave(p))
    groups = objective_groups(settings.objective, x, cam.preprocess, settings.seed)
    model, last = (lambda xn: cam._model(net, xn, dtype, settings.precision)), \
        prefers_channels_last(net)
    return Problem(
        model=model if groups is None else mean_output(model, groups),
        features=seen.features, rows=repeated,
        masker=Masker(cam.preprocess, x, convention, last) if groups is None
        else FillMasker(cam.preprocess, x, convention, groups, last),
        score_fn=score_fn, size=(int(x.shape[-2]), int(x.shape[-1])),
        sign=1.0 if convention == "constructive" else -1.0,
        image_of_row=repeated.index.to(cam.device))


def _start_run(problem: Problem, features: Tensor, pairs: int,
               settings: OptiCAMSettings) -> OptimizationRun:
    """The run at its start point, with the settings' optimiser."""
    init = initial_logits(pairs, settings.nb_premises_at_startup, features.shape[1],
                          settings.seed, problem.features.device)
    setup = OptimizerSetup(lr=settings.lr, features=features, size=problem.size,
                           image_of_row=problem.row_images, lr_schedule=settings.lr_schedule,
                           steps=settings.max_iter)
    tol, patience = settings.stopping
    return OptimizationRun.start(problem, init, optimizer_factory(settings.optimizer, setup),
                                 tol, patience, settings.max_batch)
