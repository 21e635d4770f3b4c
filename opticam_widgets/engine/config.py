"""The settings of an Opti-CAM run, one frozen object checked once: :class:`OptiCAMSettings`.

:class:`~opticam_widgets.engine.explainer.OptiCAM` binds a model and holds one
:class:`OptiCAMSettings`; ``explain(**overrides)`` runs with :meth:`OptiCAMSettings.replace`;
:func:`~opticam_widgets.dataset.api.explain_dataset` takes the same object.

Example:
    >>> settings = OptiCAMSettings(max_iter=50, convention="destructive")
    >>> settings.replace(lr=0.1).lr, settings.max_iter
    (0.1, 50)
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..support.checks import check_choice, check_int, check_positive, check_tol
from ..support.defaults import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    DEFAULT_LR,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_ITER,
    DEFAULT_SCORE,
    LR_SCHEDULES,
    PRECISIONS,
    SCORES,
)
from .objectives import OBJECTIVES
from .optimizers import OPTIMIZERS, optimizer_stopping

__all__ = ["AUTO", "DEPRECATED_NAMES", "SETTING_NAMES", "OptiCAMSettings", "split_settings"]

#: ``tol`` / ``patience`` value meaning "the optimiser's own" (its registry entry).
AUTO = "auto"

#: Old keyword -> its one name now (still accepted, with a ``DeprecationWarning``).
DEPRECATED_NAMES = {"schedule": "optimizer"}


@dataclass(frozen=True)
class OptiCAMSettings:
    """How Opti-CAM optimises a map: algorithm, stopping and speed, each checked once.

    Algorithm:
        max_iter: Optimisation steps per explanation (the seed's default, 100).
        lr: Learning rate on the channel weights (for ``"fast"``: scales its map step).
        optimizer: A name of :data:`~opticam_widgets.engine.optimizers.OPTIMIZERS`:
            ``"paper"`` (Adam on the channel logits, the default) or ``"fast"`` (Adam on the
            map, projected back onto channel weights; see
            ``benchmarks/results/time_to_quality.md``).
        lr_schedule: ``None`` (constant step, the paper) or ``"cosine"`` (decays to 0 at
            ``max_iter``).
        nb_premises_at_startup: Starts per (image, class), run in one batch: the first from
            equal weights, the others from seeded random weights; the best final score wins.
        seed: Seed of the random starts.
        convention: ``"constructive"`` maximises the score of ``x ⊙ S``; ``"destructive"``
            minimises the score of ``x ⊙ (1 − S)``.
        score: ``"logit"`` (the paper), ``"probability"`` (softmax), or a callable
            ``(logits, targets) -> (N,)``.
        objective: A name of :data:`~opticam_widgets.engine.objectives.OBJECTIVES`:
            ``"paper"`` (the image masked to black, the default), ``"mixed-fills"`` (the
            expected score over black, mean-colour, blurred and noise fills) or
            ``"mixed-fills-deletion"`` (that, minus half the complement's).

    Stopping:
        tol: Each (image, class) row stops when, over its last ``patience`` steps, its best
            score gained at most ``tol × |best|``, and leaves the batch while the others go
            on. ``None`` runs all ``max_iter`` steps. ``"auto"`` (default): the optimiser's
            own rule (:data:`~opticam_widgets.engine.optimizers.OPTIMIZER_STOPPING`):
            ``"paper"`` runs every step, ``"fast"`` stops on its plateau. Read the resolved
            pair as :attr:`stopping`.
        patience: See ``tol``; ``"auto"`` (default): the optimiser's own.

    Speed:
        precision: ``"fp32"`` or ``"bf16"`` (autocast and channels-last input).
        fold_batchnorm: Run the loop on a cached copy of the model with its BatchNorms folded
            into the convolutions (:mod:`~opticam_widgets.model.folding`; same function to
            float rounding); ``False`` runs it on the model itself, frozen for the call.
        max_batch: Most rows ((image, class) pairs × starts) per forward/backward pass:
            memory is bounded by one batch; results as one by one (to float rounding).

    Raises:
        TypeError: A value of the wrong type (named).
        ValueError: A value out of range or not one of the choices (named, with them).

    Example:
        >>> OptiCAMSettings().stopping, OptiCAMSettings(optimizer="fast").stopping
        ((None, 10), (0.001, 5))
        >>> OptiCAMSettings(optimizer="fast", tol=None).stopping  # every step
        (None, 5)
    """

    max_iter: int = DEFAULT_MAX_ITER
    lr: float = DEFAULT_LR
    optimizer: str = "paper"
    lr_schedule: str | None = None
    nb_premises_at_startup: int = 1
    seed: int = 0
    convention: str = DEFAULT_CONVENTION
    score: str | Callable[..., Any] = DEFAULT_SCORE
    objective: str = "paper"
    tol: float | None | str = AUTO
    patience: int | str = AUTO
    precision: str = "fp32"
    fold_batchnorm: bool = True
    max_batch: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        tol, patience = _check_stopping(self.tol, self.patience)
        checked = {
            "max_iter": check_int("max_iter", self.max_iter, 1),
            "lr": check_positive("lr", self.lr),
            "nb_premises_at_startup": check_int("nb_premises_at_startup",
                                                self.nb_premises_at_startup, 1),
            "convention": check_choice("convention", self.convention, CONVENTIONS),
            "score": self.score if callable(self.score) else check_choice(
                "score", self.score, SCORES),
            "tol": tol, "patience": patience,
            "precision": check_choice("precision", self.precision, PRECISIONS),
            "lr_schedule": check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES),
            "seed": check_int("seed", self.seed, 0),
            "max_batch": check_int("max_batch", self.max_batch, 1),
            "optimizer": check_choice("optimizer", self.optimizer, tuple(OPTIMIZERS)),
            "objective": check_choice("objective", self.objective, tuple(OBJECTIVES)),
        }
        if not isinstance(self.fold_batchnorm, bool):
            raise TypeError(f"`fold_batchnorm` must be True or False, got "
                            f"{self.fold_batchnorm!r}")
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def stopping(self) -> tuple[float | None, int]:
        """``(tol, patience)`` the run stops with: ``"auto"`` resolved to the optimiser's own.

        Example:
            >>> OptiCAMSettings(optimizer="fast", patience=3).stopping
            (0.001, 3)
        """
        own_tol, own_patience = optimizer_stopping(self.optimizer)
        return (own_tol if self.tol == AUTO else self.tol,
                own_patience if self.patience == AUTO else self.patience)

    def replace(self, **overrides: Any) -> OptiCAMSettings:
        """A copy with ``overrides`` applied (:func:`dataclasses.replace`), checked again.

        ``schedule=`` is accepted for ``optimizer=`` with a ``DeprecationWarning``.

        Raises:
            TypeError: A keyword that is no setting (the valid ones named), or a bad type.
            ValueError: A bad value.

        Example:
            >>> OptiCAMSettings().replace(max_iter=5, tol=None).max_iter
            5
        """
        return dataclasses.replace(self, **_renamed(overrides)) if overrides else self


#: The names of the settings, in order.
SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(OptiCAMSettings))


def _renamed(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with deprecated names renamed (warned); unknown names refused."""
    out = {}
    for key, value in overrides.items():
        if key in DEPRECATED_NAMES:
            new = DEPRECATED_NAMES[key]
            warnings.warn(f"`{key}=` is deprecated; use `{new}=`", DeprecationWarning,
                          stacklevel=4)
            if new in overrides:
                raise TypeError(f"give `{new}` only (`{key}` is its deprecated name)")
            key = new
        elif key not in SETTING_NAMES:
            raise TypeError(f"unknown setting `{key}`; the settings are: "
                            f"{', '.join(SETTING_NAMES)}")
        out[key] = value
    return out


def _check_stopping(tol: Any, patience: Any) -> tuple[Any, Any]:
    """``tol`` and ``patience`` checked (``"auto"`` kept: the optimiser's own)."""
    auto_tol, auto_patience = (isinstance(v, str) and v == AUTO for v in (tol, patience))
    if isinstance(tol, str) and not auto_tol:
        raise ValueError(f"`tol` must be None, a number >= 0 or {AUTO!r}, got {tol!r}")
    if isinstance(patience, str) and not auto_patience:
        raise ValueError(f"`patience` must be an int >= 1 or {AUTO!r}, got {patience!r}")
    checked = check_tol(None if auto_tol else tol, 1 if auto_patience else patience)
    return AUTO if auto_tol else checked[0], AUTO if auto_patience else checked[1]


def split_settings(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(settings, the rest)`` of keyword arguments (deprecated names count as settings).

    Example:
        >>> split_settings({"max_iter": 5, "batch_size": 2})
        ({'max_iter': 5}, {'batch_size': 2})
    """
    names = set(SETTING_NAMES) | set(DEPRECATED_NAMES)
    return ({k: v for k, v in kwargs.items() if k in names},
            {k: v for k, v in kwargs.items() if k not in names})
