"""Q-explorer — OptiCAMExplorer: a page of 24 thumbnails drawn from the store, small vs 10k rows.

A 32-image store is made with ``explain_dataset`` on the default model (the 8 sample photos,
crops and flips; 3 iterations: the maps' quality does not matter here), then copied 320 times
into a 10,240-row store (the same rows under new positions and ids, 1,024-row shards). On each
store, headless (no browser: ipycanvas encodes each tile and hands it to a no-op comm):

* opening the explorer (reading the table, indexing the shards, drawing page 1);
* drawing a page of 24 tiles not drawn before (``explorer.go_to``: read the JPEGs from the
  store, rebuild each map at the thumbnail's size, overlay, send to the canvases), on a
  selection sorted by drop, so the page's rows come from many shards;
* the same 24 overlays through ``DatasetResults.overlay`` (which reads the whole thumbnail
  column once: what the explorer avoids), as the side-by-side reference;
* filtering + sorting the whole table (``controls`` change -> new selection, summary, page 1);
* Python-heap peak while paging through 20 pages (tracemalloc: numpy buffers included).

Target: a page in ≤ 0.5 s; page time and memory flat from 32 to 10,240 rows.

Run alone: ``python benchmarks/bench_explorer.py`` (``OPTICAM_BENCH_EXPLORER_STORE=DIR`` reuses
a 32-image store). Writes ``benchmarks/results/explorer.md``.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import common as C

PAGE = 24
COPIES = 320
RESULTS = Path(__file__).resolve().parent / "results" / "explorer.md"


def small_store(root: Path) -> Path:
    """The 32-image store (or ``OPTICAM_BENCH_EXPLORER_STORE``)."""
    given = os.environ.get("OPTICAM_BENCH_EXPLORER_STORE")
    if given:
        return Path(given)
    from opticam_widgets import explain_dataset, load_default_model
    from opticam_widgets.model.zoo import sample_images

    photos = root / "photos"
    for name, img in sample_images().items():
        folder = photos / name
        folder.mkdir(parents=True)
        w, h = img.size
        crop = img.crop((w // 5, h // 5, w - w // 5, h - h // 5))
        for suffix, pic in (("", img), ("_crop", crop)):
            pic.save(folder / f"{name}{suffix}.png")
            pic.transpose(0).save(folder / f"{name}{suffix}_flip.jpg")
    explain_dataset(load_default_model(), photos, root / "small", max_iter=3, batch_size=8,
                    num_workers=0, progress=False)
    return root / "small"


def big_store(small: Path, out: Path, copies: int = COPIES) -> Path:
    """``copies`` copies of the small store's rows, as one store of 1,024-row shards."""
    import pyarrow as pa

    from opticam_widgets import load_results
    from opticam_widgets.dataset.store import Store

    source = load_results(small)
    rows = Store(small).read()
    n = rows.num_rows
    store = Store(out)
    store.write_settings({k: v for k, v in source.settings.items() if k != "format"})
    per_shard = max(1, 1024 // n)
    for start in range(0, copies, per_shard):
        parts = []
        for c in range(start, min(copies, start + per_shard)):
            t = rows.set_column(0, "position", pa.array(
                [p + c * n for p in rows.column("position").to_pylist()], pa.int64()))
            parts.append(t.set_column(1, "id", pa.array(
                [f"copy{c:03d}/{i}" for i in rows.column("id").to_pylist()])))
        store.write(pa.concat_tables(parts))
    return out


def _median_time(fn: Any, repeats: int) -> float:
    return C.median(C.timed(fn)[0] for _ in range(repeats))


def measure(store: Path, repeats: int) -> dict[str, float]:
    """Open, page, reference overlays, filter and memory on one store."""
    from opticam_widgets import OptiCAMExplorer, load_results

    t0 = time.perf_counter()
    ex = OptiCAMExplorer(load_results(store), page_size=PAGE)
    opened = time.perf_counter() - t0
    ex.controls.sort.value = "drop"
    pages = itertools.cycle(range(1, ex.pages) if ex.pages > 1 else [0])

    def fresh_page() -> None:
        ex.thumbs.clear()  # nothing cached: every tile read and drawn
        ex.go_to(next(pages))
    page_s = _median_time(fresh_page, repeats)
    results = load_results(store)  # a fresh object: its thumbnail column is not read yet
    rows = ex.page_rows

    def reference() -> None:
        for row in rows:
            results.overlay(row)
    reference_s = _median_time(reference, 1)
    flips = iter(["wrong", "all"] * repeats)
    filter_s = _median_time(lambda: setattr(ex.controls.correctness, "value", next(flips)),
                            repeats)
    ex.controls.correctness.value = "all"
    tracemalloc.start()
    peaks = []
    for page in range(min(20, ex.pages)):
        ex.go_to(page)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
    tracemalloc.stop()
    early, peak = peaks[min(4, len(peaks) - 1)], peaks[-1]
    n = len(ex.table)
    ex.close()
    return {"rows": n, "open_s": opened, "page_s": page_s, "reference_s": reference_s,
            "filter_s": filter_s, "peak_mib": peak, "early_mib": early,
            "paged": len(peaks)}


def run() -> C.Section:
    """Measure both stores; the report section (``run_all.py`` compatible)."""
    C.setup()
    repeats = 3 if C.QUICK else 7
    with tempfile.TemporaryDirectory() as tmp:
        small = small_store(Path(tmp))
        big = big_store(small, Path(tmp) / "big", 40 if C.QUICK else COPIES)
        a, b = measure(small, repeats), measure(big, repeats)
    rows = [(f"{m['rows']:,} rows", f"{m['open_s']:.2f} s", f"**{m['page_s']:.3f} s**",
             f"{m['reference_s']:.3f} s", f"{m['filter_s']:.3f} s",
             f"{m['early_mib']:.1f} / {m['peak_mib']:.1f} MiB ({m['paged']} pages)")
            for m in (a, b)]
    section = C.Section("Explorer: a page of 24 thumbnails from the store (default model)")
    section.tables.append(C.table(
        ["store", "open explorer", "page of 24 (go_to)", "same 24 via results.overlay",
         "filter + sort + summary", "heap peak after 5 / all pages paged"], rows))
    section.notes += [
        f"page of 24 tiles: {b['page_s']:.3f} s on {b['rows']:,} rows, target ≤ 0.5 s: "
        f"{C.verdict(b['page_s'] <= 0.5)}",
        f"page time {b['rows']:,} vs {a['rows']} rows: {C.fmt_ratio(b['page_s'] / a['page_s'])}"
        " (a page sorted by drop draws from many shards: each row group holding a row of the "
        "page is read, ≤ 1,024 thumbnails);"
        f" heap peak after {b['paged']} pages vs after 5 pages: "
        f"{C.fmt_ratio(b['peak_mib'] / b['early_mib'])} (flat: memory follows the page, not "
        "the store; tracemalloc, numpy buffers included, Arrow's own pool not)",
        f"explorer page vs DatasetResults.overlay for the same 24 rows ({b['rows']:,} rows): "
        f"{C.fmt_ratio(b['page_s'] / b['reference_s'])}",
    ]
    return section


if __name__ == "__main__":
    result = C.run_section(run)
    text = "\n".join(["# OptiCAMExplorer benchmark", "",
                       "Generated by `python benchmarks/bench_explorer.py`. CPU; other "
                       "processes may share the cores (see the load average).", "",
                       C.machine_table(), "", result.markdown()])
    print(text)
    RESULTS.write_text(text)
