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
from clvmodels._selection import place_positions, position_scratch

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
    floats, ints = position_scratch(n_draws, kth.size)
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
            place_positions(buffer[i - start], kth, at_kth, floats, ints)
            for q in range(positions.size):
                low = math.floor(positions[q])
                a = at_kth[_index_of(kth, low)]
                b = at_kth[_index_of(kth, min(low + 1, n_draws - 1))]
                fraction = positions[q] - low
                quantiles[q, i] = a if fraction == 0.0 or a == b else a + (b - a) * fraction
    return quantiles, totals
