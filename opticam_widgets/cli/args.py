"""Argument types and the run options the ``opticam`` subcommands share.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_run_options(parser)
    >>> vars(parser.parse_args(["--max-iter", "5", "--optimizer", "fast"]))
    {'max_iter': 5, 'lr': 0.2, 'optimizer': 'fast', 'objective': 'paper'}
    >>> vars(parser.parse_args(["--iters", "5", "--schedule", "fast"]))  # the old names
    {'max_iter': 5, 'lr': 0.2, 'optimizer': 'fast', 'objective': 'paper'}
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from ..support.defaults import DEFAULT_LR, DEFAULT_MAX_ITER

__all__ = ["TARGET_FORMS", "add_run_options", "converter", "positive_float", "positive_int",
           "target_arg", "unit_float"]


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


#: The ``--target`` forms beyond a class, for ``--help``.
TARGET_FORMS = ("box:X0,Y0,X1,Y1:CLS (a detector's object), region:CLS (a segmentation "
                "model's class where it predicts it) or region:CLS:X0,Y0,X1,Y1 (in a box), "
                "detected or detected:K (a detector's K-th best detection); pixels of the "
                "image the model sees")


def _class_text(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text.strip()


def _box_text(text: str, form: str) -> tuple[float, ...]:
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"expected {form} with four numbers X0,Y0,X1,Y1, got "
                                         f"{text!r}")
    return box


def _kind_arg(text: str) -> tuple[Any, ...] | None:
    """``box:...``, ``region:...``, ``detected[:K]``, ``annotations[:USE]`` as tagged tuples."""
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    if kind == "box":
        box, _, cls = rest.partition(":")
        if not cls:
            raise argparse.ArgumentTypeError(f"expected box:X0,Y0,X1,Y1:CLS, got {text!r}")
        return ("box", _box_text(box, "box:X0,Y0,X1,Y1:CLS"), _class_text(cls))
    if kind == "region":
        cls, _, box = rest.partition(":")
        if not cls:
            raise argparse.ArgumentTypeError(f"expected region:CLS[:X0,Y0,X1,Y1], got {text!r}")
        return ("region", _class_text(cls), _box_text(box, "region:CLS:X0,Y0,X1,Y1")
                if box else None)
    if kind == "annotations":
        if rest.lower() not in ("", "auto", "box", "mask"):
            raise argparse.ArgumentTypeError(f"expected annotations, annotations:box or "
                                             f"annotations:mask, got {text!r}")
        return ("annotations", rest.lower() or "auto")
    if kind == "detected":
        if rest and not rest.isdigit():
            raise argparse.ArgumentTypeError(f"expected detected or detected:K (K >= 0), got "
                                             f"{text!r}")
        return ("detected", int(rest or 0))
    return None


def target_arg(text: str) -> Any:
    """An argparse ``type=`` for ``--target``: the shorthand of the target grammar.

    ``top1`` -> ``None`` (the predicted class), ``true`` -> ``"true"`` (the true label),
    ``topK`` -> ``("top", K)``, ``281`` -> ``281``, anything else a label name, looked up in the
    model's labels once it is loaded (:func:`~opticam_widgets.engine.targets.as_target` turns
    them into targets; this module imports no torch). The kinds beyond a class
    (:data:`TARGET_FORMS`) come as tagged tuples, turned into targets by the command.

    Example:
        >>> target_arg("top3"), target_arg("281"), target_arg("top1"), target_arg("tabby")
        (('top', 3), 281, None, 'tabby')
        >>> target_arg("box:0,0,32,16:3"), target_arg("region:cat"), target_arg("detected:1")
        (('box', (0.0, 0.0, 32.0, 16.0), 3), ('region', 'cat', None), ('detected', 1))
    """
    name = text.strip()
    kind = _kind_arg(name)
    if kind is not None:
        return kind
    text = name.lower()
    if text in ("top1", "top-1", "predicted"):
        return None
    if text == "true":
        return "true"
    if text.startswith("top") and text[3:].isdigit() and int(text[3:]) >= 1:
        return ("top", int(text[3:]))
    if text.isdigit():
        return int(text)
    if not name or name.lstrip("+-").replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError(
            f"expected top1, true, topK, a class index or a label name (a class index >= 0), "
            f"got {name!r}")
    return name


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--max-iter``, ``--lr``, ``--optimizer`` and ``--objective``: how each map is optimized.

    ``--iters`` and ``--schedule`` are kept as aliases of ``--max-iter`` and ``--optimizer``.
    The optimizer's and the objective's names are checked by the engine against its registries
    (:data:`~opticam_widgets.engine.optimizers.OPTIMIZERS`,
    :data:`~opticam_widgets.engine.objectives.OBJECTIVES`), which this module does not import
    (the parser is built without importing torch).
    """
    parser.add_argument("--max-iter", "--iters", dest="max_iter", type=positive_int,
                        default=DEFAULT_MAX_ITER, metavar="N",
                        help=f"optimization steps per map (default: {DEFAULT_MAX_ITER})")
    parser.add_argument("--lr", type=positive_float, default=DEFAULT_LR, metavar="X",
                        help=f"Adam learning rate (default: {DEFAULT_LR})")
    parser.add_argument("--optimizer", "--schedule", dest="optimizer", default="paper",
                        metavar="NAME",
                        help="paper (Adam on the channel weights, default) or fast (steps on "
                             "the map projected back onto weights: the same map quality sooner)")
    parser.add_argument("--objective", default="paper", metavar="NAME",
                        help="what each step maximises: paper (the score with the hidden "
                             "pixels black, default), mixed-fills (the mean score over black, "
                             "mean-colour, blur and noise fills) or mixed-fills-deletion (the "
                             "same, also lowering the score of the complement: best on ROAD and "
                             "deletion)")
