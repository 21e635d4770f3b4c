"""Point at what to explain (issue #28): the widget's panel for segmentation models and
detectors: the segments or boxes found, a click (or the keyboard list) on one explains it, and
the map follows the object clicked."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from targetnets import (
    assert_untouched,
    detection_scene,
    mass,
    multilabel_scene,
    one_thread,
    seeded,
    segmentation_scene,
    snapshot,
    train_detector,
    train_multilabel,
    train_segmenter,
)
from tinynets import IDENTITY, SMALL, tiny_cnn
from torch import nn

from opticam_widgets.engine.targets import Box, Detected, Region, YoloDecoder
from opticam_widgets.widget import OptiCAMWidget
from opticam_widgets.widget.pointing import detections, output_kind, pick, segments


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


class DictDetector(nn.Module):
    """A tiny detector returning torchvision-style dicts (boxes, labels, scores), its scores
    differentiable from its feature map (the raw rows read by YoloDecoder)."""

    def __init__(self, raw: nn.Module) -> None:
        super().__init__()
        self.raw = raw

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return YoloDecoder()(self.raw(x))


@pytest.fixture(scope="module")
def segmenter():
    return train_segmenter()


@pytest.fixture(scope="module")
def detector():
    return DictDetector(train_detector()).eval()


def _widget(model, layer):
    widget = OptiCAMWidget(model, preprocess=IDENTITY, target_layer=layer, save_dir=False)
    widget.controls.iterations.value = 25
    return widget


def _click(panel, x: float, y: float, to: tuple[float, float] | None = None) -> None:
    """A press and release on the panel's canvas, at model pixels (the canvas is larger)."""
    scale = panel.canvas.width / panel._size[1]
    send = panel.canvas._handle_frontend_event
    send(None, {"event": "mouse_down", "x": x * scale, "y": y * scale}, [])
    end = to or (x, y)
    send(None, {"event": "mouse_up", "x": end[0] * scale, "y": end[1] * scale}, [])


