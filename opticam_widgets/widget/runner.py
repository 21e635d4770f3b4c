"""Runs the engine for the widget: the one writer of run state.

:class:`Runner` starts an optimisation (in the widget's worker thread, or blocking in the
caller's), cancels it, throttles the redraws during a run (:class:`Throttle`), computes the
faithfulness metrics of the result and keeps it in the session's cache. It alone sets the
widget's ``running``, ``error`` and ``explain_count`` traits and decides whether a run may still
draw: only the latest run, while its image and class are on screen.

Example:
    >>> t = Throttle(0.25, cost_factor=2.0)
    >>> t.due(0.0), t.mark(0.0, 0.2), t.due(0.5), t.due(0.7)
    (True, None, False, True)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from traitlets import HasTraits

from ..engine.explainer import OptiCAM
from ..engine.result import OptiCAMResult
from ..support.jobs import Worker, exiting
from .canvas import display_size
from .messages import interrupted_html, not_started_html
from .state import Entry, RunKey, Session
from .view import ResultView

__all__ = [
    "MAP_REFRESH_S",
    "STATUS_REFRESH_S",
    "Runner",
    "Throttle",
]

#: Seconds between two redraws of the map and score plot during a run (4 per second). When a
#: redraw itself is slow (a loaded machine, a huge image) the interval grows to twice its cost,
#: so that drawing never takes more than a third of the run's time.
MAP_REFRESH_S = 0.25
#: Seconds between two updates of the progress bar and status line during a run.
STATUS_REFRESH_S = 0.1


class Throttle:
    """Says when to refresh: every ``interval`` seconds, or ``cost_factor`` × the last cost.

    The interval counts from the start of the last refresh (4 per second means 4 per second,
    whatever a refresh costs up to the interval); the cost rule counts from its end.

    Args:
        interval: Smallest time between the starts of two refreshes.
        cost_factor: The wait after a refresh ends is at least this multiple of its duration.
    """

    def __init__(self, interval: float, cost_factor: float = 0.0) -> None:
        self.interval = interval
        self.cost_factor = cost_factor
        self._start = self._end = -math.inf
        self._cost = 0.0

    def due(self, now: float) -> bool:
        """Whether a refresh is due at time ``now`` (seconds, monotonic)."""
        return (now - self._start >= self.interval
                and now - self._end >= self.cost_factor * self._cost)

    def mark(self, start: float, end: float | None = None) -> None:
        """A refresh ran from ``start`` to ``end`` (default: took no time)."""
        end = start if end is None else end
        self._start, self._end = start, end
        self._cost = end - start


class Runner:
    """Starts, cancels and reports the widget's optimisations.

    Args:
        cam: The engine.
        session: Images, selection and cache.
        view: Where progress and results are drawn.
        worker: Runs one job at a time (shared with the comparison).
        owner: The widget, whose ``running``, ``error`` and ``explain_count`` traits it sets.
        on_finished: Called (in the run's thread, with its cancel event) after a finished run
            was drawn: refresh the comparison, update the saved picture.
    """

    def __init__(self, cam: OptiCAM, session: Session, view: ResultView, worker: Worker,
                 owner: HasTraits,
                 on_finished: Callable[[threading.Event], None] | None = None) -> None:
        self.cam = cam
        self.session = session
        self.view = view
        self.worker = worker
        self.owner = owner
        self.on_finished = on_finished
        self.closed = False
        self._serial = 0  # number of the latest run; older ones may not draw
        self._running_key: RunKey | None = None

    # ------------------------------------------------------------------ control
    def start(self, key: RunKey, *, blocking: bool = False,
              force: bool = False) -> OptiCAMResult | None:
        """Optimize ``key``; a background run of the same key already going is left to run.

        Args:
            key: What to optimize.
            blocking: Run in this thread, return the result and raise its errors.
            force: Start again even when the same key is being optimized.

        Returns:
            The result when ``blocking``, else ``None``.
        """
        if not blocking and not force and self._running_key == key and self.worker.busy:
            return None  # already optimizing exactly this
        self._serial += 1
        serial = self._serial

        def job(cancel: threading.Event) -> None:
            self._optimize(key, serial, cancel)

        if not blocking:
            iter0 = self.session.images[key.image].iter0
            if iter0 is not None:  # first map on screen before the worker even starts
                self.view.preview(iter0, key.convention)
            self.worker.submit(self._reporting(job), "opticam",
                               on_skip=lambda: self._skipped(key, serial))
            return None
        try:
            self.worker.run_here(job, "opticam")
        except KeyboardInterrupt:
            self._interrupted()
            raise
        except BaseException as exc:
            self.report(exc)
            raise
        shown = self.session.shown
        return shown.result if shown is not None else None

    def supersede(self) -> None:
        """Another result goes on screen: runs going on are cancelled and may no longer draw."""
        self._serial += 1
        self.worker.cancel()

    def cancel(self) -> None:
        """Ask the running jobs to stop (within one iteration)."""
        self.worker.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the jobs to end; ``True`` when none is left.

        A ``KeyboardInterrupt`` while waiting cancels the jobs (they stop within one iteration,
        drawing nothing more), waits for them, and re-raises.
        """
        try:
            return self.worker.join(timeout)
        except KeyboardInterrupt:
            self.supersede()
            self.worker.join()
            self._interrupted()
            raise

    def close(self) -> None:
        """Cancel and join every job; nothing draws afterwards."""
        self.closed = True
        self.worker.cancel()
        self.worker.join()

    def predict(self, pixels: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities (C,) float64 of one image and its iteration-0 map, shown size.

        In this thread; one resize and one forward pass for both
        (:meth:`~opticam_widgets.engine.explainer.OptiCAM.preview`).
        """
        size = display_size(int(pixels.shape[-2]), int(pixels.shape[-1]),
                            self.view.canvas.max_size)
        probs, maps = self.cam.preview(pixels, size=size)
        self.session.layer = self.cam.layer_name  # resolved by the preview, in this thread
        return probs[0].double().numpy(), maps[0].numpy()

    def preview(self, key: RunKey) -> None:
        """Draw the iteration-0 (channel-mean) map of ``key`` (computed if not known yet)."""
        state = self.session.images[key.image]
        if state.iter0 is None or state.iter0.shape != self.view.canvas.size:
            state.iter0 = self.cam.channel_mean(state.pixels,
                                                size=self.view.canvas.size)[0].numpy()
            self.session.layer = self.cam.layer_name  # resolved by channel_mean
        self.view.preview(state.iter0, key.convention)

    def _skipped(self, key: RunKey, serial: int) -> None:
        """The run was stopped while it waited for the previous one: it never started.

        Nothing of other settings stays on screen as its result (the canvas shows its
        iteration-0 preview, as when Run is pressed), and the status says what happened.
        """
        if self._current(serial, key) and not exiting():
            self.session.shown = None
            self.view.status(not_started_html(self.view.label(key.target)))

    def _interrupted(self) -> None:
        """Ctrl-C stopped the run: say so (it is not an error of the run)."""
        self.view.status(interrupted_html(self.view.label(self.session.target)))

    # ------------------------------------------------------------------ the job
    def report(self, exc: BaseException) -> None:
        """Keep ``exc`` in the widget's ``error`` and show it in the status line."""
        self.owner.set_trait("error", exc)
        self.view.error(exc)

    def _reporting(self, job: Callable[[threading.Event], None]) -> Callable[..., None]:
        def wrapped(cancel: threading.Event) -> None:
            try:
                job(cancel)
            except BaseException as exc:  # shown in the widget and kept in `error`
                if not exiting():  # at exit the front end may be gone: nobody to tell
                    self.report(exc)

        return wrapped

    def _current(self, serial: int, key: RunKey) -> bool:
        """Whether a run may draw: it is the latest run and its image and class are shown."""
        return not self.closed and serial == self._serial and self.session.shows(key)

    def _show(self, entry: Entry, *, live: bool = False, max_iter: int | None = None) -> None:
        self.session.shown = entry
        self.view.show(entry, live=live, max_iter=max_iter)

    def _set_running(self, running: bool, key: RunKey | None = None) -> None:
        self._running_key = key
        self.view.running(running, key.iterations if key is not None else None)
        self.owner.set_trait("running", running)

    def _optimize(self, key: RunKey, serial: int, cancel: threading.Event) -> None:
        state = self.session.images[key.image]
        self.owner.set_trait("error", None)
        self.owner.set_trait("explain_count", self.owner.explain_count + 1)
        self._set_running(True, key)
        try:
            result = self.cam.explain(  # the key's settings: stopping from the widget's
                state.pixels, key.target, callback=self._callback(key, serial, cancel),
                cancel=cancel, **key.overrides())
        finally:
            self._set_running(False)
        if cancel.is_set() and exiting():
            return  # the interpreter exits: no metrics, nothing to draw
        self.session.layer = result.layer
        shown = self._current(serial, key) and (not cancel.is_set() or result.cancelled)
        pointed = None if isinstance(key.target, (int, np.integer)) else key.target
        metrics = self.metrics(result, pointed) if shown or not result.cancelled else None
        entry = Entry(key, result, metrics)
        self.session.cache.add(entry)
        if shown:
            self._show(entry)
            if not result.cancelled and self.on_finished is not None:
                self.on_finished(cancel)

    def _callback(self, key: RunKey, serial: int,
                  cancel: threading.Event) -> Callable[[int, Any], None]:
        """The engine's per-step callback: throttled map and status refreshes."""
        maps, status = Throttle(MAP_REFRESH_S, cost_factor=2.0), Throttle(STATUS_REFRESH_S)
        state = self.session.images[key.image]

        def callback(step: int, progress: Any) -> None:
            if cancel.is_set() or not self._current(serial, key):
                return
            now = time.monotonic()
            if step == 0 or maps.due(now):
                entry = Entry(key, progress.result())
                if step == 0:
                    state.iter0 = self.view.displayed(entry.result)
                self._show(entry, live=True, max_iter=progress.max_iter)
                maps.mark(now, time.monotonic())
            if step == 0 or status.due(now):
                status.mark(now)
                self.view.step(key.target, progress)

        return callback

    def metrics(self, result: OptiCAMResult, pointed: Any = None) -> dict:
        """Faithfulness at the model's input size, as the optimisation masks the image.

        The image resized there (as the model sees it) masked by the map at that size: never a
        full-size float copy of a big photo. The numbers differ from masking at full size as
        far as the resize does not commute with the masking (``benchmarks/results/big_photo.md``).
        ``pointed``: the region or box target explained (``None``: the result's classes).
        """
        try:
            from ..evaluation.metrics import faithfulness

            pre = self.cam.preprocess
            if pre.size is None:
                images, maps = result.images, result.saliency
            else:
                rows = torch.tensor(result.image_index, dtype=torch.long)
                images, maps = pre.resize(result.pixels)[rows], result.saliency_at(pre.size)
            target = list(result.target) if pointed is None else pointed
            return faithfulness(self.cam.model, images, maps, target, preprocess=pre)
        except Exception as exc:  # metrics are an extra: say why they are missing
            return {"error": f"{type(exc).__name__}: {exc}"}

    @property
    def running(self) -> bool:
        """Whether an optimisation is going on."""
        return self._running_key is not None

