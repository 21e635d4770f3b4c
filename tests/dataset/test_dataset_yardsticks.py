"""explain_dataset's yardsticks per row and per method, their tables, the report, old stores.

A tiny CNN trained once for the module (tests/yardstick_store.py) explains 9 labelled 32 px
photos with Opti-CAM, Grad-CAM and the channel mean; every stored yardstick is compared with
the evaluation functions called directly on the same maps (recomputed by ``OptiCAM.explain``
and ``baseline_map`` on the same pixels), not with numbers written down.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from targetnets import one_thread
from yardstick_store import Photos, square_photos, tiny_bundle

from opticam_widgets import OptiCAM, explain_dataset, load_results
from opticam_widgets.dataset.comparison import best_methods, yardstick_summary
from opticam_widgets.dataset.fingerprint import SettingsMismatchError
from opticam_widgets.dataset.options import RunOptions
from opticam_widgets.dataset.report import write_report
from opticam_widgets.dataset.store import SCHEMA
from opticam_widgets.evaluation.baselines import baseline_map
from opticam_widgets.evaluation.curves import deletion, insertion
from opticam_widgets.evaluation.metrics import average_drop, faithfulness
from opticam_widgets.evaluation.road import ROAD_PERCENTILES, road
from opticam_widgets.evaluation.yardsticks import yardsticks

RUN = {"max_iter": 5, "batch_size": 4, "num_workers": 0, "progress": False}
MEASURES = ["black", "mean", "blur", "deletion", "insertion"]
METHODS = ["gradcam", "channel-mean"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():  # 32 px nets gain nothing from a second thread on a loaded machine
        yield


@pytest.fixture(scope="module")
def tiny(_one_thread):
    return tiny_bundle()


@pytest.fixture(scope="module")
def photos():
    return square_photos(9, seed=7)


@pytest.fixture(scope="module")
def run(tiny, photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("ys") / "results"
    return explain_dataset(tiny, Photos(*photos), out, yardsticks=MEASURES, methods=METHODS,
                           **RUN)


def maps_of(method, bundle, x, classes, layer):
    """Each row's map by ``method``, recomputed on its own (as the dataset engine does)."""
    if method == "opticam":
        cam = OptiCAM(bundle, max_iter=RUN["max_iter"])
        return torch.cat([cam.explain(x[i:i + 1], target=[c]).saliency
                          for i, c in enumerate(classes)])
    return baseline_map(method, bundle.model, x, classes, target_layer=layer,
                        preprocess=bundle.preprocess)


@pytest.mark.numeric
def test_every_yardstick_of_every_method_equals_the_evaluation_functions(run, tiny, photos):
    t = run.table
    assert len(t) == 9 and t["error"].isna().all()
    x = tiny.preprocess.resize(photos[0])
    classes = [int(c) for c in t["target"]]
    for method in ("opticam", *METHODS):
        maps = maps_of(method, tiny, x, classes, run.settings["layer"])
        for fill in ("black", "mean", "blur"):
            res = faithfulness(tiny, x, maps, classes, fill=fill)
            for key in ("AD", "AI", "AG"):
                stored = t[f"{method}:{key}_{fill}"].to_numpy(float)
                assert stored == pytest.approx(res[f"{key}_per_image"], abs=0.02), (method, key)
        curve = deletion(tiny, x, maps, classes, steps=20, baseline="black").auc
        assert t[f"{method}:deletion_black"].to_numpy(float) == pytest.approx(curve, abs=1e-3)
        curve = insertion(tiny, x, maps, classes, steps=20, baseline="blur").auc
        assert t[f"{method}:insertion_blur"].to_numpy(float) == pytest.approx(curve, abs=1e-3)
    # the paper's columns are Opti-CAM's black fill; the methods' maps differ
    assert t["opticam:AD_black"].to_numpy(float) == pytest.approx(t["drop"].to_numpy(float),
                                                                  abs=1e-3)
    assert not np.allclose(t["opticam:deletion_black"], t["gradcam:deletion_black"])


