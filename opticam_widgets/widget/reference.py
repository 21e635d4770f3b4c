"""What an embedding model explains: the likeness of the photo shown to a reference photo.

For the embedding kinds of the pointing panel (:data:`~.pointing.EMBEDDING_KINDS`: a dual
encoder bound by :func:`~opticam_widgets.model.dualencoder.image_tower`, or a model declared
with ``OptiCAMWidget(model, kind="embedding")``), a map explains a
:class:`~opticam_widgets.engine.targets.Similarity`: the cosine similarity of the photo's
embedding to a reference's. :class:`ReferenceChooser` holds the controls that choose it:

* the **Reference photo** strip: the widget's photos again (the thumbnails of the image
  strip), one focusable radio group; the photo chosen there is the reference of every photo
  explained (←/→ step through it, as in the image strip);
* **Use as reference**: the photo shown becomes the reference (the same as choosing it in the
  strip);
* for a dual encoder only, the **Prompt** box: Enter explains the prompt typed (a
  :class:`~opticam_widgets.engine.targets.TextPrompt`) instead of a reference.

Until one is chosen, a photo is explained by the likeness to its own embedding (which parts of
the photo keep its embedding). A new set of photos clears a reference (its photo is gone); a
prompt stays. Each reference photo and each prompt is one target object, so that a choice made
again finds its cached runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import torch

from ..engine.explainer import OptiCAM
from ..engine.targets import Similarity, Target, TextPrompt
from ..inputs.images import as_image_batch
from ..model.features import model_guard
from ..support.checks import logits_of, model_dtype
from ..support.outputs import check_output
from .common import close_widgets
from .state import Session
from .strip import ImageStrip

__all__ = ["ReferenceChooser", "model_output"]


def model_output(cam: OptiCAM, pixels: torch.Tensor) -> tuple[Any, tuple[int, int]]:
    """The model's checked output on one photo, and the ``(H, W)`` it saw (no gradient)."""
    x = cam.preprocess.resize(as_image_batch(pixels, keep_uint8=True).to(cam.device))
    with model_guard(cam.model), torch.no_grad():
        out = cam.model(cam.preprocess.normalize(x).to(model_dtype(cam.model)))
        return check_output(logits_of(out), 1), (int(x.shape[-2]), int(x.shape[-1]))


class _Own(Similarity):
    """The likeness of a photo to its own embedding (before a reference is chosen)."""

    what = "its own embedding"


@dataclass(frozen=True, eq=False)
class _Reference(Similarity):
    """The likeness to a photo of the strip (named in the status line)."""

    what: str = "the reference photo"

    def __repr__(self) -> str:
        return f"Similarity(reference={self.what})"


class ReferenceChooser:
    """The reference strip, the **Use as reference** button and a dual encoder's prompt.

    Args:
        cam: The engine (its model embeds the reference photos).
        session: The widget's photos and the one shown.
        pick: Called with the target chosen (explain it in the photo shown).
    """

    def __init__(self, cam: OptiCAM, session: Session, pick: Callable[[Target], None]) -> None:
        self.cam = cam
        self.session = session
        self.pick = pick
        #: A dual encoder's prompt (Enter explains it).
        self.prompt = w.Text(value="", placeholder="a red square", description="Prompt",
                             tooltip="Text to find in the photo (press Enter)",
                             continuous_update=False, layout=w.Layout(width="auto"))
        self.reference = w.Button(description="Use as reference", icon="thumb-tack",
                                  tooltip="Explain each photo by its likeness to this one")
        #: The photos again: the one chosen is the reference (index -1: none yet).
        self.strip = ImageStrip(label="Reference photo")
        self.strip.index = -1
        self.strip.layout.display = ""
        self.strip.add_class("opticam-reference-strip")
        self._heading = w.HTML("Reference photo: pick the photo to compare each photo with")
        #: What the pointing panel shows for an embedding kind.
        self.box = w.VBox([w.HBox([self.prompt, self.reference]), self._heading, self.strip])
        self._choice: Target | None = None  # the prompt or the reference chosen
        self._prompts: dict[str, TextPrompt] = {}
        self._references: dict[int, _Reference] = {}
        self._quiet = False
        self._dual = False
        self._items: list = []  # the widget's photos (in the strip once it is shown)
        self._active = False
        self.prompt.observe(self._on_prompt, "value")
        self.reference.on_click(lambda _b: self.use_as_reference())
        self.strip.observe(self._on_strip, "index")

    def show_prompt(self, shown: bool) -> None:
        """Show the prompt box (a dual encoder) or hide it (an embedding model).

        The strip gets the photos now: a model of another kind never shows it, so its page
        holds the photos once.
        """
        self._dual = bool(shown)
        self.prompt.layout.display = "" if shown else "none"
        self._active = True
        if self.strip.items != self._items:
            self.strip.items = self._items

    def target(self, output: Any) -> Target:
        """What a photo (the model's ``output`` on it) explains: the choice, else its own."""
        return self._choice or _Own(output[0])

    def photos_changed(self, change: dict) -> None:
        """The widget's photos changed (the image strip's items): the strip shows them."""
        self._references.clear()
        if isinstance(self._choice, _Reference):
            self._choice = None
        self._set_index(-1)
        self._items = list(change["new"])
        if self._active:
            self.strip.items = self._items

    # ------------------------------------------------------------------ choosing
    def use_as_reference(self) -> None:
        """The photo shown becomes the reference: each photo's map explains its likeness."""
        if self.session.images:
            self.refer(self.session.index)

    def refer(self, index: int) -> None:
        """Photo ``index`` of the widget becomes the reference (explained at once)."""
        images = self.session.images
        if not 0 <= int(index) < len(images):
            raise ValueError(f"`index` must be in 0..{len(images) - 1}, got {index!r}")
        index = int(index)
        if index not in self._references:
            output, _ = model_output(self.cam, images[index].pixels)
            self._references[index] = _Reference(output[0], what=f"photo “{images[index].name}”")
        self._set_index(index)
        self._choice = self._references[index]
        self.pick(self._choice)

    def _on_strip(self, change: dict) -> None:
        if not self._quiet and change["new"] is not None and int(change["new"]) >= 0:
            self.refer(int(change["new"]))

    def _on_prompt(self, change: dict) -> None:
        text = str(change["new"]).strip()
        if not text or not self._dual:
            return
        if text not in self._prompts:
            self._prompts[text] = TextPrompt(text, self.cam.model)
        self._choice = self._prompts[text]
        self._set_index(-1)  # a prompt, not a reference photo
        self.pick(self._choice)

    def _set_index(self, index: int) -> None:
        self._quiet = True
        try:
            self.strip.index = index
        finally:
            self._quiet = False

    def close(self) -> None:
        """Close the chooser's widgets."""
        close_widgets(self.box)
