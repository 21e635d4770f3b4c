"""Torchvision/timm pipelines become the package's own preprocessing (or are refused clearly).

The map must stay aligned with the photo: a resize-then-crop pipeline becomes a direct resize
of the whole photo to the crop size, so a square at known columns lights up at those columns.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision.transforms as T
import torchvision.transforms.v2 as v2
from PIL import Image
from timm.data import create_transform, resolve_data_config
from tinynets import ColourNet
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.inputs.images import to_image_tensor
from opticam_widgets.inputs.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocess,
    coerce_preprocess,
)

M, S = IMAGENET_MEAN, IMAGENET_STD
M255, S255 = [m * 255 for m in M], [s * 255 for s in S]


def timm_eval(crop_mode: str = "center") -> object:
    config = resolve_data_config({}, model=timm.create_model("resnet18"))
    return create_transform(**{**config, "crop_mode": crop_mode})


PIPELINES = {
    "v1 resize crop": (T.Compose([T.Resize(256), T.CenterCrop(224)]), (224, 224), (0,) * 3,
                       (1,) * 3),
    "v1 resize crop tensor normalize": (
        T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(M, S)]),
        (224, 224), M, S),
    "v1 pil uint8 to float": (
        T.Compose([T.Resize((240, 320)), T.PILToTensor(), T.ConvertImageDtype(torch.float32),
                   T.Normalize(M, S)]), (240, 320), M, S),
    "v1 crop only": (T.Compose([T.CenterCrop((100, 120)), T.ToTensor()]), (100, 120), (0,) * 3,
                     (1,) * 3),
    "v2 resize crop": (
        v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.ToImage(),
                    v2.ToDtype(torch.float32, scale=True), v2.Normalize(M, S)]), (224, 224), M, S),
    "v2 0-255 normalization": (
        v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32), v2.Normalize(M255, S255)]),
        None, M, S),
    "v2 0-255 no normalization": (v2.Compose([v2.Resize((64, 64)), v2.PILToTensor(),
                                              v2.ToDtype(torch.float32)]),
                                  (64, 64), (0,) * 3, (1 / 255,) * 3),
    "timm create_transform": (timm_eval(), (224, 224), M, S),
    "timm create_transform border": (timm_eval("border"), (224, 224), M, S),
    "timm prefetcher (0-255, no normalization)": (create_transform(224, use_prefetcher=True),
                                                  (224, 224), (0,) * 3, (1 / 255,) * 3),
    "timm ToTensor keeps 0-255": (T.Compose([T.CenterCrop(8), timm.data.ToTensor(),
                                             T.Normalize(M255, S255)]), (8, 8), M, S),
    "nn.Sequential": (nn.Sequential(T.CenterCrop(200), T.Normalize(M, S)), (200, 200), M, S),
    "single Normalize": (T.Normalize(M, S), None, M, S),
    "single-value Normalize": (T.Compose([T.ToTensor(), T.Normalize([0.5], [0.25])]), None,
                               (0.5,) * 3, (0.25,) * 3),
    "nested Compose": (T.Compose([T.Compose([T.Resize(300), T.CenterCrop(256)]), T.ToTensor()]),
                       (256, 256), (0,) * 3, (1,) * 3),
}


@pytest.mark.parametrize("key", list(PIPELINES))
def test_pipelines_become_size_mean_std(key):
    pipeline, size, mean, std = PIPELINES[key]
    spec = coerce_preprocess(pipeline)
    assert spec.transform is None and spec.size == size
    np.testing.assert_allclose(spec.mean, mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(spec.std, std, rtol=1e-6)


@pytest.mark.parametrize("pipeline", [
    T.Compose([T.Resize((64, 80)), T.ToTensor(), T.Normalize(M, S)]),
    T.Compose([T.Resize((64, 80)), T.PILToTensor(), T.ConvertImageDtype(torch.float32),
               T.Normalize(M, S)]),
    v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32), v2.Normalize(M255, S255)]),
    v2.Compose([v2.CenterCrop((64, 80)), v2.PILToTensor(), v2.ToDtype(torch.float32)]),
    T.Compose([timm.data.ToTensor(), T.Normalize(M255, S255)]),
], ids=["v1", "v1 uint8", "v2 0-255", "v2 no normalization", "timm ToTensor"])
def test_converted_spec_feeds_the_model_what_the_pipeline_does(pipeline):
    """On a photo already at the pipeline's size, the model's input is the pipeline's output."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    expected = pipeline(photo).float()
    spec = coerce_preprocess(pipeline)
    ours = spec.normalize(spec.resize(to_image_tensor(photo)[None]))[0]
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-4)


