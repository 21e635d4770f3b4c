"""The explorer tests' shared fixture: an explorer over the module's own ``results``."""

import pytest

from opticam_widgets.explorer import OptiCAMExplorer


@pytest.fixture()
def explorer(results):
    ex = OptiCAMExplorer(results, page_size=4)
    yield ex
    ex.close()
