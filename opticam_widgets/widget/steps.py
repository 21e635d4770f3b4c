"""The iterations control (a typed number and a log-scale slider) and the optimiser's.

The optimiser that takes the steps is a row of toggle buttons (:func:`optimizer_control`).

A linear slider from 1 to 500 gives a drag of 60 pixels the whole range from 100 to 1; the
number of Adam steps matters by its order of magnitude (5, 50, 500), so the slider here is on a
log scale (:data:`SCALE_STEPS` keyboard steps of about ×1.26 each from 1 to the maximum), and
the exact number is typed in a box beside it (↑/↓ step by one). The box is the control of
record: ``widget.controls.iterations`` stays an int number of steps that code may set; the
slider follows it and sets it (rounded).

Example:
    >>> box = iterations_box(100)
    >>> scale = iterations_scale(box)
    >>> scale.value = 10 ** 1.5
    >>> box.value
    32
    >>> box.value = 7
    >>> round(scale.value)
    7
"""

from __future__ import annotations

import math

import ipywidgets as w

from ..engine.optimizers import OPTIMIZERS
from ..support.defaults import DEFAULT_MAX_ITER

__all__ = ["MAX_ITERATIONS", "OPTIMIZER_TIPS", "SCALE_STEPS", "iterations_box",
           "iterations_scale", "optimizer_control"]

#: The most iterations the widget offers.
MAX_ITERATIONS = 500

#: Keyboard steps of the log-scale slider from 1 to :data:`MAX_ITERATIONS` (×1.26 each).
SCALE_STEPS = 27

#: What the slider is called by screen readers (it has no visible label of its own: it sits
#: right after the labelled box).
SCALE_NAME = "Iterations, log scale"


def iterations_box(value: int = DEFAULT_MAX_ITER) -> w.BoundedIntText:
    """The typed number of iterations (1 to :data:`MAX_ITERATIONS`), named "Iterations".

    ``continuous_update=False``: a number is taken when typed in full (Enter or leaving the
    box), and it never starts a run by itself.

    Example:
        >>> box = iterations_box()
        >>> box.min, box.max, box.value, box.description
        (1, 500, 100, 'Iterations')
    """
    return w.BoundedIntText(value=value, min=1, max=MAX_ITERATIONS, step=1,
                            description="Iterations", continuous_update=False,
                            style={"description_width": "initial"},
                            tooltip="Adam steps (type a number, or ↑/↓)",
                            layout=w.Layout(width="150px"))


def iterations_scale(box: w.BoundedIntText) -> w.FloatLogSlider:
    """A log-scale slider linked both ways to ``box`` (its value rounded there).

    The slider has no visible label (the box beside it names the pair); its tooltip
    (:data:`SCALE_NAME`) names its handle for screen readers (see :mod:`.upload`'s keyboard
    helper). When the slider rests between two integers that round to the box's value, it is
    not moved back: the next key press goes on from where it is, so ←/→ walk the whole range.

    Example:
        >>> scale = iterations_scale(iterations_box(1))
        >>> round(scale.base ** scale.max), scale.readout
        (500, False)
    """
    top = math.log10(box.max)
    scale = w.FloatLogSlider(value=box.value, base=10, min=0.0, max=top,
                             step=top / SCALE_STEPS, readout=False, description="",
                             continuous_update=False, tooltip=SCALE_NAME,
                             layout=w.Layout(width="170px"))
    scale.add_class("opticam-iterations-scale")

    def from_scale(change: dict) -> None:
        value = min(box.max, max(box.min, round(float(change["new"]))))
        if value != box.value:
            box.value = value

    def from_box(change: dict) -> None:
        if round(float(scale.value)) != int(change["new"]):
            scale.value = float(change["new"])

    scale.observe(from_scale, "value")
    box.observe(from_box, "value")
    return scale


#: What each optimiser's button says when hovered (others: their name).
OPTIMIZER_TIPS = {"paper": "the paper's Adam on the channel weights: every iteration runs",
                  "fast": "Adam on the map, projected onto channel weights: stops on its own "
                          "plateau, about a quarter of the paper's passes"}


def optimizer_control(value: str = "paper") -> w.ToggleButtons:
    """The optimiser: one button per name of the engine's ``OPTIMIZERS`` (paper, fast).

    Its accessible name is its description, "Optimizer"; like the sliders, changing it never
    starts a run by itself.

    Example:
        >>> optimizer_control().options, optimizer_control("fast").description
        (('paper', 'fast'), 'Optimizer')
    """
    names = list(OPTIMIZERS)
    return w.ToggleButtons(options=names, value=value, description="Optimizer",
                           tooltips=[OPTIMIZER_TIPS.get(n, n) for n in names],
                           style={"button_width": "auto", "description_width": "initial"})
