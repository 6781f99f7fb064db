"""Value tiers with membership probabilities, a value-by-activity grid, RFM scores.

A tier is only useful to a marketer if it is known which customers sit firmly in it.
:func:`segment` places every customer in a CLV tier by the point estimate **and** says
how sure that is: under each parameter draw of the forecast the tier boundaries are
recomputed from that draw's CLVs and the customer is placed again; its
``tier_probability`` is the share of draws that agree with the point tier.

Two probabilities, two questions:

* ``tier_probability`` (parameter uncertainty): how sure is it that the customer's
  *expected* CLV belongs in the tier? Parameter draws barely move ranks, so it is
  close to 1 for most customers.
* ``tier_probability_realised`` (forecasts made with ``predictive=True`` only): how
  likely is it that the customer's *realised* value over the horizon lands in the tier,
  when every customer's realised value is ranked the same way? Under each draw every
  customer has one simulated future (purchases and spend); the draw's tiers are formed
  from those values, and customers who realise exactly zero (many do) are spread over
  the tiers their tied ranks cover, as if ties were broken at random. This is the
  probability to use when acting on who will actually be in the top tier.

``top_tier_probability`` and ``top_tier_probability_realised`` are the same for the
first tier.

Tier boundaries by rank share: with ``N`` customers and a cumulative share ``S`` (e.g.
0.1 for the top 10%), a customer is above the cut when fewer than ``S * N`` customers
have a strictly higher CLV; equal CLVs always share a tier, so a tier can hold a few
more customers than its share when ties straddle a boundary.

Per-draw boundaries come from a full sort per draw when the distinct customers times
draws fit in ``exact_limit`` values. Beyond that, a first pass fills per-draw
histograms with log-spaced bins 0.15% wide around the point boundaries, which locate
each draw's boundary to one bin; a second pass places the customers, and the few
customer-draw cells inside a boundary's bin are kept aside and settled once the bin is
complete. A forecast that filled such a histogram while it computed the values (the
expected ones with ``tier_histogram=True``, the realised ones of every predictive
forecast) is segmented by that second pass alone, at any size: it costs less than the
sort. Both routes give the same tiers; memory stays bounded at any number of
customers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._histogram import LogGrid
from clvmodels._validation import whole_number
from clvmodels.clv import CLVForecast, interval_probabilities
from clvmodels.data import validate_summary
from clvmodels.models.base import check_summary_model
from clvmodels.progress import progress_bar

__all__ = [
    "DEFAULT_ACTIVITY_BANDS",
    "DEFAULT_TIERS",
    "Segmentation",
    "rfm_segments",
    "segment",
]

#: Default CLV tiers by rank share, most valuable first.
DEFAULT_TIERS: tuple[tuple[str, float], ...] = (
    ("top value", 0.10),
    ("high value", 0.20),
    ("middle value", 0.30),
    ("low value", 0.40),
)
#: Default activity bands: lower bounds of P(alive), most active first: "active" from
#: 0.7, "at risk" from 0.3, "lapsed" below 0.3 (the last band takes everything below the
#: band above it).
DEFAULT_ACTIVITY_BANDS: tuple[tuple[str, float], ...] = (
    ("active", 0.7),
    ("at risk", 0.3),
    ("lapsed", 0.0),
)

# Per-draw boundaries are computed exactly up to this many draw-values (80 MB a copy).
EXACT_LIMIT = 10_000_000
# Histogram bins (0.15% wide in value, see clvmodels._histogram) span a factor 16 below
# the lowest and above the highest point boundary (draws move boundaries by far less).
_SPAN = 16.0
# Realised values stray much further from the point CLVs than expected values do.
_REALISED_SPAN = 256.0
# Histogram cells of the draws whose boundary bins are located at once.
_TARGET_CELLS = 500_000


# --------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------
def _pairs(spec: Any, what: str) -> tuple[list[str], np.ndarray]:
    """Names and numbers of a tier / band specification (mapping or (name, value) pairs)."""
    try:
        items = list(spec.items()) if isinstance(spec, Mapping) else list(spec)
    except TypeError as err:
        raise ValueError(f"{what} must be (name, number) pairs, got {spec!r}") from err
    if len(items) < 2:
        raise ValueError(f"{what} needs at least two (name, value) entries, got {spec!r}")
    try:
        names = [str(name) for name, _ in items]
        values = np.array([float(v) for _, v in items])
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{what} must be (name, number) pairs, got {spec!r}") from err
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names must be distinct, got {names}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} values must be finite, got {values.tolist()}")
    return names, values


def _check_shares(shares: np.ndarray) -> np.ndarray:
    if np.any(shares <= 0) or not math.isclose(float(shares.sum()), 1.0, abs_tol=1e-9):
        raise ValueError(
            f"tiers: shares must be positive and sum to 1, got {shares.tolist()} "
            f"(sum {shares.sum():.6g})"
        )
    return np.cumsum(shares)[:-1]


def _check_bounds(bounds: np.ndarray, what: str) -> np.ndarray:
    upper = bounds[:-1]
    if np.any(np.diff(upper) >= 0):
        raise ValueError(
            f"{what} lower bounds must decrease from the first entry to the last, got "
            f"{bounds.tolist()}"
        )
    return upper


def band_index(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Index of the first band whose lower bound ``values`` reach (bounds decreasing).

    ``bounds`` has one entry fewer than there are bands: the last band takes the rest.
    Works along the last axis of ``bounds`` against ``values`` broadcast to match.

    Examples
    --------
    >>> band_index(np.array([5.0, 2.0, 0.5, 2.0]), np.array([4.0, 2.0])).tolist()
    [0, 1, 2, 1]
    """
    values = np.asarray(values, dtype=float)
    out = np.zeros(values.shape, dtype=np.int8)
    for k in range(bounds.shape[-1]):
        out += values < bounds[..., k]
    return out


