"""A tiny dual encoder trained in seconds on shape captions (text-prompt and similarity tests).

Images (``SIZE`` px) hold a red square, a blue circle, both, or neither, each at a random place on a
noisy dark background, with a green cross as a distractor that no caption names. The image encoder
is a small CNN (its last convolution's 10 × 10 map is what Opti-CAM weights), the text encoder a
bag of words; they are trained together with SigLIP's sigmoid loss: each (image, caption) pair is
a match when the image holds the shape the caption names. Everything is seeded and in memory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

SIZE = 40
CAPTIONS = ("a red square", "a blue circle")
WORDS = ("<pad>", "a", "red", "blue", "green", "square", "circle", "cross")
Box = tuple[int, int, int, int]


def tokenize(texts: list[str]) -> Tensor:
    """Word ids (N, 4), padded with 0; unknown words are refused."""
    ids = [[WORDS.index(w) for w in t.lower().split()] for t in texts]
    return torch.tensor([row + [0] * (4 - len(row)) for row in ids])


class TinyDualEncoder(nn.Module):
    """``encode_image`` (a CNN) and ``encode_text`` (a bag of words), as open_clip models have."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.visual = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, dim))
        self.words = nn.EmbeddingBag(len(WORDS), dim, mode="sum", padding_idx=0)
        self.text_proj = nn.Linear(dim, dim)
        self.scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))
        self.bias = nn.Parameter(torch.tensor(-5.0))

    def encode_image(self, x: Tensor) -> Tensor:
        return self.visual(x)

    def encode_text(self, tokens: Tensor) -> Tensor:
        return self.text_proj(self.words(tokens))


def _place(rng: np.random.Generator, taken: list[Box], r: int) -> tuple[int, int] | None:
    """A centre whose shape keeps 2 px from the others (``None`` when there is no room)."""
    for _ in range(100):
        cy, cx = (int(v) for v in rng.integers(r, SIZE - r, size=2))
        if all(cy + r + 2 < y0 or cy - r - 2 > y1 or cx + r + 2 < x0 or cx - r - 2 > x1
               for y0, y1, x0, x1 in taken):
            return cy, cx
    return None


def _draw(img: np.ndarray, kind: int, cy: int, cx: int, r: int, rng: np.random.Generator) -> None:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    if kind == 0:
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif kind == 1:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:
        mask = (((abs(yy - cy) <= r) & (abs(xx - cx) <= 1))
                | ((abs(xx - cx) <= r) & (abs(yy - cy) <= 1)))
    colour = rng.uniform(0.0, 0.3, size=3)
    colour[(0, 2, 1)[kind]] = rng.uniform(0.7, 1.0)  # red squares, blue circles, green crosses
    img[mask] = colour


def scenes(n: int, seed: int, present: tuple[float, float] = (0.5, 0.5),
           distractor: float = 0.5) -> tuple[Tensor, Tensor, list[list[Box | None]]]:
    """``n`` images (n, 3, SIZE, SIZE), which captions match (n, 2), each shape's box or None."""
    rng = np.random.default_rng(seed)
    images, labels, boxes = [], [], []
    for _ in range(n):
        img = rng.uniform(0.0, 0.25, size=(SIZE, SIZE, 3)).astype(np.float32)
        taken: list[Box] = []
        where: list[Box | None] = [None, None]
        for kind, p in enumerate((*present, distractor)):
            if rng.random() < p:
                r = int(rng.integers(4, 7))
                centre = _place(rng, taken, r)
                if centre is None:  # no room left: the shape is absent (its label says so)
                    continue
                cy, cx = centre
                _draw(img, kind, cy, cx, r, rng)
                taken.append((cy - r, cy + r, cx - r, cx + r))
                if kind < 2:
                    where[kind] = taken[-1]
        images.append(img)
        labels.append([b is not None for b in where])
        boxes.append(where)
    x = torch.tensor(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.float32), boxes


def train(epochs: int = 8, n: int = 600, seed: int = 0) -> TinyDualEncoder:
    """The dual encoder trained with the sigmoid (SigLIP) loss on ``n`` scenes.

    On one thread (restored after): the same weights whatever the session's thread count, and
    no OpenMP spinning on a loaded 2-core machine (batches this small gain nothing from a
    second thread, and lose much when the machine is busy).
    """
    x, y, _ = scenes(n, seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(x, y, epochs, n, seed)
    finally:
        torch.set_num_threads(threads)


def _train(x: Tensor, y: Tensor, epochs: int, n: int, seed: int) -> TinyDualEncoder:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = TinyDualEncoder()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        tokens = tokenize(list(CAPTIONS))
        for _ in range(epochs):
            for idx in torch.randperm(n).split(50):
                img = nn.functional.normalize(model.encode_image(x[idx]), dim=1)
                txt = nn.functional.normalize(model.encode_text(tokens), dim=1)
                logits = model.scale.exp() * img @ txt.T + model.bias
                loss = nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval()


def accuracy(model: TinyDualEncoder, x: Tensor, y: Tensor) -> float:
    """How often the caption-image match (cosine above the learnt threshold) is right."""
    with torch.no_grad():
        img = nn.functional.normalize(model.encode_image(x), dim=1)
        txt = nn.functional.normalize(model.encode_text(tokenize(list(CAPTIONS))), dim=1)
        logits = model.scale.exp() * img @ txt.T + model.bias
    return float(((logits > 0).float() == y).float().mean())


def pointing_game(saliency: Tensor, boxes: list[Box], tolerance: int = 1) -> float:
    """Fraction of maps whose maximum lies inside the box (± ``tolerance`` pixels)."""
    hits = []
    for s, (y0, y1, x0, x1) in zip(saliency, boxes):
        y, x = np.unravel_index(int(s.argmax()), tuple(s.shape))
        hits.append(y0 - tolerance <= y <= y1 + tolerance and x0 - tolerance <= x <= x1 + tolerance)
    return float(np.mean(hits))
