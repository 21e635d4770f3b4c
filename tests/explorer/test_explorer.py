"""OptiCAMExplorer, headless: filters, sorting, paging, summary, export and the detail view.

One explain_dataset run of the default model (3 iterations) over 13 files shared by the module:
photos in ImageFolder class folders, some deliberately in the wrong class (so some predictions
are wrong), some in a folder that is no class (no label), and one unreadable file (an error
row, not browsable). The explorer is driven through its public methods and its controls'
values, as a user's clicks would.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from opticam_widgets import OptiCAMExplorer, explain_dataset
from opticam_widgets.display.render import overlay
from opticam_widgets.evaluation.metrics import average_drop, average_gain, average_increase
from opticam_widgets.explorer.query import Query, browse_table, select
from opticam_widgets.model.zoo import sample_images

ITERS = 3
#: Photo -> class folder: right classes, deliberately wrong ones, and a folder that is no class.
FOLDERS = {"chelsea": "tabby", "coffee": "espresso", "camera": "tripod",
           "coins": "espresso", "clock": "tabby", "rocket": "misc"}


def make_folder(root: Path) -> Path:
    photos = sample_images()
    for name, folder in FOLDERS.items():
        img = photos[name]
        (root / folder).mkdir(parents=True, exist_ok=True)
        img.save(root / folder / f"{name}.png")
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / folder / f"{name}_flip.jpg")
    (root / "misc" / "broken.png").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def results(bundle, tmp_path_factory):
    folder = make_folder(tmp_path_factory.mktemp("photos"))
    out = tmp_path_factory.mktemp("store") / "results"
    return explain_dataset(bundle, folder, out, max_iter=ITERS, batch_size=6, num_workers=0,
                           progress=False, yardsticks=False)  # test_explorer_yardsticks.py


def test_store_has_right_wrong_unlabelled_and_error_rows(results):
    t = results.table
    assert len(t) == 13 and t["error"].notna().sum() == 1
    ok = t[t["error"].isna()]
    assert (ok["correct"] == True).sum() >= 2  # noqa: E712 - nullable booleans
    assert (ok["correct"] == False).sum() >= 4  # noqa: E712 - coins, clock at least
    assert ok["correct"].isna().sum() == 2  # the rocket photos in "misc"


def test_browse_table_leaves_out_errors_and_names_classes(results):
    table = browse_table(results.table)
    assert len(table) == 12 and "misc/broken.png" not in set(table["id"])
    assert set(table.index) <= set(results.table.index)
    rocket = table[table["id"] == "misc/rocket.png"].iloc[0]
    assert rocket["true_class"] == "misc"
    gain = table["final_score"] - table["initial_score"]
    assert table["score_gain"].to_numpy() == pytest.approx(gain.to_numpy().astype(float))


def test_filters_match_the_table(explorer, results):
    t = explorer.table
    c = explorer.controls
    c.correctness.value = "wrong"
    assert list(explorer.selection.index) == list(t.index[(t["correct"] == False).fillna(False)])  # noqa: E712
    c.correctness.value = "no label"
    assert set(explorer.selection["id"]) == {"misc/rocket.png", "misc/rocket_flip.jpg"}
    c.correctness.value = "all"
    c.true_class.select.value = ("tabby",)
    assert set(explorer.selection["true_class"]) == {"tabby"} and len(explorer.selection) == 4
    c.true_class.select.value = ()
    low, high = 0.3, 0.9
    c.confidence.value = (low, high)
    p = t["predicted_prob"].astype(float)
    assert set(explorer.selection.index) == set(t.index[(p >= low) & (p <= high)])
    c.confidence.value = (0.0, 1.0)
    c.faithfulness.value = "gain"
    c.faithfulness_range.value = (10.0, 100.0)
    assert set(explorer.selection.index) == set(t.index[t["gain"].astype(float) >= 10.0])
    c.faithfulness_range.value = (0.0, 100.0)
    assert len(explorer.selection) == 12


def test_predicted_class_search_and_selection(explorer):
    t = explorer.table
    picker = explorer.controls.predicted_class
    name = t["predicted_class"].iloc[0]
    needle = name[1:4].upper()
    picker.search.value = needle
    expected = {n for n in t["predicted_class"] if needle.lower() in n.lower()}
    assert set(picker.select.options) == expected
    assert set(explorer.selection["predicted_class"]) == expected
    picker.select.value = (name,)
    assert set(explorer.selection["predicted_class"]) == {name}
    picker.select.value = ()
    picker.search.value = "no class has this name"
    assert picker.select.options == () and explorer.selection.empty
    assert explorer.page_rows == [] and all(tile.row is None for tile in explorer.grid.tiles)
    assert "no rows match" in explorer.pager.label.value
    picker.search.value = ""
    assert len(explorer.selection) == 12


@pytest.mark.parametrize("key", ["predicted_prob", "drop", "gain", "score_gain",
                                 "predicted_class", "true_class", "correct", "position"])
def test_sorting(explorer, key):
    def values():
        v = explorer.selection[key].dropna()  # rows without a value (no label) sort last
        return v.str.lower() if v.dtype == object else v.astype(float)
    explorer.controls.sort.value = key
    explorer.controls.descending.value = True
    assert values().is_monotonic_decreasing
    assert explorer.selection[key].isna().sum() == 0 or explorer.selection[key].iloc[-1] is pd.NA
    explorer.controls.descending.value = False
    assert values().is_monotonic_increasing
    assert explorer.page_rows == [int(i) for i in explorer.selection.index[:4]]


def test_paging_covers_the_selection_once_and_keeps_memory_to_the_page(explorer):
    explorer.controls.sort.value = "drop"
    assert explorer.pages == 3 and explorer.page == 0
    seen = []
    for page in range(explorer.pages):
        explorer.go_to(page)
        rows = explorer.page_rows
        assert [t.row for t in explorer.grid.tiles if t.row is not None] == rows
        seen += rows
        assert len(explorer.thumbs) <= 2 * explorer.page_size
    assert seen == [int(i) for i in explorer.selection.index]
    explorer.next_page()
    assert explorer.page == 2  # the last page stays
    explorer.previous_page()
    assert explorer.page == 1
    with pytest.raises(ValueError, match="`page`"):
        explorer.go_to(3)
    explorer.controls.correctness.value = "wrong"  # a new selection starts at its first page
    assert explorer.page == 0


def test_tiles_show_the_stored_map_over_the_thumbnail(explorer, results):
    row = explorer.page_rows[0]
    tile = explorer.thumbs.get([row])[row]
    thumb = results.thumbnail(row)
    assert np.array_equal(tile, overlay(thumb, results.low_res(row)))  # the stored map
    exact = overlay(thumb, results.saliency(row, thumb.shape[:2]))  # rebuilt at this size
    assert np.abs(tile.astype(int) - exact).max() <= 8
    t = explorer.grid.tiles[0]
    assert (t.canvas.width, t.canvas.height) == (thumb.shape[1], thumb.shape[0])
    wrong = explorer.table.loc[explorer.page_rows, "correct"] == False  # noqa: E712
    for tile_, is_wrong in zip(explorer.grid.tiles, wrong.fillna(False)):
        assert ("✗" in tile_.caption.value) == bool(is_wrong)
        assert ("error-color1" in tile_.box.layout.border) == bool(is_wrong)


def test_summary_is_the_papers_metrics_of_the_selection(explorer):
    explorer.controls.correctness.value = "wrong"
    sel = explorer.selection
    s = explorer.summary()
    p, o = sel["prob"].astype(float), sel["masked_prob"].astype(float)
    assert s["rows"] == len(sel) and s["accuracy"] == 0.0
    assert s["AD"] == pytest.approx(average_drop(p, o))
    assert s["AI"] == pytest.approx(average_increase(p, o))
    assert s["AG"] == pytest.approx(average_gain(p, o))
    text = explorer.summary_view.text.value
    assert f"<b>{len(sel)}</b> rows" in text and f"AD {s['AD']:.1f}%" in text
    assert "1 images of the store failed" in text
    before = bytes(explorer.summary_view.plot.value)
    hist = np.asarray(Image.open(io.BytesIO(before)).convert("RGB")).astype(int)
    assert (np.abs(hist - [196, 78, 82]).max(-1) < 4).sum() > 50  # drop bars, in red
    explorer.summary_view.kind.value = "per class"
    bars = np.asarray(Image.open(io.BytesIO(explorer.summary_view.plot.value)).convert("RGB"))
    assert bars.shape == hist.shape and np.abs(bars.astype(int) - hist).mean() > 1.0


def test_export_csv_and_contact_sheet(explorer, tmp_path):
    explorer.controls.correctness.value = "wrong"
    explorer.controls.sort.value = "drop"
    explorer.controls.descending.value = True
    csv = pd.read_csv(explorer.export_csv(tmp_path / "wrong.csv"))
    assert list(csv["id"]) == list(explorer.selection["id"])
    assert csv["drop"].to_numpy() == pytest.approx(explorer.selection["drop"].astype(float))
    sheet = np.asarray(Image.open(explorer.contact_sheet(tmp_path / "wrong.png", columns=3)))
    n = len(explorer.selection)
    lines = -(-n // 3)
    assert sheet.shape == (lines * (160 + 22 + 4) + 4, 3 * 164 + 4, 3)
    corner = sheet[4:7, 4 + 40:4 + 120]  # the red frame of the first (wrong) tile
    assert (np.abs(corner.astype(int) - [198, 40, 40]).max(-1) < 8).all()
    short = np.asarray(Image.open(explorer.contact_sheet(tmp_path / "two.png", limit=2)))
    assert short.shape[1] == 2 * 164 + 4
    explorer.export_path.value = str(tmp_path / "clicked")
    explorer.sheet_button.click()
    explorer.csv_button.click()
    assert (tmp_path / "clicked.png").is_file() and (tmp_path / "clicked.csv").is_file()
    assert "saved" in explorer.export_status.value
    explorer.controls.predicted_class.search.value = "no class has this name"
    with pytest.raises(ValueError, match="selection is empty"):
        explorer.contact_sheet(tmp_path / "none.png")
    explorer.sheet_button.click()
    assert "selection is empty" in explorer.export_status.value


def test_tiles_are_named_buttons_that_open_their_row(explorer):
    """The keyboard's and screen reader's tile: a button named by the row's file name."""
    rows = explorer.page_rows
    tiles = explorer.grid.tiles[: len(rows)]
    names = [str(explorer.table.loc[r, "id"]).rsplit("/", 1)[-1] for r in rows]
    assert [t.open_button.description for t in tiles] == names
    assert all(name not in t.caption.value for t, name in zip(tiles, names))  # said once
    tiles[2].open_button.click()
    assert explorer.detail.row == rows[2] and explorer.detail.box.layout.display == ""
    assert "brand-color1" in tiles[2].box.layout.border
    classes = explorer.root.children[-2].children  # the two panes: grid beside the detail
    assert [c._dom_classes for c in classes] == [("opticam-explorer-grid",),
                                                 ("opticam-explorer-detail",)]


