"""The yardstick panel: every yardstick of the map shown (and of the baseline), and a sanity check.

After a run finishes (in a worker job queued behind it, off the UI thread, as the metrics and
the comparison are computed), the metrics table grows from AD/AG under the black fill (the
paper's) to AD/AG under the dataset's mean colour and a blur, the deletion AUC and ROAD
(:mod:`opticam_widgets.evaluation`), for Opti-CAM's column and the baseline's, cheap ones
first. The **Sanity check** button runs the cascading model-parameter randomisation test
(:func:`opticam_widgets.evaluation.randomisation.randomisation_test`) of the map shown, with
the run's settings, on a copy of the model, and shows the maps side by side with their
similarity to the original (a map that survives the randomisation explains nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import torch
from torch import Tensor

from ..engine.explainer import OptiCAM
from ..engine.targets import Target
from ..support.jobs import Worker, exiting
from .common import close_widgets
from .compare import Cancelled, Comparison, interruptible
from .messages import note_html, sanity_html
from .state import Session

__all__ = ["DELETION_STEPS", "MEASURES", "ROAD_PERCENTILES", "YardstickPanel", "model_view"]



def _fill(fill: str) -> Callable[..., dict]:
    def measure(model: Any, images: Tensor, maps: Tensor, target: list[int], pre: Any) -> dict:
        from ..evaluation.metrics import faithfulness

        res = faithfulness(model, images, maps, target, pre, fill=fill)
        return {f"AD_{fill}": res["AD"], f"AI_{fill}": res["AI"], f"AG_{fill}": res["AG"]}
    return measure


def _deletion(model: Any, images: Tensor, maps: Tensor, target: list[int], pre: Any) -> dict:
    from ..evaluation.metrics import deletion

    curve = deletion(model, images, maps, target, pre, steps=DELETION_STEPS, baseline="black")
    return {"deletion_black": curve.mean_auc}


def _road(model: Any, images: Tensor, maps: Tensor, target: list[int], pre: Any) -> dict:
    from ..evaluation.road import road

    res = road(model, images, maps, target, pre, percentiles=ROAD_PERCENTILES)
    return {"ROAD_MoRF": res.mean_morf, "ROAD_LeRF": res.mean_lerf, "ROAD": res.mean_combined}


#: Deletion steps in the panel (the benchmark: 50).
DELETION_STEPS = 10
#: ROAD at the median only: its imputation is one sparse solve per percentile and order,
#: seconds each at 224×224 on a CPU (the benchmark averages the percentiles 10 to 90).
ROAD_PERCENTILES = (50,)
#: The panel's yardsticks in the order they are computed (cheap first): ``(a key it adds,
#: measure(model, images, maps, classes, preprocess) -> {key: value})``.
MEASURES: tuple[tuple[str, Callable[..., dict]], ...] = (
    ("AD_mean", _fill("mean")), ("AD_blur", _fill("blur")), ("deletion_black", _deletion),
    ("ROAD", _road))


def model_view(result: Any, pre: Any) -> tuple[Tensor, Tensor]:
    """A result's images and maps at the model's input size (as the widget's metrics)."""
    if pre.size is None:
        return result.images, result.saliency
    rows = torch.tensor(result.image_index, dtype=torch.long)
    return pre.resize(result.pixels)[rows], result.saliency_at(pre.size)



def _target_of(target: Any, classes: Any) -> Any:
    """What a column's yardsticks score: a pointed target as it is, else the run's classes.

    A pointed target is a region, a box or a prompt (the widget's pointing panel).
    """
    return target if isinstance(target, Target) else list(classes)

class YardstickPanel:
    """The yardsticks after each run, and the Sanity check button with its maps.

    Args:
        cam: The widget's engine (model, preprocessing, target layer, settings).
        worker: The widget's worker (one job at a time uses the model).
        session: The widget's images and the result shown.
        comparison: The baseline shown (its metrics grow too) and the metrics table.
        on_error: Called with the exception of a failed check.
    """

    def __init__(self, cam: OptiCAM, worker: Worker, session: Session, comparison: Comparison,
                 on_error: Callable[[BaseException], None]) -> None:
        self.cam, self.worker, self.session = cam, worker, session
        #: Set by :meth:`stop` (and :meth:`close`): no job is queued afterwards.
        self.closed = False
        self.comparison, self.on_error = comparison, on_error
        #: Runs the cascading randomisation test of the map shown.
        self.button = w.Button(description="Sanity check", icon="random",
                               tooltip="Randomise the model's weights block by block, from the "
                                       "top, and see whether the map changes (Adebayo et al. "
                                       "2018)")
        #: What the check is doing, or why it could not.
        self.status = w.HTML("")
        self.status.add_class("opticam-live")
        #: The randomised maps side by side and their scores.
        self.result = w.HTML("")
        self.box = w.VBox([w.HBox([self.button, self.status]), self.result])
        self.button.on_click(lambda _b: self.submit())

    # ------------------------------------------------------------------ yardsticks
    def schedule(self, cancel: threading.Event | None = None) -> None:
        """Queue :meth:`refresh` behind the current job (a run or a baseline never waits).

        Not after a cancelled job (``cancel``: the run's or the baseline's, set when the
        widget stops or closes) nor once the panel is closed: nothing is left running.
        """
        if self.closed or (cancel is not None and cancel.is_set()):
            return
        self.worker.submit(self.refresh, "yardsticks", cancel_previous=False)

    def refresh(self, cancel: threading.Event | None = None) -> None:
        """Add the yardsticks to the metrics of the map shown and of the baseline shown.

        The cheap ones first (two fills, deletion), ROAD last; the table is redrawn after
        each, and a cancelled job stops at the next one.
        """
        key = self.comparison.wanted()
        for metrics, images, maps, target in self._columns(key):
            for name, measure in MEASURES:
                if cancel is not None and cancel.is_set() or exiting():
                    return
                if name in metrics:
                    continue
                try:
                    with interruptible(self.cam.model, cancel):
                        metrics.update(measure(self.cam.model, images, maps, target,
                                               self.cam.preprocess))
                except Cancelled:
                    return
                except Exception as exc:  # yardsticks are an extra: say why they are missing
                    metrics["yardsticks_error"] = f"{type(exc).__name__}: {exc}"
                    break
                self.comparison.tabulate(key)

    def _columns(self, key: Any) -> list[tuple[dict, Tensor, Tensor, Any]]:
        """``(metrics, images, maps, classes)`` of the map shown and of the baseline shown."""
        pre = self.cam.preprocess
        entry = self.session.shown if self.session.images else None
        out = []
        if entry is not None and entry.metrics and "error" not in entry.metrics:
            images, maps = model_view(entry.result, pre)
            out.append((entry.metrics, images, maps,
                        _target_of(entry.key.target, entry.result.target)))
        if key is not None and key in self.comparison.cache:
            image = self.session.images[key.image].pixels[None]
            image = image if pre.size is None else pre.resize(image)
            saliency, metrics = self.comparison.cache[key]
            if "error" not in metrics:
                out.append((metrics, image, torch.from_numpy(saliency)[None],
                            _target_of(key.target, [key.target])))
        return out

    # ------------------------------------------------------------------ sanity check
    def submit(self) -> None:
        """Queue the sanity check of the map shown behind the current job."""
        entry = self.session.shown if self.session.images else None
        if entry is None or entry.result.cancelled:
            self.status.value = note_html("Run Opti-CAM first: the check tests the map shown.",
                                          "warning")
            return
        self.status.value = note_html("sanity check queued…")
        self.worker.submit(lambda cancel: self._check(entry, cancel), "sanity",
                           cancel_previous=False, on_skip=self._skipped)

    def _skipped(self) -> None:
        if not exiting():
            self.status.value = note_html("sanity check cancelled", "warning")

    def _check(self, entry: Any, cancel: threading.Event) -> None:
        from ..evaluation.randomisation import randomisation_blocks, randomisation_test

        pre, cam = self.cam.preprocess, self.cam
        images, _ = model_view(entry.result, pre)
        steps = len(randomisation_blocks(cam.model)) + 1
        done = [0]

        def opticam(model: Any, x: Tensor, target: Any) -> Tensor:
            if cancel.is_set():
                raise Cancelled("cancelled")
            done[0] += 1
            self.status.value = note_html(f"sanity check: Opti-CAM map {done[0]} of {steps} "
                                          "(the model randomised from the top)…")
            run = OptiCAM(model, target_layer=cam.layer_name, preprocess=pre,
                          settings=cam.settings)
            return run.explain(x, target, cancel=cancel, **entry.key.overrides()).saliency

        try:
            res = randomisation_test(cam.model, images[:1], opticam,
                                     int(entry.result.target[0]), pre,
                                     target_layer=cam.layer_name)
        except Cancelled:
            self._skipped()
            return
        except Exception as exc:  # shown here and kept in the widget's `error`
            self.on_error(exc)
            self.status.value = note_html(f"sanity check failed: {type(exc).__name__}: {exc}",
                                          "error")
            return
        if exiting():
            return
        self.status.value = note_html(f"sanity check done: {steps} maps", "muted")
        self.result.value = sanity_html(res.layers, res.spearman, res.ssim, _png(res))

    def stop(self) -> None:
        """Queue nothing more (a run that ends while the widget closes adds no job)."""
        self.closed = True

    def close(self) -> None:
        """Queue nothing more; close the panel's widgets."""
        self.stop()
        close_widgets(self.button, self.status, self.result, self.box)


def _png(result: Any) -> bytes:
    """The maps and the similarity curves as a PNG (matplotlib, no pyplot)."""
    import io

    from ..evaluation.randomisation import plot_randomisation

    buffer = io.BytesIO()
    plot_randomisation(result).savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()
