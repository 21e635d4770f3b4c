"""The Opti-CAM engine (Zhang et al., arXiv 2301.07002): headless, no UI imports.

Opti-CAM weights the ReLU'd feature maps ``A`` (K×h×w) of a target layer with
``softmax(u)`` and optimizes ``u`` with Adam so that the masked image ``x ⊙ S`` keeps (or, in
the destructive convention, ``x ⊙ (1 − S)`` loses) the class score, where
``S = minmax(upsample(Σ_k softmax(u)_k A_k))``. Masking happens in pixel space, before the
model's normalization, so the baseline is a black image. Only ``u`` is optimized; the model is
frozen for the duration of the call and restored afterwards.

The map maths live in :mod:`~opticam_widgets.engine.maps`, the loop in
:mod:`~opticam_widgets.engine.optimize`, the result in :mod:`~opticam_widgets.engine.result`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..inputs.photos import as_image_batch
from ..model.bundle import ModelBundle, unpack_model
from ..model.features import LayerSpec, model_guard, resolve_layer
from ..model.folding import inner_loop_model
from ..model.layouts import Reshape, check_reshape
from ..support.checks import (
    check_choice,
    check_int,
    check_logits,
    check_positive,
    check_score,
    check_tol,
    device_for_model,
    logits_of,
    model_dtype,
    plain_tensor,
    warn_if_flat,
)
from ..support.defaults import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    DEFAULT_LR,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_ITER,
    DEFAULT_PATIENCE,
    DEFAULT_SCORE,
    LR_SCHEDULES,
    PRECISIONS,
    SCHEDULES,
    SCORES,
)
from ..support.sizes import check_size
from .classes import model_labels
from .maps import channel_mean_map, saliency_from_weights
from .masking import Masker, prefers_channels_last
from .optimize import (
    SCORE_FNS,
    OptimizationRun,
    Problem,
    ScoreFn,
    initial_logits,
)
from .prelude import captured
from .result import OptiCAMProgress, OptiCAMResult, ResultBuilder
from .schedules import schedule_factory
from .settings import UNSET, ExplainSettings, explain_settings
from .targets import TargetLike

__all__ = ["CONVENTIONS", "SCORES", "OptiCAM", "OptiCAMProgress", "OptiCAMResult",
           "saliency_from_weights"]

class OptiCAM:
    """Opti-CAM explainer for a CNN classifier.

    Args:
        model: A classifier returning logits (B, classes), or a
            :class:`~opticam_widgets.model.bundle.ModelBundle` (its preprocessing is then used).
        target_layer: Module or dotted name whose output gives the feature maps; ``None``
            picks the last spatial map before global pooling.
        max_iter: Adam steps per explanation (the seed's default, 100).
        lr: Adam learning rate on the channel weights.
        nb_premises_at_startup: Independent trajectories per (image, class), run in one
            batch; the first starts from equal weights, the others from seeded random
            weights; the best final score wins.
        convention: ``"constructive"`` maximizes the score of ``x ⊙ S``; ``"destructive"``
            minimizes the score of ``x ⊙ (1 − S)``.
        score: ``"logit"`` (the paper), ``"probability"`` (softmax), or a callable
            ``(logits, targets) -> (N,)``.
        preprocess: The model's resize and normalization, applied after masking (see
            :func:`~opticam_widgets.inputs.images.coerce_preprocess`); default ImageNet mean/std at
            224×224.
        device: Device of the model; ``None`` uses the device of its parameters.
        tol: Early stopping: each (image, class) row stops when, over its last ``patience``
            steps, its best score gained at most ``tol × |best|`` (relative), and leaves the
            batch while the others go on. ``None`` (default) runs all steps.
        patience: See ``tol``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast + channels_last input; faster on CPUs
            with AVX-512 BF16 and on GPUs).
        lr_schedule: ``None`` (constant, the paper) or ``"cosine"`` (decays to 0 at
            ``max_iter``).
        seed: Seed of the random starts when ``nb_premises_at_startup > 1``.
        fold_batchnorm: Run the optimization loop on a cached copy of the model with its
            eval-mode BatchNorms folded into the preceding convolutions and its weights
            ``channels_last`` (:mod:`~opticam_widgets.model.folding`): the same function to float
            rounding, checked against the model's own logits, and faster per step (see
            ``benchmarks/results/``). The loop then never touches the model itself, which is
            frozen (eval mode, ``requires_grad=False``) only during the call's one capture
            forward. ``False`` (or a model that cannot be folded) runs the loop on the model
            itself, which then stays frozen for the whole call.
        max_batch: Most rows ((image, class) pairs × trajectories) per forward/backward pass;
            more rows run in batches of this size, so memory is bounded by one batch's
            activations (about ``max_batch`` times one image's forward and backward at the
            model's input size) plus, per row, its channel weights and score history,
            whatever the number of classes. The results are the same as one by one (to float
            rounding).
        reshape: The target layer's layout: ``None`` detects CNN maps, transformer tokens
            and channels-last maps (:mod:`~opticam_widgets.model.layouts`); or ``"nchw"``,
            ``"nhwc"``, ``"tokens"``, or a callable ``output -> (B, C, h, w)``.
        schedule: ``"paper"`` (Adam on the logits, the default) or ``"fast"`` (Adam on the
            map, projected onto channel weights: the paper's quality in far fewer steps on the
            models measured; :mod:`~opticam_widgets.engine.schedules`, ``lr`` scales its step; see
            ``benchmarks/results/time_to_quality.md``).
        labels: One name per class, so that ``explain(target=...)`` takes label names
            (default: a bundle's labels, else none: indices only).

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> cam = OptiCAM(resnet18().eval(), max_iter=10)
        >>> result = cam.explain(torch.rand(3, 224, 224))
        >>> result.saliency.shape, cam.layer_name
        (torch.Size([1, 224, 224]), 'layer4')
    """

    def __init__(
        self,
        model: nn.Module | ModelBundle,
        target_layer: LayerSpec = None,
        max_iter: int = DEFAULT_MAX_ITER,
        lr: float = DEFAULT_LR,
        nb_premises_at_startup: int = 1,
        convention: str = DEFAULT_CONVENTION,
        score: str | ScoreFn = DEFAULT_SCORE,
        preprocess: Any = None,
        device: str | torch.device | None = None,
        *,
        tol: float | None = None,
        patience: int = DEFAULT_PATIENCE,
        precision: str = "fp32",
        lr_schedule: str | None = None,
        seed: int = 0,
        fold_batchnorm: bool = True,
        max_batch: int = DEFAULT_MAX_BATCH,
        reshape: Reshape = None,
        schedule: str = "paper",
        labels: Sequence[str] | None = None,
    ) -> None:
        self.labels = model_labels(model, labels)
        model, self.preprocess = unpack_model(model, preprocess)
        self.model = model
        self.target_layer = target_layer
        self.max_iter = check_int("max_iter", max_iter, 1)
        self.lr = check_positive("lr", lr)
        self.nb_premises_at_startup = check_int("nb_premises_at_startup",
                                                 nb_premises_at_startup, 1)
        self.convention = check_choice("convention", convention, CONVENTIONS)
        if not callable(score):
            check_choice("score", score, SCORES)
        self.score = score
        self.tol, self.patience = check_tol(tol, patience)
        self.precision = check_choice("precision", precision, PRECISIONS)
        self.lr_schedule = check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
        self.seed = check_int("seed", seed, 0)
        if not isinstance(fold_batchnorm, bool):
            raise TypeError(f"`fold_batchnorm` must be True or False, got {fold_batchnorm!r}")
        self.fold_batchnorm = fold_batchnorm
        self.max_batch = check_int("max_batch", max_batch, 1)
        self.reshape = check_reshape(reshape)
        self.schedule = check_choice("schedule", schedule, SCHEDULES)
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

    def _model(self, net: nn.Module, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """``net`` on an already normalized batch, in its dtype, at the requested precision.

        ``dtype``: the model's, when known already (the inner loop passes it, to skip a walk
        over the parameters per step).
        """
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = net(x.contiguous(memory_format=torch.channels_last))
            return logits_of(out).float()
        return logits_of(net(x.to(dtype or model_dtype(net))))

    # ------------------------------------------------------------------ public API
    def predict(self, image: Any) -> Tensor:
        """Class probabilities (B, classes) of the unmasked image(s), on the CPU.

        Example:
            >>> probs = cam.predict(image)  # doctest: +SKIP
            >>> probs.topk(5)  # doctest: +SKIP
        """
        x = self.preprocess.resize(as_image_batch(image).to(self.device))
        with model_guard(self.model), torch.no_grad():  # works in inference mode too
            logits = check_logits(self._model(self.model, self.preprocess.normalize(x)),
                                  x.shape[0])
        return torch.softmax(logits.float(), dim=1).cpu()

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
        pixels = as_image_batch(image)
        full = (int(pixels.shape[-2]), int(pixels.shape[-1]))
        shown = full if size is None else check_size(size)
        with captured(self.model, self.preprocess, pixels, self._layer_spec(),
                      reshape=self.reshape, device=self.device) as seen:
            self._layer_name = seen.layer
        probs = torch.softmax(seen.logits, dim=1).cpu()  # capture checked them (float32)
        return probs, channel_mean_map(seen.features, shown, normalize_for=full).cpu()

    def explain(
        self,
        image: Any,
        target: TargetLike = None,
        *,
        max_iter: int | None = None,
        lr: float | None = None,
        convention: str | None = None,
        callback: Callable[[int, OptiCAMProgress], Any] | None = None,
        cancel: threading.Event | None = None,
        tol: float | None = UNSET,
        patience: int | None = None,
    ) -> OptiCAMResult:
        """Optimize a saliency map for each (image, class) pair.

        Args:
            image: One image (path, PIL, ndarray, tensor (3, H, W) in [0, 1]), a batch tensor
                (B, 3, H, W), or a list of same-size images.
            target: What to explain (:mod:`~opticam_widgets.engine.targets`): ``None`` or
                ``TopK(k)`` (the top-1 or top-k classes of each image), a class index or a
                label name (same class for every image; names need ``labels``), a list with
                one class per image, or, for a single image, several classes explained
                together in one batch.
            max_iter: Overrides the constructor's ``max_iter``.
            lr: Overrides the constructor's ``lr``.
            convention: Overrides the constructor's ``convention``.
            callback: ``callback(step, progress)`` after scoring iteration 0 and after each
                step; keep it cheap (call ``progress.result()`` only every few steps).
            cancel: A :class:`threading.Event`; when set, the call returns within one
                iteration with ``cancelled=True`` and the best map so far.
            tol: Overrides the constructor's early-stopping tolerance (``None`` disables).
            patience: Overrides the constructor's ``patience``.

        Returns:
            An :class:`OptiCAMResult`.

        Raises:
            TypeError: An argument of the wrong kind.
            ValueError: A bad value (image shape or range, class out of range, ...).

        Example:
            >>> import torch
            >>> from torchvision.models import resnet18
            >>> cam = OptiCAM(resnet18().eval(), max_iter=5)
            >>> r = cam.explain(torch.rand(3, 64, 64), target=[1, 2])
            >>> r.saliency.shape, r.target
            (torch.Size([2, 64, 64]), (1, 2))
        """
        start = time.perf_counter()
        settings = explain_settings(self, max_iter, lr, convention, tol, patience, callback,
                                    cancel)
        with torch.inference_mode(False):  # the loop needs autograd, even when called in it
            pixels = plain_tensor(as_image_batch(image))
            builder, run, on_model = self._prepare(pixels, target, settings, start)
            on_step = None if callback is None else (
                lambda step: callback(step, builder.progress(run, step)))
            # no copy to run on: the model itself stays frozen for the run
            with model_guard(self.model) if on_model else contextlib.nullcontext():
                run = run.run(settings.steps, on_step, cancel)
            warn_if_flat(run.history)
            return builder.result(run)

    def _prepare(self, pixels: Tensor, target: TargetLike, settings: ExplainSettings,
                 start: float) -> tuple[ResultBuilder, OptimizationRun, bool]:
        """Capture features and logits (the model frozen only meanwhile), set up the run.

        Returns the result builder, the run, and whether the run uses the model itself (no
        folded copy: ``fold_batchnorm=False`` or a model that cannot be folded).
        """
        with captured(self.model, self.preprocess, pixels, self._layer_spec(),
                      reshape=self.reshape, device=self.device) as seen:
            x, layer, feats, logits = seen.pixels, seen.layer, seen.features, seen.logits
            self._layer_name = layer
            rows = seen.targets(target, self.labels)
            targets, index = rows.classes.to(self.device), rows.index.to(self.device)
            net = (inner_loop_model(self.model, seen.inputs, logits) if self.fold_batchnorm
                   else self.model)
        if self.score == "probability" and logits.shape[1] == 1:
            raise ValueError("`score`='probability' is always 1 for a model with one output "
                             "(a softmax over one class); use score='logit'")
        score_fn = self.score if callable(self.score) else SCORE_FNS[self.score]
        builder = ResultBuilder(
            pixels=pixels.detach().cpu(), features=feats,
            target=tuple(int(t) for t in targets.tolist()),
            image_index=tuple(int(i) for i in index.tolist()),
            original=check_score(score_fn(logits[index], targets), logits, len(targets),
                                 grad=False, where="the image itself").detach(), layer=layer,
            convention=settings.convention,
            score=self.score if isinstance(self.score, str) else "custom",
            premises=self.nb_premises_at_startup, max_iter=settings.steps, start=start)
        problem = _problem(self, net, x, feats, targets, index, score_fn, settings.convention)
        init = initial_logits(targets.shape[0], self.nb_premises_at_startup, feats.shape[1],
                              self.seed, self.device)
        make_optimizer = schedule_factory(self.schedule, settings.lr, feats, problem.size,
                                          problem.image_of_row, self.lr_schedule, settings.steps)
        run = OptimizationRun.start(problem, init, make_optimizer, settings.tol,
                                    settings.patience, self.max_batch)
        return builder, run, net is self.model


def _problem(cam: OptiCAM, net: nn.Module, x: Tensor, feats: Tensor, targets: Tensor,
             index: Tensor, score_fn: ScoreFn, convention: str) -> Problem:
    """The run's fixed data: images once, each (image, class) pair repeated per trajectory."""
    p = cam.nb_premises_at_startup
    dtype = model_dtype(net)
    return Problem(
        model=lambda xn: cam._model(net, xn, dtype), features=feats,
        targets=targets.repeat_interleave(p, dim=0),
        masker=Masker(cam.preprocess, x, convention, prefers_channels_last(net)),
        score_fn=score_fn, size=(int(x.shape[-2]), int(x.shape[-1])),
        sign=1.0 if convention == "constructive" else -1.0,
        image_of_row=index.repeat_interleave(p, dim=0))
