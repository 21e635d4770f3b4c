"""Q-dataset — ``explain_dataset``: throughput, per-row stopping, Ray overhead, flat memory.

* images/s of the local engine at batch 1, 8 and 16 on the default model (EfficientNet-Lite0)
  and ResNet-50 (random weights), with ``batching="independent"`` (default) and ``"shared"``
  side by side in one run, the ratio of the two (the cost of batch independence), and the max
  |Δ| of a map across batch sizes 1/2/8/16 in each mode; the ratio of its wall time to
  the model's own batched forward+backward × the iterations run (``tol=None``: every row runs
  ``max_iter``; the ratio includes decoding, the prediction pass, the AD/AI/AG passes and the
  Parquet writes);
* the gain of per-row early stopping (``tol=1e-3, patience=10``) over running every step, and
  the iterations a batch-level rule (a batch waits for its slowest row) would have run;
* the Ray engine's overhead over the local engine on the same 64 images (a local Ray instance
  started by the call, and one already running);
* the process's peak resident memory for 64 vs 512 images (flat: bounded by the batch and the
  shard, not the dataset).

Photos: the 8 sample photos, cropped and mirrored into N distinct JPEG files (written to a
temporary folder). Run alone: ``python benchmarks/bench_dataset.py`` (writes
``benchmarks/results/dataset.md``); ``OPTICAM_BENCH_QUICK=1`` for a smoke run;
``python benchmarks/bench_dataset.py --batching [N ITERS]`` runs only the batch-independence
cost and |Δ| tables on the default model (N photos, ITERS iterations; default 16, 5) and writes
``benchmarks/results/dataset_batching.md``. Every report states the load average and ``uptime``
before and after, and says when the machine was shared (load above its core count).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import common as C
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "dataset.md"


def write_photos(folder: Path, n: int) -> Path:
    """``n`` distinct photos (crops / mirrors of the sample photos) as JPEG files."""
    from opticam_widgets.model.zoo import sample_images

    photos = list(sample_images().values())
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = photos[i % len(photos)]
        w, h = img.size
        k = (i // len(photos)) % 7
        img = img.crop((k * w // 40, k * h // 50, w - k * w // 60, h - k * h // 45))
        if (i // len(photos)) % 2:
            img = img.transpose(0)
        img.save(folder / f"img{i:04d}.jpg", quality=90)
    return folder


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 10 ms)."""

    def __enter__(self) -> PeakRSS:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.01)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_engine(model: Any, folder: Path, out: Path, **kw: Any) -> tuple[float, Any]:
    """Wall time of one ``explain_dataset`` run from scratch, and its results."""
    from opticam_widgets import explain_dataset

    kw = {"num_workers": 0, "progress": False, "resume": False, **kw}
    start = time.perf_counter()
    results = explain_dataset(model, folder, out, **kw)
    return time.perf_counter() - start, results


