"""The compiled loop that summarises simulated futures for
:func:`clvmodels.customer_lifetime_value`'s predictive intervals.

A piece of a thousand customers under a thousand draws has a million futures, of which
most buy nothing. Held densely, every summary (the discounting, each customer's
quantiles, the per-draw totals, the histogram of values) is a pass over the million,
zeros included; here the purchases are grouped by customer once and each customer's
quantiles are read from its few positive values, the zeros counted. Imported on first
use, so that importing clvmodels does not load Numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from clvmodels._selection import ascending_distinct, select_all
from clvmodels.models._simulation import split_pair

__all__ = ["summarise_futures"]


@numba.njit(cache=True, nogil=True)
def summarise_futures(
    owner: np.ndarray,
    time: np.ndarray,
    values: np.ndarray,
    period_length: float,
    discount: np.ndarray,
    n_draws: int,
    n_units: int,
    positions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Discounted value of every (draw, unit) future and its summaries.

    ``owner`` (flat draw-major index into ``(n_draws, n_units)``), ``time`` and
    ``values`` describe the purchases, as ``SimulatedPurchases`` and a spend model's
    values do; a purchase at ``s`` counts ``value * discount[min(floor(s /
    period_length), horizon - 1)]``, as :func:`clvmodels.clv.discounted_value` counts it.

    Returns
    -------
    quantiles : (len(positions), n_units)
        Each unit's value at the (0-based, fractional) order-statistic ``positions`` of
        its ``n_draws`` values, interpolated linearly between neighbours as
        ``np.quantile`` does (position ``(n_draws - 1) p`` is the quantile ``p``).
    zero_share : (n_units,)
        Each unit's share of draws worth nothing.
    totals : (n_draws,)
        Each draw's value summed over the units.
    pair_start : (n_units + 1,)
        Unit ``u``'s futures that buy are entries ``pair_start[u]:pair_start[u + 1]``
        of the next two arrays.
    pair_draw, pair_value
        The futures that buy, unit by unit: their draw and value.

    Few arrays are allocated (memory that a multi-threaded process's allocator keeps
    once freed): the futures that buy are written over the purchases already read.
    """
    horizon = discount.size
    inverse = 1.0 / n_units
    # Purchases grouped by unit: as they come where they already are (the simulators
    # emit them so), else by a counting sort.
    start = np.zeros(n_units + 1, dtype=np.int64)
    draw_of = np.empty(owner.size, dtype=np.int64)
    worth = np.empty(owner.size)
    grouped = True
    previous = 0
    for k in range(owner.size):
        draw, unit = split_pair(owner[k], n_units, inverse)
        start[unit + 1] += 1
        grouped &= unit >= previous
        previous = unit
        period = min(int(time[k] / period_length), horizon - 1)
        draw_of[k] = draw
        worth[k] = values[k] * discount[period]
    for unit in range(n_units):
        start[unit + 1] += start[unit]
    if not grouped:
        cursor = start[:-1].copy()
        draws_in_order = np.empty(owner.size, dtype=np.int64)
        worth_in_order = np.empty(owner.size)
        for k in range(owner.size):
            unit = split_pair(owner[k], n_units, inverse)[1]
            draws_in_order[cursor[unit]] = draw_of[k]
            worth_in_order[cursor[unit]] = worth[k]
            cursor[unit] += 1
        draw_of, worth = draws_in_order, worth_in_order

    quantiles = np.empty((positions.size, n_units))
    zero_share = np.empty(n_units)
    totals = np.zeros(n_draws)
    pair_start = np.zeros(n_units + 1, dtype=np.int64)
    value_of_draw = np.zeros(n_draws)
    seen = np.zeros(n_draws, dtype=np.bool_)
    touched = np.empty(n_draws, dtype=np.int64)
    buffer = np.empty(n_draws)
    kth = np.empty(2 * positions.size, dtype=np.int64)
    for unit in range(n_units):
        n_touched = np.int64(0)  # not 0: see clvmodels._selection on literal zeros
        for j in range(start[unit], start[unit + 1]):
            draw = draw_of[j]
            if not seen[draw]:
                seen[draw] = True
                touched[n_touched] = draw
                n_touched += 1
            value_of_draw[draw] += worth[j]
        # The unit's futures that buy go to entries the purchases before them held
        # (there are at least as many purchases as futures that buy).
        n_pairs = pair_start[unit]
        for t in range(n_touched):
            draw = touched[t]
            value = value_of_draw[draw]
            buffer[t] = value
            totals[draw] += value
            draw_of[n_pairs + t], worth[n_pairs + t] = draw, value
            value_of_draw[draw] = 0.0
            seen[draw] = False
        pair_start[unit + 1] = n_pairs + n_touched
        # The unit's values in order are the draws without purchases (zeros), then
        # the touched ones in order: only the order statistics at the positions are
        # needed, placed among the touched values in place.
        n_none = n_draws - n_touched
        n_zero = n_none
        for t in range(n_touched):
            if not buffer[t] > 0.0:
                n_zero += 1
        zero_share[unit] = n_zero / n_draws
        n_kth = np.int64(0)
        for i in range(positions.size):
            low = math.floor(positions[i])
            for k in (low, min(low + 1, n_draws - 1)):
                if k >= n_none:
                    kth[n_kth] = k - n_none
                    n_kth += 1
        n_kth = ascending_distinct(kth, n_kth)
        if n_kth:
            select_all(buffer, n_touched, kth[:n_kth])
        ordered = buffer
        for i in range(positions.size):
            low = math.floor(positions[i])
            high = min(low + 1, n_draws - 1)
            a = 0.0 if low < n_none else ordered[low - n_none]
            b = 0.0 if high < n_none else ordered[high - n_none]
            fraction = positions[i] - low
            quantiles[i, unit] = a if fraction == 0.0 or a == b else a + (b - a) * fraction
    n_pairs = pair_start[n_units]
    return quantiles, zero_share, totals, pair_start, draw_of[:n_pairs], worth[:n_pairs]
