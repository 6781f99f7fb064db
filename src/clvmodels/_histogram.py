"""Per-draw histograms of values on log-spaced bins, shared by CLV and segments.

Tier boundaries are recomputed in every parameter draw; with millions of customers the
values of a draw are never held at once, so each draw's boundary is first located to
one bin of a fine histogram, and the few values in that bin are settled exactly later
(:mod:`clvmodels.segmentation`). :func:`clvmodels.customer_lifetime_value` fills such a
histogram of the simulated realised values while it simulates them, so that realised
tiers need one more simulation instead of two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Bins 0.15% wide in value, at most this many.
BIN_WIDTH = 0.0015
MAX_BINS = 20_000


@dataclass(frozen=True)
class LogGrid:
    """Uniform bins in log value over ``[low, high)``, plus one bin below, one above.

    Bin 0 holds values below ``low`` (and zeros), bin ``k`` (1..n) the values in
    ``[low e^{(k-1) step}, low e^{k step})`` and bin ``n + 1`` the values from ``high`` up.
    With ``zero_bin`` zeros (and negative values) get bin 0 to themselves and every
    other bin moves up by one: realised values have an atom at zero, and a boundary
    that falls on it needs no settling (equal values share a tier).

    Examples
    --------
    >>> grid = LogGrid.spanning(1.0, 100.0, zero_bin=True, max_bins=2)
    >>> grid.bins(np.array([0.0, 0.5, 2.0, 50.0, 1e3])).tolist()
    [0, 1, 2, 3, 4]
    """

    log_low: float
    step: float
    n: int
    zero_bin: bool = False

    @classmethod
    def spanning(
        cls, low: float, high: float, *, zero_bin: bool = False, max_bins: int = MAX_BINS
    ) -> LogGrid:
        """Bins of width :data:`BIN_WIDTH` (wider where that needs more than
        ``max_bins``) from ``low`` to ``high`` (both positive)."""
        n = max(1, min(math.ceil(math.log(high / low) / BIN_WIDTH), max_bins))
        return cls(math.log(low), math.log(high / low) / n, n, zero_bin)

    @property
    def n_bins(self) -> int:
        return self.n + 2 + int(self.zero_bin)

    def covers(self, low: float, high: float) -> bool:
        """Whether ``[low, high]`` lies inside the grid's bins (not in its end bins).

        Examples
        --------
        >>> grid = LogGrid.spanning(1.0, 100.0)
        >>> grid.covers(2.0, 50.0), grid.covers(0.5, 50.0)
        (True, False)
        """
        return bool(
            low > 0 and math.log(low) >= self.log_low
            and math.log(high) <= self.log_low + self.n * self.step
        )

    @cached_property
    def placement(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        """What the compiled loops place values with, without a logarithm per value:
        ``edges`` (``-inf``, the lowest value of bins ``1..n + 1`` of the grid without a
        bin for zeros, ``inf``) and the table of
        :func:`clvmodels._histogram_loops.placement_table` (``table``, ``first``,
        ``shift``). Computed once per grid.

        Examples
        --------
        >>> edges, table, first, shift = LogGrid.spanning(1.0, 100.0, max_bins=2).placement
        >>> edges.round(6).tolist()
        [-inf, 1.0, 10.0, 100.0, inf]
        """
        from clvmodels._histogram_loops import lowest_values, placement_table

        edges = np.empty(self.n + 3)
        edges[0], edges[-1] = -np.inf, np.inf
        edges[1:-1] = lowest_values(
            np.arange(1, self.n + 2, dtype=np.int64), self.log_low, self.step, self.n
        )
        return (edges, *placement_table(edges))

    def bins(self, values: np.ndarray) -> np.ndarray:
        """The bin of each value; zeros, negative values and NaN (never expected) go to
        bin 0.

        Every bin is placed by the compiled loops that fill the histograms: NumPy's
        vectorised log may differ from theirs in the last bit, which on a bin edge would
        put one value in two bins.
        """
        from clvmodels._histogram_loops import grid_bins, realised_bins

        values = np.asarray(values, dtype=float)
        flat = np.ascontiguousarray(values).reshape(-1)
        place = realised_bins if self.zero_bin else grid_bins
        return place(flat, *self.placement).reshape(values.shape)

    def bin_bounds(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The values ``[lower, upper)`` that fall in each of ``bins``, exact to the last
        bit of the placement (a grid with a bin for zeros: ``upper = -inf`` for that
        bin, whose cells lie above any boundary in it), shaped like ``bins``: read from
        the :attr:`placement`'s edges."""
        edges = self.placement[0]
        if self.zero_bin:
            # Bin 0 holds zeros, bin 1 every positive value below the grid, bin k >= 2
            # the grid's bin k - 1.
            edges = np.r_[-np.inf, 5e-324, edges[1:]]
        bins = np.asarray(bins, dtype=np.int64)
        lower = edges[np.clip(bins, 0, edges.size - 1)]
        upper = edges[np.clip(bins + 1, 0, edges.size - 1)]
        if self.zero_bin:
            upper = np.where(bins == 0, -np.inf, upper)
        return lower, upper

    def tiers(
        self,
        values: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        unit_tier: np.ndarray,
        same: np.ndarray,
        top: np.ndarray,
        *,
        count_zeros: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Tiers of ``values`` (draws x units) by the :meth:`bin_bounds` of the bins that
        hold each draw's boundaries (draws x cuts), in one compiled pass that compares
        values with those bounds (no logarithm per value): ``same`` and ``top`` (one
        per unit, added to in place) gain the draws that put each unit in ``unit_tier``
        and in the top tier (values at or below zero left out unless ``count_zeros``);
        the cells in a boundary's bin come back as (draw, unit, cut, tier) to be settled
        once every cell has been seen.

        Examples
        --------
        >>> grid = LogGrid.spanning(1.0, 100.0)
        >>> values = np.array([[2.0, 50.0, 10.0]])       # one draw, three units
        >>> bounds = grid.bin_bounds(grid.bins(np.array([[20.0]])))  # a cut at 20's bin
        >>> same, top = np.zeros(3), np.zeros(3)
        >>> cells = grid.tiers(values, bounds, np.array([1, 0, 0], np.int8), same, top)
        >>> same.tolist(), top.tolist(), cells[0].size
        ([1.0, 1.0, 0.0], [0.0, 1.0, 0.0], 0)
        """
        from clvmodels._histogram_loops import tiers_by_value

        lower, upper = bounds
        return tiers_by_value(
            np.ascontiguousarray(values, dtype=float), np.ascontiguousarray(lower),
            np.ascontiguousarray(upper), np.ascontiguousarray(unit_tier, dtype=np.int8),
            count_zeros, same, top,
        )

    def add_bins(self, hist: np.ndarray, bins: np.ndarray, weights: np.ndarray) -> None:
        """:meth:`add` of values already placed by :meth:`bins` (draws x units); the
        costly part, the bins, can then be found outside a lock that guards ``hist``."""
        from clvmodels._histogram_loops import add_bins

        add_bins(
            hist, np.ascontiguousarray(bins),
            np.ascontiguousarray(np.broadcast_to(weights, bins.shape[1:]), dtype=float),
        )

    def add(self, hist: np.ndarray, values: np.ndarray, weights: np.ndarray) -> None:
        """Add ``values`` (draws x units, each unit standing for ``weights``) to the
        per-draw histogram ``hist`` (draws x :attr:`n_bins`)."""
        weights = np.broadcast_to(np.asarray(weights, dtype=float), values.shape[1:])
        if self.zero_bin:
            # Realised values, mostly zeros: a compiled loop adds each positive value's
            # weight to its bin in place and the rest of each draw's weight to bin 0.
            # Counting with bincount would pass over all of ``hist`` per call, which on
            # a block of a thousand customers costs more than the values themselves.
            from clvmodels._histogram_loops import add_realised

            add_realised(
                hist, np.ascontiguousarray(values, dtype=float),
                np.ascontiguousarray(weights, dtype=float), *self.placement,
            )
            return
        self.add_bins(hist, self.bins(values), weights)

    def add_pairs(
        self, hist: np.ndarray, draw: np.ndarray, values: np.ndarray, total: float
    ) -> None:
        """:meth:`add` of ``total`` units of weight one per draw, given sparsely: the
        ``values`` of the (``draw``, unit) pairs that are not zero; the rest are zeros.
        Only for grids with a bin for zeros."""
        if not self.zero_bin:
            raise ValueError("add_pairs needs a grid with a bin of its own for zeros")
        from clvmodels._histogram_loops import add_realised_pairs

        add_realised_pairs(
            hist, np.asarray(draw, dtype=np.int64),
            np.ascontiguousarray(values, dtype=float), float(total), *self.placement,
        )