def test_click_opens_the_static_view(explorer, results):
    tile = explorer.grid.tiles[1]
    row = tile.row
    tile.canvas._handle_frontend_event(None, {"event": "mouse_down", "x": 3, "y": 4}, [])
    assert explorer.detail.row == row and explorer.detail.box.layout.display == ""
    assert "brand-color1" in tile.box.layout.border
    shown = np.asarray(Image.open(io.BytesIO(explorer.detail.image.value)).convert("RGB"))
    photo = Image.open(results.table.loc[row, "path"]).convert("RGB")
    photo.thumbnail((448, 448), Image.BILINEAR)
    photo = np.asarray(photo)
    expected = overlay(photo, results.saliency(row, photo.shape[:2]))
    assert shown.shape == expected.shape and np.abs(shown.astype(int) - expected).max() <= 1
    facts = explorer.detail.facts.value
    assert results.table.loc[row, "id"] in facts and "drop / gain" in facts
    explorer.detail.close_button.click()
    assert explorer.detail.box.layout.display == "none" and explorer.detail.row is None
    with pytest.raises(ValueError, match="`row`"):
        explorer.open(int(results.table.index[results.table["error"].notna()][0]))


def test_live_detail_view_reruns_the_stored_map(results, bundle):
    ex = OptiCAMExplorer(results, model=bundle, page_size=4)
    try:
        ex.controls.correctness.value = "wrong"
        row = ex.page_rows[0]
        ex.open(row)
        widget = ex.detail.widget
        assert widget is not None and widget.widget in ex.detail.body.children
        assert widget.controls.iterations.value == ITERS
        result = widget.wait(timeout=300)
        assert result is not None and widget.target == int(results.table.loc[row, "target"])
        stored = results.saliency(row)
        assert widget.saliency.shape == stored.shape
        assert np.abs(widget.saliency - stored).max() < 0.02
        runs = widget.explain_count
        other = ex.page_rows[1]
        ex.grid.tiles[1].click()  # the same widget shows the next row
        widget.wait(timeout=300)
        assert ex.detail.widget is widget and widget.explain_count == runs + 1
        assert np.abs(widget.saliency - results.saliency(other)).max() < 0.02
    finally:
        ex.close()
    assert widget.widget.comm is None and not widget.running