def reference_step(model: torch.nn.Module, batch: int, repeats: int) -> float:
    """Median time of the model's own frozen forward+backward at ``batch``."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        x = torch.rand(batch, 3, C.SIZE, C.SIZE)
        step = C.frozen_forward_backward(model, x, 1, (0.485, 0.456, 0.406),
                                         (0.229, 0.224, 0.225))
        return C.median(C.interleaved({"ref": step}, repeats=repeats, warmup=1)["ref"])
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def throughput_rows(name: str, model: Any, net: torch.nn.Module, folder: Path, tmp: Path,
                    n: int, iters: int, batches: tuple[int, ...] = (1, 8, 16)
                    ) -> tuple[list[tuple], list[tuple]]:
    """Rows of the throughput table (one per batch size and batching mode), and of the
    batch-independence cost table (independent vs shared images/s, one per batch size > 1)."""
    rows, cost = [], []
    for batch in batches:
        before = reference_step(net, batch, 3)
        timed = {}
        for batching in ("independent", "shared") if batch > 1 else ("independent",):
            timed[batching] = run_engine(model, folder, tmp / f"{name}-{batch}-{batching}",
                                         batch_size=batch, max_iter=iters, tol=None,
                                         batching=batching)
        ref = C.median([before, reference_step(net, batch, 3)])
        steps = -(-n // batch) * iters  # batches × iterations (tol=None: all run)
        for batching, (elapsed, results) in timed.items():
            ratio = elapsed / (steps * ref)
            rows.append((name, batch, batching, f"{n / elapsed:.2f}", f"{1e3 * ref:.0f}",
                         C.fmt_ratio(ratio), C.verdict(ratio <= 1.15)))
            assert int(results.table["iterations"].max()) == iters
        if "shared" in timed:
            alone, shared = (n / timed[b][0] for b in ("independent", "shared"))
            cost.append((name, batch, f"{alone:.2f}", f"{shared:.2f}",
                         C.fmt_ratio(shared / alone)))
    return rows, cost


def max_delta(a: Any, b: Any) -> float:
    """Max |Δ| between the stored maps of two runs of the same photos."""
    import numpy as np

    return max(float(np.abs(a.low_res(i) - b.low_res(i)).max()) for i in a.table.index)


def independence_rows(model: Any, folder: Path, tmp: Path, iters: int) -> list[tuple]:
    """Max |Δ| of each stored map from its batch-1 map, and across any two of batch sizes
    1/2/8/16, per batching mode."""
    from itertools import combinations

    rows = []
    for batching in ("independent", "shared"):
        runs = {batch: run_engine(model, folder, tmp / f"ind-{batching}-{batch}",
                                  batch_size=batch, max_iter=iters, tol=None,
                                  batching=batching)[1] for batch in (1, 2, 8, 16)}
        pairs = max(max_delta(runs[a], runs[b]) for a, b in combinations(runs, 2))
        rows.append((batching, *[f"{max_delta(runs[b], runs[1]):.2g}" for b in (2, 8, 16)],
                     f"{pairs:.2g}"))
    return rows


DELTA_HEAD = ["batching", "batch 2 vs 1", "batch 8 vs 1", "batch 16 vs 1",
              "any two of 1/2/8/16"]
COST_HEAD = ["model", "batch", "independent images/s", "shared images/s",
             "shared ÷ independent (cost of independence)"]


def stopping_rows(model: Any, folder: Path, tmp: Path, iters: int) -> list[tuple]:
    """Per-row early stopping vs every step, and what a batch-level rule would run."""
    t_all, _ = run_engine(model, folder, tmp / "all", batch_size=16, max_iter=iters, tol=None)
    t_stop, res = run_engine(model, folder, tmp / "stop", batch_size=16, max_iter=iters,
                             tol=1e-3, patience=10)
    t = res.table
    batches = t.groupby(t.index // 16)["iterations"]
    per_row = float(t["iterations"].mean())
    batch_level = float((batches.max() * batches.size()).sum() / len(t))
    drop = float((res.table["final_score"]).mean())
    return [("every step (tol=None)", iters, f"{len(t) / t_all:.2f}", "1.00×", ""),
            ("per-row stop (tol=1e-3, patience=10)", f"{per_row:.1f} (batch-level rule: "
             f"{batch_level:.1f})", f"{len(t) / t_stop:.2f}", C.fmt_ratio(t_all / t_stop),
             f"mean final score {drop:.3f}")]


def ray_rows(model: Any, folder: Path, tmp: Path, n: int, iters: int) -> list[tuple]:
    """Local vs Ray on the same images: Ray started by the call, and already running."""
    try:
        import ray
    except ImportError:
        return [("ray", "not installed", "", "")]
    kw = {"batch_size": 16, "max_iter": iters, "tol": None}
    t_local, _ = run_engine(model, folder, tmp / "local", **kw)
    t_ray, _ = run_engine(model, folder, tmp / "ray", engine="ray", **kw)
    ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False,
             log_to_driver=False)
    try:
        t_warm, _ = run_engine(model, folder, tmp / "ray2", engine="ray", **kw)
    finally:
        ray.shutdown()
    return [("local", f"{t_local:.1f}", f"{n / t_local:.2f}", "1.00×"),
            ("ray, starts its local instance", f"{t_ray:.1f}", f"{n / t_ray:.2f}",
             C.fmt_ratio(t_ray / t_local)),
            ("ray, instance already running", f"{t_warm:.1f}", f"{n / t_warm:.2f}",
             C.fmt_ratio(t_warm / t_local))]


def memory_rows(model: Any, tmp: Path, sizes: tuple[int, int]) -> list[tuple]:
    """Peak RSS of runs over ``sizes`` images (1 iteration: memory, not time)."""
    rows = []
    for n in sizes:
        folder = write_photos(tmp / f"mem{n}", n)
        with PeakRSS() as peak:
            elapsed, _ = run_engine(model, folder, tmp / f"mem-out{n}", batch_size=16,
                                    max_iter=1, tol=None, shard_size=128)
        rows.append((n, f"{peak.peak / 2**20:.0f}", f"{elapsed:.0f}"))
    return rows


def _log(text: str) -> None:
    print(f"[bench_dataset] {text}", file=sys.stderr, flush=True)


BATCHING_NOTES = [
    "batching='independent' (the default) predicts, optimizes and measures each (image, class) "
    "row on its own inside the batch, so a map is the same at every batch size; 'shared' runs "
    "a batch as one optimization. 'shared ÷ independent' is how much faster the shared path "
    "is at the same batch size, the price of batch independence (the table's last column); "
    "on a GPU, where a batch of 16 costs little more than one image, it is expected to be "
    "larger (unmeasured: no GPU). 'shared' stays available as a named option.",
    "|Δ| is between stored feature-resolution maps (normalized to [0, 1]) of the same photo "
    "and class; 'any two' is the largest over every pair of batch sizes 1, 2, 8 and 16.",
]


def batching_tables(n: int, iters: int, cost: list[tuple],
                    independence: list[tuple]) -> list[str]:
    """The batch-independence cost table and the |Δ| table, as markdown."""
    return [
        f"Batch-independence cost, {n} photos, {iters} iterations, `tol=None`, "
        "`num_workers=0` (both modes in one run, one after the other at each batch size):\n\n"
        + C.table(COST_HEAD, cost),
        f"Batch independence, default model, {n} photos, {iters} iterations: max |Δ| of a "
        "stored map across batch sizes:\n\n" + C.table(DELTA_HEAD, independence),
    ]


def run() -> C.Section:
    """The dataset section of the benchmark report."""
    C.setup()
    quick = C.QUICK
    n, iters = 16, (1 if quick else 20)
    stop_iters, n64, ray_iters = (20, 16, 1) if quick else (100, 64, 5)
    sizes = (16, 64) if quick else (64, 512)
    bundle, resnet = C.default_bundle(), C.resnet50()
    tmp = Path(tempfile.mkdtemp(prefix="opticam-bench-dataset-"))
    try:
        folder = write_photos(tmp / "photos", n)
        rows, cost = throughput_rows("EfficientNet-Lite0", bundle, bundle.model, folder, tmp,
                                     n, iters)
        more, more_cost = throughput_rows("ResNet-50", resnet, resnet, folder, tmp, n, iters)
        rows, cost = rows + more, cost + more_cost
        _log(C.table(COST_HEAD, cost))
        independence = independence_rows(bundle, folder, tmp, iters)
        _log(C.table(DELTA_HEAD, independence))
        stop = stopping_rows(bundle, folder, tmp, stop_iters)
        rays = ray_rows(bundle, write_photos(tmp / "photos64", n64), tmp, n64, ray_iters)
        mem = memory_rows(bundle, tmp, sizes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return C.Section(
        title="Dataset engine (explain_dataset)",
        tables=[
            f"Local engine, {n} photos, {iters} iterations, `tol=None`, `num_workers=0`:\n\n"
            + C.table(["model", "batch", "batching", "images/s", "model fwd+bwd at batch (ms)",
                       "wall ÷ (fwd+bwd × iterations)", "≤ 1.15"], rows),
            *batching_tables(n, iters, cost, independence),
            f"Per-row early stopping, default model, {n} photos, batch 16, max_iter "
            f"{stop_iters}:\n\n"
            + C.table(["run", "iterations per row", "images/s", "speed-up", "quality"], stop),
            f"Ray engine vs local, default model, {n64} photos, batch 16, {ray_iters} "
            "iterations:\n\n"
            + C.table(["engine", "wall (s)", "images/s", "vs local"], rays),
            "Peak resident memory of this process, default model, batch 16, 1 iteration, "
            "shards of 128 rows:\n\n" + C.table(["images", "peak RSS (MiB)", "wall (s)"], mem),
        ],
        notes=[
            "The ratio's denominator is the model's own frozen forward+backward (torchvision / "
            "the embedded model as given, no BatchNorm folding) at the same batch size; the "
            "engine optimizes on its folded copy, and also runs one prediction pass, the AD/AI/"
            "AG passes (2 forwards per row), JPEG thumbnails and the Parquet writes per batch: "
            "a fixed cost per image that weighs more at few iterations than at the paper's 100.",
            "Per-row stopping: each row leaves the batch on its own plateau; 'batch-level rule' "
            "is the mean iterations per row had every batch run until its slowest row stopped.",
            *BATCHING_NOTES,
            "No GPU was available: images/s on a GPU (ResNet-50 at batch 32) is unmeasured.",
        ],
    )


def batching_runs(model: Any, folder: Path, tmp: Path, iters: int, repeats: int = 2
                  ) -> dict[tuple[str, int], tuple[float, Any]]:
    """Timed runs per batching mode and batch size 1/2/8/16, the modes alternating (A B B A)
    at each size so both see the same load: ``{(mode, batch): (fastest seconds, results)}``."""
    runs: dict[tuple[str, int], tuple[float, Any]] = {}
    for batch in (1, 2, 8, 16):
        for r in range(repeats):
            for batching in ("independent", "shared")[::1 if r % 2 == 0 else -1]:
                elapsed, res = run_engine(model, folder, tmp / f"{batching}-{batch}-{r}",
                                          batch_size=batch, max_iter=iters, tol=None,
                                          batching=batching)
                best = runs.get((batching, batch))
                runs[(batching, batch)] = (min(elapsed, best[0]) if best else elapsed, res)
                _log(f"{batching} batch {batch}: {elapsed:.1f} s")
    return runs


def run_batching(n: int = 16, iters: int = 5) -> C.Section:
    """Only the batch-independence cost and |Δ| tables, on the default model: 8 runs."""
    from itertools import combinations

    C.setup()
    bundle = C.default_bundle()
    tmp = Path(tempfile.mkdtemp(prefix="opticam-bench-batching-"))
    try:  # the results read their rows from the store: measure before it is deleted
        runs = batching_runs(bundle, write_photos(tmp / "photos", n), tmp, iters)
        ref = reference_step(bundle.model, 16, 3)
        independence = []
        for mode in ("independent", "shared"):
            res = {b: runs[(mode, b)][1] for b in (1, 2, 8, 16)}
            assert all(len(r.table) == n for r in res.values())
            pairs = max(max_delta(res[a], res[b]) for a, b in combinations(res, 2))
            independence.append((mode, *[f"{max_delta(res[b], res[1]):.2g}"
                                         for b in (2, 8, 16)], f"{pairs:.2g}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cost = [("EfficientNet-Lite0", b, f"{n / runs[('independent', b)][0]:.2f}",
             f"{n / runs[('shared', b)][0]:.2f}",
             C.fmt_ratio(runs[("independent", b)][0] / runs[("shared", b)][0]))
            for b in (1, 2, 8, 16)]
    steps = -(-n // 16) * iters
    limit = (f"Against the model's batched forward+backward limit at batch 16 ({1e3 * ref:.0f} "
             f"ms a step, {steps} steps for {n} photos): wall ÷ limit = "
             + ", ".join(f"{m} {C.fmt_ratio(runs[(m, 16)][0] / (steps * ref))}"
                         for m in ("independent", "shared")) + ".")
    return C.Section(title="Dataset engine: the cost of batch-independent maps",
                     tables=[*batching_tables(n, iters, cost, independence), limit],
                     notes=[*BATCHING_NOTES, "Each images/s is the fastest of 2 runs (A B B A "
                            "order); at batch 1 both modes do the same work, so that row's ratio "
                            "shows this machine's run-to-run noise.", "No GPU was available."])


def machine_text() -> str:
    """The machine table, ``uptime``, and whether the machine was shared (load > cores)."""
    import subprocess

    try:
        up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        up = "n/a"
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    shared = (f"**The machine was shared**: the 1-minute load ({load:.2f}) exceeds its "
              f"{cores} cores, so other processes competed for the CPU and absolute images/s "
              "are lower than on an idle machine; compare the ratios, measured side by side."
              if load > cores else f"The 1-minute load ({load:.2f}) was within the {cores} "
              "cores.")
    return f"`uptime`: {up}\n\n{shared}"


def main(argv: list[str]) -> None:
    """``bench_dataset.py`` (everything) or ``bench_dataset.py --batching [N ITERS]``."""
    machine, before = C.machine_table(), machine_text()  # before the run: its load
    if argv[:1] == ["--batching"]:
        n, iters = (int(argv[1]), int(argv[2])) if len(argv) >= 3 else (16, 5)
        section = C.run_section(lambda: run_batching(n, iters))
        results, title = RESULTS.with_name("dataset_batching.md"), "batch independence"
    else:
        section, results, title = C.run_section(run), RESULTS, "dataset engine"
    mode = " — quick mode (OPTICAM_BENCH_QUICK=1: 1 iteration, small sets)" if C.QUICK else ""
    text = (f"# opticam-widgets — {title} benchmark{mode}\n\n{machine}\n\n"
            f"At the start: {before}\n\nAt the end: {machine_text()}\n\n"
            + section.markdown())
    print(text)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])
