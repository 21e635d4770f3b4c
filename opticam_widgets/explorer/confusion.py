"""The confusion matrix of a selection: rows by true and predicted class (pure pandas, no widgets).

:func:`confusion_counts` counts the rows of a :func:`~.query.browse_table` selection by
``(true_class, predicted_class)``, **over the labelled rows only** (``correct`` known: the true
class is one the model knows); rows without a label are counted apart, never in a cell. With
many classes, the ``limit`` most frequent true and predicted classes are kept, the rest is said
in the caption (pick them with the class filters). A true class and a predicted class are the
same class when their label indices are (``true_label``, ``predicted``: a class folder
``wall_clock`` is the model's ``wall clock``), else when their names are; predicted columns
follow the true rows they match, so the diagonal holds the right predictions.

A cell is also a filter: :attr:`Query.cell <opticam_widgets.explorer.query.Query.cell>` keeps
the rows of one ``(true, predicted)`` pair (see :class:`~.matrix.ConfusionMatrix`, the view).

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"true_class": ["cat", "cat", "dog", "(no label)"],
    ...                      "predicted_class": ["cat", "dog", "dog", "cat"],
    ...                      "correct": [True, False, True, None]})
    >>> m = confusion_counts(rows)
    >>> m.true, m.predicted, m.counts, m.labelled, m.unlabelled
    (('cat', 'dog'), ('cat', 'dog'), ((1, 1), (0, 1)), 3, 1)
    >>> cell_name("cat", "dog", m.count("cat", "dog"))
    'true cat, predicted dog: 1 row'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LIMIT", "Confusion", "cell_name", "confusion_counts"]

#: Most true classes (rows) and predicted classes (columns) a matrix shows.
LIMIT = 8


def _rows(n: int) -> str:
    return f"{n} row{'' if n == 1 else 's'}"


def cell_name(true: str, predicted: str, count: int) -> str:
    """The accessible name of a cell: ``"true cat, predicted dog: 3 rows"``.

    Example:
        >>> cell_name("tabby", "tabby", 0)
        'true tabby, predicted tabby: 0 rows'
    """
    return f"true {true}, predicted {predicted}: {_rows(count)}"


@dataclass(frozen=True)
class Confusion:
    """Counts of labelled rows by true class (rows) and predicted class (columns).

    Attributes:
        true: The true classes shown, most rows first.
        predicted: The predicted classes shown (those that are also true classes first, in
            the order of :attr:`true`, then most rows first).
        counts: ``counts[i][j]``: rows of true class ``true[i]`` predicted ``predicted[j]``.
        labelled: Labelled rows of the selection (what the matrix counts).
        unlabelled: Rows without a label (left out of every cell).
        true_classes: Distinct true classes among the labelled rows (shown or not).
        predicted_classes: Distinct predicted classes among the labelled rows.
        same: The ``(true, predicted)`` pairs shown that are one class (the diagonal).
    """

    true: tuple[str, ...] = ()
    predicted: tuple[str, ...] = ()
    counts: tuple[tuple[int, ...], ...] = ()
    labelled: int = 0
    unlabelled: int = 0
    true_classes: int = 0
    predicted_classes: int = 0
    same: tuple[tuple[str, str], ...] = ()

    def count(self, true: str, predicted: str) -> int:
        """Rows of a ``(true, predicted)`` pair (0 when either class is not shown)."""
        if true not in self.true or predicted not in self.predicted:
            return 0
        return self.counts[self.true.index(true)][self.predicted.index(predicted)]

    @property
    def shown(self) -> int:
        """Labelled rows that fall in a shown cell."""
        return sum(sum(row) for row in self.counts)

    def caption(self) -> str:
        """What the matrix counts, in words (over the labelled rows only; what is left out).

        Example:
            >>> Confusion(("cat",), ("cat",), ((2,),), labelled=2, unlabelled=1, true_classes=1,
            ...           predicted_classes=1).caption()
            'True class (rows) by predicted class (columns), over the 2 labelled rows; 1 row \
without a label left out.'
        """
        if not self.labelled:
            text = "No labelled rows in the selection: no true classes to count."
        else:
            text = ("True class (rows) by predicted class (columns), over the "
                    f"{self.labelled} labelled row{'' if self.labelled == 1 else 's'}")
        if self.unlabelled:
            text += f"; {_rows(self.unlabelled)} without a label left out"
        hidden = self.labelled - self.shown
        if hidden:
            text += (f"; {len(self.true)} of {self.true_classes} true and "
                     f"{len(self.predicted)} of {self.predicted_classes} predicted classes "
                     f"shown (the most frequent), {_rows(hidden)} in the others")
        return text if text.endswith(".") else text + "."

    def as_dict(self) -> dict[str, Any]:
        """The matrix as the view's JSON: classes, counts, cell names, caption."""
        return {"true": list(self.true), "predicted": list(self.predicted),
                "counts": [list(r) for r in self.counts],
                "same": [list(pair) for pair in self.same],
                "names": [[cell_name(t, p, n) for p, n in zip(self.predicted, row)]
                          for t, row in zip(self.true, self.counts)],
                "caption": self.caption()}


def _most_rows(column: Any) -> list[str]:
    """Distinct values of ``column``, most rows first, ties by name (case-insensitive)."""
    sizes = column.astype(str).value_counts()
    return sorted(sizes.index, key=lambda n: (-int(sizes[n]), n.lower(), n))


def _same_class(labelled: Any) -> dict[str, str]:
    """Each true class name -> the predicted class name of the same class.

    The same class by label index where the rows have indices (``true_label``, ``predicted``),
    else by name; among the names of ``labelled``.
    """
    import pandas as pd

    true = labelled["true_class"].astype(str).tolist()
    predicted = labelled["predicted_class"].astype(str).tolist()
    if "true_label" not in labelled or "predicted" not in labelled:
        return {n: n for n in true if n in set(predicted)}
    by_index = {int(i): n for i, n in zip(labelled["predicted"], predicted) if not pd.isna(i)}
    return {name: by_index[int(label)] for name, label in zip(true, labelled["true_label"])
            if not pd.isna(label) and int(label) in by_index}


def confusion_counts(selection: Any, limit: int = LIMIT) -> Confusion:
    """Count the labelled rows of a selection by ``(true_class, predicted_class)``.

    Args:
        selection: Rows of a :func:`~.query.browse_table` frame (``true_class``,
            ``predicted_class``, ``correct``).
        limit: Most true and most predicted classes shown (the most frequent ones).

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"`limit` must be at least 1, got {limit!r}")
    known = selection["correct"].notna().to_numpy(dtype=bool)
    labelled = selection[known]
    true_all = _most_rows(labelled["true_class"])
    predicted_all = _most_rows(labelled["predicted_class"])
    true = true_all[:limit]
    top = predicted_all[:limit]
    twin = _same_class(labelled)
    predicted = [twin[n] for n in true if twin.get(n) in top]
    predicted += [n for n in top if n not in predicted]
    pairs = labelled.groupby([labelled["true_class"].astype(str),
                              labelled["predicted_class"].astype(str)]).size()
    counts = tuple(tuple(int(pairs.get((t, p), 0)) for p in predicted) for t in true)
    return Confusion(true=tuple(true), predicted=tuple(predicted), counts=counts,
                     labelled=int(known.sum()), unlabelled=int(len(selection) - known.sum()),
                     true_classes=len(true_all), predicted_classes=len(predicted_all),
                     same=tuple((t, twin[t]) for t in true if twin.get(t) in predicted))
