"""Issue 27: a class asked for by label name wherever a target is taken (engine, baselines,
metrics, curves, dataset), by the one rule of :func:`opticam_widgets.engine.classes.class_index`
(through the target grammar, :mod:`opticam_widgets.engine.targets`);
floats and booleans refused with a TypeError naming the argument; the model untouched."""

from __future__ import annotations

import argparse
import random

import numpy as np
import pytest
import torch
from tinynets import ColourNet, two_squares
from torch import nn

from opticam_widgets import ModelBundle, OptiCAM, Preprocess
from opticam_widgets.evaluation.baselines import baseline_map
from opticam_widgets.evaluation.curves import insertion
from opticam_widgets.evaluation.metrics import faithfulness

LABELS = ["red", "green", "blue"]
PLAIN = Preprocess(size=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
X = two_squares()  # red square top-left, green square bottom-right
ITERS = 3


def bundle() -> ModelBundle:
    return ModelBundle(ColourNet().eval(), preprocess=PLAIN, labels=LABELS)


def state(model: nn.Module) -> tuple:
    return ([(m.training, len(m._forward_hooks), len(m._forward_pre_hooks))
             for m in model.modules()],
            [(p.requires_grad, p.grad is None, p.detach().clone()) for p in model.parameters()],
            torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(),
            torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_num_threads())


def assert_untouched(before: tuple, after: tuple) -> None:
    assert before[0] == after[0], "modes or hooks changed"
    for (g0, n0, w0), (g1, n1, w1) in zip(before[1], after[1]):
        assert (g0, n0) == (g1, n1) and torch.equal(w0, w1), "a parameter changed"
    assert torch.equal(before[2], after[2]) and np.array_equal(before[3], after[3])
    assert before[4:] == after[4:]


# ----------------------------------------------------------------------- the engine
def test_explain_takes_a_label_name_like_its_index():
    cam = OptiCAM(bundle(), max_iter=ITERS)
    assert cam.labels == LABELS
    by_name = cam.explain(X, target="green")
    by_index = cam.explain(X, target=1)
    assert by_name.target == (1,)
    assert torch.allclose(by_name.saliency, by_index.saliency, atol=1e-6)
    # the green map lights the green square (bottom-right), not the red one
    low = by_name.saliency[0]
    assert low[10, 10] > 0.5 > low[5, 5]
    # several classes for one image, names (any case) and indices mixed
    assert cam.explain(X, target=["Red", 2, "green"]).target == (0, 2, 1)
    # one class per image
    assert cam.explain(torch.stack([X, X]), target=["blue", 0]).target == (2, 0)
    assert cam.explain(X, target=np.array(["red"])).target == (0,)


def test_labels_keyword_and_its_checks():
    cam = OptiCAM(ColourNet().eval(), preprocess=PLAIN, max_iter=1, labels=["r", "g", "b"])
    assert cam.explain(X, target="g").target == (1,)
    # the keyword wins over the bundle's labels
    assert OptiCAM(bundle(), max_iter=1, labels=["x", "y", "z"]).explain(X, target="y").target \
        == (1,)
    for bad in ("red green blue", [1, 2, 3], []):
        with pytest.raises(TypeError, match="`labels` must be a non-empty list of class names"):
            OptiCAM(ColourNet(), labels=bad)


@pytest.mark.parametrize(
    ("target", "exc", "match"),
    [
        (2.7, TypeError, r"`target` must be a class index .* float 2.7: round it yourself"),
        (np.float32(1.0), TypeError, r"`target` must be a class index .*float32"),
        (True, TypeError, r"`target` must be a class index .* bool True"),
        (np.bool_(False), TypeError, r"`target` must be a class index"),
        ([0, 1.5], TypeError, r"`target` must be a class index .* float 1.5"),
        (["green", False], TypeError, r"`target` must be a class index .* bool False"),
        ("gren", ValueError, r"`target` 'gren' is not one of the model's 3 labels; did you "
                             r"mean 'green'"),
        (["red", "purple"], ValueError, r"'purple' is not one of the model's 3 labels"),
        (3, ValueError, "out of range"),
    ],
)
def test_explain_refuses_floats_booleans_and_unknown_names(target, exc, match):
    b = bundle()
    before = state(b.model)
    with pytest.raises(exc, match=match):
        OptiCAM(b, max_iter=1).explain(X, target=target)
    assert_untouched(before, state(b.model))


def test_a_name_on_a_model_without_labels_is_refused_naming_the_fix():
    net = ColourNet().eval()
    before = state(net)
    with pytest.raises(ValueError, match="`target` 'green' is a label name, but this model has "
                                         r"no labels; give the class index \(an int\)"):
        OptiCAM(net, preprocess=PLAIN, max_iter=1).explain(X, target="green")
    assert_untouched(before, state(net))


# ------------------------------------------------------- baselines, metrics, curves
def test_baselines_metrics_and_curves_take_a_bundles_label_name():
    b = bundle()
    before = state(b.model)
    by_name = baseline_map("channel-mean", b, X, target="green")
    assert torch.equal(by_name, baseline_map("channel-mean", b, X, target=1))
    s = OptiCAM(b, max_iter=ITERS).explain(X, target="green").saliency
    named = faithfulness(b, X, s, target="Green")
    assert named["target"] == (1,)
    assert named == faithfulness(b, X, s, target=1)
    assert insertion(b, X, s, target=["green"], steps=4).target == (1,)
    with pytest.raises(TypeError, match="`target` must be a class index .* float 1.0"):
        baseline_map("channel-mean", b, X, target=1.0)
    with pytest.raises(TypeError, match="`target` must be a class index .* bool True"):
        faithfulness(b, X, s, target=True)
    with pytest.raises(ValueError, match="`target` 'gren' .*did you mean 'green'"):
        insertion(b, X, s, target="gren", steps=4)
    with pytest.raises(ValueError, match="`target` 'green' is a label name, but this model has "
                                         "no labels"):
        faithfulness(b.model, X, s, target="green", preprocess=PLAIN)
    assert_untouched(before, state(b.model))


# ------------------------------------------------------------------------ dataset
def test_dataset_target_spec_takes_a_label_name(tmp_path):
    from opticam_widgets.dataset.api import explain_dataset
    from opticam_widgets.dataset.compute import check_target
    from opticam_widgets.engine.targets import ClassIndex, TopK, TrueLabel

    assert check_target("Blue", labels=LABELS) == ClassIndex(2)
    assert check_target(np.int64(1)) == ClassIndex(1)
    assert check_target("true", labels=LABELS) == TrueLabel()
    assert check_target(["top", 2]) == TopK(2)
    for bad, match in ((2.7, "float 2.7: round it yourself"), (True, "bool True"),
                       (np.float64(1.0), "float64")):
        with pytest.raises(TypeError, match=f"`target` must be a class index .*{match}"):
            check_target(bad, labels=LABELS)
    with pytest.raises(ValueError, match="did you mean 'green'"):
        check_target("gren", labels=LABELS)
    with pytest.raises(ValueError, match="has no labels; give the class index"):
        check_target("green")
    b = bundle()
    before = state(b.model)
    settings = {"max_iter": ITERS, "batch_size": 2, "num_workers": 0, "progress": False}
    res = explain_dataset(b, [X, X.flip(-1)], tmp_path / "named", target="green", **settings)
    table = res.table
    assert list(table["target"]) == [1, 1] and list(table["target_name"]) == ["green", "green"]
    with pytest.raises(TypeError, match="`target` must be a class index"):
        explain_dataset(b, [X], tmp_path / "float", target=1.0, **settings)
    assert_untouched(before, state(b.model))


def test_dataset_cli_target_takes_a_label_name():
    from opticam_widgets.dataset.cli import parse_target

    assert parse_target(" Egyptian cat ") == "Egyptian cat"
    assert parse_target("top2") == ("top", 2) and parse_target("7") == 7
    for bad in ("2.7", "-1", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="a class index or a label name"):
            parse_target(bad)
