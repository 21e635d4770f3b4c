"""The Opti-CAM engine (Zhang et al., arXiv 2301.07002): headless, no UI imports.

Opti-CAM weights the ReLU'd feature maps ``A`` (K×h×w) of a target layer with
``softmax(u)`` and optimizes ``u`` with Adam so that the masked image ``x ⊙ S`` keeps (or, in
the destructive convention, ``x ⊙ (1 − S)`` loses) the class score, where
``S = minmax(upsample(Σ_k softmax(u)_k A_k))``. Masking happens in pixel space, before the
model's normalization, so the baseline is a black image. Only ``u`` is optimized; the model is
frozen for the duration of the call and restored afterwards.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bundle import ModelBundle, unpack_model
from .fastmodel import inner_loop_model
from .features import LayerSpec, capture, model_guard
from .images import as_pixel_batch
from .targets import Target, check_int, resolve_targets

__all__ = ["CONVENTIONS", "SCORES", "OptiCAM", "OptiCAMProgress", "OptiCAMResult"]

#: Accepted values of ``convention``.
CONVENTIONS = ("constructive", "destructive")
#: Accepted names of ``score`` (a callable ``(logits, targets) -> (N,)`` is accepted too).
SCORES = ("logit", "probability")
PRECISIONS = ("fp32", "bf16")
LR_SCHEDULES = (None, "cosine")

ScoreFn = Callable[[Tensor, Tensor], Tensor]


def _score_logit(logits: Tensor, targets: Tensor) -> Tensor:
    return logits.gather(1, targets[:, None])[:, 0]


def _score_probability(logits: Tensor, targets: Tensor) -> Tensor:
    return torch.softmax(logits, dim=1).gather(1, targets[:, None])[:, 0]


_SCORE_FNS: dict[str, ScoreFn] = {"logit": _score_logit, "probability": _score_probability}


@functools.lru_cache(maxsize=32)
def _resize_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(n_out, n_in) matrix of 1-D linear resizing, equal to ``F.interpolate`` (no corners)."""
    eye = torch.eye(n_in, dtype=dtype, device=device)[None]
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[0].T.contiguous()


@functools.lru_cache(maxsize=32)
def _extreme_rows(n_in: int, n_out: int) -> tuple[int, ...]:
    """Rows of the resize matrix where any resized signal reaches its minimum and maximum.

    Each output sample mixes two neighbouring inputs, ``(1 − t)·a + t·b``: linear in ``t``, so
    over the samples that mix the same pair the extremes sit at the smallest and the largest
    ``t``. Keeping those two rows per pair (≈ 2·n_in of n_out rows) keeps the signal's min and
    max. In 2-D, bilinear resizing is separable, so the min and max of the full map are those of
    the sub-grid of extreme rows × extreme columns.
    """
    r = _resize_matrix(n_in, n_out, torch.float64, torch.device("cpu"))
    groups: dict[tuple[int, ...], list[tuple[float, int]]] = {}
    for i in range(n_out):
        cols = tuple(int(c) for c in torch.nonzero(r[i]).flatten())
        groups.setdefault(cols, []).append((float(r[i, cols[-1]]), i))
    ends = {min(g)[1] for g in groups.values()} | {max(g)[1] for g in groups.values()}
    return tuple(sorted(ends))


