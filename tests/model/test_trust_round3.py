"""Issue 27: the silent wrong maps and raw errors of the third trust round, each reproduced on a
random-weight model at its real width, then right or refused naming the fix; the model and the
session untouched on every path."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from opticam_widgets import OptiCAM, Preprocess
from opticam_widgets.engine.classes import class_index
from opticam_widgets.model.features import capture, model_guard
from opticam_widgets.model.layouts import detect_layout

NO_RESIZE = Preprocess(size=None)


def seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build().eval()


def timm_model(name: str, **kwargs) -> nn.Module:
    import timm

    return seeded(lambda: timm.create_model(name, pretrained=False, num_classes=5, **kwargs))


def small_cnn() -> nn.Module:
    return seeded(lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(8, 4)))


def state(model: nn.Module) -> tuple:
    """The user's model and session, as they must stay."""
    return ([(m.training, len(m._forward_hooks), len(m._forward_pre_hooks))
             for m in model.modules()],
            [(p.requires_grad, p.grad is None, p.detach().clone()) for p in model.parameters()],
            torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(),
            torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_num_threads())


def assert_untouched(before: tuple, after: tuple) -> None:
    assert before[0] == after[0], "modes or hooks changed"
    for (g0, n0, w0), (g1, n1, w1) in zip(before[1], after[1]):
        assert (g0, n0) == (g1, n1) and torch.equal(w0, w1), "a parameter changed"
    assert torch.equal(before[2], after[2]) and np.array_equal(before[3], after[3])
    assert before[4:] == after[4:]


X64 = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))


# ----------------------------------------------------------------- pools and one-channel tokens
def test_a_one_d_pool_output_is_not_a_token_grid():
    pooled = torch.zeros(1, 1024, 1)  # HF Swin's pooler on embed_dim 128: (B, 1024, 1)
    assert detect_layout(pooled, (224, 224)) is None
    assert detect_layout(torch.zeros(1, 1024, 8), (224, 224)) == "tokens"


def test_hf_swin_at_the_released_width_optimizes_its_last_stage():
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(image_size=64, embed_dim=128, depths=[1, 1, 1, 1], window_size=2,
                        num_heads=[2, 2, 2, 2], num_labels=5)
    model = seeded(lambda: SwinForImageClassification(config))
    result = OptiCAM(model, max_iter=3).explain(X64)
    assert result.layer == "swin.encoder.layers.3"  # was swin.pooler, a 32×32 one-channel grid
    assert result.weights.shape[1] == 1024 and result.low_res.shape[-2:] == (2, 2)
    assert len(set(result.scores[0].tolist())) > 1  # the score follows the mask


# ----------------------------------------------------------------- Hiera's unrolled order
def test_hiera_earlier_block_is_rerolled_and_matches_timm():
    model = timm_model("hiera_tiny_224")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    end = model.stage_ends[0]
    with model_guard(model):
        name, feats, _ = capture(model, x, f"blocks.{end}")
        with torch.no_grad():
            expected = model.forward_intermediates(x, indices=[0], intermediates_only=True)[0]
    assert name == f"blocks.{end}" and feats.shape == (1, 96, 56, 56)
    torch.testing.assert_close(feats, torch.relu(expected), atol=1e-5, rtol=1e-5)
    with model_guard(model), pytest.raises(ValueError, match=rf"choose the whole block "
                                                              rf"'blocks.{end}'"):
        capture(model, x, f"blocks.{end}.mlp")
    with model_guard(model), pytest.raises(ValueError, match="mask-unit"):
        capture(model, x, "unroll")


# ----------------------------------------------------------------- models refused up front
class NoGradForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = small_cnn()

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ChannelsLastInput(nn.Module):
    """A port whose forward expects (B, H, W, 3) images."""

    def __init__(self) -> None:
        super().__init__()
        self.net = small_cnn()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.permute(0, 3, 1, 2))


def scripted() -> nn.Module:
    return torch.jit.script(small_cnn())


def traced() -> nn.Module:
    return torch.jit.trace(small_cnn(), torch.rand(1, 3, 16, 16))


