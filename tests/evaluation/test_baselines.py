"""Tests of opticam_widgets.evaluation.baselines: shapes, exact maps on tiny CNNs, model hygiene."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from opticam_widgets.evaluation.baselines import BASELINES, baseline_map
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.bundle import ModelBundle

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

pytest.importorskip("torchcam")

NATIVE = Preprocess(size=None)
SMALL = Preprocess(size=(16, 16), mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(), nn.Dropout(0.3),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )


def features_and_grads(model, x, targets, layer, pre):
    """Target-layer output A and d logit[target] / dA, computed by hand (eval mode)."""
    model.eval()
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        inp = pre.resize(x).clone().requires_grad_(True)
        out = model(pre.normalize(inp))
    finally:
        handle.remove()
    a = store["a"]
    (g,) = torch.autograd.grad(out[torch.arange(len(targets)), torch.tensor(targets)].sum(), a)
    return a.detach(), g.detach()


def finish(cam, size):
    """Upsample to the image size and min-max per map (what baseline_map promises)."""
    cam = F.interpolate(cam.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
    lo = cam.flatten(1).min(1).values[:, None, None]
    hi = cam.flatten(1).max(1).values[:, None, None]
    return (cam - lo) / (hi - lo)


def hooks(model):
    return [(n, k) for n, m in model.named_modules() for k in HOOK_DICTS if getattr(m, k, None)]


def snapshot(model):
    return {
        "modes": [m.training for m in model.modules()],
        "flags": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def assert_untouched(model, before):
    after = snapshot(model)
    assert hooks(model) == []
    assert after["modes"] == before["modes"]
    assert after["flags"] == before["flags"]
    for g0, g1 in zip(before["grads"], after["grads"]):
        assert (g0 is None and g1 is None) or torch.equal(g0, g1)
    for k, v in before["state"].items():  # weights and BatchNorm running stats
        assert torch.equal(after["state"][k], v), k


def messy_model():
    """Train mode (BN would update its stats), mixed flags, a .grad already there."""
    model = tiny_cnn().train()
    model[5].eval()
    model[0].weight.requires_grad_(False)
    model[8].weight.grad = torch.full_like(model[8].weight, 0.25)
    return model


@pytest.fixture
def images():
    torch.manual_seed(3)
    return torch.rand(2, 3, 20, 26)


# ---------------------------------------------------------------------------- shapes / range
@pytest.mark.parametrize("method", BASELINES)
def test_shape_and_range_at_input_resolution(method, images):
    maps = baseline_map(method, tiny_cnn().eval(), images, [1, 4], target_layer="3",
                        preprocess=SMALL)
    assert maps.shape == (2, 20, 26)
    assert maps.dtype == torch.float32 and maps.device.type == "cpu"
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    assert torch.isfinite(maps).all()


@pytest.mark.parametrize("method", BASELINES)
def test_several_classes_for_one_image(method, images):
    maps = baseline_map(method, tiny_cnn().eval(), images[0], [0, 2, 3], target_layer="3",
                        preprocess=SMALL)
    assert maps.shape == (3, 20, 26)


def test_list_of_methods():
    assert BASELINES[:4] == ["channel-mean", "gradcam", "gradcam++", "scorecam"]
    assert BASELINES[4:] == ["pgc-gradcam", "pgc-gradcam++", "pgc-scorecam", "eigencam",
                             "layercam", "finercam", "shapleycam"]  # pytorch-grad-cam's


def test_method_spellings(images):
    net = tiny_cnn().eval()
    ref = baseline_map("gradcam++", net, images, 1, target_layer="3", preprocess=SMALL)
    for spelling in ("GradCAM++", "grad-cam++", "gradcampp", "Grad_CAM_PP"):
        got = baseline_map(spelling, net, images, 1, target_layer="3", preprocess=SMALL)
        torch.testing.assert_close(got, ref)


# ---------------------------------------------------------------------------- exact maps
def test_channel_mean_is_opticam_iteration_zero(images):
    net = tiny_cnn().eval()
    a, _ = features_and_grads(net, images, [0, 0], net[3], SMALL)
    expected = finish(torch.relu(a).mean(dim=1), (20, 26))
    got = baseline_map("channel-mean", net, images, target_layer=net[3], preprocess=SMALL)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gradcam_matches_hand_computation(images):
    net = tiny_cnn().eval()
    a, g = features_and_grads(net, images, [1, 4], net[3], SMALL)
    w = g.mean(dim=(2, 3))
    expected = finish(torch.relu((w[:, :, None, None] * a).sum(1)), (20, 26))
    got = baseline_map("gradcam", net, images, [1, 4], target_layer="3", preprocess=SMALL)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_gradcampp_applies_the_alpha_normalization(images):
    # torchcam 0.5's GradCAMpp leaves alpha = g² (its in-place division hits a copy);
    # baseline_map must implement the paper's closed form (eq. 19: g³ at (i, j), A summed).
    net = tiny_cnn().eval()
    a, g = features_and_grads(net, images, [2, 3], net[3], SMALL)
    g2, g3 = g ** 2, g ** 3
    denom = 2 * g2 + g3 * a.sum(dim=(2, 3), keepdim=True)
    alpha = torch.where(g2 > 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                        torch.zeros_like(g2))
    w = (alpha * torch.relu(g)).sum(dim=(2, 3))
    expected = finish(torch.relu((w[:, :, None, None] * a).sum(1)), (20, 26))
    got = baseline_map("gradcam++", net, images, [2, 3], target_layer="3", preprocess=SMALL)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_scorecam_masks_in_pixel_space(images):
    """Score-CAM weights come from x ⊙ mask_k with x in pixels (black baseline)."""
    net = tiny_cnn().eval()
    pre = Preprocess(size=None, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
    x = images[:1]
    a, _ = features_and_grads(net, x, [2], net[3], pre)
    lo = a.flatten(2).min(2).values[..., None, None]
    hi = a.flatten(2).max(2).values[..., None, None]
    norm = (a - lo) / (hi - lo + 1e-8)  # per channel at feature resolution (torchcam's eps)
    masks = F.interpolate(norm, size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    with torch.no_grad():
        base = net(pre.normalize(x))[0, 2]
        scores = net(pre.normalize(x * masks[:, None]))[:, 2]
    w = torch.softmax(scores - base, dim=0)
    expected = finish(torch.relu((w[None, :, None, None] * a).sum(1)), (20, 26))
    got = baseline_map("scorecam", net, x, 2, target_layer="3", preprocess=pre, batch_size=3)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_constant_gradcam_map_is_zeros():
    # all-zero weights: Grad-CAM has no positive evidence -> a zero map, not NaN
    net = tiny_cnn().eval()
    with torch.no_grad():
        net[8].weight.zero_()
    maps = baseline_map("gradcam", net, torch.rand(3, 12, 12), 0, target_layer="3",
                        preprocess=NATIVE)
    assert torch.equal(maps, torch.zeros(1, 12, 12))


def test_model_bundle_and_default_layer_from_the_engine(images):
    from opticam_widgets.engine.explainer import OptiCAM

    net = messy_model()
    bundle = ModelBundle(net, preprocess=SMALL)
    layer = OptiCAM(net, preprocess=SMALL).layer_name
    before = snapshot(net)
    got = baseline_map("gradcam", bundle, images, [1, 2])  # layer asked from the engine
    assert_untouched(net, before)
    ref = baseline_map("gradcam", net, images, [1, 2], target_layer=layer, preprocess=SMALL)
    torch.testing.assert_close(got, ref)


# ---------------------------------------------------------------------------- hygiene
@pytest.mark.parametrize("method", BASELINES)
def test_model_left_untouched(method, images):
    model = messy_model()
    before = snapshot(model)
    baseline_map(method, model, images, [1, 2], target_layer="3", preprocess=SMALL)
    assert_untouched(model, before)


class Flaky(nn.Module):
    """Raises on the n-th call: lets a failure happen after torchcam registered its hooks."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls, self.fail_at = 0, fail_at

    def forward(self, x):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("boom")
        return x