def test_square_lights_up_at_its_own_columns():
    """The issue's case: a square at columns 250-299 of a 300×400 photo, explained through
    Resize(256) + CenterCrop(224) + ToTensor + Normalize, lights up at columns 250-299."""
    photo = np.zeros((300, 400, 3), np.uint8)
    photo[100:150, 250:300, 0] = 255  # a red square; ColourNet's class 0 is "red"
    pipeline = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(M, S)])
    cam = OptiCAM(ColourNet().eval(), preprocess=pipeline, max_iter=5)
    result = cam.explain(Image.fromarray(photo), target=0)
    sal = result.saliency[0]
    assert sal.shape == (300, 400)
    cols = torch.nonzero(sal.max(dim=0).values > 0.5)[:, 0]
    rows = torch.nonzero(sal.max(dim=1).values > 0.5)[:, 0]
    assert 246 <= int(cols.min()) <= 254 and 295 <= int(cols.max()) <= 303, cols
    assert 96 <= int(rows.min()) <= 104 and 145 <= int(rows.max()) <= 153, rows
    assert float(sal[:, :240].max()) < 0.1 and float(sal[:, 310:].max()) < 0.1


@pytest.mark.parametrize("pipeline, pattern", [
    (T.Compose([T.Resize(256), T.ToTensor()]), "keeping the aspect ratio.*Resize\\(\\(h, w\\)\\)"),
    (T.Compose([T.RandomResizedCrop(224), T.ToTensor()]), "random transform RandomResizedCrop"),
    (create_transform(224, is_training=True), "random transform"),
    (T.Compose([T.ColorJitter(0.4), T.ToTensor()]), "random transform ColorJitter"),
    (v2.Compose([v2.RandomHorizontalFlip(), v2.ToImage()]), "random transform"),
    (T.Compose([T.Lambda(lambda x: x), T.ToTensor()]), "step Lambda is not supported"),
    (T.Compose([T.Grayscale(3), T.ToTensor()]), "step Grayscale is not supported"),
    (T.Compose([T.Pad(4), T.ToTensor()]), "step Pad is not supported"),
    (T.Compose([T.ToTensor(), lambda x: x]), "step 1 .* is not a torchvision transform"),
    (T.Compose([T.Normalize(M, S), T.Normalize(M, S)]), "two Normalize"),
])
def test_other_pipelines_are_refused_with_the_fix(pipeline, pattern):
    with pytest.raises(ValueError, match=f"`preprocess`.*{pattern}"):
        coerce_preprocess(pipeline)
    with pytest.raises(ValueError, match="`preprocess`"):
        OptiCAM(ColourNet().eval(), preprocess=pipeline)


def test_a_callable_that_resizes_or_crops_is_refused_when_it_runs():
    crop = Preprocess(size=(32, 32), transform=lambda x: x[..., 4:-4, 4:-4])
    cam = OptiCAM(ColourNet().eval(), preprocess=crop, max_iter=2)
    with pytest.raises(ValueError, match=r"`preprocess` transform changed the input's shape"):
        cam.explain(torch.rand(3, 32, 32))
    odd = Preprocess(size=(32, 32), transform=lambda x: {"pixel_values": x})
    with pytest.raises(TypeError, match="`preprocess` transform must return a tensor"):
        OptiCAM(ColourNet().eval(), preprocess=odd, max_iter=2).explain(torch.rand(3, 32, 32))
    ok = Preprocess(size=(32, 32), transform=lambda x: x * 2 - 1)  # a normalization: fine
    assert OptiCAM(ColourNet().eval(), preprocess=ok, max_iter=2).explain(
        torch.rand(3, 32, 32)).saliency.shape == (1, 32, 32)


def test_torchvision_presets_still_convert():
    from torchvision.models import ResNet50_Weights

    for spec in (ResNet50_Weights.DEFAULT, ResNet50_Weights.DEFAULT.transforms()):
        p = coerce_preprocess(spec)
        assert p.size == (224, 224) and p.mean == M and p.std == S


def test_a_pipeline_inside_preprocess_transform_is_refused_with_the_fix():
    pipeline = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(M, S)])
    with pytest.raises(ValueError, match=r"`transform` is a torchvision/timm pipeline.*"
                                         r"pass it as `preprocess` itself"):
        Preprocess(size=(224, 224), transform=pipeline)
    norm = Preprocess(size=None, transform=T.Normalize(M, S))  # a normalization is fine
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(norm.normalize(x), coerce_preprocess(T.Normalize(M, S)).normalize(x))
