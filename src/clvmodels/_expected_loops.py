"""The compiled loop that summarises a block's per-draw CLVs for
:func:`clvmodels.customer_lifetime_value`'s parameter intervals and per-draw totals.

A block's CLV under every draw is the product of two factors: the discounted expected
purchases of its transaction rows and the expected spend of its rows. Formed with
NumPy, the product, the weighted totals and the quantiles are each a pass over the
``(n_draws, rows)`` values, and the quantiles need a draws-contiguous copy first. Here
the rows are taken a few at a time: their values under every draw are formed once, in
a small buffer that stays in cache, added to the totals and ordered in place. Imported
on first use, so that importing clvmodels does not load Numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from clvmodels._histogram_loops import placed_bin
from clvmodels._selection import select, select_all

__all__ = ["summarise_draws"]

# Rows formed together: the draws of a few rows fill whole cache lines of each factor.
_TILE = 64


@numba.njit(cache=True, nogil=True)
def _index_of(kth: np.ndarray, k: int) -> int:
    """Where ``k`` is in ``kth``."""
    for m in range(kth.size):
        if kth[m] == k:
            return m
    return -1


@numba.njit(cache=True, nogil=True)
def _sample_threshold(sample: np.ndarray, n_sample: int, rank: float) -> float:
    """The sample's value at ``rank`` (clipped to the sample)."""
    k = min(max(int(rank), 0), n_sample - 1)
    select(sample, 0, n_sample, k)
    return sample[k]


