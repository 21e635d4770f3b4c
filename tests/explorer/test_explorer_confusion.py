"""The explorer's confusion matrix: its counts (labelled rows only) and its cells as a filter.

The counts are checked against ``pandas.crosstab`` of the labelled rows, computed here apart;
the filter through the explorer's public parts (``explorer.matrix.choose`` is what a click on
a cell does in the browser; the browser test clicks the real cell), on the store of
test_explorer (its fixtures, imported).
"""

from __future__ import annotations

import pandas as pd
import pytest
from test_explorer import results  # noqa: F401 - the store fixture (the explorer fixture is in conftest.py)

from opticam_widgets.explorer import Confusion, confusion_counts
from opticam_widgets.explorer.confusion import cell_name
from opticam_widgets.explorer.matrix import ConfusionMatrix
from opticam_widgets.explorer.query import NO_LABEL, Query, browse_table, select

ROWS = pd.DataFrame({
    "id": [f"r{i}" for i in range(9)],
    "position": range(9),
    "true_class": ["cat", "cat", "cat", "dog", "dog", "fox", NO_LABEL, NO_LABEL, "misc"],
    "predicted_class": ["cat", "cat", "dog", "dog", "cat", "owl", "cat", "dog", "owl"],
    # the last three have no label the model knows ("misc" is a folder, not a class)
    "correct": pd.array([True, True, False, True, False, False, None, None, None],
                        dtype="boolean"),
})


def test_counts_are_the_crosstab_of_the_labelled_rows_only():
    m = confusion_counts(ROWS)
    labelled = ROWS[ROWS["correct"].notna()]
    expected = pd.crosstab(labelled["true_class"], labelled["predicted_class"])
    assert set(m.true) == set(expected.index) and set(m.predicted) == set(expected.columns)
    for t in m.true:
        for p in m.predicted:
            assert m.count(t, p) == int(expected.loc[t, p]), (t, p)
    assert (m.labelled, m.unlabelled, m.shown) == (6, 3, 6)
    assert NO_LABEL not in m.true and "misc" not in m.true  # unlabelled rows: in no cell
    assert m.true == ("cat", "dog", "fox")  # most rows first
    assert m.predicted[:2] == ("cat", "dog")  # columns follow the rows: the diagonal is right
    assert m.count("cat", "nobody") == 0
    caption = m.caption()
    assert "over the 6 labelled rows" in caption and "3 rows without a label left out" in caption


def test_limit_keeps_the_most_frequent_classes_and_says_what_is_left_out():
    m = confusion_counts(ROWS, limit=1)
    assert (m.true, m.predicted) == (("cat",), ("cat",))
    assert m.counts == ((2,),) and m.shown == 2
    assert (m.true_classes, m.predicted_classes) == (3, 3)
    assert ("1 of 3 true and 1 of 3 predicted classes shown (the most frequent), 4 rows in the "
            "others") in m.caption()
    with pytest.raises(ValueError, match="`limit`"):
        confusion_counts(ROWS, limit=0)


def test_the_diagonal_is_one_class_by_label_index_not_by_name():
    # a class folder "wall_clock" is the model's "wall clock" (label 409): the same class
    rows = pd.DataFrame({"true_class": ["wall_clock", "wall_clock", "tabby", "tabby"],
                         "true_label": [409, 409, 281, 281],
                         "predicted_class": ["wall clock", "tabby", "tabby", "tiger cat"],
                         "predicted": [409, 281, 281, 282],
                         "correct": [True, False, True, False]})
    m = confusion_counts(rows)
    assert m.true == ("tabby", "wall_clock")
    assert m.predicted == ("tabby", "wall clock", "tiger cat")  # columns follow the rows
    assert m.same == (("tabby", "tabby"), ("wall_clock", "wall clock"))
    right = sum(m.count(t, p) for t, p in m.same)
    assert right == int(rows["correct"].sum())  # the diagonal holds the right predictions
    assert confusion_counts(rows.drop(columns=["true_label", "predicted"])).same == (
        ("tabby", "tabby"),)  # without indices: by name only


def test_no_labelled_rows_make_an_empty_matrix_that_says_so():
    m = confusion_counts(ROWS[ROWS["correct"].isna()])
    assert (m.true, m.predicted, m.counts, m.labelled, m.unlabelled) == ((), (), (), 0, 3)
    assert m.caption().startswith("No labelled rows")
    assert m.as_dict()["names"] == []


def test_cell_names_and_the_views_json():
    d = confusion_counts(ROWS).as_dict()
    assert d["names"][0][1] == "true cat, predicted dog: 1 row"
    assert d["names"][0][0] == "true cat, predicted cat: 2 rows"
    assert cell_name("dog", "cat", 0) == "true dog, predicted cat: 0 rows"
    assert d["counts"][0][:2] == [2, 1]


