"""Feature capture: the layer's own output, 1×1 maps refused, models that cannot be explained."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18

from opticam_widgets import OptiCAM, Preprocess
from opticam_widgets.model.features import capture, model_guard

IDENTITY = Preprocess(size=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def seeded_resnet18() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return resnet18(num_classes=10).eval()


def manual_layer4_1_bn2(model: nn.Module, x: Tensor) -> Tensor:
    """ResNet-18 up to ``layer4.1.bn2``, written out (no hooks, no in-place op after it)."""
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        h = model.layer4[0](model.layer3(model.layer2(model.layer1(h))))
        block = model.layer4[1]
        return block.bn2(block.conv2(F.relu(block.bn1(block.conv1(h)))))


def test_capture_keeps_the_layers_own_output_despite_later_inplace_ops():
    model = seeded_resnet18()
    x = torch.randn(2, 3, 64, 64)
    expected = manual_layer4_1_bn2(model, x)
    with model_guard(model):
        name, feats, logits = capture(model, x, "layer4.1.bn2")
        _, block_out, _ = capture(model, x, "layer4")
    assert name == "layer4.1.bn2"
    torch.testing.assert_close(feats, torch.relu(expected))
    # `out += identity; relu_(out)` wrote into the tensor bn2 returned: the copy is not that
    assert (feats - block_out).abs().max() > 0.1
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))
    assert hook_count(model) == 0


def test_autodetected_layer_is_copied_too():
    class InplaceAfter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(4, 2)

        def forward(self, x: Tensor) -> Tensor:
            h = self.conv(x)
            pooled = h.mean(dim=(2, 3))
            h.mul_(0.0)  # an in-place op after the layer: must not reach the captured map
            return self.head(pooled)

    model = InplaceAfter().eval()
    x = torch.rand(1, 3, 8, 8)
    name, feats, _ = capture(model, x)
    with torch.no_grad():
        expected = torch.relu(model.conv(x))
    assert name == "conv" and torch.equal(feats, expected) and feats.abs().sum() > 0


def test_one_by_one_layer_is_refused_naming_an_earlier_layer():
    model = seeded_resnet18()
    with pytest.raises(ValueError, match=r"`target_layer` 'avgpool' gives a 1×1 .* 64×64 input"
                                         r".*`target_layer='layer4'` \(2×2 here\)"):
        capture(model, torch.rand(1, 3, 64, 64), "avgpool")
    with pytest.raises(ValueError, match=r"'layer4' gives a 1×1 .*20×20.*'layer3'` \(2×2 here\)"):
        capture(model, torch.rand(1, 3, 20, 20), "layer4")
    assert hook_count(model) == 0


def test_explainer_rechecks_the_layer_for_every_input_size():
    model = seeded_resnet18()
    cam = OptiCAM(model, preprocess=IDENTITY, max_iter=2)
    assert cam.explain(torch.rand(3, 64, 64)).layer == "layer4"  # 2×2 there
    with pytest.raises(ValueError, match=r"'layer4' gives a 1×1 feature map on a 20×20 input"):
        cam.explain(torch.rand(3, 20, 20))
    named = OptiCAM(model, preprocess=IDENTITY, target_layer="layer4", max_iter=2)
    with pytest.raises(ValueError, match=r"'layer4' gives a 1×1 .*'layer3'"):
        named.explain(torch.rand(3, 20, 20))
    assert hook_count(model) == 0 and not any(p.grad is not None for p in model.parameters())


def test_model_without_a_map_larger_than_one_cell():
    model = nn.Sequential(nn.Conv2d(3, 4, 8, stride=8), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"no feature map larger than 1×1 on a 8×8 input.*'1'"):
        capture(model.eval(), torch.rand(1, 3, 8, 8))


def test_model_without_any_spatial_layer_names_itself_and_the_fix():
    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3 * 8 * 8, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(x.flatten(1))

    with pytest.raises(ValueError, match=r"`model` \(Mlp\) has no spatial feature map on a 8×8 "
                                         r"input.*`target_layer`.*`reshape=`"):
        capture(Mlp().eval(), torch.rand(1, 3, 8, 8))


def test_greyscale_model_is_refused_with_the_fix():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2)).eval()
    with pytest.raises(ValueError, match=r"`model` takes 1-channel images .*x.mean\(1, keepdim"):
        OptiCAM(model, preprocess=IDENTITY).explain(torch.rand(3, 16, 16))
    assert hook_count(model) == 0


def test_model_with_two_inputs_is_refused():
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: Tensor, mask: Tensor) -> Tensor:
            return self.conv(x * mask).mean(dim=(2, 3))

    with pytest.raises(TypeError, match=r"`model.forward` needs 2 inputs \(x, mask\).*wrap"):
        OptiCAM(TwoInputs().eval(), preprocess=IDENTITY).explain(torch.rand(3, 16, 16))


def test_meta_and_sparse_weights_are_refused():
    with torch.device("meta"):
        meta = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match=r"`model` has no weights: '0.weight' is on the 'meta'"
                                         r".*to_empty"):
        capture(meta, torch.rand(1, 3, 8, 8))
    sparse = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    sparse.register_buffer("table", torch.eye(3).to_sparse())
    with pytest.raises(ValueError, match=r"`model` tensor 'table' is torch.sparse_coo.*to_dense"):
        capture(sparse.eval(), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"`image` must be a dense tensor"):
        capture(nn.Conv2d(3, 4, 3), torch.rand(1, 3, 8, 8).to_sparse())


def test_errors_leave_no_hook_and_the_same_mode():
    model = seeded_resnet18().train()
    for layer in ("avgpool", "fc"):
        with pytest.raises(ValueError), model_guard(model):
            capture(model, torch.rand(1, 3, 32, 32), layer)
    assert model.training and hook_count(model) == 0


def test_dict_and_tuple_outputs_give_their_logits():
    class DictOut(nn.Module):
        def __init__(self, tupled: bool) -> None:
            super().__init__()
            self.tupled = tupled
            with torch.random.fork_rng():
                torch.manual_seed(0)
                self.conv = nn.Conv2d(3, 4, 3, padding=1)
                self.fc = nn.Linear(4, 3)

        def forward(self, x: Tensor) -> object:
            logits = self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))
            return (logits, {"aux": 1}) if self.tupled else {"logits": logits, "aux": None}

    x = torch.rand(1, 3, 16, 16)
    results = [OptiCAM(DictOut(t).eval(), preprocess=IDENTITY, max_iter=3).explain(x)
               for t in (False, True)]
    assert results[0].layer == "conv" and torch.equal(results[0].saliency, results[1].saliency)


@pytest.mark.parametrize("kind", ["sparse", "meta", "sparse batch"])
def test_sparse_or_meta_images_are_refused(kind):
    image = torch.rand(3, 16, 16)
    if kind == "meta":
        image = image.to("meta")
    elif kind == "sparse":
        image = image.to_sparse()
    else:
        image = image[None].expand(2, -1, -1, -1).to_sparse()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    with pytest.raises(ValueError, match=r"`image(\[0\])?` must be a dense tensor with data"):
        OptiCAM(model, preprocess=IDENTITY).explain(image)
