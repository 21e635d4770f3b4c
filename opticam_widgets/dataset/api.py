"""``explain_dataset``: explain every image of a dataset into a Parquet store; ``load_results``."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from ..bundle import ModelBundle, unpack_model
from ..checks import check_int
from ..defaults import DEFAULT_LR, DEFAULT_MAX_ITER, DEFAULT_PATIENCE, WIDGET_TOL
from .compute import METRICS, BatchExplainer, check_target
from .local import run_local
from .results import DatasetResults, load_results
from .sources import open_source
from .store import Store

__all__ = ["ENGINES", "explain_dataset"]

#: Accepted values of ``engine``.
ENGINES = ("local", "ray")


def _resolve_model(model: Any) -> Any:
    """A module or bundle as given; a text spec ("default", "torchvision:NAME") loaded."""
    if isinstance(model, str):
        from ..zoo import load_model

        return load_model(model)
    unpack_model(model)  # raises TypeError naming `model`
    return model


def _describe(target: Any) -> Any:
    return getattr(target, "__qualname__", repr(target)) if callable(target) else target


def _settings(model: Any, explainer: BatchExplainer, target: Any, metrics: Any,
              cam_kwargs: dict[str, Any]) -> dict[str, Any]:
    name = model.name if isinstance(model, ModelBundle) else type(model).__name__
    return {"model": name, "layer": explainer.layer, "target": _describe(target),
            "metrics": metrics, "labels": explainer.labels is not None,
            "input_size": list(explainer.pre.size) if explainer.pre.size else None,
            **{k: _describe(v) for k, v in sorted(cam_kwargs.items())}}


def _prepare_store(store: Store, settings: dict[str, Any], resume: bool) -> set[str]:
    """Check or reset the folder; the ids already stored (to skip)."""
    settings = json.loads(json.dumps(settings))  # as the file will hold it (lists, not tuples)
    if not resume:
        store.clear()
    old = store.read_settings()
    if old is not None:
        old = {k: v for k, v in old.items() if k != "format"}
        if old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise ValueError(
                f"`out` {str(store.out)!r} holds results made with other settings "
                f"({', '.join(diff)}); pass `resume=False` to start over there, or another `out`")
    elif store.shards():
        raise ValueError(f"`out` {str(store.out)!r} holds shards but no settings file; "
                         "pass `resume=False` to start over, or another `out`")
    store.write_settings(settings)
    return store.stored_ids()


def _check_run(engine: Any, metrics: Any, batch_size: Any, shard_size: Any,
               num_workers: Any) -> tuple[Any, int, int, int]:
    """Validate the run's options; ``(metrics, batch_size, shard_size, num_workers)``."""
    if engine not in ENGINES:
        raise ValueError(f"`engine` must be one of {', '.join(map(repr, ENGINES))}; got {engine!r}")
    if metrics not in METRICS or isinstance(metrics, int) and not isinstance(metrics, bool):
        raise ValueError(f"`metrics` must be True, False, 'paper' or 'full'; got {metrics!r}")
    if engine == "ray":
        from .ray_engine import import_ray

        import_ray()  # a missing extra fails before anything is written
    workers = (1 if (os.cpu_count() or 1) > 2 else 0) if num_workers is None \
        else check_int("num_workers", num_workers, 0)
    return ("full" if metrics == "full" else bool(metrics),
            check_int("batch_size", batch_size, 1), check_int("shard_size", shard_size, 1),
            workers)