@functools.lru_cache(maxsize=32)
def _resize_operators(h: int, w: int, height: int, width: int, dtype: torch.dtype,
                      device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``Rh``, ``Rwᵀ`` and their extreme-row restrictions (see :func:`_extreme_rows`)."""
    rh = _resize_matrix(h, height, dtype, device)
    rw = _resize_matrix(w, width, dtype, device)
    eh = rh[list(_extreme_rows(h, height))].contiguous()
    ew = rw[list(_extreme_rows(w, width))].T.contiguous()
    return rh, rw.T.contiguous(), eh, ew


def saliency_from_weights(weights: Tensor, features: Tensor, size: tuple[int, int]) -> Tensor:
    """Opti-CAM's map: ``minmax(upsample(Σ_k w_k A_k))`` per row, shape (N, 1, H, W).

    The bilinear upsampling (``align_corners=False``, as ``F.interpolate``) is done as two
    small matmuls ``Rh · cam · Rwᵀ``, and the min-max normalization is applied to the small map
    before upsampling: the rows of ``Rh`` and ``Rw`` sum to one, so resizing commutes with the
    affine normalization, and the full map's min and max are read from a ≈ 2h × 2w sub-grid
    that provably holds them (:func:`_extreme_rows`). The same values as normalizing the
    full-size map (to float rounding), with no reduction, subtraction or scaling over H × W
    pixels, forward or backward. A constant map (max == min, e.g. all features zero) becomes
    all ones, i.e. "keep the whole image", instead of a division by zero.

    Example:
        >>> import torch
        >>> A = torch.zeros(1, 2, 2, 2); A[0, 0, 0, 0] = 1.0
        >>> saliency_from_weights(torch.tensor([[0.5, 0.5]]), A, (2, 2))[0, 0]
        tensor([[1., 0.],
                [0., 0.]])
    """
    cam = torch.einsum("nk,nkhw->nhw", weights, features)
    resize = tuple(cam.shape[-2:]) != tuple(size)
    if resize:
        rh, rwt, eh, ewt = _resize_operators(cam.shape[-2], cam.shape[-1], int(size[0]),
                                             int(size[1]), cam.dtype, cam.device)
        probe = (eh @ cam @ ewt).flatten(1)
    else:
        probe = cam.flatten(1)
    lo = probe.min(dim=1).values.view(-1, 1, 1)
    span = probe.max(dim=1).values.view(-1, 1, 1) - lo
    ok = span > 1e-12
    if bool(ok.all()):  # the usual case: no select (the loop syncs every step anyway)
        cam = (cam - lo) * span.reciprocal()  # a multiply, not a divide
    else:
        cam = torch.where(ok, (cam - lo) * torch.where(ok, span, 1.0).reciprocal(), 1.0)
    if resize:
        cam = rh @ cam @ rwt
    return cam.unsqueeze(1)


def _prefers_channels_last(net: nn.Module) -> bool:
    """Whether the model's first 4-D weight is laid out ``channels_last``."""
    for p in net.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def _adam(u: Tensor, lr: float) -> torch.optim.Adam:
    """Adam on the channel weights; the fused kernel when this PyTorch has it for the device."""
    try:
        return torch.optim.Adam([u], lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam([u], lr=lr)


@dataclass(frozen=True)
class OptiCAMResult:
    """The outcome of :meth:`OptiCAM.explain` for N (image, class) pairs; tensors on the CPU.

    Example:
        >>> result = cam.explain(image)  # doctest: +SKIP
        >>> result.saliency.shape, result.final_score >= result.initial_score  # doctest: +SKIP

    Attributes:
        saliency: (N, H, W) float32 maps in [0, 1] at the input image's resolution; high values
            mark what matters for the class, in both conventions.
        weights: (N, K) softmax channel weights of the returned map.
        target: Class index of each row.
        image_index: Index of the input image each row explains.
        scores: (N, T + 1) score of the masked image at iterations 0..T (column 0: the
            channel-mean map, uniform weights).
        initial_score: (N,) score at iteration 0.
        final_score: (N,) score of the returned map (the best iterate: highest for
            constructive, lowest for destructive).
        original_score: (N,) score of the unmasked image.
        convention: ``"constructive"`` or ``"destructive"``.
        score: ``"logit"``, ``"probability"`` or ``"custom"``.
        layer: Name of the target layer.
        iterations: Adam steps taken.
        elapsed_s: Wall time of the call in seconds.
        cancelled: True when stopped through ``cancel``; the map is the best so far.
        images: (N, 3, H, W) the pixel images in [0, 1] each row explains.
    """

    saliency: Tensor
    weights: Tensor
    target: tuple[int, ...]
    image_index: tuple[int, ...]
    scores: Tensor
    initial_score: Tensor
    final_score: Tensor
    original_score: Tensor
    convention: str
    score: str
    layer: str
    iterations: int
    elapsed_s: float
    cancelled: bool
    images: Tensor = field(repr=False)

    def __len__(self) -> int:
        return int(self.saliency.shape[0])

    def numpy(self) -> np.ndarray:
        """The maps as a float32 ndarray (N, H, W) in [0, 1]."""
        return self.saliency.numpy().astype(np.float32, copy=False)

    def masked_input(self, inverse: bool = False) -> Tensor:
        """What the model saw: ``x ⊙ S`` (N, 3, H, W), or ``x ⊙ (1 − S)`` with ``inverse``."""
        s = self.saliency[:, None]
        return self.images * ((1.0 - s) if inverse else s)


@dataclass(frozen=True)
class OptiCAMProgress:
    """State of a running optimization, handed to ``callback(step, progress)``.

    Cheap to build every step; :meth:`result` computes the full-resolution map on demand.

    Attributes:
        step: Iterations done (0: the channel-mean map has just been scored).
        max_iter: Iterations requested.
        scores: (N, step + 1) score history.
        current_score: (N,) score at this step.
        best_score: (N,) best score so far.
        elapsed_s: Seconds since the call started.
    """

    step: int
    max_iter: int
    scores: Tensor
    current_score: Tensor
    best_score: Tensor
    elapsed_s: float
    _make_result: Callable[[], OptiCAMResult] = field(repr=False)

    def result(self) -> OptiCAMResult:
        """The best map so far as an :class:`OptiCAMResult` (computes it now)."""
        return self._make_result()


def _check_lr(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"`lr` must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`lr` must be a positive finite number, got {value}")
    return float(value)


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def _check_tol(tol: Any, patience: Any) -> tuple[float | None, int]:
    patience = check_int("patience", patience, 1)
    if tol is None:
        return None, patience
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"`tol` must be None or a number >= 0, got {tol!r}")
    return float(tol), patience


_UNSET: Any = object()


class OptiCAM:
    """Opti-CAM explainer for a CNN classifier.

    Args:
        model: A classifier returning logits (B, classes), or a
            :class:`~opticam_widgets.bundle.ModelBundle` (its preprocessing is then used).
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
            :func:`~opticam_widgets.images.coerce_preprocess`); default ImageNet mean/std at
            224×224.
        device: Device of the model; ``None`` uses the device of its parameters.
        tol: Early stopping: stop when, over the last ``patience`` steps, the best score
            gained at most ``tol × |best|`` (relative). ``None`` (default) runs all steps.
        patience: See ``tol``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast + channels_last input; faster on CPUs
            with AVX-512 BF16 and on GPUs).
        lr_schedule: ``None`` (constant, the paper) or ``"cosine"`` (decays to 0 at
            ``max_iter``).
        seed: Seed of the random starts when ``nb_premises_at_startup > 1``.
        fold_batchnorm: Run the optimization loop on a cached copy of the model with its
            eval-mode BatchNorms folded into the preceding convolutions and its weights
            ``channels_last`` (:mod:`~opticam_widgets.fastmodel`): the same function to float
            rounding, checked against the model's own logits, ≈ 1.2× faster per step on
            ResNet-50 and Lite0 (CPU). ``False`` runs the model as given and keeps no copy in
            memory.

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
        max_iter: int = 100,
        lr: float = 0.2,
        nb_premises_at_startup: int = 1,
        convention: str = "constructive",
        score: str | ScoreFn = "logit",
        preprocess: Any = None,
        device: str | torch.device | None = None,
        *,
        tol: float | None = None,
        patience: int = 10,
        precision: str = "fp32",
        lr_schedule: str | None = None,
        seed: int = 0,
        fold_batchnorm: bool = True,
    ) -> None:
        model, self.preprocess = unpack_model(model, preprocess)
        self.model = model
        self.target_layer = target_layer
        self.max_iter = check_int("max_iter", max_iter, 1)
        self.lr = _check_lr(lr)
        self.nb_premises_at_startup = check_int("nb_premises_at_startup",
                                                 nb_premises_at_startup, 1)
        self.convention = _check_choice("convention", convention, CONVENTIONS)
        if not callable(score):
            _check_choice("score", score, SCORES)
        self.score = score
        self.tol, self.patience = _check_tol(tol, patience)
        self.precision = _check_choice("precision", precision, PRECISIONS)
        self.lr_schedule = _check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
        self.seed = check_int("seed", seed, 0)
        if not isinstance(fold_batchnorm, bool):
            raise TypeError(f"`fold_batchnorm` must be True or False, got {fold_batchnorm!r}")
        self.fold_batchnorm = fold_batchnorm
        self.device = self._resolve_device(device)
        self._layer_name: str | None = None
        if target_layer is not None:
            from .features import resolve_layer

            self._layer_name = resolve_layer(model, target_layer)[0]

    # ------------------------------------------------------------------ helpers
    def _resolve_device(self, device: Any) -> torch.device:
        first = next(iter(self.model.parameters()), None)
        model_device = first.device if first is not None else torch.device("cpu")
        if device is None:
            return model_device
        try:
            dev = torch.device(device)
        except (TypeError, RuntimeError):
            raise ValueError(f"`device` {device!r} is not a valid torch device") from None
        if first is not None and dev.type != model_device.type:
            raise ValueError(
                f"`device` is {dev} but the model's parameters are on {model_device}; move the "
                f"model first (`model.to({str(dev)!r})`) or leave `device=None`"
            )
        return dev

    @property
    def layer_name(self) -> str:
        """Name of the target layer (auto-detected with one dummy forward when needed)."""
        if self._layer_name is None:
            size = self.preprocess.size or (224, 224)
            x = torch.zeros(1, 3, *size, device=self.device)
            with model_guard(self.model):
                self._layer_name = capture(self.model, self.preprocess.normalize(x), None)[0]
        return self._layer_name

    def _score_fn(self) -> ScoreFn:
        return self.score if callable(self.score) else _SCORE_FNS[self.score]

    def _forward(self, x: Tensor) -> Tensor:
        return self._model(self.model, self.preprocess.normalize(x))

    def _model(self, net: nn.Module, x: Tensor) -> Tensor:
        """``net`` on an already normalized batch, at the requested precision."""
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = net(x.contiguous(memory_format=torch.channels_last))
            return out.float()
        return net(x)

    # ------------------------------------------------------------------ public API
    def predict(self, image: Any) -> Tensor:
        """Class probabilities (B, classes) of the unmasked image(s), on the CPU.

        Example:
            >>> probs = cam.predict(image)  # doctest: +SKIP
            >>> probs.topk(5)  # doctest: +SKIP
        """
        x = self.preprocess.resize(as_pixel_batch(image).to(self.device))
        with model_guard(self.model), torch.no_grad():
            from .features import _check_logits

            logits = _check_logits(self._forward(x), x.shape[0])
        return torch.softmax(logits.float(), dim=1).cpu()

    def explain(
        self,
        image: Any,
        target: Target = None,
        *,
        max_iter: int | None = None,
        lr: float | None = None,
        convention: str | None = None,
        callback: Callable[[int, OptiCAMProgress], Any] | None = None,
        cancel: threading.Event | None = None,
        tol: float | None = _UNSET,
        patience: int | None = None,
    ) -> OptiCAMResult:
        """Optimize a saliency map for each (image, class) pair.

        Args:
            image: One image (path, PIL, ndarray, tensor (3, H, W) in [0, 1]), a batch tensor
                (B, 3, H, W), or a list of same-size images.
            target: ``None`` (top-1 class), an int (same class for every image), a list with
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
        steps = self.max_iter if max_iter is None else check_int("max_iter", max_iter, 1)
        rate = self.lr if lr is None else _check_lr(lr)
        conv = self.convention if convention is None else _check_choice(
            "convention", convention, CONVENTIONS)
        tol_, patience_ = _check_tol(self.tol if tol is _UNSET else tol,
                                     self.patience if patience is None else patience)
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be callable, got {type(callback).__name__}")
        if cancel is not None and not hasattr(cancel, "is_set"):
            raise TypeError(f"`cancel` must be a threading.Event, got {type(cancel).__name__}")

        images = as_pixel_batch(image).to(self.device)
        x = self.preprocess.resize(images)
        with model_guard(self.model):
            xn = self.preprocess.normalize(x)
            layer, feats, logits = capture(self.model, xn, self.target_layer
                                           if self._layer_name is None else self._layer_name)
            self._layer_name = layer
            targets, index = resolve_targets(target, images.shape[0], logits.shape[1],
                                             logits.argmax(dim=1))
            targets, index = targets.to(self.device), index.to(self.device)
            net = (inner_loop_model(self.model, xn, logits) if self.fold_batchnorm
                   else self.model)
            return self._optimize(net, images, x, feats, logits, targets, index, layer, steps,
                                  rate, conv, tol_, patience_, callback, cancel, start)

    def _optimize(
        self,
        net: nn.Module,
        images: Tensor,
        x: Tensor,
        feats: Tensor,
        logits: Tensor,
        targets: Tensor,
        index: Tensor,
        layer: str,
        steps: int,
        rate: float,
        conv: str,
        tol: float | None,
        patience: int,
        callback: Callable[[int, OptiCAMProgress], Any] | None,
        cancel: threading.Event | None,
        start: float,
    ) -> OptiCAMResult:
        score_fn = self._score_fn()
        n, p = targets.shape[0], self.nb_premises_at_startup
        k = feats.shape[1]
        size = tuple(x.shape[-2:])
        sign = 1.0 if conv == "constructive" else -1.0  # maximize sign * score
        original = score_fn(logits[index], targets)

        # rows: (image/class pair i, trajectory j) -> i * p + j
        x_rep = x[index].repeat_interleave(p, dim=0)
        masked_input = self._masker(x_rep, conv, _prefers_channels_last(net))
        a_rep = feats[index].repeat_interleave(p, dim=0)
        t_rep = targets.repeat_interleave(p, dim=0)
        u = torch.zeros(n * p, k, device=self.device)
        if p > 1:
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            noise = torch.randn(n, p - 1, k, generator=gen).to(self.device)
            u.view(n, p, k)[:, 1:] = noise
        u.requires_grad_(True)
        opt = _adam(u, rate)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
                 if self.lr_schedule == "cosine" else None)

        history: list[Tensor] = []
        best = torch.full((n * p,), -math.inf, device=self.device)
        best_u = u.detach().clone()
        best_history: list[Tensor] = []  # best score of the last `patience` steps
        cancelled = False
        done = 0

        def make_result() -> OptiCAMResult:
            return self._build_result(images, feats, index, targets, best_u, best, history,
                                      original, layer, conv, done, start, cancelled, p)

        for step in range(steps + 1):
            with torch.set_grad_enabled(step < steps):
                s_map = saliency_from_weights(torch.softmax(u, dim=1), a_rep, size)
                score = score_fn(self._model(net, masked_input(s_map)), t_rep)
            value = score.detach().float() * sign
            history.append(score.detach().float().cpu())
            improved = value > best
            best = torch.where(improved, value, best)
            best_u = torch.where(improved[:, None], u.detach(), best_u)
            done = step
            if callback is not None:
                cur = history[-1]
                callback(step, OptiCAMProgress(
                    step=step, max_iter=steps, scores=self._pick(torch.stack(history, 1), best, p),
                    current_score=self._pick(cur[:, None], best, p)[:, 0],
                    best_score=self._pick((best * sign).cpu()[:, None], best, p)[:, 0],
                    elapsed_s=time.perf_counter() - start, _make_result=make_result))
            if step == steps:
                break
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            if tol is not None:
                # plateau: over the last `patience` steps the best score of every row gained at
                # most tol × |best| (a windowed rule: a slow steady climb keeps going)
                best_history.append(best.clone())
                if len(best_history) > patience:
                    old = best_history.pop(0)
                    if bool((best - old <= tol * best.abs().clamp(min=1e-6)).all()):
                        break
            opt.zero_grad(set_to_none=True)
            (-sign * score.sum()).backward()
            opt.step()
            if sched is not None:
                sched.step()
        return make_result()

    def _masker(self, x: Tensor, conv: str,
                channels_last: bool = False) -> Callable[[Tensor], Tensor]:
        """``S -> normalize(x ⊙ S)`` (or ``x ⊙ (1 − S)``), the masking of the inner loop.

        For a mean/std normalization the affine map is folded into constants once, so each
        step is a single fused multiply-add (``addcmul``) instead of mask, subtract, scale.
        With ``channels_last`` the masked image comes out in the layout of the model's
        weights, so its first convolution converts nothing, forward or backward.
        """
        pre = self.preprocess
        if pre.transform is not None:
            if conv == "constructive":
                return lambda s: pre.normalize(x * s)
            return lambda s: pre.normalize(x * (1.0 - s))
        zero = pre.normalize(torch.zeros_like(x[:1, :, :1, :1]))  # normalize(0) = −mean/std
        scaled = pre.normalize(x) - zero  # x / std
        if channels_last:
            scaled = scaled.contiguous(memory_format=torch.channels_last)
        if conv == "constructive":
            return lambda s: torch.addcmul(zero, scaled, s)  # (x ⊙ S − mean) / std
        full = zero + scaled  # (x − mean) / std, in the layout of `scaled`
        return lambda s: torch.addcmul(full, scaled, s, value=-1.0)  # (x ⊙ (1 − S) − mean) / std

    @staticmethod
    def _pick(rows: Tensor, best: Tensor, p: int) -> Tensor:
        """Select, per (image, class) pair, the row of its best trajectory."""
        if p == 1:
            return rows
        choice = best.view(-1, p).argmax(dim=1).cpu()
        grouped = rows.view(-1, p, *rows.shape[1:])
        return grouped[torch.arange(grouped.shape[0]), choice]

    def _build_result(
        self,
        images: Tensor,
        feats: Tensor,
        index: Tensor,
        targets: Tensor,
        best_u: Tensor,
        best: Tensor,
        history: list[Tensor],
        original: Tensor,
        layer: str,
        conv: str,
        done: int,
        start: float,
        cancelled: bool,
        p: int,
    ) -> OptiCAMResult:
        weights = self._pick(torch.softmax(best_u, dim=1), best, p)
        scores = self._pick(torch.stack(history, dim=1), best, p)
        sign = 1.0 if conv == "constructive" else -1.0
        with torch.no_grad():
            full = saliency_from_weights(weights, feats[index], tuple(images.shape[-2:]))
        return OptiCAMResult(
            saliency=full[:, 0].float().clamp_(0.0, 1.0).cpu(),
            weights=weights.detach().float().cpu(),
            target=tuple(int(t) for t in targets.tolist()),
            image_index=tuple(int(i) for i in index.tolist()),
            scores=scores,
            initial_score=scores[:, 0].clone(),
            final_score=(self._pick(best, best, p) * sign).float().cpu(),
            original_score=original.detach().float().cpu(),
            convention=conv,
            score=self.score if isinstance(self.score, str) else "custom",
            layer=layer,
            iterations=done,
            elapsed_s=time.perf_counter() - start,
            cancelled=cancelled,
            images=images[index].detach().float().cpu(),
        )
