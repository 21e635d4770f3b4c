"""``explain_dataset``: explain every image of a dataset into a Parquet store; ``load_results``."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable
from typing import Any

from ..engine.classes import model_labels
from ..engine.config import OptiCAMSettings
from ..engine.explainer import OptiCAM
from ..model.bundle import unpack_model
from ..support.defaults import WIDGET_TOL
from .compaction import compact, drop_rows, recover
from .compute import BatchExplainer, check_target
from .fingerprint import check_same_run, run_settings
from .loader import file_stamp
from .local import AnyEvent, run_local
from .lock import StoreLock
from .options import ENGINES, RunOptions, split_keywords
from .results import DatasetResults, load_results
from .signals import RunStopped, stop_on_signals
from .sources import Source, open_source
from .store import META_RUN, META_SETTINGS, Store
from .writer import ShardWriter
from .yardsticks import YardstickSpec, resolve_yardsticks

__all__ = ["DATASET_SETTINGS", "ENGINES", "RunOptions", "explain_dataset"]

#: The settings of a dataset run when none are given: the paper's, with the widget's early
#: stopping (``tol=None`` runs every row for ``max_iter`` steps, the paper's protocol).
DATASET_SETTINGS = OptiCAMSettings(tol=WIDGET_TOL)


def _resolve_model(model: Any) -> Any:
    """A module or bundle as given; a text spec ("default", "torchvision:NAME") loaded."""
    if isinstance(model, str):
        from ..model.zoo import load_model

        return load_model(model)
    unpack_model(model)  # raises TypeError naming `model`
    return model


def _skip_ids(store: Store) -> set[str]:
    """Ids to skip: every stored image but those with an error row whose file changed since.

    Those rows are removed from the store and the images retried (a repaired image gets its
    map).
    """
    rows = store.read(["id", "path", "error", "file_size", "file_mtime_ns"]).to_pylist()
    changed = set()
    for r in rows:
        if r["error"] is None or r["path"] is None:
            continue
        then = None if r["file_size"] is None else (r["file_size"], r["file_mtime_ns"])
        if file_stamp(r["path"]) != then:
            changed.add(r["id"])
    drop_rows(store, changed)
    return {r["id"] for r in rows} - changed


def _prepare_store(store: Store, settings: dict[str, Any], resume: bool,
                   src: Source) -> set[str]:
    """Check or reset the folder (its lock held); the ids already stored (to skip)."""
    settings = json.loads(json.dumps(settings))  # as the file will hold it (lists, not tuples)
    if not resume:
        store.clear()
    recover(store)
    old = store.read_settings()
    if old is not None:
        check_same_run(str(store.out), {k: v for k, v in old.items()
                                        if k not in ("format", "source")}, settings)
    elif store.shards():
        raise ValueError(f"`out` {str(store.out)!r} holds shards but no settings file; "
                         "pass `resume=False` to start over, or another `out`")
    store.write_settings({**settings, "source": {"skipped_files": src.skipped_files}})
    store.metadata[META_SETTINGS] = settings
    return _skip_ids(store)


def _run_parts(settings: Any, options: RunOptions | None, keywords: dict[str, Any]
               ) -> tuple[OptiCAMSettings, RunOptions, dict[str, Any]]:
    """The run's settings, options and layer binding from the arguments and loose keywords."""
    overrides, more, binding = split_keywords(keywords)
    if isinstance(settings, OptiCAM):
        binding = {"target_layer": settings.target_layer, "reshape": settings.reshape,
                   **binding}
        settings = settings.settings
    if settings is not None and not isinstance(settings, OptiCAMSettings):
        raise TypeError(f"`settings` must be an OptiCAMSettings, an OptiCAM or None, got "
                        f"{type(settings).__name__}")
    if options is not None and not isinstance(options, RunOptions):
        raise TypeError(f"`options` must be a RunOptions or None, got {type(options).__name__}")
    options = dataclasses.replace(options or RunOptions(), **more)
    if options.engine == "ray":
        from .ray_engine import import_ray

        import_ray()  # a missing extra fails before anything is written
    options = dataclasses.replace(options, num_workers=options.workers())
    return (settings or DATASET_SETTINGS).replace(**overrides), options, binding


