"""The model-parameter randomisation test and the class-sensitivity check, on a tiny trained CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from opticam_widgets.evaluation.map_similarity import map_similarity
from opticam_widgets.evaluation.randomisation import (
    RandomisationResult,
    cascading_randomisation,
    plot_randomisation,
    randomisation_blocks,
    randomisation_test,
)
from opticam_widgets.evaluation.sensitivity import class_sensitivity
from opticam_widgets.inputs.preprocess import Preprocess

pytestmark = pytest.mark.numeric

PRE = Preprocess(size=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
SIZE = 16
SQUARE = 4


def _squares(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey noise with one coloured square at a random place; the class is its colour."""
    x = 0.4 + 0.2 * torch.rand(n, 3, SIZE, SIZE, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    for i in range(n):
        r, c = torch.randint(0, SIZE - SQUARE, (2,), generator=gen).tolist()
        x[i, :, r:r + SQUARE, c:c + SQUARE] = 0.0
        x[i, int(y[i]), r:r + SQUARE, c:c + SQUARE] = 1.0
    return x, y


@pytest.fixture(scope="module")
def trained():
    """A small CNN that learnt the coloured square's colour (about a second on 2 cores)."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.set_num_threads(1)  # tiny convolutions: threads only contend on a busy machine
        net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
        x, y = _squares(128, torch.Generator().manual_seed(1))
        opt = torch.optim.Adam(net.parameters(), lr=0.03)
        for _ in range(40):
            opt.zero_grad()
            nn.functional.cross_entropy(net(PRE.normalize(x)), y).backward()
            opt.step()
        torch.set_num_threads(threads)
    net.eval()
    for p in net.parameters():
        p.grad = None
    test_x, test_y = _squares(6, torch.Generator().manual_seed(2))
    with torch.no_grad():
        accuracy = (net(PRE.normalize(test_x)).argmax(1) == test_y).float().mean()
    assert accuracy >= 5 / 6, "the tiny model did not learn its task"
    return net, test_x, test_y


def test_blocks_top_first(trained):
    net, *_ = trained
    assert randomisation_blocks(net) == ["6", "2", "0"]


def test_cascade_is_cumulative_on_a_copy(trained):
    net, *_ = trained
    before = [p.detach().clone() for p in net.parameters()]
    state = torch.get_rng_state()
    steps = list(cascading_randomisation(net, seed=3))
    assert [name for name, _ in steps] == ["6", "2", "0"]
    clone = steps[-1][1]
    assert clone is not net
    for p, q in zip(net.parameters(), clone.parameters()):
        assert not torch.equal(p, q)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert torch.equal(state, torch.get_rng_state())


def test_gradcam_map_decorrelates_as_the_model_is_randomised(trained):
    """Adebayo et al.: the map of a fully randomised model no longer ranks pixels alike."""
    pytest.importorskip("torchcam")
    net, x, y = trained
    final = []
    for i in range(x.shape[0]):
        res = randomisation_test(net, x[i], "gradcam", int(y[i]), PRE, target_layer="2",
                                 seed=i)
        assert isinstance(res, RandomisationResult) and res.layers == ("6", "2", "0")
        assert res.maps.shape == (4, SIZE, SIZE) and res.target == int(y[i])
        final.append(res.spearman[-1])
    assert np.mean(final) < 0.5, final


def test_a_method_blind_to_the_top_passes_unchanged(trained):
    """The channel mean of layer 2 ignores the classifier: randomising it changes nothing."""
    net, x, y = trained
    res = randomisation_test(net, x[0], "channel-mean", int(y[0]), PRE, target_layer="3")
    assert res.spearman[0] == pytest.approx(1.0, abs=1e-9)
    assert res.ssim[0] == pytest.approx(1.0, abs=1e-9)
    assert res.spearman[-1] < 0.95  # randomising the convolutions below does change it


def test_model_left_as_found(trained):
    net, x, y = trained
    net.train()
    try:
        before = [p.detach().clone() for p in net.parameters()]
        randomisation_test(net, x[0], lambda m, img, t: img[0, 0], 0, PRE)
        assert net.training and all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
        assert all(p.requires_grad and p.grad is None for p in net.parameters())
    finally:
        net.eval()


def test_plot(trained):
    res = RandomisationResult(("6", "2", "0"), np.random.default_rng(0).random((4, 8, 8)),
                              np.array([0.9, 0.5, 0.1]), np.array([0.8, 0.4, 0.2]), "gradcam", 1)
    fig = plot_randomisation(res)
    assert len(fig.axes) == 5
    with pytest.raises(TypeError, match="RandomisationResult"):
        plot_randomisation({"maps": 1})


def test_bad_arguments(trained):
    net, x, _ = trained
    with pytest.raises(ValueError, match="`layers`: 'nope'"):
        randomisation_test(net, x[0], "channel-mean", 0, PRE, layers=["nope"])
    with pytest.raises(TypeError, match="`layers`"):
        randomisation_test(net, x[0], "channel-mean", 0, PRE, layers="6")
    with pytest.raises(ValueError, match="one image"):
        randomisation_test(net, x[:2], "channel-mean", 0, PRE)
    with pytest.raises(TypeError, match="`method`"):
        randomisation_test(net, x[0], 3, 0, PRE)


def test_class_sensitivity(trained):
    """Grad-CAM's maps of the true colour and of another colour differ; the channel mean's not."""
    pytest.importorskip("torchcam")
    net, x, y = trained
    other = (int(y[0]) + 1) % 3
    grad = class_sensitivity(net, x[0], "gradcam", [int(y[0]), other], PRE, target_layer="2")
    assert grad["classes"] == (int(y[0]), other) and grad["maps"].shape == (2, SIZE, SIZE)
    blind = class_sensitivity(net, x[0], "channel-mean", [int(y[0]), other], PRE,
                              target_layer="3")
    assert blind["spearman"] == pytest.approx(1.0, abs=1e-9)
    assert grad["spearman"] < 0.5
    top2 = class_sensitivity(net, x[0], "channel-mean", preprocess=PRE, target_layer="3")
    assert len(set(top2["classes"])) == 2
    with pytest.raises(ValueError, match="two different classes"):
        class_sensitivity(net, x[0], "channel-mean", [1, 1], PRE, target_layer="3")


def test_map_similarity():
    a = np.arange(25.0).reshape(5, 5)
    assert map_similarity(a, a) == {"spearman": pytest.approx(1.0), "ssim": pytest.approx(1.0)}
    assert map_similarity(a, -a)["spearman"] == pytest.approx(-1.0)
    assert map_similarity(a, np.ones((5, 5)))["spearman"] == 0.0  # a flat map ranks nothing
    assert map_similarity(np.ones((5, 5)), np.zeros((5, 5)))["spearman"] == 1.0
    with pytest.raises(ValueError, match="same shape"):
        map_similarity(a, np.ones((4, 5)))
    with pytest.raises(TypeError, match="`a`"):
        map_similarity("map", a)
