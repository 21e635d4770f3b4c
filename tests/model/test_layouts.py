"""Feature layouts: token grids and channels-last outputs of real timm / Hugging Face models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from opticam_widgets.model.layouts import (
    LayoutHints,
    check_reshape,
    detect_layout,
    grid_fits,
    layout_hints,
    to_spatial,
    token_grid,
)


def timm_model(name: str, **kwargs: object) -> nn.Module:
    import timm

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()


def hf_vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=64, num_labels=3)
        return ViTForImageClassification(config).eval()


def test_grid_fits_one_common_stride():
    assert grid_fits(7, 7, (224, 224)) and grid_fits(14, 10, (224, 160))
    assert grid_fits(2, 2, (33, 33))  # ceil rounding of a stride-32 network
    assert not grid_fits(197, 64, (224, 224))  # attention's (N, head_dim)
    assert not grid_fits(14, 14, (224, 112))  # wrong aspect
    assert not grid_fits(7, 768, (224, 224))  # (w, C) of a channels-last map
    assert not grid_fits(0, 3, (32, 32))


@pytest.mark.parametrize(
    ("n", "size", "hints", "expected"),
    [
        (197, (224, 224), LayoutHints(), (1, 14, 14)),  # class token
        (198, (224, 224), LayoutHints(prefix_tokens=2), (2, 14, 14)),  # DeiT distilled
        (21, (56, 56), LayoutHints(prefix_tokens=5), (5, 4, 4)),  # class + 4 registers
        (141, (224, 160), LayoutHints(), (1, 14, 10)),  # non-square input
        (17, (32, 32), LayoutHints(patch_size=(8, 8)), (1, 4, 4)),  # HF: p from patch size
        (49, (224, 224), LayoutHints(), (0, 7, 7)),  # Swin-style: no prefix
        (16, (32, 32), LayoutHints(prefix_tokens=1, patch_size=(4, 4)), (0, 4, 4)),  # hints off
    ],
)
def test_token_grid(n, size, hints, expected):
    assert token_grid(n, size, hints) == expected


def test_token_grid_refuses_what_tiles_nothing():
    assert token_grid(2, (224, 224), LayoutHints(prefix_tokens=1)) == (1, 1, 1)  # caller: 1 × 1
    assert token_grid(15, (224, 224)) is None  # 15 − (0..5) is no square
    assert token_grid(15, (224, 224), LayoutHints(prefix_tokens=6)) == (6, 3, 3)
    assert token_grid(16, (224, 224), LayoutHints(patch_size=(32, 32))) == (0, 4, 4)  # 7²>16


def test_layout_hints_from_real_models():
    vit = layout_hints(timm_model("vit_tiny_patch16_224", depth=1))
    assert vit == LayoutHints(prefix_tokens=1, patch_size=(16, 16), channels_last=False)
    assert layout_hints(timm_model("deit_tiny_distilled_patch16_224", depth=1)).prefix_tokens == 2
    swin = layout_hints(timm_model("swin_tiny_patch4_window7_224", embed_dim=24,
                                   depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)))
    assert swin.channels_last and swin.patch_size == (4, 4)
    assert layout_hints(hf_vit()).patch_size == (8, 8)
    wrapped = nn.Sequential(nn.Identity(), timm_model("vit_tiny_patch16_224", depth=1))
    assert layout_hints(wrapped).prefix_tokens == 1
    assert layout_hints(nn.Conv2d(3, 4, 3)) == LayoutHints()


def test_detect_layout_on_real_outputs():
    with torch.no_grad():
        x = torch.rand(2, 3, 224, 224)
        vit = timm_model("vit_tiny_patch16_224", depth=1)
        tokens = vit.forward_features(x)
        swin = timm_model("swin_tiny_patch4_window7_224", embed_dim=24, depths=(1, 1, 1, 1),
                          num_heads=(1, 1, 1, 1))
        nhwc = swin.forward_features(x)
        nchw = timm_model("convnext_atto").forward_features(x)
    assert detect_layout(tokens, (224, 224), layout_hints(vit)) == "tokens"
    assert detect_layout(nhwc, (224, 224), layout_hints(swin)) == "nhwc"
    assert detect_layout(nchw, (224, 224)) == "nchw"
    assert detect_layout(torch.zeros(2, 3, 197, 64), (224, 224)) is None  # q/k/v per head
    assert detect_layout(torch.zeros(2, 192), (224, 224)) is None
    # (8, 8, 8) on 64 × 64 fits both readings: the model's hint or a Linear decides
    square = torch.zeros(1, 8, 8, 8)
    assert detect_layout(square, (64, 64)) == "nchw"
    assert detect_layout(square, (64, 64), LayoutHints(channels_last=True)) == "nhwc"
    assert detect_layout(square, (64, 64), module=nn.Linear(8, 8)) == "nhwc"


def test_to_spatial_tokens_drop_prefix_and_keep_row_major_order():
    c = 4
    patches = torch.arange(2 * 3 * 5 * c, dtype=torch.float32).view(2, 3, 5, c)  # (B, h, w, C)
    prefix = torch.full((2, 2, c), -1.0)  # class + distillation tokens
    tokens = torch.cat([prefix, patches.flatten(1, 2)], dim=1)
    maps = to_spatial(tokens, None, (48, 80), LayoutHints(prefix_tokens=2))
    assert maps.shape == (2, c, 3, 5)
    assert torch.equal(maps, patches.permute(0, 3, 1, 2))
    assert torch.equal(to_spatial(tokens, "tokens", (48, 80), LayoutHints(prefix_tokens=2)), maps)


def test_to_spatial_channels_last_and_callable():
    x = torch.rand(2, 6, 6, 10)
    assert torch.equal(to_spatial(x, None, (48, 48)), x.permute(0, 3, 1, 2))
    assert torch.equal(to_spatial(x, "nhwc", (48, 48)), x.permute(0, 3, 1, 2))
    assert torch.equal(to_spatial(x, "nchw", (48, 48)), x)  # explicit wins over detection
    assert torch.equal(to_spatial(x, lambda t: t[..., :3].permute(0, 3, 1, 2), (48, 48)),
                       x[..., :3].permute(0, 3, 1, 2))


def test_to_spatial_refuses_with_the_fix():
    with pytest.raises(ValueError, match=r"'blocks.0.attn'.*not a spatial.*`reshape=`"):
        to_spatial(torch.zeros(1, 3, 197, 64), None, (224, 224), layer="blocks.0.attn")
    with pytest.raises(ValueError, match=r"`reshape` is 'tokens' but `target_layer` 'x' outputs"):
        to_spatial(torch.zeros(1, 8, 7, 7), "tokens", (224, 224), layer="x")
    with pytest.raises(ValueError, match="do not form a patch grid"):
        to_spatial(torch.zeros(1, 15, 8), "tokens", (224, 224))
    with pytest.raises(ValueError, match=r"`reshape` must return feature maps \(B, C, h, w\)"):
        to_spatial(torch.zeros(2, 5, 8), lambda t: t, (224, 224))
    with pytest.raises(ValueError, match=r"`reshape` must return.*B = 2"):
        to_spatial(torch.zeros(2, 5, 8), lambda t: t[:1, None], (224, 224))


def test_check_reshape():
    assert check_reshape(None) is None and check_reshape("Tokens") == "tokens"
    fn = torch.flatten
    assert check_reshape(fn) is fn
    with pytest.raises(ValueError, match="`reshape` must be one of"):
        check_reshape("hwc")
    with pytest.raises(TypeError, match="`reshape` must be a layout name"):
        check_reshape(3)
