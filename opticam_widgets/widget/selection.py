"""What the controls select, and what selecting does: show a cached result or start a run.

:class:`Selection` listens to the class, search, image, settings and "compare with" controls.
Choosing a class or an image shows its cached result or starts a run at once (a discrete,
deliberate choice); the iterations and learning-rate sliders and the convention never start a
run (they show a cached result, or invite to press **Run**; see
:mod:`~opticam_widgets.widget.controls`). Controls changed by the widget itself are changed
:meth:`~Selection.quietly`, so that their handlers stay silent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..engine.result import OptiCAMResult
from ..engine.targets import TargetLike, resolve
from .compare import Comparison
from .controls import Controls
from .messages import prompt_html, settings_html
from .runner import Runner
from .state import ClassNames, Entry, ImageState, RunKey, Session
from .view import ResultView

__all__ = ["Selection"]


class Selection:
    """The widget's selection logic, between its controls and its runner.

    Args:
        controls: The widget's controls (their handlers are wired here).
        session: Images, selection, cache.
        view: Draws results and messages.
        runner: Starts and cancels runs.
        comparison: The "compare with" panel's logic.
        early_stop: Returns whether runs stop early (the widget's ``early_stop`` trait).
    """

    def __init__(self, controls: Controls, session: Session, view: ResultView, runner: Runner,
                 comparison: Comparison, early_stop: Callable[[], bool]) -> None:
        self.controls = controls
        self.session = session
        self.view = view
        self.runner = runner
        self.comparison = comparison
        self.early_stop = early_stop
        #: Called with each image put on screen, before it is explained (the pointing
        #: panel: its segments or boxes, and a default target for a non-classifier).
        self.on_image: Callable[[ImageState], None] | None = None
        self._quiet = 0
        c = controls
        c.class_select.observe(self._on_class, "value")
        c.class_search.observe(self._on_search, "value")
        c.image_select.observe(self._on_image, "value")
        for ctrl in (c.iterations, c.lr, c.convention, c.optimizer):
            ctrl.observe(self._on_settings, "value")
        c.compare.observe(self._on_compare, "value")

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Change controls programmatically without triggering their handlers."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def key(self) -> RunKey:
        """The run key of what the controls select now."""
        c = self.controls
        settings = self.runner.cam.settings.replace(optimizer=c.optimizer.value)
        return self.session.key(iterations=c.iterations.value, lr=c.lr.value,
                                convention=c.convention.value, early_stop=self.early_stop(),
                                optimizer=settings.optimizer, plateau=settings.stopping)

    # ------------------------------------------------------------------ images and classes
    def use_names(self, names: ClassNames) -> None:
        """Use these class names (labels of the selector, options of the search box)."""
        self.view.names = names
        with self.quietly():
            self.controls.class_search.options = names.search_options

    def load_images(self, pixels: Sequence[tuple[str, Tensor]], labels: Sequence[str] | None,
                    top_k: int, *, run: bool,
                    sources: Sequence[str | None] | None = None) -> None:
        """Predict new images (after the jobs going on are stopped) and show them.

        Args:
            pixels: ``(name, (3, H, W) in [0, 1])`` pairs.
            labels: The class names given by the user, if any.
            top_k: How many top classes the selector lists.
            run: Explain the first image's top class at once.
            sources: The path each image was read from (``None``: in memory).
        """
        self.runner.cancel()
        self.runner.join()
        states = []
        for i, (name, t) in enumerate(pixels):
            probs, iter0 = self.runner.predict(t)
            names = self.view.names
            if names is None or len(names) != probs.shape[0]:
                self.use_names(ClassNames.for_model(labels, probs.shape[0]))
            states.append(ImageState.from_probs(name, t, probs, top_k))
            states[-1].iter0 = iter0
            states[-1].source = sources[i] if sources is not None else None
        self.load(states, run=run)

    def load(self, images: Sequence[ImageState], *, run: bool) -> None:
        """Show new images: the first one, its top class (run it when ``run``)."""
        self.session.load(images)
        self.comparison.cache.clear()
        with self.quietly():
            select = self.controls.image_select
            select.options = [(s.name, i) for i, s in enumerate(self.session.images)]
            select.value = 0
            # the strip names and shows the photos (the dropdown stays as its data, hidden)
            self.controls.image_strip.show_images([(s.name, s.rgb) for s in self.session.images])
        self.show_image(0, run=run)

    def show_image(self, index: int, *, run: bool) -> None:
        """Show image ``index`` with its selected class."""
        self.session.index = index
        state = self.session.image
        shown = self.view.canvas.set_image(state.rgb)
        # the comparison's canvas is smaller: scale down what is shown, not the whole photo
        big = max(state.rgb.shape[:2]) > self.view.canvas.max_size
        self.comparison.panel.canvas.set_image(shown if big else state.rgb)
        if self.on_image is not None:
            self.on_image(state)
        self._fill_classes(state)
        self._select(run=run)

    def _fill_classes(self, state: ImageState) -> None:
        with self.quietly():
            self.controls.class_select.options = self.view.classes(state)
            self.controls.class_select.value = state.target

    def select_class(self, target: TargetLike) -> None:
        """Explain ``target`` (one class: an index, a label name, a target) in the image shown."""
        names = self.view.names
        state = self.session.image
        rows = resolve(target, torch.from_numpy(np.asarray(state.probs))[None],
                       labels=None if names is None else names.names, several_for_one=False)
        if rows.classes.shape[0] != 1:
            raise ValueError(f"`target` asks for {rows.classes.shape[0]} classes; the widget "
                             f"explains one class at a time")
        target = int(rows.classes[0])
        pointed, state.pointed = state.pointed, None  # a class: no longer what was pointed at
        if state.offer(target):
            self._fill_classes(state)
        self.controls.class_select.value = target
        if state.target != target or pointed is not None:  # shown already: no change event
            state.target = target
            self._select(run=True)

    def select_image(self, index: int) -> None:
        """Show image ``index`` (its cached result, or a new run for its selected class)."""
        if not 0 <= int(index) < len(self.session.images):
            raise ValueError(f"`index` must be in 0..{len(self.session.images) - 1}, "
                             f"got {index!r}")
        self.controls.image_select.value = int(index)

    # ------------------------------------------------------------------ what selecting does
    def run(self, *, blocking: bool = False, force: bool = False) -> OptiCAMResult | None:
        """Show the cached result of the selection (unless ``force``), else optimize it."""
        key = self.key()
        entry = self.session.cache.get(key)
        if entry is not None and not force:
            self._show_cached(entry)
            return entry.result if blocking else None
        return self.runner.start(key, blocking=blocking, force=force)

    def _select(self, *, run: bool) -> None:
        """Show what the controls select: the cached result, or start a run."""
        entry = self.session.cache.get(self.key())
        if entry is not None:
            self._show_cached(entry)
            return
        self.session.shown = None
        self.view.clear()
        if run:
            self.run()
        else:
            self.runner.cancel()
            self.view.status(prompt_html(self.view.label(self.session.target)))
        self.comparison.refresh()

    def _show_cached(self, entry: Entry) -> None:
        """Show a cached result at once; a run still going is cancelled and may not draw."""
        self.runner.supersede()
        self.session.shown = entry
        self.view.show(entry)
        self.comparison.refresh()

    # ------------------------------------------------------------------ handlers
    def _on_class(self, change: dict) -> None:
        if self._quiet or change["new"] is None or not self.session.images:
            return
        self.session.image.target = int(change["new"])
        self.session.image.pointed = None
        self._select(run=True)

    def point(self, target: Any) -> None:
        """Explain ``target`` (a ``Region`` or ``Box`` pointed at) in the image shown."""
        if not self.session.images:
            return
        self.session.image.pointed = target
        self._select(run=True)

    def _on_search(self, change: dict) -> None:
        names = self.view.names
        index = names.find(change["new"]) if names is not None else None
        if self._quiet or index is None or not self.session.images:
            return
        self.select_class(index)

    def _on_image(self, change: dict) -> None:
        if self._quiet or change["new"] is None or not self.session.images:
            return
        self.show_image(int(change["new"]), run=True)

    def _on_settings(self, _change: dict) -> None:
        if self._quiet or not self.session.images:
            return
        entry = self.session.cache.get(self.key())
        if entry is not None:
            self._show_cached(entry)
        elif not self.runner.running:
            c = self.controls
            self.view.status(settings_html(c.iterations.value, c.lr.value, c.convention.value))

    def _on_compare(self, change: dict) -> None:
        self.comparison.method = change["new"]
        if not self._quiet:
            self.comparison.refresh()