@pytest.mark.numeric
def test_road_opt_in_equals_road_on_the_same_maps(tiny, photos, tmp_path):
    x, y = photos[0][:2], photos[1][:2]
    res = explain_dataset(tiny, Photos(x, y), tmp_path / "r", yardsticks=["road"], **RUN)
    t = res.table
    assert [c for c in t if ":" in c] == ["opticam:ROAD_MoRF", "opticam:ROAD_LeRF",
                                          "opticam:ROAD"]
    classes = [int(c) for c in t["target"]]
    x = tiny.preprocess.resize(x)
    maps = maps_of("opticam", tiny, x, classes, None)
    # row by row, as the engine measures (ROAD's noise is seeded per call)
    direct = [road(tiny, x[i:i + 1], maps[i:i + 1], [c], percentiles=ROAD_PERCENTILES)
              for i, c in enumerate(classes)]
    assert t["opticam:ROAD_MoRF"].to_numpy(float) == pytest.approx(
        [float(r.morf[0]) for r in direct], abs=1e-4)
    assert t["opticam:ROAD"].to_numpy(float) == pytest.approx(
        [float(r.combined[0]) for r in direct], abs=1e-4)
    assert res.settings["yardsticks"]["percentiles"] == list(ROAD_PERCENTILES)


@pytest.mark.numeric
def test_tables_per_method_and_class_and_the_best_method(run, tiny, photos):
    t = run.table
    summary = run.yardsticks(min_rows=3)
    assert set(summary["method"]) == {"opticam", *METHODS}
    overall = summary[summary["group"] == "all"].set_index(["method", "yardstick"])
    # the mean of the AD terms is the evaluation's AD over the same rows and maps
    maps = maps_of("gradcam", tiny, tiny.preprocess.resize(photos[0]), list(t["target"]),
                   run.settings["layer"])
    direct = yardsticks(tiny, tiny.preprocess.resize(photos[0]), maps, list(t["target"]),
                        steps=20, percentiles=None)
    for key in ("AD_mean", "AG_blur", "deletion_black", "insertion_blur"):
        assert overall.loc[("gradcam", key), "mean"] == pytest.approx(direct[key], abs=0.02)
    col = t["opticam:AD_mean"].to_numpy(float)
    assert overall.loc[("opticam", "AD_mean"), "margin"] == pytest.approx(
        1.96 * col.std(ddof=1) / np.sqrt(len(col)))
    # per class: the classes with at least 3 rows, their own rows' means
    per = summary[summary["group"] != "all"]
    counts = t["target_name"].value_counts()
    assert set(per["group"]) == set(counts[counts >= 3].index)
    name = per["group"].iloc[0]
    rows = t[t["target_name"] == name]
    got = per[(per["group"] == name) & (per["method"] == "opticam")
              & (per["yardstick"] == "AD_black")]["mean"].item()
    assert got == pytest.approx(average_drop(rows["prob"].astype(float),
                                             rows["masked_prob"].astype(float)), abs=1e-3)
    # the best method per yardstick: the best mean in its direction, the paired lead
    best = run.best_methods().set_index("yardstick")
    means = overall["mean"].unstack("method")
    for key, pick in (("deletion_black", min), ("AG_blur", max), ("AD_mean", min)):
        best_mean = means.loc[key, best.loc[key, "best"]]  # ties: any of the tied methods
        assert best_mean == pick(means.loc[key]) == best.loc[key, "best_mean"]
    a = t[f"{best.loc['deletion_black', 'best']}:deletion_black"].astype(float)
    b = t[f"{best.loc['deletion_black', 'runner_up']}:deletion_black"].astype(float)
    assert best.loc["deletion_black", "difference"] == pytest.approx(float((a - b).mean()))


