"""Torchvision detectors and segmenters in the zoo (issue #28): built offline with random
weights (backbone included: nothing downloaded), labels of their own width, images at their
own size; a local weights file loads; pretrained weights only when asked for."""

from __future__ import annotations

import pytest
import torch

from opticam_widgets.model.detectors import detector_classes
from opticam_widgets.model.tasks import TASK_PREPROCESS, from_torchvision_task, task_of
from opticam_widgets.model.zoo import from_torchvision, load_model

SEGMENTERS = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50")
DETECTORS = ("fasterrcnn_mobilenet_v3_large_320_fpn", "retinanet_resnet50_fpn",
             "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    from torchvision.models import WeightsEnum

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(WeightsEnum, "get_state_dict", refuse)  # what torchvision calls


@pytest.mark.parametrize("name", SEGMENTERS + DETECTORS)
def test_each_entry_builds_offline_with_its_labels(name):
    state = torch.get_rng_state()
    bundle = load_model(f"torchvision:{name}:none")
    assert torch.equal(torch.get_rng_state(), state)  # the user's RNG is left alone
    task = task_of(name)
    assert bundle.name == f"torchvision:{name}" and not bundle.model.training
    assert bundle.preprocess == TASK_PREPROCESS[task] and bundle.preprocess.size is None
    if task == "detection":
        assert len(bundle.labels) == detector_classes(bundle.model) == 91
    else:
        assert len(bundle.labels) == 21


def test_random_weights_are_the_same_on_every_call():
    one = from_torchvision("lraspp_mobilenet_v3_large", weights=None).model
    two = from_torchvision("lraspp_mobilenet_v3_large", weights=None).model
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(),
                                                  two.state_dict().values()))


def test_a_local_weights_file_loads_and_a_wrong_one_is_refused(tmp_path):
    net = from_torchvision_task("lraspp_mobilenet_v3_large", None).model
    state = {k: v + 1 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    path = tmp_path / "seg.pth"
    torch.save({"model": state}, path)  # a training script's checkpoint
    loaded = load_model(f"torchvision:lraspp_mobilenet_v3_large:{path}").model
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    classifier = tmp_path / "resnet.pth"
    torch.save(from_torchvision("resnet18", None).model.state_dict(), classifier)
    assert load_model(f"torchvision:resnet18:{classifier}").name == "torchvision:resnet18"
    with pytest.raises(ValueError, match="does not fit LRASPP.*ModelBundle"):
        load_model(f"torchvision:lraspp_mobilenet_v3_large:{classifier}")
    with pytest.raises(ValueError, match="did you mean resnet18"):
        load_model(f"torchvision:resnet1800:{classifier}")
    with pytest.raises(ValueError, match="does not exist"):
        load_model(f"torchvision:lraspp_mobilenet_v3_large:{tmp_path}/none.pth")


def test_pretrained_weights_are_opt_in_and_names_are_checked():
    with pytest.raises(AssertionError, match="download was attempted"):
        from_torchvision("ssdlite320_mobilenet_v3_large")  # DEFAULT: the download path
    with pytest.raises(ValueError, match="unknown for 'fcos_resnet50_fpn'"):
        load_model("torchvision:fcos_resnet50_fpn:NOPE")
    with pytest.raises(ValueError, match="detection or segmentation"):
        from_torchvision_task("resnet18", None)
