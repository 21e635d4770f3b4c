"""The Opti-CAM engine: exact numbers on a hand-built CNN, conventions, batching, callbacks."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from tinynets import IDENTITY, ColourNet, small_cnn, two_squares

from opticam_widgets import ModelBundle, OptiCAM, OptiCAMResult
from opticam_widgets.engine.explainer import saliency_from_weights
from opticam_widgets.inputs.preprocess import Preprocess

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)


def colour_cam(**kw) -> OptiCAM:
    return OptiCAM(ColourNet(), preprocess=IDENTITY, **kw)


def channel_mean_map(model, x: torch.Tensor) -> torch.Tensor:
    a = torch.relu(model.conv(x[None]))  # (1, K, h, w)
    cam = a.mean(1, keepdim=True)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return ((cam - cam.min()) / (cam.max() - cam.min()))[0, 0]


def test_iteration_zero_is_channel_mean_cam():
    cam, x = colour_cam(max_iter=3), two_squares()
    seen = {}

    def cb(step, progress):
        if step == 0:
            seen["r"] = progress.result()

    cam.explain(x, target=0, callback=cb)
    expected = channel_mean_map(cam.model, x)
    torch.testing.assert_close(seen["r"].saliency[0], expected, atol=1e-6, rtol=0)
    # both squares weigh the same at iteration 0 (ch2 sees both), the background is 0
    s0 = seen["r"].saliency[0]
    assert s0[4:8, 4:8].mean().item() == pytest.approx(s0[8:12, 8:12].mean().item(), abs=1e-6)
    assert s0[0, 0] == 0.0
    # the recorded score of iteration 0 is the model's logit on x ⊙ S0, computed by hand
    by_hand = cam.model((x * expected)[None])[0, 0]
    assert seen["r"].scores[0, 0].item() == pytest.approx(by_hand.item(), abs=1e-6)


def test_constructive_finds_the_red_square():
    cam, x = colour_cam(max_iter=60, lr=0.2), two_squares()
    r = cam.explain(x, target=0)  # class 0 = red − green
    s = r.saliency[0]
    assert s[4:8, 4:8].mean() > 0.9
    assert s[8:12, 8:12].mean() < 0.2
    assert r.final_score.item() > r.initial_score.item() + 0.02
    # score history rises in trend: the last quarter beats the first quarter
    h = r.scores[0]
    assert h[-15:].mean() > h[:15].mean()
    assert r.weights[0, 0] == r.weights[0].max()  # red channel dominates
    assert r.weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert r.iterations == 60 and r.scores.shape == (1, 61)


def test_destructive_lowers_score_of_complement_and_marks_what_matters():
    cam, x = colour_cam(max_iter=60, convention="destructive"), two_squares(background=0.2)
    r = cam.explain(x, target=0)
    assert r.convention == "destructive"
    assert r.final_score.item() < r.initial_score.item() - 0.02
    # recompute by hand: logit of x ⊙ (1 − S) at the model's resolution
    by_hand = cam.model((x * (1 - r.saliency[0]))[None])[0, 0].item()
    assert by_hand == pytest.approx(r.final_score.item(), abs=1e-5)
    s = r.saliency[0]
    assert s[4:8, 4:8].mean() > 0.9  # the red square matters for class 0
    assert s[8:12, 8:12].mean() < 0.2


def test_final_score_matches_masked_input():
    cam, x = colour_cam(max_iter=20), two_squares()
    r = cam.explain(x, target=1)
    logit = cam.model(r.masked_input())[0, 1].item()
    assert logit == pytest.approx(r.final_score.item(), abs=1e-5)
    assert r.masked_input(inverse=True).shape == (1, 3, 16, 16)
    assert r.original_score.item() == pytest.approx(cam.model(x[None])[0, 1].item(), abs=1e-6)


def test_target_none_is_top1_and_several_classes_batch():
    cam, x = colour_cam(max_iter=5), two_squares()
    x[2, 0:2, 0:2] = 1.0  # a little blue
    top = cam.model(x[None]).argmax().item()
    assert cam.explain(x).target == (top,)
    r = cam.explain(x, target=[0, 1, 2])
    assert r.target == (0, 1, 2) and r.image_index == (0, 0, 0)
    assert r.saliency.shape == (3, 16, 16)
    # class 1 (green − red) puts its map on the green square
    r1 = cam.explain(x, target=[1], max_iter=60)
    assert r1.saliency[0, 8:12, 8:12].mean() > 0.9


def test_batch_of_images_one_target_each():
    cam = colour_cam(max_iter=4)
    xs = torch.stack([two_squares(), two_squares().flip(-1)])
    r = cam.explain(xs, target=[0, 1])
    assert r.image_index == (0, 1) and r.target == (0, 1)
    torch.testing.assert_close(r.images[1], xs[1])


def test_batched_classes_equal_one_at_a_time():
    cam, x = colour_cam(max_iter=10), two_squares()
    both = cam.explain(x, target=[0, 1])
    for i, c in enumerate((0, 1)):
        one = cam.explain(x, target=c)
        torch.testing.assert_close(both.saliency[i], one.saliency[0], atol=1e-5, rtol=0)


def test_premises_keep_the_best_trajectory():
    model = small_cnn()
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    pre = Preprocess(size=None)
    one = OptiCAM(model, max_iter=8, preprocess=pre).explain(x, target=2)
    many = OptiCAM(model, max_iter=8, preprocess=pre, nb_premises_at_startup=4).explain(
        x, target=2)
    assert many.saliency.shape == (1, 32, 32)
    assert many.scores.shape == (1, 9)
    assert many.final_score.item() >= one.final_score.item() - 1e-4
    # seeded: the same call twice gives the same map
    again = OptiCAM(model, max_iter=8, preprocess=pre, nb_premises_at_startup=4).explain(
        x, target=2)
    torch.testing.assert_close(again.saliency, many.saliency)


def test_callback_count_and_progress():
    cam = colour_cam(max_iter=7)
    calls = []
    cam.explain(two_squares(), target=0,
                callback=lambda s, p: calls.append((s, p.max_iter, p.scores.shape[1])))
    assert [c[0] for c in calls] == list(range(8))
    assert all(c[1] == 7 and c[2] == c[0] + 1 for c in calls)


def test_cancel_within_one_iteration():
    cam, stop = colour_cam(max_iter=100), threading.Event()

    def cb(step, progress):
        if step == 3:
            stop.set()

    r = cam.explain(two_squares(), target=0, callback=cb, cancel=stop)
    assert r.cancelled and r.iterations == 3
    assert r.scores.shape == (1, 4)
    assert 0.0 <= r.saliency.min() and r.saliency.max() <= 1.0


def test_cancel_set_before_start_returns_iteration_zero():
    stop = threading.Event()
    stop.set()
    r = colour_cam().explain(two_squares(), target=0, cancel=stop)
    assert r.cancelled and r.iterations == 0


def test_probability_and_custom_scores():
    x = two_squares()
    rp = colour_cam(max_iter=5, score="probability").explain(x, target=0)
    assert rp.score == "probability" and 0 < rp.final_score.item() < 1
    rc = colour_cam(max_iter=5, score=lambda logits, t: -logits[:, 2]).explain(x, target=0)
    assert rc.score == "custom"


def test_early_stopping_stops_on_plateau():
    r = colour_cam(max_iter=400, tol=1e-3, patience=10).explain(two_squares(), target=0)
    assert r.iterations < 400
    full = colour_cam(max_iter=400).explain(two_squares(), target=0)
    assert r.final_score.item() >= 0.99 * full.final_score.item()


def test_lr_schedule_cosine_runs():
    r = colour_cam(max_iter=30, lr_schedule="cosine").explain(two_squares(), target=0)
    assert r.final_score > r.initial_score


def test_saliency_resized_back_to_input_resolution():
    cam = OptiCAM(ColourNet(), preprocess=Preprocess(size=(16, 16), mean=(0, 0, 0),
                                                     std=(1, 1, 1)), max_iter=3)
    big = F.interpolate(two_squares()[None], size=(40, 60), mode="nearest")[0]
    r = cam.explain(big, target=0)
    assert r.saliency.shape == (1, 40, 60)
    assert r.images.shape == (1, 3, 40, 60)


def test_constant_map_is_all_ones():
    s = saliency_from_weights(torch.tensor([[1.0]]), torch.zeros(1, 1, 3, 3), (6, 6))
    assert torch.equal(s, torch.ones(1, 1, 6, 6))


def test_bundle_is_accepted():
    bundle = ModelBundle(ColourNet(), preprocess=Preprocess(**IDENTITY), labels=list("abc"))
    r = OptiCAM(bundle, max_iter=2).explain(two_squares(), target=0)
    assert isinstance(r, OptiCAMResult) and r.layer == "relu"


def test_result_is_frozen_and_numpy():
    r = colour_cam(max_iter=2).explain(two_squares(), target=0)
    with pytest.raises(AttributeError):
        r.saliency = None  # type: ignore[misc]
    arr = r.numpy()
    assert arr.dtype.name == "float32" and arr.shape == (1, 16, 16) and len(r) == 1


def test_resnet18_end_to_end_cpu():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(num_classes=10).eval()
    x = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(0))
    cam = OptiCAM(model, max_iter=15, preprocess=Preprocess(size=(96, 128)))
    r = cam.explain(x, target=3)
    assert cam.layer_name == "layer4" and r.layer == "layer4"
    assert r.saliency.shape == (1, 96, 128) and r.weights.shape == (1, 512)
    assert r.final_score.item() > r.initial_score.item()
    assert 0.0 == pytest.approx(r.saliency.min().item(), abs=1e-6)
    assert r.saliency.max().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_runs_on_model_device():
    model = small_cnn().cuda()
    r = OptiCAM(model, max_iter=5, preprocess=Preprocess(size=None)).explain(
        torch.rand(3, 32, 32), target=1)
    assert r.saliency.device.type == "cpu"
    assert next(model.parameters()).device.type == "cuda"


def test_matmul_upsampling_equals_interpolate():
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(2, 5, 7, 9, generator=g)
    w = torch.softmax(torch.randn(2, 5, generator=g), 1)
    cam = torch.einsum("nk,nkhw->nhw", w, feats).unsqueeze(1)
    up = F.interpolate(cam, size=(50, 61), mode="bilinear", align_corners=False)
    lo = up.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = up.flatten(1).max(1).values.view(-1, 1, 1, 1)
    torch.testing.assert_close(saliency_from_weights(w, feats, (50, 61)), (up - lo) / (hi - lo),
                               atol=1e-5, rtol=0)


def test_preview_is_predict_and_channel_mean_in_one_forward():
    """``preview``: the classes and the iteration-0 map a viewer shows first, from one resize
    and one forward pass, equal to :meth:`predict` and :meth:`channel_mean`."""
    net = small_cnn()
    calls = []
    net.register_forward_pre_hook(lambda *_: calls.append(1))
    cam = OptiCAM(net, preprocess={"size": (32, 32), "mean": (0.5,) * 3, "std": (0.25,) * 3})
    img = torch.rand(2, 3, 50, 70)
    probs, maps = cam.preview(img, size=(25, 35))
    assert len(calls) == 1
    assert torch.allclose(probs, cam.predict(img), atol=1e-6)
    assert torch.equal(maps, cam.channel_mean(img, size=(25, 35)))
    assert maps.shape == (2, 25, 35) and probs.shape == (2, net[-1].out_features)
    with pytest.raises(ValueError, match="`size`"):
        cam.preview(img, size=(0, 3))
