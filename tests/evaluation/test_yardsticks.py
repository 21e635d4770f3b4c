"""The one-call yardstick summary: the same numbers as each yardstick's own function."""

from __future__ import annotations

import pytest
import torch

from opticam_widgets.evaluation.metrics import deletion, faithfulness
from opticam_widgets.evaluation.yardsticks import (
    YARDSTICK_FILLS,
    YARDSTICKS,
    describe_yardstick,
    yardsticks,
)
from opticam_widgets.inputs.preprocess import Preprocess
from tests.tinynets import small_cnn

pytestmark = [pytest.mark.numeric,
              pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")]

PRE = Preprocess(size=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def case():
    gen = torch.Generator().manual_seed(0)
    return (small_cnn(classes=4, seed=3).eval(), torch.rand(2, 3, 16, 16, generator=gen),
            torch.rand(2, 16, 16, generator=gen))


def test_keys_and_values_agree_with_the_functions(case):
    pytest.importorskip("pytorch_grad_cam")
    net, images, maps = case
    out = yardsticks(net, images, maps, [0, 1], PRE, steps=4, percentiles=(50,))
    for fill in YARDSTICK_FILLS:
        ref = faithfulness(net, images, maps, [0, 1], PRE, fill=fill)
        assert out[f"AD_{fill}"] == pytest.approx(ref["AD"])
        assert out[f"AG_{fill}"] == pytest.approx(ref["AG"])
    assert out["deletion_black"] == pytest.approx(
        deletion(net, images, maps, [0, 1], PRE, steps=4).mean_auc)
    assert out["ROAD"] == pytest.approx((out["ROAD_LeRF"] - out["ROAD_MoRF"]) / 2)
    for key in out:
        assert describe_yardstick(key)[0] in ("lower", "higher")


def test_road_left_out_and_bad_arguments(case):
    net, images, maps = case
    out = yardsticks(net, images, maps, 0, PRE, fills=("image-mean",), steps=2,
                     percentiles=None)
    assert "ROAD" not in out and "AD_image-mean" in out
    with pytest.raises(ValueError, match="`fill` 'sepia'"):
        yardsticks(net, images, maps, 0, PRE, fills=("sepia",), percentiles=None)
    with pytest.raises(TypeError, match="`fills`"):
        yardsticks(net, images, maps, 0, PRE, fills="black", percentiles=None)
    with pytest.raises(ValueError, match="not a yardstick"):
        describe_yardstick("speed")
    assert set(YARDSTICKS) >= {"AD", "AG", "ROAD", "deletion_black"}
