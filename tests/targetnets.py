"""Tiny models for the target kinds, trained in seconds on synthetic 32 px shapes.

* :func:`train_segmenter`: per-pixel classes background / square / disc; squares come red or
  green (one class, two looks), discs blue;
* :func:`train_multilabel`: a sigmoid head, label 0 = a red square is present, label 1 = a blue
  disc is present (both, one or none);
* :func:`train_detector`: a CenterNet-style detector returning YOLO-style raw rows
  (B, cells, 4 + 1 + 2): box (cx, cy, w, h) in pixels, objectness, two class logits
  (0 = red square, 1 = blue square).

Everything is seeded; training runs under ``torch.set_num_threads(1)``-friendly sizes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

SIZE = 32
RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """A private generator; the global RNG is left as found."""
    state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_rng_state(state)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread for the block (32 px nets gain nothing from more); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def square(img: torch.Tensor, x0: int, y0: int, side: int, colour: tuple[float, ...]) -> tuple:
    """Paint a square; return its box (x0, y0, x1, y1)."""
    img[:, y0:y0 + side, x0:x0 + side] = torch.tensor(colour)[:, None, None]
    return (x0, y0, x0 + side, y0 + side)


def disc(img: torch.Tensor, cx: float, cy: float, r: float, colour: tuple[float, ...]) -> tuple:
    """Paint a disc; return its box."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    inside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
    img[:, inside] = torch.tensor(colour)[:, None]
    return (cx - r, cy - r, cx + r, cy + r)


def _free(gen: torch.Generator, taken: list[tuple], side: int = 8) -> tuple[int, int]:
    """A top-left corner for a ``side`` square at least 2 px away from the ``taken`` boxes."""
    while True:
        x0, y0 = (int(v) for v in torch.randint(1, SIZE - side - 1, (2,), generator=gen))
        box = (x0, y0, x0 + side, y0 + side)
        if all(box[2] + 2 <= a or c + 2 <= box[0] or box[3] + 2 <= b or d + 2 <= box[1]
               for a, b, c, d in taken):
            return x0, y0


