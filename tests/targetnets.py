"""Tiny models for the target kinds, trained in seconds on synthetic 32 px shapes.

* :func:`train_segmenter`: per-pixel classes background / square / disc; squares come red or
  green (one class, two looks), discs blue;
* :func:`train_multilabel`: a sigmoid head, label 0 = a red square is present, label 1 = a blue
  disc is present (both, one or none);
* :func:`train_detector`: a CenterNet-style detector returning YOLO-style raw rows
  (B, cells, 4 + 1 + 2): box (cx, cy, w, h) in pixels, objectness, two class logits
  (0 = red square, 1 = blue square);
* :func:`train_centernet`: notebook 06's detector: a CenterNet (a heatmap per class and a
  box-size head on a bias-free stride-2 backbone) returning torchvision-style dicts, trained
  on :func:`centernet_scene` (two squares far apart).

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


# ---------------------------------------------------------------------------- CenterNet
CN_STRIDE, CN_SIDE, CN_FAR = 2, 8, 8


def centernet_scene(gen: torch.Generator) -> tuple[torch.Tensor, list]:
    """A red square (class 0) and a blue one (class 1), ``CN_FAR`` px apart, on black; corners
    on odd pixels (each centre is a cell centre of the stride-2 map). Image and boxes."""
    while True:
        corners = 2 * torch.randint(0, (SIZE - CN_SIDE) // 2, (2, 2), generator=gen) + 1
        (x0, y0), (a0, b0) = corners.tolist()
        if abs(x0 - a0) >= CN_SIDE + CN_FAR or abs(y0 - b0) >= CN_SIDE + CN_FAR:
            break
    img = torch.zeros(3, SIZE, SIZE)
    return img, [square(img, x, y, CN_SIDE, colour)
                 for (x, y), colour in zip(corners.tolist(), (RED, BLUE))]


class CenterNet(nn.Module):
    """3x3 convolutions without bias (black stays 0; one of stride 2), 1x1 heads: a heatmap per
    class and the box size per cell. Returns one dict per image: every cell's box, class and
    score (sigmoid of the heatmap), as torchvision's detectors return their detections."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2, bias=False), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.ReLU())
        self.heat, self.size = nn.Conv2d(16, classes, 1), nn.Conv2d(16, 2, 1)
        nn.init.constant_(self.heat.bias, -2.19)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.heat(features), self.size(features)

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        heat, size = self.heads(x)
        b, classes, h, w = heat.shape
        cell = torch.arange(h * w)
        cy, cx = (cell // w + 0.5) * CN_STRIDE, (cell % w + 0.5) * CN_STRIDE
        wh = size.flatten(2).exp() * CN_SIDE
        boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2,
                             cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], dim=-1)
        scores = heat.sigmoid().flatten(1)
        labels = torch.arange(classes).repeat_interleave(h * w)
        return [{"boxes": boxes[i].repeat(classes, 1), "labels": labels, "scores": scores[i]}
                for i in range(b)]


def _centernet_loss(net: CenterNet, x: torch.Tensor, scenes: list) -> torch.Tensor:
    """CenterNet's focal loss on Gaussian heatmaps (1 at each centre cell), L1 on log sizes."""
    h = SIZE // CN_STRIDE
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(h) + 0.5, indexing="ij")
    heat_t, at = torch.zeros(len(scenes), 2, h, h), []
    for n, (_, boxes) in enumerate(scenes):
        for label, (x0, y0, x1, y1) in enumerate(boxes):
            cx, cy = (x0 + x1) / 2 / CN_STRIDE, (y0 + y1) / 2 / CN_STRIDE
            heat_t[n, label] = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 2)
            at.append((n, int(cy), int(cx)))
    heat, size = net.heads(x)
    p = heat.sigmoid().clamp(1e-4, 1 - 1e-4)
    centre = heat_t.eq(1).float()
    focal = -(centre * (1 - p) ** 2 * p.log()
              + (1 - centre) * (1 - heat_t) ** 4 * p ** 2 * (1 - p).log()).sum() / centre.sum()
    n, i, j = torch.tensor(at).T
    return focal + size[n, :, i, j].abs().mean()  # every square is CN_SIDE: log size 0


def train_centernet(seed: int = 0, steps: int = 150) -> nn.Module:
    """A :class:`CenterNet` trained on :func:`centernet_scene` (eval mode, frozen)."""
    with seeded(seed) as gen, one_thread():
        scenes = [centernet_scene(gen) for _ in range(64)]
        x = torch.stack([img for img, _ in scenes])
        net = CenterNet()
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        for _ in range(steps):
            opt.zero_grad()
            _centernet_loss(net, x, scenes).backward()
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
