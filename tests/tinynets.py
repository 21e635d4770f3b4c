"""Tiny CNNs with hand-set weights, so tests can assert exact numbers."""

from __future__ import annotations

import torch
from torch import nn


class ColourNet(nn.Module):
    """1×1 conv features (+0.01 bias): ch0 = red, ch1 = green, ch2 = (red + green) / 2, ch3 = blue.

    Logits after global average pooling:
    class 0 = mean(red) − mean(green), class 1 = mean(green) − mean(red), class 2 = mean(blue).
    """

    def __init__(self, with_bn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=1)
        self.bn = nn.BatchNorm2d(4) if with_bn else nn.Identity()
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4, 3, bias=False)
        with torch.no_grad():
            w = torch.zeros(4, 3, 1, 1)
            w[0, 0] = 1.0
            w[1, 1] = 1.0
            w[2, 0] = w[2, 1] = 0.5
            w[3, 2] = 1.0
            self.conv.weight.copy_(w)
            self.conv.bias.fill_(0.01)  # keeps ReLU gradients alive on black pixels
            self.fc.weight.copy_(torch.tensor([[1.0, -1.0, 0.0, 0.0],
                                               [-1.0, 1.0, 0.0, 0.0],
                                               [0.0, 0.0, 0.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.relu(self.bn(self.conv(x))))))


#: Identity normalization: the pixel image goes to the model unchanged, at its own size.
IDENTITY = {"size": None, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def two_squares(size: int = 16, background: float = 0.0) -> torch.Tensor:
    """A grey/black image with a red square top-left and a green square bottom-right."""
    x = torch.full((3, size, size), background)
    q = size // 4
    x[0, q:2 * q, q:2 * q] = 1.0
    x[1, 2 * q:3 * q, 2 * q:3 * q] = 1.0
    return x


def small_cnn(classes: int = 5, seed: int = 0) -> nn.Module:
    """A small random CNN (two convs, BN, pooling, linear)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    )


#: The widget tests' preprocessing: 32×32 photos, a fixed mean and std.
SMALL = {"size": (32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def tiny_cnn(classes: int = 4, seed: int = 0) -> nn.Module:
    """Two 3×3 convolutions, pooling and a linear head: the widget tests' model."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes),
    ).eval()
