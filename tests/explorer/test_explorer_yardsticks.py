"""The explorer's yardsticks: per method in the summary, per class through its filters, sortable
columns and the "rows where a method is worse than another" filter.

A tiny CNN trained once for the module (tests/yardstick_store.py) explains 9 labelled 32 px
photos with Opti-CAM, Grad-CAM and the channel mean (the cheap yardsticks); the explorer's
numbers are checked against the stored columns and the dataset's own tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from targetnets import one_thread
from yardstick_store import Photos, square_photos, tiny_bundle

from opticam_widgets import OptiCAMExplorer, explain_dataset
from opticam_widgets.explorer.query import Query, browse_table, range_bounds, select

RUN = {"max_iter": 5, "batch_size": 4, "num_workers": 0, "progress": False}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():  # 32 px nets gain nothing from a second thread on a loaded machine
        yield


@pytest.fixture(scope="module")
def results(_one_thread, tmp_path_factory):
    out = tmp_path_factory.mktemp("ys") / "results"
    return explain_dataset(tiny_bundle(), Photos(*square_photos(9, seed=7)), out,
                           methods=["gradcam", "channel-mean"], **RUN)


def test_worse_than_filter_and_yardstick_sort(results):
    table = browse_table(results.table)
    assert "gradcam:deletion_black" in table and "opticam:AG_mean" in table
    a, b = table["opticam:deletion_black"], table["gradcam:deletion_black"]
    kept = select(table, Query(worse=("deletion_black", "opticam", "gradcam")))
    assert list(kept.index) == list(table.index[(a > b).to_numpy()])  # deletion: lower is better
    a, b = table["opticam:AG_blur"], table["channel-mean:AG_blur"]
    kept = select(table, Query(worse=("AG_blur", "opticam", "channel-mean")))
    assert list(kept.index) == list(table.index[(a < b).to_numpy()])  # AG: higher is better
    ordered = select(table, Query(sort="gradcam:deletion_black", descending=True))
    values = ordered["gradcam:deletion_black"].to_numpy(float)
    assert len(values) == 9 and (np.diff(values) <= 0).all()
    with pytest.raises(ValueError, match="yardstick"):
        Query(worse=("bogus", "opticam", "gradcam"))
    with pytest.raises(ValueError, match="no column"):
        select(table, Query(worse=("AD_mean", "opticam", "finercam")))


@pytest.mark.numeric
def test_summary_gives_every_yardstick_per_method_of_the_selection(explorer, results):
    stats = explorer.summary()["yardsticks"]
    t = results.table
    assert set(stats) >= {"AD_black", "AD_mean", "AG_blur", "deletion_black"}
    for method in ("opticam", "gradcam", "channel-mean"):
        mean, margin, rows = stats["deletion_black"][method]
        col = t[f"{method}:deletion_black"].to_numpy(float)
        assert rows == 9 and mean == pytest.approx(col.mean())
        assert margin == pytest.approx(1.96 * col.std(ddof=1) / np.sqrt(9))
    html = explorer.summary_view.text.value
    assert "Yardsticks per method" in html and "deletion_black ↓" in html and "<b>" in html
    # per class: the predicted-class filter gives that class's own rows' yardsticks
    explorer.controls.predicted_class.select.value = ("red",)
    per = results.yardsticks(min_rows=1)
    red = per[(per["group"] == "red") & (per["yardstick"] == "AD_mean")].set_index("method")
    got = explorer.summary()["yardsticks"]["AD_mean"]
    assert {m: got[m][0] for m in got} == pytest.approx(red["mean"].to_dict())


def test_worse_than_controls_filter_the_grid(explorer, results):
    c = explorer.controls
    assert "gradcam:deletion_black" in [v for _, v in c.sort.options]
    c.worse_method.value, c.worse_rival.value = "opticam", "gradcam"
    c.worse_key.value = "deletion_black"
    t = results.table
    worse = t.index[(t["opticam:deletion_black"] > t["gradcam:deletion_black"]).to_numpy()]
    assert list(explorer.selection.index) == list(worse)
    assert explorer.query.worse == ("deletion_black", "opticam", "gradcam")
    c.worse_key.value = None
    assert len(explorer.selection) == 9


def test_a_store_without_yardsticks_shows_none(tmp_path):
    with one_thread():
        res = explain_dataset(tiny_bundle(), Photos(*square_photos(3, seed=7)), tmp_path / "o",
                              yardsticks=False, **RUN)
    ex = OptiCAMExplorer(res)
    try:
        assert ex.summary()["yardsticks"] == {}
        assert "Yardsticks" not in ex.summary_view.text.value
        assert ex.controls.worse_key.disabled
        assert not [v for _, v in ex.controls.sort.options if ":" in v]
    finally:
        ex.close()


def test_the_opened_row_shows_its_own_yardsticks(explorer, results):
    row = explorer.page_rows[0]
    explorer.open(row)
    html = explorer.detail.facts.value
    assert "Yardsticks of this row, per method" in html
    value = float(results.table.loc[row, "gradcam:deletion_black"])
    assert f"{value:.3f}" in html


@pytest.mark.numeric
def test_summary_gives_a_yardstick_per_method_and_per_class(explorer, results):
    t = results.table
    by = explorer.summary()["by_class"]
    assert by["yardstick"] == "AD_mean"  # the default
    assert set(by["classes"]) == set(t["target_name"])
    for name, per in by["classes"].items():
        rows = t[t["target_name"] == name]
        for method, (mean, _margin, n) in per.items():
            assert n == len(rows)
            assert mean == pytest.approx(rows[f"{method}:AD_mean"].astype(float).mean())
    assert "AD_mean ↓ per explained class" in explorer.summary_view.text.value
    c = explorer.controls
    a, b = t["gradcam:deletion_black"], t["opticam:deletion_black"]
    c.worse_method.value, c.worse_rival.value = (("gradcam", "opticam") if (a > b).any()
                                                 else ("opticam", "gradcam"))
    c.worse_key.value = "deletion_black"  # the class table follows the compared yardstick
    assert len(explorer.selection) and explorer.summary()["by_class"]["yardstick"] == (
        "deletion_black")
    assert "deletion_black ↓ per explained class" in explorer.summary_view.text.value


def test_range_filter_on_a_yardstick_column(results):
    """A yardstick column's range, in its own units: the whole range keeps every row (those
    without a value too), a narrower one the rows inside it; an unknown column is refused."""
    table = browse_table(results.table)
    col = "gradcam:deletion_black"
    values = table[col].astype(float)
    low, high = range_bounds(table, col)
    assert (low, high) == (values.min(), values.max()) and low < high
    assert len(select(table, Query(faithfulness=col, faithfulness_range=(low, high)))) == 9
    middle = float(values.median())
    kept = select(table, Query(faithfulness=col, faithfulness_range=(low, middle)))
    assert list(kept.index) == list(table.index[(values <= middle).to_numpy()])
    assert 0 < len(kept) < 9
    with pytest.raises(ValueError, match="yardstick column"):
        Query(faithfulness="deletion")
    with pytest.raises(ValueError, match="not a column"):
        select(table, Query(faithfulness="finercam:AD_mean", faithfulness_range=(0.0, 1.0)))


def test_range_slider_follows_the_chosen_yardstick(explorer, results):
    c = explorer.controls
    col = "opticam:deletion_black"
    assert col in [v for _, v in c.faithfulness.options]
    seen = []
    explorer.controls.observe(lambda change: seen.append(change["name"]))
    c.faithfulness.value = col
    values = results.table[col].astype(float)
    s = c.faithfulness_range
    assert (s.min, s.max) == pytest.approx((values.min(), values.max()))
    assert s.value == pytest.approx((values.min(), values.max())) and s.description == "range"
    assert len(explorer.selection) == 9 and len(seen) == 1  # one refresh, nothing filtered
    cut = float(values.median())
    s.value = (s.min, cut)
    t = results.table
    assert list(explorer.selection.index) == list(t.index[(values <= s.value[1]).to_numpy()])
    assert explorer.summary_view.plot.value[:4] == b"\x89PNG"  # that column's histogram
    c.faithfulness.value = "drop"
    assert (s.min, s.max, s.value, s.description) == (0.0, 100.0, (0.0, 100.0), "range (%)")
    assert len(explorer.selection) == 9
