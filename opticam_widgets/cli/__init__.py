"""The ``opticam`` command (also ``python -m opticam_widgets``).

:mod:`.main` holds the commands, :mod:`.args` their shared argument types. It calls only the
public API.
"""

from .main import main

__all__ = ["main"]
