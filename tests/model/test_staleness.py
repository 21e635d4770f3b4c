"""The folded copy of the inner loop never goes stale: every in-place change of the model shows.

After each change the reported ``final_score`` must be the live model's score of
``result.masked_input()`` (what the map claims the model sees), not the old copy's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from test_folding import bn_net, x_in
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.inputs.images import to_image_tensor
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.features import model_guard
from opticam_widgets.model.folding import inner_loop_model
from opticam_widgets.model.zoo import load_default_model, sample_image

PRE = Preprocess(size=None)


class TempNet(nn.Module):
    """``bn_net`` whose logits are divided by plain (non-buffer) attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.body = bn_net()
        self.temperature = 1.0
        self.scale = torch.ones(())  # a plain tensor attribute, not a buffer
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x)) / self.temperature * self.scale


def live_score(model: nn.Module, pre: Preprocess, result) -> torch.Tensor:
    """The model's own logit of each row's target on ``result.masked_input()`` (eval mode)."""
    dtype = next(model.parameters()).dtype
    x = pre.normalize(pre.resize(result.masked_input()).to(dtype))
    with model_guard(model), torch.no_grad():
        logits = model(x).float()
    return logits[torch.arange(len(result)), torch.tensor(result.target)]


def check_explain(model: nn.Module, image: torch.Tensor, pre: Preprocess = PRE) -> None:
    result = OptiCAM(model, max_iter=3, preprocess=pre).explain(image, target=[0, 2])
    torch.testing.assert_close(result.final_score, live_score(model, pre, result),
                               rtol=1e-4, atol=1e-5)
    dtype = next(model.parameters()).dtype
    with model_guard(model), torch.no_grad():
        logits = model(pre.normalize(pre.resize(image[None]).to(dtype)))[0].float()
    torch.testing.assert_close(result.original_score, logits[[0, 2]], rtol=1e-5, atol=1e-6)


def scale_data(m: nn.Module) -> None:
    for p in m.parameters():
        p.data.mul_(0.5)


def scale_no_grad(m: nn.Module) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0.5)


def load_other_weights(m: nn.Module) -> None:
    m.load_state_dict({k: (v * 0.7 + 0.05 if v.is_floating_point() else v)
                       for k, v in m.state_dict().items()})


def bn_eps(m: nn.Module) -> None:
    m.body[1].eps = 0.5


def bn_momentum(m: nn.Module) -> None:  # harmless in eval mode
    m.body[4].momentum = 0.9


def temperature(m: nn.Module) -> None:
    m.temperature = 3.0


def plain_tensor_attribute(m: nn.Module) -> None:
    m.scale.fill_(2.0)  # not a buffer: no fingerprint sees it, the logits check does


def activation_flag(m: nn.Module) -> None:
    m.act.negative_slope = 0.5
    m.body[2].inplace = True


def conv_stride(m: nn.Module) -> None:
    m.body[3].stride = (1, 1)


def swap_submodule(m: nn.Module) -> None:
    m.body[5] = nn.GELU()


def swap_weight_data(m: nn.Module) -> None:
    m.body[0].weight.data = m.body[0].weight.data.flip(0).clone()


def bn_train_mode(m: nn.Module) -> None:  # explanations run in eval mode whatever the flag
    m.body[1].train()


def requires_grad_toggle(m: nn.Module) -> None:
    m.requires_grad_(False)
    m.body[0].weight.requires_grad_(True)


def dtype_round_trip(m: nn.Module) -> None:
    m.half().float()  # new storage, values rounded to float16 (a change near rounding)


def to_float64(m: nn.Module) -> None:
    m.to(torch.float64)  # the input follows the model's dtype
    m.body[0].weight.data.mul_(1.5)  # and a real change on top


def patched_forward(m: nn.Module) -> None:
    m.body[6].forward = lambda x: x.amax(dim=(2, 3), keepdim=True)  # max pooling instead


CHANGES: list[Callable[[nn.Module], None]] = [
    scale_data, scale_no_grad, load_other_weights, bn_eps, bn_momentum, temperature,
    plain_tensor_attribute, activation_flag, conv_stride, swap_submodule, swap_weight_data,
    bn_train_mode, requires_grad_toggle, dtype_round_trip, to_float64, patched_forward,
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__)
def test_explain_follows_every_in_place_change(change):
    model = TempNet().eval()
    image = x_in(5, 32)[0]
    check_explain(model, image)  # builds and caches the folded copy
    with model_guard(model), torch.no_grad():
        before = model(image[None])
    change(model)
    with model_guard(model), torch.no_grad():
        after = model(image[None].to(next(model.parameters()).dtype)).float()
    if change not in (bn_momentum, bn_train_mode, requires_grad_toggle, dtype_round_trip):
        assert not torch.allclose(before, after, rtol=1e-3, atol=1e-4)  # a real change
    check_explain(model, image)


def test_change_through_data_is_caught_by_the_logits_check():
    model = bn_net()
    x = x_in()
    with model_guard(model), torch.no_grad():
        first = inner_loop_model(model, x, model(x))
        assert inner_loop_model(model, x, model(x)) is first  # unchanged: reused
        scale_data(model)  # bumps no version, moves no storage
        second = inner_loop_model(model, x, model(x))
        assert second is not first and second is not model
        torch.testing.assert_close(second(x), model(x), rtol=1e-5, atol=1e-6)
        assert inner_loop_model(model, x, model(x)) is second


def test_a_copy_that_cannot_match_falls_back_to_the_model():
    """A model whose eval forward is not a function of its input: the check never passes."""

    class Drifting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = bn_net()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return self.body(x) + self.calls

    model = Drifting().eval()
    x = x_in()
    with model_guard(model), torch.no_grad():
        assert inner_loop_model(model, x, model(x)) is model


def test_default_model_after_in_place_changes():
    model = copy.deepcopy(load_default_model().model)  # the shared one stays untouched
    pre = load_default_model().preprocess
    image = pre.resize(to_image_tensor(sample_image("chelsea"))[None])[0]
    check_explain(model, image, pre)
    scale_data(model)
    check_explain(model, image, pre)
    model.bn1.eps = 0.3
    check_explain(model, image, pre)


def test_a_data_write_invisible_on_this_input_still_rebuilds_the_copy():
    """A channel that is dead (ReLU) on this image, changed through ``.data``: the logits on the
    image do not move, but masked images may revive the channel, so the copy must follow."""
    model = bn_net()
    x = x_in()
    model[4].bias.data[0] = -100.0  # channel 0 of the second block: dead on every input
    with model_guard(model), torch.no_grad():
        first = inner_loop_model(model, x, model(x))
        before = model(x)
        model[4].bias.data[0] = -50.0  # still dead here: no version bump, same logits
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)
        second = inner_loop_model(model, x, model(x))
        assert second is not first
        revived = x + 0.0
        model[4].bias.data[0] = 5.0  # alive now: the new copy must compute it
        third = inner_loop_model(model, revived, model(revived))
        torch.testing.assert_close(third(revived), model(revived), rtol=1e-5, atol=1e-6)


def test_content_check_is_stable_when_nothing_changes():
    model = bn_net()
    x = x_in()
    with model_guard(model), torch.no_grad():
        first = inner_loop_model(model, x, model(x))
        for seed in range(3):  # other inputs, same model: the copy is reused
            y = x_in(seed + 1)
            assert inner_loop_model(model, y, model(y)) is first
