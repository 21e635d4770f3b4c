"""Class targets: an index or a name, the top k, a list, the true label, a chooser, multi-label.

Every class kind resolves to :class:`ClassRows`; :class:`MultiLabel` (sigmoid heads) too.

Example:
    >>> import torch
    >>> logits = torch.tensor([[0.1, 2.0, 0.3], [1.5, 0.2, 0.9]])
    >>> TopK(2).resolve(logits).classes
    tensor([1, 2, 0, 2])
    >>> MultiLabel().resolve(logits).classes  # every label whose sigmoid is over 0.5
    tensor([1, 2, 0, 0, 2, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..classes import class_index
from .base import Context, NoTarget, Target, check_range, class_logits

__all__ = ["ACTIVATIONS", "SOFTMAX_KINDS", "ClassIndex", "ClassRows", "Classes", "Chooser",
           "Label", "MultiLabel", "TopK", "TrueLabel", "one_class", "ranking_output"]

#: How a head turns a logit into a probability: ``"softmax"`` (one class per image) or
#: ``"sigmoid"`` (multi-label heads, each label on its own).
ACTIVATIONS = ("softmax", "sigmoid")


@dataclass(frozen=True, eq=False)
class ClassRows(Target):
    """Resolved rows: class ``classes[r]`` of input ``index[r]`` (CPU longs), rank in its input.

    A target of row-aligned outputs: ``score(output)`` reads ``output[r, classes[r]]`` (the
    logit), ``probability(output)`` its softmax (or, with ``activation="sigmoid"``, its
    sigmoid: a multi-label head).
    """

    classes: Tensor
    index: Tensor
    ranks: tuple[int, ...] = ()
    activation: str = "softmax"

    def resolve(self, output: Any, context: Context | None = None) -> ClassRows:
        """Itself, once its classes are checked against the output's width."""
        context = context or Context()
        check_range(self.classes.tolist(), int(class_logits(output, context).shape[1]), context)
        return self

    def score(self, output: Tensor) -> Tensor:
        """``output[r, classes[r]]`` for each row of a row-aligned output (N, C)."""
        return output.gather(1, self._classes_on(output.device)[:, None])[:, 0]

    def _classes_on(self, device: torch.device) -> Tensor:
        """``classes`` on ``device``, copied once (the loop scores the same rows each step)."""
        cached = self.__dict__.get("_on_device")
        if cached is None or cached.device != device:
            cached = self.classes.to(device)
            object.__setattr__(self, "_on_device", cached)
        return cached

    def probability(self, output: Tensor) -> Tensor:
        """The softmax (or sigmoid) probability of each row's class, for an output (N, C)."""
        if self.activation == "sigmoid":
            return torch.sigmoid(self.score(output))
        return self.score(torch.softmax(output, dim=1))

    def subset(self, rows: Tensor) -> ClassRows:
        """The rows ``rows`` (a batch of the optimisation)."""
        rows = rows.cpu()
        return ClassRows(self.classes[rows], self.index[rows], activation=self.activation)

    def spec(self) -> Any:
        """ClassRows's description (see :meth:`Target.spec`)."""
        return self.classes.tolist()


def _rows(per_input: Sequence[Sequence[int]]) -> ClassRows:
    """Rows from the classes of each input (several per input: ranks 0, 1, ...)."""
    classes = [c for cs in per_input for c in cs]
    index = [i for i, cs in enumerate(per_input) for _ in cs]
    ranks = tuple(r for cs in per_input for r in range(len(cs)))
    return ClassRows(torch.tensor(classes, dtype=torch.long),
                     torch.tensor(index, dtype=torch.long), ranks)


@dataclass(frozen=True)
class ClassIndex(Target):
    """Class ``index`` of every input."""

    index: int

    def resolve(self, output: Any, context: Context | None = None) -> ClassRows:
        """ClassIndex's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        logits = class_logits(output, context)
        check_range([self.index], int(logits.shape[1]), context)
        return _rows([[self.index]] * int(logits.shape[0]))

    def spec(self) -> Any:
        """ClassIndex's description (see :meth:`Target.spec`)."""
        return self.index


@dataclass(frozen=True)
class Label(Target):
    """The class named ``name`` in the model's labels (exact, then case-insensitive)."""

    name: str

    def bind(self, labels: Sequence[str] | None, name: str = "target") -> ClassIndex:
        """The class index of this name in ``labels`` (refused with the close matches)."""
        return ClassIndex(class_index(self.name, labels, name=name))

    def resolve(self, output: Any, context: Context | None = None) -> ClassRows:
        """Label's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        return self.bind(context.labels, context.name).resolve(output, context)

    def spec(self) -> Any:
        """Label's description (see :meth:`Target.spec`)."""
        return self.name


