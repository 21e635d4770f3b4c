"""Q2 — ours vs MUPPET's Opti-CAM (``muppet-xai``): time per explanation and map quality.

* Speed: ResNet-50 (random weights), one image, the top-1 class (the only class MUPPET's
  OptiCAM can explain), the same ``max_iter`` and lr. MUPPET gets the model as a user would
  pass a fresh torchvision model (parameters trainable); a second MUPPET column freezes the
  parameters first, to show where the gap comes from. Target: ours ≥ 1.6× faster.
* Quality: the embedded default model (EfficientNet-Lite0, ImageNet) on ``chelsea``, MUPPET's
  default 100 iterations. Both maps are scored by one shared function (:func:`common.masked_logit`:
  the fp32 logit of ``x ⊙ S``), plus the masked softmax probability, which is what MUPPET
  optimizes. Target: ours equal or higher.

How MUPPET's OptiCAM differs (read from ``muppet/explainers/opti_cam.py`` and its components):
it hooks the last ``nn.Conv2d`` (raw output, no ReLU; ResNet-50: ``layer4.2.conv3`` before BN
and the residual sum; Lite0: ``conv_head`` before ``bn2``); it maximizes the softmax
probability; it clamps the raw weights to [0, 1] after each Adam step; it leaves the model's
parameters trainable (weight gradients computed, and accumulated in ``.grad``, every step); it
explains the argmax class only (no ``target`` argument); it takes no preprocessing, so the model
must include its normalization; ``max_iter=N`` means N scoring passes and N − 1 Adam steps
(ours: N + 1 passes, N steps); it returns the last iterate (ours: the best).

Run alone: ``python benchmarks/bench_peers.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import common as C
import torch
from torch import Tensor, nn

TARGET_SPEEDUP = 1.6


@dataclass
class MapRun:
    """One explanation: its map (H, W), wall time, and shared-function scores."""

    name: str
    saliency: Tensor
    seconds: list[float]
    logit: float = float("nan")
    prob: float = float("nan")


def muppet_map(explainer: Any, pixels: Tensor) -> Tensor:
    """Run MUPPET on (1, 3, H, W) pixels; its (H, W) map in [0, 1] (high = important)."""
    out = explainer(pixels)
    return out.detach().float().reshape(pixels.shape[-2:])


def _clear_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = None


def speed(repeats: int, max_iter: int) -> tuple[C.Section, dict[str, float]]:
    """ResNet-50 timing: ours vs MUPPET (trainable and frozen parameters)."""
    from opticam_widgets.engine.explainer import OptiCAM
    from opticam_widgets.inputs.preprocess import IMAGENET_MEAN, IMAGENET_STD

    image = C.random_image()
    ours_model = C.resnet50()
    peer_model = C.Normalized(copy.deepcopy(ours_model), IMAGENET_MEAN, IMAGENET_STD).eval()
    frozen_model = C.Normalized(copy.deepcopy(ours_model), IMAGENET_MEAN, IMAGENET_STD).eval()
    frozen_model.requires_grad_(False)
    with torch.no_grad():
        target = int(peer_model(image).argmax())
    pre = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "size": None}
    cam = OptiCAM(ours_model, preprocess=pre)
    cam_bf16 = OptiCAM(ours_model, preprocess=pre, precision="bf16")
    cam_plain = OptiCAM(ours_model, preprocess=pre, fold_batchnorm=False)
    peer = C.muppet_explainer(peer_model, max_iter=max_iter)
    peer_frozen = C.muppet_explainer(frozen_model, max_iter=max_iter)

    def run_peer() -> None:
        muppet_map(peer, image)
        _clear_grads(peer_model)

    fns = {
        "ours": lambda: cam.explain(image, target, max_iter=max_iter),
        "ours_bf16": lambda: cam_bf16.explain(image, target, max_iter=max_iter),
        "ours_plain": lambda: cam_plain.explain(image, target, max_iter=max_iter),
        "muppet": run_peer,
        "muppet_frozen": lambda: muppet_map(peer_frozen, image),
    }
    # warm-up with short runs (oneDNN primitive caches, allocator), then interleave.
    for explainer in (C.muppet_explainer(peer_model, 2), C.muppet_explainer(frozen_model, 2)):
        muppet_map(explainer, image)
    _clear_grads(peer_model)
    for c in (cam, cam_bf16, cam_plain):
        c.explain(image, target, max_iter=2)
    times = C.interleaved(fns, repeats=repeats, warmup=0)
    med = {k: C.median(v) for k, v in times.items()}
    def vs(key: str) -> tuple[str, str]:
        speedup = med["muppet"] / med[key]
        return C.fmt_ratio(speedup), C.verdict(speedup >= TARGET_SPEEDUP)

    rows = [
        ("ours (OptiCAM.explain, defaults), fp32", C.spread(times["ours"]), *vs("ours")),
        ("ours, fp32, fold_batchnorm=False (the model as given)",
         C.spread(times["ours_plain"]), *vs("ours_plain")),
        ('ours, precision="bf16"', C.spread(times["ours_bf16"]), *vs("ours_bf16")),
        ("MUPPET OptiCAMExplainer (model as given: trainable parameters)",
         C.spread(times["muppet"]), "1.00×", ""),
        ("MUPPET, parameters frozen by the caller beforehand",
         C.spread(times["muppet_frozen"]), *vs("muppet_frozen")),
    ]
    section = C.Section("Q2 — ours vs MUPPET's Opti-CAM")
    section.tables.append(
        f"**Speed**: ResNet-50 (random weights), 224×224, top-1 class {target}, max_iter "
        f"{max_iter}, lr 0.2, {repeats} interleaved repeats\n\n" + C.table(
            ["explainer", "time per explanation, ms: median (min–max)",
             "speed-up vs MUPPET (MUPPET time / this time)", f"target ≥ {TARGET_SPEEDUP}×"],
            rows))
    per_iter = {k: v / max_iter for k, v in med.items()}
    section.notes.append(
        f"Per iteration (time / max_iter): ours {1e3 * per_iter['ours']:.0f} ms, ours on the "
        f"model as given {1e3 * per_iter['ours_plain']:.0f} ms, MUPPET "
        f"{1e3 * per_iter['muppet']:.0f} ms, MUPPET frozen {1e3 * per_iter['muppet_frozen']:.0f}"
        " ms. On the model as given ours runs at MUPPET-frozen's pace (both at the model's "
        "frozen forward+backward, Q1): MUPPET's waste is the weight gradients. By default ours "
        "runs a BatchNorm-folded channels_last copy of the model (same logits), which goes "
        "below that floor.")
    return section, med


def quality(repeats: int, max_iter: int) -> tuple[str, list[str], dict[str, MapRun], int]:
    """Default Lite0 + chelsea: MUPPET's default run vs ours, shared scoring."""
    from opticam_widgets.engine.explainer import OptiCAM

    bundle = C.default_bundle(wait_s=300)
    model = bundle.model
    spec = bundle.preprocess
    pixels = C.chelsea()
    # MUPPET needs a model taking pixels; a user passes a trainable model (fresh from timm).
    trainable = C.Normalized(copy.deepcopy(model), spec.mean, spec.std).eval()
    trainable.requires_grad_(True)
    frozen = C.Normalized(model, spec.mean, spec.std).eval()
    with torch.no_grad():
        target = int(frozen(pixels).argmax())
    pre = {"mean": spec.mean, "std": spec.std, "size": None}
    cams = {
        "ours": OptiCAM(model, preprocess=pre),
        "ours, score=probability": OptiCAM(model, preprocess=pre, score="probability"),
        "ours, MUPPET's layer (conv_head)": OptiCAM(model, preprocess=pre,
                                                    target_layer="conv_head"),
    }
    runs: dict[str, MapRun] = {}

    def ours(name: str) -> Any:
        def fn() -> None:
            r = cams[name].explain(pixels, target, max_iter=max_iter)
            runs[name] = MapRun(name, r.saliency[0], runs[name].seconds if name in runs else [])
        return fn

    def peer(name: str, net: nn.Module) -> Any:
        explainer = C.muppet_explainer(net, max_iter=max_iter)

        def fn() -> None:
            s = muppet_map(explainer, pixels)
            _clear_grads(net)
            runs[name] = MapRun(name, s, runs[name].seconds if name in runs else [])
        return fn

    fns = {name: ours(name) for name in cams}
    fns["MUPPET (trainable model)"] = peer("MUPPET (trainable model)", trainable)
    fns["MUPPET (frozen model)"] = peer("MUPPET (frozen model)", frozen)
    times = C.interleaved(fns, repeats=repeats, warmup=0)
    for name, run in runs.items():
        run.seconds = times[name]
        run.logit = C.masked_logit(model, spec.normalize, pixels, run.saliency, target)
        with torch.no_grad():
            logits = model(spec.normalize(pixels * run.saliency.reshape(1, 1, *pixels.shape[-2:])))
            run.prob = float(torch.softmax(logits, 1)[0, target])
    ref = runs["ours"].saliency
    peer_score = runs["MUPPET (trainable model)"].logit
    rows = []
    for name, run in runs.items():
        rows.append((
            name, C.spread(run.seconds), f"{run.logit:.3f}", f"{run.prob:.4f}",
            f"{C.pearson(run.saliency, ref):.3f}",
            "" if not name.startswith("ours") else C.verdict(run.logit >= peer_score - 1e-6),
        ))
    label = bundle.labels[target] if bundle.labels else str(target)
    text = (f"**Quality**: default model (EfficientNet-Lite0, ImageNet), `chelsea` 224×224, top-1 "
            f"class {target} ({label}), max_iter {max_iter} (MUPPET's default), lr 0.2, "
            f"{repeats} interleaved repeat(s)\n\n" + C.table(
                ["explainer", "time, ms: median (min–max)", "masked logit (shared fn)",
                 "masked probability (shared fn)", "Pearson r vs ours",
                 "ours ≥ MUPPET (logit)"], rows))
    with torch.no_grad():
        unmasked = float(model(spec.normalize(pixels))[0, target])
    notes = [
        f"Unmasked logit of class {target}: {unmasked:.3f}. Scores: fp32 logit (and softmax "
        "probability) of the masked image x ⊙ S, recomputed for every map by the same function.",
        "MUPPET (trainable vs frozen model) computes the same map; only its time differs.",
    ]
    return text, notes, runs, target


def run() -> C.Section:
    """Both parts; returns the markdown section."""
    C.setup()
    if not C.muppet_available():
        section = C.Section("Q2 — ours vs MUPPET's Opti-CAM")
        section.notes.append("muppet-xai is not installed (`pip install -e .[bench]`): skipped.")
        return section
    quick = C.QUICK
    section, _ = speed(repeats=2 if quick else 3, max_iter=8 if quick else 40)
    text, notes, _, _ = quality(repeats=1 if quick else 2, max_iter=20 if quick else 100)
    section.tables.append(text)
    section.notes += notes
    return section


if __name__ == "__main__":
    print(C.run_section(run).markdown())
