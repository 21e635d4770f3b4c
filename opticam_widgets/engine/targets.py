"""What to explain: one grammar of targets for every entry point.

A target says which scalar of the model's output a map must keep. ``OptiCAM.explain``, the
metrics and curves, the baselines, the widget, the dataset engine and the CLI all take the
same objects, and the same shorthand through :func:`as_target`:

* :class:`TopK` ``(k=1)``: the ``k`` best classes of each image (``None``, ``("top", k)``);
* :class:`ClassIndex` ``(i)``: class ``i`` of every image (``3``);
* :class:`Label` ``(name)``: the class named so in the model's labels (``"tabby"``);
* :class:`Classes` ``([...])``: one class per image, or several of one (``[3, "tabby"]``);
* :class:`TrueLabel` ``()``: each image's true label, in dataset runs (``"true"``);
* :class:`Chooser` ``(fn)``: ``fn(output row, item) -> class(es)`` (a plain callable).

Every target is a callable of the model's output ``(B, C)``: ``target(output)`` (its
:meth:`~Target.score`) is the differentiable ``(N,)`` score Opti-CAM keeps (the logit), and
:meth:`~Target.probability` the ``(N,)`` probability the faithfulness metrics compare. Both go
through :meth:`~Target.resolve`, which turns the target into :class:`ClassRows` for a given
output: one class per row and the input each row is of (a top-k target gives ``k`` rows per
image). ``ClassRows`` is itself a target of a row-aligned output.

Adding a kind is one small class: subclass :class:`Target`, implement ``resolve(output,
context) -> ClassRows`` (refuse what it cannot explain with a ``ValueError`` naming the fix;
:class:`NoTarget` for "this image has nothing to explain", which a dataset run stores as the
row's error), and give :meth:`~Target.spec` a JSON-friendly description (a store's settings).
A kind whose rows carry more than a class (a region, a box, an embedding) returns its own rows
object with ``score``, ``probability`` and ``subset``, as :class:`ClassRows` does.

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

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from .classes import class_index

__all__ = ["ClassIndex", "ClassRows", "Classes", "Chooser", "Context", "Label", "NoTarget",
           "Target", "TargetLike", "TopK", "TrueLabel", "as_target", "resolve"]


class NoTarget(ValueError):
    """An input with nothing to explain (no true label, a chooser returning no class)."""


@dataclass(frozen=True)
class Context:
    """What a target is resolved against, besides the output.

    Attributes:
        labels: The model's class names (label names are looked up there), or ``None``.
        items: One object per input with a ``label`` attribute (a dataset item: its true
            label) for :class:`TrueLabel` and :class:`Chooser`; ``None`` elsewhere.
        name: The argument's name, for messages (``"target"``, ``"--target"``).
        what: Plural noun of the inputs, for messages (``"images"``, ``"saliency maps"``).
        several_for_one: With a single input, a list may give several classes (one row each).
    """

    labels: Sequence[str] | None = None
    items: Sequence[Any] | None = None
    name: str = "target"
    what: str = "images"
    several_for_one: bool = True

    @property
    def one(self) -> str:
        """The singular of :attr:`what`."""
        return self.what.rstrip("s")


class Target:
    """What to explain: a callable of the model's output (``(B, C)``); see the module."""

    def resolve(self, output: Tensor, context: Context | None = None) -> ClassRows:
        """The rows this target asks for on ``output`` (one class and input per row)."""
        raise NotImplementedError

    def spec(self) -> Any:
        """A JSON-friendly description (what a dataset store records)."""
        return repr(self)

    def score(self, output: Tensor) -> Tensor:
        """The (N,) scores to keep: the logit of each row's class (differentiable)."""
        rows = self.resolve(output.detach())
        return rows.score(output[rows.index.to(output.device)])

    def probability(self, output: Tensor) -> Tensor:
        """The (N,) softmax probabilities of each row's class."""
        rows = self.resolve(output.detach())
        return rows.probability(output[rows.index.to(output.device)])

    def __call__(self, output: Tensor) -> Tensor:
        """:meth:`score`."""
        return self.score(output)


def _check_range(classes: Sequence[int], count: int, context: Context) -> None:
    bad = [c for c in classes if not 0 <= c < count]
    if bad:
        raise ValueError(f"`{context.name}` {bad[0]} is out of range: the model has {count} "
                         f"classes (a class index is in 0..{count - 1})")


