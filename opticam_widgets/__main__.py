"""``python -m opticam_widgets``: the ``opticam`` command (see :mod:`opticam_widgets.cli.main`)."""

from .cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
