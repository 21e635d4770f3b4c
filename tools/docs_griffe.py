"""A griffe extension for the API reference: the package's docstrings read as Markdown.

- The docstrings (Google style) head their doctests ``Example:``; griffe reads only
  ``Examples:`` as an examples section (``>>>`` lines shown as Python with their output) and
  would render ``Example:`` as a note of plain Markdown: the heading is renamed.
- Sphinx roles (``:class:`~opticam_widgets.model.bundle.ModelBundle```, ``:func:`f```) become inline
  code (``ModelBundle``, ``f``): a leading ``~`` keeps the last part of the name, as in Sphinx.

Only what griffe loads changes; the source is not touched.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def markdown(docstring: str) -> str:
    """The docstring with ``Examples:`` headings and Sphinx roles as inline code.

    Example:
        >>> markdown("Uses :class:`~a.b.C`, :func:`f` and :mod:`a.b`.")
        'Uses `C`, `f` and `a.b`.'
        >>> markdown("    Example:").strip()
        'Examples:'
    """
    text = HEADING.sub(r"\1Examples:", docstring)
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`",
                    text)


class ExampleSections(Extension):
    """Rewrite every loaded docstring with :func:`markdown` before griffe parses it."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        """Rewrite the object's docstring."""
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