def explain_dataset(
    model_or_bundle: Any,
    source: Any,
    out: str | os.PathLike,
    *,
    target: Any = None,
    batch_size: int = 16,
    max_iter: int = DEFAULT_MAX_ITER,
    lr: float = DEFAULT_LR,
    tol: float | None = WIDGET_TOL,
    patience: int = DEFAULT_PATIENCE,
    engine: str = "local",
    metrics: bool | str = True,
    resume: bool = True,
    progress: bool = True,
    num_workers: int | None = None,
    shard_size: int = 1024,
    cancel: threading.Event | None = None,
    callback: Callable[[int, int | None], Any] | None = None,
    ray_actors: int | None = None,
    **cam_kwargs: Any,
) -> DatasetResults:
    """Explain every image of a dataset with Opti-CAM; store one row per (image, class).

    Images are decoded and resized to the model's input size in ``DataLoader`` workers (the
    resize ``OptiCAM.explain`` itself applies before masking, so each map is the one
    ``explain`` gives for the photo); each batch is one optimization. The store keeps, per row,
    the scores, the channel weights, the feature-resolution map and the photo size
    (``results.saliency(row)`` rebuilds the full-resolution map exactly) and the per-image
    faithfulness terms. Rows are written in Parquet shards under ``out`` as they complete.

    Args:
        model_or_bundle: A classifier, a :class:`~opticam_widgets.bundle.ModelBundle` (its
            preprocessing and labels are used), or a spec such as ``"default"`` or
            ``"torchvision:resnet50"``.
        source: A folder (recursive; an ImageFolder layout gives the true labels, matched to
            the model's label names), a list of paths, a torch ``Dataset`` of images or
            ``(image, label)``, or any iterable of images.
        out: The results folder (created; see :class:`~opticam_widgets.dataset.store.Store`).
        target: ``None`` (top-1, default), ``"true"`` (the true label; images without one are
            reported in ``error``), a class index, ``("top", k)`` (k rows per image), or a
            callable ``(probs, item) -> class or classes``.
        batch_size: Images per optimization (models without a fixed input size: 1).
        max_iter: Adam steps per map (the paper's 100).
        lr: Adam learning rate.
        tol: Early stopping of each row on its plateau (see ``OptiCAM``; the widget's
            setting by default); ``None`` runs every row for ``max_iter`` steps (the paper's
            protocol).
        patience: Window of the early-stopping rule.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data; ``pip install
            opticam-widgets[ray]``; uses ``RAY_ADDRESS`` or a running ``ray.init``).
        metrics: ``True`` (masked probability and AD/AI/AG terms), ``"full"`` (plus insertion
            and deletion AUC, ≈ 2 × 21 forward passes per row more) or ``False``.
        resume: Skip the images already stored in ``out`` (same settings required);
            ``False`` deletes this package's files in ``out`` first.
        progress: Show a progress bar (images/s and ETA).
        num_workers: Decoding processes of the local engine (default: 1 when the machine has
            more than 2 cores' worth of work to share, else 0).
        shard_size: Rows per Parquet shard (about).
        cancel: A ``threading.Event``; when set, the run stops within one iteration and keeps
            the complete shards.
        callback: ``callback(done, total)`` after each batch.
        ray_actors: Ray engine: model replicas (default: one per GPU, else 1).
        **cam_kwargs: More :class:`~opticam_widgets.explainer.OptiCAM` arguments
            (``target_layer``, ``convention``, ``score``, ``precision``, ...).

    Returns:
        The :class:`~opticam_widgets.dataset.results.DatasetResults` of ``out``.

    Raises:
        TypeError, ValueError: Bad arguments (named), an empty or missing ``source``, a store
            made with other settings.

    Example:
        >>> from opticam_widgets import explain_dataset, load_default_model
        >>> results = explain_dataset(load_default_model(), "photos/", "results/")  # doctest: +SKIP
        >>> results.summary()  # doctest: +SKIP
    """
    metrics, batch_size, shard_size, workers = _check_run(engine, metrics, batch_size,
                                                          shard_size, num_workers)
    model = _resolve_model(model_or_bundle)
    store = Store(out)
    cam_kwargs = {"max_iter": max_iter, "lr": lr, "tol": tol, "patience": patience,
                  **cam_kwargs}
    explainer = BatchExplainer(model, target=check_target(target), metrics=metrics,
                               cam_kwargs=cam_kwargs)
    labels = explainer.labels
    src = open_source(source, labels)
    if explainer.pre.size is None:
        batch_size = 1  # images keep their own sizes: they cannot be stacked
    skip = _prepare_store(store, _settings(model, explainer, target, metrics, cam_kwargs),
                          resume)
    if engine == "local":
        run_local(explainer, src, store, skip=skip, batch_size=batch_size, num_workers=workers,
                  shard_size=shard_size, progress=progress, cancel=cancel, callback=callback)
    else:
        from .ray_engine import run_ray

        run_ray(model, explainer, src, store, skip=skip, batch_size=batch_size,
                shard_size=shard_size, progress=progress, actors=ray_actors,
                target=target, metrics=metrics, cam_kwargs=cam_kwargs, cancel=cancel,
                callback=callback)
    return load_results(out)
