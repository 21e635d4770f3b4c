"""The target grammar (issue #26): each kind, its shorthand, its refusals, and every entry point
taking the same objects (explain, metrics, curves, baselines, dataset, CLI, widget) with the
same maps as the shorthand."""

from __future__ import annotations

import argparse
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tinynets import ColourNet, small_cnn, two_squares

from opticam_widgets import ModelBundle, OptiCAM, Preprocess
from opticam_widgets.engine.targets import (
    Chooser,
    Classes,
    ClassIndex,
    ClassRows,
    Context,
    Label,
    NoTarget,
    TopK,
    TrueLabel,
    as_target,
    resolve,
)

LABELS = ["red", "green", "blue"]
PLAIN = Preprocess(size=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
X = two_squares()
LOGITS = torch.tensor([[0.1, 2.0, 0.3, -1.0], [1.5, 0.2, 0.9, 3.0]])


def bundle() -> ModelBundle:
    return ModelBundle(ColourNet().eval(), preprocess=PLAIN, labels=LABELS)


def rows_of(target, output=LOGITS, **context):
    rows = as_target(target).resolve(output, Context(**context))
    return rows.classes.tolist(), rows.index.tolist()


# --------------------------------------------------------------------------- each kind
def test_each_kind_resolves_to_its_rows():
    assert rows_of(TopK()) == ([1, 3], [0, 1])
    topk = TopK(2).resolve(LOGITS)
    assert (topk.classes.tolist(), topk.index.tolist(), topk.ranks) == ([1, 2, 3, 0], [0, 0, 1, 1],
                                                                       (0, 1, 0, 1))
    assert rows_of(TopK(9))[0] == [1, 2, 0, 3, 3, 0, 2, 1]  # more than the classes: all of them
    assert rows_of(ClassIndex(2)) == ([2, 2], [0, 1])
    assert rows_of(Label("Blue"), labels=LABELS + ["alpha"]) == ([2, 2], [0, 1])
    assert rows_of(Classes([3, 0])) == ([3, 0], [0, 1])  # one per image
    assert rows_of(Classes([3, 0, 1]), LOGITS[:1]) == ([3, 0, 1], [0, 0, 0])  # several of one
    items = [SimpleNamespace(label=2), SimpleNamespace(label=0)]
    assert rows_of(TrueLabel(), items=items) == ([2, 0], [0, 1])
    chooser = Chooser(lambda row, item: [int(row.argmin()), item.label])
    assert rows_of(chooser, items=items) == ([3, 2, 1, 0], [0, 0, 1, 1])


def test_score_and_probability_are_differentiable_callables_of_the_output():
    out = LOGITS.clone().requires_grad_(True)
    score = TopK(2)(out)
    assert torch.equal(score.detach(), torch.tensor([2.0, 0.3, 3.0, 1.5]))
    score.sum().backward()
    expected = torch.zeros_like(LOGITS)
    expected[0, [1, 2]] = expected[1, [3, 0]] = 1.0
    assert torch.equal(out.grad, expected)  # only the chosen logits move the score
    probs = torch.softmax(LOGITS, dim=1)
    assert torch.equal(ClassIndex(1).probability(LOGITS), probs[:, 1])
    rows = ClassRows(torch.tensor([0, 3]), torch.tensor([0, 1]))
    assert torch.equal(rows.score(LOGITS), torch.tensor([0.1, 3.0]))
    assert rows.subset(torch.tensor([1])).classes.tolist() == [3]


def test_specs_are_the_stores_json():
    assert [as_target(v).spec() for v in (None, 3, "true", ("top", 2), [1, 2])] == \
        [None, 3, "true", ["top", 2], [1, 2]]
    assert Chooser(test_specs_are_the_stores_json).spec() == "test_specs_are_the_stores_json"


# ---------------------------------------------------------------------------- shorthand
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, TopK(1)),
        (3, ClassIndex(3)),
        (np.int64(3), ClassIndex(3)),
        (torch.tensor(3), ClassIndex(3)),
        ("true", TrueLabel()),
        (("top", 2), TopK(2)),
        (["top", 2], TopK(2)),
        ("tabby", Label("tabby")),
        ([1, "b"], Classes([ClassIndex(1), Label("b")])),
        (torch.tensor([1, 2]), Classes([1, 2])),
        (np.array(["a"]), Classes([Label("a")])),
        (TopK(4), TopK(4)),
    ],
)
def test_shorthand_parses_to_the_objects(value, expected):
    assert as_target(value) == expected