@numba.njit(cache=True, nogil=True)
def _order_statistics(
    values: np.ndarray,
    kth: np.ndarray,
    at_kth: np.ndarray,
    sample: np.ndarray,
    low_side: np.ndarray,
    high_side: np.ndarray,
) -> None:
    """``at_kth[m]`` = the value at 0-based position ``kth[m]`` of ``values`` sorted
    (NaN last); ``values`` is reordered.

    The positions of a parameter interval lie near the ends (50 and 950 of 1,000), so
    rather than partitioning every value twice, the values beyond a threshold on each
    side are copied out (without branches) and only those are ordered. The thresholds
    are order statistics of an evenly spaced sample, placed a few standard errors
    beyond the wanted share so that they almost always keep enough values; where they
    do not (or a value is NaN, or there are few values), every value is ordered.
    """
    n = values.size
    # Positions below the middle are read among the lowest values, the others among
    # the highest: enough of each side is the lowest needed + 1 and n - the first high.
    n_low_kth = 0
    while n_low_kth < kth.size and 2 * kth[n_low_kth] < n:
        n_low_kth += 1
    need_low = kth[n_low_kth - 1] + 1 if n_low_kth > 0 else 0
    need_high = n - kth[n_low_kth] if n_low_kth < kth.size else 0
    step = max(1, n // 128)
    n_sample = 0
    has_nan = False
    for j in range(0, n, step):
        sample[n_sample] = values[j]
        n_sample += 1
    for j in range(n):
        if values[j] != values[j]:
            has_nan = True
    fallback = has_nan or n < 256
    if not fallback:
        low_threshold = high_threshold = 0.0
        if need_low:
            share = need_low / n
            margin = 3.0 * math.sqrt(n_sample * share * (1.0 - share)) + 1.0
            low_threshold = _sample_threshold(sample, n_sample, n_sample * share + margin)
        if need_high:
            share = need_high / n
            margin = 3.0 * math.sqrt(n_sample * share * (1.0 - share)) + 1.0
            high_threshold = _sample_threshold(
                sample, n_sample, n_sample * (1.0 - share) - margin
            )
        n_low = n_high = 0
        for j in range(n):
            value = values[j]
            low_side[n_low] = value
            n_low += value <= low_threshold
            high_side[n_high] = value
            n_high += value >= high_threshold
        if (need_low and n_low < need_low) or (need_high and n_high < need_high):
            fallback = True
    if fallback:
        select_all(values, n, kth)
        for m in range(kth.size):
            at_kth[m] = values[kth[m]]
        return
    # The values kept on the low side are the n_low smallest, those on the high side
    # the n_high largest: position k of all is position k - (n - n_high) among them.
    if n_low_kth > 0:
        select_all(low_side, n_low, kth[:n_low_kth])
        for m in range(n_low_kth):
            at_kth[m] = low_side[kth[m]]
    if n_low_kth < kth.size:
        shifted = kth[n_low_kth:] - (n - n_high)
        select_all(high_side, n_high, shifted)
        for m in range(n_low_kth, kth.size):
            at_kth[m] = high_side[shifted[m - n_low_kth]]


@numba.njit(cache=True, nogil=True)
def summarise_draws(
    tx_value: np.ndarray,
    tx_local: np.ndarray,
    spend: np.ndarray,
    weights: np.ndarray,
    positions: np.ndarray,
    kth: np.ndarray,
    clv_out: np.ndarray,
    bins_out: np.ndarray,
    edges: np.ndarray,
    table: np.ndarray,
    first: int,
    shift: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw CLVs of a block of rows, ``tx_value[d, tx_local[i]] * spend[d, i]``,
    summarised.

    Parameters
    ----------
    tx_value : (n_draws, n_tx)
        Discounted expected purchases of the block's transaction rows under each draw.
    tx_local : (n_rows,)
        The transaction row of every row.
    spend : (n_draws, n_rows)
        Expected spend per purchase of every row under each draw.
    weights : (n_rows,)
        Customers per row.
    positions : (n_positions,)
        0-based fractional order-statistic positions of the quantiles wanted
        (``(n_draws - 1) p`` for NumPy's default rule).
    kth : (n_kth,)
        The whole positions these read, ascending and distinct: each floor and the
        position after it (within ``n_draws``).
    clv_out : (n_draws, n_rows) or (0, 0)
        Where the per-draw CLVs are also written, unless it is empty.
    bins_out : (n_draws, n_rows) int32 or (0, 0)
        Where the bins of the per-draw CLVs on a histogram's grid are written, unless it
        is empty (placed while each value is at hand: no pass over them later).
    edges, table, first, shift
        That grid's :attr:`clvmodels._histogram.LogGrid.placement`.

    Returns
    -------
    quantiles : (n_positions, n_rows)
        Each row's values at ``positions``, interpolated linearly between neighbours as
        ``np.quantile`` does; NaN counts as larger than every number, as in NumPy.
    totals : (n_draws,)
        Each draw's CLV summed over the customers (rows times their weights).
    """
    n_draws, n_rows = spend.shape
    keep = clv_out.shape[0] > 0
    place = bins_out.shape[0] > 0
    quantiles = np.empty((positions.size, n_rows))
    totals = np.zeros(n_draws)
    buffer = np.empty((_TILE, n_draws))
    row = np.empty(_TILE)  # the tile's values under one draw
    row_bits = row.view(np.int64)
    at_kth = np.empty(kth.size)
    sample = np.empty(n_draws)
    low_side = np.empty(n_draws)
    high_side = np.empty(n_draws)
    for start in range(0, n_rows, _TILE):
        stop = min(start + _TILE, n_rows)
        for d in range(n_draws):
            total = 0.0
            for i in range(start, stop):
                value = tx_value[d, tx_local[i]] * spend[d, i]
                buffer[i - start, d] = value
                row[i - start] = value
                total += value * weights[i]
            totals[d] += total
            if keep:
                for i in range(start, stop):
                    clv_out[d, i] = row[i - start]
            if place:  # a loop of its own: the one above stays free of branches
                for i in range(start, stop):
                    bins_out[d, i] = placed_bin(
                        row[i - start], row_bits[i - start], edges, table, first, shift
                    )
        for i in range(start, stop):
            _order_statistics(buffer[i - start], kth, at_kth, sample, low_side, high_side)
            for q in range(positions.size):
                low = math.floor(positions[q])
                a = at_kth[_index_of(kth, low)]
                b = at_kth[_index_of(kth, min(low + 1, n_draws - 1))]
                fraction = positions[q] - low
                quantiles[q, i] = a if fraction == 0.0 or a == b else a + (b - a) * fraction
    return quantiles, totals
