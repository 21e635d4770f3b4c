"""Browse a dataset's Opti-CAM maps in Jupyter: :class:`OptiCAMExplorer`.

Example:
    >>> from opticam_widgets.explorer import OptiCAMExplorer  # doctest: +SKIP
    >>> OptiCAMExplorer("results/", model="default").show()  # doctest: +SKIP

Needs the dataset extra (``pip install opticam-widgets[dataset]``: pyarrow and pandas).
"""

from ..dataset import DatasetResults  # noqa: F401 - without pyarrow: its clear ImportError
from .app import OptiCAMExplorer
from .confusion import Confusion, confusion_counts
from .query import Query, browse_table, select, selection_summary

__all__ = ["Confusion", "OptiCAMExplorer", "Query", "browse_table", "confusion_counts", "select",
           "selection_summary"]
