"""Builders for the widget's controls: one small function per control group.

Each function returns plain ipywidgets (no custom JavaScript) with the documented ranges and
defaults; :func:`build_controls` gathers them in a :class:`Controls` record and
:func:`layout` arranges them around the canvas. Nothing here knows about the explainer:
:mod:`~opticam_widgets.widget.selection` and :mod:`~opticam_widgets.widget.assembly` wire the
handlers, so tests can set any control's ``value`` and drive the widget exactly as a user would.

Why sliders don't start a run: an optimisation costs seconds, and a slider with
``continuous_update=True`` fires on every tick of a drag. Iterations and learning rate
therefore use ``continuous_update=False`` and an explicit **Run** button; only choosing a class
(or an image) starts a run at once, because that is a discrete, deliberate choice, and a cached
result is shown instead when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import ipywidgets as w

from ..display.render import COLORMAPS
from ..evaluation.baselines import BASELINES
from ..support.defaults import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    DEFAULT_LR,
    DEFAULT_MAX_ITER,
)
from .plot import ScorePlot
from .steps import iterations_box, iterations_scale, optimizer_control
from .strip import ImageStrip
from .upload import PhotoDrop

__all__ = [
    "WIDGET_CSS",
    "VIEWS",
    "Controls",
    "action_buttons",
    "build_controls",
    "class_controls",
    "colorbar_html",
    "compare_control",
    "display_controls",
    "export_controls",
    "image_control",
    "layout",
    "optimization_controls",
    "progress_controls",
]

#: (label, value) of the canvas views.
VIEWS = (("overlay", "overlay"), ("saliency", "saliency"), ("masked input", "masked"),
         ("original", "original"))

_WIDE = {"description_width": "initial"}

#: Layout rules of the live widget (its stylesheet, see :mod:`.display`), scoped to its root
#: (CSS class ``opticam-widget``): every part fits the width it is given (rows wrap, fixed
#: widths become maximum widths, the canvases scale down), and labels are never cut.
WIDGET_CSS = """
.opticam-widget, .opticam-widget .jupyter-widgets { max-width: 100%; min-width: 0; }
.opticam-widget canvas { max-width: 100%; height: auto; }
.opticam-widget .widget-toggle-buttons, .opticam-widget .widget-toggle-buttons > div {
  display: flex; flex-wrap: wrap; row-gap: 2px; min-width: 0; }
.opticam-widget .widget-toggle-button { width: auto; min-width: 6em; flex: 0 0 auto; }
.opticam-widget .widget-html-content { white-space: normal; overflow-wrap: anywhere;
  line-height: 1.45; }