@dataclass(frozen=True)
class TopK(Target):
    """The ``k`` highest outputs of each input (``k=1``: the predicted class), best first.

    Ranked on the output it is resolved against (the logits in ``explain`` and the baselines,
    the probabilities in the metrics and dataset runs: the same classes, softmax being
    monotonic). ``k`` larger than the number of classes gives every class.
    """

    k: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"TopK: `k` must be an int >= 1, got {self.k!r}")

    def resolve(self, output: Any, context: Context | None = None) -> ClassRows:
        """TopK's rows on ``output`` (see :meth:`Target.resolve`)."""
        output = class_logits(output, context or Context())
        if self.k == 1:  # argmax: the first of equal maxima, as the engine always picked
            top = output.argmax(dim=1)[:, None]
        else:
            top = output.topk(min(int(self.k), int(output.shape[1])), dim=1).indices
        return _rows(top.cpu().tolist())

    def spec(self) -> Any:
        """TopK's description (see :meth:`Target.spec`)."""
        return None if self.k == 1 else ["top", int(self.k)]


@dataclass(frozen=True)
class Classes(Target):
    """One class per input, or, for a single input, several classes (one row each)."""

    items: tuple[ClassIndex | Label, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(one_class(v, None, "target")
                                                for v in self.items))

    def resolve(self, output: Any, context: Context | None = None) -> ClassRows:
        """Classes's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        output = class_logits(output, context)
        rows, count = int(output.shape[0]), len(self.items)
        if not count:
            raise ValueError(f"`{context.name}` is an empty list; give one class index per "
                             f"{context.one}")
        values = [t.index if isinstance(t, ClassIndex) else t.bind(context.labels,
                                                                     context.name).index
                  for t in self.items]
        if count != rows and not (context.several_for_one and rows == 1):
            extra = (" (or several classes for a single image)" if context.several_for_one
                     else "")
            raise ValueError(f"`{context.name}` has {count} entries for {rows} {context.what}; "
                             f"give one class per {context.one}{extra}")
        check_range(values, int(output.shape[1]), context)
        if rows == 1 and count > 1:
            return ClassRows(torch.tensor(values), torch.zeros(count, dtype=torch.long),
                             tuple(range(count)))
        return _rows([[v] for v in values])

    def spec(self) -> Any:
        """Classes's description (see :meth:`Target.spec`)."""
        return [t.spec() for t in self.items]


def _item_label(context: Context, i: int) -> Any:
    return None if context.items is None else getattr(context.items[i], "label", None)


@dataclass(frozen=True)
class TrueLabel(Target):
    """Each input's true label (a dataset's, e.g. an ImageFolder's folder name)."""

    def resolve(self, output: Any, context: Context | None = None) -> ClassRows:
        """TrueLabel's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        output = class_logits(output, context)
        if context.items is None:
            raise ValueError(f"`{context.name}` TrueLabel() ('true') needs the images' true "
                             f"labels, which only a dataset run has (explain_dataset); give a "
                             f"class index or a label name")
        labels = [_item_label(context, i) for i in range(int(output.shape[0]))]
        if any(label is None for label in labels):
            raise NoTarget("no true label for target='true'")
        check_range(labels, int(output.shape[1]), context)
        return _rows([[int(label)] for label in labels])

    def spec(self) -> Any:
        """TrueLabel's description (see :meth:`Target.spec`)."""
        return "true"


@dataclass(frozen=True)
class Chooser(Target):
    """``fn(output row (C,), item) -> class or classes`` per input (``item``: dataset item)."""

    fn: Callable[..., Any] = field(compare=False)

    def resolve(self, output: Any, context: Context | None = None) -> ClassRows:
        """Chooser's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        output = class_logits(output, context)
        per_input = []
        for i in range(int(output.shape[0])):
            item = None if context.items is None else context.items[i]
            value = self.fn(output[i], item)
            values = [value] if isinstance(value, int) else list(value)
            if not values or not all(isinstance(v, int) and 0 <= v < output.shape[1]
                                     for v in values):
                raise NoTarget(f"`{context.name}` callable returned {value!r}; expected class "
                               f"index(es)")
            per_input.append(values)
        return _rows(per_input)

    def spec(self) -> Any:
        """Chooser's description (see :meth:`Target.spec`)."""
        return getattr(self.fn, "__qualname__", type(self.fn).__qualname__)


