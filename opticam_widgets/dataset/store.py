"""The results store: a folder of Parquet shards, one row per (image, class), and its side files.

Layout of ``out``::

    out/rows/part-00000.parquet  shards of complete rows, in :data:`SCHEMA`: the dataset
    out/rows/part-00001.parquet  ...
    out/_opticam.json            run settings (model, weights, layer, ...), checked on resume
    out/_opticam.lock            held by the run writing the folder (:mod:`.lock`)
    out/_report/                 ``opticam report``'s default output

``out/rows`` holds Parquet files and nothing else (Polars refuses a folder holding any other
file, even in a subfolder), so ``pandas.read_parquet``, ``duckdb.read_parquet``,
``polars.read_parquet`` / ``scan_parquet`` and ``ray.data.read_parquet`` all read that one path
unchanged, without this package (:data:`ROWS_DIR`). Everything else lives beside it in ``out``.

Every shard carries Parquet key-value metadata (:data:`META_FORMAT`, :data:`META_SETTINGS`,
:data:`META_RUN`): the schema version, the run's settings and fingerprint, and the batch size
and engine of the run that wrote it, so a shard copied on its own still says what it holds.

A shard is written to a hidden ``out/.part-XXXXX.parquet.tmp`` (outside ``rows``, on the same
file system) and renamed into ``rows`` when complete, so a crash or Ctrl-C never leaves a half
shard and a reader of ``rows`` never sees one.

Stores of format 2 and before kept their shards at the top of ``out``; this package still reads
them, and the next run on one (a resume) moves them into ``rows`` first (:meth:`Store.migrate`).

Example:
    >>> store = Store("results")  # doctest: +SKIP
    >>> store.write(rows); store.stored_ids()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["FORMAT_VERSION", "META_FORMAT", "META_RUN", "META_SETTINGS", "ROWS_DIR", "SCHEMA",
           "SETTINGS_FILE", "Store", "shard_metadata", "store_schema"]

#: Version of the store's layout and schema (2: file stamps, weights fingerprint, metadata;
#: 3: shards in ``rows/``, a folder of Parquet files only; 4: the yardstick columns its settings
#: name, after :data:`SCHEMA`'s).
FORMAT_VERSION = 4
#: Parquet key-value metadata keys of every shard.
META_FORMAT, META_SETTINGS, META_RUN = "opticam.format", "opticam.settings", "opticam.run"
SETTINGS_FILE = "_opticam.json"
#: The subfolder of ``out`` holding the shards, and only them: the path to give a Parquet reader.
ROWS_DIR = "rows"
_F32, _I32 = pa.float32(), pa.int32()

#: The columns of a shard (see the README's dataset section for their meaning).
SCHEMA = pa.schema([
    ("position", pa.int64()),          # index in the source's order
    ("id", pa.string()),               # stable id (relative path, path, or position)
    ("path", pa.string()),             # image file, null for in-memory images
    ("true_label", _I32),              # true class index, null when unknown
    ("true_name", pa.string()),        # true class name (folder name), null when unknown
    ("predicted", _I32),               # top-1 class of the unmasked image
    ("predicted_name", pa.string()),
    ("predicted_prob", _F32),          # its softmax probability
    ("correct", pa.bool_()),           # predicted == true_label (null without a label)
    ("rank", _I32),                    # 0 for the first class explained for this image, ...
    ("target", _I32),                  # class explained in this row
    ("target_name", pa.string()),
    ("prob", _F32),                    # p: probability of `target` on the unmasked image
    ("masked_prob", _F32),             # o: probability of `target` on x ⊙ S (AD/AI/AG)
    ("drop", _F32),                    # this row's Average Drop term, % (metrics.average_drop)
    ("increase", _F32),                # Average Increase term, 0 or 100
    ("gain", _F32),                    # Average Gain term, %
    ("original_score", _F32),          # optimized score (logit by default), unmasked image
    ("initial_score", _F32),           # score of x ⊙ S at iteration 0 (channel mean)
    ("final_score", _F32),             # score of x ⊙ S of the returned map
    ("iterations", _I32),              # optimizer steps run for this row
    ("stopped_early", pa.bool_()),     # iterations < max_iter (plateau)
    ("insertion_auc", _F32),           # metrics="full" only, else null
    ("deletion_auc", _F32),
    ("map_height", _I32),              # feature-resolution map shape
    ("map_width", _I32),
    ("map", pa.list_(_F32)),           # normalized low-res map, row-major (rebuild: saliency())
    ("photo_height", _I32),            # the photo's own size (the map is rebuilt at it)
    ("photo_width", _I32),
    ("weights", pa.list_(_F32)),       # softmax channel weights (K,)
    ("thumbnail", pa.binary()),        # JPEG, longest side THUMBNAIL px (for tables / browsing)
    ("error", pa.string()),            # why this image was skipped (other fields null), or null
    ("file_size", pa.int64()),         # the image file's size and modification time when read
    ("file_mtime_ns", pa.int64()),     # (null for in-memory images): a changed file is retried
    ("region_box", pa.list_(_F32)),    # Annotations(): the object's box x0, y0, x1, y1 (photo px)
    ("region_mask", pa.binary()),      # Annotations(): the object's mask, a PNG of the photo size
])


def store_schema(settings: Mapping[str, Any] | None) -> pa.Schema:
    """A store's schema: :data:`SCHEMA` and the float32 yardstick columns its settings name.

    The columns (``"opticam:AD_mean"``, ``"gradcam:deletion_black"``, ...) are those of
    :class:`~opticam_widgets.dataset.yardsticks.YardstickSpec`; a store written before
    yardsticks names none (its schema is :data:`SCHEMA`).

    Example:
        >>> store_schema({"yardsticks": {"columns": ["opticam:AD_mean"]}}).names[-1]
        'opticam:AD_mean'
    """
    columns = ((settings or {}).get("yardsticks") or {}).get("columns", [])
    return pa.schema([*SCHEMA, *[(c, _F32) for c in columns]])


def _shard_no(path: Path) -> int:
    return int(path.name[len("part-"):-len(".parquet")])


def shard_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """A shard's ``opticam.*`` key-value metadata, JSON-decoded (``{}`` for none).

    Example:
        >>> shard_metadata("results/rows/part-00000.parquet")["opticam.format"]  # doctest: +SKIP
        2
    """
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): json.loads(v) for k, v in meta.items() if k.startswith(b"opticam.")}


class Store:
    """A results folder: settings, shard writing (atomic) and reading.

    Args:
        out: The folder (created on the first write); shards go to ``out/rows``.

    Attributes:
        out: The folder (a ``Path``).
        rows_dir: ``out/rows``, the Parquet-only folder readers are given.
        metadata: Key-value metadata written into every new shard (JSON-encoded values).
    """

    def __init__(self, out: str | os.PathLike) -> None:
        if not isinstance(out, (str, os.PathLike)):
            raise TypeError(f"`out` must be a folder path, got {type(out).__name__}")
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"`out` {str(self.out)!r} is a file; give a folder")
        self.rows_dir = self.out / ROWS_DIR
        self.metadata: dict[str, Any] = {META_FORMAT: FORMAT_VERSION}
        self._schema: pa.Schema | None = None

    @property
    def schema(self) -> pa.Schema:
        """The schema of this store's shards (:func:`store_schema` of its settings)."""
        if self._schema is None:
            self._schema = store_schema(self.read_settings())
        return self._schema

    # ------------------------------------------------------------------ files
    def _shards_in(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return [p for p in folder.glob("part-*.parquet") if p.name[5:10].isdigit()]

    def legacy_shards(self) -> list[Path]:
        """Shards at the top of ``out`` (stores of format 2 and before), in order."""
        return sorted(self._shards_in(self.out), key=_shard_no)

    def shards(self) -> list[Path]:
        """The complete shards, in order (those of a store not yet migrated included)."""
        found = self._shards_in(self.rows_dir) + self._shards_in(self.out)
        return sorted(found, key=_shard_no)

    def migrate(self) -> int:
        """Move a format-2 store's shards into ``rows``; how many (call with the lock held).

        Each move is an atomic rename within ``out`` and keeps the shard's name, so a run that
        dies half-way leaves every row in exactly one of the two places, and the next call
        finishes the move.
        """
        legacy = self.legacy_shards()
        if legacy:
            self.rows_dir.mkdir(parents=True, exist_ok=True)
        for path in legacy:
            target = self.rows_dir / path.name
            if target.exists():
                raise ValueError(f"`out` {str(self.out)!r} holds {path.name} both at its top "
                                 f"and in {ROWS_DIR}/; remove one (or pass resume=False)")
            os.replace(path, target)
        return len(legacy)

    def read_settings(self) -> dict[str, Any] | None:
        """The stored settings, or ``None`` for a new folder."""
        path = self.out / SETTINGS_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def write_settings(self, settings: Mapping[str, Any]) -> None:
        """Write the settings file (atomically)."""
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / f".{SETTINGS_FILE}.tmp"
        tmp.write_text(json.dumps({"format": FORMAT_VERSION, **settings}, indent=1))
        os.replace(tmp, self.out / SETTINGS_FILE)
        self._schema = None

    def clear(self) -> None:
        """Remove this package's files (shards, temporaries, settings); nothing else."""
        for path in self.shards() + list(self.out.glob(".part-*.parquet.tmp")):
            path.unlink()
        (self.out / SETTINGS_FILE).unlink(missing_ok=True)
        self._schema = None

    # ------------------------------------------------------------------ write / read
    def write(self, rows: Sequence[Mapping[str, Any]] | pa.Table,
              metadata: Mapping[str, Any] | None = None, at: Path | None = None) -> Path | None:
        """Write complete rows as the next shard (or over ``at``); the file appears only whole.

        The shard's key-value metadata is :attr:`metadata` updated with ``metadata``.
        """
        schema = self.schema
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows),
                                                                            schema=schema)
        if table.num_rows == 0:
            return None
        meta = {**self.metadata, **(metadata or {})}
        table = table.select(schema.names).cast(schema).replace_schema_metadata(
            {k: json.dumps(v) for k, v in meta.items()})
        self.rows_dir.mkdir(parents=True, exist_ok=True)
        if at is None:
            shards = self.shards()
            number = _shard_no(shards[-1]) + 1 if shards else 0
            at = self.rows_dir / f"part-{number:05d}.parquet"
        tmp = self.out / f".{at.name}.tmp"  # beside rows/: readers of rows/ never see it
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, at)
        return at

    def read(self, columns: Iterable[str] | None = None) -> pa.Table:
        """All rows (optionally some columns), sorted by source position and rank."""
        cols = list(columns) if columns is not None else None
        shards, schema = self.shards(), self.schema
        if not shards:
            return schema.empty_table().select(cols) if cols else schema.empty_table()
        keys = [c for c in ("position", "rank") if cols is None or c in cols]
        table = pa.concat_tables(
            pq.read_table(p, columns=cols, schema=schema).replace_schema_metadata()
            for p in shards)
        return table.sort_by([(k, "ascending") for k in keys]) if keys else table

    def stored_ids(self) -> set[str]:
        """Ids of the images already stored (explained or reported as errors)."""
        return set(self.read(["id"]).column("id").to_pylist())
