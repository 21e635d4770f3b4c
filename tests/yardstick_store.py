"""A tiny trained classifier and its labelled 32 px photos, for the dataset yardstick tests.

Three classes (a red, a green or a blue square on a noisy grey background, anywhere); the CNN is
trained for 8 Adam steps (well under a second), so its maps and probabilities (0.67 to 0.99)
are those of a model that has learned something, not of random weights.
"""

from __future__ import annotations

import torch
from torch import nn

from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.bundle import ModelBundle

LABELS = ["red", "green", "blue"]
SIZE = 32


def square_photos(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` photos (n, 3, 32, 32) in [0, 1] and their classes (a square of that colour)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.2 * torch.rand(n, 3, SIZE, SIZE, generator=g)
    y = torch.arange(n) % 3
    for i in range(n):
        r, c = (int(v) for v in torch.randint(0, SIZE - 12, (2,), generator=g))
        x[i, :, r:r + 12, c:c + 12] = 0.1
        x[i, int(y[i]), r:r + 12, c:c + 12] = 0.95
    return x, y


def tiny_bundle(seed: int = 0, steps: int = 8) -> ModelBundle:
    """A small CNN trained on :func:`square_photos` (normalised with a mean colour of 0.5)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    torch.random.set_rng_state(state)
    pre = Preprocess(size=(SIZE, SIZE), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    x, y = square_photos(96, seed + 1)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(pre.normalize(x)), y).backward()
        opt.step()
    net.eval().requires_grad_(True)
    for p in net.parameters():
        p.grad = None
    return ModelBundle(net, pre, LABELS, name="tiny-squares")


class Photos(torch.utils.data.Dataset):
    """``(photo, label)`` pairs: what explain_dataset reads true labels from."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])
