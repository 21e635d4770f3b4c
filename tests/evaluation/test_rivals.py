"""pytorch-grad-cam's methods as baselines: same maps as torchcam where both define the method."""

from __future__ import annotations

import sys

import pytest
import torch

from opticam_widgets.evaluation.baselines import BASELINES, baseline_map
from opticam_widgets.evaluation.rivals import RIVALS
from opticam_widgets.inputs.preprocess import Preprocess
from tests.evaluation.test_baselines import assert_untouched, messy_model, snapshot, tiny_cnn

pytest.importorskip("pytorch_grad_cam")
pytest.importorskip("torchcam")
pytestmark = pytest.mark.numeric

# the image at the model's own size: both libraries then upsample the same 8x8 layer output
NATIVE16 = Preprocess(size=(16, 16), mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))


def test_every_rival_is_registered_in_order():
    assert BASELINES[-len(RIVALS):] == list(RIVALS)


@pytest.mark.parametrize(("ours", "theirs", "scale", "atol"), [
    ("gradcam", "pgc-gradcam", 1.0, 1e-5),
    # large gradients: pytorch-grad-cam's Grad-CAM++ adds 1e-6 to the denominator, which
    # would dominate this tiny net's g² ~ 1e-5
    ("gradcam++", "pgc-gradcam++", 100.0, 1e-4),
    # torchcam scores the masked images by the class's softmax, pytorch-grad-cam by its logit:
    # alike while the logits are small
    ("scorecam", "pgc-scorecam", 1.0, 2e-2),
])
def test_torchcam_and_pytorch_grad_cam_agree(ours, theirs, scale, atol, images):
    net = tiny_cnn().eval()
    with torch.no_grad():
        net[8].weight.mul_(scale)
    a = baseline_map(ours, net, images, [1, 3], target_layer="3", preprocess=NATIVE16)
    b = baseline_map(theirs, net, images, [1, 3], target_layer="3", preprocess=NATIVE16)
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("method", list(RIVALS))
def test_rival_maps_and_hygiene(method, images):
    model = messy_model()
    before = snapshot(model)
    maps = baseline_map(method, model, images[0], [0, 2, 4], target_layer="3",
                        preprocess=NATIVE16)
    assert maps.shape == (3, 16, 16) and maps.dtype == torch.float32
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    assert_untouched(model, before)


def test_class_dependent_rivals_differ_by_class(images):
    net = tiny_cnn().eval()
    for method in ("pgc-gradcam", "layercam", "finercam", "shapleycam"):
        maps = baseline_map(method, net, images[0], [0, 4], target_layer="3",
                            preprocess=NATIVE16)
        assert not torch.allclose(maps[0], maps[1]), method
    eigen = baseline_map("eigencam", net, images[0], [0, 4], target_layer="3",
                         preprocess=NATIVE16)
    torch.testing.assert_close(eigen[0], eigen[1])  # Eigen-CAM has no class


def test_spellings_and_missing_library(images, monkeypatch):
    net = tiny_cnn().eval()
    ref = baseline_map("eigencam", net, images, 1, target_layer="3", preprocess=NATIVE16)
    for spelling in ("EigenCAM", "eigen-cam", "Eigen_CAM"):
        got = baseline_map(spelling, net, images, 1, target_layer="3", preprocess=NATIVE16)
        torch.testing.assert_close(got, ref)
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)
    with pytest.raises(ImportError, match=r"opticam-widgets\[yardsticks\]"):
        baseline_map("layercam", net, images, 1, target_layer="3", preprocess=NATIVE16)


def test_shapleycam_after_a_linear_head_is_gradcam(images):
    """A layer followed only by pooling and a linear head (EfficientNet's last map): the score
    is linear in the activations, the Hessian term is 0 and Shapley-CAM is Grad-CAM (the
    library raised 'element 0 of tensors does not require grad' there)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, padding=1),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 5)).eval()
    shapley = baseline_map("shapleycam", net, images[0], [0, 3], target_layer="2",
                           preprocess=NATIVE16)
    gradcam = baseline_map("pgc-gradcam", net, images[0], [0, 3], target_layer="2",
                           preprocess=NATIVE16)
    torch.testing.assert_close(shapley, gradcam)
    assert not torch.allclose(shapley[0], shapley[1])  # still the class's own map
