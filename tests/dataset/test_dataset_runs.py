"""Dataset runs that never lose or mix work: durable progress, signals, one writer, resume.

A tiny random CNN (``tinynets.small_cnn``, 32×32 input) on a folder of 12 small random images,
so each run takes a second or two; a subprocess runs the dataset and is killed (SIGKILL) or
stopped (SIGTERM, SIGHUP) once shards exist, then the run is resumed here and compared with an
uninterrupted run: every image exactly once, the same maps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from tinynets import small_cnn

from opticam_widgets.dataset import explain_dataset, load_results
from opticam_widgets.dataset.compaction import META_REPLACES, compact, recover
from opticam_widgets.dataset.fingerprint import SettingsMismatchError
from opticam_widgets.dataset.lock import LOCK_FILE, StoreBusyError, StoreLock
from opticam_widgets.dataset.store import FORMAT_VERSION, META_RUN, META_SETTINGS, ROWS_DIR, Store
from opticam_widgets.dataset.writer import ShardWriter
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.bundle import ModelBundle

HERE = Path(__file__).resolve().parent  # this folder's test modules, imported by the children
TESTS = HERE.parent
ROOT = TESTS.parent
KW = {"max_iter": 4, "batch_size": 2, "num_workers": 0, "progress": False}
N_IMAGES = 12


def tiny(seed: int = 0) -> ModelBundle:
    """The tiny CNN at 32×32 (the same weights in every process for a seed)."""
    return ModelBundle(small_cnn(seed=seed).eval(), Preprocess(size=(32, 32)), name="tiny")


def make_folder(root: Path, n: int = N_IMAGES) -> Path:
    gen = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = (gen.random((24 + i, 40, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"img{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("tiny_photos"))


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """An uninterrupted run of the folder."""
    return explain_dataset(tiny(), folder, tmp_path_factory.mktemp("ref") / "r", **KW)


def assert_same_maps(a, b) -> None:
    ta, tb = a.table, b.table
    assert list(ta["id"]) == list(tb["id"]) and ta["id"].is_unique
    for i in ta.index:
        assert np.abs(a.low_res(i) - b.low_res(i)).max() <= 1e-6
        assert np.abs(a.weights(i) - b.weights(i)).max() <= 1e-6


CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from test_dataset_runs import tiny, KW
from opticam_widgets.dataset import explain_dataset

def slow(done, total):
    print("done", done, flush=True)
    time.sleep({pause})

explain_dataset(tiny(), {folder!r}, {out!r}, callback=slow, flush_every=1e-3, **KW)
print("finished", flush=True)
"""


def start_child(folder: Path, out: Path, pause: float = 0.4) -> subprocess.Popen:
    code = CHILD.format(tests=str(HERE), folder=str(folder), out=str(out), pause=pause)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS), str(HERE)])}
    # the signals at their defaults, as in a terminal: an ignored SIGHUP (nohup, or inherited
    # from a parent that ignores it) is respected by the run, which then finishes (exit 0)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)


def _default_signals() -> None:
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def wait_for_shards(out: Path, proc: subprocess.Popen, count: int = 2,
                    timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list((out / ROWS_DIR).glob("part-*.parquet"))) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGHUP"])
def test_killed_or_stopped_run_resumes_to_every_image_once(sig, folder, reference, tmp_path):
    out = tmp_path / "r"
    proc = start_child(folder, out)
    wait_for_shards(out, proc)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    kept = load_results(out).table
    assert 2 <= len(kept) < N_IMAGES and kept["id"].is_unique
    if sig != "SIGKILL":  # stopped cleanly: a line on how to resume
        assert f"stopped by {sig}" in err and "resume=True" in err
    else:  # the dead process's lock is still described in the file, and taken over
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == proc.pid
    resumed = explain_dataset(tiny(), folder, out, **KW)
    assert_same_maps(resumed, reference)
    assert len(Store(out).shards()) == 1  # the small shards were compacted


