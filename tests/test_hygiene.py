"""The user's model is sacred: hooks, modes, requires_grad, .grad and weights after any call."""

from __future__ import annotations

import gc

import pytest
import torch
from tinynets import IDENTITY, ColourNet, small_cnn, two_squares
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.features import capture, layer_candidates, model_guard, resolve_layer


def snapshot(model: nn.Module) -> dict:
    return {
        "modes": [m.training for m in model.modules()],
        "flags": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert hook_count(model) == 0
    assert after["modes"] == before["modes"]
    assert after["flags"] == before["flags"]
    for a, b in zip(after["grads"], before["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), k


def messy_model() -> nn.Module:
    """Train mode, BN (running stats would move in train mode), a frozen layer, a stale .grad."""
    model = small_cnn().train()
    model[0].weight.requires_grad_(False)
    model[3].weight.grad = torch.full_like(model[3].weight, 7.0)
    model[1].eval()  # mixed modes must come back mixed
    return model


def test_success_leaves_model_untouched():
    model = messy_model()
    before = snapshot(model)
    OptiCAM(model, max_iter=5, preprocess=Preprocess(size=None)).explain(
        torch.rand(2, 3, 32, 32), target=[0, 1])
    assert_untouched(model, before)


def test_layer_autodetect_and_predict_leave_model_untouched():
    model = messy_model()
    before = snapshot(model)
    cam = OptiCAM(model, preprocess=Preprocess(size=(32, 32)))
    assert cam.layer_name == "4"
    cam.predict(torch.rand(3, 32, 32))
    assert_untouched(model, before)


class Boom(RuntimeError):
    pass


def test_exception_in_forward_leaves_model_untouched():
    model = messy_model()
    calls = {"n": 0}

    def explode(_m, _i, _o):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Boom("model failed mid-run")

    handle = model[4].register_forward_hook(explode)  # the user's own hook stays
    before = snapshot(model)
    with pytest.raises(Boom):
        OptiCAM(model, max_iter=5, preprocess=Preprocess(size=None)).explain(
            torch.rand(3, 32, 32), target=0)
    handle.remove()
    before_hooks_removed = hook_count(model)
    assert before_hooks_removed == 0
    after = snapshot(model)
    assert after["modes"] == before["modes"] and after["flags"] == before["flags"]
    assert torch.equal(model[3].weight.grad, torch.full_like(model[3].weight, 7.0))


def test_exception_in_callback_and_bad_target_leave_model_untouched():
    model = messy_model()
    before = snapshot(model)
    cam = OptiCAM(model, max_iter=5, preprocess=Preprocess(size=None))

    def cb(step, progress):
        raise Boom("callback")

    with pytest.raises(Boom):
        cam.explain(torch.rand(3, 32, 32), target=0, callback=cb)
    with pytest.raises(ValueError, match="target"):
        cam.explain(torch.rand(3, 32, 32), target=99)
    assert_untouched(model, before)


def test_user_hooks_survive():
    model = ColourNet()
    seen = []
    h = model.conv.register_forward_hook(lambda m, i, o: seen.append(1))
    OptiCAM(model, preprocess=IDENTITY, max_iter=2).explain(two_squares(), target=0)
    assert len(model.conv._forward_hooks) == 1 and len(seen) == 4  # capture + 3 iterations
    h.remove()


def test_model_guard_restores_on_exception():
    model = messy_model()
    before = snapshot(model)
    with pytest.raises(Boom), model_guard(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        raise Boom
    assert_untouched(model, before)


def test_memory_and_hooks_flat_across_many_calls():
    model = small_cnn()
    cam = OptiCAM(model, max_iter=2, preprocess=Preprocess(size=None))
    x = torch.rand(3, 16, 16)
    cam.explain(x, target=0)
    gc.collect()
    tensors_before = sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))
    for _ in range(50):
        cam.explain(x, target=0)
    gc.collect()
    tensors_after = sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))
    assert tensors_after - tensors_before < 10
    assert hook_count(model) == 0


@pytest.mark.parametrize(
    ("factory", "size", "expected"),
    [
        ("resnet18", 64, "layer4"),
        ("vgg11", 64, "features.19"),
        ("densenet121", 64, "features"),
        ("mobilenet_v2", 64, "features"),
        ("mobilenet_v3_small", 64, "features"),
        ("efficientnet_b0", 64, "features"),
    ],
)
def test_layer_autodetection_torchvision(factory, size, expected):
    import torchvision

    model = getattr(torchvision.models, factory)(num_classes=4).eval()
    cam = OptiCAM(model, preprocess=Preprocess(size=(size, size)))
    assert cam.layer_name == expected
    assert hook_count(model) == 0


def test_layer_autodetection_timm():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=4).eval()
    assert OptiCAM(model, preprocess=Preprocess(size=(64, 64))).layer_name == "bn2"
    model = timm.create_model("resnet18", pretrained=False, num_classes=4).eval()
    assert OptiCAM(model, preprocess=Preprocess(size=(64, 64))).layer_name == "layer4"


def test_layer_by_module_and_name():
    model = small_cnn()
    assert resolve_layer(model, model[2]) == ("2", model[2])
    assert resolve_layer(model, "2")[0] == "2"
    r = OptiCAM(model, target_layer=model[2], max_iter=2,
                preprocess=Preprocess(size=None)).explain(torch.rand(3, 16, 16))
    assert r.layer == "2" and r.weights.shape == (1, 8)


def test_capture_returns_relu_features_and_logits():
    model = ColourNet()
    x = two_squares()[None]
    name, feats, logits = capture(model, x, "conv")
    assert name == "conv"
    torch.testing.assert_close(feats, torch.relu(model.conv(x)))
    torch.testing.assert_close(logits, model(x))


def test_candidates_listed():
    assert layer_candidates(small_cnn())[-1] == "4"


def test_concurrent_explanations_of_one_model_restore_it():
    import threading

    model = small_cnn().train()
    before = snapshot(model)
    cam = OptiCAM(model, max_iter=15, preprocess=Preprocess(size=None))
    errors = []

    def work(seed):
        try:
            g = torch.Generator().manual_seed(seed)
            cam.explain(torch.rand(3, 24, 24, generator=g), target=seed % 5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert_untouched(model, before)
    assert all(p.requires_grad for p in model.parameters())
