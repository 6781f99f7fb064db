"""Order statistics in compiled loops: the few positions of a row's values that an
interval reads, placed in place by quickselect, for the loops of
:mod:`clvmodels._expected_loops` and :mod:`clvmodels._predictive_loops`. Numba's own
``np.partition`` would do, but compiling it (with its argument checks and their
messages) took some 5 s on a machine's first forecast; these take a fraction of that.
Imported on first use, so that importing clvmodels does not load Numba.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["ascending_distinct", "less", "move_largest_last", "select", "select_all"]


@numba.njit(cache=True, nogil=True)
def less(a: float, b: float) -> bool:
    """``a < b`` with NaN above everything, as NumPy orders values."""
    return a < b or (b != b and a == a)


@numba.njit(cache=True, nogil=True)
def select(values: np.ndarray, lo: int, hi: int, k: int) -> None:
    """Reorder ``values[lo:hi]`` so that ``values[k]`` holds the value it would hold
    sorted, with no larger value before it and no smaller one after (quickselect with
    a median-of-three pivot)."""
    hi -= 1
    while hi > lo:
        mid = (lo + hi) // 2
        if less(values[mid], values[lo]):
            values[mid], values[lo] = values[lo], values[mid]
        if less(values[hi], values[lo]):
            values[hi], values[lo] = values[lo], values[hi]
        if less(values[hi], values[mid]):
            values[hi], values[mid] = values[mid], values[hi]
        pivot = values[mid]
        i, j = lo, hi
        while i <= j:
            while less(values[i], pivot):
                i += 1
            while less(pivot, values[j]):
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@numba.njit(cache=True, nogil=True)
def move_largest_last(values: np.ndarray, hi: int) -> None:
    """Swap the largest of ``values[:hi]`` into ``values[hi - 1]``."""
    best = hi - 1
    for i in range(hi - 1):
        if less(values[best], values[i]):
            best = i
    values[best], values[hi - 1] = values[hi - 1], values[best]


@numba.njit(cache=True, nogil=True)
def select_all(values: np.ndarray, hi: int, kth: np.ndarray) -> None:
    """Place each of the ascending positions ``kth`` of ``values[:hi]``, from the
    largest down, each selection within the values below the last one placed (one just
    below it is their largest)."""
    for m in range(kth.size - 1, -1, -1):
        if kth[m] == hi - 1:
            move_largest_last(values, hi)
        else:
            select(values, 0, hi, kth[m])
        hi = kth[m]


@numba.njit(cache=True, nogil=True)
def ascending_distinct(kth: np.ndarray, n: int) -> int:
    """Sort ``kth[:n]`` in place (insertion sort: a handful of positions) and drop
    repeats; returns how many distinct positions lead ``kth`` now."""
    for i in range(1, n):
        value = kth[i]
        j = i - 1
        while j >= 0 and kth[j] > value:
            kth[j + 1] = kth[j]
            j -= 1
        kth[j + 1] = value
    m = 0
    for i in range(n):
        if m == 0 or kth[i] != kth[m - 1]:
            kth[m] = kth[i]
            m += 1
    return m
