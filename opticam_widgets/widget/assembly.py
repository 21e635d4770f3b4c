"""Builds the widget's parts and connects them (the composition root of the widget).

Every part gets what it uses and nothing more; :class:`Parts` holds them for the front class
(:class:`~opticam_widgets.widget.app.OptiCAMWidget`), which only forwards its public API to
them. The data flow is one way: controls → :class:`~.selection.Selection` →
:class:`~.runner.Runner` (engine) → :class:`~.state.Session` → :class:`~.view.ResultView`
(canvas and controls).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
from traitlets import dlink

from ..engine.explainer import OptiCAM
from ..support.jobs import Worker
from .actions import ExportActions
from .brush import BrushPanel
from .canvas import SaliencyCanvas
from .common import close_widgets
from .compare import ComparePanel, Comparison
from .contrast import ContrastPanel
from .controls import WIDGET_CSS, Controls, build_controls, colorbar_html, layout
from .display import Display
from .export import Exporter
from .messages import GREETING, error_html, esc, toned
from .pointpanel import PointingPanel
from .record import preprocess_spec
from .runner import Runner
from .saving import SaveFolder
from .selection import Selection
from .state import Session
from .strip import link_selector
from .upload import PhotoDrop, Photos
from .view import ResultView
from .yardstick import YardstickPanel

__all__ = ["Parts", "assemble"]


@dataclass
class Parts:
    """Everything a widget is made of."""

    #: Every control, by name.
    controls: Controls
    #: The main canvas.
    canvas: SaliencyCanvas
    #: The "compare with" panel.
    compare: ComparePanel
    #: The root box (what is displayed).
    root: w.VBox
    #: Images, selection, cache, result shown.
    session: Session
    #: Draws results and messages.
    view: ResultView
    #: Runs the engine.
    runner: Runner
    #: The baselines' logic.
    comparison: Comparison
    #: What the controls select.
    selection: Selection
    #: The IPython output.
    display: Display
    #: Files and figures.
    exporter: Exporter
    #: The Save, Download and Code buttons.
    actions: ExportActions
    #: Why A and not B.
    contrast: ContrastPanel
    #: Brush to test.
    brush: BrushPanel
    #: The yardsticks after each run and the sanity check.
    yardstick: YardstickPanel
    #: Point at a segment or a box to explain (segmentation models and detectors).
    pointing: PointingPanel

    def close(self) -> None:
        """Cancel and join the jobs, then close every widget."""
        self.yardstick.stop()  # a run ending as it is cancelled queues no yardsticks
        self.runner.close()
        self.display.close()
        self.canvas.close()
        self.compare.close()
        self.contrast.close()
        self.brush.close()
        self.yardstick.close()
        self.pointing.close()
        close_widgets(*self.controls.widgets(), self.root)


def assemble(owner: Any, cam: OptiCAM, max_size: int, notes: list[str], *,
             bundle: Callable[[], tuple[dict, dict]], text: Callable[[], str],
             folder: SaveFolder | None = None, model: str = "model") -> Parts:
    """Build and connect the parts of a widget.

    Args:
        owner: The widget: the parts use its traits ``running``, ``error``, ``explain_count``
            and ``early_stop``; the Run and Stop buttons call its ``run()`` and ``stop()``.
        cam: The engine.
        max_size: Longest side of the main canvas.
        notes: Grey notes under every status message.
        bundle: Returns the widget's mimebundle (for the IPython output).
        text: Returns the widget's ``repr``.
        folder: Where the Save button writes (default: the working directory, off in Voilà).
        model: The model's name (in the downloaded JSON and the code).
    """
    controls = build_controls()
    start_at(controls, cam)
    canvas = SaliencyCanvas(max_size)
    compare = ComparePanel(max(16, round(max_size * 0.6)))
    session = Session()
    view = ResultView(controls, canvas, notes)
    worker = Worker("opticam-widget")
    comparison = Comparison(compare, cam, worker, session,
                            lambda exc: owner.set_trait("error", exc), table=controls.metrics)
    display = Display(bundle, text, busy=lambda: bool(owner.running), css=WIDGET_CSS)
    canvas.observe(display.schedule, "revision")  # the saved picture follows the screen

    yardstick = YardstickPanel(cam, worker, session, comparison,
                               lambda exc: owner.set_trait("error", exc))
    comparison.on_computed = yardstick.schedule  # a baseline computed later gets them too

    def finished(cancel: threading.Event) -> None:  # a finished run was drawn
        comparison.refresh(cancel=cancel)
        display.update()  # the output's saved picture
        yardstick.schedule(cancel)  # the slower yardsticks, queued behind (not once stopped)

    runner = Runner(cam, session, view, worker, owner, on_finished=finished)
    selection = Selection(controls, session, view, runner, comparison,
                          lambda: bool(owner.early_stop))
    for target in (canvas, compare.canvas):
        dlink((controls.opacity, "value"), (target, "opacity"))
        dlink((controls.colormap, "value"), (target, "cmap"))
        dlink((controls.view, "value"), (target, "view"))
    controls.colormap.observe(lambda ch: setattr(controls.colorbar, "value",
                                                 colorbar_html(ch["new"])), "value")
    controls.run_button.on_click(lambda _b: owner.run())
    controls.stop_button.on_click(lambda _b: owner.stop())
    view.status(GREETING)
    exporter = Exporter(session, lambda: (float(controls.opacity.value), controls.colormap.value,
                                          controls.view.value),
                        lambda: view.names.names if view.names is not None else None,
                        folder=folder or SaveFolder(), model=model,
                        preprocess=preprocess_spec(cam.preprocess))
    actions = ExportActions(controls, exporter)
    given_photos(owner, controls.photos, view, actions)
    canvas.observe(actions.map_changed, "revision")
    panels = extra_panels(cam, worker, session, view, selection, runner, max_size)
    root = layout(controls, canvas.canvas, compare.box, (yardstick.box, *(p.box for p in panels)))
    root.add_class("opticam-widget")
    display.attach(root)  # its stylesheet goes inside the widget
    return Parts(controls=controls, canvas=canvas, compare=compare,
                 root=root, session=session, view=view,
                 runner=runner, comparison=comparison, selection=selection, display=display,
                 exporter=exporter, actions=actions, contrast=panels[1], brush=panels[2],
                 yardstick=yardstick, pointing=panels[0])


def extra_panels(cam: OptiCAM, worker: Worker, session: Session, view: ResultView,
                 selection: Selection, runner: Runner,
                 max_size: int) -> tuple[PointingPanel, ContrastPanel, BrushPanel]:
    """The "point at", "why A and not B" and "brush to test" panels, wired to the controls."""
    controls = view.controls
    contrast = ContrastPanel(cam, worker, session, lambda: view.names, selection.key,
                             runner.metrics, max(16, round(max_size * 0.45)))
    for target in contrast.canvases[:2]:
        dlink((controls.opacity, "value"), (target, "opacity"))
        dlink((controls.colormap, "value"), (target, "cmap"))
    controls.class_select.observe(contrast.classes_changed, "options")
    brush = BrushPanel(cam, worker, session, lambda: view.names,
                       max(16, round(max_size * 0.67)))
    controls.image_select.observe(brush.image_changed, "value")
    controls.image_strip.observe(brush.image_changed, "items")
    link_selector(controls.image_strip, controls.image_select)
    pointing = PointingPanel(cam, lambda: view.names, selection.point,
                             max(16, round(max_size * 0.67)), session=session,
                             classes=(controls.class_select, controls.class_search,
                                      contrast.box, brush.box))  # hidden for an embedding
    controls.image_strip.observe(pointing.chooser.photos_changed, "items")  # the references
    selection.on_image = pointing.image_shown  # before the photo's first run
    session.class_target = pointing.class_target  # a class of a non-classifier, as a target
    return pointing, contrast, brush



def given_photos(owner: Any, drop: PhotoDrop, view: ResultView, actions: ExportActions) -> None:
    """Photos opened or dropped in the browser become the widget's images.

    The first one is shown and explained at once; files that are no photo are named on the
    message line.
    """

    def photos(given: Photos) -> None:
        try:
            owner.set_images([image for _name, image in given], run=True)
        except (ValueError, TypeError, RuntimeError) as exc:  # a photo the model cannot take
            view.status(error_html(exc))

    def refused(names: list[str]) -> None:
        listed = ", ".join(esc(n) for n in names)
        actions.say(toned("error", f"not a photo (skipped): {listed}"))

    drop.on_photos(photos)
    drop.on_refused(refused)


def start_at(controls: Controls, cam: OptiCAM) -> None:
    """Set the optimisation controls to ``cam``'s settings (the widget's ``**settings``)."""
    settings = cam.settings
    controls.iterations.value = min(max(settings.max_iter, controls.iterations.min),
                                    controls.iterations.max)
    controls.lr.value = settings.lr
    controls.convention.value = settings.convention
    controls.optimizer.value = settings.optimizer