def _centre(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


@pytest.mark.numeric
def test_click_a_segment_explains_that_region(segmenter):
    """Two squares of one class: clicking each makes the widget's target the Region of that
    square, and its map lies on the square clicked (more mass there than on its twin)."""
    with seeded(5) as gen:
        img, _, boxes = segmentation_scene(gen)
    before = snapshot(segmenter)
    widget = _widget(segmenter, "block1")
    try:
        widget.show(img, run=False)
        panel = widget._parts.pointing
        assert panel.kind == "segmentation" and panel.box.layout.display == ""
        assert panel.objects.options and panel.objects.description == "Explain"
        maps = []
        for k in (0, 1):
            _click(panel, *_centre(boxes[k]))
            widget.wait(60)
            target = widget._parts.session.chosen
            assert isinstance(target, Region) and target.label == 1
            x, y = (int(v) for v in _centre(boxes[k]))
            assert bool(target.mask[y, x]) and not bool(target.mask[tuple(
                int(v) for v in _centre(boxes[1 - k])[::-1])])
            assert widget.error is None, widget.error
            assert "error" not in (widget.metrics or {"error": 1}), widget.metrics
            s = torch.from_numpy(widget.result.saliency[0].numpy())
            maps.append(s)
            assert mass(s, boxes[k]) > mass(s, boxes[1 - k])
        assert float((maps[0] - maps[1]).abs().max()) > 0.1
        _yardsticks_score_the_pointed_target(widget)
        assert "over the segment" in widget.controls.status.value
    finally:
        widget.close()
    assert_untouched(segmenter, before)


def test_drag_a_box_and_keyboard_list_on_a_segmenter(segmenter):
    """A dragged box is a Region over that box; the keyboard list picks a segment too; a
    class chosen afterwards is explained as a class again (no longer the region)."""
    with seeded(6) as gen:
        img, _, boxes = segmentation_scene(gen)
    widget = _widget(segmenter, "block1")
    widget.controls.iterations.value = 2
    try:
        widget.show(img, run=False)
        panel = widget._parts.pointing
        x0, y0, x1, y1 = boxes[2]  # the disc (class 2)
        _click(panel, x0, y0, to=(x1, y1))
        widget.wait(60)
        target = widget._parts.session.chosen
        assert isinstance(target, Region) and target.box is not None and target.label == 2
        panel.objects.value = len(panel.things) - 1  # the keyboard way
        widget.wait(60)
        assert widget._parts.session.chosen.mask is not None
        assert widget.error is None, widget.error
        widget.select_class(2)  # a class from the list: where the model predicts it
        widget.wait(60)
        chosen = widget._parts.session.chosen
        assert isinstance(chosen, Region) and chosen.label == 2 and chosen.mask is None
        assert chosen is panel.class_target(2)  # one target per class: its run is found again
        assert widget.error is None and "where the model predicts it" in (
            widget.controls.status.value), widget.error
        widget.controls.compare.value = "channel-mean"  # the baseline of the same region
        widget.wait(60)
        assert widget.error is None, widget.error
        assert widget._parts.comparison.wanted().target is chosen
        assert widget._parts.comparison.wanted() in widget._parts.comparison.cache
    finally:
        widget.close()


@pytest.mark.numeric
def test_click_a_box_explains_that_detection(detector):
    """A detector returning dicts: its boxes are listed and drawn; clicking each makes the
    target that Box (its class), and the two maps differ, each heavier on its own object."""
    with seeded(9) as gen:
        img, boxes, classes = detection_scene(gen)
    before = snapshot(detector)
    widget = _widget(detector, "raw.body.3")
    try:
        widget.show(img, run=False)
        panel = widget._parts.pointing
        assert panel.kind == "detection" and len(panel.things) >= 2
        maps = []
        for k in (0, 1):
            _click(panel, *_centre(boxes[k]))
            widget.wait(60)
            target = widget._parts.session.chosen
            assert isinstance(target, Box) and target.label == classes[k]
            assert pick([t for t in panel.things if t.label == classes[k]],
                        *_centre(boxes[k])) is not None
            assert widget.error is None, widget.error
            s = torch.from_numpy(widget.result.saliency[0].numpy())
            maps.append(s)
            assert mass(s, boxes[k]) > mass(s, boxes[1 - k])
        assert float((maps[0] - maps[1]).abs().max()) > 0.1
        _yardsticks_score_the_pointed_target(widget)
        other = 1 - widget.target
        widget.select_class(other)  # a class from the list: its best box
        widget.wait(60)
        chosen = widget._parts.session.chosen
        assert isinstance(chosen, Detected) and chosen.label == other
        assert widget.error is None, widget.error
        assert "the best box of" in widget.controls.status.value
    finally:
        widget.close()
    assert_untouched(detector, before)


def test_classifier_keeps_its_class_list():
    """A classifier: the panel stays hidden and the target is a class."""
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False)
    try:
        widget.show(np.zeros((32, 32, 3), np.uint8), run=False)
        panel = widget._parts.pointing
        assert panel.kind == "classes" and panel.box.layout.display == "none"
        assert isinstance(widget._parts.session.chosen, int)
    finally:
        widget.close()


def test_kinds_and_pointables():
    out = torch.zeros(1, 2, 8, 8)
    out[0, 1, :3, :3] = 4.0
    assert output_kind(out) == "segmentation" and output_kind({"out": out}) == "segmentation"
    assert output_kind(torch.zeros(1, 4)) == "classes"
    found = segments(out[0], (16, 16))  # the output at half the input's size
    square = pick(found, 2.0, 2.0)
    assert square.label == 1 and square.box[2] >= 5 and pick(found, 15.0, 15.0).label == 0
    dets = detections({"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
                       "labels": torch.tensor([3]), "scores": torch.tensor([0.2])})
    assert dets == []  # under the score shown