def explain_dataset(
    model_or_bundle: Any,
    source: Any,
    out: str | os.PathLike,
    *,
    target: Any = None,
    settings: OptiCAMSettings | OptiCAM | None = None,
    options: RunOptions | None = None,
    cancel: threading.Event | None = None,
    callback: Callable[[int, int | None], Any] | None = None,
    **keywords: Any,
) -> DatasetResults:
    """Explain every image of a dataset with Opti-CAM; store one row per (image, class).

    Images are decoded and resized to the model's input size in ``DataLoader`` workers (the
    resize ``OptiCAM.explain`` itself applies before masking, so each map is the one
    ``explain`` gives for the photo); each batch is one optimization. The store keeps, per row,
    the scores, the channel weights, the feature-resolution map and the photo size
    (``results.saliency(row)`` rebuilds the full-resolution map exactly) and the per-image
    faithfulness terms. Rows are written in Parquet shards under ``out`` as they complete: at
    least every ``shard_size`` rows or ``flush_every`` seconds, so a killed run loses at most
    about a minute of work; small shards are merged at the end of the run.

    One run at a time per ``out`` (a lock; a second run is refused with the holder's host, pid
    and start time). A resume checks that it is the same run: the model's weights (a digest),
    layer, preprocessing, settings and package version must match the store's. SIGTERM and
    SIGHUP stop the run like Ctrl-C: complete rows are kept and :class:`RunStopped` (a
    ``KeyboardInterrupt``) says how to resume.

    Args:
        model_or_bundle: A classifier, a :class:`~opticam_widgets.model.bundle.ModelBundle` (its
            preprocessing and labels are used), or a spec such as ``"default"`` or
            ``"torchvision:resnet50"``.
        source: A folder (recursive; an ImageFolder layout gives the true labels, matched to
            the model's label names), a list of paths, a torch ``Dataset`` of images or
            ``(image, label)``, or any iterable of images.
        out: The results folder (created; see :class:`~opticam_widgets.dataset.store.Store`).
        target: What to explain in each image (:mod:`~opticam_widgets.engine.targets`):
            ``None`` or ``TopK()`` (top-1, default), ``"true"`` or ``TrueLabel()`` (the true
            label; images without one are reported in ``error``), a class index or label name
            (the bundle's labels), a list of them (those classes in every image),
            ``("top", k)`` or ``TopK(k)`` (k rows per image), or a callable
            ``(probs, item) -> class or classes``; ``Annotations()`` explains each object the
            source annotates (a manifest's boxes or masks, a dataset's target dicts), one row
            each (:mod:`~opticam_widgets.dataset.annotations`).
        settings: How each map is made: an
            :class:`~opticam_widgets.engine.config.OptiCAMSettings`, or an
            :class:`~opticam_widgets.engine.explainer.OptiCAM` (its settings, target layer and
            layout; the model is ``model_or_bundle``). Default: :data:`DATASET_SETTINGS` (the
            paper's, with the widget's early stopping; ``tol=None`` runs every step).
        options: How the run goes: a :class:`~opticam_widgets.dataset.options.RunOptions`
            (batch size, engine, metrics, resume, progress, workers, shard size, flush
            interval, Ray actors, batching, the yardsticks measured per row and the baseline
            methods measured on them: :mod:`~opticam_widgets.dataset.yardsticks`).
        cancel: A ``threading.Event``; when set, the run stops within one iteration and keeps
            the complete shards.
        callback: ``callback(done, total)`` after each batch.
        **keywords: Fields of either, by name, over ``settings`` and ``options``
            (``max_iter=5``, ``batch_size=8``, ``engine="ray"``, ...), and the layer binding
            ``target_layer``, ``reshape``.

    Returns:
        The :class:`~opticam_widgets.dataset.results.DatasetResults` of ``out``.

    Raises:
        TypeError, ValueError: Bad arguments (named), an empty or missing ``source``, a store
            made by another run (:class:`~.fingerprint.SettingsMismatchError`: each differing
            value, old and new), a store in use (:class:`~.lock.StoreBusyError`).
        RunStopped: SIGTERM or SIGHUP arrived; the complete rows are stored.

    Example:
        >>> from opticam_widgets import OptiCAMSettings, explain_dataset, load_default_model
        >>> results = explain_dataset(load_default_model(), "photos/", "results/",
        ...                           settings=OptiCAMSettings(max_iter=50),
        ...                           batch_size=8)  # doctest: +SKIP
        >>> results.summary()  # doctest: +SKIP
    """
    settings, options, binding = _run_parts(settings, options, keywords)
    model = _resolve_model(model_or_bundle)
    store = Store(out)
    target = check_target(target, labels=model_labels(model))  # a label name -> its index
    measures = resolve_yardsticks(options.yardsticks, options.metrics,
                                  store.read_settings() if options.resume else None)
    explainer = BatchExplainer(model, target=target, metrics=options.metrics,
                               cam_kwargs={**binding, "settings": settings},
                               batching=options.batching,
                               yardsticks=YardstickSpec(measures, options.methods))
    src = open_source(source, explainer.labels)
    if explainer.pre.size is None:  # images keep their own sizes: they cannot be stacked
        options = dataclasses.replace(options, batch_size=1)
    recorded = run_settings(model, explainer, target, options.metrics, options.batch_size)
    stop = threading.Event()
    with StoreLock(store.out), stop_on_signals(stop) as caught:
        skip = _prepare_store(store, recorded, options.resume, src)
        store.metadata[META_RUN] = {"engine": options.engine, "batch_size": options.batch_size}
        writer = ShardWriter(store, options.shard_size, options.flush_every)
        if _run(model, explainer, src, writer, skip, options, AnyEvent(cancel, stop), callback):
            compact(store, options.shard_size)
    if caught.signum is not None:
        raise RunStopped(caught.signum, str(store.out), len(store.stored_ids()))
    return load_results(out)


def _run(model: Any, explainer: BatchExplainer, src: Source, writer: ShardWriter,
         skip: set[str], options: RunOptions, stop: AnyEvent,
         callback: Callable[[int, int | None], Any] | None) -> bool:
    """Run the chosen engine; whether every item was handled."""
    if options.engine == "local":
        return run_local(explainer, src, writer, skip=skip, options=options,
                         cancel=stop, callback=callback)  # type: ignore[arg-type]
    from .ray_engine import run_ray

    return run_ray(model, explainer, src, writer, skip=skip, options=options,
                   cancel=stop, callback=callback)  # type: ignore[arg-type]
