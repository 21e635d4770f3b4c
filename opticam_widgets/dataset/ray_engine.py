"""The Ray engine: Ray Data decodes in tasks and explains in an actor pool, one model per actor.

The pipeline (one for a folder, a list of paths or a torch ``Dataset``; one per window of
``shard_size`` images for a stream of in-memory images)::

    from_items(batches of items) -> map(decode, tasks) -> map_batches(explain, actor pool)
                                  -> rows back to the driver -> shards (atomic, same schema)

Each input row of Ray Data is one whole batch of images, so every engine optimizes exactly the
same batches and writes the same rows; the driver writes the shards, so resume and the store's
guarantees are those of the local engine. Actors load the model once (the constructor) and take
one GPU each where the cluster has GPUs. On a machine with few cores the resources are sized
so that the actor pool and the decode tasks cannot wait for each other: actors take one CPU,
decode tasks one CPU, and a local instance gets at least two.

Ray is used where it runs: an existing ``ray.init`` or ``RAY_ADDRESS`` (a cluster); otherwise a
local instance is started for the call and shut down after it (one the user started is left
alone).
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .compute import BatchExplainer
from .loader import ImageBatch, collate, decode
from .local import AnyEvent, ProgressCallback
from .options import RunOptions
from .sources import Item, Source
from .writer import RowSink, ShardWriter

__all__ = ["import_ray", "run_ray"]


def import_ray() -> Any:
    """``ray`` (with Ray Data), or an ImportError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError("engine='ray' needs Ray Data: pip install 'opticam-widgets[ray]' "
                          "(or pip install 'ray[data]')") from exc
    return ray


def _start(ray: Any) -> bool:
    """Connect to a running Ray or start a local instance; whether we started it."""
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=False)
    return True


def _child_pids() -> set[int]:
    """Pids of this process's descendants (psutil ships with Ray)."""
    try:
        import psutil
    except ImportError:  # depends on the Ray build
        return set()
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _shutdown(ray: Any, before: set[int], grace: float = 5.0) -> None:
    """Stop the local Ray this call started, and every process it left behind.

    Its idle worker processes would otherwise outlive the call by about a minute.
    """
    left = _child_pids() - before
    ray.shutdown()
    if not left:
        return
    import psutil

    procs = []
    for pid in left:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace)


class _DecodeBatch:
    """Ray task: one input row (a batch of items) -> the decoded batch, pickled."""

    def __init__(self, source: Source, preprocess: Any) -> None:
        self.source, self.preprocess = source, preprocess

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        pairs: list[tuple[Any, Item]] = pickle.loads(row["items"])
        records = []
        for image, item in pairs:
            if image is None:  # a sequence source: fetch here, in the task
                image, item = self.source.fetch(item)
            records.append(decode(image, item, self.preprocess))
        return {"batch": pickle.dumps(collate(records))}


class _ExplainActor:
    """Ray actor: loads the model once, explains pickled batches into pickled rows."""

    def __init__(self, model: Any, target: Any, metrics: Any, cam_kwargs: dict[str, Any],
                 threads: int | None, batching: str, yardsticks: Any = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)  # this actor's own process
        if isinstance(model, str):
            from ..model.zoo import load_model

            model = load_model(model)
        if torch.cuda.is_available():
            net = getattr(model, "model", model)
            net.to("cuda")
        self.explainer = BatchExplainer(model, target=target, metrics=metrics,
                                        cam_kwargs=cam_kwargs, batching=batching,
                                        yardsticks=yardsticks)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        out, counts = [], []
        for blob in batch["batch"]:
            decoded: ImageBatch = pickle.loads(blob)
            out.append(pickle.dumps(self.explainer(decoded)))
            counts.append(len(decoded))
        return {"rows": np.array(out, dtype=object), "images": np.array(counts)}


def _windows(source: Source, skip: set[str], batch_size: int, window: int | None
             ) -> Iterator[list[list[tuple[Any, Item]]]]:
    """Batches of ``(image or None, item)``, in windows of about ``window`` images.

    ``window=None``: one window (an indexed source: its items are paths or indices, which
    the decode tasks fetch, so the whole list is small).
    """
    if source.items is not None:
        pairs: Iterator[tuple[Any, Item]] = ((None, it) for it in source.items
                                             if it.id not in skip)
    else:
        pairs = ((img, it) for img, it in source.stream() if it.id not in skip)
    batches: list[list[tuple[Any, Item]]] = []
    current: list[tuple[Any, Item]] = []
    for pair in pairs:
        current.append(pair)
        if len(current) == batch_size:
            batches.append(current)
            current = []
            if window is not None and len(batches) * batch_size >= window:
                yield batches
                batches = []
    if current:
        batches.append(current)
    if batches:
        yield batches


