"""The masking of Opti-CAM's inner loop: a saliency map ``S`` to the model's input.

``S -> normalize(x ⊙ S)`` (constructive) or ``normalize(x ⊙ (1 − S))`` (destructive), in pixel
space before the model's normalization, so masked-out pixels are black.

Example:
    >>> import torch
    >>> from opticam_widgets.inputs.preprocess import Preprocess
    >>> mask = Masker(Preprocess(size=None), torch.ones(1, 3, 2, 2), "constructive")
    >>> mask(torch.zeros(1, 1, 2, 2)).shape
    torch.Size([1, 3, 2, 2])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..inputs.preprocess import Preprocess

__all__ = ["Masker", "prefers_channels_last"]


def prefers_channels_last(net: nn.Module) -> bool:
    """Whether the model's first 4-D weight is laid out ``channels_last``."""
    for p in net.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


class Masker:
    """``S -> normalize(x ⊙ S)`` (or ``x ⊙ (1 − S)``), the masking of the inner loop.

    For a mean/std normalisation the affine map is folded into constants once, so each step is
    a single fused multiply-add (``addcmul``) instead of mask, subtract, scale. With
    ``channels_last`` the masked image comes out in the layout of the model's weights, so its
    first convolution converts nothing, forward or backward.
    """

    def __init__(self, pre: Preprocess, x: Tensor, convention: str,
                 channels_last: bool = False) -> None:
        self.pre, self.x, self.constructive = pre, x, convention == "constructive"
        self.channels_last = channels_last
        if pre.transform is None:
            self.zero = pre.normalize(torch.zeros_like(x[:1, :, :1, :1]))  # −mean/std
            scaled = pre.normalize(x) - self.zero  # x / std
            if channels_last:
                scaled = scaled.contiguous(memory_format=torch.channels_last)
            self.scaled = scaled
            self.full = None if self.constructive else self.zero + scaled  # (x − mean) / std

    def subset(self, rows: Tensor) -> Masker:
        """The masker of some images (one per row, repeats allowed)."""
        out = object.__new__(Masker)
        out.__dict__.update(self.__dict__)
        if self.pre.transform is not None:
            out.x = self.x[rows]
        else:
            layout = torch.channels_last if self.channels_last else torch.contiguous_format
            out.scaled = self.scaled[rows].contiguous(memory_format=layout)
            out.full = (None if self.full is None
                        else self.full[rows].contiguous(memory_format=layout))
        return out

    def __call__(self, s: Tensor) -> Tensor:
        """The model input (R, 3, H, W) for maps ``s`` (R, 1, H, W)."""
        if self.pre.transform is not None:
            return self.pre.normalize(self.x * (s if self.constructive else 1.0 - s))
        if self.constructive:
            return torch.addcmul(self.zero, self.scaled, s)  # (x ⊙ S − mean) / std
        return torch.addcmul(self.full, self.scaled, s, value=-1.0)  # (x ⊙ (1 − S) − mean) / std