def test_model_checks_and_bad_arguments(results, tmp_path):
    with pytest.raises(ValueError, match="`model` is 'Linear'"):
        OptiCAMExplorer(results, model=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="`model`"):
        OptiCAMExplorer(results, model=42)
    with pytest.raises(TypeError, match="`results`"):
        OptiCAMExplorer(42)
    with pytest.raises(ValueError, match="`out`"):
        OptiCAMExplorer(tmp_path)
    with pytest.raises(ValueError, match="`page_size`"):
        OptiCAMExplorer(results, page_size=0)
    with pytest.raises(ValueError, match="`alpha`"):
        OptiCAMExplorer(results, alpha=2.0)
    with pytest.raises(ValueError, match="`correctness`"):
        Query(correctness="maybe")
    with pytest.raises(ValueError, match="`confidence`"):
        Query(confidence=(0.9, 0.1))


def test_query_is_pure_pandas(results):
    table = browse_table(results.table)
    sel = select(table, Query(correctness="correct", sort="predicted_prob", descending=True))
    assert (sel["correct"] == True).all()  # noqa: E712
    assert sel["predicted_prob"].is_monotonic_decreasing


def test_opened_folder_and_saved_picture(results):
    ex = OptiCAMExplorer(str(results.out), page_size=6)
    try:
        data, meta = ex._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in data
        assert "OptiCAMExplorer(" in data["text/plain"]
        assert meta["image/jpeg"]["width"] == 6 * (96 + 4) + 4
        picture = Image.open(io.BytesIO(base64.b64decode(data["image/jpeg"])))
        assert picture.size == (6 * 100 + 4, 96 + 22 + 4 + 4)  # the page: 6 tiles, 1 line
        assert repr(ex).startswith(f"OptiCAMExplorer({str(results.out)!r}: 12 of 12 rows")
    finally:
        ex.close()
    data, _ = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in data
    assert ex.root.comm is None and ex.grid.tiles[0].canvas.comm is None


