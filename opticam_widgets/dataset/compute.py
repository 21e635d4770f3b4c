"""One batch of decoded images -> store rows: predict, pick classes, optimize, measure.

:class:`BatchExplainer` is what both engines run on each batch (the local engine in-process,
the Ray engine once per actor), so they produce the same rows from the same batch. It uses the
public engine API only: ``OptiCAM.predict`` (the classes to explain), ``OptiCAM.explain`` (its
feature-resolution map ``low_res``) and the faithfulness functions of
:mod:`~opticam_widgets.evaluation.metrics`. With ``batching="independent"`` (the default) each
(image, class) row is predicted, optimized and measured on its own, so its floats are those of
``explain`` on that image alone whatever the batch; ``"shared"`` runs the batch as one
optimization (every row at once, each stopping on its own plateau), faster on a GPU but with
maps that depend on the batch by amplified float rounding.

Targets beyond a class (:class:`~opticam_widgets.engine.targets.MultiLabel`, a segmentation
``Region``, a detector's ``Box``) are resolved by ``explain`` itself, image by image: each of
its rows is one store row (its class in ``target``), measured on the target's own probability
(a label's sigmoid, a region's mean probability, a box's detection score).
:class:`~opticam_widgets.engine.targets.Annotations` explains each object a source annotates
(one row each, its box or mask mapped through the model's resize, stored in ``region_box`` /
``region_mask``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..engine.explainer import OptiCAM
from ..engine.targets import (
    Annotations,
    Classes,
    ClassIndex,
    ClassRows,
    Context,
    Label,
    MultiLabel,
    NoTarget,
    Target,
    TargetLike,
    as_target,
)
from ..engine.targets.classes import SOFTMAX_KINDS
from ..evaluation.metrics import (
    average_drop,
    average_gain,
    average_increase,
    deletion,
    insertion,
    masked_probabilities,
)
from ..model.bundle import ModelBundle, unpack_model
from ..model.detectors import detector_classes
from .annotations import annotation_columns
from .loader import Decoded, ImageBatch
from .yardsticks import METHOD, YardstickSpec, column_name

__all__ = ["BATCHING", "METRICS", "BatchExplainer", "TargetSpec", "check_target"]

#: Accepted values of ``batching``: ``"independent"`` (each row optimized on its own: its map
#: does not depend on the other images of its batch) or ``"shared"`` (one optimization per
#: batch: faster on GPUs, but float rounding of the batched model, amplified by Adam, makes a
#: map depend on its batch companions).
BATCHING = ("independent", "shared")

#: Accepted values of ``metrics``: AD/AI/AG terms (True/"paper"), plus insertion and deletion
#: AUC ("full"), or none (False).
METRICS = (True, False, "paper", "full")
#: What to explain in each image: a :class:`~opticam_widgets.engine.targets.Target`
#: (``TopK(k)``, ``TrueLabel()``, ``ClassIndex(i)``, ...) or its shorthand (``None``, ``"true"``,
#: an int, a label name, ``("top", k)``, a callable ``(probs, item) -> class(es)``).
TargetSpec = TargetLike


def check_target(target: Any, classes: int | None = None,
                 labels: Sequence[str] | None = None) -> Target:
    """``target`` as a :class:`~opticam_widgets.engine.targets.Target` for a dataset run.

    Label names are looked up in ``labels`` now (a name is a
    :class:`~opticam_widgets.engine.targets.ClassIndex` from here on), so that a typo fails
    before any image is read.

    Raises:
        TypeError: a float or a bool (not a class index), or no target at all.
        ValueError: a name not in ``labels`` (or no labels), an index out of range.

    Example:
        >>> check_target(("top", 3)), check_target("Tabby", labels=["tench", "tabby"])
        (TopK(k=3), ClassIndex(index=1))
    """
    parsed = as_target(target, labels)
    if isinstance(parsed, Label):  # no labels to look the name up in: refused now
        parsed = parsed.bind(labels)
    if classes is not None:
        for index in _fixed_classes(parsed):
            if not 0 <= index < classes:
                raise ValueError(f"`target` {index} is out of range for {classes} classes")
    return parsed


def _fixed_classes(target: Target) -> list[int]:
    if isinstance(target, ClassIndex):
        return [target.index]
    if isinstance(target, Classes):
        return [t.index for t in target.items if isinstance(t, ClassIndex)]
    return []


def _identity(record: Decoded) -> dict[str, Any]:
    """The columns that say which image a row is of (and its file's size and mtime)."""
    it, stamp = record.item, record.stamp
    return {"position": it.position, "id": it.id, "path": it.path, "true_label": it.label,
            "true_name": it.label_name, "file_size": stamp[0] if stamp else None,
            "file_mtime_ns": stamp[1] if stamp else None}


def _error_row(record: Decoded, error: str) -> dict[str, Any]:
    return {**_identity(record), "error": error}


def _classes_for(target: Target, probs: Tensor, record: Decoded,
                 labels: Sequence[str] | None) -> list[int] | str:
    """The classes to explain for one image (best first), or why there are none."""
    try:
        rows = target.resolve(probs[None], Context(labels=labels, items=[record.item]))
    except NoTarget as exc:
        return str(exc)
    return rows.classes.tolist()


class BatchExplainer:
    """Explain batches of decoded images; returns store rows (dicts in the store's schema).

    Args:
        model: A module or :class:`~opticam_widgets.model.bundle.ModelBundle`.
        target: See :func:`check_target`.
        metrics: See :data:`METRICS`.
        cam_kwargs: Arguments of :class:`~opticam_widgets.engine.explainer.OptiCAM` (max_iter, lr,
            tol, patience, target_layer, ...).
        curve_steps: Steps of the insertion / deletion curves (``metrics="full"``).
        batching: See :data:`BATCHING`. ``"independent"`` predicts, optimizes and measures
            each (image, class) row alone, so every row equals ``OptiCAM.explain`` on its image
            and class whatever the batch; ``"shared"`` runs a batch as one optimization.
        yardsticks: What each row's map (and each baseline method's map of the same image and
            class) is measured on (:class:`~.yardsticks.YardstickSpec`); ``None``: nothing
            beyond ``metrics``.
    """

    def __init__(self, model: Any, *, target: TargetSpec = None, metrics: Any = True,
                 cam_kwargs: dict[str, Any] | None = None, curve_steps: int = 20,
                 batching: str = "independent", yardsticks: YardstickSpec | None = None
                 ) -> None:
        self.net, self.pre = unpack_model(model)
        self.labels: list[str] | None = model.labels if isinstance(model, ModelBundle) else None
        self.cam = OptiCAM(model, **(cam_kwargs or {}))
        self.target = check_target(target, labels=self.labels)
        self.metrics, self.curve_steps = metrics, curve_steps
        if batching not in BATCHING:
            raise ValueError(f"`batching` must be 'independent' or 'shared'; got {batching!r}")
        self.batching = batching
        self.yardsticks = yardsticks or YardstickSpec()

    @property
    def layer(self) -> str:
        """The target layer's name."""
        return self.cam.layer_name

    def _name(self, index: int | None) -> str | None:
        if index is None:
            return None
        return self.labels[index] if self.labels and 0 <= index < len(self.labels) else None

    def __call__(self, batch: ImageBatch, cancel: threading.Event | None = None
                 ) -> list[dict[str, Any]] | None:
        """Rows for every record of ``batch`` (errors included); ``None`` when cancelled."""
        rows = [_error_row(r, r.error or "") for r in batch.bad]
        if not batch.good:
            return rows
        x = batch.pixels.to(self.cam.device)  # type: ignore[union-attr]
        if isinstance(self.target, Annotations):
            return self._explain_annotated(batch.good, x, rows, cancel)
        if not isinstance(self.target, SOFTMAX_KINDS):
            return self._explain_kind(batch.good, x, rows, cancel)
        alone = self.batching == "independent"
        probs = (torch.cat([self.cam.predict(x[i:i + 1]) for i in range(x.shape[0])]) if alone
                 else self.cam.predict(x))
        index, targets, ranks = [], [], []
        for i, record in enumerate(batch.good):
            classes = _classes_for(self.target, probs[i], record, self.labels)
            if isinstance(classes, str):
                rows.append(_error_row(record, classes))
                continue
            index += [i] * len(classes)
            targets += classes
            ranks += list(range(len(classes)))
        if not index:
            return rows
        if not alone:
            done = self._explain(batch.good, x, probs, index, targets, ranks, cancel)
            return None if done is None else rows + done
        for r in range(len(index)):  # each row alone: the same floats whatever the batch
            one = self._explain(batch.good, x, probs, index[r:r + 1], targets[r:r + 1],
                                ranks[r:r + 1], cancel)
            if one is None:
                return None
            rows += one
        return rows

    def _explain_kind(self, records: Sequence[Decoded], x: Tensor, rows: list[dict[str, Any]],
                      cancel: threading.Event | None) -> list[dict[str, Any]] | None:
        """Each image alone, its target resolved by ``explain`` (a kind beyond a class)."""
        for i, record in enumerate(records):
            try:
                probs = self.cam.predict(x[i:i + 1], target=self.target)
            except ValueError:  # a detector: no class list
                probs = None
            try:
                result = self.cam.explain(x[i:i + 1], target=self.target, cancel=cancel)
            except NoTarget as exc:
                rows.append(_error_row(record, str(exc)))
                continue
            if result.cancelled:
                return None
            classes = list(result.target)
            measured = (ClassRows(torch.tensor(classes), torch.arange(len(classes)),
                                  activation="sigmoid")
                        if isinstance(self.target, MultiLabel) else self.target)
            rows += self._rows(records, x[[i] * len(classes)], probs, [0] * len(classes),
                               classes, list(range(len(classes))), result, measured, i)
        return rows

    def _explain_annotated(self, records: Sequence[Decoded], x: Tensor,
                           rows: list[dict[str, Any]], cancel: threading.Event | None
                           ) -> list[dict[str, Any]] | None:
        """Each annotated object alone: a ``Box`` (detector) or ``Region`` row, its rank k."""
        seen = (int(x.shape[-2]), int(x.shape[-1]))
        detector = detector_classes(self.net) is not None
        for i, record in enumerate(records):
            objects = record.item.annotations
            if not objects:
                rows.append(_error_row(record, f"image {record.item.id!r} has no annotations"))
                continue
            probs = self.cam.predict(x[i:i + 1], target=self.target)
            for k, obj in enumerate(objects):
                try:
                    target = self.target.target_for(  # type: ignore[attr-defined]
                        obj.seen_at(record.photo_size, seen),  # type: ignore[arg-type]
                        detector, self.labels)
                    result = self.cam.explain(x[i:i + 1], target=target, cancel=cancel)
                except ValueError as exc:
                    raise ValueError(f"`source` image {record.item.id!r}, {obj.name}: {exc}; "
                                     f"fix the annotation, or the model's labels") from None
                if result.cancelled:
                    return None
                extra = annotation_columns(obj, record.photo_size)  # type: ignore[arg-type]
                rows += self._rows(records, x[i:i + 1], probs, [0], [int(result.target[0])],
                                   [k], result, target, i, [extra])
        return rows

    def _explain(self, records: Sequence[Decoded], x: Tensor, probs: Tensor,
                 index: list[int], targets: list[int], ranks: list[int],
                 cancel: threading.Event | None) -> list[dict[str, Any]] | None:
        idx = torch.tensor(index, device=x.device)
        result = self.cam.explain(x[idx], target=targets, cancel=cancel)
        if result.cancelled:
            return None
        return self._rows(records, x[idx], probs, index, targets, ranks, result, targets)

    def _rows(self, records: Sequence[Decoded], x: Tensor, probs: Tensor | None,
              index: list[int], targets: list[int], ranks: list[int], result: Any,
              measured: Any, first: int = 0,
              extra: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Store rows of ``result``: row ``r`` is image ``first + index[r]``, ``targets[r]``.

        ``measured``: the target the metrics read (the classes, or the kind's own); ``extra``:
        more columns of each row (an annotated object's box and mask).
        """
        low = result.low_res.float()
        terms = self._faithfulness(x, result.saliency, measured)
        terms.update(self._yardsticks(x, result.saliency, measured))
        iters, early = result.iterations_per_row, result.stopped_early
        rows = []
        for r, (i, cls) in enumerate(zip(index, targets)):
            rec = records[first + i]
            pred = None if probs is None else int(probs[i].argmax())
            label = rec.item.label
            rows.append({
                **_identity(rec), "predicted": pred, "predicted_name": self._name(pred),
                "predicted_prob": None if pred is None else float(probs[i, pred]),
                "correct": None if label is None or pred is None else pred == label,
                "rank": ranks[r], "target": cls, "target_name": self._name(cls),
                **{k: v[r] for k, v in terms.items()},
                **({} if self.metrics or probs is None else {"prob": float(probs[i, cls])}),
                "original_score": float(result.original_score[r]),
                "initial_score": float(result.initial_score[r]),
                "final_score": float(result.final_score[r]),
                "iterations": int(iters[r]), "stopped_early": bool(early[r]),
                "map_height": int(low.shape[1]), "map_width": int(low.shape[2]),
                "map": low[r].flatten().tolist(),
                "photo_height": rec.photo_size[0], "photo_width": rec.photo_size[1],  # type: ignore[index]
                "weights": result.weights[r].tolist(), "thumbnail": rec.thumbnail,
                "error": None, **(extra[r] if extra else {}),
            })
        return rows

    def _faithfulness(self, x: Tensor, saliency: Tensor, targets: Any) -> dict[str, list[Any]]:
        """Per-row p, o and the AD/AI/AG terms (+ insertion/deletion AUC with "full")."""
        n = int(saliency.shape[0])
        out: dict[str, list[Any]] = {k: [None] * n for k in (
            "prob", "masked_prob", "drop", "increase", "gain", "insertion_auc", "deletion_auc")}
        if not self.metrics:
            return out
        p, o = masked_probabilities(self.net, x, saliency, targets, self.pre)
        out["prob"], out["masked_prob"] = p.tolist(), o.tolist()
        out["drop"] = [average_drop([a], [b]) for a, b in zip(out["prob"], out["masked_prob"])]
        out["increase"] = [average_increase([a], [b]) for a, b in zip(p.tolist(), o.tolist())]
        out["gain"] = [average_gain([a], [b]) for a, b in zip(p.tolist(), o.tolist())]
        if self.metrics == "full":
            kw = {"preprocess": self.pre, "steps": self.curve_steps}
            out["insertion_auc"] = insertion(self.net, x, saliency, targets, **kw).auc.tolist()
            out["deletion_auc"] = deletion(self.net, x, saliency, targets, **kw).auc.tolist()
        return out


    def _yardsticks(self, x: Tensor, saliency: Tensor, measured: Any) -> dict[str, list[Any]]:
        """Per-row yardstick columns of Opti-CAM's maps and of each baseline's maps.

        A baseline that cannot explain the rows (a target beyond a class, a missing extra's
        method refused with ``ValueError``) leaves its columns missing for these rows.
        """
        spec, n = self.yardsticks, int(saliency.shape[0])
        out: dict[str, list[Any]] = {c: [None] * n for c in spec.columns()}
        if not spec.measures:
            return out
        maps = {METHOD: saliency}
        if spec.methods and isinstance(measured, list):  # classes: the baselines explain them
            from ..evaluation.baselines import baseline_map

            for method in spec.methods:
                try:
                    maps[method] = baseline_map(method, self.net, x, measured,
                                                target_layer=self.layer, preprocess=self.pre)
                except ValueError:
                    continue
        for method, m in maps.items():
            for key, values in spec.measure(self.net, x, m, measured, self.pre).items():
                out[column_name(method, key)] = values
        return out
