"""The settings as one object (issue 26): ``OptiCAMSettings``, ``OptiCAM(settings=...,
**overrides)``, ``explain(**overrides)``, the deprecated ``schedule=`` and the optimiser
registry; the same maps whichever way the settings are spelled."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tinynets import small_cnn

from opticam_widgets import OptiCAM, OptiCAMSettings
from opticam_widgets.engine import optimizers
from opticam_widgets.engine.config import SETTING_NAMES
from opticam_widgets.engine.optimize import adam_factory

PRE = {"size": (32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
IMAGE = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def same_maps(a, b) -> bool:
    return torch.equal(a.saliency, b.saliency) and torch.equal(a.weights, b.weights)


@pytest.mark.parametrize(("field", "value", "error", "message"), [
    ("max_iter", 0, ValueError, "`max_iter` must be >= 1, got 0"),
    ("max_iter", 2.5, TypeError, "`max_iter` must be an int, got float"),
    ("lr", -1.0, ValueError, "`lr` must be a positive finite number"),
    ("nb_premises_at_startup", 0, ValueError, "`nb_premises_at_startup` must be >= 1"),
    ("convention", "both", ValueError, "`convention` must be one of 'constructive', "),
    ("score", "margin", ValueError, "`score` must be one of 'logit', 'probability'"),
    ("tol", -0.1, ValueError, "`tol` must be None or a number >= 0"),
    ("patience", 0, ValueError, "`patience` must be >= 1"),
    ("precision", "fp16", ValueError, "`precision` must be one of 'fp32', 'bf16'"),
    ("lr_schedule", "step", ValueError, "`lr_schedule` must be one of None, 'cosine'"),
    ("seed", -1, ValueError, "`seed` must be >= 0"),
    ("fold_batchnorm", 1, TypeError, "`fold_batchnorm` must be True or False"),
    ("max_batch", 0, ValueError, "`max_batch` must be >= 1"),
    ("optimizer", "sgd", ValueError, "`optimizer` must be one of 'paper', 'fast'; got 'sgd'"),
])
def test_each_field_is_checked_once_with_its_name(field, value, error, message) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        OptiCAMSettings(**{field: value})
    with pytest.raises(error, match=message.replace("(", r"\(")):
        OptiCAM(small_cnn(), preprocess=PRE, **{field: value})
    with pytest.raises(error, match=message.replace("(", r"\(")):
        OptiCAM(small_cnn(), preprocess=PRE).explain(IMAGE, **{field: value})


def test_settings_are_frozen_and_read_back() -> None:
    settings = OptiCAMSettings(max_iter=7, lr=1, seed=3)
    assert settings.lr == 1.0 and isinstance(settings.lr, float)  # converted once
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_iter = 8  # type: ignore[misc]
    cam = OptiCAM(small_cnn(), preprocess=PRE, settings=settings, convention="destructive")
    assert cam.settings == dataclasses.replace(settings, convention="destructive")
    assert (cam.max_iter, cam.lr, cam.seed, cam.convention) == (7, 1.0, 3, "destructive")
    with pytest.raises(AttributeError):
        cam.max_iter = 9  # read-only: the settings object is the one place
    assert set(SETTING_NAMES) <= set(dir(cam))


def test_unknown_keywords_and_positional_settings_are_refused() -> None:
    net = small_cnn()
    with pytest.raises(TypeError, match="unknown setting `iterations`; the settings are: "
                                        "max_iter, lr, optimizer"):
        OptiCAM(net, preprocess=PRE, iterations=5)
    with pytest.raises(TypeError, match="unknown setting `steps`"):
        OptiCAM(net, preprocess=PRE).explain(IMAGE, steps=5)
    with pytest.raises(TypeError):
        OptiCAM(net, None, 100)  # settings are keywords: the constructor binds the model
    with pytest.raises(TypeError, match="`settings` must be an OptiCAMSettings"):
        OptiCAM(net, settings={"max_iter": 5})


def test_the_same_maps_whichever_way_the_settings_are_given() -> None:
    net = small_cnn()
    seed_call = OptiCAM(net, max_iter=12, lr=0.2, nb_premises_at_startup=2,
                        convention="constructive", preprocess=PRE).explain(IMAGE)
    as_object = OptiCAM(net, preprocess=PRE, settings=OptiCAMSettings(
        max_iter=12, nb_premises_at_startup=2)).explain(IMAGE)
    per_call = OptiCAM(net, preprocess=PRE, nb_premises_at_startup=2).explain(
        IMAGE, max_iter=12)
    assert same_maps(seed_call, as_object) and same_maps(seed_call, per_call)
    assert seed_call.iterations == 12


def test_explain_overrides_apply_to_that_call_only() -> None:
    cam = OptiCAM(small_cnn(), preprocess=PRE, max_iter=40, tol=10.0, patience=2)
    stopped = cam.explain(IMAGE)
    assert all(stopped.stopped_early) and max(stopped.iterations_per_row) < 40
    full = cam.explain(IMAGE, tol=None, max_iter=6)  # tol=None: no early stopping here
    assert full.iterations_per_row == (6, 6) and not any(full.stopped_early)
    assert cam.settings.tol == 10.0 and cam.settings.max_iter == 40  # unchanged
    destructive = cam.explain(IMAGE, convention="destructive", max_iter=3, tol=None)
    assert destructive.convention == "destructive" and cam.convention == "constructive"


def test_schedule_is_a_deprecated_name_of_optimizer() -> None:
    net = small_cnn()
    with pytest.warns(DeprecationWarning, match="`schedule=` is deprecated; use `optimizer=`"):
        old = OptiCAM(net, preprocess=PRE, max_iter=5, schedule="fast")
    assert old.settings.optimizer == "fast" and not hasattr(old.settings, "schedule")
    new = OptiCAM(net, preprocess=PRE, max_iter=5, optimizer="fast")
    assert same_maps(old.explain(IMAGE), new.explain(IMAGE))
    with pytest.warns(DeprecationWarning):
        again = new.explain(IMAGE, schedule="paper")
    assert same_maps(again, new.explain(IMAGE, optimizer="paper"))
    with pytest.raises(TypeError, match="give `optimizer` only"), \
            pytest.warns(DeprecationWarning):
        OptiCAM(net, schedule="fast", optimizer="paper")


def test_a_new_optimizer_is_one_registry_entry() -> None:
    calls = []

    @optimizers.register_optimizer("adam-half-lr")
    def half(setup: optimizers.OptimizerSetup):  # noqa: ANN202 - an OptimizerFactory
        calls.append(setup)
        return adam_factory(setup.lr / 2, setup.lr_schedule, setup.steps)

    try:
        net = small_cnn()
        mine = OptiCAM(net, preprocess=PRE, max_iter=6, optimizer="adam-half-lr").explain(IMAGE)
        paper = OptiCAM(net, preprocess=PRE, max_iter=6, lr=0.1).explain(IMAGE)
        assert same_maps(mine, paper)  # Adam at lr/2 is the paper's at lr 0.1
        assert len(calls) == 1 and calls[0].lr == 0.2 and calls[0].steps == 6
        with pytest.raises(ValueError, match="'paper', 'fast', 'adam-half-lr'"):
            OptiCAMSettings(optimizer="nope")
    finally:
        del optimizers.OPTIMIZERS["adam-half-lr"]
    with pytest.raises(ValueError, match="`optimizer`"):
        OptiCAMSettings(optimizer="adam-half-lr")
