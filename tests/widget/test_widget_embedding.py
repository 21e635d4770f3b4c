"""An embedding model in the widget (issue #28): declared with ``kind="embedding"`` (its (B, D)
output looks like logits), it shows no class list but a **Reference photo** strip; the photo
picked there (or **Use as reference**) is the reference each photo is explained against
(``Similarity``); a kind that the output contradicts is refused with the fix."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_dualencoder as td
import torch
from targetnets import assert_untouched, one_thread, snapshot
from tinynets import SMALL, tiny_cnn
from torch import nn

from opticam_widgets.engine.targets import Similarity
from opticam_widgets.widget import OptiCAMWidget

SPEC = {"size": (td.SIZE, td.SIZE), "mean": (0.5,) * 3, "std": (0.25,) * 3}


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def embedder() -> nn.Module:
    """A tiny image embedder (a CNN to a 16-d vector, random weights: the plumbing)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return td.TinyDualEncoder().visual.eval()


def _embedding(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(SPEC["mean"])[:, None, None], torch.tensor(SPEC["std"])[:, None, None]
    with torch.no_grad():
        return net(((image - mean) / std)[None])[0]


@pytest.mark.numeric
def test_pick_the_reference_photo_from_the_strip(embedder):
    """No class list; the strip lists the photos, none chosen; picking photo 1, then photo 2
    as the reference explains the photo shown against each (two maps), the reference being
    that photo's embedding; it follows to the next photo; 'Use as reference' takes the photo
    shown; a reference picked again is the same target (its cached run found)."""
    x, _, _ = td.scenes(3, seed=3, present=(1.0, 1.0))
    before = snapshot(embedder)
    widget = OptiCAMWidget(embedder, preprocess=SPEC, kind="embedding", save_dir=False)
    widget.controls.iterations.value = 10
    try:
        widget.set_images({"a.png": x[0], "b.png": x[1], "c.png": x[2]}, run=False)
        panel = widget._parts.pointing
        strip = panel.chooser.strip
        assert panel.kind == "embedding" and panel.box.layout.display == ""
        assert widget.controls.class_select.layout.display == "none"
        assert widget.controls.class_search.layout.display == "none"
        assert widget._parts.contrast.box.layout.display == "none"  # classes: none to compare
        assert widget._parts.brush.box.layout.display == "none"
        assert panel.prompt.layout.display == "none"  # no text side
        assert [i["name"] for i in strip.items] == ["a.png", "b.png", "c.png"]
        assert strip.index == -1 and strip.layout.display == ""
        assert isinstance(widget._parts.session.chosen, Similarity)  # its own embedding
        maps, targets = [], []
        for ref in (1, 2):
            strip.index = ref  # a click, or ←/→ in the strip
            widget.wait(60)
            target = widget._parts.session.chosen
            assert isinstance(target, Similarity) and widget.error is None, widget.error
            torch.testing.assert_close(target.vectors()[0], _embedding(embedder, x[ref]),
                                       rtol=1e-4, atol=1e-5)
            assert f"likeness to photo “{'bc'[ref - 1]}.png”" in widget.controls.status.value
            assert "error" not in (widget.metrics or {"error": 1}), widget.metrics
            maps.append(torch.from_numpy(widget.result.saliency[0].numpy()))
            targets.append(target)
        # another reference, another map (measured: 0.31 apart at most)
        assert float((maps[0] - maps[1]).abs().max()) > 0.05
        strip.index = 1
        widget.wait(60)
        assert widget._parts.session.chosen is targets[0]
        widget.select_image(2)  # the reference stays: photo c explained against photo b
        widget.wait(60)
        assert widget._parts.session.chosen is targets[0] and widget.result is not None
        panel.reference.click()  # photo c becomes the reference
        widget.wait(60)
        assert strip.index == 2 and widget._parts.session.chosen is targets[1]
        assert widget.error is None, widget.error
    finally:
        widget.close()
    assert_untouched(embedder, before)


def test_new_photos_clear_the_reference(embedder):
    x, _, _ = td.scenes(2, seed=4, present=(1.0, 0.0))
    widget = OptiCAMWidget(embedder, preprocess=SPEC, kind="embedding", save_dir=False)
    widget.controls.iterations.value = 2
    try:
        widget.set_images([x[0], x[1]], run=False)
        strip = widget._parts.pointing.chooser.strip
        strip.index = 1
        widget.wait(60)
        widget.set_images([x[1], x[0], x[0]], run=False)
        assert strip.index == -1 and len(strip.items) == 3
        assert "own embedding" in widget._parts.pointing.text.value
    finally:
        widget.close()


class _Dense(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(self.conv(x), 4)  # (B, 3, h, w): a dense output


@pytest.mark.parametrize("model, kind, match", [
    (_Dense(), "embedding", r"kind='embedding'.*\(1, 3, 8, 8\).*leave `kind` out"),
    (None, "segmentation", r"kind='segmentation'.*reads as 'classes'.*leave `kind` out"),
    (None, "dual", r"image_tower"),
])
def test_a_kind_the_output_contradicts_is_refused(model, kind, match):
    widget = OptiCAMWidget(model or tiny_cnn(), preprocess=SMALL, save_dir=False, kind=kind)
    try:
        with pytest.raises(ValueError, match=match):
            widget.set_images(np.zeros((32, 32, 3), np.uint8), run=False)
    finally:
        widget.close()


@pytest.mark.parametrize("settings, match", [
    ({"kind": "vectors"}, r"`kind` must be one of .*'embedding'"),
    ({"kind": "embedding", "activation": "sigmoid"}, r"activation='sigmoid'.*classifier"),
])
def test_bad_kind_arguments(settings, match):
    with pytest.raises(ValueError, match=match):
        OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False, **settings)


def test_reference_controls_are_named():
    """The strip is a radio group named 'Reference photo'; the button is named and says what
    it does (the keyboard way: Tab to the strip, ←/→ to pick, as in the image strip)."""
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False, kind="embedding")
    try:
        chooser = widget._parts.pointing.chooser
        assert chooser.strip.label == "Reference photo"
        assert chooser.reference.description == "Use as reference" and chooser.reference.tooltip
        assert "tabIndex = i === stop" in chooser.strip._esm  # none chosen: the first is a stop
    finally:
        widget.close()


def test_a_classifier_holds_its_photos_once():
    """A model of another kind never shows the Reference strip: it stays empty (the photos'
    thumbnails are not on the page twice, where a screen reader or a test would find them)."""
    net = tiny_cnn()
    widget = OptiCAMWidget(net, preprocess=SMALL, save_dir=False)
    try:
        photos = {n: torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i))
                  for i, n in enumerate(("a.png", "b.png"))}
        widget.set_images(photos, run=False)
        assert len(widget.controls.image_strip.items) == 2
        assert widget._parts.pointing.chooser.strip.items == []
    finally:
        widget.close()