# ---------------------------------------------------------------------------- segmentation
class TinySegmenter(nn.Module):
    """Two 3×3 conv blocks (16 px features), a 1×1 classifier, upsampled to the input."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(12, 16, 3, padding=1, stride=2), nn.ReLU())
        self.classifier = nn.Conv2d(16, classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.classifier(self.block2(self.block1(x)))
        return {"out": F.interpolate(out, size=x.shape[-2:], mode="bilinear",
                                     align_corners=False)}


def segmentation_scene(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list]:
    """A red and a green square (class 1) and a blue disc (class 2): image, labels, boxes."""
    img, labels, boxes = torch.zeros(3, SIZE, SIZE), torch.zeros(SIZE, SIZE, dtype=torch.long), []
    for colour in (RED, GREEN):
        x0, y0 = _free(gen, boxes)
        boxes.append(square(img, x0, y0, 8, colour))
        labels[y0:y0 + 8, x0:x0 + 8] = 1
    x0, y0 = _free(gen, boxes)
    boxes.append(disc(img, x0 + 4, y0 + 4, 4, BLUE))
    labels[img[2] > 0.5] = 2
    return img, labels, boxes


def train_segmenter(seed: int = 0, steps: int = 150) -> nn.Module:
    """A :class:`TinySegmenter` trained on :func:`segmentation_scene` (eval mode, frozen)."""
    with seeded(seed) as gen, one_thread():
        data = [segmentation_scene(gen) for _ in range(64)]
        x = torch.stack([d[0] for d in data])
        y = torch.stack([d[1] for d in data])
        net = TinySegmenter()
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(net(x)["out"], y).backward()
            opt.step()
    return net.eval().requires_grad_(False)


# ---------------------------------------------------------------------------- multi-label
def multilabel_scene(gen: torch.Generator, labels: tuple[bool, bool] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, list]:
    """A red square (label 0) and/or a blue disc (label 1) on black."""
    present = labels if labels is not None else tuple(
        bool(v) for v in torch.rand(2, generator=gen) < 0.5)
    img, boxes = torch.zeros(3, SIZE, SIZE), []
    if present[0]:
        x0, y0 = _free(gen, boxes)
        boxes.append(square(img, x0, y0, 8, RED))
    if present[1]:
        x0, y0 = _free(gen, boxes)
        boxes.append(disc(img, x0 + 4, y0 + 4, 4, BLUE))
    return img, torch.tensor([float(p) for p in present]), boxes


def train_multilabel(seed: int = 0, steps: int = 120) -> nn.Module:
    """A conv net with a 2-label sigmoid head (BCE), trained on :func:`multilabel_scene`."""
    with seeded(seed) as gen, one_thread():
        data = [multilabel_scene(gen) for _ in range(64)]
        x = torch.stack([d[0] for d in data])
        y = torch.stack([d[1] for d in data])
        net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 2))
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        for _ in range(steps):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(net(x), y).backward()
            opt.step()
    return net.eval().requires_grad_(False)


# ---------------------------------------------------------------------------- detection
STRIDE = 4


class TinyDetector(nn.Module):
    """CenterNet-style: per 4 px cell, box (cx, cy, w, h) in pixels, objectness, 2 classes.

    Returns YOLO-style raw rows (B, 64 cells, 4 + 1 + 2) (objectness and classes as logits).
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 12, 3, padding=1), nn.ReLU(),
            nn.Conv2d(12, 16, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Conv2d(16, 4 + 1 + 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.head(self.body(x))  # (B, 7, 8, 8)
        b, _, h, w = raw.shape
        gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        cx = (gx + torch.sigmoid(raw[:, 0])) * STRIDE
        cy = (gy + torch.sigmoid(raw[:, 1])) * STRIDE
        wh = torch.exp(raw[:, 2:4].clamp(max=4)) * 8
        rows = torch.cat([cx[:, None], cy[:, None], wh, raw[:, 4:]], dim=1)
        return rows.flatten(2).transpose(1, 2)


def detection_scene(gen: torch.Generator, dim: bool = False) -> tuple[torch.Tensor, list, list]:
    """A red square (class 0) and a blue square (class 1): image, boxes, classes.

    ``dim``: each square at a random brightness in [0.2, 1] (training: a detector that still
    sees a dimmed object, as a masked image shows it).
    """
    img, boxes = torch.zeros(3, SIZE, SIZE), []
    for colour in (RED, BLUE):
        x0, y0 = _free(gen, boxes)
        level = float(0.2 + 0.8 * torch.rand(1, generator=gen)) if dim else 1.0
        boxes.append(square(img, x0, y0, 8, tuple(c * level for c in colour)))
    return img, boxes, [0, 1]


def _detection_targets(scenes: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per scene and object: its centre cell, its (cx, cy, w, h) and its class."""
    cells, sizes, classes = [], [], []
    for _, boxes, labels in scenes:
        centres = [((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes]
        cells.append([int(cy // STRIDE) * (SIZE // STRIDE) + int(cx // STRIDE)
                      for cx, cy, _, _ in centres])
        sizes.append(centres)
        classes.append(labels)
    return torch.tensor(cells), torch.tensor(sizes, dtype=torch.float32), torch.tensor(classes)


def _detection_loss(out: torch.Tensor, cells: torch.Tensor, sizes: torch.Tensor,
                    classes: torch.Tensor) -> torch.Tensor:
    rows = out.gather(1, cells[..., None].expand(-1, -1, out.shape[2]))  # (B, objects, 7)
    obj = torch.zeros(out.shape[:2]).scatter_(1, cells, 1.0)
    return (F.l1_loss(rows[..., :4], sizes) / 8
            + F.cross_entropy(rows[..., 5:].flatten(0, 1), classes.flatten())
            + F.binary_cross_entropy_with_logits(out[..., 4], obj) * 4)


def train_detector(seed: int = 0, steps: int = 120) -> nn.Module:
    """A :class:`TinyDetector` trained on :func:`detection_scene` (eval mode, frozen)."""
    with seeded(seed) as gen, one_thread():
        scenes = [detection_scene(gen, dim=True) for _ in range(96)]
        x = torch.stack([s[0] for s in scenes])
        targets = _detection_targets(scenes)
        net = TinyDetector()
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        for _ in range(steps):
            opt.zero_grad()
            _detection_loss(net(x), *targets).backward()
            opt.step()
    return net.eval().requires_grad_(False)


# ---------------------------------------------------------------------------- checks
def snapshot(model: nn.Module) -> dict:
    """What must not change: modes, requires_grad, .grad, weights."""
    return {"modes": [m.training for m in model.modules()],
            "flags": [p.requires_grad for p in model.parameters()],
            "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            "state": {k: v.clone() for k, v in model.state_dict().items()}}


def assert_untouched(model: nn.Module, before: dict) -> None:
    """The model is as :func:`snapshot` saw it, and holds no hook."""
    after = snapshot(model)
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())
    assert after["modes"] == before["modes"] and after["flags"] == before["flags"]
    for a, b in zip(after["grads"], before["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), k


def mass(saliency: torch.Tensor, box: tuple) -> float:
    """The share of a map's total inside a box (pixel edges, rounded)."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return float(saliency[y0:y1, x0:x1].sum() / saliency.sum())


def peak_in(saliency: torch.Tensor, box: tuple, margin: int = 0) -> bool:
    """Pointing game: the map's maximum lies in the box (grown by ``margin`` pixels)."""
    y, x = divmod(int(saliency.flatten().argmax()), saliency.shape[1])
    x0, y0, x1, y1 = box
    return x0 - margin <= x < x1 + margin and y0 - margin <= y < y1 + margin
