"""Feature-map layouts: turn a layer's output into conv-like maps (B, C, h, w).

Opti-CAM weights the channels of a spatial feature map. CNNs give one directly, (B, C, h, w);
vision transformers give tokens (B, N, C) — class, distillation and register tokens first, then
the patch grid in row-major order — and channels-last networks (timm Swin, ConvNeXt-style MLP
blocks) give (B, h, w, C). This module recognizes the three layouts from the tensor's shape and
the input's size, with hints read from the model (timm ``num_prefix_tokens``,
``patch_embed.patch_size`` and ``output_fmt``; Hugging Face ``config.patch_size``), and converts
them. A shape that fits no layout is refused, never guessed: pass ``reshape=`` (a layout name or
a callable) for exotic models.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from torch import Tensor, nn

__all__ = [
    "LAYOUTS",
    "LayoutHints",
    "Reshape",
    "check_reshape",
    "detect_layout",
    "grid_fits",
    "layout_hints",
    "spatial_size",
    "to_spatial",
    "token_grid",
]

#: Layout names accepted by ``reshape``: (B, C, h, w), (B, h, w, C) and tokens (B, N, C).
LAYOUTS = ("nchw", "nhwc", "tokens")

#: ``None`` (detect), a name of :data:`LAYOUTS`, or a callable ``output -> (B, C, h, w)``.
Reshape = Union[str, Callable[[Tensor], Tensor], None]

#: The most leading non-patch tokens (class, distillation, registers) a patch-size hint may imply.
MAX_PREFIX = 16
#: The most leading tokens tried when the model gives no hint (a class token and 4 registers).
GUESS_PREFIX = 5


@dataclass(frozen=True)
class LayoutHints:
    """What the model says about its feature layout (all optional).

    Attributes:
        prefix_tokens: Tokens before the patch grid (class, distillation, registers).
        patch_size: The patch embedding's (height, width) in pixels.
        channels_last: The model declares (B, h, w, C) features (timm ``output_fmt="NHWC"``).
    """

    prefix_tokens: int | None = None
    patch_size: tuple[int, int] | None = None
    channels_last: bool = False


def _pair(value: object) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    return None


def layout_hints(model: nn.Module) -> LayoutHints:
    """Read layout hints from a timm or Hugging Face model (or a wrapper holding one).

    Example:
        >>> from torch import nn
        >>> layout_hints(nn.Conv2d(3, 4, 3))
        LayoutHints(prefix_tokens=None, patch_size=None, channels_last=False)
    """
    prefix = patch = None
    channels_last = False
    for m in model.modules():
        n = getattr(m, "num_prefix_tokens", None)
        if prefix is None and isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            prefix = n
        if patch is None:
            patch = _pair(getattr(getattr(m, "patch_embed", None), "patch_size", None))
        if patch is None:
            patch = _pair(getattr(getattr(m, "config", None), "patch_size", None))
        fmt = getattr(m, "output_fmt", None)
        channels_last = channels_last or str(getattr(fmt, "value", fmt)).upper() == "NHWC"
    return LayoutHints(prefix_tokens=prefix, patch_size=patch, channels_last=channels_last)


def check_reshape(reshape: object) -> Reshape:
    """Validate a ``reshape`` argument; names are returned lower-case.

    Raises:
        TypeError: neither None, a string nor a callable.
        ValueError: an unknown layout name.

    Example:
        >>> check_reshape("NHWC")
        'nhwc'
    """
    if reshape is None or callable(reshape):
        return reshape  # type: ignore[return-value]
    if isinstance(reshape, str):
        if reshape.lower() in LAYOUTS:
            return reshape.lower()
        raise ValueError(f"`reshape` must be one of {LAYOUTS}, a callable or None; got "
                         f"{reshape!r}")
    raise TypeError(f"`reshape` must be a layout name {LAYOUTS}, a callable "
                    f"`output -> (B, C, h, w)` or None; got {type(reshape).__name__}")


def grid_fits(h: int, w: int, size: tuple[int, int]) -> bool:
    """Whether an h × w grid tiles an input of ``size`` (H, W) with one stride and rounding.

    Some stride ``s`` must give ``h = floor(H / s)`` and ``w = floor(W / s)``, or both ceil
    (patch embeddings floor, padded convolutions ceil; a network does the same in both
    directions).

    Example:
        >>> grid_fits(14, 14, (224, 224)), grid_fits(197, 64, (224, 224))
        (True, False)
    """
    big_h, big_w = size
    if h < 1 or w < 1 or h > big_h or w > big_w:
        return False
    floor_lo, floor_hi = max(big_h / (h + 1), big_w / (w + 1)), min(big_h / h, big_w / w)
    ceil_lo = max(big_h / h, big_w / w)
    ceil_hi = min(big_h / (h - 1) if h > 1 else math.inf, big_w / (w - 1) if w > 1 else math.inf)
    return floor_lo < floor_hi or ceil_lo < ceil_hi


def _best_factors(m: int, size: tuple[int, int]) -> tuple[int, int] | None:
    """The factorization h · w = m that fits ``size``, closest to the input's aspect."""
    best: tuple[float, int, int] | None = None
    target = math.log(size[0] / size[1])
    for h in range(1, m + 1):
        if m % h == 0 and grid_fits(h, m // h, size):
            gap = abs(math.log(h / (m // h)) - target)
            if best is None or gap < best[0]:
                best = (gap, h, m // h)
    return None if best is None else (best[1], best[2])


def token_grid(n: int, size: tuple[int, int],
               hints: LayoutHints = LayoutHints()) -> tuple[int, int, int] | None:
    """Split ``n`` tokens into leading non-patch tokens and an h × w patch grid.

    Tried in order: the grid the model's ``patch_size`` gives on ``size`` (floor or ceil,
    square or not, implying up to :data:`MAX_PREFIX` leading tokens, as many as its
    ``prefix_tokens`` when it states them); the model's ``prefix_tokens``; then the fewest
    leading tokens (up to :data:`GUESS_PREFIX`) whose remainder tiles ``size``.

    Returns:
        ``(prefix, h, w)``, or ``None`` when no grid fits.

    Example:
        >>> token_grid(197, (224, 224))
        (1, 14, 14)
        >>> token_grid(39, (48, 48), LayoutHints(prefix_tokens=3))
        (3, 6, 6)
    """
    if hints.patch_size is not None:  # the patch grid, square or not, as the model states it
        (ph, pw), (big_h, big_w) = hints.patch_size, size
        for h, w in ((big_h // ph, big_w // pw), (-(-big_h // ph), -(-big_w // pw))):
            p = n - h * w
            if h > 0 and w > 0 and h * w > 1 and 0 <= p <= MAX_PREFIX and (
                    hints.prefix_tokens in (None, p)):
                return p, h, w
    prefixes: list[int] = []
    if hints.prefix_tokens is not None:
        prefixes.append(hints.prefix_tokens)
    prefixes.extend(range(min(GUESS_PREFIX, n - 1) + 1))
    for p in dict.fromkeys(prefixes):
        if 0 <= p < n:
            grid = _best_factors(n - p, size)
            if grid is not None:
                return p, grid[0], grid[1]
    return None


def _loose_nchw(h: int, w: int, size: tuple[int, int]) -> bool:
    """A (B, C, h, w) map as CNNs make them: inside the input, roughly its aspect."""
    if h > size[0] or w > size[1]:
        return False
    return abs(math.log((h / w) / (size[0] / size[1]))) <= math.log(2.0)


def detect_layout(out: Tensor, size: tuple[int, int], hints: LayoutHints = LayoutHints(),
                  module: nn.Module | None = None) -> str | None:
    """The layout of a layer's output on an input of ``size`` (H, W), or ``None``.

    3-D outputs are tokens when a patch grid fits (:func:`token_grid`). 4-D outputs are
    channels-last when dims 1–2 tile the input and dims 2–3 do not; when both fit, the model's
    ``channels_last`` hint or a ``Linear``/``LayerNorm`` module (which act on the last dim)
    decides, else (B, C, h, w). A 4-D output that fits neither reading (e.g. attention's
    (B, heads, N, d)) is not a feature map. Spatial size 1 × 1 is reported too: the caller
    decides what to do with it.

    Example:
        >>> import torch
        >>> detect_layout(torch.zeros(1, 7, 7, 768), (224, 224))
        'nhwc'
        >>> detect_layout(torch.zeros(1, 3, 197, 64), (224, 224)) is None
        True
    """
    if out.ndim == 3:  # one channel: a 1-D pool's (B, C, 1), channel statistics, not tokens
        tokens = out.shape[1] > 1 and out.shape[2] > 1
        return "tokens" if tokens and token_grid(out.shape[1], size, hints) else None
    if out.ndim != 4:
        return None
    a, b, c = (int(s) for s in out.shape[1:])
    nchw, nhwc = grid_fits(b, c, size), grid_fits(a, b, size)
    if nchw and nhwc:
        last_dim_module = isinstance(module, nn.Linear) or type(module) is nn.LayerNorm
        return "nhwc" if hints.channels_last or last_dim_module else "nchw"
    if nhwc:
        return "nhwc"
    return "nchw" if nchw or _loose_nchw(b, c, size) else None


def spatial_size(out: Tensor, layout: str, size: tuple[int, int],
                 hints: LayoutHints = LayoutHints()) -> tuple[int, int] | None:
    """The (h, w) of ``out`` read in ``layout``, or ``None`` when tokens form no grid.

    Example:
        >>> import torch
        >>> spatial_size(torch.zeros(1, 197, 8), "tokens", (224, 224))
        (14, 14)
    """
    if layout == "tokens":
        grid = token_grid(out.shape[1], size, hints)
        return None if grid is None else (grid[1], grid[2])
    dims = out.shape[1:3] if layout == "nhwc" else out.shape[2:4]
    return int(dims[0]), int(dims[1])


def _describe(out: object) -> str:
    return str(tuple(out.shape)) if isinstance(out, Tensor) else type(out).__name__


def to_spatial(out: Tensor, reshape: Reshape, size: tuple[int, int],
               hints: LayoutHints = LayoutHints(), layer: str = "target layer",
               module: nn.Module | None = None) -> Tensor:
    """Convert a layer's output to (B, C, h, w).

    Args:
        out: The layer's output.
        reshape: ``None`` (detect, :func:`detect_layout`), a name of :data:`LAYOUTS`, or a
            callable returning (B, C, h, w).
        size: The model input's (H, W).
        hints: From :func:`layout_hints`.
        layer: The layer's name, for messages.
        module: The layer, a tie-breaker for detection.

    Raises:
        ValueError: the output does not have the layout asked for, no layout fits, or the
            callable returns something else than (B, C, h, w) with the same batch.

    Example:
        >>> import torch
        >>> to_spatial(torch.zeros(2, 1 + 16, 8), None, (32, 32)).shape
        torch.Size([2, 8, 4, 4])
    """
    if callable(reshape):
        maps = reshape(out)
        if not isinstance(maps, Tensor) or maps.ndim != 4 or maps.shape[0] != out.shape[0]:
            raise ValueError(
                f"`reshape` must return feature maps (B, C, h, w) with B = {out.shape[0]}; for "
                f"the output {_describe(out)} of {layer!r} it returned {_describe(maps)}")
        return maps
    layout = reshape if reshape is not None else detect_layout(out, size, hints, module)
    fix = (f"pass `reshape=` (one of {LAYOUTS} or a callable returning (B, C, h, w)), or "
           f"choose another `target_layer`")
    if layout is None:
        raise ValueError(
            f"`target_layer` {layer!r} outputs {_describe(out)}, not a spatial feature map for a "
            f"{size[0]}×{size[1]} input (neither (B, C, h, w), (B, h, w, C) nor patch tokens "
            f"(B, N, C)); {fix}")
    want = 3 if layout == "tokens" else 4
    if out.ndim != want:
        raise ValueError(f"`reshape` is {layout!r} but `target_layer` {layer!r} outputs "
                         f"{_describe(out)}, not a {want}-D tensor; {fix}")
    if layout == "nchw":
        return out
    if layout == "nhwc":
        return out.permute(0, 3, 1, 2)
    grid = token_grid(out.shape[1], size, hints)
    if grid is None:
        raise ValueError(
            f"the {out.shape[1]} tokens of `target_layer` {layer!r} do not form a patch grid "
            f"for a {size[0]}×{size[1]} input (after up to {GUESS_PREFIX} class/register "
            f"tokens, or as many as the model's `num_prefix_tokens` or patch size imply); pass "
            f"a callable `reshape=`")
    p, h, w = grid
    return out[:, p:].reshape(out.shape[0], h, w, out.shape[2]).permute(0, 3, 1, 2)
