"""The native planner's tests skip when glamor._C is missing, so its absence must fail somewhere."""

import os

import pytest

from glamor import ops


def test_the_native_extension_is_built():
    if os.environ.get("GLAMOR_ALLOW_NO_NATIVE") == "1":
        pytest.skip("GLAMOR_ALLOW_NO_NATIVE=1: testing the reference planner alone")
    assert ops.available(), (f"glamor._C did not load ({ops.import_error()}), so the native planner's "
                             f"tests would all skip; {ops.REBUILD_HINT}")