@pytest.mark.parametrize(("method", "fail_at"), [
    ("channel-mean", 1), ("gradcam", 1), ("gradcam", 2), ("gradcam++", 2), ("scorecam", 2),
    ("scorecam", 3),
])
def test_model_left_untouched_on_errors(method, fail_at, images):
    # call 1: the feature capture (before torchcam); call 2: torchcam's forward; call 3:
    # Score-CAM's masked forwards
    model = messy_model()
    model.insert(6, Flaky(fail_at))
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        baseline_map(method, model, images, [1, 2], target_layer="3", preprocess=SMALL)
    assert_untouched(model, before)


def test_model_left_untouched_when_torchcam_fails(images, monkeypatch):
    import torchcam.methods

    def fail(*args, **kwargs):
        raise RuntimeError("torchcam failed")

    monkeypatch.setattr(torchcam.methods.GradCAM, "_get_weights", fail)
    model = messy_model()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="torchcam failed"):
        baseline_map("gradcam", model, images, 0, target_layer="3", preprocess=SMALL)
    assert_untouched(model, before)


def test_frozen_model_still_gets_gradients(images):
    model = tiny_cnn().eval().requires_grad_(False)
    maps = baseline_map("gradcam", model, images, 1, target_layer="3", preprocess=SMALL)
    assert maps.max() == 1.0
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------- bad inputs
def test_bad_arguments(images):
    net = tiny_cnn().eval()
    with pytest.raises(ValueError, match=r"`method` 'lime' is unknown.*gradcam"):
        baseline_map("lime", net, images, target_layer="3")
    with pytest.raises(TypeError, match="`method` must be a string"):
        baseline_map(None, net, images, target_layer="3")
    with pytest.raises(TypeError, match="`model`"):
        baseline_map("gradcam", "resnet", images, target_layer="3")
    with pytest.raises(ValueError, match=r"`target_layer` 'layer4'.*candidates"):
        baseline_map("gradcam", net, images, target_layer="layer4")
    with pytest.raises(ValueError, match=r"`target` 9 is out of range.*5 classes"):
        baseline_map("gradcam", net, images, 9, target_layer="3", preprocess=SMALL)
    with pytest.raises(ValueError, match="`target` has 3 entries for 2 images"):
        baseline_map("gradcam", net, images, [0, 1, 2], target_layer="3", preprocess=SMALL)
    with pytest.raises(ValueError, match="`target` 'cat' is a label name, but this model has no "
                                         "labels; give the class index"):
        baseline_map("gradcam", net, images, "cat", target_layer="3", preprocess=SMALL)
    with pytest.raises(TypeError, match="`target` must be a class index .* float 1.0"):
        baseline_map("gradcam", net, images, 1.0, target_layer="3", preprocess=SMALL)
    with pytest.raises(ValueError, match=r"`image` values must lie in \[0, 1\]"):
        baseline_map("gradcam", net, images[0] * 255, target_layer="3")
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        baseline_map("scorecam", net, images, target_layer="3", batch_size=0)


