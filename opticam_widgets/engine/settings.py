"""The per-call settings of :meth:`~opticam_widgets.engine.explainer.OptiCAM.explain`, checked.

Each override is checked as the constructor checks it; ``None`` (or :data:`UNSET` for
``tol``, where ``None`` means "no early stopping") keeps the explainer's own value.

Example:
    >>> from types import SimpleNamespace
    >>> cam = SimpleNamespace(max_iter=100, lr=0.2, convention="constructive", tol=None,
    ...                       patience=10)
    >>> explain_settings(cam, 5, None, None, UNSET, None, None, None).steps
    5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..support.checks import check_choice, check_int, check_positive, check_tol
from ..support.defaults import CONVENTIONS

__all__ = ["UNSET", "ExplainSettings", "explain_settings"]

#: Default of ``explain(tol=...)``: keep the explainer's ``tol`` (``None`` disables stopping).
UNSET: Any = object()


@dataclass(frozen=True)
class ExplainSettings:
    """The checked settings of one ``explain`` call."""

    steps: int
    lr: float
    convention: str
    tol: float | None
    patience: int


def explain_settings(cam: Any, max_iter: Any, lr: Any, convention: Any, tol: Any,
                     patience: Any, callback: Any, cancel: Any) -> ExplainSettings:
    """Check the overrides of one ``explain`` call against ``cam``'s own settings.

    Raises:
        TypeError: ``callback`` not callable, ``cancel`` not an event, a non-number.
        ValueError: a value out of range (named in backticks).
    """
    steps = cam.max_iter if max_iter is None else check_int("max_iter", max_iter, 1)
    rate = cam.lr if lr is None else check_positive("lr", lr)
    convention = cam.convention if convention is None else check_choice(
        "convention", convention, CONVENTIONS)
    tol, patience = check_tol(cam.tol if tol is UNSET else tol,
                              cam.patience if patience is None else patience)
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable, got {type(callback).__name__}")
    if cancel is not None and not hasattr(cancel, "is_set"):
        raise TypeError(f"`cancel` must be a threading.Event, got {type(cancel).__name__}")
    return ExplainSettings(steps, rate, convention, tol, patience)
