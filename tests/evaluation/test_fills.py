"""Fills of the masking metrics, cross-checked with pytorch-grad-cam's CamMult metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opticam_widgets.evaluation.fills import FILLS, check_fill, fill_image, register_fill
from opticam_widgets.evaluation.fills import REGISTRY as FILL_REGISTRY
from opticam_widgets.evaluation.metrics import faithfulness
from opticam_widgets.inputs.preprocess import Preprocess
from tests.tinynets import small_cnn

pytestmark = pytest.mark.numeric

PRE = Preprocess(size=None, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def case():
    gen = torch.Generator().manual_seed(0)
    net = small_cnn(classes=5, seed=1).eval()
    images = torch.rand(3, 3, 24, 24, generator=gen)
    maps = torch.rand(3, 24, 24, generator=gen)
    return net, images, maps


def test_names_and_default_is_black():
    assert FILLS[:3] == ("black", "mean", "blur") and "image-mean" in FILLS
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(fill_image("black", x, PRE), torch.zeros_like(x))
    mean = fill_image("mean", x, PRE)
    assert torch.allclose(mean[1, :, 3, 5], torch.tensor(PRE.mean))
    assert torch.allclose(fill_image("image-mean", x, PRE)[0, :, 0, 0], x[0].mean(dim=(1, 2)))
    assert fill_image("blur", x, PRE).shape == x.shape


def test_black_fill_keeps_todays_numbers(case):
    net, images, maps = case
    default = faithfulness(net, images, maps, [0, 1, 2], PRE)
    black = faithfulness(net, images, maps, [0, 1, 2], PRE, fill="black")
    np.testing.assert_array_equal(default["o"], black["o"])


def test_blur_fill_is_computed_at_the_model_resolution():
    x = torch.rand(1, 3, 40, 40)
    small = fill_image("blur", x, Preprocess(size=(20, 20)))
    assert small.shape == x.shape


def test_full_map_is_the_image_whatever_the_fill(case):
    net, images, _ = case
    for fill in FILLS:
        res = faithfulness(net, images, torch.ones(3, 24, 24), [0, 1, 2], PRE, fill=fill)
        np.testing.assert_allclose(res["o"], res["p"], rtol=1e-5, atol=1e-6)


def test_mean_fill_matches_pytorch_grad_cam(case):
    """Mean fill in pixel space == pytorch-grad-cam multiplying the normalised tensor."""
    metrics = pytest.importorskip("pytorch_grad_cam.metrics.cam_mult_image")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    net, images, maps = case
    classes = [0, 3, 4]
    ours = faithfulness(net, images, maps, classes, PRE, fill="mean")
    targets = [ClassifierOutputSoftmaxTarget(c) for c in classes]
    normalised = PRE.normalize(images)
    change = metrics.CamMultImageConfidenceChange()(normalised, maps.numpy(), targets, net)
    np.testing.assert_allclose(ours["o"] - ours["p"], change, rtol=1e-4, atol=1e-6)
    drop = metrics.DropInConfidence()(normalised, maps.numpy(), targets, net)
    np.testing.assert_allclose(ours["AD_per_image"], drop / ours["p"] * 100, rtol=1e-4,
                               atol=1e-4)
    rise = metrics.IncreaseInConfidence()(normalised, maps.numpy(), targets, net)
    np.testing.assert_array_equal(ours["AI_per_image"], rise * 100)


def test_fills_give_different_verdicts(case):
    net, images, maps = case
    o = {f: faithfulness(net, images, maps, [0, 1, 2], PRE, fill=f)["o"] for f in FILLS}
    assert not np.allclose(o["black"], o["mean"]) and not np.allclose(o["black"], o["blur"])


def test_bad_fill_refused(case):
    net, images, maps = case
    with pytest.raises(ValueError, match="`fill` 'white' is unknown"):
        faithfulness(net, images, maps, 0, PRE, fill="white")
    with pytest.raises(TypeError, match="`fill` must be one of"):
        check_fill(0.5)


def test_register_fill_reaches_the_metrics(case):
    net, images, maps = case

    @register_fill("grey-test")
    def grey(x, pre):
        return torch.full_like(x, 0.5)

    try:
        res = faithfulness(net, images, maps, [0, 1, 2], PRE, fill="grey-test")
        masked = images * maps[:, None] + 0.5 * (1 - maps[:, None])
        with torch.no_grad():
            probs = torch.softmax(net(PRE.normalize(masked)), dim=1)[torch.arange(3), [0, 1, 2]]
        np.testing.assert_allclose(res["o"], probs.numpy(), rtol=1e-5, atol=1e-6)
    finally:
        del FILL_REGISTRY["grey-test"]
