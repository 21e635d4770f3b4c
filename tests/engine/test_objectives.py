"""Issue 29: objectives that do not lean on one fill (``OptiCAMSettings(objective=...)``): the
paper's stays the default, bit for bit; ``"mixed-fills"`` maximises the mean score over its
four fills, ``"mixed-fills-deletion"`` that minus half the complement's."""

from __future__ import annotations

import pytest
import torch
from tinynets import small_cnn

from opticam_widgets import OptiCAM, OptiCAMSettings
from opticam_widgets.engine.masking import Masker
from opticam_widgets.engine.objectives import (
    DELETION_WEIGHT,
    OBJECTIVES,
    FillMasker,
    objective_groups,
)
from opticam_widgets.inputs.preprocess import Preprocess

PRE = {"size": (32, 32), "mean": (0.5, 0.4, 0.3), "std": (0.25, 0.25, 0.25)}
IMAGE = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))


def test_the_paper_objective_is_the_default_and_unchanged() -> None:
    net = small_cnn()
    default = OptiCAM(net, preprocess=PRE, max_iter=8).explain(IMAGE, 1)
    paper = OptiCAM(net, preprocess=PRE, max_iter=8, objective="paper").explain(IMAGE, 1)
    assert OptiCAMSettings().objective == "paper" and objective_groups("paper", IMAGE, None, 0) \
        is None
    assert torch.equal(default.scores, paper.scores)
    assert torch.equal(default.saliency, paper.saliency)
    with pytest.raises(ValueError, match="`objective` must be one of 'paper', 'mixed-fills'"):
        OptiCAMSettings(objective="every-fill")


@pytest.mark.parametrize("convention", ["constructive", "destructive"])
def test_a_fill_masker_with_black_is_the_papers_masking(convention) -> None:
    pre = Preprocess(**PRE)
    s = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    paper = Masker(pre, IMAGE, convention)(s)
    black = FillMasker(pre, IMAGE, convention, [(torch.zeros_like(IMAGE), 1.0, True)])(s)
    torch.testing.assert_close(black, paper, rtol=0, atol=1e-5)


@pytest.mark.numeric
def test_mixed_fills_scores_the_mean_over_its_fills() -> None:
    net = small_cnn().eval()
    pre = Preprocess(**PRE)
    cam = OptiCAM(net, preprocess=PRE, max_iter=1, objective="mixed-fills")
    r = cam.explain(IMAGE, 2)
    s = cam.channel_mean(IMAGE)[:, None]  # iteration 0's map: uniform weights
    groups = objective_groups("mixed-fills", IMAGE, pre, 0)
    assert len(groups) == 4 and {round(w, 3) for _, w, _ in groups} == {0.25}
    with torch.no_grad():
        each = [float(net(pre.normalize(IMAGE * s + f * (1 - s)))[0, 2]) for f, _, _ in groups]
    assert float(r.scores[0, 0]) == pytest.approx(sum(each) / 4, rel=1e-4, abs=1e-5)
    deletion = objective_groups("mixed-fills-deletion", IMAGE, pre, 0)
    assert [w for _, w, keep in deletion if not keep] == [-DELETION_WEIGHT / 4] * 4


@pytest.mark.numeric
def test_each_objective_improves_its_own_score() -> None:
    net = small_cnn()
    for name in OBJECTIVES:
        r = OptiCAM(net, preprocess=PRE, max_iter=15, objective=name).explain(IMAGE, 3)
        assert float(r.final_score[0]) > float(r.initial_score[0]) + 1e-4, name
