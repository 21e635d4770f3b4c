"""The saved picture of a widget output where no live widget renders (nbconvert here).

A notebook holding what ``widget.show(img)`` displayed, saved without widget state, exported
to HTML by nbconvert: the picture of the canvas is there and nothing hides it (the stylesheet
that hides it lives in the live widget only).
"""

from __future__ import annotations

import base64
import io

import nbformat as nbf
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from opticam_widgets.widget import OptiCAMWidget, display

SMALL = {"size": (32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


class FakeShell:
    execution_count = 3


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 3)).eval()


@pytest.fixture
def outputs(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(display, "get_shell", lambda: FakeShell())
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, **kw: shown.append((obj, kw)))
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL)
    try:
        widget.controls.iterations.value = 3
        rng = np.random.default_rng(0)
        widget.show(rng.uniform(0, 1, (40, 60, 3)).astype(np.float32))
        widget.wait(timeout=60)
        yield widget, shown
    finally:
        widget.close()


def test_nbconvert_html_shows_the_picture(outputs):
    from nbconvert import HTMLExporter

    widget, shown = outputs
    nb = nbf.v4.new_notebook()
    cell = nbf.v4.new_code_cell("widget = OptiCAMWidget(model).show(img)")
    cell.outputs = [nbf.v4.new_output("display_data", data=data,
                                      metadata=kw.get("metadata", {})) for data, kw in shown]
    nb.cells = [cell]
    body, _ = HTMLExporter().from_notebook_node(nb)
    name = shown[1][1]["display_id"]
    assert f"opticam-picture {name}" in body  # the picture, as an <img>
    assert f".{name} {{ display: none" not in body  # no live widget: nothing hides it
    # the picture is the canvas as it was displayed: the photo with the iteration-0 map
    png = base64.b64decode(shown[1][0]["image/png"])
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert picture.shape == (*widget.canvas.size, 3)
    assert picture.std() > 5  # a real image, not a blank canvas