@dataclass(frozen=True)
class _RayJob:
    """What every pipeline of one run shares: the source, the items to skip, the actors."""

    ray: Any
    explainer: BatchExplainer
    source: Source
    skip: set[str]
    options: RunOptions
    actor_args: dict[str, Any]
    actors: int
    gpus: bool

    def pipeline(self, batches: list[list[tuple[Any, Item]]]) -> Any:
        """The Ray Data pipeline of ``batches``: decode tasks, then the explain actors."""
        ds = self.ray.data.from_items([{"items": pickle.dumps(b)} for b in batches],
                                      override_num_blocks=len(batches))
        ds = ds.map(_DecodeBatch(self.source, self.explainer.pre), num_cpus=1)
        pool = self.ray.data.ActorPoolStrategy(size=self.actors)
        return ds.map_batches(_ExplainActor, fn_constructor_kwargs=self.actor_args,
                              batch_size=1, compute=pool, num_cpus=1,
                              num_gpus=1 if self.gpus else 0, batch_format="numpy")


def run_ray(model: Any, explainer: BatchExplainer, source: Source, writer: ShardWriter, *,
            skip: set[str], options: RunOptions, cancel: threading.Event | None = None,
            callback: ProgressCallback | None = None) -> bool:
    """Explain ``source`` with Ray Data; the driver hands the rows to ``writer``.

    Each actor builds its own ``explainer`` from ``model`` and the explainer's target,
    metrics, layer and settings; ``options``: the batch size, progress bar and actor count.

    Returns:
        ``True`` when every item was handled, ``False`` when cancelled.
    """
    ray = import_ray()
    before = _child_pids()
    started = _start(ray)
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.execution_options.preserve_order)
    ctx.enable_progress_bars, ctx.execution_options.preserve_order = False, True
    try:
        import torch

        gpus = ray.cluster_resources().get("GPU", 0) >= 1
        n = options.ray_actors or (int(ray.cluster_resources().get("GPU", 0)) if gpus else 1)
        # on one machine, actors use this process's torch thread count: the same float
        # rounding as the local engine (Ray would give each actor one thread)
        one_node = len([n for n in ray.nodes() if n.get("Alive")]) == 1
        cam = explainer.cam
        args = {"model": model, "target": explainer.target, "metrics": explainer.metrics,
                "cam_kwargs": {"target_layer": explainer.layer, "reshape": cam.reshape,
                               "settings": cam.settings},
                "threads": torch.get_num_threads() if one_node else None,
                "batching": explainer.batching, "yardsticks": explainer.yardsticks}
        job = _RayJob(ray, explainer, source, skip, options, args, n, gpus)
        return _drive(job, writer, AnyEvent(cancel), callback)
    finally:
        ctx.enable_progress_bars, ctx.execution_options.preserve_order = saved
        if started:
            _shutdown(ray, before)


def _drive(job: _RayJob, writer: ShardWriter, stop: AnyEvent,
           callback: ProgressCallback | None) -> bool:
    """Run the pipelines; rows go to ``writer`` as they complete (durable progress).

    One Ray Data pipeline for an indexed source (each actor loads the model once); for a
    stream of images, one per window of ``shard_size`` images (the images travel through
    Ray's object store, so a window bounds its memory; each window starts its actors).
    """
    items, skip = job.source.items, job.skip
    total = None if items is None else sum(it.id not in skip for it in items)
    window = None if items is not None else writer.shard_size
    sink = RowSink(writer, total, job.options.progress, callback)
    try:
        for batches in _windows(job.source, skip, job.options.batch_size, window):
            ds = job.pipeline(batches)
            for out in ds.iter_batches(batch_size=1, batch_format="numpy"):
                if stop.is_set():
                    return False
                sink.add(pickle.loads(out["rows"][0]), int(out["images"][0]))
        return True
    finally:
        sink.close()
