"""Compiled loops behind the per-draw histograms of
:class:`clvmodels._histogram.LogGrid`: realised values (a bin of its own for zeros) and
expected values. Imported on first use, so that importing clvmodels does not load
Numba.

A value's bin is defined by its logarithm (:func:`_grid_bin`), but the loops that fill
histograms place billions of values, and a logarithm per value was most of their cost.
They place a value by its bits instead: the float's exponent and leading mantissa bits
index a table (:func:`placement_table`) that gives the bin of the smallest float with
those bits, and a comparison with the next bin's lowest value (:func:`lowest_values`)
finishes the job. The edges are found with the logarithm itself, so both ways agree to
the last bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "add_bins", "add_realised", "add_realised_pairs", "grid_bins", "lowest_values",
    "placed_bin", "placement_table", "realised_bins", "tiers_by_value",
]

# A table entry covers the floats that share their sign, exponent and first 10 mantissa
# bits: at most 0.1% apart in value, less than a bin of the grids in use (0.15%), so that
# one comparison mostly settles the bin. Spans too wide for a table of this many entries
# take coarser entries (and a few more comparisons).
_TABLE_SHIFT = 42
_MAX_TABLE = 1 << 17


@numba.njit(cache=True, nogil=True, inline="always")
def _grid_bin(value: float, log_low: float, step: float, n: int) -> int:
    """Bin of one positive value, by its logarithm: ``0`` below the grid, ``1..n``
    inside it, ``n + 1`` from its top up (infinity included). The definition the
    tables reproduce."""
    position = (math.log(value) - log_low) / step
    if not position < n:
        return n + 1
    if position < 0.0:
        return 0
    return math.floor(position) + 1


@numba.njit(cache=True, nogil=True)
def placement_table(edges: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The table behind :func:`placed_bin` for a grid of ``n`` bins, given ``edges``
    (``n + 3`` values: ``-inf``, the lowest value of bins ``1..n + 1``, ``inf``).

    Returns ``table``, ``first`` and ``shift``: ``table[j]`` is the bin of the smallest
    positive float whose bits shifted right by ``shift`` are ``first + j``.
    """
    n = edges.size - 3
    ends = np.empty(2)
    bits = ends.view(np.int64)
    ends[0], ends[1] = edges[1], edges[n + 1]
    shift = _TABLE_SHIFT
    while (bits[1] >> shift) - (bits[0] >> shift) >= _MAX_TABLE:
        shift += 1
    first = bits[0] >> shift
    table = np.empty((bits[1] >> shift) - first + 1, dtype=np.int32)
    k = 0
    for j in range(table.size):
        bits[0] = (first + j) << shift
        while edges[k + 1] <= ends[0]:
            k += 1
        table[j] = k
    return table, first, shift


# Left to LLVM to inline (not inline="always"): inlined by Numba itself, with their
# early returns, this and _bin made the loops that call them ten times slower.
@numba.njit(cache=True, nogil=True)
def placed_bin(
    value: float, bits: int, edges: np.ndarray, table: np.ndarray, first: int, shift: int
) -> int:
    """:func:`_grid_bin` of ``value`` (its float bits as an integer: ``bits``) without a
    logarithm; zeros, negative values and NaN go to bin 0 with the values below the
    grid. ``edges``, ``table``, ``first`` and ``shift`` as in :func:`placement_table`."""
    j = (bits >> shift) - first
    if j < 0:  # below the grid's lowest value, or negative
        return 0
    if j >= table.size:  # above its top, or NaN
        return edges.size - 2 if value == value else 0
    k = table[j]
    k += value >= edges[k + 1]  # without a branch: which side is unpredictable
    while value >= edges[k + 1]:
        k += 1
    return k


@numba.njit(cache=True, nogil=True)
def _bin(
    value: float, bits: int, edges: np.ndarray, table: np.ndarray, first: int, shift: int
) -> int:
    """Bin of one value on a grid with a bin for zeros: 0 for zeros, negative values
    and NaN, ``1`` below the grid, ``2..n+1`` inside it, ``n + 2`` from its top up."""
    if not value > 0.0:
        return 0
    return placed_bin(value, bits, edges, table, first, shift) + 1


