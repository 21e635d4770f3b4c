"""Keeping a store a handful of files: compaction of small shards, and row removal.

Durable progress writes many small shards (one per flush); at the end of a complete run
:func:`compact` merges runs of consecutive small shards into shards of up to ``shard_size``
rows. The merged shard is written (atomically, under a new number) *before* the small ones are
deleted, and its metadata lists them (``opticam.replaces``): if the process dies between the
two steps, :func:`recover` (run by the next writer, under the lock) deletes the leftovers, so
no row is ever lost and a duplicate lives at most until the next run opens the folder.

:func:`drop_rows` removes some images' rows (error rows retried on resume) by rewriting only
the shards that hold them, each atomically: a crash leaves each shard either old or new, and
a removed image is simply explained again by the next run.

Example:
    >>> compact(Store("results"), shard_size=1024)  # doctest: +SKIP
    3
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .store import Store, shard_metadata

__all__ = ["META_REPLACES", "compact", "drop_rows", "recover"]

#: Metadata key of a merged shard: the names of the shards it replaces.
META_REPLACES = "opticam.replaces"


def recover(store: Store) -> int:
    """Bring a store to a consistent state before a run writes it (its lock held).

    Moves the shards of a format-2 store into ``rows`` (:meth:`~.store.Store.migrate`), then
    deletes the shards a merged shard replaces, left by a compaction that died.

    Returns:
        The number of leftover shards deleted.
    """
    store.migrate()
    gone = 0
    for shard in store.shards():
        for name in shard_metadata(shard).get(META_REPLACES, []):
            old = shard.parent / name
            if old.is_file():
                old.unlink()
                gone += 1
    return gone


def _groups(store: Store, shard_size: int) -> list[list[tuple[Path, int]]]:
    """Runs of consecutive small shards (each under half ``shard_size``) to merge."""
    groups: list[list[tuple[Path, int]]] = [[]]
    total = 0
    for shard in store.shards():
        rows = pq.ParquetFile(shard).metadata.num_rows
        if rows * 2 >= shard_size or total + rows > shard_size:
            groups.append([])
            total = 0
        if rows * 2 < shard_size:
            groups[-1].append((shard, rows))
            total += rows
    return [g for g in groups if len(g) > 1]


def compact(store: Store, shard_size: int) -> int:
    """Merge consecutive small shards into shards of at most ``shard_size`` rows.

    Returns:
        The number of shards removed.
    """
    removed = 0
    for group in _groups(store, shard_size):
        paths = [path for path, _ in group]
        meta = {k: v for k, v in shard_metadata(paths[0]).items() if k != META_REPLACES}
        table = pa.concat_tables(pq.read_table(p, schema=store.schema).replace_schema_metadata()
                                 for p in paths)
        store.write(table, {**meta, META_REPLACES: [p.name for p in paths]})
        for path in paths:
            path.unlink()
        removed += len(paths) - 1
    return removed


def drop_rows(store: Store, ids: Iterable[str]) -> int:
    """Remove every row of the images ``ids`` (shards rewritten in place); rows removed."""
    wanted = pa.array(sorted(set(ids)), pa.string())
    if len(wanted) == 0:
        return 0
    removed = 0
    for shard in store.shards():
        table = pq.read_table(shard, schema=store.schema)
        hit = pc.is_in(table.column("id"), value_set=wanted)
        count = pc.sum(hit).as_py() or 0
        if not count:
            continue
        keep = table.filter(pc.invert(hit)).replace_schema_metadata()
        removed += count
        if keep.num_rows:
            store.write(keep, shard_metadata(shard), at=shard)
        else:
            shard.unlink()
    return removed
