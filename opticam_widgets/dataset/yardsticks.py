"""The yardsticks of a dataset run: which ones, for which methods, and their values per row.

A dataset run measures every row's Opti-CAM map — and, with ``methods=``, the maps of baseline
methods (:data:`~opticam_widgets.evaluation.baselines.BASELINES`) of the same image and class —
on the yardsticks of :mod:`opticam_widgets.evaluation` (issue 29: a map judged on every
yardstick, not only the paper's black fill). What is measured is a tuple of names:

* a fill of :data:`~opticam_widgets.evaluation.fills.FILLS` (``"black"``, ``"mean"``,
  ``"blur"``, ``"image-mean"``): the row's AD / AI / AG terms under it (``AD_<fill>``, ...,
  :func:`~opticam_widgets.evaluation.metrics.faithfulness`), 2 forward passes per row;
* ``"deletion"`` and ``"insertion"``: the AUC of the deletion curve towards black and of the
  insertion curve from a blur (``deletion_black``, ``insertion_blur``: RISE's baselines,
  :mod:`~opticam_widgets.evaluation.curves`), ``steps + 1`` forward passes each;
* ``"road"``: ROAD's MoRF, LeRF and combined scores (``ROAD_MoRF``, ``ROAD_LeRF``, ``ROAD``,
  :func:`~opticam_widgets.evaluation.road.road`, needs the ``yardsticks`` extra): one sparse
  solve per percentile and order, seconds per row at 224 × 224 on a CPU, hence opt-in.

``"cheap"`` (:data:`CHEAP_YARDSTICKS`, the default of a new store) is the README's faithfulness
table without ROAD: AD / AI / AG under the black, mean and blur fills and the deletion AUC,
``steps + 7`` forward passes per row and method (27 at 20 steps; a 100-iteration Opti-CAM run
is 100 forward and backward passes); ``"all"`` adds insertion and ROAD, the costly ones
(insertion another ``steps + 1`` passes, ROAD seconds per row). Each value is stored in its
own float column ``"<method>:<key>"`` (``"opticam:deletion_black"``,
``"gradcam:AD_mean"``, :func:`column_name`), so any Parquet reader can compare methods row by
row. A store written before yardsticks has none of these columns: its rows read as missing,
never as 0, and its resume (``yardsticks="auto"``, the default) keeps measuring none, so a
store never mixes rows measured differently.

Example:
    >>> check_yardsticks("cheap")
    ('black', 'mean', 'blur', 'deletion')
    >>> YardstickSpec(("mean", "deletion"), ("gradcam",)).columns()[:2]
    ['opticam:AD_mean', 'opticam:AI_mean']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..evaluation.fills import FILLS

__all__ = ["CHEAP_YARDSTICKS", "CURVES", "METHOD", "YardstickSpec", "check_methods",
           "check_yardsticks", "column_name", "parse_column", "resolve_yardsticks"]

#: The method name of the run's own maps in the yardstick columns.
METHOD = "opticam"
#: The curve and ROAD yardsticks (beyond the fills): name -> the keys it stores.
CURVES: dict[str, tuple[str, ...]] = {"deletion": ("deletion_black",),
                                      "insertion": ("insertion_blur",),
                                      "road": ("ROAD_MoRF", "ROAD_LeRF", "ROAD")}
#: The default of a new store: the README's faithfulness table without ROAD (every fill of it
#: and deletion).
CHEAP_YARDSTICKS: tuple[str, ...] = ("black", "mean", "blur", "deletion")
#: Named sets of yardsticks.
SETS: dict[str, tuple[str, ...]] = {"cheap": CHEAP_YARDSTICKS,
                                    "all": (*CHEAP_YARDSTICKS, "insertion", "road")}


def check_yardsticks(value: Any) -> str | tuple[str, ...]:
    """``"auto"`` or the tuple of yardstick names ``value`` asks for.

    ``"cheap"`` and ``"all"`` are :data:`SETS`; ``False``, ``None`` or ``()`` measure none.

    Raises:
        TypeError: neither a name nor a list of names.
        ValueError: an unknown name (the valid ones listed).

    Example:
        >>> check_yardsticks(["road", "mean"]), check_yardsticks(False)
        (('mean', 'road'), ())
    """
    if value is None or value is False:
        return ()
    if isinstance(value, str):
        if value == "auto":
            return value
        if value in SETS:
            return SETS[value]
        value = (value,)
    if not isinstance(value, Sequence):
        raise TypeError(f"`yardsticks` must be 'auto', 'cheap', 'all', False or a list of "
                        f"names; got {type(value).__name__}")
    known = (*FILLS, *CURVES)
    bad = [v for v in value if v not in known]
    if bad:
        raise ValueError(f"`yardsticks` {bad} unknown; use 'auto', 'cheap', 'all' or names of "
                         f"{list(known)}")
    return tuple(v for v in known if v in value)  # one order, whatever the order given


def check_methods(value: Any) -> tuple[str, ...]:
    """The baseline methods whose maps are measured too (names of ``BASELINES``).

    Raises:
        TypeError: not a list of names.
        ValueError: an unknown name, or ``"opticam"`` (always measured).

    Example:
        >>> check_methods(["gradcam", "channel-mean"])
        ('gradcam', 'channel-mean')
    """
    from ..evaluation.baselines import BASELINES

    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"`methods` must be a list of method names of {BASELINES}; got "
                        f"{type(value).__name__}")
    bad = [v for v in value if v not in BASELINES]
    if bad:
        why = " (Opti-CAM's own maps are always measured)" if METHOD in bad else ""
        raise ValueError(f"`methods` {bad} unknown{why}; use names of {BASELINES}")
    return tuple(dict.fromkeys(value))


def resolve_yardsticks(value: Any, metrics: Any, stored: Mapping[str, Any] | None
                       ) -> tuple[str, ...]:
    """The yardsticks a run measures: ``"auto"`` is the store's own on a resume.

    ``"auto"`` on a store that already has settings measures what its rows were measured with
    (none for a store written before yardsticks), so a resume never mixes rows; on a new store
    it is :data:`CHEAP_YARDSTICKS` (none with ``metrics=False``).

    Example:
        >>> resolve_yardsticks("auto", True, {"model": "m"}), resolve_yardsticks("auto", True, None)
        ((), ('black', 'mean', 'blur', 'deletion'))
    """
    value = check_yardsticks(value)
    if value != "auto":
        return value  # type: ignore[return-value]
    if stored is not None:
        return tuple((stored.get("yardsticks") or {}).get("measures", ()))
    return CHEAP_YARDSTICKS if metrics else ()


def column_name(method: str, key: str) -> str:
    """The store column of a method's yardstick.

    Example:
        >>> column_name("gradcam", "deletion_black")
        'gradcam:deletion_black'
    """
    return f"{method}:{key}"


def parse_column(name: str) -> tuple[str, str] | None:
    """``(method, key)`` of a yardstick column, ``None`` for another column.

    Example:
        >>> parse_column("gradcam++:AD_mean"), parse_column("drop")
        (('gradcam++', 'AD_mean'), None)
    """
    method, sep, key = str(name).rpartition(":")
    return (method, key) if sep and method and key else None


def _keys(measure: str) -> tuple[str, ...]:
    return CURVES.get(measure) or (f"AD_{measure}", f"AI_{measure}", f"AG_{measure}")


@dataclass(frozen=True)
class YardstickSpec:
    """What a dataset run measures beyond the paper's metrics, and how.

    Attributes:
        measures: Yardstick names (see :func:`check_yardsticks`), checked.
        methods: Baseline methods measured besides Opti-CAM (:func:`check_methods`).
        steps: Steps of the deletion and insertion curves.
        percentiles: ROAD's percentiles (pytorch-grad-cam's default, the benchmark's).
    """

    measures: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    steps: int = 20
    percentiles: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)

    def __post_init__(self) -> None:
        measures = check_yardsticks(self.measures)
        if measures == "auto":
            raise ValueError("`measures` must be resolved (resolve_yardsticks) before a run")
        object.__setattr__(self, "measures", measures)
        object.__setattr__(self, "methods", check_methods(self.methods))
        if self.methods and not self.measures:
            raise ValueError("`methods` are compared on yardsticks: give `yardsticks` too "
                             "(e.g. 'cheap'), or no `methods`")
        self._check_extras()

    def _check_extras(self) -> None:
        """Refuse, before any image is read, a yardstick or method whose extra is missing."""
        import importlib.util

        from ..evaluation.baselines import REGISTRY
        from ..evaluation.rivals import RIVALS

        needs = {"yardsticks (pytorch-grad-cam)": ("pytorch_grad_cam", [
                     n for n in (*self.methods, *self.measures) if n in RIVALS or n == "road"]),
                 "baselines (torchcam)": ("torchcam", [
                     m for m in self.methods if REGISTRY[m].needs_torchcam])}
        for extra, (module, users) in needs.items():
            if users and importlib.util.find_spec(module) is None:
                raise ImportError(f"{users} need the optional extra {extra}: pip install "
                                  f"'opticam-widgets[{extra.split()[0]}]', or leave them out")

    def keys(self) -> list[str]:
        """The yardstick keys measured per method (``AD_mean``, ``deletion_black``, ...)."""
        return [k for m in self.measures for k in _keys(m)]

    def columns(self) -> list[str]:
        """The store's yardstick columns: every key of every method, Opti-CAM first."""
        return [column_name(m, k) for m in (METHOD, *self.methods) for k in self.keys()]

    def record(self) -> dict[str, Any] | None:
        """What the store's settings record (``None`` when nothing is measured)."""
        if not self.measures:
            return None
        return {"measures": list(self.measures), "methods": list(self.methods),
                "steps": self.steps,
                "percentiles": list(self.percentiles) if "road" in self.measures else None,
                "columns": self.columns()}

    def measure(self, net: Any, x: Tensor, maps: Tensor, target: Any, pre: Any
                ) -> dict[str, list[float]]:
        """Each yardstick key's value per row of ``maps`` (x: one image per map)."""
        from ..evaluation.curves import deletion, insertion
        from ..evaluation.metrics import faithfulness

        out: dict[str, list[float]] = {}
        kw = {"preprocess": pre, "steps": self.steps}
        for measure in self.measures:
            if measure == "deletion":
                out["deletion_black"] = deletion(net, x, maps, target, baseline="black",
                                                 **kw).auc.tolist()
            elif measure == "insertion":
                out["insertion_blur"] = insertion(net, x, maps, target, baseline="blur",
                                                  **kw).auc.tolist()
            elif measure == "road":
                from ..evaluation.road import road

                r = road(net, x, maps, target, pre, percentiles=self.percentiles)
                out.update(ROAD_MoRF=r.morf.tolist(), ROAD_LeRF=r.lerf.tolist(),
                           ROAD=r.combined.tolist())
            else:
                res = faithfulness(net, x, maps, target, pre, fill=measure)
                for key in ("AD", "AI", "AG"):
                    out[f"{key}_{measure}"] = res[f"{key}_per_image"].tolist()
        return out