@numba.njit(cache=True, nogil=True)
def realised_bins(
    values: np.ndarray, edges: np.ndarray, table: np.ndarray, first: int, shift: int
) -> np.ndarray:
    """The bin of every value of a flat array (grid with a bin for zeros)."""
    out = np.empty(values.size, dtype=np.int64)
    bits = values.view(np.int64)
    for i in range(values.size):
        out[i] = _bin(values[i], bits[i], edges, table, first, shift)
    return out


@numba.njit(cache=True, nogil=True)
def grid_bins(
    values: np.ndarray, edges: np.ndarray, table: np.ndarray, first: int, shift: int
) -> np.ndarray:
    """The bin of every value of a flat array (grid without a bin for zeros): zeros,
    negative values and NaN in bin 0 with the values below the grid."""
    out = np.empty(values.size, dtype=np.int32)
    bits = values.view(np.int64)
    for i in range(values.size):
        out[i] = placed_bin(values[i], bits[i], edges, table, first, shift)
    return out


@numba.njit(cache=True, nogil=True)
def add_bins(hist: np.ndarray, bins: np.ndarray, weights: np.ndarray) -> None:
    """Add ``weights[j]`` to ``hist[d, bins[d, j]]`` for every draw ``d`` and unit
    ``j``, in place."""
    n_draws, n_units = bins.shape
    for draw in range(n_draws):
        for unit in range(n_units):
            hist[draw, bins[draw, unit]] += weights[unit]


@numba.njit(cache=True, nogil=True)
def add_realised(
    hist: np.ndarray, values: np.ndarray, weights: np.ndarray, edges: np.ndarray,
    table: np.ndarray, first: int, shift: int,
) -> None:
    """Add ``values`` (draws x units, unit ``j`` standing for ``weights[j]``) to ``hist``
    (draws x bins) in place; the weight of the units at zero goes to bin 0 in one sum."""
    n_draws, n_units = values.shape
    total = weights.sum()
    bits = values.view(np.int64)
    for draw in range(n_draws):
        placed = 0.0
        for unit in range(n_units):
            value = values[draw, unit]
            if value > 0.0:
                hist[draw, _bin(value, bits[draw, unit], edges, table, first, shift)] += (
                    weights[unit]
                )
                placed += weights[unit]
        hist[draw, 0] += total - placed


@numba.njit(cache=True, nogil=True)
def add_realised_pairs(
    hist: np.ndarray, draws: np.ndarray, values: np.ndarray, total: float,
    edges: np.ndarray, table: np.ndarray, first: int, shift: int,
) -> None:
    """Add ``total`` units of weight one per draw to ``hist`` in place, given by the
    ``values`` of some of them in ``draws``; every other unit is zero (bin 0). The
    values are taken draw by draw, so that each draw's row of ``hist`` stays in the
    cache while its values land in it (in the given order every value would be a miss).
    """
    n_draws = hist.shape[0]
    start = np.zeros(n_draws + 1, dtype=np.int64)
    for k in range(draws.size):
        start[draws[k] + 1] += 1
    for draw in range(n_draws):
        start[draw + 1] += start[draw]
    cursor = start[:-1].copy()
    bits = values.view(np.int64)
    order = np.empty(draws.size, dtype=np.int64)
    for k in range(draws.size):
        order[cursor[draws[k]]] = k
        cursor[draws[k]] += 1
    for draw in range(n_draws):
        placed = 0.0
        for j in range(start[draw], start[draw + 1]):
            k = order[j]
            bin_j = _bin(values[k], bits[k], edges, table, first, shift)
            if bin_j > 0:
                hist[draw, bin_j] += 1.0
                placed += 1.0
        hist[draw, 0] += total - placed


