"""Compiled loops behind the per-draw histograms of
:class:`clvmodels._histogram.LogGrid`: realised values (a bin of its own for zeros) and
expected values. Imported on first use, so that importing clvmodels does not load
Numba."""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["add_bins", "add_realised", "add_realised_pairs", "grid_bins", "realised_bins"]


@numba.njit(cache=True, nogil=True, inline="always")
def _grid_bin(value: float, log_low: float, step: float, n: int) -> int:
    """Bin of one positive value: ``0`` below the grid, ``1..n`` inside it, ``n + 1``
    from its top up."""
    position = math.floor((math.log(value) - log_low) / step) + 1.0
    return int(min(max(position, 0.0), n + 1.0))


@numba.njit(cache=True, nogil=True, inline="always")
def _bin(value: float, log_low: float, step: float, n: int) -> int:
    """Bin of one value on a grid with a bin for zeros: 0 for zeros, negative values
    and NaN, ``1`` below the grid, ``2..n+1`` inside it, ``n + 2`` from its top up."""
    if not value > 0.0:
        return 0
    return _grid_bin(value, log_low, step, n) + 1


@numba.njit(cache=True, nogil=True)
def realised_bins(values: np.ndarray, log_low: float, step: float, n: int) -> np.ndarray:
    """The bin of every value of a flat array (grid with a bin for zeros)."""
    out = np.empty(values.size, dtype=np.int64)
    for i in range(values.size):
        out[i] = _bin(values[i], log_low, step, n)
    return out


@numba.njit(cache=True, nogil=True)
def grid_bins(values: np.ndarray, log_low: float, step: float, n: int) -> np.ndarray:
    """The bin of every value of a flat array (grid without a bin for zeros): zeros,
    negative values and NaN in bin 0 with the values below the grid."""
    out = np.empty(values.size, dtype=np.int32)
    for i in range(values.size):
        value = values[i]
        out[i] = _grid_bin(value, log_low, step, n) if value > 0.0 else 0
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
    hist: np.ndarray, values: np.ndarray, weights: np.ndarray, log_low: float, step: float,
    n: int,
) -> None:
    """Add ``values`` (draws x units, unit ``j`` standing for ``weights[j]``) to ``hist``
    (draws x bins) in place; the weight of the units at zero goes to bin 0 in one sum."""
    n_draws, n_units = values.shape
    total = weights.sum()
    for draw in range(n_draws):
        placed = 0.0
        for unit in range(n_units):
            value = values[draw, unit]
            if value > 0.0:
                hist[draw, _bin(value, log_low, step, n)] += weights[unit]
                placed += weights[unit]
        hist[draw, 0] += total - placed


@numba.njit(cache=True, nogil=True)
def add_realised_pairs(
    hist: np.ndarray, draws: np.ndarray, values: np.ndarray, total: float, log_low: float,
    step: float, n: int,
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
    order = np.empty(draws.size, dtype=np.int64)
    for k in range(draws.size):
        order[cursor[draws[k]]] = k
        cursor[draws[k]] += 1
    for draw in range(n_draws):
        placed = 0.0
        for j in range(start[draw], start[draw + 1]):
            bin_j = _bin(values[order[j]], log_low, step, n)
            if bin_j > 0:
                hist[draw, bin_j] += 1.0
                placed += 1.0
        hist[draw, 0] += total - placed
