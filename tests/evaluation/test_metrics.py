"""Tests of the metrics module: AD / AI / AG, insertion / deletion, model hygiene."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from opticam_widgets.evaluation.metrics import (
    BASELINE_IMAGES,
    CurveResult,
    average_drop,
    average_gain,
    average_increase,
    curve_auc,
    deletion,
    faithfulness,
    insertion,
    masked_probabilities,
)
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.bundle import ModelBundle

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

NATIVE = Preprocess(size=None)  # feed the tiny test images at their own size


# ---------------------------------------------------------------------------- pure functions
class TestAverageDrop:
    def test_hand_computed(self):
        # drops: (0.8-0.4)/0.8 = 0.5, 0 (o > p) -> mean 25 %
        assert average_drop([0.8, 0.5], [0.4, 0.6]) == pytest.approx(25.0)

    def test_perfect_map_is_zero(self):
        assert average_drop([0.2, 0.5, 0.9], [0.2, 0.7, 1.0]) == 0.0

    def test_total_drop_is_100(self):
        assert average_drop([0.3, 0.6], [0.0, 0.0]) == pytest.approx(100.0)

    def test_zero_p_contributes_zero(self):
        assert average_drop([0.0, 0.5], [0.0, 0.25]) == pytest.approx(25.0)

    def test_accepts_tensors_arrays_and_scalars(self):
        p, o = torch.tensor([0.8, 0.5]), np.array([0.4, 0.6])
        assert average_drop(p, o) == pytest.approx(25.0)
        assert average_drop(0.5, 0.25) == pytest.approx(50.0)
        assert isinstance(average_drop(p, o), float)


class TestAverageIncrease:
    def test_counts_strict_increases(self):
        # increases: yes, no (equal), no, yes -> 50 %
        assert average_increase([0.5, 0.4, 0.3, 0.2], [0.6, 0.4, 0.1, 0.9]) == 50.0

    def test_all_and_none(self):
        assert average_increase([0.1, 0.2], [0.3, 0.4]) == 100.0
        assert average_increase([0.5, 0.5], [0.5, 0.1]) == 0.0


class TestAverageGain:
    def test_hand_computed(self):
        # gains: (0.75-0.5)/(1-0.5) = 0.5, 0 -> 25 %
        assert average_gain([0.5, 0.5], [0.75, 0.25]) == pytest.approx(25.0)

    def test_map_that_lowers_the_score_is_zero(self):
        assert average_gain([0.9, 0.5, 0.3], [0.1, 0.5, 0.0]) == 0.0

    def test_full_gain_is_100(self):
        assert average_gain([0.2, 0.6], [1.0, 1.0]) == pytest.approx(100.0)

    def test_saturated_p_contributes_zero(self):
        assert average_gain([1.0, 0.5], [1.0, 0.75]) == pytest.approx(25.0)

    def test_drop_and_gain_are_complementary(self):
        p, o = [0.4, 0.6, 0.5], [0.2, 0.8, 0.5]
        assert average_drop(p, o) == pytest.approx(100 * (0.5 + 0 + 0) / 3)
        assert average_gain(p, o) == pytest.approx(100 * (0 + 0.5 + 0) / 3)


@pytest.mark.parametrize("fn", [average_drop, average_increase, average_gain])
class TestBadProbabilities:
    def test_logits_are_rejected(self, fn):
        with pytest.raises(ValueError, match=r"`p`.*probabilities.*softmax"):
            fn([3.2, -1.0], [0.1, 0.2])

    def test_o_out_of_range(self, fn):
        with pytest.raises(ValueError, match="`o`"):
            fn([0.1, 0.2], [0.1, 1.5])

    def test_shape_mismatch(self, fn):
        with pytest.raises(ValueError, match="one value per image"):
            fn([0.1, 0.2], [0.1])

    def test_empty(self, fn):
        with pytest.raises(ValueError, match="empty"):
            fn([], [])

    def test_nan(self, fn):
        with pytest.raises(ValueError, match="NaN"):
            fn([0.1, float("nan")], [0.1, 0.2])

    def test_not_numbers(self, fn):
        with pytest.raises(TypeError, match="`p`"):
            fn("0.5", [0.1])
        with pytest.raises(TypeError, match="`o`"):
            fn([0.5], None)

    def test_two_dimensional(self, fn):
        with pytest.raises(ValueError, match="1-D"):
            fn(np.full((2, 3), 0.5), np.full((2, 3), 0.5))


class TestCurveAuc:
    def test_constant_curve_equals_constant(self):
        assert curve_auc([0.3] * 7) == pytest.approx(0.3)

    def test_linear_ramp(self):
        assert curve_auc(np.linspace(0, 1, 11)) == pytest.approx(0.5)

    def test_trapezoid_hand_computed(self):
        # x = 0, .5, 1; y = 0, 1, 0 -> area 0.5
        assert curve_auc([0.0, 1.0, 0.0]) == pytest.approx(0.5)

    def test_explicit_fractions(self):
        assert curve_auc([0.5, 0.5, 0.5], fractions=[0.0, 0.1, 1.0]) == pytest.approx(0.5)
        assert curve_auc([0.0, 1.0, 1.0], fractions=[0.0, 0.5, 1.0]) == pytest.approx(0.75)
        with pytest.raises(ValueError, match="`fractions` must have one value"):
            curve_auc([0.5, 0.5], fractions=[0.0, 0.5, 1.0])
        with pytest.raises(ValueError, match="non-decreasing from 0 to 1"):
            curve_auc([0.5, 0.5], fractions=[0.0, 0.5])

    def test_several_curves(self):
        out = curve_auc(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
        np.testing.assert_allclose(out, [1.0, 0.5])

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="at least 2 points"):
            curve_auc([0.5])
        with pytest.raises(ValueError, match="NaN"):
            curve_auc([0.5, float("nan")])
        with pytest.raises(ValueError, match="shape"):
            curve_auc(np.zeros((2, 2, 2)))
        with pytest.raises(TypeError, match="`scores`"):
            curve_auc([object(), object()])


# ---------------------------------------------------------------------------- tiny models
class LeftHalfRed(nn.Module):
    """Class 0's logit grows with the red in the left half; class 1 is fixed at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(8.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1] // 2
        evidence = x[:, 0, :, :w].mean(dim=(1, 2))
        return torch.stack([self.scale * (evidence - 0.25), torch.zeros_like(evidence)], dim=1)


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )


