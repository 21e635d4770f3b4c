"""Durable progress: complete rows reach disk every ``shard_size`` rows or ``flush_every`` s.

Both engines hand their finished rows to a :class:`ShardWriter`, which writes a shard (atomic,
see :mod:`.store`) as soon as ``shard_size`` rows are waiting *or* ``flush_every`` seconds have
passed since the last write, whichever comes first. With the defaults a killed run (``kill -9``,
a power cut) loses at most about a minute of work plus the batch in flight; a stopped one
(Ctrl-C, SIGTERM, SIGHUP, ``cancel``) loses only the batch in flight. The small shards this
makes are merged at the end of the run (:func:`~.compaction.compact`).

Example:
    >>> writer = ShardWriter(Store("results"), shard_size=1024, flush_every=60.0)  # doctest: +SKIP
    >>> writer.add(rows); writer.flush()  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .store import Store

__all__ = ["DEFAULT_FLUSH_EVERY", "DEFAULT_SHARD_SIZE", "RowSink", "ShardWriter", "progress_bar"]

#: Rows per shard (at most) by default.
DEFAULT_SHARD_SIZE = 1024
#: Seconds between writes at most by default: a killed run loses at most about a minute.
DEFAULT_FLUSH_EVERY = 60.0


class ShardWriter:
    """Buffer rows; write a shard every ``shard_size`` rows or ``flush_every`` seconds.

    Args:
        store: Where shards go.
        shard_size: Rows per shard at most.
        flush_every: Seconds after which waiting rows are written (``0``: after every batch).
        clock: Seconds (monotonic); for tests.
    """

    def __init__(self, store: Store, shard_size: int, flush_every: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.shard_size, self.flush_every = store, shard_size, flush_every
        self._clock = clock
        self._rows: list[dict[str, Any]] = []
        self._last = clock()
        #: Shards written so far.
        self.shards_written = 0

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue complete rows; write what is due."""
        self._rows += rows
        while len(self._rows) >= self.shard_size:
            self._write(self._rows[: self.shard_size])
            self._rows = self._rows[self.shard_size:]
        if self._rows and self._clock() - self._last >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write every waiting row now (no-op when none)."""
        rows, self._rows = self._rows, []
        self._write(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if rows and self.store.write(rows) is not None:
            self.shards_written += 1
        self._last = self._clock()


def progress_bar(total: int | None, enabled: bool) -> Any:
    """A tqdm bar counting images (rate and ETA shown by tqdm)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="explain_dataset", disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


class RowSink:
    """Where both engines' finished rows go: the shard writer, the progress bar, the callback.

    Args:
        writer: The run's shard writer.
        total: Images to explain (``None``: a stream of unknown length).
        progress: Show a progress bar.
        callback: ``callback(done, total)`` after each batch, or ``None``.
    """

    def __init__(self, writer: ShardWriter, total: int | None, progress: bool,
                 callback: Callable[[int, int | None], Any] | None) -> None:
        self.writer, self.total, self.callback = writer, total, callback
        self.done = 0
        self.bar = progress_bar(total, progress)

    def add(self, rows: Sequence[dict[str, Any]], images: int) -> None:
        """Hand ``rows`` (of ``images`` images) to the writer and count them."""
        self.writer.add(rows)
        self.done += images
        self.bar.update(images)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        """Write the complete rows still waiting (a no-op when none) and close the bar."""
        self.writer.flush()
        self.bar.close()