def test_missing_torchcam_gives_install_hint(images, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcam", None)
    monkeypatch.setitem(sys.modules, "torchcam.methods", None)
    net = tiny_cnn().eval()
    with pytest.raises(ImportError, match=r"pip install opticam-widgets\[baselines\]"):
        baseline_map("scorecam", net, images, target_layer="3", preprocess=SMALL)
    # the channel mean needs no torchcam
    assert baseline_map("channel-mean", net, images, target_layer="3",
                        preprocess=SMALL).shape == (2, 20, 26)
    assert hooks(net) == []


# ---------------------------------------------------------------------------- the paper's claim
@pytest.mark.slow
def test_opticam_beats_gradcam_on_sample_photos():
    """Opti-CAM: lower Average Drop and higher Average Gain than Grad-CAM (paper, Table 2)."""
    zoo = pytest.importorskip("opticam_widgets.model.zoo")
    from opticam_widgets.engine.explainer import OptiCAM
    from opticam_widgets.evaluation.metrics import faithfulness

    bundle = zoo.load_default_model()
    photos = [zoo.sample_image(n) for n in ("chelsea", "coffee", "astronaut")]
    cam = OptiCAM(bundle, max_iter=50)
    ours, theirs = {"AD": [], "AG": []}, {"AD": [], "AG": []}
    for photo in photos:
        r = cam.explain(photo)
        grad = baseline_map("gradcam", bundle, r.images, list(r.target), target_layer=r.layer)
        a = faithfulness(bundle, r.images, r.saliency, r.target)
        b = faithfulness(bundle, r.images, grad, r.target)
        for key in ("AD", "AG"):
            ours[key].append(a[key])
            theirs[key].append(b[key])
    mean = {k: sum(v) / len(v) for k, v in ours.items()}
    ref = {k: sum(v) / len(v) for k, v in theirs.items()}
    assert mean["AD"] < ref["AD"], (mean, ref)
    assert mean["AG"] > ref["AG"], (mean, ref)


def test_a_new_baseline_is_one_registry_entry():
    from opticam_widgets.evaluation import baselines as bl

    @bl.register_baseline("flat-test", needs_torchcam=False)
    def flat(call):
        return torch.full((len(call.rows.classes), *call.size), 0.5)

    try:
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten(), nn.Linear(4, 3)).eval()
        out = bl.baseline_map("flat-test", net, torch.rand(2, 3, 32, 32), [1, 2],
                              target_layer="0", preprocess={"size": None})
        assert out.shape == (2, 32, 32) and torch.all(out == 0.5)
    finally:
        del bl.REGISTRY["flat-test"]
    with pytest.raises(ValueError, match="unknown"):
        bl.baseline_map("flat-test", net, torch.rand(3, 32, 32), target_layer="0")
