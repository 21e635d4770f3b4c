"""Explain a whole dataset: a batched engine, a Parquet store, and the results object.

Example:
    >>> from opticam_widgets.dataset import explain_dataset, load_results
    >>> results = explain_dataset("default", "photos/", "results/")  # doctest: +SKIP
    >>> results.summary()  # doctest: +SKIP

Needs ``pyarrow`` and ``pandas`` (``pip install opticam-widgets[dataset]``; Ray Data for
``engine="ray"``: ``pip install opticam-widgets[ray]``).
"""

from __future__ import annotations

try:
    import pyarrow  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("opticam_widgets.dataset needs pyarrow and pandas: "
                      "pip install 'opticam-widgets[dataset]'") from exc

from .api import ENGINES, explain_dataset
from .results import DatasetResults, load_results
from .store import SCHEMA

__all__ = ["ENGINES", "SCHEMA", "DatasetResults", "explain_dataset", "load_results"]
