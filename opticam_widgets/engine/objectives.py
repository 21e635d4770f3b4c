"""What Opti-CAM's loop maximises, by name: :data:`OBJECTIVES` (``OptiCAMSettings(objective=)``).

``"paper"`` (the default) scores the image masked in pixel space, ``x ⊙ S`` (black where
``S = 0``), as the paper. A map tuned for one fill can lean on it (issue 29): judged with
another fill (the dataset's mean colour, a blurred image) or by deletion, its verdict changes.
The other objectives score several masked versions of the image in each step and take the
weighted mean of the model's outputs over them (for ``score="logit"``, exactly the weighted
mean of the scores):

* ``"mixed-fills"``: the expected score over four fills of the masked-out pixels, each step:
  black, the dataset's mean colour (``preprocess.mean``), the image blurred (Gaussian, σ 5 px,
  as RISE's insertion baseline) and uniform noise (drawn once per run from ``seed``);
* ``"mixed-fills-deletion"``: the same, minus half the expected score of the complement
  (``x ⊙ (1 − S)`` with the same fills): the map must also hold what deleting it destroys.

Each costs its number of masked versions in model passes per step (4 and 8); with
``optimizer="fast"`` (about a quarter of the paper's passes) the first costs about the paper's
time. Measured in ``benchmarks/faithfulness.py`` (``benchmarks/results/faithfulness.md``).
A new objective is one :func:`register_objective` entry: ``(pixels, preprocess, seed) ->
[(fill, weight, keep)]`` (fills in pixel space; ``keep``: the convention's own masked image,
else its complement), or ``None`` for the paper's masking.

Example:
    >>> import torch
    >>> from opticam_widgets.inputs.preprocess import Preprocess
    >>> groups = objective_groups("mixed-fills", torch.rand(1, 3, 8, 8), Preprocess(size=None), 0)
    >>> [round(w, 2) for _, w, _ in groups], objective_groups("paper", None, None, 0)
    ([0.25, 0.25, 0.25, 0.25], None)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..inputs.preprocess import Preprocess
from ..support.checks import check_choice

__all__ = ["BLUR_KERNEL", "BLUR_SIGMA", "DELETION_WEIGHT", "OBJECTIVES", "FillMasker",
           "Group", "mean_output", "objective_groups", "register_objective"]

#: One masked version of the image: ``(fill (B, 3, H, W) in pixel space, weight, keep)``.
Group = tuple[Tensor, float, bool]
#: ``(pixels, preprocess, seed) -> groups`` (``None``: the paper's masking).
ObjectiveFn = Callable[[Tensor, Preprocess, int], "list[Group] | None"]
#: The objectives by name; a new one is one :func:`register_objective` entry.
OBJECTIVES: dict[str, ObjectiveFn] = {}
#: The blurred fill: Gaussian kernel size and σ in pixels (RISE's insertion baseline).
BLUR_KERNEL, BLUR_SIGMA = 11, 5.0
#: Weight of the complement's expected score in ``"mixed-fills-deletion"``.
DELETION_WEIGHT = 0.5


def register_objective(name: str) -> Callable[[ObjectiveFn], ObjectiveFn]:
    """Register ``(pixels, preprocess, seed) -> groups or None`` under ``name`` (a decorator).

    Example:
        >>> @register_objective("grey")
        ... def grey(x, pre, seed):
        ...     return [(torch.full_like(x, 0.5), 1.0, True)]
        >>> "grey" in OBJECTIVES
        True
        >>> del OBJECTIVES["grey"]
    """
    def add(fn: ObjectiveFn) -> ObjectiveFn:
        OBJECTIVES[name] = fn
        return fn

    return add


def objective_groups(name: str, pixels: Any, pre: Any, seed: int) -> list[Group] | None:
    """The masked versions the objective ``name`` scores (``None``: the paper's masking).

    Raises:
        ValueError: ``name`` is not registered (the names listed).
    """
    return OBJECTIVES[check_choice("objective", name, tuple(OBJECTIVES))](pixels, pre, seed)


def _fills(x: Tensor, pre: Preprocess, seed: int) -> list[Tensor]:
    """Black, the dataset's mean colour, the image blurred, seeded uniform noise."""
    from torchvision.transforms.functional import gaussian_blur

    mean = torch.tensor(pre.mean if pre.transform is None else (0.5,) * 3, dtype=x.dtype,
                        device=x.device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.rand(x.shape, generator=gen, dtype=torch.float32).to(x.device, x.dtype)
    return [torch.zeros_like(x), mean[None, :, None, None].expand_as(x).clone(),
            gaussian_blur(x, [BLUR_KERNEL] * 2, [BLUR_SIGMA] * 2), noise]


@register_objective("paper")
def _paper(x: Tensor, pre: Preprocess, seed: int) -> None:
    return None


@register_objective("mixed-fills")
def _mixed(x: Tensor, pre: Preprocess, seed: int) -> list[Group]:
    fills = _fills(x, pre, seed)
    return [(f, 1.0 / len(fills), True) for f in fills]


@register_objective("mixed-fills-deletion")
def _mixed_deletion(x: Tensor, pre: Preprocess, seed: int) -> list[Group]:
    fills = _fills(x, pre, seed)
    return [(f, 1.0 / len(fills), True) for f in fills] + [
        (f, -DELETION_WEIGHT / len(fills), False) for f in fills]


class FillMasker:
    """The masked versions of the images for maps ``S``, stacked group-major, normalised.

    Group ``g`` with ``keep`` gives ``x ⊙ S + f_g ⊙ (1 − S)`` (constructive) or
    ``x ⊙ (1 − S) + f_g ⊙ S`` (destructive); without ``keep``, the other one. Same interface
    as :class:`~opticam_widgets.engine.masking.Masker` (``subset``, call).

    Example:
        >>> x = torch.rand(1, 3, 4, 4)
        >>> m = FillMasker(Preprocess(size=None), x, "constructive", [(x * 0, 1.0, True)])
        >>> m(torch.ones(1, 1, 4, 4)).shape
        torch.Size([1, 3, 4, 4])
    """

    def __init__(self, pre: Preprocess, x: Tensor, convention: str, groups: list[Group],
                 channels_last: bool = False) -> None:
        self.pre, self.x, self.channels_last = pre, x, channels_last
        self.fills = torch.stack([f.to(x.dtype) for f, _, _ in groups])  # (G, B, 3, H, W)
        constructive = convention == "constructive"
        self.keep_s = [keep == constructive for _, _, keep in groups]  # x ⊙ S, else x ⊙ (1 − S)

    def subset(self, rows: Tensor) -> FillMasker:
        """The masker of some images (one per row, repeats allowed)."""
        out = object.__new__(FillMasker)
        out.__dict__.update(self.__dict__)
        out.x, out.fills = self.x[rows], self.fills[:, rows]
        return out

    def __call__(self, s: Tensor) -> Tensor:
        """The model inputs (G · n, 3, H, W) for maps ``s`` (n, 1, H, W), group-major."""
        parts = []
        for g, keep_s in enumerate(self.keep_s):
            m = s if keep_s else 1.0 - s
            parts.append(self.pre.normalize(self.x * m + self.fills[g] * (1.0 - m)))
        out = torch.cat(parts)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out


def mean_output(model: Callable[[Tensor], Any], groups: list[Group]) -> Callable[[Tensor], Any]:
    """``model`` on the stacked groups, giving the weighted mean of its outputs per row.

    Raises:
        ValueError: The model's output is not one tensor (the mean of outputs needs one).

    Example:
        >>> f = mean_output(lambda xn: xn.flatten(1), [(None, 0.5, True), (None, 0.5, True)])
        >>> f(torch.tensor([[1.0], [3.0]]))
        tensor([[2.]])
    """
    weights = [w for _, w, _ in groups]

    def run(xn: Tensor) -> Any:
        out = model(xn)
        if not isinstance(out, Tensor):
            raise ValueError("an `objective` other than 'paper' needs a model returning one "
                             f"tensor, got {type(out).__name__}; use objective='paper'")
        parts = out.chunk(len(weights))
        return sum(w * p for w, p in zip(weights, parts))

    return run
