"""Issue 29: the widget offers the paper/fast choice as a control, and its runs stop with the
widget's settings (``tol``, ``patience``: ``"auto"`` resolved for the optimiser chosen), not a
hard-coded rule."""

from __future__ import annotations

import ipywidgets as w
import numpy as np
import pytest
import torch
from tinynets import SMALL, tiny_cnn

from opticam_widgets.engine.explainer import OptiCAM
from opticam_widgets.engine.optimizers import FAST_PATIENCE, FAST_TOL
from opticam_widgets.support.defaults import WIDGET_PATIENCE, WIDGET_TOL
from opticam_widgets.widget import OptiCAMWidget


class Spy:
    """Keeps the keyword arguments of every ``widget.cam.explain`` call."""

    def __init__(self, widget: OptiCAMWidget) -> None:
        self.calls: list[dict] = []
        self.inner = widget.cam.explain
        widget.cam.explain = self

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self.inner(*args, **kwargs)


@pytest.fixture
def make_widget():
    made: list[OptiCAMWidget] = []

    def make(**settings) -> tuple[OptiCAMWidget, Spy]:
        widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, **settings)
        made.append(widget)
        widget.set_images(torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(0)),
                          run=False)
        widget.controls.iterations.value = 6
        return widget, Spy(widget)

    yield make
    for widget in made:
        widget.close()


def test_the_optimizer_is_a_named_control_that_starts_at_the_settings(make_widget) -> None:
    widget, _ = make_widget()
    control = widget.controls.optimizer
    assert isinstance(control, w.ToggleButtons) and control.description == "Optimizer"
    assert control.options == ("paper", "fast") and control.value == "paper"
    assert len(control.tooltips) == 2 and all(control.tooltips)
    fast, _ = make_widget(optimizer="fast")
    assert fast.controls.optimizer.value == "fast"


def test_choosing_fast_runs_fast_with_its_own_patience(make_widget) -> None:
    widget, spy = make_widget()
    widget.controls.optimizer.value = "fast"
    assert widget.explain_count == 0  # like the sliders, choosing never starts a run
    widget.run(blocking=True)
    call = spy.calls[-1]
    assert (call["optimizer"], call["tol"], call["patience"]) == ("fast", WIDGET_TOL,
                                                                   FAST_PATIENCE)
    expected = OptiCAM(tiny_cnn(), preprocess=SMALL).explain(
        widget.images[0].pixels, widget.target, max_iter=6, optimizer="fast", tol=WIDGET_TOL,
        patience=FAST_PATIENCE, lr=widget.controls.lr.value)
    np.testing.assert_allclose(widget.saliency, expected.numpy()[0], rtol=0, atol=1e-6)
    widget.controls.optimizer.value = "paper"  # another key: the paper's rule
    widget.run(blocking=True)
    assert (spy.calls[-1]["optimizer"], spy.calls[-1]["patience"]) == ("paper", WIDGET_PATIENCE)
    assert len(spy.calls) == 2


def test_runs_stop_with_the_widgets_settings_not_a_fixed_rule(make_widget) -> None:
    widget, spy = make_widget(tol=0.25, patience=2)
    widget.run(blocking=True)
    assert (spy.calls[-1]["tol"], spy.calls[-1]["patience"]) == (0.25, 2)
    widget.early_stop = False
    widget.run(blocking=True)
    assert spy.calls[-1]["tol"] is None
    auto, spy = make_widget(tol="auto", optimizer="fast")  # the optimiser's own rule
    auto.run(blocking=True)
    assert (spy.calls[-1]["tol"], spy.calls[-1]["patience"]) == (FAST_TOL, FAST_PATIENCE)
