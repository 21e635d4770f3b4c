"""What the widget says about its maps: the colour bar follows the colormap, the score plot's
axis spans the iterations a stopped run ran, the map is titled and the metrics are one table.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.colors import to_hex
from tinynets import SMALL, tiny_cnn

from opticam_widgets.widget import OptiCAMWidget


@pytest.fixture
def widget():
    made = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False)
    made.set_images(torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(1)),
                    run=False)
    yield made
    made.close()


def test_colour_bar_follows_the_colormap(widget):
    bar = widget.controls.colorbar
    for name in ("jet", "viridis", "magma"):
        widget.controls.colormap.value = name
        lut = colormaps[name]
        assert f"linear-gradient(to right, {to_hex(lut(0.0))}" in bar.value
        assert bar.value.count(to_hex(lut(1.0))) >= 1 and "low" in bar.value
        assert "aria-label='colour scale" in bar.value


def test_a_stopped_run_fills_the_score_axis(widget):
    widget.early_stop = False
    widget.controls.iterations.value = 500
    widget.run()
    deadline = time.monotonic() + 60
    while widget.controls.progress.value < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    widget.stop()
    result = widget.wait(60)
    assert result.cancelled and result.iterations < 500
    plot = widget.controls.score_plot
    right = int(plot.width) - 8  # the plot area's right edge (left 40 + width)
    assert len(plot.points) == result.scores.shape[1]
    np.testing.assert_allclose(plot.points[-1, 0], right)  # not squeezed at the left
    np.testing.assert_allclose(plot.points[0, 0], 40)


def test_a_live_plot_spans_the_iterations_asked(widget):
    widget.controls.iterations.value = 6
    widget.early_stop = False
    result = widget.run(blocking=True)
    entry_scores = result.scores[0].numpy()
    plot = widget.controls.score_plot
    plot.plot(entry_scores[:3], 6)  # what a live refresh draws at step 2 of 6
    pw = int(plot.width) - 48
    np.testing.assert_allclose(plot.points[-1, 0], 40 + 2 / 6 * pw)
    assert widget.controls.map_title.value == "<b>Opti-CAM</b> map"
    table = widget.controls.metrics.value
    assert table.startswith("<table class='opticam-metrics'")
    assert f"<td>{widget.metrics['AG']:.1f}%</td>" in table
