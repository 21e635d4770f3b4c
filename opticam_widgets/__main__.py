"""``python -m opticam_widgets``: the ``opticam`` command (see :mod:`opticam_widgets.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
