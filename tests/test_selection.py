"""Compiled order statistics: the values at the positions asked for are those of the
sorted values (NaN last, as NumPy sorts), whatever the order of the positions."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import clvmodels._selection as selection
from clvmodels._predictive_loops import summarise_futures
from clvmodels._selection import (
    ascending_distinct,
    place_positions,
    position_scratch,
    select_all,
)


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


def _rows(rng, n):
    """Rows of n values shaped to stress the buckets: a bell, a long right tail, a few
    far outliers, ties, few distinct values, negatives, a range too narrow to scale
    (subnormal) and one too wide (overflowing), NaN, infinities, all equal."""
    yield rng.normal(100.0, 5.0, n)
    yield rng.lognormal(0.0, 2.5, n)
    spiky = rng.normal(1.0, 0.01, n)
    spiky[rng.integers(0, n, 3)] = 1e12
    yield spiky
    yield np.round(rng.normal(0.0, 2.0, n))
    yield rng.choice([3.0, 7.0], n)
    yield -rng.gamma(0.3, 1.0, n)
    yield rng.integers(0, 5, n) * 5e-324
    yield rng.choice([-1.7e308, 1.7e308, 0.0], n)
    for special in (np.nan, np.inf, -np.inf):
        row = rng.normal(size=n)
        row[rng.integers(0, n)] = special
        yield row
    yield np.full(n, 2.5)


@pytest.mark.parametrize("n", [1, 3, 127, 128, 1000, 4000])
def test_place_positions_gives_the_sorted_values_at_the_positions(n):
    rng = np.random.default_rng(n)
    floats, ints = position_scratch(n, 6)
    for row in _rows(rng, n):
        ordered = np.sort(row)
        for kth in (
            np.unique(np.minimum([49, 50, 949, 950], n - 1) * n // 1000),
            np.unique(rng.integers(0, n, 6)),
            np.array([0, n - 1]) if n > 1 else np.array([0]),
        ):
            at_kth = np.empty(kth.size)
            place_positions(row.copy(), kth, at_kth, floats, ints)
            np.testing.assert_array_equal(at_kth, ordered[kth])



def test_counters_reach_the_other_loops_as_int64_not_as_a_literal_zero():
    # A counter that starts at a literal 0 made Numba compile its callee once for the
    # constant and once for int64 (seconds on a first forecast); they start as
    # np.int64(0). The callers are compiled afresh here, not loaded from the cache, so
    # that their direct callees are typed again whatever the cache holds.
    rng = np.random.default_rng(0)
    values, kth = rng.gamma(2.0, 3.0, 1000), np.array([49, 50, 949, 950])
    numba.njit(place_positions.py_func)(
        values.copy(), kth, np.empty(4), *position_scratch(values.size, kth.size)
    )
    numba.njit(select_all.py_func)(values, values.size, kth)
    owner, time = np.array([0, 0, 3]), np.array([0.5, 1.5, 2.0])
    numba.njit(summarise_futures.py_func)(
        owner, time, np.array([10.0, 10.0, 4.0]), 1.0, np.array([1.0, 0.5]), 2, 2,
        np.array([0.05, 0.95, 0.9]),
    )
    loops = [selection.select, selection.select_all, selection.ascending_distinct,
             selection._place_group, selection._group_end]  # fmt: skip
    literal = [
        (loop.__name__, signature) for loop in loops for signature in loop.signatures
        if any(isinstance(arg, numba.types.Literal) for arg in signature)
    ]  # fmt: skip
    assert literal == []
    assert all(loop.signatures for loop in loops)  # every one was typed