def test_label_names_become_indices_once_labels_are_known():
    assert as_target("Green", labels=LABELS) == ClassIndex(1)
    assert as_target(["blue", 0], labels=LABELS) == Classes([2, 0])
    assert as_target(Label("red"), labels=LABELS) == ClassIndex(0)


@pytest.mark.filterwarnings("ignore:the model's output does not depend on the mask")
def test_explain_takes_objects_and_shorthand_with_the_same_maps():
    cam = OptiCAM(bundle(), max_iter=4)
    by_int = cam.explain(X, target=1)
    for same in (ClassIndex(1), Label("green"), "green", [1], Classes(["Green"])):
        result = cam.explain(X, target=same)
        assert result.target == (1,) and torch.equal(result.saliency, by_int.saliency)
    top = cam.predict(X)[0].topk(2).indices.tolist()
    by_topk = cam.explain(X, target=TopK(2))
    assert by_topk.target == tuple(top)
    assert torch.equal(by_topk.saliency, cam.explain(X, target=top).saliency)
    assert torch.equal(cam.explain(X, target=TopK()).saliency,
                       cam.explain(X, target=None).saliency)


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("target", "exc", "match"),
    [
        (2.7, TypeError, r"`target` must be a class index .* float 2.7: round it yourself"),
        (True, TypeError, r"`target` must be a class index .* bool True"),
        (np.bool_(True), TypeError, r"`target` must be a class index"),
        ([0, 1.5], TypeError, r"`target` must be a class index .* float 1.5"),
        ({"a": 1}, TypeError, r"`target` must be a class index .* dict"),
        ([TopK(2)], TypeError, r"`target` must be a class index .* TopK"),
        (torch.tensor([[1, 2]]), TypeError, "integer class indices or label names"),
        (torch.tensor([0.5]), TypeError, "integer class indices or label names"),
        (-1, ValueError, "out of range: a class index is >= 0"),
    ],
)
def test_parser_refuses_with_todays_messages(target, exc, match):
    with pytest.raises(exc, match=match):
        as_target(target)


@pytest.mark.parametrize(
    ("target", "context", "match"),
    [
        ("gren", {"labels": LABELS}, r"`target` 'gren' is not one of the model's 3 labels; did "
                                     r"you mean 'green'"),
        ("green", {}, r"'green' is a label name, but this model has no labels; give the class"),
        (7, {}, r"`target` 7 is out of range: the model has 4 classes \(a class index is in "
                r"0..3\)"),
        ([0, 1, 2], {}, "has 3 entries for 2 images; give one class per image"),
        ([], {}, "is an empty list"),
        ("true", {}, r"TrueLabel\(\) \('true'\) needs the images' true labels.*explain_dataset"),
    ],
)
def test_resolving_refuses_with_a_fix(target, context, match):
    with pytest.raises(ValueError, match=match):
        as_target(target).resolve(LOGITS, Context(**context))


def test_kinds_refuse_bad_arguments_and_missing_rows():
    for k in (0, True, 1.5):
        with pytest.raises(ValueError, match="TopK: `k` must be an int >= 1"):
            TopK(k)
    with pytest.raises(NoTarget, match="no true label for target='true'"):
        TrueLabel().resolve(LOGITS[:1], Context(items=[SimpleNamespace(label=None)]))
    with pytest.raises(NoTarget, match=r"`target` callable returned \[9\]"):
        Chooser(lambda row, item: [9]).resolve(LOGITS[:1], Context(items=[None]))
    with pytest.raises(ValueError, match="`targets` has 1 entries for 2 saliency maps"):
        resolve([1], LOGITS, name="targets", what="saliency maps", several_for_one=False)


# ------------------------------------------------------- the other entry points
def test_metrics_curves_and_baselines_take_the_objects():
    from opticam_widgets.evaluation.baselines import baseline_map
    from opticam_widgets.evaluation.curves import insertion
    from opticam_widgets.evaluation.metrics import faithfulness

    b = bundle()
    s = OptiCAM(b, max_iter=3).explain(X, target=[0, 1]).saliency
    by_names = faithfulness(b, X, s, target=Classes(["red", "green"]))
    by_ints = faithfulness(b, X, s, target=[0, 1])
    assert by_names["target"] == (0, 1)
    assert all(np.array_equal(by_names[k], by_ints[k]) for k in by_ints)
    assert faithfulness(b, X, s[:1], target=TopK())["target"] == \
        (int(OptiCAM(b).predict(X)[0].argmax()),)
    curve = insertion(b, X, s, target=Label("Blue"), steps=3)
    assert curve.target == (2, 2)
    with pytest.raises(ValueError, match="`target` gives 4 classes for 2 saliency maps"):
        faithfulness(b, X, s, target=TopK(2))
    assert torch.equal(baseline_map("channel-mean", b, X, target=TopK(2)),
                       baseline_map("channel-mean", b, X, target=OptiCAM(b).predict(X)[0]
                                    .topk(2).indices.tolist()))


