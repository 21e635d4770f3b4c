"""The inner loop's stand-in model: BatchNorm folded, same function, the user's model untouched."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from test_hygiene import assert_untouched, hook_count, snapshot
from tinynets import small_cnn
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.engine.explainer import saliency_from_weights
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.features import model_guard
from opticam_widgets.model.folding import folded_copy, inner_loop_model

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

PRE = Preprocess(size=None)


def bn_net(seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU twice, BN statistics far from identity (so a missed fold shows)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    )
    for bn in (net[1], net[4]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.2, 3.0)
        bn.weight.data.uniform_(0.5, 2.0)
        bn.bias.data.uniform_(-0.3, 0.3)
    return net.eval()


class SkipNet(nn.Module):
    """The conv's raw output feeds its BatchNorm and a skip connection: not foldable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.bn.running_var.fill_(4.0)
        self.bn.running_mean.fill_(0.5)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.head(self.bn(y) + y)


class SharedConvNet(nn.Module):
    """One conv called twice, each time followed by a different BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn_a, self.bn_b = nn.BatchNorm2d(3), nn.BatchNorm2d(3)
        self.bn_b.running_mean.fill_(1.0)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn_b(self.conv(self.bn_a(self.conv(x)).relu())))


def x_in(seed: int = 0, size: int = 24) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_folded_copy_computes_the_same_logits_and_gradients():
    net = bn_net()
    x = x_in()
    fast, folded = folded_copy(net, x)
    assert folded == 2
    assert isinstance(fast[1], nn.Identity) and isinstance(fast[4], nn.Identity)
    assert all(not p.requires_grad for p in fast.parameters())
    assert fast[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    net(xa)[:, 2].sum().backward()
    fast(xb)[:, 2].sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, atol=1e-5, rtol=1e-4)


def test_folding_leaves_the_users_model_untouched():
    net = bn_net().train()
    net[3].weight.grad = torch.ones_like(net[3].weight)
    before = snapshot(net)
    modules_before = [type(m) for m in net.modules()]
    with model_guard(net):
        x = x_in()
        fast = inner_loop_model(net, x, net(x))
    assert fast is not net
    assert [type(m) for m in net.modules()] == modules_before
    assert_untouched(net, before)


def test_timm_batchnorm_act_keeps_its_activation():
    from timm.layers import BatchNormAct2d

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), BatchNormAct2d(6, act_layer=nn.ReLU6),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    net[1].running_mean.fill_(-2.0)  # activations far below 0 and above 6 after the BN
    net[1].running_var.fill_(0.01)
    x = x_in() * 3
    fast, folded = folded_copy(net, x)
    assert folded == 1 and isinstance(fast[1][1], nn.ReLU6)
    with torch.no_grad():
        ref = net(x)
        assert float(ref.max()) > 1.0  # the clamp at 6 and 0 is active somewhere
        torch.testing.assert_close(fast(x), ref, atol=1e-4, rtol=1e-5)


def test_conv_output_with_a_second_consumer_runs_the_model_as_given():
    net = SkipNet().eval()
    x = x_in()
    with torch.no_grad():
        assert inner_loop_model(net, x, net(x)) is net  # the folded copy disagrees: dropped
    a = OptiCAM(net, max_iter=4, preprocess=PRE).explain(x_in(1)[0], target=1)
    b = OptiCAM(net, max_iter=4, preprocess=PRE, fold_batchnorm=False).explain(x_in(1)[0], 1)
    assert torch.equal(a.saliency, b.saliency) and torch.equal(a.scores, b.scores)


def test_shared_conv_is_not_folded():
    net = SharedConvNet().eval()
    x = x_in()
    fast, folded = folded_copy(net, x)
    assert folded == 0
    with torch.no_grad():
        assert inner_loop_model(net, x, net(x)) is net


def test_hooked_or_uncopyable_models_run_as_given():
    net = bn_net()
    x = x_in()
    calls = []
    handle = net[2].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        assert inner_loop_model(net, x, net(x)) is net
    OptiCAM(net, max_iter=3, preprocess=PRE).explain(x[0], target=0)
    assert len(calls) == 1 + 1 + 4  # ours: capture + 3 steps + final scoring
    handle.remove()

    net.lock = threading.Lock()  # deepcopy fails: no copy, no error
    with pytest.raises(TypeError):
        copy.deepcopy(net)
    with torch.no_grad():
        assert inner_loop_model(net, x, net(x)) is net


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.script is deprecated
def test_compiled_and_scripted_models_run_as_given():
    net = bn_net()
    x = x_in()
    scripted = torch.jit.script(net)
    compiled = torch.compile(net)  # not run: only its type is looked at
    with torch.no_grad():
        assert inner_loop_model(scripted, x, scripted(x)) is scripted
        assert inner_loop_model(compiled, x, net(x)) is compiled
        wrapped = nn.Sequential(compiled)  # a compiled module inside the model
        assert inner_loop_model(wrapped, x, net(x)) is wrapped


def test_cache_follows_changes_to_the_model():
    net = bn_net()
    x = x_in()
    with torch.no_grad():
        first = inner_loop_model(net, x, net(x))
        assert inner_loop_model(net, x, net(x)) is first  # cached
        net[4].running_mean.add_(1.0)  # an in-place change of a buffer
        second = inner_loop_model(net, x, net(x))
        assert second is not first
        torch.testing.assert_close(second(x), net(x), atol=1e-5, rtol=1e-5)
        net[3] = nn.Conv2d(8, 16, 3, padding=1, stride=2)  # a new submodule
        third = inner_loop_model(net, x, net(x))
        assert third is not second
        torch.testing.assert_close(third(x), net(x), atol=1e-5, rtol=1e-5)


def test_explain_with_folding_matches_the_model_as_given():
    net = bn_net()
    image = x_in(3, 32)[0]
    kw = {"max_iter": 8, "preprocess": PRE}
    a = OptiCAM(net, **kw).explain(image, target=[0, 3])
    b = OptiCAM(net, fold_batchnorm=False, **kw).explain(image, target=[0, 3])
    torch.testing.assert_close(a.scores[:, 0], b.scores[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.original_score, b.original_score)
    torch.testing.assert_close(a.saliency, b.saliency, atol=1e-3, rtol=0)
    assert hook_count(net) == 0


def test_fold_batchnorm_must_be_bool():
    with pytest.raises(TypeError, match="fold_batchnorm"):
        OptiCAM(small_cnn(), fold_batchnorm="yes")


@pytest.mark.parametrize("shape", [(7, 7, 224, 224), (7, 9, 224, 300), (13, 13, 100, 77),
                                   (3, 4, 3, 9), (5, 5, 5, 5), (9, 9, 4, 4)])
def test_minmax_on_the_small_map_equals_minmax_of_the_upsampled_map(shape):
    """Values and gradients equal the reference (interpolate, then normalize), in float64."""
    import torch.nn.functional as F

    h, w, height, width = shape
    g = torch.Generator().manual_seed(sum(shape))
    for _ in range(5):
        feats = torch.randn(2, 6, h, w, generator=g, dtype=torch.float64).relu()
        wts = torch.softmax(torch.randn(2, 6, generator=g, dtype=torch.float64), 1)
        wts.requires_grad_(True)
        cam = torch.einsum("nk,nkhw->nhw", wts, feats)[:, None]
        up = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)
        lo = up.flatten(1).min(1).values.view(-1, 1, 1, 1)
        hi = up.flatten(1).max(1).values.view(-1, 1, 1, 1)
        ref = (up - lo) / (hi - lo)
        new = saliency_from_weights(wts, feats, (height, width))
        torch.testing.assert_close(new, ref, atol=1e-12, rtol=0)
        probe = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        (g_ref,) = torch.autograd.grad((ref * probe).sum(), wts)
        (g_new,) = torch.autograd.grad((new * probe).sum(), wts)
        torch.testing.assert_close(g_new, g_ref, atol=1e-10, rtol=1e-9)


class DictOutput(nn.Module):
    """``bn_net`` returning its logits the Hugging Face way: an object with ``.logits``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = bn_net()

    def forward(self, x: torch.Tensor):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.body(x), hidden_states=None)


def test_models_returning_an_output_object_are_folded_too():
    net = DictOutput().eval()
    x = x_in()
    with model_guard(net), torch.no_grad():
        logits = net(x).logits
        fast = inner_loop_model(net, x, logits)
        assert fast is not net  # checked on the output's logits, not dropped
        torch.testing.assert_close(fast(x).logits, logits, atol=1e-5, rtol=1e-5)
    image = x_in(2, 32)[0]
    a = OptiCAM(net, max_iter=4, preprocess=PRE).explain(image, target=1)
    b = OptiCAM(net, max_iter=4, preprocess=PRE, fold_batchnorm=False).explain(image, target=1)
    torch.testing.assert_close(a.scores, b.scores, atol=1e-4, rtol=1e-4)