def test_thumbnails_are_read_from_the_right_shard(results, tmp_path):
    """A store of many small shards (several row groups each): each row gets its own bytes."""
    import pyarrow.parquet as pq

    from opticam_widgets import load_results
    from opticam_widgets.dataset.store import Store
    from opticam_widgets.explorer.thumbs import ThumbnailReader, decode_jpeg

    full = Store(results.out).read()
    store = Store(tmp_path / "split")
    store.write_settings({k: v for k, v in results.settings.items() if k != "format"})
    for start in (0, 5, 9):  # shards of 5, 4 and 4 rows, written with 2-row groups
        path = store.write(full.slice(start, 5 if start == 0 else 4))
        pq.write_table(pq.read_table(path), path, row_group_size=2)
    split = load_results(tmp_path / "split")
    reader = ThumbnailReader(split)
    assert len(reader.shards) == 3
    rows = [int(i) for i in split.table.index[split.table["error"].isna()]]
    got = reader.read(rows[::-1])
    for row in rows:  # the stored thumbnail of that very row
        assert np.array_equal(decode_jpeg(got[row]), results.thumbnail(row))
    bad = int(split.table.index[split.table["error"].notna()][0])
    assert reader.read([bad]) == {bad: None}


def test_show_without_ipython_prints_and_returns_the_explorer(results, capsys):
    ex = OptiCAMExplorer(results, page_size=4)
    try:
        assert ex.show() is ex and ex.widget is ex.root
        assert capsys.readouterr().out.startswith("OptiCAMExplorer(")
    finally:
        ex.close()


def copy_store(results, out: Path, edit) -> Path:
    """A copy of the store with ``edit(arrow table) -> arrow table`` applied (public API)."""
    from opticam_widgets.dataset.store import Store

    store = Store(out)
    store.write_settings({k: v for k, v in results.settings.items() if k != "format"})
    store.write(edit(Store(results.out).read()))
    return out


