"""The architectures of the model-zoo test: shallow random-weight timm, torchvision and Hugging
Face classifiers at their real widths, and the ground truth of each one's last feature map.

Each entry builds a model (seeded, without touching the global RNG) and says how to read the
reference map: ``"timm"`` (``forward_intermediates``, the last index, NCHW), ``"hf"``
(``output_hidden_states``: ``reshaped_hidden_states[-1]`` or the last hidden state, tokens
reshaped), or the name of the torchvision layer whose output (hooked) is the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

CLASSES = 7


@dataclass(frozen=True)
class Arch:
    """One architecture: how to build it, the input size, and where its ground truth is."""

    name: str
    build: Callable[[], nn.Module]
    reference: str  # "timm", "hf" or a torchvision layer name
    size: tuple[int, int] = (64, 64)
    kwargs: dict[str, Any] = field(default_factory=dict)
    local: bool = True  # its cells depend most on their own place (random weights)


def seeded(build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build().eval()


def timm_arch(name: str, size: int = 64, local: bool = True, via: str | None = None,
              **kwargs: Any) -> Arch:
    """``via``: a timm class (``"focalnet.FocalNet"``) built with ``kwargs`` instead of the
    registered model, where the registry will not take a shallower depth."""
    def build() -> nn.Module:
        import importlib

        import timm

        if via is None:
            return timm.create_model(name, pretrained=False, num_classes=CLASSES, **kwargs)
        module, cls = via.rsplit(".", 1)
        return getattr(importlib.import_module(f"timm.models.{module}"), cls)(
            num_classes=CLASSES, **kwargs)

    return Arch(f"timm:{name}", lambda: seeded(build), "timm", (size, size), kwargs, local)


def tv_arch(name: str, layer: str, size: int = 64, shallow: bool = False, **kwargs: Any) -> Arch:
    """``shallow``: the model's class at its real widths with one block per stage
    (:func:`tv_shallow`; torchvision's builder functions fix the depth)."""
    def build() -> nn.Module:
        import torchvision.models as tvm

        if not shallow:
            return tvm.get_model(name, weights=None, num_classes=CLASSES, **kwargs)
        cls, args = tv_shallow(name)
        return cls(num_classes=CLASSES, **args, **kwargs)

    return Arch(f"torchvision:{name}", lambda: seeded(build), layer, (size, size), kwargs)


def hf_arch(kind: str, size: int = 64, **config: Any) -> Arch:
    def build() -> nn.Module:
        import transformers

        cfg = getattr(transformers, f"{kind}Config")(num_labels=CLASSES, **config)
        return getattr(transformers, f"{kind}ForImageClassification")(cfg)

    return Arch(f"hf:{kind}", lambda: seeded(build), "hf", (size, size), config)


VIT = {"depth": 2, "img_size": 64}
SWIN = {"img_size": 64, "window_size": 2, "depths": (1, 1, 1, 1)}

TIMM = [
    timm_arch("resnet18"), timm_arch("resnet50d", layers=(1, 1, 1, 1)),
    timm_arch("tf_efficientnet_lite0"),
    timm_arch("mobilenetv2_050"), timm_arch("mobilenetv3_small_050"),
    timm_arch("mobilenetv4_conv_small"), timm_arch("ghostnet_050"), timm_arch("rexnet_100"),
    timm_arch("regnetx_002"),
    timm_arch("convnext_atto"), timm_arch("convnextv2_atto"),
    timm_arch("repvgg_a0"),
    timm_arch("edgenext_xx_small"), timm_arch("poolformer_s12"),
    timm_arch("mobilevit_xxs"), timm_arch("mobilevitv2_050"),
    timm_arch("repvit_m0_9", depth=(1, 1, 1, 1)),
    timm_arch("efficientvit_b0"), timm_arch("inception_next_atto"),
    timm_arch("vit_tiny_patch16_224", **VIT),
    timm_arch("vit_tiny_patch16_384", 96, depth=2, img_size=96),
    timm_arch("deit_tiny_distilled_patch16_224", **VIT),
    timm_arch("vit_small_patch14_reg4_dinov2", 56, depth=2, img_size=56),
    timm_arch("eva02_tiny_patch14_224", 56, depth=2, img_size=56),
    timm_arch("vit_tiny_patch16_224", **VIT, patch_size=(16, 8)),
    timm_arch("flexivit_small", 64, depth=2, img_size=64),
    timm_arch("beit_base_patch16_224", 64, depth=1, img_size=64, embed_dim=96, num_heads=2),
    timm_arch("cait_xxs24_224", 64, depth=2, img_size=64),
    timm_arch("xcit_nano_12_p16_224", 64, depth=2, img_size=64),
    timm_arch("convit_tiny", 64, depth=2, img_size=64),
    timm_arch("mixer_s16_224", 64, img_size=64),
    timm_arch("resmlp_12_224", 64, img_size=64),
    timm_arch("swin_tiny_patch4_window7_224", **SWIN),
    timm_arch("swinv2_cr_tiny_ns_224", 64, img_size=64, window_size=2, depths=(1, 1, 1, 1)),
    timm_arch("volo_d1_224", 64, img_size=64, via="volo.VOLO", layers=(1, 1, 1, 1),
              embed_dims=(192, 384, 384, 384), num_heads=(6, 12, 12, 12)),
    timm_arch("tnt_s_patch16_224", 64, depth=2, img_size=64),
    timm_arch("hiera_tiny_224", 64, img_size=(64, 64), stages=(1, 1, 1, 1)),
    timm_arch("pvt_v2_b0"), timm_arch("davit_tiny", depths=(1, 1, 1, 1)),
    timm_arch("focalnet_tiny_srf", via="focalnet.FocalNet", embed_dim=96, depths=(1, 1, 1, 1)),
    timm_arch("tiny_vit_5m_224", depths=(1, 1, 1, 1)),
    # LeViT's last 2×2 stage attends globally with learned biases: random weights favour the
    # top-left cell everywhere, so only its reference map is checked
    timm_arch("levit_128s", 128, local=False, img_size=128, depth=(1, 1, 1)),
    timm_arch("coat_lite_tiny", 128, img_size=128, serial_depths=(1, 1, 1, 1)),
]

TORCHVISION = [
    tv_arch("resnet18", "layer4"),
    tv_arch("vgg11", "features.19"), tv_arch("alexnet", "features.11", 96),
    tv_arch("squeezenet1_1", "features"),
    tv_arch("mobilenet_v2", "features", shallow=True), tv_arch("mobilenet_v3_small", "features"),
    tv_arch("shufflenet_v2_x0_5", "conv5", shallow=True), tv_arch("mnasnet0_5", "layers"),
    tv_arch("efficientnet_b0", "features", shallow=True),
    tv_arch("regnet_y_400mf", "trunk_output"),
    tv_arch("convnext_tiny", "features", shallow=True),
    tv_arch("googlenet", "inception5b", 64, aux_logits=False, init_weights=False),
    tv_arch("swin_t", "features", shallow=True),
    tv_arch("vit_b_16", "encoder.layers", 64, image_size=64),
]

def tv_shallow(name: str) -> tuple[type, dict[str, Any]]:
    """A torchvision model's class and arguments at its real widths, one block per stage."""
    from torchvision.models import convnext, efficientnet, mobilenetv2, shufflenetv2
    from torchvision.models import swin_transformer as swin

    if name == "mobilenet_v2":  # (expansion, channels, blocks, stride) of MobileNetV2
        rows = [[1, 16, 1, 1], [6, 24, 1, 2], [6, 32, 1, 2], [6, 64, 1, 2], [6, 96, 1, 1],
                [6, 160, 1, 2], [6, 320, 1, 1]]
        return mobilenetv2.MobileNetV2, {"inverted_residual_setting": rows}
    if name == "shufflenet_v2_x0_5":
        return shufflenetv2.ShuffleNetV2, {"stages_repeats": [1, 1, 1],
                                           "stages_out_channels": [24, 48, 96, 192, 1024]}
    if name == "efficientnet_b0":  # B0's stages, one layer each
        stages = [(1, 3, 1, 32, 16), (6, 3, 2, 16, 24), (6, 5, 2, 24, 40), (6, 3, 2, 40, 80),
                  (6, 5, 1, 80, 112), (6, 5, 2, 112, 192), (6, 3, 1, 192, 320)]
        return efficientnet.EfficientNet, {"inverted_residual_setting": [
            efficientnet.MBConvConfig(*row, num_layers=1) for row in stages], "dropout": 0.2}
    if name == "convnext_tiny":
        widths = (96, 192, 384, 768, None)
        return convnext.ConvNeXt, {"block_setting": [
            convnext.CNBlockConfig(widths[i], widths[i + 1], 1) for i in range(4)]}
    if name == "swin_t":
        return swin.SwinTransformer, {"patch_size": [4, 4], "embed_dim": 96,
                                      "depths": [1, 1, 1, 1], "num_heads": [3, 6, 12, 24],
                                      "window_size": [7, 7]}
    raise KeyError(name)


HF = [
    hf_arch("ViT", 32, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64),
    hf_arch("Dinov2", 28, image_size=28, patch_size=14, hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2),
    hf_arch("Swin", 64, image_size=64, embed_dim=128, depths=[1, 1, 1, 1], window_size=2,
            num_heads=[2, 2, 2, 2]),
    hf_arch("Swinv2", 64, image_size=64, embed_dim=128, depths=[1, 1, 1, 1], window_size=2,
            num_heads=[2, 2, 2, 2]),
    hf_arch("FocalNet", 64, image_size=64, embed_dim=128, depths=[1, 1, 1, 1]),
    hf_arch("ConvNext", 64, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1]),
    hf_arch("ResNet", 64, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1]),
    hf_arch("Hiera", 64, image_size=[64, 64], embed_dim=32, depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1]),
    hf_arch("Beit", 32, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64, use_mean_pooling=True),
    hf_arch("DeiT", 32, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64),
]

