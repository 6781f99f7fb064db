"""Compiled order statistics: the values at the positions asked for are those of the
sorted values (NaN last, as NumPy sorts), whatever the order of the positions."""

from __future__ import annotations

import numpy as np
import pytest

from clvmodels._selection import ascending_distinct, select_all


def test_ascending_distinct_sorts_and_drops_repeats_in_place():
    kth = np.array([950, 50, 900, 51, 951, 950, 7], dtype=np.int64)
    n = ascending_distinct(kth, 6)  # the last entry is not among the positions
    assert n == 5
    np.testing.assert_array_equal(kth[:n], [50, 51, 900, 950, 951])
    assert ascending_distinct(np.array([3], dtype=np.int64), 0) == 0


@pytest.mark.parametrize("n", [1, 2, 5, 64, 1000])
def test_select_all_places_every_position_as_a_sort_would(n):
    rng = np.random.default_rng(n)
    # Ties, zeros, an infinity and NaNs among ordinary values.
    values = rng.choice([0.0, 1.5, 2.0, np.inf, np.nan], n, p=[0.3, 0.2, 0.2, 0.1, 0.2])
    values = np.where(rng.random(n) < 0.5, rng.gamma(2.0, 3.0, n), values)
    ordered = np.sort(values)
    positions = rng.integers(0, n, 6)
    kth = positions.copy()
    m = ascending_distinct(kth, kth.size)
    work = values.copy()
    select_all(work, n, kth[:m])
    np.testing.assert_array_equal(work[positions], ordered[positions])
    np.testing.assert_array_equal(np.sort(work), ordered)  # a permutation of the values