def exported() -> nn.Module:
    return torch.export.export(small_cnn(), (torch.rand(1, 3, 16, 16),)).module()


def quantized() -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(small_cnn(), {nn.Linear})


@pytest.mark.parametrize(("make", "match"), [
    (scripted, r"`model` is a `torch.jit.script` module .* explain the eager float"),
    (traced, r"`model` is a `torch.jit.trace` module .* explain the eager float"),
    (exported, r"`model` is a `torch.export\(...\).module\(\)` graph: .* eager"),
    (quantized, r"`model` is quantized .* no gradient flows"),
])
def test_scripted_traced_exported_and_quantized_models_are_refused_up_front(make, match):
    model = make()
    with pytest.raises(TypeError, match=match):
        OptiCAM(model)


@pytest.mark.parametrize(("make", "match"), [
    (NoGradForward, r"`model` returned logits with no gradient .* `torch.no_grad\(\)` / "
                    r"`torch.inference_mode\(\)`"),
    (ChannelsLastInput, r"`model` permutes its input: .*\(B, H, W, 3\).* "
                        r"`model\(x.permute\(0, 2, 3, 1\)\)`"),
])
@pytest.mark.parametrize("fold", [True, False])
def test_no_grad_forward_and_input_layout_named(make, match, fold):
    model = make()
    before = state(model)
    with pytest.raises(ValueError, match=match):
        OptiCAM(model, max_iter=2, preprocess=NO_RESIZE, fold_batchnorm=fold).explain(X64)
    assert_untouched(before, state(model))