ARCHS = TIMM + TORCHVISION + HF


def hf_reference(model: nn.Module, x: Tensor) -> Tensor:
    """The last hidden state of a Hugging Face classifier as (B, C, h, w)."""
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
    reshaped = getattr(out, "reshaped_hidden_states", None)
    if reshaped:
        last = reshaped[-1]
        return last.permute(0, 3, 1, 2) if "Hiera" in type(model).__name__ else last
    last = out.hidden_states[-1]
    if last.ndim == 4:
        return last
    patch = model.config.patch_size
    h, w = x.shape[-2] // patch, x.shape[-1] // patch
    return last[:, -h * w:].reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2)


def timm_reference(model: nn.Module, x: Tensor) -> list[Tensor]:
    """timm's own maps, (B, C, h, w): the last of ``forward_intermediates`` and, for models
    whose ``forward_features`` is a 4-D map, that map (channels-last ones permuted)."""
    with torch.no_grad():
        maps = [model.forward_intermediates(x, indices=1, intermediates_only=True)[-1]]
        feats = model.forward_features(x)
    if isinstance(feats, Tensor) and feats.ndim == 4:
        nhwc = str(getattr(model, "output_fmt", "NCHW")).upper().endswith("NHWC")
        maps.append(feats.permute(0, 3, 1, 2) if nhwc else feats)
    return maps


def hooked_reference(model: nn.Module, x: Tensor, layer: str) -> Tensor:
    """The output of a named layer, (B, C, h, w) (torchvision Swin's (B, h, w, C) permuted)."""
    seen: list[Tensor] = []
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda _m, _i, out: seen.append(out.detach().clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    out = seen[-1]
    if out.ndim == 3:  # torchvision ViT: class token first
        h, w = (s // 16 for s in x.shape[-2:])
        out = out[:, 1:].reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2)
    elif out.shape[-1] > out.shape[1] and out.shape[1] == out.shape[2]:
        out = out.permute(0, 3, 1, 2)  # swin_t features: (B, h, w, C)
    return out


def references(arch: Arch, model: nn.Module, x: Tensor) -> list[Tensor]:
    """The library's own feature maps of ``model`` on ``x`` (B, C, h, w), any one of which the
    captured map must equal."""
    if arch.reference == "timm":
        return timm_reference(model, x)
    if arch.reference == "hf":
        return [hf_reference(model, x)]
    return [hooked_reference(model, x, arch.reference)]