def probs_of(model, x, pre=NATIVE):
    with torch.no_grad():
        return torch.softmax(model(pre.normalize(pre.resize(x))), dim=1)


@pytest.fixture
def net():
    return tiny_cnn().eval()


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.rand(3, 3, 12, 14)


class TestMaskedProbabilities:
    def test_all_ones_map_keeps_the_score(self, net, images):
        p, o = masked_probabilities(net, images, torch.ones(3, 12, 14), [0, 1, 2], NATIVE)
        torch.testing.assert_close(p, o)
        expected = probs_of(net, images)[torch.arange(3), torch.tensor([0, 1, 2])]
        torch.testing.assert_close(p, expected)

    def test_zero_map_scores_the_black_image(self, net, images):
        _, o = masked_probabilities(net, images, np.zeros((3, 12, 14), np.float32), 4, NATIVE)
        black = probs_of(net, torch.zeros(1, 3, 12, 14))[0, 4]
        torch.testing.assert_close(o, black.expand(3))

    def test_masking_before_resize_and_normalization(self, net, images):
        pre = Preprocess(size=(8, 8), mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
        s = torch.rand(3, 12, 14)
        _, o = masked_probabilities(net, images, s, [0, 1, 2], pre)
        expected = probs_of(net, images * s[:, None], pre)[torch.arange(3), torch.tensor([0, 1, 2])]
        torch.testing.assert_close(o, expected)

    def test_top1_by_default_and_low_res_maps(self, net, images):
        top1 = probs_of(net, images).argmax(dim=1)
        res = faithfulness(net, images, torch.ones(3, 3, 4), preprocess=NATIVE)  # upsampled
        assert res["target"] == tuple(top1.tolist())

    def test_several_maps_for_one_image(self, net, images):
        s = torch.stack([torch.ones(12, 14), torch.zeros(12, 14)])
        p, o = masked_probabilities(net, images[0], s, [1, 3], NATIVE)
        full = probs_of(net, images[:1])[0]
        torch.testing.assert_close(p, full[[1, 3]])
        torch.testing.assert_close(o[0], full[1])

    def test_batch_size_does_not_change_results(self, net, images):
        s = torch.rand(3, 12, 14)
        a = masked_probabilities(net, images, s, [0, 1, 2], NATIVE, batch_size=1)
        b = masked_probabilities(net, images, s, [0, 1, 2], NATIVE, batch_size=32)
        torch.testing.assert_close(a, b)

    def test_model_bundle_brings_its_preprocess(self, net, images):
        bundle = ModelBundle(net, preprocess=Preprocess(size=(6, 6)))
        s = torch.rand(3, 12, 14)
        assert torch.equal(
            torch.stack(masked_probabilities(bundle, images, s, 0)),
            torch.stack(masked_probabilities(net, images, s, 0, Preprocess(size=(6, 6)))),
        )

    def test_accepts_an_opticam_result_like_object(self, net, images):
        class Result:
            saliency = torch.ones(3, 12, 14)

        p, o = masked_probabilities(net, images, Result(), 0, NATIVE)
        torch.testing.assert_close(p, o)


class TestFaithfulness:
    def test_keys_and_values(self, images):
        model = LeftHalfRed().eval()
        left = torch.zeros(12, 14)
        left[:, :7] = 1.0
        right = 1.0 - left
        res = faithfulness(model, images[0], torch.stack([left, right]), [0, 0], NATIVE)
        assert set(res) == {"AD", "AI", "AG", "AD_per_image", "AI_per_image", "AG_per_image",
                            "p", "o", "target"}
        # keeping the left half keeps all the evidence: no drop
        assert res["AD_per_image"][0] == pytest.approx(0.0, abs=1e-4)
        # keeping only the right half removes it: a large drop, no gain
        assert res["AD_per_image"][1] > 20.0
        assert res["AG_per_image"][1] == 0.0
        assert res["AD"] == pytest.approx(res["AD_per_image"].mean())
        assert res["AI"] in (0.0, 50.0, 100.0)
        assert res["target"] == (0, 0)
        p, o = res["p"], res["o"]
        assert res["AD"] == pytest.approx(average_drop(p, o))
        assert res["AG"] == pytest.approx(average_gain(p, o))
        assert res["AI"] == pytest.approx(average_increase(p, o))

    def test_perfect_map_scores(self, net, images):
        res = faithfulness(net, images, torch.ones(3, 12, 14), preprocess=NATIVE)
        assert res["AD"] == 0.0 and res["AG"] == 0.0 and res["AI"] == 0.0


class TestCurves:
    def test_insertion_of_all_ones_map_ends_at_full_score(self, net, images):
        curve = insertion(net, images, torch.ones(3, 12, 14), [0, 1, 2], NATIVE, steps=5)
        assert isinstance(curve, CurveResult) and curve.kind == "insertion"
        full = probs_of(net, images)[torch.arange(3), torch.tensor([0, 1, 2])]
        np.testing.assert_allclose(curve.scores[:, -1], full.numpy(), rtol=1e-5, atol=1e-6)
        assert curve.scores.shape == (3, 6)
        # 168 pixels in 5 steps: whole pixels, within half a pixel of k/5
        np.testing.assert_allclose(curve.fractions, np.linspace(0, 1, 6), atol=0.5 / 168)
        assert curve.baseline == "blur"

    def test_insertion_starts_at_the_baseline_score(self, net, images):
        curve = insertion(net, images, torch.rand(3, 12, 14), 2, NATIVE, steps=3,
                          baseline="image-mean")
        mean_img = images.mean(dim=(2, 3), keepdim=True).expand_as(images)
        np.testing.assert_allclose(curve.scores[:, 0], probs_of(net, mean_img)[:, 2].numpy(),
                                   rtol=1e-5, atol=1e-6)

    def test_deletion_of_all_ones_map_ends_at_the_baseline_score(self, net, images):
        curve = deletion(net, images, torch.ones(3, 12, 14), [0, 1, 2], NATIVE, steps=4)
        black = probs_of(net, torch.zeros(1, 3, 12, 14))[0, [0, 1, 2]]
        full = probs_of(net, images)[torch.arange(3), torch.tensor([0, 1, 2])]
        np.testing.assert_allclose(curve.scores[:, -1], black.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(curve.scores[:, 0], full.numpy(), rtol=1e-5, atol=1e-6)
        assert curve.baseline == "black"

    def test_auc_is_the_trapezoid_of_the_curve(self, net, images):
        curve = deletion(net, images, torch.rand(3, 12, 14), 1, NATIVE, steps=6)
        np.testing.assert_allclose(curve.auc, curve_auc(curve.scores, curve.fractions))
        assert curve.mean_auc == pytest.approx(float(np.mean(curve.auc)))
        assert ((curve.auc >= 0) & (curve.auc <= 1)).all()

    def test_faithful_map_beats_its_inverse(self, images):
        model = LeftHalfRed().eval()
        x = images[0]
        good = torch.zeros(12, 14)
        good[:, :7] = torch.linspace(1.0, 0.5, 7)
        bad = 1.0 - good
        ins = insertion(model, x, torch.stack([good, bad]), 0, NATIVE, steps=8,
                        baseline="black")
        dele = deletion(model, x, torch.stack([good, bad]), 0, NATIVE, steps=8)
        assert ins.auc[0] > ins.auc[1]
        assert dele.auc[0] < dele.auc[1]

    def test_steps_and_pixel_counts(self, net, images):
        # 12x14 = 168 pixels, steps=168: one pixel per step
        curve = deletion(net, images[:1], torch.rand(12, 14), 0, NATIVE, steps=168)
        assert curve.scores.shape == (1, 169)
        assert curve.fractions[1] == pytest.approx(1 / 168)

    def test_blur_and_tensor_baselines(self, net, images):
        grey = torch.full((3, 5, 5), 0.5)  # resized to the working resolution
        a = insertion(net, images, torch.rand(3, 12, 14), 0, NATIVE, steps=2, baseline=grey)
        expected = probs_of(net, torch.full((1, 3, 12, 14), 0.5))[0, 0]
        np.testing.assert_allclose(a.scores[:, 0], expected.item(), rtol=1e-5)
        assert a.baseline == "tensor"
        b = insertion(net, images, torch.rand(3, 12, 14), 0, NATIVE, steps=2, baseline="blur")
        assert b.scores.shape == (3, 3)
        assert set(BASELINE_IMAGES) == {"black", "blur", "mean", "image-mean"}

    def test_ranks_at_the_model_resolution(self, net, images):
        curve = insertion(net, images, torch.rand(3, 12, 14), 0, Preprocess(size=(4, 4)),
                          steps=16)
        np.testing.assert_allclose(curve.fractions, np.arange(17) / 16)

    def test_batch_size_does_not_change_the_curve(self, net, images):
        s = torch.rand(3, 12, 14)
        a = deletion(net, images, s, 3, NATIVE, steps=5, batch_size=4)
        b = deletion(net, images, s, 3, NATIVE, steps=5, batch_size=100)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------- bad inputs
class TestModelLevelValidation:
    def test_saliency_out_of_range(self, net, images):
        with pytest.raises(ValueError, match=r"`saliency`.*\[0, 1\].*normalize"):
            faithfulness(net, images, torch.full((3, 12, 14), 2.0), preprocess=NATIVE)

    def test_saliency_type_and_shape(self, net, images):
        with pytest.raises(TypeError, match="`saliency`"):
            faithfulness(net, images, [[0.5]], preprocess=NATIVE)
        with pytest.raises(ValueError, match="`saliency` must have shape"):
            faithfulness(net, images, torch.ones(3, 2, 12, 14), preprocess=NATIVE)
        with pytest.raises(ValueError, match="NaN"):
            faithfulness(net, images, torch.full((3, 12, 14), float("nan")), preprocess=NATIVE)

    def test_map_count_mismatch(self, net, images):
        with pytest.raises(ValueError, match="2 maps for 3 images"):
            faithfulness(net, images, torch.ones(2, 12, 14), preprocess=NATIVE)

    def test_targets(self, net, images):
        s = torch.ones(3, 12, 14)
        with pytest.raises(ValueError, match=r"`target` 7 is out of range.*5 classes"):
            faithfulness(net, images, s, 7, NATIVE)
        with pytest.raises(ValueError, match="`target` has 2 entries for 3"):
            faithfulness(net, images, s, [0, 1], NATIVE)
        with pytest.raises(ValueError, match="`target` 'cat' is a label name, but this model has "
                                             "no labels; give the class index"):
            faithfulness(net, images, s, "cat", NATIVE)
        with pytest.raises(TypeError, match="`target` must be a class index"):
            faithfulness(net, images, s, [0, 1.0, 2], NATIVE)
        with pytest.raises(TypeError, match="`target`"):
            faithfulness(net, images, s, torch.tensor([0.5, 1.0, 2.0]), NATIVE)

    def test_model_and_images(self, net, images):
        with pytest.raises(TypeError, match="`model`"):
            faithfulness(lambda x: x, images, torch.ones(3, 12, 14))
        with pytest.raises(ValueError, match=r"`images\[0\]` values must lie in \[0, 1\]"):
            faithfulness(net, images * 255, torch.ones(3, 12, 14), preprocess=NATIVE)
        not_logits = nn.Conv2d(3, 2, 3)
        with pytest.raises(ValueError, match=r"logits of shape \(batch, classes\)"):
            faithfulness(not_logits, images, torch.ones(3, 12, 14), preprocess=NATIVE)

    def test_curve_options(self, net, images):
        s = torch.ones(3, 12, 14)
        with pytest.raises(ValueError, match="`steps` must be >= 1"):
            insertion(net, images, s, 0, NATIVE, steps=0)
        with pytest.raises(TypeError, match="`steps` must be an int"):
            deletion(net, images, s, 0, NATIVE, steps=2.5)
        with pytest.raises(ValueError, match="`baseline` 'white' is unknown"):
            deletion(net, images, s, 0, NATIVE, baseline="white")
        with pytest.raises(TypeError, match="`baseline`"):
            deletion(net, images, s, 0, NATIVE, baseline=0.5)
        with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
            insertion(net, images, s, 0, NATIVE, batch_size=0)
        with pytest.raises(ValueError, match="`baseline` batch has 2 images"):
            insertion(net, images, s, 0, NATIVE, baseline=torch.zeros(2, 3, 12, 14))


# ---------------------------------------------------------------------------- hygiene
def _hooks(model):
    return [
        (name, kind)
        for name, m in model.named_modules()
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks")
        if getattr(m, kind, None)
    ]


def test_model_state_untouched():
    model = tiny_cnn().train()
    model[0].weight.requires_grad_(False)
    model[3].weight.grad = torch.full_like(model[3].weight, 0.125)
    model[6].training = False  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 12, 14)
    s = torch.rand(2, 12, 14)
    faithfulness(model, x, s, preprocess=NATIVE)
    insertion(model, x, s, preprocess=NATIVE, steps=3)
    deletion(model, x, s, preprocess=NATIVE, steps=3)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert _hooks(model) == []
    for k, v in model.state_dict().items():  # BatchNorm running stats included
        assert torch.equal(v, state[k]), k
    assert torch.equal(model[3].weight.grad, torch.full_like(model[3].weight, 0.125))
    assert model[0].weight.grad is None


def test_model_state_restored_on_error():
    model = tiny_cnn().train()
    with pytest.raises(ValueError):
        faithfulness(model, torch.rand(2, 3, 12, 14), torch.ones(2, 12, 14), 99, NATIVE)
    assert model.training and all(m.training for m in model.modules())