def test_report_shows_the_yardsticks_per_method_and_class(run, tmp_path):
    text = write_report(run, tmp_path / "rep", min_rows=3).read_text()
    assert (tmp_path / "rep" / "yardsticks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(yardsticks.png)" in text
    for title in ("## Yardsticks per method", "## Best method per yardstick",
                  "## Yardsticks per class"):
        assert title in text
    table = text.split("## Yardsticks per method")[1].split("##")[0]
    assert "| yardstick | rows | opticam | gradcam | channel-mean |" in table
    assert "deletion_black ↓" in table and "AG_mean ↑" in table and "**" in table
    best = run.best_methods().set_index("yardstick")
    assert f"| deletion_black ↓ | {best.loc['deletion_black', 'best']} |" in text


def test_a_store_written_before_yardsticks_opens_and_resumes_without_them(tiny, photos,
                                                                          tmp_path):
    x, y = photos
    out = tmp_path / "old"
    explain_dataset(tiny, Photos(x[:4], y[:4]), out, yardsticks=False, **RUN)
    settings = json.loads((out / "_opticam.json").read_text())
    del settings["yardsticks"]  # what the package wrote before yardsticks
    (out / "_opticam.json").write_text(json.dumps({**settings, "format": 3}))
    old = load_results(out)
    assert not [c for c in old.table if ":" in c] and old.yardsticks().empty
    assert "Yardsticks" not in write_report(old, tmp_path / "rep").read_text()
    assert not (tmp_path / "rep" / "yardsticks.png").exists()
    with pytest.raises(SettingsMismatchError, match="yardsticks"):  # would mix rows
        explain_dataset(tiny, Photos(x, y), out, yardsticks="cheap", **RUN)
    res = explain_dataset(tiny, Photos(x, y), out, **RUN)  # "auto": the store's own (none)
    assert len(res.table) == 9 and not [c for c in res.table if ":" in c]
    assert set(res.table.columns) <= set(SCHEMA.names)
    # a store with yardsticks resumes with them; asking for none would mix: refused
    new = tmp_path / "new"
    explain_dataset(tiny, Photos(x[:4], y[:4]), new, **RUN)
    with pytest.raises(SettingsMismatchError, match="yardsticks"):
        explain_dataset(tiny, Photos(x, y), new, yardsticks=False, **RUN)
    res = explain_dataset(tiny, Photos(x, y), new, **RUN)
    assert res.table["opticam:AD_mean"].notna().all() and len(res.table) == 9


def test_missing_values_are_left_out_never_zero():
    t = pd.DataFrame({"error": [None] * 3, "opticam:AD_mean": [10.0, np.nan, 20.0],
                      "gradcam:AD_mean": [np.nan, np.nan, np.nan]})
    s = yardstick_summary(t).set_index("method")
    assert s.loc["opticam", "mean"] == 15.0 and s.loc["opticam", "rows"] == 2
    assert s.loc["gradcam", "rows"] == 0 and np.isnan(s.loc["gradcam", "mean"])
    assert best_methods(t).loc[0, "best"] == "opticam"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"yardsticks": "bogus"}, ValueError, "yardsticks"),
    ({"yardsticks": 3}, TypeError, "yardsticks"),
    ({"methods": ["nope"]}, ValueError, "methods"),
    ({"methods": ["opticam"]}, ValueError, "always measured"),
    ({"methods": 3}, TypeError, "methods"),
])
def test_bad_yardstick_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        RunOptions(**kwargs)


def test_methods_need_yardsticks(tiny, photos, tmp_path):
    with pytest.raises(ValueError, match="give `yardsticks`"):
        explain_dataset(tiny, Photos(*photos), tmp_path / "x", yardsticks=False,
                        methods=["gradcam"], **RUN)
    assert RunOptions(yardsticks="all").yardsticks[-2:] == ("insertion", "road")


def test_a_missing_extra_is_refused_before_any_image_is_read(tiny, photos, tmp_path,
                                                              monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchcam", None)  # as if not installed
    with pytest.raises(ImportError, match="torchcam"):
        explain_dataset(tiny, Photos(*photos), tmp_path / "x", methods=["gradcam"], **RUN)
    assert not (tmp_path / "x").exists()
