"""Fixtures shared by the test files.

Constants, data makers and small estimators shared by several files (the tiny training
settings ``TINY``, small features, images and HDF5 archives) are plain functions in
``tests/helpers.py``: a test file imports them, which it cannot do from a conftest.
"""

import pytest


@pytest.fixture
def pyplot():
    """matplotlib.pyplot on the Agg backend, every figure closed after the test.

    The test is skipped where matplotlib is not installed (the minimum-versions job).
    """
    pytest.importorskip("matplotlib").use("Agg")
    plt = pytest.importorskip("matplotlib.pyplot")
    yield plt
    plt.close("all")
