"""The embedded default model, the torchvision helper, ImageNet labels and sample photos."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from opticam_widgets.inputs.images import to_image_tensor
from opticam_widgets.inputs.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from opticam_widgets.model import zoo
from opticam_widgets.model.bundle import ModelBundle
from opticam_widgets.model.zoo import (
    SAMPLE_NAMES,
    CheckpointMismatchError,
    ModelDownloadError,
    from_torchvision,
    imagenet_labels,
    load_default_model,
    load_model,
    map_checkpoint,
    sample_image,
    sample_images,
)

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def probabilities(bundle: ModelBundle, image) -> torch.Tensor:
    """Softmax of the bundle's model on one image, through its own preprocessing spec."""
    x = bundle.preprocess.resize(to_image_tensor(image).unsqueeze(0))
    with torch.no_grad():
        return bundle.model(bundle.preprocess.normalize(x)).softmax(dim=1)[0]


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, torch.Tensor]:
    return torch.load(zoo.default_checkpoint_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def timm_state() -> dict[str, torch.Tensor]:
    return timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()


# --------------------------------------------------------------------------- default model


def test_default_model_offline_classifies_cat_and_espresso(no_network):
    zoo._default_model.cache_clear()  # build it here, under the network block
    bundle = load_default_model()
    assert no_network == []  # nothing even tried to connect
    assert isinstance(bundle, ModelBundle)
    assert bundle.name == "efficientnet_lite0"
    assert not bundle.model.training
    assert bundle.preprocess == Preprocess(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert len(bundle.labels) == 1000

    cat = probabilities(bundle, sample_image("chelsea"))
    top = int(cat.argmax())
    assert top in CAT_CLASSES
    assert float(cat[top]) > 0.5
    assert top == 285 and bundle.labels[top] == "Egyptian cat"  # measured: p = 0.79
    assert float(cat[list(CAT_CLASSES)].sum()) > 0.9

    coffee = probabilities(bundle, sample_image("coffee"))
    assert int(coffee.argmax()) == ESPRESSO
    assert float(coffee[ESPRESSO]) > 0.5  # measured: p = 0.88
    assert no_network == []


def test_default_model_is_cached_frozen_and_in_eval_mode():
    a, b = load_default_model(), load_default_model()
    assert a.model is b.model
    assert a.labels == b.labels and a.labels is not b.labels  # callers may edit their list
    assert not a.model.training
    assert not any(p.requires_grad for p in a.model.parameters())


def test_checkpoint_lines_up_with_timm(checkpoint, timm_state):
    assert len(checkpoint) == len(timm_state) == zoo.LITE0_TENSORS == 296
    mapped = map_checkpoint(checkpoint, timm_state)
    assert list(mapped) == list(timm_state)  # same keys, same order
    for (src_key, src), (key, ref) in zip(checkpoint.items(), timm_state.items()):
        assert mapped[key] is src
        assert src.shape == ref.shape, (src_key, key)
    # the loaded model really holds the checkpoint's numbers
    model = load_default_model().model
    state = model.state_dict()
    assert torch.equal(state["conv_stem.weight"], checkpoint["_conv_stem.weight"])
    assert torch.equal(state["classifier.bias"], checkpoint["_fc.bias"])


def test_shortened_checkpoint_gives_a_clear_error(checkpoint, timm_state):
    short = dict(list(checkpoint.items())[:-1])
    with pytest.raises(CheckpointMismatchError, match=r"holds 295 tensors .* expects 296"):
        map_checkpoint(short, timm_state)
    with pytest.raises(RuntimeError, match="cannot be matched by position"):
        zoo._build_default_model(checkpoint=short)


def test_reshaped_tensor_gives_a_clear_error(checkpoint, timm_state):
    tampered = dict(checkpoint)
    tampered["_fc.weight"] = torch.zeros(10, 1280)
    with pytest.raises(CheckpointMismatchError,
                       match=r"#294 '_fc.weight' \(10, 1280\) .* 'classifier.weight' "
                             r"\(1000, 1280\)"):
        map_checkpoint(tampered, timm_state)


def test_swapped_tensors_of_equal_shape_are_caught(checkpoint, timm_state):
    # bn weight and bias have the same shape: only their kind tells them apart
    items = list(checkpoint.items())
    items[1], items[2] = items[2], items[1]
    with pytest.raises(CheckpointMismatchError, match=r"#1 '_bn0.bias'"):
        map_checkpoint(dict(items), timm_state)


def test_checkpoint_that_is_not_a_state_dict(timm_state):
    with pytest.raises(CheckpointMismatchError, match="not a state dict"):
        map_checkpoint([torch.zeros(1)], timm_state)
    bad = {k: v for k, v in timm_state.items()}
    bad["conv_stem.weight"] = np.zeros((32, 3, 3, 3))
    with pytest.raises(CheckpointMismatchError, match="not a tensor"):
        map_checkpoint(bad, timm_state)


# --------------------------------------------------------------------------- Opti-CAM on it


@pytest.mark.slow
def test_opticam_on_chelsea_improves_the_score_and_lands_on_the_cat():
    from opticam_widgets.engine.explainer import OptiCAM

    cam = OptiCAM(load_default_model(), max_iter=30, lr=0.5)
    result = cam.explain(sample_image("chelsea"))
    assert result.target == (285,)  # top-1: Egyptian cat
    assert result.layer == "bn2"
    # measured: logit 9.94 (channel-mean map) -> 14.13 after 30 steps
    assert float(result.final_score[0]) > float(result.initial_score[0]) + 1.0
    s = result.numpy()[0]
    assert s.shape == (300, 451)

    # chelsea is 300×451; the cat fills the picture except a blurred strip on the right (x >=
    # 375) and a thin band on the left (x < 20), both background
    cat = np.zeros_like(s, dtype=bool)
    cat[:, 20:375] = True
    assert s[cat].sum() / s.sum() > 0.7  # measured 0.78-0.81 (lr 0.5 × 30, lr 0.2 × 50/100)
    # The optimized map is broad: part of its top 5% lands on the blurred strip at the right
    # (measured 0.77-0.80 inside the box over the settings above; 1.0 in an earlier build, an
    # artifact of float-level differences that this optimization amplifies)
    top = s >= np.quantile(s, 0.95)  # the 5% most salient pixels
    assert (top & cat).sum() / top.sum() > 0.6
    # Not the argmax: on a broad map it is one pixel of a near-tie, and it moves with the CPU's
    # float rounding (inside the cat with AVX-512, on the blurred strip at x = 419 with AVX2).
    # The map's centre of mass is stable: measured x = 247 with AVX2 (the cat spans 20..375).
    xs = np.arange(s.shape[1])
    centre = float((s.sum(0) * xs).sum() / s.sum())
    assert 20 + 50 < centre < 375 - 50


# --------------------------------------------------------------------------- labels


def test_imagenet_labels():
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[285] == "Egyptian cat" and labels[967] == "espresso"
    labels.clear()
    assert len(imagenet_labels()) == 1000


# --------------------------------------------------------------------------- samples


def test_sample_images_ship_with_scikit_image(no_network):
    images = sample_images()
    assert tuple(images) == SAMPLE_NAMES
    assert {"chelsea", "coffee", "astronaut", "rocket"} <= set(images)
    for name, img in images.items():
        assert isinstance(img, Image.Image) and img.mode == "RGB", name
        assert min(img.size) >= 100, name
    assert images["chelsea"].size == (451, 300)
    assert images["coffee"].size == (600, 400)
    assert no_network == []


def test_sample_image_names():
    assert sample_image("sample:coffee").size == sample_image("coffee").size
    grey = np.asarray(sample_image("camera"))
    assert grey.shape == (512, 512, 3) and (grey[..., 0] == grey[..., 2]).all()
    with pytest.raises(ValueError, match="chelsea, coffee, astronaut, rocket"):
        sample_image("lena")
    with pytest.raises(TypeError):
        sample_image(3)


# --------------------------------------------------------------------------- torchvision


def test_from_torchvision_random_weights_offline(no_network):
    bundle = from_torchvision("resnet18", weights=None)
    assert bundle.name == "torchvision:resnet18"
    assert not bundle.model.training
    assert bundle.preprocess == Preprocess(size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert bundle.labels == imagenet_labels()
    assert no_network == []


def test_from_torchvision_takes_preprocess_and_labels_from_the_weights(monkeypatch):
    import torchvision.models as tvm

    built = {}

    def fake_get_model(name, weights=None):  # no download: record the weights, random model
        built["weights"] = weights
        return tvm.squeezenet1_0(weights=None).train()

    monkeypatch.setattr(tvm, "get_model", fake_get_model)
    bundle = from_torchvision("inception_v3")  # its preset crops 299×299
    assert built["weights"] is tvm.Inception_V3_Weights.IMAGENET1K_V1
    assert bundle.preprocess.size == (299, 299)
    assert bundle.preprocess.mean == IMAGENET_MEAN
    assert bundle.labels == list(tvm.Inception_V3_Weights.IMAGENET1K_V1.meta["categories"])
    assert not bundle.model.training

    from_torchvision("resnet50", "IMAGENET1K_V1")
    assert built["weights"] is tvm.ResNet50_Weights.IMAGENET1K_V1
    from_torchvision("resnet50", tvm.ResNet50_Weights.IMAGENET1K_V2)
    assert built["weights"] is tvm.ResNet50_Weights.IMAGENET1K_V2


def test_from_torchvision_offline_download_error(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: must download
    with pytest.raises(ModelDownloadError, match=r"could not get .* weights=None"):
        from_torchvision("resnet18")
    assert issubclass(ModelDownloadError, RuntimeError)
    assert no_network  # it did try, and was refused


def test_from_torchvision_bad_names():
    import torchvision.models as tvm

    with pytest.raises(ValueError, match="did you mean resnet50"):
        from_torchvision("resnet5O")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        from_torchvision("resnet18", weights="IMAGENET1K_V9")
    with pytest.raises(ValueError, match="not weights of 'resnet18'"):
        from_torchvision("resnet18", weights=tvm.ResNet50_Weights.DEFAULT)
    with pytest.raises(TypeError, match="`weights`"):
        from_torchvision("resnet18", weights=3)
    with pytest.raises(TypeError, match="`name`"):
        from_torchvision(None)


def test_load_model_specs():
    assert load_model().model is load_default_model().model
    assert load_model("default").name == "efficientnet_lite0"
    assert load_model("torchvision:resnet18:none").name == "torchvision:resnet18"
    for bad in ("resnet18", "torchvision:", "timm:resnet18"):
        with pytest.raises(ValueError, match="unknown model"):
            load_model(bad)
    with pytest.raises(ValueError, match="not a torchvision classification, detection or seg"):
        load_model("torchvision:nope")
