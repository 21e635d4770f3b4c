"""Names and default values shared by the engine, the widget and the command line.

Defined once here and imported everywhere else; this module imports nothing (not even torch), so
the command line can build its parser from it quickly.

Example:
    >>> from opticam_widgets.support.defaults import CONVENTIONS, DEFAULT_LR
    >>> CONVENTIONS[0], DEFAULT_LR
    ('constructive', 0.2)
"""

from __future__ import annotations

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "DEFAULT_LR",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_ITER",
    "DEFAULT_PATIENCE",
    "DEFAULT_SCORE",
    "LR_SCHEDULES",
    "PRECISIONS",
    "SCORES",
    "WIDGET_PATIENCE",
    "WIDGET_TOL",
]

#: Accepted values of ``convention``: keep the score of ``x ⊙ S`` or remove it from ``x ⊙ (1 − S)``.
CONVENTIONS: tuple[str, ...] = ("constructive", "destructive")
#: Accepted names of ``score`` (a callable ``(logits, targets) -> (N,)`` is accepted too).
SCORES: tuple[str, ...] = ("logit", "probability")
#: Accepted values of ``precision``.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
#: Accepted values of ``lr_schedule`` (``None``: constant learning rate, the paper).
LR_SCHEDULES: tuple[str | None, ...] = (None, "cosine")

#: Adam steps per explanation (the paper's 100).
DEFAULT_MAX_ITER = 100
#: Adam learning rate on the channel weights.
DEFAULT_LR = 0.2
#: Rows ((image, class) pairs × trajectories) per forward/backward pass of the loop.
DEFAULT_MAX_BATCH = 8
#: Default ``convention``.
DEFAULT_CONVENTION = "constructive"
#: Default ``score``.
DEFAULT_SCORE = "logit"
#: Early-stopping window of the engine (used when ``tol`` is set).
DEFAULT_PATIENCE = 10

#: Early stopping used by the widget (the engine's default is off): stop when the best score
#: gained at most ``tol × |best|`` over the last ``patience`` iterations.
WIDGET_TOL = 1e-3
#: See :data:`WIDGET_TOL`.
WIDGET_PATIENCE = 10
