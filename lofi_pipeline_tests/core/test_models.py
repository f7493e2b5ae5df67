"""The one missing-value rule the core uses for table rows."""

import numpy as np
import pandas as pd
import pytest

from lofi_pipeline.core.models import is_missing, number_or_none


@pytest.mark.parametrize("value,missing", [
    (None, True), (float("nan"), True), (np.float64("nan"), True), (pd.NA, True), (pd.NaT, True),
    (0, False), (0.0, False), ("", False), ("x", False), ([1], False), (np.array([1.0, np.nan]), False),
    (np.int64(3), False), (False, False),
])
def test_is_missing(value, missing):
    assert is_missing(value) is missing


def test_number_or_none():
    assert number_or_none(pd.NA) is None and number_or_none(np.nan) is None
    assert number_or_none(np.int64(72)) == 72.0 and isinstance(number_or_none("80.5"), float)
