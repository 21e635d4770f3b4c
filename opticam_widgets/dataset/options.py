"""The knobs of a dataset run itself (not of the maps): :class:`RunOptions`.

What a map is made of is an :class:`~opticam_widgets.engine.config.OptiCAMSettings`; how the
run goes (batches, shards, engine, resume, progress) is a :class:`RunOptions`.
:func:`split_keywords` sorts the loose keywords of
:func:`~opticam_widgets.dataset.api.explain_dataset` into the two (and the layer binding).

Example:
    >>> RunOptions(batch_size=8, metrics="paper").metrics
    True
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from ..engine.config import split_settings
from ..support.checks import check_int, check_positive
from .compute import BATCHING, METRICS
from .writer import DEFAULT_FLUSH_EVERY, DEFAULT_SHARD_SIZE
from .yardsticks import check_methods, check_yardsticks

__all__ = ["BINDING_NAMES", "ENGINES", "RunOptions", "split_keywords"]

#: Accepted values of ``engine``.
ENGINES = ("local", "ray")
#: Keywords of ``explain_dataset`` that bind the model's layer (given to ``OptiCAM``).
BINDING_NAMES = ("target_layer", "reshape")


@dataclass(frozen=True)
class RunOptions:
    """How a dataset run goes, each field checked once.

    Attributes:
        batch_size: Images per optimization (models without a fixed input size: 1).
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data; ``pip install
            opticam-widgets[ray]``; uses ``RAY_ADDRESS`` or a running ``ray.init``).
        metrics: ``True`` or ``"paper"`` (masked probability and AD/AI/AG terms), ``"full"``
            (plus insertion and deletion AUC, ≈ 2 × 21 forward passes per row more) or
            ``False``.
        resume: Skip the images already stored (same settings and weights required; error
            rows of a file changed since are retried); ``False`` starts over.
        progress: Show a progress bar (images/s and ETA).
        num_workers: Decoding processes of the local engine (``None``: 1 when the machine has
            more than 2 cores, else 0).
        shard_size: Rows per Parquet shard at most; rows are written once this many are done.
        flush_every: Seconds after which finished rows are written even when fewer than
            ``shard_size``.
        ray_actors: Ray engine: model replicas (``None``: one per GPU, else 1).
        batching: ``"independent"`` (each (image, class) row optimized alone: its map is
            ``OptiCAM.explain``'s whatever the batch) or ``"shared"`` (one optimization per
            batch: faster on a GPU, maps depend on their batch by float rounding).
        yardsticks: What each row's map is measured on beyond ``metrics``
            (:mod:`~.yardsticks`): ``"auto"`` (a new store: ``"cheap"``, i.e. AD/AI/AG under
            the black, mean and blur fills and deletion; a resumed store: what its rows
            have), ``"all"`` (plus insertion and ROAD, slow), a list of names, or ``False``.
        methods: Baseline methods (``BASELINES`` names, e.g. ``("gradcam", "finercam")``)
            whose maps of each row's image and class are measured on the same yardsticks.

    Example:
        >>> RunOptions(engine="ray", ray_actors=2).batching
        'independent'
    """

    batch_size: int = 16
    engine: str = "local"
    metrics: bool | str = True
    resume: bool = True
    progress: bool = True
    num_workers: int | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    flush_every: float = DEFAULT_FLUSH_EVERY
    ray_actors: int | None = None
    batching: str = "independent"
    yardsticks: Any = "auto"
    methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_positive("flush_every", self.flush_every)
        if self.engine not in ENGINES:
            raise ValueError(f"`engine` must be one of {', '.join(map(repr, ENGINES))}; got "
                             f"{self.engine!r}")
        metrics = self.metrics
        if metrics not in METRICS or isinstance(metrics, int) and not isinstance(metrics, bool):
            raise ValueError(f"`metrics` must be True, False, 'paper' or 'full'; got {metrics!r}")
        if self.batching not in BATCHING:
            raise ValueError(f"`batching` must be 'independent' or 'shared'; got "
                             f"{self.batching!r}")
        checked = {"metrics": "full" if metrics == "full" else bool(metrics),
                   "batch_size": check_int("batch_size", self.batch_size, 1),
                   "shard_size": check_int("shard_size", self.shard_size, 1),
                   "yardsticks": check_yardsticks(self.yardsticks),
                   "methods": check_methods(self.methods)}
        if self.num_workers is not None:
            checked["num_workers"] = check_int("num_workers", self.num_workers, 0)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def workers(self) -> int:
        """``num_workers``, or its default for this machine.

        Example:
            >>> RunOptions(num_workers=3).workers()
            3
        """
        if self.num_workers is not None:
            return self.num_workers
        return 1 if (os.cpu_count() or 1) > 2 else 0


#: The names of the run options.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunOptions))


def split_keywords(keywords: dict[str, Any]
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(settings, run options, binding)`` of ``explain_dataset``'s loose keywords.

    Raises:
        TypeError: A keyword that is none of them (the valid ones named).

    Example:
        >>> split_keywords({"max_iter": 5, "batch_size": 2, "target_layer": "layer4"})
        ({'max_iter': 5}, {'batch_size': 2}, {'target_layer': 'layer4'})
    """
    settings, rest = split_settings(keywords)
    unknown = [k for k in rest if k not in OPTION_NAMES and k not in BINDING_NAMES]
    if unknown:
        raise TypeError(f"explain_dataset() got unknown keyword(s) {', '.join(unknown)}; it "
                        f"takes OptiCAMSettings fields, RunOptions fields "
                        f"({', '.join(OPTION_NAMES)}) and {', '.join(BINDING_NAMES)}")
    return (settings, {k: v for k, v in rest.items() if k in OPTION_NAMES},
            {k: v for k, v in rest.items() if k in BINDING_NAMES})
