"""``explain_dataset``: explain every image of a dataset into a Parquet store; ``load_results``."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from ..engine.classes import model_labels
from ..model.bundle import unpack_model
from ..support.checks import check_int, check_positive
from ..support.defaults import DEFAULT_LR, DEFAULT_MAX_ITER, DEFAULT_PATIENCE, WIDGET_TOL
from .compaction import compact, drop_rows, recover
from .compute import METRICS, BatchExplainer, check_target
from .fingerprint import check_same_run, run_settings
from .loader import file_stamp
from .local import AnyEvent, run_local
from .lock import StoreLock
from .results import DatasetResults, load_results
from .signals import RunStopped, stop_on_signals
from .sources import Source, open_source
from .store import META_RUN, META_SETTINGS, Store
from .writer import DEFAULT_FLUSH_EVERY, DEFAULT_SHARD_SIZE, ShardWriter

__all__ = ["ENGINES", "explain_dataset"]

#: Accepted values of ``engine``.
ENGINES = ("local", "ray")


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


def _check_run(engine: Any, metrics: Any, batch_size: Any, shard_size: Any,
               num_workers: Any, flush_every: Any) -> tuple[Any, int, int, int]:
    """Validate the run's options; ``(metrics, batch_size, shard_size, num_workers)``."""
    check_positive("flush_every", flush_every)
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
    shard_size: int = DEFAULT_SHARD_SIZE,
    flush_every: float = DEFAULT_FLUSH_EVERY,
    cancel: threading.Event | None = None,
    callback: Callable[[int, int | None], Any] | None = None,
    ray_actors: int | None = None,
    batching: str = "independent",
    **cam_kwargs: Any,
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
            ``(probs, item) -> class or classes``.

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
        resume: Skip the images already stored in ``out`` (same settings and weights
            required; error rows of a file changed since are retried); ``False`` deletes this
            package's files in ``out`` first.
        progress: Show a progress bar (images/s and ETA).
        num_workers: Decoding processes of the local engine (default: 1 when the machine has
            more than 2 cores' worth of work to share, else 0).
        shard_size: Rows per Parquet shard at most; rows are written once this many are done.
        flush_every: Seconds after which finished rows are written even when fewer than
            ``shard_size`` (default 60).
        cancel: A ``threading.Event``; when set, the run stops within one iteration and keeps
            the complete shards.
        callback: ``callback(done, total)`` after each batch.
        ray_actors: Ray engine: model replicas (default: one per GPU, else 1).
        batching: ``"independent"`` (default): each (image, class) row is predicted,
            optimized and measured on its own, so its map is ``OptiCAM.explain``'s for that
            image and class to the last bit, whatever the batch size or the other images
            (a resume with another batch size gives the same maps). ``"shared"``: each batch is
            one optimization (faster on a GPU); float rounding of the batched model, amplified
            by Adam's per-channel steps, then makes a map depend on its batch companions (by
            up to ~0.05 on the default model), and the batch size becomes a setting the
            store is checked against.
        **cam_kwargs: More :class:`~opticam_widgets.engine.explainer.OptiCAM` arguments
            (``target_layer``, ``convention``, ``score``, ``precision``, ...).

    Returns:
        The :class:`~opticam_widgets.dataset.results.DatasetResults` of ``out``.

    Raises:
        TypeError, ValueError: Bad arguments (named), an empty or missing ``source``, a store
            made by another run (:class:`~.fingerprint.SettingsMismatchError`: each differing
            value, old and new), a store in use (:class:`~.lock.StoreBusyError`).
        RunStopped: SIGTERM or SIGHUP arrived; the complete rows are stored.

    Example:
        >>> from opticam_widgets import explain_dataset, load_default_model
        >>> results = explain_dataset(load_default_model(), "photos/", "results/")  # doctest: +SKIP
        >>> results.summary()  # doctest: +SKIP
    """
    metrics, batch_size, shard_size, workers = _check_run(engine, metrics, batch_size,
                                                          shard_size, num_workers, flush_every)
    model = _resolve_model(model_or_bundle)
    store = Store(out)
    cam_kwargs = {"max_iter": max_iter, "lr": lr, "tol": tol, "patience": patience,
                  **cam_kwargs}
    target = check_target(target, labels=model_labels(model))  # a label name -> its index
    explainer = BatchExplainer(model, target=target, metrics=metrics,
                               cam_kwargs=cam_kwargs, batching=batching)
    src = open_source(source, explainer.labels)
    if explainer.pre.size is None:
        batch_size = 1  # images keep their own sizes: they cannot be stacked
    settings = run_settings(model, explainer, target, metrics, batch_size)
    run = {"engine": engine, "batch_size": batch_size, "model": model, "target": target,
           "metrics": metrics, "cam_kwargs": cam_kwargs, "num_workers": workers,
           "progress": progress, "callback": callback, "ray_actors": ray_actors}
    stop = threading.Event()
    with StoreLock(store.out), stop_on_signals(stop) as caught:
        skip = _prepare_store(store, settings, resume, src)
        store.metadata[META_RUN] = {"engine": engine, "batch_size": batch_size}
        writer = ShardWriter(store, shard_size, flush_every)
        if _run(explainer, src, writer, skip, AnyEvent(cancel, stop), run):
            compact(store, shard_size)
    if caught.signum is not None:
        raise RunStopped(caught.signum, str(store.out), len(store.stored_ids()))
    return load_results(out)


def _run(explainer: BatchExplainer, src: Source, writer: ShardWriter, skip: set[str],
         stop: AnyEvent, run: dict[str, Any]) -> bool:
    """Run the chosen engine; whether every item was handled."""
    if run["engine"] == "local":
        return run_local(explainer, src, writer, skip=skip, batch_size=run["batch_size"],
                         num_workers=run["num_workers"], progress=run["progress"],
                         cancel=stop, callback=run["callback"])  # type: ignore[arg-type]
    from .ray_engine import run_ray

    return run_ray(run["model"], explainer, src, writer, skip=skip,
                   batch_size=run["batch_size"], progress=run["progress"],
                   actors=run["ray_actors"], target=run["target"], metrics=run["metrics"],
                   cam_kwargs=run["cam_kwargs"], cancel=stop,  # type: ignore[arg-type]
                   callback=run["callback"])