def one_class(value: Any, labels: Sequence[str] | None, name: str) -> ClassIndex | Label:
    """One list entry: an index or a label name (floats, bools, others refused).

    Example:
        >>> one_class("b", ["a", "b"], "target")
        ClassIndex(index=1)
    """
    if isinstance(value, (ClassIndex, Label)):
        return value if isinstance(value, ClassIndex) or labels is None else value.bind(
            labels, name)
    if isinstance(value, str):
        return Label(value) if labels is None else Label(value).bind(labels, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        class_index(value, labels, name=name)  # raises its TypeError
    return ClassIndex(int(value))


@dataclass(frozen=True)
class MultiLabel(Target):
    """Labels of a multi-label head (independent sigmoids, e.g. ``BCEWithLogitsLoss``).

    The score Opti-CAM keeps is the label's logit, as for a class; its probability (in every
    metric, and in the class list :meth:`probabilities` gives) is the label's sigmoid, not a
    softmax over the labels.

    Args:
        classes: ``None``: every label whose sigmoid exceeds ``threshold`` in each input
            (best first; the best label alone when none does); an index, a label name or a
            list of them: those labels in every input (one row each).
        threshold: Probability a label must exceed to be explained (``classes=None``).

    Example:
        >>> logits = torch.tensor([[2.0, -1.0, 0.5]])
        >>> MultiLabel().resolve(logits).classes, MultiLabel([1]).probability(logits)
        (tensor([0, 2]), tensor([0.2689]))
    """

    classes: Any = None
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"MultiLabel: `threshold` must be a probability in [0, 1), got "
                             f"{self.threshold!r}")
        if self.classes is not None:
            values = self.classes if isinstance(self.classes, (list, tuple)) else [self.classes]
            if not values:
                raise ValueError("MultiLabel: `classes` is empty; give label indices or names, "
                                 "or None (every label over `threshold`)")
            object.__setattr__(self, "classes", tuple(one_class(v, None, "target")
                                                      for v in values))

    def resolve(self, output: Any, context: Context | None = None) -> ClassRows:
        """MultiLabel's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        logits = class_logits(output, context)
        if self.classes is None:
            probs = torch.sigmoid(logits.detach().float())
            order = probs.argsort(dim=1, descending=True, stable=True)
            per_input = [[int(c) for c in order[i] if probs[i, c] > self.threshold]
                         or [int(order[i, 0])] for i in range(int(logits.shape[0]))]
        else:
            values = [t.index if isinstance(t, ClassIndex) else t.bind(context.labels,
                                                                         context.name).index
                      for t in self.classes]
            check_range(values, int(logits.shape[1]), context)
            per_input = [values] * int(logits.shape[0])
        rows = _rows(per_input)
        return ClassRows(rows.classes, rows.index, rows.ranks, activation="sigmoid")

    def probabilities(self, output: Any) -> Tensor:
        """The sigmoid of every label (B, labels): the class list of a multi-label head."""
        return torch.sigmoid(class_logits(output, Context()).float())

    def spec(self) -> Any:
        """MultiLabel's description (see :meth:`Target.spec`)."""
        chosen = None if self.classes is None else [t.spec() for t in self.classes]
        return {"multilabel": chosen, "threshold": self.threshold}


#: The class kinds resolved on softmax probabilities outside ``explain`` (see
#: :func:`ranking_output`).
SOFTMAX_KINDS = (TopK, ClassIndex, Label, Classes, TrueLabel, Chooser, ClassRows)


def ranking_output(target: Target, output: Any) -> Any:
    """What ``target`` is resolved on in the metrics and dataset runs.

    The softmax probabilities (B, classes) for the class kinds of :data:`SOFTMAX_KINDS` (a
    :class:`Chooser` there gets an image's probabilities, as it always has; the classes of
    the others are those of the logits, softmax being monotonic); the output itself for every
    other kind (:class:`MultiLabel` thresholds its sigmoids, regions and boxes read maps and
    detections).

    Example:
        >>> out = torch.zeros(1, 2)
        >>> ranking_output(TopK(), out), ranking_output(MultiLabel(), out)
        (tensor([[0.5000, 0.5000]]), tensor([[0., 0.]]))
    """
    if isinstance(target, SOFTMAX_KINDS) and isinstance(output, Tensor) and output.ndim == 2:
        return torch.softmax(output, dim=1)
    return output
