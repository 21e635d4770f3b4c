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

from typing import Any

from ..support.lazy import lazy_attribute

_LAZY = {
    "ENGINES": "options",
    "RunOptions": "options",
    "explain_dataset": "api",
    "DatasetResults": "results",
    "load_results": "results",
    "SCHEMA": "store",
    "RunStopped": "signals",
    "SettingsMismatchError": "fingerprint",
    "StoreBusyError": "lock",
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
    return lazy_attribute(__name__, _LAZY, name, globals())


def __dir__() -> list[str]:
    return __all__
