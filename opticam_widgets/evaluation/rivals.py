"""The rivals users know, from pytorch-grad-cam: Grad-CAM, Eigen-CAM, FinerCAM and more.

pytorch-grad-cam (Jacob Gildenblat, MIT) is the CAM library most users pick; its methods are
registered in :mod:`.baselines`' registry under these names (:data:`RIVALS`), so the
widget's "compare with" menu, :func:`~.baselines.baseline_map` and the faithfulness benchmark
offer them beside Opti-CAM and torchcam's three:

* ``pgc-gradcam``, ``pgc-gradcam++``, ``pgc-scorecam``: pytorch-grad-cam's Grad-CAM, Grad-CAM++
  and Score-CAM (``gradcam``, ``gradcam++``, ``scorecam`` are torchcam's: the same methods,
  kept because torchcam is pure PyTorch, the lighter extra);
* ``eigencam`` (first principal component of the activations: no class, no gradient),
  ``layercam``, ``finercam`` (FinerCAM: the target class against its three most similar
  classes, the library's default, on Grad-CAM), ``shapleycam`` (gradient and Hessian-vector
  product).

Each runs exactly as the torchcam ones do (see :mod:`.baselines`): on Opti-CAM's target layer,
the model fed through a wrapper that normalises pixel-space inputs (so Score-CAM's masks make
removed pixels black), gradients of the raw logit of the target class
(``ClassifierOutputTarget``), the library's maps (at the model's input size) min-max scaled for
the image's size and resized to it, a constant map as zeros.
pytorch-grad-cam's ``model.zero_grad()`` would drop the user's ``.grad``: each parameter's
``.grad`` is put back after the call, and the hooks are released however it ends.

Needs the optional extra ``yardsticks`` (``pip install opticam-widgets[yardsticks]``, i.e.
``grad-cam``).

Example:
    >>> sorted(RIVALS)[:3]
    ['eigencam', 'finercam', 'layercam']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..engine.maps import minmax_normalize, resize_maps

__all__ = ["RIVALS", "RivalFn"]

#: ``call -> maps (N, H, W)``: a :class:`~.baselines.BaselineCall` in, maps in [0, 1] out.
RivalFn = Callable[[Any], Tensor]

_INSTALL_HINT = ("the {method!r} baseline needs pytorch-grad-cam, an optional dependency; "
                 "install it with `pip install opticam-widgets[yardsticks]` (or `pip install "
                 "grad-cam`)")


def _library(method: str) -> Any:
    try:
        import pytorch_grad_cam as lib
        from pytorch_grad_cam.utils import model_targets
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT.format(method=method)) from exc
    return lib, model_targets


def _rows(call: Any) -> tuple[Tensor, list[int]]:
    rows = call.rows
    if not hasattr(rows, "classes") or not hasattr(rows, "index"):
        raise ValueError(f"`target`: the pytorch-grad-cam baselines explain class logits, not "
                         f"{type(rows).__name__}; use method='channel-mean' or OptiCAM")
    pixels = call.capture.pixels
    return pixels[rows.index.to(pixels.device)], [int(c) for c in rows.classes.tolist()]


def _finish(maps: Any, size: tuple[int, int]) -> Tensor:
    out = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    out = torch.nan_to_num(out.reshape(-1, *out.shape[-2:]), nan=0.0)
    # as the torchcam baselines: min-max for the image's size (constant -> zeros), then resized
    return resize_maps(minmax_normalize(out, size, constant=0.0), size).clamp_(0.0, 1.0).cpu()


def _run(call: Any, make: Callable[[Any], Any], per_row: Callable[[Any, Tensor, int], Any]
         ) -> Tensor:
    """Build the library's CAM with ``make(call)``, run ``per_row(cam, pixels, class)``."""
    pixels, classes = _rows(call)
    grads = [(p, p.grad) for p in call.model.parameters()]
    cam = make(call)
    try:
        with torch.enable_grad():
            maps = [per_row(cam, pixels[i:i + 1].detach().clone().requires_grad_(True), c)
                    for i, c in enumerate(classes)]
    finally:
        base = getattr(cam, "base_cam", cam)
        base.activations_and_grads.release()
        for p, g in grads:
            p.grad = g
    return _finish(np.concatenate([np.asarray(m) for m in maps]), call.size)


def _linear_safe(cls: type) -> type:
    """``cls`` (ShapleyCAM) with a zero Hessian term where the score is linear in the activations.

    pytorch-grad-cam 1.5.7 differentiates the gradient again; after a layer followed only by
    pooling and a linear head (EfficientNet's last map) the gradient is constant, has no graph,
    and the library raised ``RuntimeError: element 0 of tensors does not require grad``. Its
    Hessian-vector product is 0 there, which ``grads + 0 * activations`` gives it.
    """
    class LinearSafe(cls):  # type: ignore[misc, valid-type]
        def get_cam_weights(self, input_tensor: Any, target_layer: Any, target_category: Any,
                            activations: Tensor, grads: Tensor) -> Any:
            if not grads.requires_grad and activations.requires_grad:
                grads = grads + 0.0 * activations
            return super().get_cam_weights(input_tensor, target_layer, target_category,
                                           activations, grads)

    return LinearSafe


def _base_cam(class_name: str, method: str, wrap: Callable[[type], type] = lambda c: c
              ) -> RivalFn:
    """A pytorch-grad-cam ``BaseCAM`` subclass run on the target class's logit."""
    def maps(call: Any) -> Tensor:
        lib, targets = _library(method)

        def make(call: Any) -> Any:
            cam = wrap(getattr(lib, class_name))(model=call.model, target_layers=[call.module])
            cam.batch_size = int(call.batch_size)  # Score-CAM's masked images per pass
            return cam

        def row(cam: Any, x: Tensor, c: int) -> Any:
            return cam(input_tensor=x, targets=[targets.ClassifierOutputTarget(c)])

        return _run(call, make, row)

    maps.__doc__ = f"pytorch-grad-cam's {class_name} on the target layer."
    return maps


def _finercam(call: Any) -> Tensor:
    """pytorch-grad-cam's FinerCAM (on Grad-CAM), the class against its most similar three."""
    lib, _ = _library("finercam")

    def make(call: Any) -> Any:
        return lib.FinerCAM(call.model, [call.module], base_method=lib.GradCAM)

    def row(cam: Any, x: Tensor, c: int) -> Any:
        return cam(input_tensor=x, target_idx=c)

    return _run(call, make, row)


#: The pytorch-grad-cam methods by registry name.
RIVALS: dict[str, RivalFn] = {
    "pgc-gradcam": _base_cam("GradCAM", "pgc-gradcam"),
    "pgc-gradcam++": _base_cam("GradCAMPlusPlus", "pgc-gradcam++"),
    "pgc-scorecam": _base_cam("ScoreCAM", "pgc-scorecam"),
    "eigencam": _base_cam("EigenCAM", "eigencam"),
    "layercam": _base_cam("LayerCAM", "layercam"),
    "finercam": _finercam,
    "shapleycam": _base_cam("ShapleyCAM", "shapleycam", _linear_safe),
}
