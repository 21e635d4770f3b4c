"""Names of a package imported on first use (PEP 562 module ``__getattr__``).

Example:
    >>> namespace: dict = {}
    >>> lazy_attribute("importlib", {"import_module": "util"}, "nope", namespace)
    Traceback (most recent call last):
    AttributeError: module 'importlib' has no attribute 'nope'
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["lazy_attribute"]


def lazy_attribute(package: str, table: Mapping[str, str], name: str,
                   namespace: dict[str, Any]) -> Any:
    """``package.name``, taken from its submodule ``table[name]`` and kept in ``namespace``.

    Args:
        package: The package's ``__name__``.
        table: Exported name → submodule (relative to ``package``).
        name: The name asked for.
        namespace: The package's ``globals()``: the value is stored there, so the import
            happens once.

    Raises:
        AttributeError: ``name`` is not in ``table``.
    """
    if name not in table:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{table[name]}", package), name)
    namespace[name] = value
    return value
