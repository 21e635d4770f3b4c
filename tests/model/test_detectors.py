"""A detector's class count (issue #28): ``labels=`` of the detector's own width work (3 for a
detector built with ``num_classes=3``, 91 for COCO's), any other width is refused naming it."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

from opticam_widgets import ModelBundle, OptiCAM
from opticam_widgets.engine.targets import Box
from opticam_widgets.model.detectors import check_detector_labels, detector_classes

PLAIN = {"size": None, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
NAMES = ["background", "square", "circle"]


@pytest.fixture(scope="module")
def detector():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = fasterrcnn_mobilenet_v3_large_320_fpn(num_classes=3, weights=None,
                                                    weights_backbone=None).eval()
    net.roi_heads.score_thresh = 0.0  # random weights: keep every box
    yield net
    torch.set_num_threads(threads)


def test_labels_of_the_detectors_width_work(detector):
    cam = OptiCAM(ModelBundle(detector, preprocess=PLAIN, labels=NAMES), max_iter=2)
    image = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(1))
    assert tuple(cam.predict(image).shape) == (1, 3)  # the class list has the detector's width
    assert tuple(cam.preview(image)[0].shape) == (1, 3)
    result = cam.explain(image, target=Box((0, 0, 24, 24), "circle"))
    assert list(result.target) == [2] and tuple(result.saliency.shape) == (1, 48, 48)


@pytest.mark.parametrize("labels", [["background", "square"], [f"c{i}" for i in range(91)]])
def test_another_width_is_refused_naming_the_detectors(detector, labels):
    with pytest.raises(ValueError, match=r"`labels` has \d+ names but the detector "
                                         r"\(FasterRCNN\) scores 3 classes.*background"):
        OptiCAM(detector, labels=labels)
    with pytest.raises(ValueError, match="scores 3 classes"):
        OptiCAM(ModelBundle(detector, labels=labels))


def test_a_class_beyond_the_labels_is_refused(detector):
    cam = OptiCAM(detector, preprocess=PLAIN, labels=NAMES, max_iter=1)
    with pytest.raises(ValueError, match="out of range: the model has 3 classes"):
        cam.explain(torch.rand(3, 32, 32), target=Box((0, 0, 8, 8), 5))


def test_class_counts_of_each_torchvision_detector_family():
    from torchvision.models.detection import (
        fcos_resnet50_fpn,
        retinanet_resnet50_fpn,
        ssdlite320_mobilenet_v3_large,
    )

    for build in (retinanet_resnet50_fpn, fcos_resnet50_fpn, ssdlite320_mobilenet_v3_large):
        with torch.random.fork_rng(devices=[]):
            net = build(num_classes=4, weights=None, weights_backbone=None)
        assert detector_classes(net) == 4
        assert check_detector_labels(net, ["a", "b", "c", "d"]) == 4
    assert detector_classes(torch.nn.Conv2d(3, 4, 1)) is None
