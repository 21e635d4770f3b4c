"""The yardstick panel: every yardstick after a run, for both columns; the sanity check."""

from __future__ import annotations

import time

import ipywidgets as w
import pytest
import torch
from tinynets import SMALL, tiny_cnn

from opticam_widgets.widget import OptiCAMWidget
from opticam_widgets.widget.messages import metrics_html, sanity_html

pytest.importorskip("pytorch_grad_cam")
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


def all_widgets(root: w.Widget) -> list[w.Widget]:
    out = [root]
    for child in getattr(root, "children", ()):
        out.extend(all_widgets(child))
    return out


def settled(widget: OptiCAMWidget, timeout: float = 120.0) -> str:
    """The metrics table once every yardstick job queued behind the others has ended."""
    deadline = time.monotonic() + timeout
    while True:
        widget.wait(timeout=timeout)
        table = widget.controls.metrics.value
        if "…" not in table or time.monotonic() > deadline:
            return table
        time.sleep(0.05)


def sanity_parts(widget: OptiCAMWidget) -> tuple[w.Button, list[w.HTML]]:
    found = all_widgets(widget.widget)
    button = next(x for x in found if isinstance(x, w.Button) and x.description == "Sanity check")
    return button, [x for x in found if isinstance(x, w.HTML)]


@pytest.fixture
def widget():
    made = OptiCAMWidget(tiny_cnn(), preprocess=SMALL)
    made.set_images(torch.rand(3, 24, 28, generator=torch.Generator().manual_seed(0)),
                    run=False)
    made.controls.iterations.value = 4
    yield made
    made.close()


def test_yardsticks_after_a_run_for_both_columns(widget):
    widget.run(blocking=True)
    table = settled(widget)
    metrics = widget.metrics
    assert {"AD", "AG", "AD_mean", "AG_mean", "AD_blur", "AG_blur", "ROAD",
            "deletion_black"} <= set(metrics)
    assert "aria-label='faithfulness yardsticks'" in table
    for label in ("AD ↓ mean fill", "AG ↑ blur fill", "ROAD ↑", "deletion ↓"):
        assert label in table
    assert f"<td>{metrics['ROAD']:.3f}</td>" in table
    assert f"<td>{metrics['AD_mean']:.1f}%</td>" in table
    widget.controls.compare.value = "channel-mean"  # computed later: gets them too
    table = settled(widget)
    assert "<th scope='col'>channel-mean</th>" in table and "…" not in table


def test_sanity_check_shows_the_randomised_maps(widget):
    model = widget.cam.model
    before = [p.detach().clone() for p in model.parameters()]
    button, _ = sanity_parts(widget)
    button.click()  # before any run: says what to do
    _, htmls = sanity_parts(widget)
    assert any("Run Opti-CAM first" in h.value for h in htmls)
    widget.run(blocking=True)
    widget.wait(timeout=120)
    button.click()
    widget.wait(timeout=300)
    _, htmls = sanity_parts(widget)
    shown = next(h.value for h in htmls if "sanity check scores" in h.value)
    for block in ("6", "2", "0"):  # tiny_cnn's blocks, top first
        assert f"<th scope='row'><code>{block}</code></th>" in shown
    assert "<img src='data:image/png;base64," in shown and "alt='Maps of the cascading" in shown
    assert any("sanity check done: 4 maps" in h.value for h in htmls)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert widget.error is None


def test_table_messages():
    assert "ROAD" not in metrics_html({"AD": 1.0, "AG": 2.0})  # before the yardsticks
    html = metrics_html({"AD": 1.0, "AG": 2.0, "ROAD": 0.1234, "AD_mean": 5.0},
                        [("gradcam", {"AD": 3.0, "AG": 0.0})])
    assert "<td>0.123</td><td>…</td>" in html  # the baseline's are being computed
    html = metrics_html({"AD": 1.0, "AG": 2.0, "yardsticks_error": "ImportError: grad-cam",
                         "AD_mean": 4.0})
    assert "unavailable: ImportError: grad-cam" in html
    html = sanity_html(["fc"], [0.97], [0.9], b"")
    assert "warning: with every block randomised" in html
