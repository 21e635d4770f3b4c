"""The local engine: a ``DataLoader`` decodes in workers; each batch is one optimization.

Memory is bounded whatever the dataset's size: the loader holds ``prefetch`` batches, the engine
one batch and at most ``shard_size`` finished rows, which go to disk as a shard (at the latest
every ``flush_every`` seconds, :class:`~.writer.ShardWriter`). A cancel (``cancel`` event,
``Ctrl-C``, SIGTERM / SIGHUP, or the process exiting: the run is a job of
:mod:`~opticam_widgets.support.jobs`) drops the batch in flight and writes the rows already
complete, so the store holds complete shards of complete rows only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..support.jobs import tracked
from .compute import BatchExplainer
from .loader import make_loader
from .options import RunOptions
from .sources import Source
from .writer import RowSink, ShardWriter

__all__ = ["AnyEvent", "run_local"]

#: ``callback(done, total)`` after each batch: images handled so far and the total (or None).
ProgressCallback = Callable[[int, "int | None"], Any]


class AnyEvent:
    """Set when any of the given events is set (what ``OptiCAM.explain``'s ``cancel`` reads)."""

    def __init__(self, *events: threading.Event | None) -> None:
        self._events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        """Whether one of the events is set."""
        return any(e.is_set() for e in self._events)


def run_local(explainer: BatchExplainer, source: Source, writer: ShardWriter, *,
              skip: set[str], options: RunOptions, cancel: threading.Event | None = None,
              callback: ProgressCallback | None = None) -> bool:
    """Explain every item of ``source`` not in ``skip``; hand the rows to ``writer``.

    ``options``: the run's batch size, decoding workers and progress bar.

    Returns:
        ``True`` when every item was handled, ``False`` when cancelled.
    """
    loader, total = make_loader(source, skip, explainer.pre, options.batch_size,
                                options.workers())
    sink = RowSink(writer, total, options.progress, callback)
    with tracked("explain_dataset") as job:
        stop = AnyEvent(cancel, job.cancel)
        try:
            for batch in loader:
                if stop.is_set():
                    return False
                rows = explainer(batch, stop)
                if rows is None:  # cancelled during the optimization: drop this batch
                    return False
                sink.add(rows, len(batch))
            return True
        finally:
            sink.close()