@numba.njit(cache=True, nogil=True)
def lowest_values(bins: np.ndarray, log_low: float, step: float, n: int) -> np.ndarray:
    """For each bin index ``k`` of a grid without a bin for zeros, the smallest value
    that :func:`_grid_bin` places in bin ``k`` or higher (``-inf`` for bin 0, ``inf``
    beyond the top bin): found by bisection over floats with the placement itself, so
    that comparing a value with it agrees with the value's bin to the last bit."""
    out = np.empty(bins.size)
    for i in range(bins.size):
        k = bins[i]
        if k <= 0:
            out[i] = -np.inf
            continue
        if k > n + 1:
            out[i] = np.inf
            continue
        # _grid_bin(v) >= k from exp(log_low + (k - 1) step) on (log is monotone).
        guess = math.exp(log_low + (k - 1) * step)
        spread = 1e-12
        low, high = guess * (1.0 - spread), guess * (1.0 + spread)
        while _grid_bin(low, log_low, step, n) >= k or _grid_bin(high, log_low, step, n) < k:
            spread *= 16.0
            low, high = guess * max(1.0 - spread, 1e-300), guess * (1.0 + spread)
        while True:
            middle = low + (high - low) / 2.0
            if middle <= low or middle >= high:
                break
            if _grid_bin(middle, log_low, step, n) >= k:
                high = middle
            else:
                low = middle
        out[i] = high
    return out


@numba.njit(cache=True, nogil=True)
def tiers_by_value(
    values: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    unit_tier: np.ndarray,
    count_zeros: bool,
    same: np.ndarray,
    top: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's tier, the draws agreeing with each unit's tier counted.

    ``values`` is draws x units; ``lower`` and ``upper`` (draws x cuts) bound the bin
    that holds each draw's boundary at each cut (the lowest values of that bin and the
    next, ``LogGrid.bin_bounds``; ``upper = -inf`` where the bin's cells are all above
    the boundary). A
    cell's tier is the number of cuts whose bin lies above it (0 is the top tier);
    NaN counts as below every bin. ``same[u]`` and ``top[u]`` gain the draws in which
    unit ``u`` is in ``unit_tier[u]`` and in tier 0; values at or below zero are left
    out of both when not ``count_zeros``. Cells inside a boundary's bin, whose side of
    it is not yet known, are returned as (draw, unit, cut, tier) with their tier
    counted as above that boundary. No logarithm: bins are compared by their bounds.
    """
    n_draws, n_units = values.shape
    room = n_units * lower.shape[1]  # the most cells one draw can hold
    cells = np.empty((4, max(1024, 2 * room)), dtype=np.int64)
    count, draw = 0, 0
    while draw < n_draws:
        if count + room > cells.shape[1]:
            grown = np.empty((4, 2 * cells.shape[1]), dtype=np.int64)
            for field in range(4):  # a loop: a slice assignment's checks compile slowly
                for k in range(count):
                    grown[field, k] = cells[field, k]
            cells = grown
        # As many draws as the buffer has room for; it grows out here, not in the loop
        # over cells (a buffer replaced inside that loop slows every cell down).
        stop = min(n_draws, draw + (cells.shape[1] - count) // room)
        count = _tiers_of_draws(
            values, lower, upper, unit_tier, count_zeros, same, top, draw, stop, cells, count
        )
        draw = stop
    return (
        cells[0, :count].astype(np.int32), cells[1, :count].copy(),
        cells[2, :count].astype(np.int8), cells[3, :count].astype(np.int8),
    )


@numba.njit(cache=True, nogil=True)
def _tiers_of_draws(
    values, lower, upper, unit_tier, count_zeros, same, top, first, stop, cells, count
) -> int:
    """:func:`tiers_by_value` for draws ``first:stop``, their boundary cells written to
    ``cells`` from column ``count`` on (it has room); returns the new count."""
    n_units = values.shape[1]
    n_cuts = lower.shape[1]
    for draw in range(first, stop):
        lows, highs = lower[draw], upper[draw]
        for unit in range(n_units):
            value = values[draw, unit]
            value = value if value == value else -np.inf
            # Branch-free: which side of a boundary a cell falls on is unpredictable.
            tier = 0
            on_edge = False
            for cut in range(n_cuts):
                tier += value < lows[cut]
                on_edge |= (value >= lows[cut]) & (value < highs[cut])
            if on_edge:
                for cut in range(n_cuts):
                    if lows[cut] <= value < highs[cut]:
                        cells[0, count] = draw
                        cells[1, count] = unit
                        cells[2, count] = cut
                        cells[3, count] = tier
                        count += 1
            counted = count_zeros or value > 0.0
            same[unit] += counted & (tier == unit_tier[unit])
            top[unit] += counted & (tier == 0)
    return count
