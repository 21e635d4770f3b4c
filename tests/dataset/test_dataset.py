"""explain_dataset: the local engine, the Parquet store, resume, rebuilt maps, bad sources.

One run of the default model over a folder of 24 images (the 8 sample photos, crops and flips,
plus one unreadable file) is shared by the tests of this module, the Ray engine's included.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from opticam_widgets import OptiCAM, explain_dataset, load_results
from opticam_widgets.dataset import SCHEMA
from opticam_widgets.dataset.store import ROWS_DIR
from opticam_widgets.evaluation.metrics import average_drop, average_gain, average_increase
from opticam_widgets.inputs.images import to_image_tensor
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.zoo import sample_images

ITERS = 3
#: Without yardsticks (tests/dataset/test_dataset_yardsticks.py measures them on a tiny model):
#: 24 rows of the default model at 3 iterations would spend most of their time on them.
SETTINGS = {"max_iter": ITERS, "batch_size": 8, "num_workers": 0, "progress": False,
            "yardsticks": False}
#: ImageNet class folders for the photos the default model recognises; the rest go to "misc".
FOLDERS = {"chelsea": "Egyptian_cat", "coffee": "espresso", "camera": "tripod"}


def make_folder(root: Path) -> Path:
    """24 images: the 8 sample photos, a centre crop and a mirror of each; one broken file."""
    for name, img in sample_images().items():
        folder = root / FOLDERS.get(name, "misc")
        folder.mkdir(parents=True, exist_ok=True)
        w, h = img.size
        img.save(folder / f"{name}.png")
        img.crop((w // 5, h // 5, w - w // 5, h - h // 5)).save(folder / f"{name}_crop.png")
        img.transpose(0).save(folder / f"{name}_flip.jpg")  # FLIP_LEFT_RIGHT
    (root / "misc" / "broken.png").write_bytes(b"this is not an image")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def local_run(bundle, folder, tmp_path_factory):
    net = bundle.model
    before = ({k: v.clone() for k, v in net.state_dict().items()}, net.training,
              [p.requires_grad for p in net.parameters()])
    out = tmp_path_factory.mktemp("store") / "results"
    results = explain_dataset(bundle, folder, out, **SETTINGS)
    after = (net.state_dict(), net.training, [p.requires_grad for p in net.parameters()])
    assert all(torch.equal(v, after[0][k]) for k, v in before[0].items())
    assert before[1:] == after[1:]
    return results


def test_table_rows_labels_and_errors(local_run, folder):
    t = local_run.table
    assert len(t) == 25 and t["id"].is_unique
    assert list(t["position"]) == list(range(25))
    bad = t[t["error"].notna()]
    assert list(bad["id"]) == ["misc/broken.png"] and "cannot read" in bad["error"].iloc[0]
    assert bad["target"].isna().all()
    ok = t[t["error"].isna()]
    assert len(ok) == 24
    cat = ok[ok["id"] == "Egyptian_cat/chelsea.png"].iloc[0]
    assert (cat["true_label"], cat["true_name"]) == (285, "Egyptian cat")
    assert cat["correct"] == (cat["predicted"] == 285)
    misc = ok[ok["id"].str.startswith("misc/")]
    assert misc["true_label"].isna().all() and misc["correct"].isna().all()
    assert (misc["true_name"] == "misc").all()
    assert (ok["target"] == ok["predicted"]).all() and (ok["rank"] == 0).all()
    assert (ok["iterations"] == ITERS).all() and not ok["stopped_early"].any()
    assert ((ok["map_height"] == 7) & (ok["map_width"] == 7)).all()
    photo = to_image_tensor(folder / "misc" / "coins_crop.png")
    row = ok[ok["id"] == "misc/coins_crop.png"].iloc[0]
    assert (row["photo_height"], row["photo_width"]) == tuple(photo.shape[1:])
    assert (ok["final_score"] >= ok["initial_score"] - 1e-5).all()
    assert ok["prob"].between(0, 1).all() and ok["masked_prob"].between(0, 1).all()


def test_faithfulness_terms_and_summary(local_run):
    t = local_run.table
    ok = t[t["error"].isna()]
    p, o = ok["prob"].to_numpy(), ok["masked_prob"].to_numpy()
    for col, fn in (("drop", average_drop), ("increase", average_increase),
                    ("gain", average_gain)):
        assert ok[col].to_numpy() == pytest.approx([fn([a], [b]) for a, b in zip(p, o)],
                                                   abs=1e-3)
    summary = local_run.summary()
    assert summary.loc["all", "rows"] == 24
    assert summary.loc["all", "AD"] == pytest.approx(average_drop(p, o), abs=1e-3)
    assert summary.loc["all", "AG"] == pytest.approx(average_gain(p, o), abs=1e-3)
    per_class = summary.drop(index="all")
    assert per_class["rows"].sum() == 24
    assert set(per_class.index) == set(ok["target_name"])


def test_store_is_plain_parquet(local_run):
    out = local_run.out
    rows = out / ROWS_DIR
    shards = sorted(rows.glob("part-*.parquet"))
    assert shards and sorted(rows.iterdir()) == shards  # Parquet files only (Polars needs it)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert pq.read_schema(shards[0]).remove_metadata().equals(SCHEMA)
    frame = pd.read_parquet(rows)  # pandas, without this package
    assert len(frame) == 25 and len(frame["weights"].dropna().iloc[0]) == 1280
    assert len(pd.read_parquet(out)) == 25  # the whole folder too (pyarrow skips _ files)
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(f"select count(*) from read_parquet('{rows}') where error is null")
    assert n.fetchall()[0][0] == 24
    polars = pytest.importorskip("polars")
    assert polars.read_parquet(rows).height == 25


def test_rebuilt_maps_equal_explain_alone_and_shared_batching(local_run, bundle, folder,
                                                              tmp_path):
    # rows of one batch of 8 (positions 0..7, none broken): each equals explain on its image
    # alone (batching="independent"); batching="shared" equals explain on the whole batch
    t = local_run.table.iloc[:8]
    assert t["error"].isna().all()
    pre: Preprocess = bundle.preprocess
    x = torch.stack([pre.resize(to_image_tensor(p)[None])[0] for p in t["path"]])
    cam = OptiCAM(bundle, max_iter=ITERS, tol=1e-3, patience=10)
    targets = [int(v) for v in t["target"]]
    for i in (0, 5):
        alone = cam.explain(x[i:i + 1], target=targets[i:i + 1])
        assert np.abs(local_run.saliency(i, size=(224, 224)) - alone.saliency[0].numpy()
                      ).max() < 1e-5
        assert local_run.weights(i) == pytest.approx(alone.weights[0].numpy(), abs=1e-6)
    shared = explain_dataset(bundle, list(t["path"]), tmp_path / "shared", batching="shared",
                             **SETTINGS)
    res = cam.explain(x, target=targets)
    for i in range(8):
        rebuilt = shared.saliency(i, size=(224, 224))
        assert np.abs(rebuilt - res.saliency[i].numpy()).max() < 1e-5
        assert shared.weights(i) == pytest.approx(res.weights[i].numpy(), abs=1e-6)


def test_rebuilt_maps_equal_explain_on_the_photo(bundle, folder, tmp_path):
    # batch_size=1: each map is explain's map on the original photo, rebuilt at its size
    paths = [folder / "misc" / "coins.png", folder / "espresso" / "coffee_crop.png"]
    results = explain_dataset(bundle, paths, tmp_path / "r", **{**SETTINGS, "batch_size": 1})
    cam = OptiCAM(bundle, max_iter=ITERS, tol=1e-3, patience=10)
    for i, path in enumerate(paths):
        ref = cam.explain(to_image_tensor(path), target=int(results.table.loc[i, "target"]))
        rebuilt = results.saliency(i)
        assert rebuilt.shape == tuple(ref.saliency.shape[1:])
        assert np.abs(rebuilt - ref.saliency[0].numpy()).max() < 1e-5


def test_resume_after_cancel_and_interrupt_loses_and_duplicates_nothing(bundle, folder,
                                                                         tmp_path):
    paths = sorted(str(p) for p in folder.rglob("*.png"))[:12]
    kw = {**SETTINGS, "batch_size": 4, "shard_size": 4}
    stop = threading.Event()

    def cancel_after_first(done, total):
        if done >= 4:
            stop.set()

    out = tmp_path / "r"
    explain_dataset(bundle, paths, out, cancel=stop, callback=cancel_after_first, **kw)
    assert len(list((out / ROWS_DIR).glob("part-*.parquet"))) == 1
    assert len(load_results(out).table) == 4

    def interrupt_after_one_batch(done, total):
        assert total == 8  # the 4 stored images are skipped
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explain_dataset(bundle, paths, out, callback=interrupt_after_one_batch, **kw)
    assert len(load_results(out).table) == 8  # the complete batch before Ctrl-C was kept
    results = explain_dataset(bundle, paths, out, **kw)
    t = results.table
    assert list(t["id"]) == paths and t["id"].is_unique
    full = explain_dataset(bundle, paths, tmp_path / "full", **kw).table
    pd.testing.assert_frame_equal(t.drop(columns=["map"]), full.drop(columns=["map"]))
    assert all(np.array_equal(a, b) for a, b in zip(t["map"], full["map"]))


def test_bad_sources_and_settings(bundle, folder, tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="`source`.*no image files"):
        explain_dataset(bundle, empty, tmp_path / "o1", **SETTINGS)
    with pytest.raises(ValueError, match="`source`.*does not exist"):
        explain_dataset(bundle, tmp_path / "missing", tmp_path / "o1", **SETTINGS)
    with pytest.raises(ValueError, match="`source` is empty"):
        explain_dataset(bundle, [], tmp_path / "o1", **SETTINGS)
    with pytest.raises(TypeError, match="`source`"):
        explain_dataset(bundle, 3, tmp_path / "o1", **SETTINGS)
    with pytest.raises(ValueError, match="`target`"):
        explain_dataset(bundle, folder, tmp_path / "o1", target="best", **SETTINGS)
    with pytest.raises(ValueError, match="`engine`"):
        explain_dataset(bundle, folder, tmp_path / "o1", engine="spark", **SETTINGS)
    with pytest.raises(TypeError, match="`batch_size`"):
        explain_dataset(bundle, folder, tmp_path / "o1", **{**SETTINGS, "batch_size": 2.0})


def test_true_target_missing_labels_and_in_memory_images(bundle, folder, tmp_path):
    # a torch-style dataset of (image, label) with one missing label; target="true"
    images = [sample_images()["chelsea"], sample_images()["coffee"]]
    data = [(images[0], "Egyptian cat"), (images[1], None)]
    res = explain_dataset(bundle, data, tmp_path / "a", target="true", **SETTINGS)
    t = res.table
    assert t.loc[0, "target"] == 285 and t.loc[0, "true_label"] == 285
    assert pd.isna(t.loc[1, "target"]) and "no true label" in t.loc[1, "error"]
    assert t["path"].isna().all() and res.thumbnail(0).shape[2] == 3
    with pytest.raises(ValueError, match="`row` 1 has no map"):
        res.saliency(1)
    # top-2: two rows per image, ranks 0 and 1, the model's two most probable classes
    res2 = explain_dataset(bundle, images[:1], tmp_path / "b", target=("top", 2), **SETTINGS)
    t2 = res2.table
    assert list(t2["rank"]) == [0, 1] and t2.loc[0, "target"] == t2.loc[0, "predicted"]
    assert t2.loc[0, "prob"] >= t2.loc[1, "prob"]
    # resuming with other settings is refused; resume=False starts over
    with pytest.raises(ValueError, match="`out`.*another run.*target: stored"):
        explain_dataset(bundle, images[:1], tmp_path / "b", target=None, **SETTINGS)
    res3 = explain_dataset(bundle, images[:1], tmp_path / "b", resume=False, **SETTINGS)
    assert len(res3.table) == 1
    # each row's own early stop is stored (a tolerance every step meets: stop at patience)
    res4 = explain_dataset(bundle, images, tmp_path / "c", tol=10.0, patience=1, **SETTINGS)
    assert res4.table["stopped_early"].all() and (res4.table["iterations"] < ITERS).all()
    with pytest.raises(ValueError, match="`out`.*no explain_dataset results"):
        load_results(tmp_path)


def test_figure_and_report(local_run, tmp_path):
    from opticam_widgets.dataset.cli import parse_target
    from opticam_widgets.dataset.report import write_report

    fig = local_run.figure(n=3)
    assert len(fig.axes) == 2 + 2 * 3
    path = write_report(local_run, tmp_path / "rep", n=3)
    text = path.read_text()
    assert "| all | 24 | 24 |" in text and "misc/broken.png" in text
    assert (tmp_path / "rep" / "overview.png").stat().st_size > 10_000
    assert parse_target("top3") == ("top", 3) and parse_target("true") == "true"


class PhotoDataset(torch.utils.data.Dataset):
    """A torch ``Dataset`` of ``(tensor, label)`` pairs (labels by name, as ImageFolder's)."""

    def __init__(self, photos: list) -> None:
        self.photos = photos

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return to_image_tensor(self.photos[i]), "Egyptian cat" if i == 0 else "tripod"


def assert_same_results(a, b) -> None:
    """Identical tables (float tolerance) and maps/weights of two runs."""
    pd.testing.assert_frame_equal(a.table.drop(columns=["map"]), b.table.drop(columns=["map"]),
                                  check_exact=False, rtol=1e-5, atol=1e-6)
    for i in a.table.index[a.table["error"].isna()]:
        assert np.abs(a.saliency(i) - b.saliency(i)).max() < 1e-5
        assert np.abs(a.weights(i) - b.weights(i)).max() < 1e-6


def test_ray_engine_writes_the_same_rows_as_the_local_engine(local_run, bundle, folder,
                                                             tmp_path):
    """Folder, torch ``Dataset`` (fetched in Ray's tasks) and a generator of in-memory images
    (windows of ``shard_size`` images): the local engine's rows, shards and maps."""
    ray = pytest.importorskip("ray")
    photos = [sample_images()[k] for k in ("chelsea", "camera", "coffee")]
    small = {**SETTINGS, "batch_size": 2, "shard_size": 2}
    assert not ray.is_initialized()
    # Ray's workers unpickle PhotoDataset by importing this module (a class defined in a
    # notebook travels by value): they need the tests folder on their path
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), str(Path(__file__).parents[1]),
                                         os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        res = explain_dataset(bundle, folder, tmp_path / "ray", engine="ray", **SETTINGS)
        assert ray.is_initialized()  # a Ray the caller started is left running
        assert ray.data.read_parquet(str(res.out / ROWS_DIR)).count() == 25  # Ray reads the store
        ray_sources = [explain_dataset(bundle, src, tmp_path / f"ray{i}", engine="ray", **small)
                       for i, src in enumerate((PhotoDataset(photos), iter(photos)))]
    finally:
        ray.shutdown()
    assert_same_results(local_run, res)
    local_sources = [explain_dataset(bundle, src, tmp_path / f"local{i}", **small)
                     for i, src in enumerate((PhotoDataset(photos), iter(photos)))]
    for a, b in zip(local_sources, ray_sources):
        assert_same_results(a, b)
        assert len(b.table) == 3 and len(list((b.out / ROWS_DIR).iterdir())) == 2  # 2 + 1 rows
    assert ray_sources[0].table["true_name"].tolist() == ["Egyptian cat", "tripod", "tripod"]


