"""A griffe extension for the API reference: ``Example:`` sections read as code examples.

The package's docstrings (Google style) head their doctests ``Example:``; griffe reads only
``Examples:`` as an examples section (``>>>`` lines shown as Python with their output) and would
render ``Example:`` as a note of plain Markdown. This renames the heading when griffe loads a
docstring; the source is not changed.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(Extension):
    """Rename ``Example:`` section headings to ``Examples:`` in every loaded docstring."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        """Rewrite the object's docstring heading before griffe parses it."""
        if obj.docstring is not None:
            obj.docstring.value = HEADING.sub(r"\1Examples:", obj.docstring.value)