def test_a_cell_filter_keeps_the_labelled_rows_of_its_pair():
    assert select(ROWS, Query(cell=("cat", "dog")))["id"].tolist() == ["r2"]
    assert select(ROWS, Query(cell=("dog", "dog")))["id"].tolist() == ["r3"]
    assert select(ROWS, Query(cell=("misc", "owl"))).empty  # no label: never in a cell
    assert select(ROWS, Query(cell=("cat", "cat"), correctness="wrong")).empty
    with pytest.raises(ValueError, match="`cell`"):
        Query(cell=("cat",))


def test_a_label_without_a_name_is_a_true_class_not_no_label():
    columns = ("position", "id", "path", "rank", "true_name", "true_label", "predicted",
               "predicted_name", "predicted_prob", "correct", "target", "target_name", "prob",
               "masked_prob", "drop", "increase", "gain", "initial_score", "final_score",
               "iterations", "error")
    t = pd.DataFrame({c: [None, None] for c in columns})
    t["true_label"] = pd.array([3, None], dtype="Int64")
    t["predicted"] = pd.array([3, 4], dtype="Int64")
    t["target"] = t["predicted"]
    t["correct"] = pd.array([True, None], dtype="boolean")
    b = browse_table(t)
    assert b["true_class"].tolist() == ["class 3", NO_LABEL]
    assert confusion_counts(b).true == ("class 3",)


def test_the_view_says_what_the_grid_shows():
    view = ConfusionMatrix()
    view.update(Confusion(("cat",), ("cat", "dog"), ((2, 1),), labelled=3, true_classes=1,
                          predicted_classes=2))
    assert view.data["names"] == [["true cat, predicted cat: 2 rows",
                                   "true cat, predicted dog: 1 row"]]
    view.choose("cat", "dog")
    view.say(1)
    assert view.cell == ("cat", "dog")
    assert view.status == "Grid filtered to true cat, predicted dog: 1 row."
    view.clear()
    view.say(3)
    assert view.cell is None and view.status == ""
    view.close()


# ---------------------------------------------------------------------- in the explorer


def test_the_explorers_matrix_counts_its_labelled_rows(explorer):  # noqa: F811 - a fixture
    t = explorer.table
    labelled = t[t["correct"].notna()]
    assert 0 < len(labelled) < len(t)  # the store has unlabelled rows ("misc")
    m = explorer.matrix.matrix
    expected = pd.crosstab(labelled["true_class"], labelled["predicted_class"])
    assert m.labelled == len(labelled) and m.unlabelled == len(t) - len(labelled)
    assert {(a, b): m.count(a, b) for a in m.true for b in m.predicted} == {
        (a, b): int(expected.loc[a, b]) for a in m.true for b in m.predicted}
    assert explorer.matrix.data["caption"] == m.caption()
    # the accuracy line says it is taken over the labelled rows only, and is theirs
    text = explorer.summary_view.text.value
    accuracy = 100.0 * labelled["correct"].astype(float).mean()
    assert f"accuracy {accuracy:.1f}% over the {len(labelled)} labelled rows" in text


def test_a_chosen_cell_filters_the_grid_and_clear_resets_it(explorer):  # noqa: F811
    m = explorer.matrix.matrix
    wrong = [(a, b) for a in m.true for b in m.predicted if a != b and m.count(a, b)]
    true, predicted = wrong[0]
    before = explorer.matrix.data
    explorer.matrix.choose(true, predicted)  # what a click on the cell does
    t = explorer.table
    expected = t[(t["true_class"] == true) & (t["predicted_class"] == predicted)
                 & t["correct"].notna()]
    assert list(explorer.selection.index) == list(expected.index)
    assert len(explorer.selection) == m.count(true, predicted)
    assert explorer.page_rows == [int(i) for i in expected.index[:4]]
    assert [tile.row for tile in explorer.grid.tiles if tile.row is not None] == \
        explorer.page_rows
    assert explorer.matrix.data == before  # the matrix stays: another cell can be chosen
    assert f"<b>{len(expected)}</b> rows" in explorer.summary_view.text.value
    assert explorer.matrix.status == (
        f"Grid filtered to {cell_name(true, predicted, len(expected))}.")
    assert explorer.query.cell == (true, predicted)
    # the other filters still apply, and narrow the matrix itself
    explorer.controls.correctness.value = "correct"
    assert explorer.selection.empty  # an off-diagonal cell has no right prediction
    assert all(a == b for a in explorer.matrix.matrix.true for b in explorer.matrix.matrix.
               predicted if explorer.matrix.matrix.count(a, b))
    explorer.controls.correctness.value = "all"
    explorer.matrix.clear()  # what "Show all cells" does
    assert len(explorer.selection) == len(t) and explorer.query.cell is None
    assert explorer.matrix.status == ""
