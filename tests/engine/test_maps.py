"""Map maths in one place: channel mean, normalisation, resizing; results rebuild maps exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from tinynets import small_cnn

from opticam_widgets import OptiCAM
from opticam_widgets.engine.maps import channel_mean_map, minmax_normalize, resize_maps
from opticam_widgets.evaluation.baselines import baseline_map
from opticam_widgets.inputs.preprocess import Preprocess

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

G = torch.Generator().manual_seed(0)


def by_hand(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    up = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    lo = up.flatten(1).min(1).values.view(-1, 1, 1)
    hi = up.flatten(1).max(1).values.view(-1, 1, 1)
    return (up - lo) / (hi - lo)


def test_channel_mean_map_is_the_normalised_upsampled_mean():
    feats = torch.rand(3, 6, 5, 7, generator=G)
    torch.testing.assert_close(channel_mean_map(feats, (41, 53)),
                               by_hand(feats.mean(1), (41, 53)), atol=1e-5, rtol=0)


def test_resize_and_normalise_commute():
    cam = torch.rand(2, 7, 9, generator=G) * 5 - 1
    for size in ((50, 61), (7, 9), (3, 4)):
        torch.testing.assert_close(resize_maps(minmax_normalize(cam, size), size),
                                   by_hand(cam, size), atol=1e-5, rtol=0)
        torch.testing.assert_close(resize_maps(cam, size), F.interpolate(
            cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0],
            atol=1e-5, rtol=0)


def test_constant_maps_take_the_requested_value():
    flat = torch.full((1, 3, 3), 2.0)
    assert torch.equal(minmax_normalize(flat, (6, 6)), torch.ones(1, 3, 3))
    assert torch.equal(minmax_normalize(flat, (6, 6), constant=0.0), torch.zeros(1, 3, 3))


def test_channel_mean_preview_equals_iteration_zero_and_the_baseline():
    model = small_cnn()
    cam = OptiCAM(model, max_iter=2, preprocess=Preprocess(size=(32, 32)))
    x = torch.rand(3, 40, 56, generator=G)
    seen = {}
    cam.explain(x, target=1, callback=lambda s, p: seen.setdefault(s, p.result()))
    preview = cam.channel_mean(x)
    assert preview.shape == (1, 40, 56)
    torch.testing.assert_close(preview, seen[0].saliency, atol=1e-6, rtol=0)
    torch.testing.assert_close(preview, baseline_map("channel-mean", model, x, target=1,
                                                     preprocess=cam.preprocess),
                               atol=1e-6, rtol=0)
    small = cam.channel_mean(torch.stack([x, x.flip(-1)]), size=(20, 28))
    assert small.shape == (2, 20, 28)
    torch.testing.assert_close(small[0], seen[0].saliency_at((20, 28))[0], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="`size`"):
        cam.channel_mean(x, size=(0, 3))


def test_result_rebuilds_the_full_map_from_the_low_res_one():
    cam = OptiCAM(small_cnn(), max_iter=5, preprocess=Preprocess(size=(32, 32)))
    x = torch.rand(3, 75, 101, generator=G)
    r = cam.explain(x, target=[0, 3])
    assert r.low_res.shape == (2, 16, 16) and r.size == (75, 101)
    assert torch.equal(r.saliency_at(r.size), r.saliency)
    lo, hi = r.saliency.amin(dim=(1, 2)), r.saliency.amax(dim=(1, 2))  # minmax, up to rounding
    torch.testing.assert_close(lo, torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(hi, torch.ones(2), atol=1e-6, rtol=0)
    shown = r.saliency_at((30, 40))
    expected = F.interpolate(r.low_res[:, None], size=(30, 40), mode="bilinear",
                             align_corners=False)[:, 0].clamp(0, 1)
    torch.testing.assert_close(shown, expected, atol=1e-6, rtol=0)


def test_a_result_keeps_one_copy_of_the_image():
    x = torch.rand(3, 128, 96, generator=G)
    cam = OptiCAM(small_cnn(), preprocess=Preprocess(size=(32, 32)), max_iter=3)
    r = cam.explain(x, target=[0, 1, 2, 1])
    assert r.pixels.shape == (1, 3, 128, 96) and r.low_res.shape == (4, 16, 16)
    # what the result holds: the image once, the small maps, scores and weights (a few kB)
    held = [v for f in dataclasses.fields(r) if isinstance(v := getattr(r, f.name), torch.Tensor)]
    assert sum(t.numel() * t.element_size() for t in held) < x.numel() * 4 + 8192
    assert torch.equal(r.images, x.expand(4, -1, -1, -1))
    torch.testing.assert_close(r.masked_input()[2], x * r.saliency[2])
    r.pixels.mul_(0.5)  # the kept image changed in place: refused, not silently wrong
    with pytest.raises(ValueError, match="modified in place"):
        r.masked_input()
