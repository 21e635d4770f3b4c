"""A tiny CNN whose forward pass sleeps: long enough runs to kill a Ray node in the middle.

Importable by Ray's worker processes (the test puts this folder on their ``PYTHONPATH``).
"""

from __future__ import annotations

import time

import torch
from torch import nn


class SlowNet(nn.Module):
    """``small_cnn``-like layers; each forward pass waits ``pause`` seconds first."""

    def __init__(self, pause: float = 0.03, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.pause = pause
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.pause)
        return self.head(self.features(x))