body[data-jp-theme-light="false"] .opticam-widget .opticam-plot,
.theme-dark .opticam-widget .opticam-plot { filter: invert(0.9) hue-rotate(180deg); }
.opticam-brush canvas { cursor: crosshair; touch-action: none; }
.opticam-widget .opticam-metrics th, .opticam-widget .opticam-metrics td { padding: 0 8px 0 0; }
.opticam-widget :focus-visible, .opticam-widget select:focus, .opticam-widget input:focus,
.opticam-widget textarea:focus { outline: 2px solid var(--jp-brand-color1, #1565c0) !important;
  outline-offset: 1px; }
"""


def optimization_controls(
    iterations: int = DEFAULT_MAX_ITER, lr: float = DEFAULT_LR,
    convention: str = DEFAULT_CONVENTION,
) -> tuple[w.BoundedIntText, w.FloatLogSlider, w.ToggleButtons]:
    """Iterations (1–500, typed), learning rate (1e-3–1, log scale) and convention.

    The iterations box gets its log-scale slider from :mod:`.steps`.
    Both use ``continuous_update=False``: they report only when typed in full or released, and
    never start a run by themselves (see the module docstring).

    Example:
        >>> iters, lr, conv = optimization_controls()
        >>> iters.value, round(lr.value, 3), conv.value
        (100, 0.2, 'constructive')
    """
    iters = iterations_box(iterations)
    rate = w.FloatLogSlider(value=lr, base=10, min=-3, max=0, step=0.05,
                            description="Learning rate", readout_format=".3g",
                            continuous_update=False, style=_WIDE,
                            layout=w.Layout(width="300px"))
    conv = w.ToggleButtons(options=list(CONVENTIONS), value=convention,
                           tooltips=["keep the class score with x⊙S (maximize)",
                                     "destroy the class score with x⊙(1−S) (minimize)"],
                           style={"button_width": "auto"})
    return iters, rate, conv


def class_controls() -> tuple[w.Dropdown, w.Combobox]:
    """Class selector (top-k predictions with probabilities) and a search over all labels.

    The app fills the options: the dropdown's values are class indices, its labels the class
    names with the predicted probability; the search box lists ``"name (index)"`` strings.

    Example:
        >>> select, search = class_controls()
        >>> select.options, search.ensure_option
        ((), True)
    """
    select = w.Dropdown(options=[], description="Class", style=_WIDE,
                        layout=w.Layout(width="340px"))
    search = w.Combobox(options=[], placeholder="search all classes…", ensure_option=True,
                        continuous_update=False, description="or", style=_WIDE,
                        layout=w.Layout(width="240px"))
    return select, search


def image_control() -> w.Dropdown:
    """Image selector: the data of the image strip (:mod:`.strip`), never shown itself.

    Example:
        >>> image_control().layout.display
        'none'
    """
    select = w.Dropdown(options=[], description="Image", style=_WIDE,
                        layout=w.Layout(width="220px", display="none"))
    select.add_class("opticam-images")  # ←/→ step through the photos (see .upload)
    return select


def display_controls(
    opacity: float = 0.5, cmap: str = "jet"
) -> tuple[w.ToggleButtons, w.FloatSlider, w.Dropdown]:
    """View selector, heatmap opacity and colormap: they only redraw, never recompute.

    Example:
        >>> view, opacity, cmap = display_controls()
        >>> view.value, opacity.value, cmap.value
        ('overlay', 0.5, 'jet')
    """
    view = w.ToggleButtons(options=list(VIEWS), value="overlay",
                           tooltips=["heatmap over the image", "heatmap only",
                                     "the image times the map: what the model saw",
                                     "the image alone"],
                           style={"button_width": "auto"})
    alpha = w.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05, description="Opacity",
                          readout_format=".2f", style=_WIDE, layout=w.Layout(width="260px"))
    options = list(COLORMAPS) if cmap in COLORMAPS else [cmap, *COLORMAPS]
    colormap = w.Dropdown(options=options, value=cmap, description="Colormap", style=_WIDE,
                          layout=w.Layout(width="190px"))
    return view, alpha, colormap


def colorbar_html(cmap: str) -> str:
    """The colour scale of the heatmap: ``low`` … ``high`` importance, in ``cmap``'s colours.

    Example:
        >>> "linear-gradient(to right, #000080" in colorbar_html("jet")
        True
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    stops = ", ".join(to_hex(colormaps[cmap](t / 8)) for t in range(9))
    return ("<span role='img' aria-label='colour scale: from low (left) to high (right) "
            "importance' style='display:inline-flex;align-items:center;gap:4px;"
            "font-size:12px'>low<span style='display:inline-block;width:110px;height:10px;"
            f"border:1px solid #888;background:linear-gradient(to right, {stops})'></span>"
            "high</span>")


def action_buttons() -> tuple[w.Button, w.Button]:
    """Run and Stop buttons (Stop is enabled while a run is going).

    Example:
        >>> run, stop = action_buttons()
        >>> run.description, stop.disabled
        ('Run', True)
    """
    run = w.Button(description="Run", icon="play", button_style="primary",
                   tooltip="optimize the map for the chosen class and settings",
                   layout=w.Layout(width="90px"))
    stop = w.Button(description="Stop", icon="stop", disabled=True,
                    tooltip="stop the optimization (keeps the best map so far)",
                    layout=w.Layout(width="90px"))
    return run, stop


def progress_controls() -> tuple[w.IntProgress, w.HTML, ScorePlot, w.HTML]:
    """Progress bar, status line, score-over-iterations plot and metrics line.

    Example:
        >>> bar, status, plot, metrics = progress_controls()
        >>> bar.min, bar.value
        (0, 0)
    """
    bar = w.IntProgress(value=0, min=0, max=DEFAULT_MAX_ITER,
                        layout=w.Layout(width="240px"))
    status = w.HTML(value="", layout=w.Layout(min_height="1.6em"))
    status.add_class("opticam-status")  # announced politely (see .upload)
    plot = ScorePlot(240, 120)
    plot.add_class("opticam-plot")  # dark themes invert it (see WIDGET_CSS)
    metrics = w.HTML(value="")
    return bar, status, plot, metrics


def compare_control(methods: tuple[str, ...] = tuple(BASELINES)) -> w.Dropdown:
    """"Compare with" dropdown: ``None`` or a baseline CAM method.

    Example:
        >>> compare_control().value is None
        True
    """
    # Score-CAM costs one forward pass per channel of the target layer (1280 on Lite0)
    labels = [(f"{m} (slow)" if m.endswith("scorecam") else m, m) for m in methods]
    return w.Dropdown(options=[("None", None), *labels], index=0, description="Compare with",
                      style=_WIDE, layout=w.Layout(width="230px"))


def export_controls() -> tuple[w.Text, w.Button, w.Button, w.Button, w.HTML, w.Textarea]:
    """File name box, Save, Download and Code buttons, their message line and the code box.

    **Save** writes a PNG on the server, inside the widget's save folder, under a plain file
    name (never over an existing file); **Download** offers the PNG and a JSON sidecar to the
    browser (nothing written on the server); **Code** shows the ``OptiCAM(...).explain(...)``
    call that reproduces the map. Their messages have their own line (CSS class
    ``opticam-live``), apart from the run's status line.

    Example:
        >>> path, save, download, code, message, box = export_controls()
        >>> save.description, download.description, box.layout.display
        ('Save PNG', 'Download', 'none')
    """
    path = w.Text(value="", placeholder="auto", description="File name", style=_WIDE,
                  layout=w.Layout(width="230px"))
    save = w.Button(description="Save PNG", icon="save",
                    tooltip="save the overlay as a new PNG file in the notebook's folder",
                    layout=w.Layout(width="110px"))
    download = w.Button(description="Download", icon="download",
                        tooltip="offer the overlay (PNG) and its settings (JSON) to the "
                                "browser as downloads",
                        layout=w.Layout(width="110px"))
    code = w.Button(description="Code", icon="code",
                    tooltip="show the Python code that reproduces this map",
                    layout=w.Layout(width="90px"))
    message = w.HTML(value="", layout=w.Layout(min_height="1.2em"))
    message.add_class("opticam-live")
    box = w.Textarea(value="", description="Code", style=_WIDE,
                     layout=w.Layout(width="100%", height="9em", display="none"))
    return path, save, download, code, message, box


@dataclass
class Controls:
    """Every control of the widget, by name (tests and users may set their ``value``)."""

    #: Adam steps, typed (BoundedIntText 1–500, default 100): an int code may set.
    iterations: w.BoundedIntText
    #: The same on a log-scale slider (follows and sets ``iterations``).
    iterations_scale: w.FloatLogSlider
    #: Adam learning rate (FloatLogSlider 1e-3–1, default 0.2).
    lr: w.FloatLogSlider
    #: "constructive" or "destructive".
    convention: w.ToggleButtons
    #: The optimiser, "paper" or "fast" (the engine's ``OPTIMIZERS``).
    optimizer: w.ToggleButtons
    #: Class to explain: top-k predictions (value: class index).
    class_select: w.Dropdown
    #: Search over all class names; picking one selects that class.
    class_search: w.Combobox
    #: Which image, when several were given (value: index; hidden: the strip shows them).
    image_select: w.Dropdown
    #: Named thumbnails of the images (index linked to ``image_select``).
    image_strip: ImageStrip
    #: The Open photos… button; the widget takes dropped photos too.
    photos: PhotoDrop
    #: Canvas view: overlay, saliency, masked, original.
    view: w.ToggleButtons
    #: Heatmap opacity in [0, 1].
    opacity: w.FloatSlider
    #: Matplotlib colormap name.
    colormap: w.Dropdown
    #: Starts an optimisation (or shows the cached result).
    run_button: w.Button
    #: Cancels the running optimisation.
    stop_button: w.Button
    #: Iterations done in the current run.
    progress: w.IntProgress
    #: Status line: iteration, score, elapsed, errors (HTML, escaped).
    status: w.HTML
    #: Score-over-iterations plot (an ipycanvas Canvas).
    score_plot: ScorePlot
    #: Faithfulness of the current map (Average Drop / Gain), and of the baseline compared.
    metrics: w.HTML
    #: The main map's title (the comparison's map has its own).
    map_title: w.HTML
    #: The heatmap's colour scale (follows the colormap).
    colorbar: w.HTML
    #: Baseline method to show beside the Opti-CAM map, or None.
    compare: w.Dropdown
    #: File name for Save PNG (a plain name; empty: automatic).
    save_path: w.Text
    #: Saves the overlay PNG in the save folder, as a new file.
    save_button: w.Button
    #: Offers the PNG and its JSON sidecar as browser downloads.
    download_button: w.Button
    #: Shows the code that reproduces the map.
    code_button: w.Button
    #: What Save, Download and Code did: paths, download links, refusals.
    save_status: w.HTML
    #: The code that reproduces the map (shown by the Code button).
    code: w.Textarea

    def widgets(self) -> list[w.Widget]:
        """All control widgets, in field order."""
        return [getattr(self, f.name) for f in fields(self)]


def build_controls(baselines: tuple[str, ...] = tuple(BASELINES)) -> Controls:
    """Build every control with its default value.

    Example:
        >>> c = build_controls()
        >>> c.iterations.max, c.lr.base ** c.lr.min, c.colormap.value
        (500, 0.001, 'jet')
    """
    iters, rate, conv = optimization_controls()
    select, search = class_controls()
    view, opacity, cmap = display_controls()
    run, stop = action_buttons()
    bar, status, plot, metrics = progress_controls()
    path, save, download, code, message, box = export_controls()
    return Controls(iterations=iters, iterations_scale=iterations_scale(iters), lr=rate,
                    convention=conv, optimizer=optimizer_control(), class_select=select,
                    class_search=search, image_select=image_control(),
                    image_strip=ImageStrip(), photos=PhotoDrop(),
                    view=view, opacity=opacity, colormap=cmap, run_button=run, stop_button=stop,
                    progress=bar, status=status, score_plot=plot, metrics=metrics,
                    map_title=w.HTML("<b>Opti-CAM</b> map"),
                    colorbar=w.HTML(colorbar_html(cmap.value)),
                    compare=compare_control(baselines), save_path=path, save_button=save,
                    download_button=download, code_button=code, save_status=message, code=box)


def layout(controls: Controls, canvas: w.Widget, compare_panel: w.Widget,
           extras: tuple[w.Widget, ...] = ()) -> w.VBox:
    """Arrange the controls around the canvas (and the comparison panel beside it).

    ``extras`` (the class contrast, the brush) come last, in the Tab order too.

    Example:
        >>> box = layout(build_controls(), w.HTML("canvas"), w.HTML("baseline"))
        >>> isinstance(box, w.VBox)
        True
    """
    c = controls
    row = w.Layout(flex_flow="row wrap", align_items="center")
    side = w.VBox([c.score_plot, c.metrics], layout=w.Layout(width="250px"))
    return w.VBox([
        w.HBox([c.photos, c.image_select], layout=row),
        c.image_strip,
        w.HBox([c.class_select, c.class_search], layout=row),
        w.HBox([c.iterations, c.iterations_scale, c.lr, c.convention, c.optimizer],
               layout=row),
        w.HBox([c.run_button, c.stop_button, c.progress], layout=row),
        c.status,
        w.HBox([w.VBox([c.map_title, canvas]), compare_panel, side],
               layout=w.Layout(flex_flow="row wrap", align_items="flex-start")),
        w.HBox([c.view, c.opacity, c.colormap, c.colorbar], layout=row),
        w.HBox([c.compare, c.save_path, c.save_button, c.download_button, c.code_button],
               layout=row),
        c.save_status,
        c.code,
        *extras,
    ])
