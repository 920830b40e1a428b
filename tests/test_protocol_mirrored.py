"""Every case of tests/harness.py under MirroredStrategy on two logical CPUs trains
to one device's weights (its own file, so that it runs beside test_protocol.py)."""

import numpy as np
import pytest

import harness
from test_protocol import CASES, ok, run


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    return run("mirrored", tmp_path_factory.mktemp("mirrored"))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_trains_under_mirrored_strategy_as_on_one_device(mirrored, case):
    result = ok(mirrored[case], case)
    assert result["replicas"] == 2 and np.isfinite(result["losses"]).all()
    assert result["difference"] <= harness.atol(case), result
