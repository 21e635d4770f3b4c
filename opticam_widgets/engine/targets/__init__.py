"""What to explain: one grammar of targets for every entry point.

A target says which scalar of the model's output a map must keep. ``OptiCAM.explain``, the
metrics and curves, the baselines, the widget, the dataset engine and the CLI all take the
same objects, and the same shorthand through :func:`as_target`:

* :class:`TopK` ``(k=1)``: the ``k`` best classes of each image (``None``, ``("top", k)``);
* :class:`ClassIndex` ``(i)``: class ``i`` of every image (``3``);
* :class:`Label` ``(name)``: the class named so in the model's labels (``"tabby"``);
* :class:`Classes` ``([...])``: one class per image, or several of one (``[3, "tabby"]``);
* :class:`TrueLabel` ``()``: each image's true label, in dataset runs (``"true"``);
* :class:`Chooser` ``(fn)``: ``fn(output row, item) -> class(es)`` (a plain callable);
* :class:`MultiLabel` ``(classes=None)``: labels of a sigmoid (multi-label) head;
* :class:`Region` ``(label, mask=None, box=None)``: a class over a region of a segmentation
  output (:mod:`~.regions`);
* :class:`Box` ``(box, label)`` and :class:`Detected` ``(rank)``: one object of a detector's
  output (:mod:`~.boxes`; :class:`YoloDecoder` reads raw YOLO-style tensors);
* :class:`Similarity` ``(reference)`` and :class:`TextPrompt` ``(text, encoder)``: the cosine
  similarity of an embedding output to a vector, another image, or a dual encoder's prompt
  (:mod:`~.embeddings`).

The model's output may be logits (B, classes), a dense map (B, classes, h, w) (a tensor,
``{"out": ...}`` or ``.logits``) or one dict of detections per image
(:mod:`~opticam_widgets.support.outputs`). ``target(output)`` (its :meth:`~Target.score`) is the
differentiable ``(N,)`` score Opti-CAM keeps, :meth:`~Target.probability` the ``(N,)``
probability the faithfulness metrics compare, :meth:`~Target.probabilities` the class list
(B, classes) a viewer shows (softmax; sigmoid for :class:`MultiLabel`).

**The rows interface.** ``target.resolve(output, context) -> rows`` turns a target into rows
for one output; the engine, the metrics and the dataset engine only use the rows:

* ``rows.index``: (R,) CPU long tensor, the input each row is of;
* ``rows.score(out)``: the differentiable (R,) score, where ``out`` is the output *of those
  rows* (``output_rows(output, rows.index)`` of :mod:`~opticam_widgets.support.outputs`: the
  tensor's rows, a dict's tensors' rows, or the list's items, in row order);
* ``rows.probability(out)``: (R,) in [0, 1], same ``out``;
* ``rows.subset(r)``: the rows ``r`` (a CPU long tensor, repeats allowed), same kind;
* ``rows.spec()``: a JSON-friendly description;
* optionally ``rows.classes``: (R,) CPU long, the class of each row (a result's ``target``;
  ``-1`` per row without it).

:class:`ClassRows`, :class:`RegionRows` and :class:`BoxRows` are the rows of the kinds here
(:class:`Rows` is the protocol). Adding a kind is one small class: subclass :class:`Target`,
implement ``resolve(output, context) -> rows`` (refuse what it cannot explain with a
``ValueError`` naming the fix; :class:`NoTarget` for "this image has nothing to explain",
which a dataset run stores as the row's error), and give :meth:`~Target.spec` a JSON-friendly
description (a store's settings).

Example:
    >>> import torch
    >>> logits = torch.tensor([[0.1, 2.0, 0.3], [1.5, 0.2, 0.9]])
    >>> as_target(None).resolve(logits).classes
    tensor([1, 0])
    >>> as_target(("top", 2))(logits)  # scores of the two best classes of each image
    tensor([2.0000, 0.3000, 1.5000, 0.9000])
    >>> as_target("green", labels=["red", "green", "blue"])
    ClassIndex(index=1)
"""

from .annotations import ANNOTATION_USES, Annotation, Annotations
from .base import Context, NoTarget, Rows, Target, row_classes
from .boxes import Box, BoxRows, Detected, YoloDecoder
from .classes import (
    ACTIVATIONS,
    Chooser,
    Classes,
    ClassIndex,
    ClassRows,
    Label,
    MultiLabel,
    TopK,
    TrueLabel,
    ranking_output,
)
from .embeddings import EmbeddingRows, Similarity, TextPrompt
from .regions import Region, RegionRows, box_mask
from .shorthand import TargetLike, as_target, resolve

__all__ = ["ACTIVATIONS", "ANNOTATION_USES", "Annotation", "Annotations", "Box", "BoxRows",
           "ClassIndex", "ClassRows", "Classes", "Chooser", "Context", "Detected", "EmbeddingRows",
           "Label", "MultiLabel", "NoTarget", "Region", "RegionRows", "Rows", "Similarity",
           "Target", "TargetLike", "TextPrompt", "TopK", "TrueLabel", "YoloDecoder", "as_target",
           "box_mask", "ranking_output", "resolve", "row_classes"]
