"""Order statistics in compiled loops: the few positions of a row's values that an
interval reads, for the loops of :mod:`clvmodels._expected_loops` and
:mod:`clvmodels._predictive_loops`. Numba's own ``np.partition`` would do, but compiling
it (with its argument checks and their messages) took some 5 s on a machine's first
forecast; these take a fraction of that. Imported on first use, so that importing
clvmodels does not load Numba.

:func:`select_all` places positions by quickselect, whose comparisons are a coin toss
for the processor's branch prediction. :func:`place_positions`, for rows of a thousand
values and more, first sorts the values into buckets of equal width between their
smallest and largest (a monotone map: every value of a bucket is at most every value of
the next), counts them, and runs quickselect only on the handful of values in the
buckets that hold the positions.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "ascending_distinct", "less", "move_largest_last", "place_positions", "position_scratch",
    "select", "select_all",
]

# Buckets of place_positions: for 1,000 values about four share the bucket of a 5% or
# 95% position, and counting 256 buckets costs little beside the pass over the values.
BUCKETS = 256
# Fewer values than this are ordered by quickselect alone.
_MIN_BUCKETED = 128

# Counters handed to another compiled function start as np.int64(0), not 0: Numba types
# a literal 0 as a constant of its own while it infers a loop, and compiles the callee
# once for that constant and once more for int64 (seconds on a first forecast).


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
            select(values, np.int64(0), hi, kth[m])
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


@numba.njit(cache=True, nogil=True)
def position_scratch(n: int, n_kth: int) -> tuple[np.ndarray, np.ndarray]:
    """Work arrays for :func:`place_positions` on up to ``n`` values and ``n_kth``
    positions, allocated once for many rows."""
    return np.empty((2, n)), np.empty(BUCKETS + n + 3 * n_kth, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _value_range(values: np.ndarray) -> tuple[float, float, int]:
    """Smallest and largest of the numbers among ``values``, and how many are NaN (two
    chains of comparisons: each waits on the one before it)."""
    n = values.size
    n_nan = 0
    low_even = low_odd = high_even = high_odd = values[0]
    for j in range(n // 2):
        even, odd = values[2 * j], values[2 * j + 1]
        n_nan += (even != even) + (odd != odd)
        low_even = even if even < low_even else low_even
        low_odd = odd if odd < low_odd else low_odd
        high_even = even if even > high_even else high_even
        high_odd = odd if odd > high_odd else high_odd
    if n % 2:
        last = values[n - 1]
        n_nan += last != last
        low_even = last if last < low_even else low_even
        high_even = last if last > high_even else high_even
    return min(low_even, low_odd), max(high_even, high_odd), n_nan


@numba.njit(cache=True, nogil=True)
def _place_group(
    group: np.ndarray, n_group: int, kth: np.ndarray, first: int, stop: int, below: int,
    at_kth: np.ndarray, shifted: np.ndarray,
) -> None:
    """``at_kth[first:stop]`` from the ``n_group`` values gathered in ``group``, of which
    ``below`` values of the row are smaller."""
    for m in range(first, stop):
        shifted[m - first] = kth[m] - below
    select_all(group, n_group, shifted[: stop - first])
    for m in range(first, stop):
        at_kth[m] = group[kth[m] - below]


@numba.njit(cache=True, nogil=True)
def _locate(
    counts: np.ndarray, kth: np.ndarray, n: int, bucket_of: np.ndarray, below: np.ndarray
) -> None:
    """The bucket of each position given the buckets' ``counts`` of ``n`` values, and
    how many values lie in lower buckets: positions in the lower half counted from the
    lowest bucket, the others from the highest."""
    m = 0
    n_below = 0
    b = 0
    while m < kth.size and 2 * kth[m] < n:
        while kth[m] >= n_below + counts[b]:
            n_below += counts[b]
            b += 1
        bucket_of[m], below[m] = b, n_below
        m += 1
    n_up_to = n  # values in buckets up to b
    b = counts.size - 1
    for k in range(kth.size - 1, m - 1, -1):
        while kth[k] < n_up_to - counts[b]:
            n_up_to -= counts[b]
            b -= 1
        bucket_of[k], below[k] = b, n_up_to - counts[b]


@numba.njit(cache=True, nogil=True)
def _group_end(bucket_of: np.ndarray, first: int) -> int:
    """End of the run of positions from ``first`` whose buckets neighbour."""
    stop = first + 1
    while stop < bucket_of.size and bucket_of[stop] - bucket_of[stop - 1] <= 1:
        stop += 1
    return stop


@numba.njit(cache=True, nogil=True)
def place_positions(
    values: np.ndarray, kth: np.ndarray, at_kth: np.ndarray, floats: np.ndarray,
    ints: np.ndarray,
) -> None:
    """``at_kth[m]`` = the value at position ``kth[m]`` of ``values`` sorted (NaN last),
    for ascending, distinct positions; ``values`` may be reordered. ``floats`` and
    ``ints`` come from :func:`position_scratch`.

    Rows holding NaN or an infinity, or too few values to bucket, are placed by
    :func:`select_all`.
    """
    n, n_kth = values.size, kth.size
    bucketed = False
    low = scale = 0.0
    if n >= _MIN_BUCKETED:
        low, high, n_nan = _value_range(values)
        if n_nan == 0 and low == high:
            for m in range(n_kth):
                at_kth[m] = low
            return
        width = high - low
        bucketed = n_nan == 0 and width < np.inf and BUCKETS / width < np.inf
        if bucketed:
            scale = BUCKETS / width
    if not bucketed:
        select_all(values, n, kth)
        for m in range(n_kth):
            at_kth[m] = values[kth[m]]
        return
    counts = ints[:BUCKETS]
    bucket = ints[BUCKETS : BUCKETS + n]
    bucket_of = ints[BUCKETS + n : BUCKETS + n + n_kth]  # of each position
    below = ints[BUCKETS + n + n_kth : BUCKETS + n + 2 * n_kth]  # values in lower buckets
    shifted = ints[BUCKETS + n + 2 * n_kth : BUCKETS + n + 3 * n_kth]
    for b in range(BUCKETS):
        counts[b] = 0
    top = BUCKETS - 1
    for j in range(n):  # a monotone map of values to buckets
        b = min(int((values[j] - low) * scale), top)
        bucket[j] = b
        counts[b] += 1
    _locate(counts, kth, n, bucket_of, below)
    # Positions whose buckets neighbour form a group; two groups are gathered per pass
    # over the values (without branches: whether a value belongs is unpredictable).
    group_a, group_b = floats[0], floats[1]
    m = np.int64(0)
    while m < n_kth:
        stop_a = _group_end(bucket_of, m)
        stop_b = stop_a
        low_b = high_b = -1
        if stop_a < n_kth:
            stop_b = _group_end(bucket_of, stop_a)
            low_b, high_b = bucket_of[stop_a], bucket_of[stop_b - 1]
        low_a, high_a = bucket_of[m], bucket_of[stop_a - 1]
        n_a = n_b = np.int64(0)
        for j in range(n):
            value, b = values[j], bucket[j]
            group_a[n_a] = value
            n_a += (b >= low_a) & (b <= high_a)
            group_b[n_b] = value
            n_b += (b >= low_b) & (b <= high_b)
        _place_group(group_a, n_a, kth, m, stop_a, below[m], at_kth, shifted)
        if stop_b > stop_a:
            _place_group(group_b, n_b, kth, stop_a, stop_b, below[stop_a], at_kth, shifted)
        m = stop_b