def test_cli_explain_dataset_and_report(folder, tmp_path, capsys):
    from opticam_widgets.cli.main import main

    src = tmp_path / "src" / "espresso"
    src.mkdir(parents=True)
    for name in ("coffee.png", "coffee_crop.png"):
        (src / name).write_bytes((folder / "espresso" / name).read_bytes())
    out = tmp_path / "out"
    assert main(["explain-dataset", str(src.parent), "--out", str(out), "--iters", "2",
                 "--batch-size", "2", "--no-progress"]) == 0
    assert "2 rows, 2 images, 0 errors" in capsys.readouterr().out
    assert load_results(out).table["true_name"].tolist() == ["espresso", "espresso"]
    assert main(["report", str(out)]) == 0
    assert (out / "_report" / "report.md").is_file()
    assert len(pd.read_parquet(out / ROWS_DIR)) == 2  # the report is beside the rows
    assert main(["explain-dataset", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "`source`" in capsys.readouterr().err


def test_cli_yardsticks_and_methods(folder, tmp_path, capsys):
    """--yardsticks names what is measured and --methods the baselines measured too; a bad
    name is refused by the parser, naming the flag."""
    from opticam_widgets.cli.main import main

    src = tmp_path / "src" / "espresso"
    src.mkdir(parents=True)
    (src / "coffee.png").write_bytes((folder / "espresso" / "coffee.png").read_bytes())
    out = tmp_path / "out"
    assert main(["explain-dataset", str(src.parent), "--out", str(out), "--max-iter", "2",
                 "--yardsticks", "mean,deletion", "--methods", "channel-mean",
                 "--no-progress"]) == 0
    row = pd.read_parquet(out / ROWS_DIR).iloc[0]
    for method in ("opticam", "channel-mean"):
        assert 0.0 <= row[f"{method}:deletion_black"] <= 1.0
        assert np.isfinite(row[f"{method}:AD_mean"])
    assert "opticam:AD_blur" not in row.index
    for flag, value in (("--yardsticks", "mean,nope"), ("--methods", "opticam")):
        assert main(["explain-dataset", str(src.parent), "--out", str(out), flag, value]) == 2
        assert flag in capsys.readouterr().err


def test_ray_engine_without_ray_says_how_to_install(bundle, folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'opticam-widgets\[ray\]'"):
        explain_dataset(bundle, folder, tmp_path / "o", engine="ray", **SETTINGS)
    assert not (tmp_path / "o").exists()  # refused before anything is written