def rank_share_tiers(values: np.ndarray, weights: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Tier of each value when tiers hold the top ``cuts`` cumulative shares.

    A value is in the first tier whose cumulative share exceeds the weight share of
    strictly larger values; equal values share a tier.

    Examples
    --------
    >>> rank_share_tiers(np.arange(10.0), np.ones(10), np.array([0.1, 0.3, 0.6])).tolist()
    [3, 3, 3, 3, 2, 2, 2, 1, 1, 0]
    """
    values = np.asarray(values, dtype=float)
    weights = np.asarray(weights, dtype=float)
    order = np.argsort(values)
    sorted_values = values[order]
    cum = np.concatenate([[0.0], np.cumsum(weights[order])])
    total = cum[-1]
    above = total - cum[np.searchsorted(sorted_values, values, side="right")]
    tiers = np.zeros(values.shape, dtype=np.int8)
    for cut in cuts:
        # Same rounding as the per-draw boundaries: in the tier when fewer than
        # ceil(S * N) customers are strictly above.
        tiers += above >= math.ceil(cut * total - 1e-9)
    return tiers


def _exact_boundaries(values: np.ndarray, weights: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Per-draw boundaries (n_draws, n_cuts): the value of the ceil(S * N)-th unit of
    weight from the top, so that ``value >= boundary`` reproduces
    :func:`rank_share_tiers` within each draw.

    Examples
    --------
    >>> values = np.array([[5.0, 1.0, 3.0, 4.0], [0.0, 2.0, 2.0, 1.0]])
    >>> _exact_boundaries(values, np.ones(4), np.array([0.25, 0.5])).tolist()
    [[5.0, 4.0], [2.0, 2.0]]
    >>> _exact_boundaries(values, np.array([1.0, 1.0, 1.0, 2.0]), np.array([0.25, 0.5])).tolist()
    [[4.0, 4.0], [2.0, 1.0]]
    """
    targets = _unit_targets(cuts, float(weights.sum()))
    if np.all(weights == 1.0):
        # One unit per customer (realised values): the boundary is an order statistic,
        # found by partition instead of a sort of every draw.
        kth = targets.astype(np.int64) - 1
        part = np.partition(values, values.shape[1] - 1 - kth, axis=1)
        return part[:, values.shape[1] - 1 - kth]
    order = np.argsort(-values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    cum = np.cumsum(weights[order], axis=1)
    out = np.empty((values.shape[0], cuts.size))
    for k, target in enumerate(targets):
        pos = np.argmax(cum >= target - 1e-9, axis=1)
        out[:, k] = ordered[np.arange(values.shape[0]), pos]
    return out


def _grid_around(point_bounds: np.ndarray, span: float, zero_bin: bool = False) -> LogGrid:
    """A grid from ``span`` times below the lowest positive point boundary to ``span``
    times above the highest."""
    positive = point_bounds[point_bounds > 0]
    if positive.size == 0:
        positive = np.array([1e-9, 1.0])
    low, high = float(positive.min()) / span, float(positive.max()) * span
    return LogGrid.spanning(low, high, zero_bin=zero_bin)


def _unit_targets(cuts: np.ndarray, total: float) -> np.ndarray:
    """Rank (in units of weight, from the top) of the customer at each boundary."""
    return np.maximum(np.ceil(cuts * total - 1e-9), 1.0)


def _histogram_targets(hist: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per draw and cut: the bin holding the target unit, and the weight above that bin.

    A few draws at a time, so that the cumulative counts stay small beside ``hist``.

    Examples
    --------
    >>> hist = np.array([[5.0, 3.0, 2.0], [0.0, 6.0, 4.0]])   # 2 draws x 3 bins
    >>> k, above = _histogram_targets(hist, np.array([1.0, 6.0]))
    >>> k.tolist(), above.tolist()
    ([[2, 0], [2, 1]], [[0.0, 5.0], [0.0, 4.0]])
    """
    n_draws, n_bins = hist.shape
    k = np.empty((n_draws, targets.size), dtype=np.int64)
    above = np.empty((n_draws, targets.size))
    step = max(1, _TARGET_CELLS // n_bins)
    for d0 in range(0, n_draws, step):
        from_top = np.cumsum(hist[d0 : d0 + step, ::-1], axis=1)[:, ::-1]  # weight in bins >= k
        # from_top never increases, so the bins reaching a target form a prefix.
        part = np.stack([np.count_nonzero(from_top >= t, axis=1) - 1 for t in targets], axis=1)
        rows = np.arange(from_top.shape[0])[:, None]
        next_bin = np.minimum(part + 1, n_bins - 1)
        above[d0 : d0 + step] = np.where(part + 1 < n_bins, from_top[rows, next_bin], 0.0)
        k[d0 : d0 + step] = part
    return k, above


class _PendingCells:
    """Draw-customer cells that share the boundary's bin, settled once all are seen.

    In pass 2 a cell is provisionally placed above a cut when its bin is the cut's
    bin. Afterwards each draw's exact boundary is the value of the target unit among
    those cells (sorted, their weights added to the weight above the bin), and cells
    below it move one tier down.
    """

    def __init__(self) -> None:
        # One list per column: (draw, row, cut, value, tier), in small dtypes where they
        # fit, since millions of cells may wait here (18 bytes a cell with fewer than
        # 32,768 draws; a cell's weight is its row's, looked up when settling).
        self.columns: tuple[list[np.ndarray], ...] = tuple([] for _ in range(5))

    def add(self, draw, row, cut, value, tier) -> None:
        if draw.size:
            draw_type = np.int16 if draw.max() < 2**15 else np.int32
            row_type = np.int32 if row.max() < 2**31 else np.int64
            parts = (
                draw.astype(draw_type), row.astype(row_type), np.full(draw.size, cut, np.int8),
                value, np.asarray(tier, dtype=np.int8),
            )  # fmt: skip
            for column, part in zip(self.columns, parts, strict=True):
                column.append(part)

    def settle(
        self,
        above: np.ndarray,
        targets: np.ndarray,
        point_tier: np.ndarray,
        same: np.ndarray,
        top: np.ndarray,
        weights: np.ndarray,
    ) -> None:
        if not self.columns[0]:
            return
        # One column at a time, each freed once joined: the cells are held about once.
        joined = []
        for column in self.columns:
            joined.append(np.concatenate(column))
            column.clear()
        draw, row, cut, value, tier = joined
        moves = np.zeros(draw.size, dtype=bool)
        for c, target in enumerate(targets):
            idx = np.flatnonzero(cut == c)
            if idx.size == 0:
                continue
            idx = idx[np.lexsort((-value[idx], draw[idx]))]
            d = draw[idx]
            start = np.flatnonzero(np.diff(d, prepend=-1))
            weight = weights[row[idx]]
            cum = np.cumsum(weight)
            before = (cum - weight)[start]
            within = cum - np.repeat(before, np.diff(np.append(start, d.size)))
            reached = np.flatnonzero(above[d, c] + within >= target - 1e-9)
            first = reached[np.unique(d[reached], return_index=True)[1]]
            boundary = np.full(above.shape[0], -np.inf)
            boundary[d[first]] = value[idx][first]
            moves[idx] = value[idx] < boundary[d]
        if not moves.any():
            return
        key = draw[moves].astype(np.int64) * same.size + row[moves]
        keys, first, count = np.unique(key, return_index=True, return_counts=True)
        r = keys % same.size
        old = tier[moves][first]
        new = old + count
        np.add.at(same, r, (new == point_tier[r]).astype(float) - (old == point_tier[r]))
        np.add.at(top, r, (new == 0).astype(float) - (old == 0))


Passes = Callable[[], Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]]


def _drawn_tier_shares(
    passes: Passes,
    weights: np.ndarray,
    n_draws: int,
    cuts: np.ndarray | None,
    bounds: np.ndarray | None,
    grid: LogGrid | None,
    exact_limit: int,
    advance: Callable[[], None],
    on_values: Callable[[slice, np.ndarray, np.ndarray], None] | None = None,
    split_zeros: bool = False,
    histogram: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Share of draws placing each unit in its point tier, and in the top tier.

    ``passes()`` runs through the units (distinct rows, or customers) block by block,
    the same values every time: ``(units, weights, values, point_tier)`` with values
    draws x units. Tiers are by value bounds (``bounds``, the same in every draw) or by
    rank share (``cuts``): then each draw's boundaries come from all its values, by a
    full sort when units x draws fit in ``exact_limit`` and no ``histogram`` is given,
    else from histograms on ``grid`` and a second pass (see the module notes).
    ``on_values`` sees every block of the first pass. Returns the two shares and the
    method ("fixed", "exact", "histogram").

    With ``split_zeros`` (rank-share tiers of realised values, where many customers
    realise exactly zero), the customers tied at zero are not all put in the highest
    tier they reach: ties are broken at random, so that a customer realising zero is
    in each tier with the share of the zeros' ranks that the tier covers. The grid
    must then keep zeros in a bin of their own (``zero_bin``).

    ``histogram`` (draws x ``grid.n_bins``), when given, is the first pass's histogram
    already filled: the histogram route then makes one pass instead of two (and
    ``on_values`` sees the blocks of that pass).
    """
    n_units = weights.size
    fixed = cuts is None
    # A histogram already filled spares the first pass, and the second costs less than
    # the sort of every draw that the exact route makes.
    exact = not fixed and histogram is None and n_units * n_draws <= exact_limit
    cached = np.empty((n_draws, n_units)) if exact else None
    unit_tier = np.empty(n_units, dtype=np.int8)
    hist = np.zeros((n_draws, grid.n_bins)) if not (fixed or exact) else None
    first_pass = hist is None or histogram is None
    if not first_pass:
        hist = histogram
    same = np.zeros(n_units)  # draws agreeing with the point tier
    top = np.zeros(n_units)  # draws in the top tier

    zero_share: np.ndarray | None = None  # per draw, the zeros' share of each tier

    def start_counts(units: slice, values: np.ndarray) -> None:
        """Zero the units' counts, or, with zeros split across tiers, start them at the
        zeros' shares (their cells are then not counted again)."""
        if zero_share is not None:
            shares = (values <= 0).T.astype(float) @ zero_share  # units x tiers
            tier = unit_tier[units].astype(np.int64)
            same[units] = shares[np.arange(tier.size), tier]
            top[units] = shares[:, 0]
        else:
            same[units] = 0.0
            top[units] = 0.0

    def assign(units: slice, drawn_tier: np.ndarray, values: np.ndarray) -> None:
        start_counts(units, values)
        if zero_share is not None:
            drawn_tier = np.where(values <= 0, -1, drawn_tier)  # counted in the shares
        same[units] += np.count_nonzero(drawn_tier == unit_tier[units], axis=0)
        top[units] += np.count_nonzero(drawn_tier == 0, axis=0)

    for units, w, values, tier in passes() if first_pass else ():
        unit_tier[units] = tier
        if on_values is not None:
            on_values(units, w, values)
        if fixed:
            assign(units, band_index(values, bounds), values)
        elif exact:
            cached[:, units] = values
        else:
            grid.add(hist, values, w)
        advance()
    if exact:
        boundaries = _exact_boundaries(cached, weights, cuts)
        if split_zeros:
            zero_share = _zero_tier_shares((cached <= 0) @ weights, float(weights.sum()), cuts)
        assign(slice(0, n_units), band_index(cached, boundaries[:, None, :]), cached)
    elif not fixed:
        # Pass 2: every draw's boundary is known to its bin; cells in that bin are
        # settled exactly once all have been seen.
        targets = _unit_targets(cuts, float(weights.sum()))
        target_bin, above = _histogram_targets(hist, targets)
        if split_zeros:
            zero_share = _zero_tier_shares(hist[:, 0], float(weights.sum()), cuts)
        pending = _PendingCells()
        bounds = grid.bin_bounds(target_bin)
        for units, w, values, tier in passes():
            unit_tier[units] = tier
            if on_values is not None and not first_pass:
                on_values(units, w, values)
            # Tiers, counts and the cells in a boundary's bin in one compiled pass (a
            # boundary in the bin of zeros is zero: its cells are all above it).
            start_counts(units, values)
            d, r, cut, cell_tier = grid.tiers(
                values, bounds, unit_tier[units], same[units], top[units],
                count_zeros=zero_share is None,
            )
            for c in range(cuts.size):
                on = cut == c
                pending.add(d[on], r[on] + units.start, c, values[d[on], r[on]], cell_tier[on])
            advance()
        pending.settle(above, targets, unit_tier, same, top, weights)
    method = "fixed" if fixed else ("exact" if exact else "histogram")
    return same / n_draws, top / n_draws, method


def _zero_tier_shares(zeros: np.ndarray, total: float, cuts: np.ndarray) -> np.ndarray:
    """Per draw and tier, the share of the customers tied at zero that the tier takes
    when ties are broken at random: the zeros hold the lowest ``zeros[d]`` of ``total``
    ranks and tier ``k`` the ranks from ``cuts[k-1] * total`` to ``cuts[k] * total``
    from the top.

    Examples
    --------
    >>> _zero_tier_shares(np.array([50.0, 0.0]), 100.0, np.array([0.1, 0.3, 0.6])).round(2)
    array([[0. , 0. , 0.2, 0.8],
           [0. , 0. , 0. , 0. ]])
    """
    edges = np.concatenate([[0.0], cuts, [1.0]]) * total  # ranks from the top
    zeros = np.asarray(zeros, dtype=float)[:, None]
    start = total - zeros  # the zeros' ranks: (start, total]
    overlap = np.clip(np.minimum(edges[1:], total) - np.maximum(edges[:-1], start), 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(zeros > 0, overlap / zeros, 0.0)


def _realised_tier_shares(
    forecast: CLVForecast,
    point_tier: np.ndarray,
    n_futures: int,
    cuts: np.ndarray | None,
    bounds: np.ndarray | None,
    point_bounds: np.ndarray,
    exact_limit: int,
    advance: Callable[[], None],
) -> tuple[np.ndarray, np.ndarray]:
    """Share of the forecast's simulated futures in which each customer's realised value
    lands in its point tier, and in the top tier, in the order of ``forecast.table``.

    Under each draw every customer has one simulated realised value; the tiers of that
    draw are formed from those values as from the point CLVs (by rank share, or by
    value bounds). Realised values spread far wider than expected ones and hold an atom
    at zero, hence a wider histogram grid with a bin of its own for zeros.
    """
    index = forecast.table.index
    row_tier = point_tier[forecast.row_of_customer]
    positions: list[np.ndarray] = []  # of each chunk's customers in the table

    def passes() -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:
        start, known = 0, bool(positions)
        for k, (ids, values) in enumerate(forecast.iter_draws("predictive")):
            if not known:
                positions.append(index.get_indexer(ids))
            at = positions[k]
            yield slice(start, start + at.size), np.ones(at.size), values, row_tier[at]
            start += at.size
        advance()

    grid = hist = None
    if cuts is not None and forecast.realised_histogram is not None:
        # Filled while the forecast simulated these futures: one pass fewer here.
        grid, hist = forecast.realised_histogram
    elif cuts is not None:
        grid = _grid_around(point_bounds, _REALISED_SPAN, zero_bin=True)
    same, top, _ = _drawn_tier_shares(
        passes,
        np.ones(index.size),
        n_futures,
        cuts,
        bounds,
        grid,
        exact_limit,
        lambda: None,
        split_zeros=cuts is not None,
        histogram=hist,
    )
    at = np.concatenate(positions)
    same_out, top_out = np.empty(index.size), np.empty(index.size)
    same_out[at], top_out[at] = same, top
    return same_out, top_out


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
@dataclass
class Segmentation:
    """Result of :func:`segment`.

    Attributes
    ----------
    customers : DataFrame
        Per customer (indexed like the forecast): ``clv``, ``probability_alive``,
        ``tier`` (from the point CLV), ``tier_probability`` (parameter uncertainty:
        share of draws placing the customer's expected CLV in that same tier),
        ``top_tier_probability``, ``activity`` (P(alive) band) and ``segment`` (plain
        name, e.g. "high value, at risk"); for a predictive forecast also
        ``tier_probability_realised`` and ``top_tier_probability_realised`` (share of
        simulated futures in which the realised value lands there; see the module
        notes).
    tiers : DataFrame
        Per tier: ``customers``, ``share_of_customers``, ``clv_total`` with
        ``clv_total_lower`` / ``clv_total_upper``, ``clv_mean`` with its interval,
        ``share_of_value`` with its interval, ``mean_tier_probability`` (and
        ``mean_tier_probability_realised`` for a predictive forecast) and
        ``boundary`` (lowest point CLV of the tier).
    grid : DataFrame
        One row per tier x activity cell: ``segment``, ``customers``, ``clv_total``,
        ``share_of_value``, ``mean_probability_alive``.
    settings : dict
        Tiers, activity bands, interval level, how the boundaries were computed and
        whether realised-value probabilities were (``realised``).
    """

    customers: pd.DataFrame
    tiers: pd.DataFrame
    grid: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    def pivot(self, values: str = "customers") -> pd.DataFrame:
        """The value-by-activity grid as a table: tiers down, activity bands across.

        Examples
        --------
        >>> seg.pivot("clv_total")  # doctest: +SKIP
        """
        if values not in self.grid.columns or values == "segment":
            raise ValueError(f"values must be a numeric column of grid, got {values!r}")
        return self.grid.pivot(index="tier", columns="activity", values=values)


def segment(
    forecast: CLVForecast,
    tiers: Any = None,
    *,
    thresholds: Any = None,
    activity_bands: Any = DEFAULT_ACTIVITY_BANDS,
    interval: float | None = None,
    exact_limit: int = EXACT_LIMIT,
    common_multipliers: Any = None,
    progressbar: bool | None = None,
) -> Segmentation:
    """CLV tiers with membership probabilities, tier totals and a value-by-activity grid.

    Every customer gets ``tier_probability`` (parameter uncertainty of its expected
    CLV) and, when the forecast was made with ``predictive=True``,
    ``tier_probability_realised`` (the chance that its realised value lands in the
    tier, from the forecast's simulated futures, which are run again here: once, or
    twice for a forecast that kept no histogram of them when customers x draws exceed
    ``exact_limit``).

    Parameters
    ----------
    forecast : CLVForecast
        From :func:`clvmodels.customer_lifetime_value`.
    tiers : sequence of (name, share) or mapping, optional
        Tiers by CLV rank share, most valuable first; shares sum to 1. Default
        :data:`DEFAULT_TIERS`: top 10% / next 20% / middle 30% / bottom 40%, named
        "top value", "high value", "middle value", "low value".
    thresholds : sequence of (name, lower_bound) or mapping, optional
        Tiers by CLV value instead: a customer is in the first tier whose lower bound
        its CLV reaches; the last tier takes the rest (its bound is not used, 0 is a
        natural way to write it). The boundaries are then the same in every draw.
    activity_bands : sequence of (name, lower_bound), default DEFAULT_ACTIVITY_BANDS
        P(alive) bands, most active first: "active" >= 0.7, "at risk" >= 0.3,
        "lapsed" below. Under BG/NBD a customer without repeat purchases has
        P(alive) = 1 (no dropout can have happened yet), so one-time buyers count as
        "active"; their low CLV places them in the low tiers.
    interval : float, optional
        Level of the tier-summary intervals; defaults to the forecast's.
    exact_limit : int
        Largest number of distinct customers x draws (customers x draws for realised
        values) for which per-draw boundaries come from a sort of every draw (beyond
        it, or where the forecast kept a histogram of the values: fine histograms, see
        the module notes; both give the same tiers).
    common_multipliers : array (n_draws,) or ShockFactors, optional
        One multiplier per draw of every customer's value alike: shocks common to all
        customers, from :func:`clvmodels.shocks.shock_factors`. Ranks do not move,
        so tiers and their probabilities stay as they are; the tiers' totals (and mean
        CLVs) take the multipliers into their intervals. Rank-share tiers only (a common
        shock would move customers across fixed ``thresholds``).
    progressbar : bool, optional
        Progress bar over the passes through the draws.

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> from clvmodels import (BetaGeo, GammaGamma, customer_lifetime_value, load_cdnow,
    ...                        rfm_summary)
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> fc = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
    ...                              summary, n_draws=200, random_state=0)
    >>> seg = segment(fc)
    >>> seg.tiers.index.tolist()
    ['top value', 'high value', 'middle value', 'low value']
    >>> bool(seg.customers["tier_probability"].between(0, 1).all())
    True
    """
    if not isinstance(forecast, CLVForecast):
        check_summary_model(forecast, "segment")
        raise TypeError(f"segment needs a CLVForecast, got {type(forecast).__name__}")
    exact_limit = whole_number(exact_limit, "exact_limit", 0)
    level = forecast.interval if interval is None else interval
    interval_probabilities(level)  # checks the level
    level = float(level)
    if thresholds is not None:
        if tiers is not None:
            raise ValueError("give either tiers (rank shares) or thresholds (values), not both")
        names, bounds = _pairs(thresholds, "thresholds")
        bounds = _check_bounds(bounds, "thresholds")
        cuts = None
    else:
        names, shares = _pairs(DEFAULT_TIERS if tiers is None else tiers, "tiers")
        cuts = _check_shares(shares)
        bounds = None
    band_names, band_bounds = _pairs(activity_bands, "activity_bands")
    band_bounds = _check_bounds(band_bounds, "activity_bands")
    multipliers = _check_multipliers(common_multipliers, forecast.n_draws, cuts is None)

    # Identical customers share a distinct row of the forecast and so every draw's value.
    weights, row_of_customer = forecast.row_weights, forecast.row_of_customer
    n_rows, n_draws = len(weights), forecast.n_draws
    table = forecast.table
    row_clv = np.empty(n_rows)
    row_clv[row_of_customer] = table["clv"].to_numpy()
    n_tiers = len(names)

    if cuts is not None:
        point_tier = rank_share_tiers(row_clv, weights, cuts)
    else:
        point_tier = band_index(row_clv, bounds)
    point_bounds = np.array(
        [row_clv[point_tier <= k].min() for k in range(n_tiers - 1)] if cuts is not None else bounds
    )

    # Parameter uncertainty: the per-draw expected CLVs of the distinct rows.
    tier_totals = np.zeros((n_draws, n_tiers))
    one_hot = point_tier[:, None] == np.arange(n_tiers)

    def expected_passes() -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:
        for rows, w, values in forecast.iter_row_draws():
            yield rows, w, values, point_tier[rows]

    def add_tier_totals(rows: slice, w: np.ndarray, values: np.ndarray) -> None:
        nonlocal tier_totals
        tier_totals += values @ (w[:, None] * one_hot[rows])

    realised = forecast.predictive_totals is not None
    grid = histogram = None
    if cuts is not None:
        grid = _grid_around(point_bounds, _SPAN)
        kept = forecast.expected_histogram
        positive = point_bounds[point_bounds > 0]
        if kept is not None and positive.size and kept[0].covers(
            float(positive.min()) / _SPAN, float(positive.max()) * _SPAN
        ):
            # Filled while the forecast computed these values, on bins that hold every
            # boundary as far as draws move it: one pass fewer here.
            grid, histogram = kept
    big = grid is not None and n_rows * n_draws > exact_limit
    n_passes = 2 if big and histogram is None else 1
    n_realised_passes = 0
    if realised:
        n_customers = len(row_of_customer)
        big = cuts is not None and n_customers * forecast.n_futures > exact_limit
        n_realised_passes = 2 if big and forecast.realised_histogram is None else 1
    steps = forecast.n_row_blocks * n_passes + n_realised_passes
    show = steps > 1 if progressbar is None else bool(progressbar)
    with progress_bar(steps, "segments", enabled=show) as bar:
        same, top, method = _drawn_tier_shares(
            expected_passes, weights, n_draws, cuts, bounds, grid, exact_limit,
            bar.advance, on_values=add_tier_totals, histogram=histogram,
        )  # fmt: skip
        if realised:
            same_real, top_real = _realised_tier_shares(
                forecast, point_tier, forecast.n_futures, cuts, bounds, point_bounds,
                exact_limit, bar.advance,
            )  # fmt: skip

    tier_cat = pd.Categorical.from_codes(point_tier, categories=names, ordered=True)
    p_alive = table["probability_alive"].to_numpy()
    activity = band_index(p_alive, band_bounds)
    activity_cat = pd.Categorical.from_codes(activity, categories=band_names, ordered=True)
    labels = [f"{t}, {a}" for t in names for a in band_names]
    # The cell of each customer, tier-major: tiers and bands have 8-bit codes, so a cell
    # fits 16 bits.
    segment_codes = tier_cat.codes[row_of_customer].astype(np.int16)
    segment_codes *= len(band_names)
    segment_codes += activity
    # copy=False: the columns as they are, without a consolidated copy of them all at
    # once (with ten million customers, hundreds of MB); the forecast's own columns are
    # shared only where pandas copies a column on its first write.
    customers = pd.DataFrame(
        {
            "clv": _unshared(table["clv"]),
            "probability_alive": _unshared(table["probability_alive"]),
            "tier": tier_cat[row_of_customer],
            "tier_probability": same[row_of_customer],
            "top_tier_probability": top[row_of_customer],
            **(
                {"tier_probability_realised": same_real, "top_tier_probability_realised": top_real}
                if realised
                else {}
            ),
            "activity": activity_cat,
            "segment": pd.Categorical.from_codes(segment_codes, categories=labels),
        },
        index=table.index,
        copy=False,
    )
    if multipliers is not None:
        tier_totals = tier_totals * multipliers[:, None]
    summary = _tier_summary(
        names, point_tier, row_clv, weights, same, tier_totals, level, point_bounds
    )
    if realised:
        customer_tier = point_tier[row_of_customer]
        counts = np.bincount(customer_tier, minlength=n_tiers)
        summary["mean_tier_probability_realised"] = np.bincount(
            customer_tier, weights=same_real, minlength=n_tiers
        ) / np.where(counts > 0, counts, np.nan)
    grid = _grid(segment_codes, customers, names, band_names)
    settings = {
        "tiers": dict(zip(names, shares.tolist(), strict=True)) if cuts is not None else None,
        "thresholds": dict(zip(names[:-1], bounds.tolist(), strict=True)) if cuts is None else None,
        "activity_bands": dict(zip(band_names[:-1], band_bounds.tolist(), strict=True)),
        "interval": level,
        "boundaries": method,
        "realised": realised,
        "n_draws": n_draws,
        "n_futures": forecast.n_futures if realised else None,
        "common_multipliers": multipliers is not None,
    }
    return Segmentation(customers=customers, tiers=summary, grid=grid, settings=settings)


# pandas 3 always copies a shared column on its first write (copy-on-write); in older
# pandas a frame built on another's column would write through to it.
_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3


def _unshared(column: pd.Series) -> pd.Series | np.ndarray:
    """A column to build a new frame on, which writes to the new frame cannot change."""
    return column if _COPY_ON_WRITE else column.to_numpy(copy=True)


def _check_multipliers(multipliers: Any, n_draws: int, thresholds: bool) -> np.ndarray | None:
    """``common_multipliers`` as a float array of one positive value per draw."""
    if multipliers is None:
        return None
    if thresholds:
        raise ValueError(
            "common_multipliers: tiers by thresholds would move with a shock common to all "
            "customers; give rank-share tiers, whose membership a common shock leaves alone"
        )
    values = np.asarray(getattr(multipliers, "factors", multipliers), dtype=float)
    if values.shape != (n_draws,):
        raise ValueError(
            f"common_multipliers: one per draw of the forecast ({n_draws}), got shape "
            f"{values.shape}"
        )
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        raise ValueError(
            f"common_multipliers: must be positive and finite; draw {int(bad[0])} has "
            f"{float(values[bad[0]])!r} ({bad.size} such draws)"
        )
    return values


def _tier_summary(
    names: list[str],
    point_tier: np.ndarray,
    row_clv: np.ndarray,
    weights: np.ndarray,
    same: np.ndarray,
    tier_totals: np.ndarray,
    level: float,
    point_bounds: np.ndarray,
) -> pd.DataFrame:
    n_tiers = len(names)
    counts = np.bincount(point_tier, weights=weights, minlength=n_tiers)
    totals = np.bincount(point_tier, weights=weights * row_clv, minlength=n_tiers)
    grand = totals.sum()
    low_p, high_p = interval_probabilities(level)
    total_lo, total_hi = np.quantile(tier_totals, [low_p, high_p], axis=0)
    shares = tier_totals / tier_totals.sum(axis=1, keepdims=True)
    share_lo, share_hi = np.quantile(shares, [low_p, high_p], axis=0)
    safe = np.where(counts > 0, counts, np.nan)
    mean_prob = np.bincount(point_tier, weights=weights * same, minlength=n_tiers) / safe
    lowest = np.full(n_tiers, np.nan)
    for k in range(n_tiers):
        if counts[k] > 0:
            lowest[k] = row_clv[point_tier == k].min()
    return pd.DataFrame(
        {
            "customers": counts.astype(np.int64),
            "share_of_customers": counts / counts.sum(),
            "clv_total": totals,
            "clv_total_lower": total_lo,
            "clv_total_upper": total_hi,
            "clv_mean": totals / safe,
            "clv_mean_lower": total_lo / safe,
            "clv_mean_upper": total_hi / safe,
            "share_of_value": totals / grand if grand > 0 else np.nan,
            "share_of_value_lower": share_lo,
            "share_of_value_upper": share_hi,
            "mean_tier_probability": mean_prob,
            "boundary": lowest,
        },
        index=pd.Index(names, name="tier"),
    )


def _grid(
    codes: np.ndarray, customers: pd.DataFrame, tiers: list[str], bands: list[str]
) -> pd.DataFrame:
    """Customers, value and mean P(alive) of every (tier, activity) cell, tier-major;
    ``codes`` holds each customer's cell (counted with ``bincount``: a group-by of ten
    million customers on two categories held over 100 MB of keys)."""
    n_cells = len(tiers) * len(bands)
    codes = codes.astype(np.intp, copy=False)
    counts = np.bincount(codes, minlength=n_cells)
    clv_total = np.bincount(codes, weights=customers["clv"].to_numpy(), minlength=n_cells)
    alive_total = np.bincount(
        codes, weights=customers["probability_alive"].to_numpy(), minlength=n_cells
    )
    grid = pd.DataFrame(
        {
            "tier": pd.Categorical(np.repeat(tiers, len(bands)), categories=tiers, ordered=True),
            "activity": pd.Categorical(np.tile(bands, len(tiers)), categories=bands,
                                       ordered=True),
            "segment": [f"{t}, {a}" for t in tiers for a in bands],
            "customers": counts.astype(np.int64),
            "clv_total": clv_total,
            "mean_probability_alive": np.divide(
                alive_total, counts, out=np.full(n_cells, np.nan), where=counts > 0
            ),
        }
    )
    grand = clv_total.sum()
    grid["share_of_value"] = grid["clv_total"] / grand if grand > 0 else np.nan
    return grid


def rfm_segments(summary: Any, *, n_scores: int = 5) -> pd.DataFrame:
    """Classic recency / frequency / monetary quintile scores (5 = best).

    Recency is the time since the last purchase (``T - recency`` in summary terms:
    smaller is better), frequency the number of repeat purchases, monetary the mean
    repeat purchase value (0 for customers without repeat purchases). Each is scored
    ``1 + floor(n_scores * (rank - 1) / N)`` with the lowest rank among ties, so that
    tied customers share a score; where many customers tie (frequency 0 is common) the
    scores are therefore not equally filled.

    Parameters
    ----------
    summary : DataFrame
        Summary frame with ``frequency``, ``recency``, ``T`` and ``monetary_value``.
    n_scores : int, default 5
        Number of score levels (5: quintiles).

    Returns
    -------
    DataFrame
        ``time_since_last_purchase``, ``recency_score``, ``frequency_score``,
        ``monetary_score``, ``rfm_segment`` (e.g. "545") and ``rfm_score`` (the sum).

    Examples
    --------
    >>> from clvmodels import load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> rfm = rfm_segments(summary)
    >>> sorted(rfm["recency_score"].unique().tolist())
    [1, 2, 3, 4, 5]
    """
    if isinstance(n_scores, bool) or int(n_scores) != n_scores or not 2 <= n_scores <= 9:
        raise ValueError(f"n_scores must be an integer from 2 to 9, got {n_scores!r}")
    frame = validate_summary(summary, require_monetary=True, context="rfm_segments")
    since_last = (frame["T"] - frame["recency"]).to_numpy(dtype=float)
    scores = {
        "recency_score": _score(-since_last, n_scores),
        "frequency_score": _score(frame["frequency"].to_numpy(dtype=float), n_scores),
        "monetary_score": _score(
            np.where(frame["frequency"] > 0, frame["monetary_value"], 0.0), n_scores
        ),
    }
    out = pd.DataFrame({"time_since_last_purchase": since_last, **scores}, index=frame.index)
    out["rfm_segment"] = (
        out["recency_score"].astype(str)
        + out["frequency_score"].astype(str)
        + out["monetary_score"].astype(str)
    )
    out["rfm_score"] = out["recency_score"] + out["frequency_score"] + out["monetary_score"]
    return out


def _score(values: np.ndarray, n_scores: int) -> np.ndarray:
    rank = pd.Series(values).rank(method="min").to_numpy()
    return (1 + np.floor(n_scores * (rank - 1) / values.size)).astype(np.int64)