class DetachedScore(nn.Module):
    """Logits that carry a graph but do not depend on the image (the gradient is zero)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = small_cnn()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.detach()) + 0.0 * x.mean()


def test_a_run_whose_score_never_moves_warns():
    model = DetachedScore()
    before = state(model)
    with pytest.warns(RuntimeWarning, match="does not depend on the mask"):
        result = OptiCAM(model, max_iter=3, preprocess=NO_RESIZE).explain(X64)
    assert torch.equal(result.scores[0], result.scores[0, :1].expand(4))
    assert_untouched(before, state(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a model that depends on the mask: no warning
        OptiCAM(small_cnn(), max_iter=3, preprocess=NO_RESIZE).explain(X64)


# ----------------------------------------------------------------- declared input sizes
@pytest.mark.parametrize(("make", "size"), [
    (lambda: timm_model("vit_small_patch14_dinov2", depth=1), (518, 518)),
    (lambda: timm_model("vit_tiny_patch16_384", depth=1), (384, 384)),
    (lambda: timm_model("swin_tiny_patch4_window7_224", img_size=384, window_size=12,
                        depths=(1, 1, 1, 1)), (384, 384)),
    (lambda: timm_model("resnet18"), (224, 224)),
    (lambda: timm_model("efficientnet_b3"), (288, 288)),
    (small_cnn, (224, 224)),
])
def test_the_models_declared_size_is_the_default(make, size):
    assert OptiCAM(make()).preprocess.size == size


def test_hf_and_torchvision_sizes_and_a_strict_model_runs_at_its_own_size():
    from torchvision.models import VisionTransformer
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=48, patch_size=16, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=64, num_labels=3)
    assert OptiCAM(seeded(lambda: ViTForImageClassification(config))).preprocess.size == (48, 48)
    tv = seeded(lambda: VisionTransformer(image_size=48, patch_size=16, num_layers=1,
                                          num_heads=2, hidden_dim=32, mlp_dim=64,
                                          num_classes=3))
    assert OptiCAM(tv).preprocess.size == (48, 48)
    vit = timm_model("vit_tiny_patch16_224", depth=1, img_size=48)
    result = OptiCAM(vit, max_iter=2).explain(X64)  # 64×64 photo, resized to 48×48
    assert result.layer == "blocks" and result.low_res.shape[-2:] == (3, 3)
    assert result.saliency.shape == (1, 64, 64)
    with pytest.raises(ValueError, match=r"`preprocess` resizes to 224×224 but the model only "
                                         r"takes 48×48"):
        OptiCAM(vit, preprocess={"size": (224, 224)})


# ----------------------------------------------------------------- class selection
def test_class_index_takes_an_index_or_a_label_and_refuses_floats_and_booleans():
    labels = ["tench", "tabby", "tiger cat"]
    assert class_index(1, labels) == 1 and class_index(np.int64(2), labels) == 2
    assert class_index("tabby", labels) == 1 and class_index("Tiger Cat", labels) == 2
    with pytest.raises(TypeError, match=r"`target` .* got float 2.7: round it yourself"):
        class_index(2.7, labels)
    for flag in (True, np.bool_(False)):
        with pytest.raises(TypeError, match="`target` must be a class index"):
            class_index(flag, labels)
    with pytest.raises(ValueError, match="did you mean 'tabby'"):
        class_index("taby", labels)
    with pytest.raises(ValueError, match="out of range"):
        class_index(3, labels)
    with pytest.raises(ValueError, match="has no labels"):
        class_index("tabby", None, 5)


def test_cli_target_by_label_name(capsys, tmp_path):
    from opticam_widgets.cli.main import main

    code = main(["explain", "sample:chelsea", "--target", "Egyptian cat", "--target", "281",
                 "--iters", "1", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("*.png"))[:2] == [
        "chelsea_281_tabby.png", "chelsea_285_egyptian_cat.png"]
    code = main(["explain", "sample:chelsea", "--target", "Egyptain cat", "--out",
                 str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert code == 2 and "--target 'Egyptain cat' is not one of" in err
    assert "did you mean 'Egyptian cat'" in err and not (tmp_path / "no").exists()


def test_a_hugging_face_image_processor_is_read_as_the_preprocessing():
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(size={"height": 48, "width": 40}, image_mean=[0.1, 0.2, 0.3],
                                  image_std=[0.4, 0.5, 0.6])
    cam = OptiCAM(small_cnn(), preprocess=processor)
    assert cam.preprocess == Preprocess(size=(48, 40), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    processor = ViTImageProcessor(size={"height": 48, "width": 48}, do_normalize=False)
    assert OptiCAM(small_cnn(), preprocess=processor).preprocess.std == (1.0, 1.0, 1.0)
    processor = ViTImageProcessor(size={"height": 48, "width": 48}, rescale_factor=1.0)
    with pytest.raises(ValueError, match="rescales pixels by 1.0, not 1/255"):
        OptiCAM(small_cnn(), preprocess=processor)


def test_class_score_maps_of_a_1x1_classifier_are_not_features():
    x = torch.rand(1, 3, 12, 12)

    def net(classes_conv: int, linear: int | None) -> nn.Module:
        layers = [nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, classes_conv, 1), nn.ReLU(),
                  nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        return seeded(lambda: nn.Sequential(*layers, *(
            [nn.Linear(classes_conv, linear)] if linear else [])))

    with torch.no_grad():
        assert capture(net(4, None), x)[0] == "1"  # NiN: the 1×1 conv to 4 classes skipped
        assert capture(net(4, 5), x)[0] == "3"  # 4 channels, 5 classes: a feature map
        only = seeded(lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(),
                                            nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        assert capture(only, x)[0] == "1"  # nothing else to take: the last map


def test_widget_select_class_takes_a_label_and_refuses_floats_and_booleans():
    from opticam_widgets import OptiCAMWidget

    widget = OptiCAMWidget(small_cnn(), labels=["tench", "tabby", "tiger cat", "lynx"],
                           preprocess={"size": (32, 32)})
    try:
        widget.set_images(torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3)),
                          run=False)
        widget.controls.iterations.value = 2
        widget.select_class("Tabby")
        widget.wait(timeout=300)
        assert widget.controls.class_select.value == 1
        assert widget.run(blocking=True).target == (1,)
        for bad, kind in ((2.7, TypeError), (True, TypeError), ("puma", ValueError)):
            with pytest.raises(kind, match="`target`"):
                widget.select_class(bad)
        assert widget.controls.class_select.value == 1  # nothing else was selected
    finally:
        widget.close()