@dataclass(frozen=True, eq=False)
class ClassRows(Target):
    """Resolved rows: class ``classes[r]`` of input ``index[r]`` (CPU longs), rank in its input.

    A target of row-aligned outputs: ``score(output)`` reads ``output[r, classes[r]]``.
    """

    classes: Tensor
    index: Tensor
    ranks: tuple[int, ...] = ()

    def resolve(self, output: Tensor, context: Context | None = None) -> ClassRows:
        """Itself, once its classes are checked against the output's width."""
        _check_range(self.classes.tolist(), int(output.shape[1]), context or Context())
        return self

    def score(self, output: Tensor) -> Tensor:
        """``output[r, classes[r]]`` for each row of a row-aligned output (N, C)."""
        return output.gather(1, self.classes.to(output.device)[:, None])[:, 0]

    def probability(self, output: Tensor) -> Tensor:
        """The softmax probability of each row's class, for a row-aligned output (N, C)."""
        return self.score(torch.softmax(output, dim=1))

    def subset(self, rows: Tensor) -> ClassRows:
        """The rows ``rows`` (a batch of the optimisation)."""
        rows = rows.cpu()
        return ClassRows(self.classes[rows], self.index[rows])

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

    def resolve(self, output: Tensor, context: Context | None = None) -> ClassRows:
        """ClassIndex's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        _check_range([self.index], int(output.shape[1]), context)
        return _rows([[self.index]] * int(output.shape[0]))

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

    def resolve(self, output: Tensor, context: Context | None = None) -> ClassRows:
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

    def resolve(self, output: Tensor, context: Context | None = None) -> ClassRows:
        """TopK's rows on ``output`` (see :meth:`Target.resolve`)."""
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
        object.__setattr__(self, "items", tuple(_one_class(v, None, "target")
                                                for v in self.items))

    def resolve(self, output: Tensor, context: Context | None = None) -> ClassRows:
        """Classes's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
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
        _check_range(values, int(output.shape[1]), context)
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

    def resolve(self, output: Tensor, context: Context | None = None) -> ClassRows:
        """TrueLabel's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
        if context.items is None:
            raise ValueError(f"`{context.name}` TrueLabel() ('true') needs the images' true "
                             f"labels, which only a dataset run has (explain_dataset); give a "
                             f"class index or a label name")
        labels = [_item_label(context, i) for i in range(int(output.shape[0]))]
        if any(label is None for label in labels):
            raise NoTarget("no true label for target='true'")
        _check_range(labels, int(output.shape[1]), context)
        return _rows([[int(label)] for label in labels])

    def spec(self) -> Any:
        """TrueLabel's description (see :meth:`Target.spec`)."""
        return "true"


@dataclass(frozen=True)
class Chooser(Target):
    """``fn(output row (C,), item) -> class or classes`` per input (``item``: dataset item)."""

    fn: Callable[..., Any] = field(compare=False)

    def resolve(self, output: Tensor, context: Context | None = None) -> ClassRows:
        """Chooser's rows on ``output`` (see :meth:`Target.resolve`)."""
        context = context or Context()
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


#: What every ``target=`` argument takes: a :class:`Target` or its shorthand (:func:`as_target`).
TargetLike = Union[Target, None, int, str, Sequence[Union[int, str]], Tensor, np.ndarray,
                   Callable[..., Any]]


def _is_top(value: Any) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == "top"
            and isinstance(value[1], (int, np.integer)) and not isinstance(value[1], bool))


def _one_class(value: Any, labels: Sequence[str] | None, name: str) -> ClassIndex | Label:
    """One list entry: an index or a label name (floats, bools, others refused)."""
    if isinstance(value, (ClassIndex, Label)):
        return value if isinstance(value, ClassIndex) or labels is None else value.bind(
            labels, name)
    if isinstance(value, str):
        return Label(value) if labels is None else Label(value).bind(labels, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        class_index(value, labels, name=name)  # raises its TypeError
    return ClassIndex(int(value))


def _from_array(value: Tensor | np.ndarray, name: str) -> Any:
    arr = value.detach().cpu().numpy() if isinstance(value, Tensor) else value
    if arr.ndim > 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype.kind == "U"):
        raise TypeError(f"`{name}` tensor/array must hold integer class indices or label "
                        f"names (0-D or 1-D)")
    return arr.reshape(-1).tolist() if arr.ndim == 1 else arr.item()


def as_target(value: Any, labels: Sequence[str] | None = None, *,
              name: str = "target") -> Target:
    """The :class:`Target` a value asks for (targets themselves are returned as they are).

    Args:
        value: A :class:`Target`, ``None`` (top-1), an int, a label name, ``"true"``,
            ``("top", k)``, a list of ints and names, a 0-D/1-D integer tensor or array, or a
            callable ``(output row, item) -> class(es)``.
        labels: The model's labels: label names are checked and turned into indices now;
            ``None`` leaves them to be looked up when resolved.
        name: The argument's name, for messages.

    Raises:
        TypeError: a float, a bool, or anything else than the above.
        ValueError: a negative index, an unknown label name (close ones suggested), a name
            given ``labels=None``... when resolved.

    Example:
        >>> as_target(None), as_target(3), as_target(("top", 2)), as_target("true")
        (TopK(k=1), ClassIndex(index=3), TopK(k=2), TrueLabel())
    """
    if isinstance(value, Label) and labels is not None:
        return value.bind(labels, name)
    if isinstance(value, Classes) and labels is not None:
        return Classes(tuple(_one_class(v, labels, name) for v in value.items))
    if isinstance(value, Target):
        return value
    if value is None:
        return TopK(1)
    if isinstance(value, (Tensor, np.ndarray)):
        value = _from_array(value, name)
    if isinstance(value, str):
        return TrueLabel() if value == "true" else _one_class(value, labels, name)
    if _is_top(value):
        return TopK(int(value[1]))
    if isinstance(value, (list, tuple)):
        return Classes(tuple(_one_class(v, labels, name) for v in value))
    if callable(value):
        return Chooser(value)
    one = _one_class(value, labels, name)
    if isinstance(one, ClassIndex) and one.index < 0:
        raise ValueError(f"`{name}` {one.index} is out of range: a class index is >= 0")
    return one


def resolve(target: Any, output: Tensor, *, labels: Sequence[str] | None = None,
            items: Sequence[Any] | None = None, name: str = "target", what: str = "images",
            several_for_one: bool = True) -> ClassRows:
    """:func:`as_target` and :meth:`Target.resolve` in one call (the entry points' one line).

    Example:
        >>> resolve([2, "b"], torch.zeros(1, 3), labels=["a", "b", "c"]).classes
        tensor([2, 1])
    """
    context = Context(labels=labels, items=items, name=name, what=what,
                      several_for_one=several_for_one)
    return as_target(target, name=name).resolve(output, context)