def test_dual_encoder_prompt_and_reference_photo():
    """A dual encoder (image_tower): a named prompt box (Enter explains the prompt: two prompts,
    two maps) and 'Use as reference' (the next photo is explained by its likeness to it)."""
    import tiny_dualencoder as td

    from opticam_widgets.engine.targets import Similarity, TextPrompt
    from opticam_widgets.model.dualencoder import image_tower

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = td.TinyDualEncoder().eval()
    spec = {"size": (td.SIZE, td.SIZE), "mean": (0.5,) * 3, "std": (0.25,) * 3}
    x, _, _ = td.scenes(2, seed=3, present=(1.0, 1.0))
    before = snapshot(model)
    widget = OptiCAMWidget(image_tower(model, spec, tokenizer=td.tokenize), save_dir=False)
    widget.controls.iterations.value = 10
    try:
        widget.set_images([x[0], x[1]], run=False)
        panel = widget._parts.pointing
        assert panel.kind == "dual" and panel.prompt.description == "Prompt"
        assert panel._spatial.layout.display == "none"
        assert isinstance(widget._parts.session.chosen, Similarity)  # its own embedding
        maps = []
        for text in td.CAPTIONS:
            panel.prompt.value = text  # what Enter sends (continuous_update=False)
            widget.wait(60)
            target = widget._parts.session.chosen
            assert isinstance(target, TextPrompt) and target.texts == (text,)
            assert widget.error is None, widget.error
            maps.append(torch.from_numpy(widget.result.saliency[0].numpy()))
        assert float((maps[0] - maps[1]).abs().max()) > 1e-3
        assert "the prompt “a blue circle”" in widget.controls.status.value
        panel.reference.click()  # photo 0 is the reference
        widget.wait(60)
        reference = widget._parts.session.chosen
        assert isinstance(reference, Similarity) and "likeness" in panel.text.value
        widget.select_image(1)
        widget.wait(60)
        assert widget._parts.session.chosen is reference and widget.result is not None
        assert widget.error is None, widget.error
    finally:
        widget.close()
    assert_untouched(model, before)


def test_multilabel_head_lists_sigmoids_and_explains_each_label():
    """activation="sigmoid": the class list shows each label's sigmoid (two shapes: both
    labels over 50%, which a softmax cannot show), each class is explained as MultiLabel(c)
    with sigmoid metrics, and the two labels' maps differ."""
    from opticam_widgets.engine.targets import MultiLabel

    net = train_multilabel()
    with seeded(4) as gen:
        img = multilabel_scene(gen, labels=(True, True))[0]
    with pytest.raises(ValueError, match="activation"):
        OptiCAMWidget(net, preprocess=IDENTITY, save_dir=False, activation="tanh")
    widget = OptiCAMWidget(net, preprocess=IDENTITY, save_dir=False, activation="sigmoid")
    widget.controls.iterations.value = 15
    try:
        widget.show(img, run=False)
        state = widget.images[0]
        with torch.no_grad():
            expected = torch.sigmoid(net(img[None]))[0].double().numpy()
        np.testing.assert_allclose(state.probs, expected, rtol=1e-5)
        assert state.probs.min() > 0.5  # both labels present
        assert "%" in widget.controls.class_select.options[0][0]
        maps = []
        top = widget.target
        for label in (top, 1 - top):
            if label == top:
                widget.run(blocking=True)
            else:
                widget.select_class(label)
                widget.wait(60)
            assert widget._parts.session.chosen == MultiLabel(label)
            assert widget.error is None, widget.error
            assert "error" not in widget.metrics, widget.metrics
            assert "sigmoid" in widget.controls.status.value
            maps.append(torch.from_numpy(widget.result.saliency[0].numpy()))
        assert float((maps[0] - maps[1]).abs().max()) > 0.1
    finally:
        widget.close()


def _yardsticks_score_the_pointed_target(widget) -> None:
    """The yardstick panel (queued after the run) scores the region or box explained."""
    deadline = time.monotonic() + 120
    widget.wait(120)  # the run, then the yardstick jobs queued behind it
    while "…" in widget.controls.metrics.value and time.monotonic() < deadline:
        widget.wait(120)
        time.sleep(0.05)
    found = {k: v for k, v in widget.metrics.items() if not k.endswith("per_image")}
    assert "yardsticks_error" not in found, found["yardsticks_error"]
    assert "ROAD" in found, sorted(found)
