"""Bad input gets a clear TypeError/ValueError naming the argument, never an AssertionError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tinynets import IDENTITY, ColourNet, small_cnn, two_squares
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.inputs.preprocess import Preprocess

X = two_squares()


def cam(**kw) -> OptiCAM:
    return OptiCAM(ColourNet(), preprocess=IDENTITY, **kw)


@pytest.mark.parametrize(
    ("image", "exc", "match"),
    [
        (torch.rand(4, 16, 16), ValueError, r"3 colour channels|\(3, H, W\)"),
        (torch.rand(2, 2, 3, 16, 16), ValueError, "image"),
        (torch.rand(1, 5, 16, 16), ValueError, r"3 colour channels|\(3, H, W\)"),
        (torch.rand(3, 16, 16) * 2, ValueError, r"\[0, 1\]"),
        (torch.full((3, 16, 16), float("nan")), ValueError, "NaN"),
        (torch.rand(3, 0, 16), ValueError, "empty"),
        (torch.rand(0, 3, 16, 16), ValueError, "empty"),
        (torch.rand(3, 1, 1), ValueError, "too small"),
        (np.zeros((16, 16, 5), dtype=np.uint8), ValueError, "shape"),
        ("no/such/file.png", ValueError, "no such file"),
        (42, TypeError, "image"),
        (torch.zeros(3, 16, 16, dtype=torch.int32), TypeError, "float"),
        ([], ValueError, "empty list"),
    ],
)
def test_bad_images(image, exc, match):
    with pytest.raises(exc, match=match) as info:
        cam().explain(image, target=0)
    assert "`image" in str(info.value)


@pytest.mark.parametrize(
    ("target", "exc", "match"),
    [
        (3, ValueError, "out of range"),
        (-1, ValueError, "out of range"),
        ([0, 1, 2], ValueError, "3 entries for 2 images"),
        ([], ValueError, "empty"),
        ("cat", ValueError, "`target` .cat. is a label name, but this model has no labels"),
        (1.5, TypeError, "target"),
        ([0.5, 1.0], TypeError, "`target` must be a class index"),
        (True, TypeError, "got bool True"),
        (torch.tensor([0.5]), TypeError, "integer"),
    ],
)
def test_bad_targets(target, exc, match):
    with pytest.raises(exc, match=match):
        cam().explain(torch.stack([X, X]), target=target)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"max_iter": 2.5}, TypeError, "max_iter"),
        ({"lr": 0}, ValueError, "lr"),
        ({"lr": -1}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"lr": "fast"}, TypeError, "lr"),
        ({"convention": "destructve"}, ValueError, "convention"),
        ({"score": "prob"}, ValueError, "score"),
        ({"nb_premises_at_startup": 0}, ValueError, "nb_premises_at_startup"),
        ({"precision": "fp8"}, ValueError, "precision"),
        ({"tol": -1}, ValueError, "tol"),
        ({"patience": 0}, ValueError, "patience"),
        ({"lr_schedule": "step"}, ValueError, "lr_schedule"),
        ({"target_layer": "layer9"}, ValueError, "not a module.*candidates"),
        ({"target_layer": nn.Conv2d(3, 3, 1)}, ValueError, "not a submodule"),
        ({"target_layer": 3}, TypeError, "target_layer"),
        ({"preprocess": 3}, TypeError, "preprocess"),
        ({"device": "nonsense"}, ValueError, "device"),
        ({"device": "cuda"}, ValueError, "model.to|no CUDA GPU"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cam(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"convention": "both"}, ValueError, "convention"),
        ({"callback": 3}, TypeError, "callback"),
        ({"cancel": True}, TypeError, "cancel"),
    ],
)
def test_bad_explain_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cam().explain(X, target=0, **kwargs)


def test_model_not_a_module():
    with pytest.raises(TypeError, match="`model`"):
        OptiCAM(lambda x: x)


class Features(nn.Module):
    def forward(self, x):
        return torch.relu(nn.functional.conv2d(x, torch.ones(2, 3, 1, 1)))


def test_model_output_not_logits():
    with pytest.raises(ValueError, match=r"class logits of shape \(batch, classes\)"):
        OptiCAM(Features(), preprocess=IDENTITY).explain(X)

    class Tupled(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_cnn()

        def forward(self, x):
            return self.net(x), None

    # a tuple whose first item is the logits is accepted (as a ModelOutput's `.logits`)
    tupled = Tupled().eval()
    r = OptiCAM(tupled, preprocess=IDENTITY, max_iter=3).explain(X)
    same = OptiCAM(tupled.net, preprocess=IDENTITY, max_iter=3).explain(X)
    assert torch.allclose(r.saliency, same.saliency) and r.target == same.target

    class Pair(nn.Module):
        def forward(self, x):
            return None, x.mean(dim=(2, 3))

    with pytest.raises(ValueError, match=r"class logits of shape \(batch, classes\)"):
        OptiCAM(Pair(), preprocess=IDENTITY).explain(X)


def test_model_without_conv_feature_map():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    with pytest.raises(ValueError, match="no spatial feature map"):
        OptiCAM(mlp, preprocess=IDENTITY).explain(X)


def test_layer_without_4d_output():
    model = small_cnn()
    with pytest.raises(ValueError, match=r"`target_layer` '6' outputs \(1, 16\), not a spatial"):
        OptiCAM(model, target_layer="6", preprocess=Preprocess(size=None)).explain(X)


def test_layer_not_called():
    class WithUnused(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.unused = small_cnn(), nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.net(x)

    with pytest.raises(ValueError, match="not called"):
        OptiCAM(WithUnused(), target_layer="unused", preprocess=Preprocess(size=None)).explain(X)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"size": (0, 3)}, "size"), ({"mean": (0, 0)}, "mean"), ({"std": (1, 0, 1)}, "std"),
     ({"mean": 3}, "mean"), ({"transform": 3}, "transform")],
)
def test_bad_preprocess(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        Preprocess(**kwargs)