def test_cli_sigterm_exits_nonzero_with_a_resume_line(tmp_path):
    from opticam_widgets.model.zoo import sample_images

    src = tmp_path / "src"
    src.mkdir()
    for name, img in list(sample_images().items())[:4]:
        img.save(src / f"{name}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "opticam_widgets", "explain-dataset", str(src), "--out",
           str(out), "--iters", "30", "--batch-size", "1", "--flush-every", "0.001",
           "--no-progress", "--metrics", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_for_shards(out, proc, count=1, timeout=300)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # the run finished before the signal arrived
        pytest.skip("the run ended before SIGTERM")
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in err and "run the same command again" in err
    assert "resume=True" not in err  # the CLI's words, not the API's


def test_two_racing_writers_one_wins_no_row_twice(folder, reference, tmp_path):
    out = tmp_path / "r"
    procs = [start_child(folder, out, pause=1.0) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, results
    err = next(e for p, (_, e) in zip(procs, results) if p.returncode != 0)
    assert "StoreBusyError" in err and "in use by another run" in err
    assert "pid" in err and "host" in err and "started" in err
    assert_same_maps(load_results(out), reference)


def test_lock_in_one_process_and_after_release(tmp_path):
    with StoreLock(tmp_path):
        with pytest.raises(StoreBusyError, match=rf"pid {os.getpid()}, started"):
            StoreLock(tmp_path).acquire()
        with pytest.raises(StoreBusyError, match="`out`.*in use"):
            explain_dataset(tiny(), [str(tmp_path / "x.png")], tmp_path, **KW)
    with StoreLock(tmp_path):  # released: taken again
        pass


def test_a_run_refused_while_the_holder_starts_still_names_it(tmp_path):
    """The holder writes its host, pid and start right after taking the lock; a run refused in
    between waits for them (the racing-writers test caught a refusal that named none)."""
    with StoreLock(tmp_path):
        written = (tmp_path / LOCK_FILE).read_text()
        (tmp_path / LOCK_FILE).write_text("")  # the holder has the lock, has not written yet
        late = threading.Timer(0.2, lambda: (tmp_path / LOCK_FILE).write_text(written))
        late.start()
        with pytest.raises(StoreBusyError, match=rf"host .*, pid {os.getpid()}, started"):
            StoreLock(tmp_path).acquire()
        late.join()
        (tmp_path / LOCK_FILE).write_text("")  # a holder that never writes: named as starting
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError, match="a process that is starting"):
            StoreLock(tmp_path).acquire()
        assert time.monotonic() - t0 < 10


def test_resume_with_other_weights_or_settings_is_refused(folder, reference, tmp_path):
    out = tmp_path / "r"
    stop = threading.Event()
    explain_dataset(tiny(), folder, out, cancel=stop, callback=lambda done, total: stop.set(),
                    **KW)
    assert len(load_results(out).table) == 2  # one batch, then cancelled
    with pytest.raises(SettingsMismatchError, match=r"weights: stored 'blake2b:\w+', now "
                                                    r"'blake2b:\w+'.*pass resume=False") as e:
        explain_dataset(tiny(seed=1), folder, out, **KW)
    assert [d[0] for d in e.value.differences] == ["weights"]
    assert "--no-resume" in e.value.message("--no-resume")
    with pytest.raises(SettingsMismatchError, match=r"max_iter: stored 4, now 5"):
        explain_dataset(tiny(), folder, out, **{**KW, "max_iter": 5})
    with pytest.raises(SettingsMismatchError, match=r"objective: stored .paper., now .mixed-"):
        explain_dataset(tiny(), folder, out, **{**KW, "objective": "mixed-fills"})
    # the batch size alone changes nothing (batch-independent maps): the resume is accepted
    done = explain_dataset(tiny(), folder, out, **{**KW, "batch_size": 5})
    assert_same_maps(done, reference)
    meta = pq.read_schema(Store(out).shards()[0]).metadata
    assert json.loads(meta[META_SETTINGS.encode()])["weights"].startswith("blake2b:")
    assert json.loads(meta[META_RUN.encode()])["batch_size"] in (2, 5)
    again = explain_dataset(tiny(seed=1), folder, out, resume=False, **KW)
    assert len(again.table) == N_IMAGES


def test_a_store_written_under_older_setting_names_resumes(folder, reference, tmp_path):
    """A store from before the re-layout (``schedule``, no ``fold_batchnorm``) resumes; a
    changed value under the old name is still refused."""
    out = tmp_path / "r"
    stop = threading.Event()
    explain_dataset(tiny(), folder, out, cancel=stop, callback=lambda done, total: stop.set(),
                    **KW)
    store = Store(out)
    old = store.read_settings()
    old["schedule"] = old.pop("optimizer")
    del old["fold_batchnorm"], old["objective"]  # added after that store: it ran with defaults
    store.write_settings(old)
    done = explain_dataset(tiny(), folder, out, **KW)
    assert_same_maps(done, reference)
    assert "optimizer" in Store(out).read_settings()  # rewritten in today's keys
    renamed = Store(out).read_settings()
    renamed["schedule"] = "fast"
    del renamed["optimizer"]
    Store(out).write_settings(renamed)
    with pytest.raises(SettingsMismatchError, match=r"optimizer: stored 'fast', now 'paper'"):
        explain_dataset(tiny(), folder, out, **KW)


def test_repaired_file_is_retried(folder, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for p in sorted(folder.glob("*.png"))[:3]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / "zz.png").write_bytes(b"not an image")
    out = tmp_path / "r"
    first = explain_dataset(tiny(), src, out, **KW).table
    assert first.loc[first["id"] == "zz.png", "error"].notna().all()
    assert len(explain_dataset(tiny(), src, out, **KW).table) == 4  # unchanged: kept
    (src / "zz.png").write_bytes((folder / "img05.png").read_bytes())
    t = explain_dataset(tiny(), src, out, **KW).table
    assert len(t) == 4 and t["id"].is_unique and t["error"].isna().all()
    assert t.loc[t["id"] == "zz.png", "file_size"].iloc[0] == (src / "zz.png").stat().st_size


@pytest.mark.parametrize("batch_size", [2, 5])
def test_maps_do_not_depend_on_the_batch(folder, reference, tmp_path, batch_size):
    res = explain_dataset(tiny(), folder, tmp_path / "r", **{**KW, "batch_size": batch_size})
    for i in res.table.index:  # bit for bit: each row is optimized alone
        assert np.array_equal(res.low_res(i), reference.low_res(i))
    from opticam_widgets import OptiCAM
    from opticam_widgets.inputs.images import to_image_tensor

    cam = OptiCAM(tiny(), max_iter=4, tol=1e-3, patience=10)
    for i in (0, 7):
        ref = cam.explain(to_image_tensor(res.table.loc[i, "path"]))
        assert np.abs(res.saliency(i) - ref.saliency[0].numpy()).max() < 1e-5


def test_shard_writer_flushes_by_count_and_time(tmp_path):
    now = [0.0]
    store = Store(tmp_path)
    writer = ShardWriter(store, shard_size=3, flush_every=10.0, clock=lambda: now[0])
    row = {"position": 0, "id": "a", "error": "x"}
    writer.add([row] * 4)  # 3 written, 1 waits
    assert len(store.shards()) == 1
    now[0] = 5.0
    writer.add([row])
    assert len(store.shards()) == 1  # 2 waiting, 5 s: not yet
    now[0] = 10.5
    writer.add([row])
    assert len(store.shards()) == 2 and writer.shards_written == 2
    writer.flush()
    assert len(store.read()) == 6


def test_compaction_and_recovery_of_a_crashed_compaction(tmp_path):
    store = Store(tmp_path)
    for i in range(5):
        store.write([{"position": i, "id": str(i), "error": "e"}])
    assert compact(store, shard_size=4) == 3  # 5 shards of 1 row -> 4 + 1 rows
    assert [pq.ParquetFile(p).metadata.num_rows for p in store.shards()] == [1, 4]
    # a compaction that died after writing the merged shard: the next writer cleans up
    small = [store.write([{"position": 5 + i, "id": f"s{i}", "error": "e"}]) for i in range(2)]
    both = pa.concat_tables([pq.read_table(p).replace_schema_metadata() for p in small])
    store.write(both, {META_REPLACES: [p.name for p in small]})
    assert len(store.read()) == 9  # a duplicate of each small shard's row until recovered
    assert recover(store) == 2
    ids = store.read(["id"]).column("id").to_pylist()
    assert len(ids) == 7 and len(set(ids)) == 7


READERS = """
import json, sys
import duckdb, pandas as pd, polars as pl, psutil, pyarrow.parquet as pq, ray

rows = sys.argv[1]
before = {{p.pid for p in psutil.Process().children(recursive=True)}}
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
try:
    ids = {{
        "pandas": pd.read_parquet(rows)["id"].tolist(),
        "duckdb": [r[0] for r in duckdb.sql(f"select id from read_parquet('{{rows}}')").fetchall()],
        "polars": pl.read_parquet(rows)["id"].to_list(),
        "polars-scan": pl.scan_parquet(rows).select("id").collect()["id"].to_list(),
        "ray": [r["id"] for r in ray.data.read_parquet(rows).select_columns(["id"]).take_all()],
    }}
finally:
    ray.shutdown()
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    for p in left:
        p.kill()
    psutil.wait_procs(left, timeout=10)
shard = sorted(__import__("pathlib").Path(rows).glob("*.parquet"))[0]
meta = {{k.decode(): json.loads(v) for k, v in pq.read_schema(shard).metadata.items()
        if k.startswith(b"opticam.")}}
assert not any(m.startswith("opticam_widgets") for m in sys.modules)
print(json.dumps({{"ids": {{k: sorted(v) for k, v in ids.items()}}, "meta": meta}}))
"""


@pytest.mark.slow
def test_store_rows_folder_is_read_by_four_readers_without_the_package(reference, tmp_path):
    """pandas, DuckDB, Polars (read and scan) and Ray read ``out/rows`` as given, in a process
    that never imports this package, while the folder has its settings, lock and report."""
    import shutil

    pytest.importorskip("duckdb"), pytest.importorskip("polars"), pytest.importorskip("ray")
    out = Path(shutil.copytree(reference.out, tmp_path / "copy"))
    (out / "_report").mkdir(exist_ok=True)
    (out / "_report" / "report.md").write_text("# a report beside the rows")
    assert (out / "_opticam.json").is_file() and (out / LOCK_FILE).is_file()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", READERS.format(), str(out / ROWS_DIR)],
                          cwd=out, env={**env, "RAY_USAGE_STATS_ENABLED": "0"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    ids = sorted(reference.table["id"])
    assert len(ids) == N_IMAGES and got["ids"] == {k: ids for k in got["ids"]}
    assert len(got["ids"]) == 5
    assert got["meta"]["opticam.format"] == FORMAT_VERSION
    assert got["meta"]["opticam.settings"]["weights"] == reference.settings["weights"]


def legacy_copy(results, out: Path, moved: int = 0) -> Path:
    """A format-2 copy of ``results``: shards at the top of ``out`` (``moved`` of them
    already in ``rows/``, as a migration that died half-way leaves it)."""
    import shutil

    shutil.copytree(results.out, out)
    for shard in sorted((out / ROWS_DIR).glob("part-*.parquet"))[moved:]:
        os.replace(shard, out / shard.name)
    settings = json.loads((out / "_opticam.json").read_text())
    (out / "_opticam.json").write_text(json.dumps({**settings, "format": 2}))
    return out


@pytest.mark.parametrize("moved", [0, 1])
def test_format_2_store_is_read_then_moved_into_rows_by_a_resume(folder, reference, tmp_path,
                                                                  moved):
    one = explain_dataset(tiny(), folder, tmp_path / "ref", shard_size=5, **KW)
    assert len(Store(one.out).shards()) == 3  # 5 + 5 + 2 rows
    out = legacy_copy(one, tmp_path / "old", moved)
    assert len(list(out.glob("part-*.parquet"))) == 3 - moved
    assert_same_maps(load_results(out), reference)  # read as it is, nothing moved
    assert len(list(out.glob("part-*.parquet"))) == 3 - moved
    resumed = explain_dataset(tiny(), folder, out, shard_size=5, **KW)
    assert not list(out.glob("part-*.parquet"))  # moved, nothing redone or written twice
    assert [p.name for p in Store(out).shards()] == [p.name for p in Store(one.out).shards()]
    assert all(p.parent.name == ROWS_DIR for p in Store(out).shards())
    assert_same_maps(resumed, reference)
    assert json.loads((out / "_opticam.json").read_text())["format"] == FORMAT_VERSION


def test_api_and_cli_stores_are_interchangeable(bundle, tmp_path, capsys):
    from opticam_widgets.cli.main import main
    from opticam_widgets.model.zoo import sample_images

    src = tmp_path / "src"
    src.mkdir()
    for name, img in list(sample_images().items())[:2]:
        img.resize((64, 48)).save(src / f"{name}.png")
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    explain_dataset(bundle, src, out, max_iter=1, batch_size=2, num_workers=0, progress=False)
    shards = sorted((out / ROWS_DIR).glob("part-*.parquet"))
    cli = ["explain-dataset", str(src), "--out", str(out), "--no-progress", "--iters"]
    assert main([*cli, "1", "--batch-size", "1"]) == 0  # the CLI resumes the API's store
    printed = capsys.readouterr().out
    assert "2 rows, 2 images, 0 errors, 1 non-image files skipped" in printed
    assert sorted((out / ROWS_DIR).glob("part-*.parquet")) == shards  # nothing was redone
    assert main([*cli, "2"]) == 2
    err = capsys.readouterr().err
    assert "max_iter: stored 1, now 2" in err and "--no-resume" in err
    assert "resume=False" not in err
