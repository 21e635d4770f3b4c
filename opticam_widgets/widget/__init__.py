"""The Jupyter widget: :class:`OptiCAMWidget` and its building blocks.

Example:
    >>> from opticam_widgets.widget import OptiCAMWidget  # doctest: +SKIP
    >>> OptiCAMWidget.default().show(sample_image("chelsea"))  # doctest: +SKIP
"""

from .app import OptiCAMWidget
from .canvas import SaliencyCanvas
from .controls import Controls
from .launch import AppLoader

__all__ = ["AppLoader", "Controls", "OptiCAMWidget", "SaliencyCanvas"]
