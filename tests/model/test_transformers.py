"""Vision transformers and channels-last models: the right layer, the right layout, real maps."""

from __future__ import annotations

import pytest
import tiny_transformers as tt
import torch
from torch import Tensor, nn

from opticam_widgets import OptiCAM, Preprocess
from opticam_widgets.model.features import capture, model_guard

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

IDENTITY = Preprocess(size=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def timm_model(name: str, **kwargs: object) -> nn.Module:
    import timm

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()


# ----------------------------------------------------------------- trained tiny models
@pytest.fixture(scope="module")
def shapes_data() -> tuple[Tensor, Tensor, Tensor, Tensor, list[tt.Box]]:
    x, y, _ = tt.shapes(400, seed=0)
    x_test, y_test, boxes = tt.shapes(32, seed=1)
    return x, y, x_test, y_test, boxes


# builder, epochs, learning rate, recipe: the same data and loop for all three. The ViT is trained
# as vision transformers are (DeiT: CutMix, label smoothing 0.1); with plain cross-entropy its
# logit sits at its LayerNorm-bounded ceiling whatever part of the image is kept, so no
# perturbation method can localize its evidence (see tiny_transformers' docstring). CutMix
# converges slower: 20 epochs (at 10, one seed of 7 stays at 89 % accuracy).
TRAINING = {
    "cnn": (tt.small_cnn, 6, 3e-3, {}),
    "vit": (tt.tiny_vit, 20, 2e-3, {"cutmix": True, "label_smoothing": 0.1}),
    "channels_last": (tt.channels_last_net, 6, 3e-3, {}),
}


@pytest.fixture(scope="module")
def pointing(shapes_data) -> dict[str, tuple[nn.Module, str, float, float]]:
    """Per model: the trained model, the auto-detected layer, and the pointing game of
    Opti-CAM's starting map (iteration 0, uniform channel weights) and of its optimized map."""
    x, y, x_test, y_test, boxes = shapes_data
    out = {}
    for name, (build, epochs, lr, recipe) in TRAINING.items():
        model = tt.train(build(), x, y, epochs, lr, **recipe)
        assert tt.accuracy(model, x_test, y_test) >= 0.9, name
        cam = OptiCAM(model, preprocess=IDENTITY, max_iter=50, lr=0.1)
        result = cam.explain(x_test, target=y_test.tolist())
        start = tt.pointing_game(cam.channel_mean(x_test), boxes)
        out[name] = (model, result.layer, start, tt.pointing_game(result.saliency, boxes))
    return out


@pytest.mark.slow  # trains three tiny models (seconds each on an idle machine)
@pytest.mark.parametrize(("name", "layer"), [("vit", "blocks"), ("channels_last", "stages")])
def test_pointing_game_of_the_maps_features(pointing, name, layer):
    """Opti-CAM's starting map is the mean of the captured feature maps: it points at the object
    for a ViT and a channels-last model as for a CNN (the misread layouts gave chance level)."""
    _, cnn_layer, cnn_start, _ = pointing["cnn"]
    _, found, start, _ = pointing[name]
    assert cnn_layer == "7" and cnn_start >= 0.9
    assert found == layer  # the last block's output, not a tensor inside attention or a norm
    assert start >= 0.9 and start >= cnn_start - 0.1, (name, start, cnn_start)


@pytest.mark.slow  # trains three tiny models (seconds each on an idle machine)
def test_pointing_game_of_optimized_maps(pointing):
    cnn, channels_last, vit = (pointing[k][3] for k in ("cnn", "channels_last", "vit"))
    assert cnn >= 0.8
    assert channels_last >= 0.8 and channels_last >= cnn - 0.15
    assert vit >= 0.8 and vit >= cnn - 0.1, (vit, cnn)


def test_vit_map_matches_a_hand_computation():
    """The engine's ViT map, by hand: the class and 2 register tokens dropped, patch tokens laid
    out row-major on the 6 × 6 grid, and patch (i, j) made of pixels [8i:8i+8, 8j:8j+8]; then
    ``minmax(upsample(mean_k relu(A_k)))``."""
    model = tt.tiny_vit().eval()
    x = torch.rand(2, 3, tt.SIZE, tt.SIZE)
    with torch.no_grad():
        tokens = model.blocks(model.norm_pre(model._pos_embed(model.patch_embed(x))))
    grid = torch.relu(tokens[:, 3:]).reshape(2, 6, 6, -1).permute(0, 3, 1, 2)
    up = nn.functional.interpolate(grid.mean(1, keepdim=True), size=(tt.SIZE, tt.SIZE),
                                   mode="bilinear", align_corners=False)[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    with model_guard(model):
        name, feats, _ = capture(model, x)
    assert name == "blocks"
    torch.testing.assert_close(feats, grid)
    cam = OptiCAM(model, preprocess=IDENTITY, max_iter=1)
    torch.testing.assert_close(cam.channel_mean(x), (up - lo) / (hi - lo), atol=1e-5, rtol=0)

    pixels = x[:1].clone().requires_grad_(True)
    embedded = model.patch_embed(pixels)[0]  # (36, C), row-major
    for i, j in [(0, 0), (0, 5), (2, 3), (5, 1)]:
        (grad,) = torch.autograd.grad(embedded[6 * i + j].sum(), pixels, retain_graph=True)
        expected = torch.zeros(tt.SIZE, tt.SIZE, dtype=torch.bool)
        expected[8 * i:8 * i + 8, 8 * j:8 * j + 8] = True
        assert torch.equal(grad[0].abs().sum(0) > 0, expected), (i, j)


@pytest.mark.slow  # trains three tiny models (seconds each on an idle machine)
def test_reading_channels_last_as_nchw_is_what_went_wrong(pointing, shapes_data):
    """The control: the same layer read the old way ((B, H, W, C) as (B, C, H, W)) misses."""
    _, _, x_test, _, boxes = shapes_data
    model = pointing["channels_last"][0]
    with model_guard(model):
        _, right, _ = capture(model, x_test, "stages")
        _, wrong, _ = capture(model, x_test, "stages", reshape="nchw")
    assert wrong.shape[-2:] == (12, 32)  # the old code's 12 × 32 "map"

    def start_map(feats: Tensor) -> Tensor:
        return torch.nn.functional.interpolate(feats.mean(1, keepdim=True), size=(48, 48),
                                               mode="bilinear")[:, 0]

    assert tt.pointing_game(start_map(right), boxes) >= 0.9
    assert tt.pointing_game(start_map(wrong), boxes) <= 0.5


# ----------------------------------------------------------------- timm architectures
@pytest.mark.parametrize(
    ("arch", "kwargs", "layer", "grid"),
    [
        ("vit_tiny_patch16_224", {"depth": 2}, "blocks", (14, 14)),
        ("deit_tiny_distilled_patch16_224", {"depth": 2}, "blocks", (14, 14)),
        ("vit_small_patch14_reg4_dinov2", {"depth": 1, "img_size": 112}, "blocks", (8, 8)),
        ("eva02_tiny_patch14_224", {"depth": 2}, "blocks.1", (16, 16)),
        ("swin_tiny_patch4_window7_224",
         {"embed_dim": 24, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}, "layers", (7, 7)),
        ("convnext_atto", {}, "stages", (7, 7)),
    ],
)
def test_timm_layer_and_maps_match_timms_own_intermediates(arch, kwargs, layer, grid):
    model = timm_model(arch, **kwargs)
    size = 112 if "img_size" in kwargs else 224
    x = torch.randn(2, 3, size, size)
    with model_guard(model):
        name, feats, logits = capture(model, x)
        with torch.no_grad():
            reference = model.forward_intermediates(x, indices=1, intermediates_only=True)[-1]
            expected_logits = model(x)
    assert name == layer and tuple(feats.shape[-2:]) == grid
    torch.testing.assert_close(feats, torch.relu(reference))  # prefix tokens dropped, NCHW
    torch.testing.assert_close(logits, expected_logits)
    assert hook_count(model) == 0


def test_timm_vit_explained_end_to_end():
    model = timm_model("vit_tiny_patch16_224", depth=2)
    result = OptiCAM(model, max_iter=3).explain(torch.rand(3, 224, 224))
    assert result.layer == "blocks" and result.weights.shape == (1, 192)
    # max 1 to float rounding: the min-max is read on a sub-grid and applied as a reciprocal
    assert result.saliency.shape == (1, 224, 224)
    assert float(result.saliency.max()) == pytest.approx(1.0, abs=1e-6)
    assert hook_count(model) == 0


def test_vit_attention_internals_are_never_picked_but_can_be_named_with_reshape():
    model = timm_model("vit_tiny_patch16_224", depth=1)
    x = torch.randn(1, 3, 224, 224)
    with model_guard(model):
        assert capture(model, x)[0] == "blocks"
        with pytest.raises(ValueError, match=r"'blocks.0.attn.k_norm' outputs \(1, 3, 197, 64\)"):
            capture(model, x, "blocks.0.attn.k_norm")  # timm's q/k norms are Identity here
        name, feats, _ = capture(model, x, "blocks.0.norm1", reshape="tokens")
    assert name == "blocks.0.norm1" and feats.shape == (1, 192, 14, 14)


def test_swin_window_tokens_are_refused():
    model = timm_model("swin_tiny_patch4_window7_224", embed_dim=24, depths=(1, 1, 1, 1),
                       num_heads=(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"'layers.0.blocks.0.attn' outputs 64 rows for a "
                                         r"batch of 1.*whole block"):
        capture(model, torch.randn(1, 3, 224, 224), "layers.0.blocks.0.attn")
    assert hook_count(model) == 0


def test_callable_reshape():
    model = timm_model("vit_tiny_patch16_224", depth=1)
    x = torch.randn(1, 3, 224, 224)

    def grid(tokens: Tensor) -> Tensor:
        return tokens[:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)

    with model_guard(model):
        by_name = capture(model, x, "blocks.0", reshape="tokens")[1]
        by_callable = capture(model, x, "blocks.0", reshape=grid)[1]
        with pytest.raises(ValueError, match="a callable `reshape` needs a `target_layer`"):
            capture(model, x, reshape=grid)
        with pytest.raises(ValueError, match=r"`reshape` must return feature maps"):
            capture(model, x, "blocks.0", reshape=lambda t: t)
    assert torch.equal(by_name, by_callable)


# ----------------------------------------------------------------- Hugging Face transformers
def hf_model(kind: str) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        if kind == "vit":
            config = transformers.ViTConfig(
                image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=2, intermediate_size=64, num_labels=3)
            return transformers.ViTForImageClassification(config).eval()
        config = transformers.SwinConfig(image_size=32, patch_size=4, embed_dim=16,
                                         depths=[1, 1], num_heads=[2, 2], window_size=4,
                                         num_labels=3)
        return transformers.SwinForImageClassification(config).eval()


@pytest.mark.parametrize(("kind", "block"), [("vit", "ViTLayer"), ("swin", "SwinStage")])
def test_hugging_face_classifiers(kind, block):
    """A ``ModelOutput``'s ``.logits`` are read; the last layer's hidden states become maps."""
    model = hf_model(kind)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
    hooks = hook_count(model)  # transformers adds its own hooks for `output_hidden_states`
    with model_guard(model):
        name, feats, logits = capture(model, x)
    assert type(dict(model.named_modules())[name]).__name__ == block
    if kind == "vit":  # class token dropped, 4 × 4 patches
        expected = out.hidden_states[-1][:, 1:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2)
    else:
        expected = out.reshaped_hidden_states[-1]
    torch.testing.assert_close(feats, torch.relu(expected))
    torch.testing.assert_close(logits, out.logits)
    result = OptiCAM(model, preprocess=Preprocess(size=(32, 32)), max_iter=3).explain(x[0])
    assert result.layer == name and result.saliency.shape == (1, 32, 32)
    assert result.final_score[0] >= result.initial_score[0]
    assert hook_count(model) == hooks


def test_explainer_reshape_argument():
    model = timm_model("vit_tiny_patch16_224", depth=2)
    cam = OptiCAM(model, target_layer="blocks.0", reshape="tokens", max_iter=2)
    result = cam.explain(torch.rand(3, 224, 224))
    assert result.layer == "blocks.0" and result.weights.shape == (1, 192)
    cam = OptiCAM(model, target_layer="blocks.0", max_iter=2,
                  reshape=lambda t: t[:, 1:].reshape(len(t), 14, 14, -1).permute(0, 3, 1, 2))
    assert cam.explain(torch.rand(3, 224, 224)).weights.shape == (1, 192)
    with pytest.raises(ValueError, match="`reshape` must be one of"):
        OptiCAM(model, reshape="hwc")
    with pytest.raises(ValueError, match="a callable `reshape` needs a `target_layer`"):
        OptiCAM(model, reshape=lambda t: t).explain(torch.rand(3, 224, 224))
    assert hook_count(model) == 0


def test_torchcam_baselines_refuse_token_layers():
    """Grad-CAM (torchcam) reads a layer as (B, C, h, w): on ViT tokens it gave 2 maps for one
    image; now it says why, while the channel-mean baseline reads the tokens right."""
    pytest.importorskip("torchcam")
    from opticam_widgets.evaluation.baselines import baseline_map

    model = timm_model("vit_tiny_patch16_224", depth=1)
    image = torch.rand(3, 224, 224)
    assert baseline_map("channel-mean", model, image).shape == (1, 224, 224)
    with pytest.raises(ValueError, match=r"`method` 'gradcam' \(torchcam\).*'blocks'.*'tokens'"):
        baseline_map("gradcam", model, image)
    assert hook_count(model) == 0
