"""Explain a whole dataset: a batched engine, a Parquet store, and the results object.

Example:
    >>> from opticam_widgets.dataset import explain_dataset, load_results
    >>> results = explain_dataset("default", "photos/", "results/")  # doctest: +SKIP
    >>> results.summary()  # doctest: +SKIP

Needs ``pyarrow`` and ``pandas`` (``pip install opticam-widgets[dataset]``; Ray Data for
``engine="ray"``: ``pip install opticam-widgets[ray]``). Names are imported on first use, so the
command line can register its subcommands without loading them.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ENGINES": "api",
    "explain_dataset": "api",
    "DatasetResults": "results",
    "load_results": "results",
    "SCHEMA": "store",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError as exc:  # depends on the environment
            raise ImportError("opticam_widgets.dataset needs pyarrow and pandas: "
                              "pip install 'opticam-widgets[dataset]'") from exc
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
