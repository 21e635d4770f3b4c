"""Token orders that are not row-major: Hiera's mask-unit ("unrolled") order.

Hiera (timm ``Hiera``, Hugging Face ``HieraModel``) reorders its patch tokens into mask units
before the first block and undoes one level of that per pooling stage: the tokens of every
stage but the last are not in row-major order, so reading them as an h × w grid scrambles the
map. Both implementations carry the inverse, ``reroll(tokens, index)`` with a ``schedule``
per block (timm) or stage (Hugging Face): the output of a whole block or stage is put back in
row-major order with the model's own reroll; any other layer in unrolled order is refused,
naming the block to use instead.

Example:
    >>> from torch import nn
    >>> token_order(nn.Sequential(nn.Conv2d(3, 4, 3)), "0") is None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor, nn

__all__ = ["token_order"]


def _unrolled_lists(model: nn.Module) -> Iterator[tuple[str, Any, dict]]:
    """``(name of the block list, reroll, schedule)`` of each Hiera inside ``model``."""
    for name, m in model.named_modules():
        reroll = getattr(m, "reroll", None)
        schedule = getattr(reroll if isinstance(reroll, nn.Module) else m, "schedule", None)
        if not callable(reroll) or not isinstance(schedule, dict):
            continue
        for list_name in ("blocks", "stages"):
            if isinstance(getattr(m, list_name, None), (nn.ModuleList, nn.Sequential)):
                yield (f"{name}.{list_name}" if name else list_name), reroll, schedule


def token_order(model: nn.Module, layer: str) -> Callable[[Tensor], Tensor] | None:
    """How to put the output of ``layer`` in row-major order, or ``None`` when it already is.

    Returns:
        ``None`` (row-major already), or a function ``(B, N, C) tokens -> (B, h, w, C)``
        (the model's own reroll for a whole Hiera block or stage).

    Raises:
        ValueError: ``layer`` is inside a Hiera block whose tokens are in mask-unit order (or is
            the unroll itself); the message names the whole block to choose instead.

    Example:
        >>> import timm  # doctest: +SKIP
        >>> net = timm.create_model("hiera_tiny_224", pretrained=False)  # doctest: +SKIP
        >>> token_order(net, "blocks.11") is None  # doctest: +SKIP
        True
        >>> callable(token_order(net, "blocks.0"))  # doctest: +SKIP
        True
    """
    for prefix, reroll, schedule in _unrolled_lists(model):
        owner = prefix.rpartition(".")[0]
        if layer == (f"{owner}.unroll" if owner else "unroll"):
            raise ValueError(
                f"`target_layer` {layer!r} outputs Hiera's tokens in mask-unit (unrolled) order, "
                f"not row-major; choose a block such as {prefix + '.0'!r} (its tokens are put "
                f"back in place with the model's own reroll)")
        if not layer.startswith(prefix + "."):
            continue
        head, _, rest = layer[len(prefix) + 1:].partition(".")
        if not head.isdigit() or int(head) not in schedule or not schedule[int(head)][0]:
            return None
        index = int(head)
        if not rest:
            return lambda tokens: reroll(tokens, index)
        raise ValueError(
            f"`target_layer` {layer!r} is inside a Hiera block whose tokens are in mask-unit "
            f"(unrolled) order, not row-major: its map would be scrambled; choose the whole "
            f"block {prefix + '.' + head!r} (put back in place with the model's own reroll) or "
            f"a layer of the last stage")
    return None