def test_store_without_metrics_or_labels(results, tmp_path):
    """No faithfulness terms and no true labels: '—' in the summary, filters still honest."""
    import pyarrow as pa

    def strip(table):
        for name in ("prob", "masked_prob", "drop", "increase", "gain", "correct",
                     "true_label", "true_name"):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, table.schema.field(i), pa.nulls(table.num_rows,
                                                                        table.schema.field(i).type))
        return table
    ex = OptiCAMExplorer(copy_store(results, tmp_path / "bare", strip), page_size=4)
    try:
        s = ex.summary()
        assert s["rows"] == 12 and s["measured"] == 0 and s["AD"] is None
        assert s["accuracy"] is None
        assert "AD — ↓" in ex.summary_view.text.value
        assert "12 rows without faithfulness terms" in ex.summary_view.text.value
        assert set(ex.table["true_class"]) == {"(no label)"}
        ex.controls.correctness.value = "wrong"
        assert ex.selection.empty
        ex.controls.correctness.value = "no label"
        assert len(ex.selection) == 12
        ex.controls.faithfulness_range.value = (0.0, 50.0)  # rows without a value: not in range
        assert ex.selection.empty
        ex.controls.faithfulness_range.value = (0.0, 100.0)
        ex.open(ex.page_rows[0])  # static view still shows the stored map
        assert "—" in ex.detail.facts.value and ex.detail.image.value
    finally:
        ex.close()


def test_live_view_explains_the_rows_class_not_the_prediction(results, bundle, tmp_path):
    """A row whose class is not the top-1 (e.g. target='true' or top-k runs): that class."""
    import pyarrow as pa

    def retarget(table):
        i = table.schema.get_field_index("target")
        targets = table.column("target").to_pylist()
        targets[0] = 281
        table = table.set_column(i, table.schema.field(i), pa.array(targets, pa.int32()))
        j = table.schema.get_field_index("target_name")
        names = table.column("target_name").to_pylist()
        names[0] = "tabby"
        return table.set_column(j, table.schema.field(j), pa.array(names, pa.string()))
    ex = OptiCAMExplorer(copy_store(results, tmp_path / "retarget", retarget), model=bundle)
    try:
        row = int(ex.table.index[0])
        assert int(ex.table.loc[row, "target"]) == 281
        assert "map of: tabby" in ex.grid.tiles[0].caption.value
        ex.open(row)
        ex.detail.widget.wait(timeout=300)
        assert ex.detail.widget.target == 281 and ex.detail.widget.result is not None
    finally:
        ex.close()


def test_store_where_every_image_failed(results, tmp_path):
    def only_errors(table):
        import pyarrow.compute as pc

        return table.filter(pc.is_valid(table.column("error")))
    ex = OptiCAMExplorer(copy_store(results, tmp_path / "failed", only_errors))
    try:
        assert ex.table.empty and ex.selection.empty and ex.pages == 1
        assert ex.page_rows == [] and all(t.row is None for t in ex.grid.tiles)
        assert ex.summary()["rows"] == 0 and "1 images of the store failed" in \
            ex.summary_view.text.value
        with pytest.raises(ValueError, match="selection is empty"):
            ex.contact_sheet(tmp_path / "none.png")
    finally:
        ex.close()


def test_accuracy_is_said_over_the_labelled_rows_only():
    import pandas as pd

    from opticam_widgets.explorer.query import Query, select, selection_summary
    from opticam_widgets.explorer.summary import summary_html

    table = pd.DataFrame({"id": list("abcde"), "prob": [0.9, 0.8, 0.7, 0.6, 0.5],
                          "masked_prob": [0.5] * 5, "correct": [True, False, None, None, None],
                          "position": range(5)})
    stats = selection_summary(table)
    assert (stats["accuracy"], stats["labelled"]) == (50.0, 2)
    assert "accuracy 50.0% over the 2 labelled rows" in summary_html(stats)
    assert select(table, Query(correctness="wrong"))["id"].tolist() == ["b"]
    assert select(table, Query(correctness="no label"))["id"].tolist() == ["c", "d", "e"]
    every = selection_summary(table.iloc[:2])
    assert "accuracy 50.0%" in summary_html(every) and "labelled" not in summary_html(every)
