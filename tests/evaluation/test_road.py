"""ROAD (MoRF / LeRF / combined), cross-checked with pytorch-grad-cam's own classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opticam_widgets.evaluation.road import ROAD_PERCENTILES, RoadResult, road
from opticam_widgets.inputs.preprocess import Preprocess
from tests.tinynets import small_cnn

pytest.importorskip("pytorch_grad_cam")
pytestmark = [pytest.mark.numeric,
              pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")]

PRE = Preprocess(size=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
QS = (20, 50, 80)


class _Pixels(torch.nn.Module):
    """The model behind its normalisation, as a pytorch-grad-cam user would write it."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(PRE.normalize(x))


@pytest.fixture(scope="module")
def case():
    gen = torch.Generator().manual_seed(0)
    net = small_cnn(classes=5, seed=2).eval()
    return net, torch.rand(2, 3, 20, 20, generator=gen), torch.rand(2, 20, 20, generator=gen)


def test_matches_pytorch_grad_cam(case):
    from pytorch_grad_cam.metrics.road import (
        ROADCombined,
        ROADLeastRelevantFirstAverage,
        ROADMostRelevantFirstAverage,
    )
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    net, images, maps = case
    ours = road(net, images, maps, [1, 3], PRE, percentiles=QS, seed=5)
    assert isinstance(ours, RoadResult) and ours.target == (1, 3)
    targets = [ClassifierOutputSoftmaxTarget(c) for c in (1, 3)]
    cams = maps.numpy()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(5)  # the library draws its noise from the global generator
        combined = ROADCombined(list(QS))(images, cams, targets, _Pixels(net))
        torch.manual_seed(5)
        lerf = ROADLeastRelevantFirstAverage(list(QS))(images, cams, targets, _Pixels(net))
        morf = ROADMostRelevantFirstAverage(list(QS))(images, cams, targets, _Pixels(net))
    np.testing.assert_allclose(ours.combined, combined, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.lerf, lerf, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.morf, morf, rtol=1e-4, atol=1e-6)
    assert ours.mean_combined == pytest.approx(float(np.mean(combined)), rel=1e-4, abs=1e-6)


def test_reproducible_and_leaves_rng_and_model_alone(case):
    net, images, maps = case
    state = torch.get_rng_state()
    weights = [p.detach().clone() for p in net.parameters()]
    net.train()
    a = road(net, images, maps, 0, PRE, percentiles=QS)
    b = road(net, images, maps, 0, PRE, percentiles=QS)
    np.testing.assert_array_equal(a.combined, b.combined)
    assert torch.equal(state, torch.get_rng_state())
    assert net.training and all(torch.equal(w, p) for w, p in zip(weights, net.parameters()))
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    net.eval()


def test_faithful_map_beats_its_inverse():
    """A model that reads only the left half: the map of that half wins ROAD."""
    class Left(torch.nn.Module):
        def forward(self, x):
            red = x[:, 0, :, : x.shape[-1] // 2].mean(dim=(1, 2))
            return torch.stack([8 * red, torch.zeros_like(red)], dim=1)

    x = torch.zeros(3, 16, 16)
    x[0, :, :8] = torch.linspace(0.2, 1.0, 8)
    good = torch.zeros(16, 16)
    good[:, :8] = 1.0 + torch.rand(16, 8, generator=torch.Generator().manual_seed(1))
    res = road(Left(), x, torch.stack([good, good.max() - good]), 0,
               Preprocess(size=None, mean=(0, 0, 0), std=(1, 1, 1)), percentiles=(30, 50, 70))
    assert res.morf[0] < res.morf[1] - 0.05
    assert res.combined[0] > res.combined[1] + 0.05


def test_constant_map_is_defined(case):
    net, images, _ = case
    res = road(net, images[:1], torch.zeros(20, 20), 0, PRE, percentiles=(50,))
    assert np.isfinite(res.combined).all()


def test_bad_arguments(case):
    net, images, maps = case
    with pytest.raises(ValueError, match="`percentiles`"):
        road(net, images, maps, 0, PRE, percentiles=(0, 50))
    with pytest.raises(TypeError, match="`percentiles`"):
        road(net, images, maps, 0, PRE, percentiles="10")
    with pytest.raises(ValueError, match="seed"):
        road(net, images, maps, 0, PRE, seed=-1)
    assert ROAD_PERCENTILES == (10, 20, 30, 40, 50, 60, 70, 80, 90)
