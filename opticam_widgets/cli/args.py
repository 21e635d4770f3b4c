"""Argument types and the run options the ``opticam`` subcommands share.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_run_options(parser)
    >>> vars(parser.parse_args(["--iters", "5", "--schedule", "fast"]))
    {'iters': 5, 'lr': 0.2, 'schedule': 'fast'}
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from ..support.defaults import DEFAULT_LR, DEFAULT_MAX_ITER, SCHEDULES

__all__ = ["add_run_options", "class_index", "converter", "positive_float", "positive_int",
           "unit_float"]


def converter(kind: type, what: str, ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    """An argparse ``type=``: parse the text as ``kind``; "expected WHAT" unless ``ok(value)``.

    Example:
        >>> converter(int, "an even number", lambda v: v % 2 == 0)("4")
        4
    """
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return convert


positive_int = converter(int, "a positive integer", lambda v: v >= 1)
positive_float = converter(float, "a positive number", lambda v: math.isfinite(v) and v > 0)
unit_float = converter(float, "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0)
_index = converter(int, "a class index >= 0", lambda v: v >= 0)


def class_index(text: str) -> int | str:
    """An argparse ``type=``: a class index >= 0, or a label name (text that is not a number).

    The label is looked up in the model's labels once the model is loaded.

    Example:
        >>> class_index("281"), class_index("tabby")
        (281, 'tabby')
    """
    try:
        float(text)
    except ValueError:
        return text
    return _index(text)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--iters``, ``--lr`` and ``--schedule``: how each map is optimized."""
    parser.add_argument("--iters", type=positive_int, default=DEFAULT_MAX_ITER, metavar="N",
                        help=f"optimization steps per map (default: {DEFAULT_MAX_ITER})")
    parser.add_argument("--lr", type=positive_float, default=DEFAULT_LR, metavar="X",
                        help=f"Adam learning rate (default: {DEFAULT_LR})")
    parser.add_argument("--schedule", choices=SCHEDULES, default="paper",
                        help="paper (Adam on the channel weights, default) or fast (steps on "
                             "the map projected back onto weights: the same map quality sooner)")