def test_metrics_keep_the_old_targets_keyword_with_a_warning():
    from opticam_widgets.evaluation.metrics import faithfulness, masked_probabilities

    b = bundle()
    s = torch.ones(1, 16, 16)
    with pytest.warns(DeprecationWarning, match=r"faithfulness\(targets=...\) is now target="):
        old = faithfulness(b, X, s, targets="green")
    new = faithfulness(b, X, s, target="green")
    assert old["target"] == (1,) and all(np.array_equal(old[k], new[k]) for k in new)
    with pytest.raises(TypeError, match="give `target` only"):
        masked_probabilities(b, X, s, target=1, targets=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'targetz'"):
        masked_probabilities(b, X, s, targetz=1)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="`targets` 'gren'"):
        warnings.simplefilter("ignore", DeprecationWarning)
        faithfulness(b, X, s, targets="gren")


def test_dataset_and_cli_speak_the_same_grammar(tmp_path):
    from opticam_widgets.cli.args import target_arg
    from opticam_widgets.dataset.api import explain_dataset
    from opticam_widgets.dataset.cli import parse_target
    from opticam_widgets.dataset.compute import check_target

    assert parse_target is target_arg
    assert [as_target(target_arg(t)) for t in ("top1", "top3", "true", "7", "tabby")] == \
        [TopK(1), TopK(3), TrueLabel(), ClassIndex(7), Label("tabby")]
    with pytest.raises(argparse.ArgumentTypeError, match="a class index >= 0"):
        target_arg("-1")
    assert check_target(("top", 2)) == TopK(2) and check_target("Blue", labels=LABELS) == \
        ClassIndex(2)
    with pytest.raises(ValueError, match="has no labels"):
        check_target(Label("blue"))
    net = small_cnn(4).eval()
    named = ModelBundle(net, preprocess=Preprocess(size=(16, 16)), labels=list("abcd"))
    run = {"max_iter": 2, "batch_size": 2, "num_workers": 0, "progress": False, "metrics": False}
    images = [torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    short = explain_dataset(named, images, tmp_path / "short", target=("top", 2), **run)
    full = explain_dataset(named, images, tmp_path / "object", target=TopK(2), **run)
    assert short.settings["target"] == full.settings["target"] == ["top", 2]
    for col in ("id", "target", "rank", "final_score"):
        assert list(short.table[col]) == list(full.table[col])
    assert all(np.array_equal(a, b) for a, b in zip(short.table["map"], full.table["map"]))
    assert list(full.table["rank"]) == [0, 1, 0, 1]


def test_widget_select_class_takes_one_class_of_the_grammar():
    from opticam_widgets import OptiCAMWidget

    widget = OptiCAMWidget(small_cnn(4), labels=list("abcd"), preprocess={"size": (16, 16)})
    try:
        widget.set_images(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)),
                          run=False)
        widget.controls.iterations.value = 1
        widget.select_class(Label("C"))
        widget.wait(timeout=120)
        assert widget.controls.class_select.value == 2
        with pytest.raises(ValueError, match="asks for 2 classes; the widget explains one"):
            widget.select_class(TopK(2))
        assert widget.controls.class_select.value == 2
    finally:
        widget.close()


def test_shorthand_words_are_refused_when_a_class_is_named_so():
    """``"true"`` and ``("top", k)`` are shorthand; a model with a class named so is asked which."""
    labels = ["true", "top", "other"]
    with pytest.raises(ValueError, match=r"'true' is ambiguous.*Label\('true'\).*TrueLabel\(\)"):
        as_target("true", labels=labels)
    with pytest.raises(ValueError, match=r"'top' is ambiguous.*Label\('top'\).*TopK\(2\)"):
        as_target(("top", 2), labels=labels)
    assert as_target(Label("true"), labels=labels) == ClassIndex(0)
    assert as_target("true", labels=["a", "b"]) == TrueLabel()
    assert as_target(("top", 2), labels=["a", "b"]) == TopK(2)
