"""Discounted customer lifetime value with parameter and predictive intervals.

The CLV of a customer over ``horizon`` discount periods of length ``period`` is

    CLV = sum_{k=1..H} E[purchases in period k | history] * E[spend | history] / (1 + d)^k

with the purchases from a transaction model and the spend per purchase from a spend
model, independent given the customer's history (the Gamma-Gamma assumption; Fader,
Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
*Journal of Marketing Research* 42(4)). Any pair of models that implements the model
contract (:mod:`clvmodels.models.base`) works here, through its public members only.
Horizon, period and discount rate are calendar settings (:class:`clvmodels.units.Calendar`)
converted to the summary's recorded ``time_unit``.

Two kinds of uncertainty are reported.

* **Parameter uncertainty** (``clv_lower`` / ``clv_upper``): the CLV is evaluated under
  ``n_draws`` parameter draws of both models (``param_draws``: posterior draws for
  Bayesian models, the estimator's asymptotic sampling distribution for maximum
  likelihood), and the interval is the equal-tailed quantile range over draws. It says
  where the *expected* value lies.
* **Predictive uncertainty** (``clv_pred_lower`` / ``clv_pred_upper``): under each
  parameter draw one future is simulated per customer by the models' own simulators
  (``simulate_purchases``, then ``simulate_spend``), and every simulated purchase is
  discounted by the period it falls in, so the interval says where the *realised* value
  will fall.

Scale. Customers identical in every column the models read are computed once, in
blocks of bounded memory. Where the transaction model declares
``alive_future_columns`` (``frequency`` and ``T`` for BG/NBD), its expected purchases
factor as ``P(alive | history) * E[Y(t) | those columns, alive]``: the costly second
factor is evaluated once per distinct value of those columns (a few thousand rows for
a million customers summarised by day) and per draw, and kept for later passes; the
factorisation is checked against the model's own ``expected_purchases``. A model that
also offers ``expected_purchases_while_alive`` (the beta-geometric family) gives the
discounted sum over the period ends and the value at the horizon in one call, its
series for all period ends sharing their coefficients. Other models
are evaluated on every distinct row. A block's CLVs under the draws are formed, added
up and ordered for their quantiles a few rows at a time in one compiled loop
(:mod:`clvmodels._expected_loops`). Simulated futures are summarised as they come,
a thousand customers at a time, from their purchases: most futures buy nothing, so no
array of every draw's value is held unless the draws are kept
(:mod:`clvmodels._predictive_loops`). Blocks are scored on ``n_jobs`` threads (NumPy
and the compiled loops release the GIL); each block draws its futures from its own
seed and the blocks' totals are added in block order, so the numbers do not depend on
the number of threads.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._histogram import LogGrid
from clvmodels._threads import in_order, resolve_n_jobs
from clvmodels._validation import float_or_nan, whole_number
from clvmodels.data import compress, compress_arrays, validate_summary
from clvmodels.errors import DataValidationError, NotFittedError
from clvmodels.models.base import (
    SimulatedPurchases,
    SpendModel,
    TransactionModel,
    check_summary_model,
    leading_draws,
    takes_keyword,
)
from clvmodels.progress import progress_bar
from clvmodels.units import Calendar, resolve_time_unit

__all__ = [
    "CLVForecast",
    "CLVScorer",
    "ChunkScore",
    "customer_lifetime_value",
    "discounted_value",
    "interval_probabilities",
    "prediction_bounds",
    "prediction_positions",
    "predictive_draw_totals",
    "predictive_interval",
]


# Per-draw discounted purchases of the distinct rows behind the expected purchases are
# kept up to this many values (128 MB), so that passes over the draws after the first
# skip the costly part.
_CACHE_VALUES = 16_000_000
# Draws x rows held per block: 2M float64 values are 16 MB per array, and a block
# keeps about ten such arrays alive; blocks are scored on several threads at once.
_BLOCK_ELEMENTS = 2_000_000
# Simulated futures (draws x customers) per piece of a block: a piece's purchases and
# their spends are about this many values. Small pieces keep the peak low: the
# allocator of a process with threads keeps freed memory of large arrays for reuse, and
# at 1M futures per piece it kept about 0.4 GB more (100k customers x 1000 draws)
# with no gain in time.
_PIECE_ELEMENTS = 250_000
# Purchases expected of a piece's futures. Light customers fill a piece with futures
# first (0.64 purchases each on average in bench_clv.py's data); heavy buyers fill it
# with purchases, each of which holds about _BYTES_PER_PURCHASE while its piece is
# simulated: 100k customers expecting 24 purchases each peaked at 4.0-4.2 GB at 1000
# futures before pieces were cut here, and at 1.0-1.1 GB after, in 0.72 of the time
# (bench_clv.py --frequent-buyers).
_PIECE_PURCHASES = 2_000_000
_BYTES_PER_PURCHASE = 32  # owner, time, value and the summaries' share
# Purchases expected of one customer's futures beyond which simulating them is refused:
# a piece cannot be smaller than a customer.
_MAX_CUSTOMER_PURCHASES = 100_000_000
# Blocks scored ahead of the one whose totals are added next. A block's results are a
# few per-draw totals, but its cost follows its customers: the distinct rows of those
# who never bought again hold hundreds of thousands of customers to simulate in one
# block, which takes as long as dozens of others; a short window would idle the other
# threads meanwhile.
_BLOCKS_AHEAD = 64


# --------------------------------------------------------------------------------------
# Small pure functions
# --------------------------------------------------------------------------------------
def interval_probabilities(interval: float) -> tuple[float, float]:
    """Lower and upper tail probabilities of an equal-tailed interval of level ``interval``.

    Examples
    --------
    >>> [round(p, 6) for p in interval_probabilities(0.9)]
    [0.05, 0.95]
    """
    level = float_or_nan(interval)
    if not 0 < level < 1:
        raise ValueError(f"interval must lie strictly between 0 and 1, got {interval!r}")
    return (1.0 - level) / 2.0, (1.0 + level) / 2.0


def prediction_positions(n: int, probs: Sequence[float]) -> np.ndarray:
    """0-based order-statistic positions that bound a new draw with probabilities
    ``probs``, from ``n`` exchangeable simulated values.

    A new value falls below the ``k``-th smallest of ``n`` with probability
    ``k / (n + 1)``, so the bound for ``p`` is the order statistic ``p (n + 1)``
    (1-based), interpolated linearly and kept within the sample; NumPy's "weibull"
    quantile rule. The default rule, position ``p (n - 1)``, gives intervals that hold
    a new value less often than their level: 88.2% for a 90% interval from 100 values.

    Examples
    --------
    >>> prediction_positions(100, [0.05, 0.95]).round(2).tolist()
    [4.05, 94.95]
    """
    return np.clip(np.asarray(probs, dtype=float) * (n + 1) - 1.0, 0.0, n - 1.0)


def prediction_bounds(values: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Where a new value falls below each of ``probs``, from simulated ``values`` (1-d):
    the order statistics at :func:`prediction_positions`, e.g. the bounds of a
    predictive total from its per-future totals.

    Examples
    --------
    >>> prediction_bounds(np.arange(1.0, 100.0), [0.05, 0.95]).tolist()
    [5.0, 95.0]
    """
    values = np.asarray(values, dtype=float)
    positions = prediction_positions(values.size, probs)
    return _order_values(values[:, None], positions)[:, 0]


def predictive_draw_totals(
    draw_totals: np.ndarray, predictive_totals: np.ndarray | None
) -> np.ndarray | None:
    """A realised portfolio total under every parameter draw, from futures simulated
    under the first ``len(predictive_totals)`` draws only.

    Those draws keep their simulated totals. Each later draw ``d`` takes its own
    expected total times the ratio of simulated to expected total of future
    ``d mod n_futures``: that future's purchase noise, carried to the level of another
    draw. The total's predictive interval then rests on every draw's parameter
    uncertainty, not on the first ``n_futures`` only, and its bounds move less from
    seed to seed (on CDNOW's sample with 100 futures out of 1,000 draws, a width sd of
    4.7% of its mean against 8.6% from the futures alone; ``README.md``). It assumes
    that the relative purchase noise of a total changes little from draw to draw, as
    where the draws of a fitted portfolio differ by percents; there the bounds hold new
    totals, simulated with one future per draw, at their level. Totals stay
    non-negative, as realised values are.

    Parameters
    ----------
    draw_totals : ndarray (n_draws,)
        Expected total under each parameter draw.
    predictive_totals : ndarray (n_futures,) or None
        Simulated total of one future under each of the first ``n_futures`` draws.

    Returns
    -------
    ndarray (n_draws,) or None
        None without futures; the futures' totals themselves when there is one per draw.

    Examples
    --------
    >>> predictive_draw_totals(np.array([10.0, 20.0, 40.0]), np.array([12.0, 15.0])).tolist()
    [12.0, 15.0, 48.0]
    """
    if predictive_totals is None:
        return None
    expected = np.asarray(draw_totals, dtype=float)
    simulated = np.asarray(predictive_totals, dtype=float)
    n_futures = simulated.size
    if not 0 < n_futures <= expected.size:
        raise ValueError(
            f"{n_futures} simulated totals for {expected.size} draws: the futures are "
            "simulated under the first draws, between 1 and one per draw"
        )
    out = expected.copy()
    out[:n_futures] = simulated
    later = np.arange(n_futures, expected.size) % n_futures
    # A draw whose expected total is zero holds no purchases to carry: ratio one.
    ratio = np.divide(
        simulated, expected[:n_futures], out=np.ones(n_futures), where=expected[:n_futures] > 0
    )
    out[n_futures:] *= ratio[later]
    return out


def _order_values(values: np.ndarray, positions: Sequence[float]) -> np.ndarray:
    """Values at 0-based fractional order-statistic ``positions`` over axis 0,
    interpolated linearly between neighbours, from one partition."""
    n = values.shape[0]
    positions = [float(h) for h in positions]
    lows = [math.floor(h) for h in positions]
    kth = sorted({k for low in lows for k in (low, min(low + 1, n - 1))})
    part = np.partition(np.ascontiguousarray(values.T), kth, axis=1)
    out = np.empty((len(positions), values.shape[1]))
    for i, (h, low) in enumerate(zip(positions, lows, strict=True)):
        a, b = part[:, low], part[:, min(low + 1, n - 1)]
        frac = h - low
        if frac == 0:
            out[i] = a
            continue
        with np.errstate(invalid="ignore"):  # inf - inf where both are infinite
            out[i] = np.where(a == b, a, a + (b - a) * frac)
    return out


def predictive_interval(values: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval holding a share ``interval`` of simulated values, per column (draws on
    axis 0).

    Realised values have an atom at zero (a customer may buy nothing). When that atom
    holds more than the lower tail ``(1 - interval) / 2``, the equal-tailed interval
    would start at zero anyway and hold more than ``interval``; the interval is then
    ``[0, q_interval]``, which holds ``interval`` of the distribution (or ``[0, 0]``
    when more than ``interval`` of it is zero). Otherwise it is the equal-tailed
    interval. The bounds are the order statistics that hold a *new* value with these
    probabilities (:func:`prediction_positions`), so that the interval keeps its level
    however few values there are.

    Examples
    --------
    >>> sims = np.r_[np.zeros(50), np.arange(1.0, 51.0)][:, None]
    >>> [round(float(v[0]), 2) for v in predictive_interval(sims, 0.9)]
    [0.0, 40.9]
    """
    low_p, high_p = interval_probabilities(interval)
    positions = prediction_positions(values.shape[0], [low_p, high_p, float(interval)])
    quantiles = _order_values(values, positions)
    return _interval_at_atom(quantiles, np.mean(values <= 0, axis=0), low_p)


def _interval_at_atom(
    quantiles: np.ndarray, zero_share: np.ndarray, low_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`predictive_interval` from the quantiles at ``(low_p, high_p, interval)``
    and the share of values at zero."""
    low, high, at_level = quantiles
    atom = zero_share > low_p
    return np.where(atom, 0.0, low), np.where(atom, at_level, high)


def discounted_value(
    purchases: SimulatedPurchases,
    values: np.ndarray,
    period_length: float,
    discount: np.ndarray,
) -> np.ndarray:
    """Discounted value of simulated purchases, per (draw, customer) pair.

    A purchase at time ``s`` after the end of observation falls in the discount period
    ``k = min(floor(s / period_length), horizon - 1)`` (counted from 0, ``horizon`` the
    length of ``discount``) and counts ``value * discount[k]``.

    Parameters
    ----------
    purchases : SimulatedPurchases
        From a transaction model's ``simulate_purchases``.
    values : array, one entry per purchase
        From the spend model's ``simulate_spend``.
    period_length : float
        Length of a discount period in the models' time unit.
    discount : array of shape (horizon,)
        Discount factor of each period.

    Returns
    -------
    ndarray of shape ``purchases.shape``
        Zero for pairs that make no purchase.

    Examples
    --------
    >>> sims = SimulatedPurchases(owner=np.array([0, 0, 3]), time=np.array([0.5, 1.5, 2.0]),
    ...                           shape=(2, 2))
    >>> discounted_value(sims, np.array([10.0, 10.0, 4.0]), 1.0, np.array([1.0, 0.5])).tolist()
    [[15.0, 0.0], [0.0, 2.0]]
    """
    values = _purchase_values(purchases, values)
    discount = np.asarray(discount, dtype=float)
    # Times are positive, so truncation is the floor.
    period = np.minimum(
        (np.asarray(purchases.time, dtype=float) / period_length).astype(np.int64),
        discount.size - 1,
    )
    size = int(np.prod(purchases.shape))
    total = np.bincount(purchases.owner, weights=values * discount[period], minlength=size)
    return total.reshape(purchases.shape)


def _purchase_values(purchases: SimulatedPurchases, values: Any) -> np.ndarray:
    """A spend model's values as floats, checked to be one per simulated purchase."""
    values = np.asarray(values, dtype=float)
    if values.shape != np.shape(purchases.time):
        raise ValueError(
            f"values must have one entry per simulated purchase ({purchases.n_purchases}), "
            f"got shape {values.shape}"
        )
    return values


def _discounted_purchases(
    cumulative_at: Callable[[float], np.ndarray],
    period_ends: np.ndarray,
    discount: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Discounted sum of the period increments of cumulative expected purchases, and the
    cumulative value at the end of the horizon."""
    previous: np.ndarray | float = 0.0
    discounted: np.ndarray | float = 0.0
    for t, factor in zip(period_ends, discount, strict=True):
        cumulative = cumulative_at(float(t))
        discounted = discounted + (cumulative - previous) * factor
        previous = cumulative
    return np.asarray(discounted), np.asarray(previous)


def _purchase_weights(discount: np.ndarray) -> np.ndarray:
    """Weights on cumulative expected purchases at the period ends that give the
    discounted purchases (row 0: ``sum_j (C_j - C_{j-1}) f_j = sum_j C_j (f_j -
    f_{j+1})``) and the cumulative value at the horizon (row 1)."""
    weights = np.zeros((2, discount.size))
    weights[0] = discount - np.append(discount[1:], 0.0)
    weights[1, -1] = 1.0
    return weights


@dataclass(frozen=True)
class _Futures:
    """Simulated futures of a piece of customers, summarised: each customer's predictive
    interval, each draw's total, and the (draw, customer) futures that buy with their
    values."""

    interval: tuple[np.ndarray, np.ndarray]
    totals: np.ndarray
    draw: np.ndarray
    value: np.ndarray
    pair_start: np.ndarray
    shape: tuple[int, int]

    def dense(self) -> np.ndarray:
        """The values of all futures, (n_futures, n_customers), zero where none bought."""
        out = np.zeros(self.shape)
        unit = np.repeat(np.arange(self.shape[1]), np.diff(self.pair_start))
        out[self.draw, unit] = self.value
        return out


def piece_bounds(load: np.ndarray, most: int, budget: float) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` ranges of ``load``'s items: at most ``most`` items
    each, and as many as fit in ``budget`` of summed load (at least one item).

    Examples
    --------
    >>> piece_bounds(np.array([1.0, 1.0, 5.0, 1.0, 1.0, 1.0]), 4, 3.0)
    [(0, 2), (2, 3), (3, 6)]
    """
    cumulative = np.concatenate([[0.0], np.cumsum(load)])
    bounds, start = [], 0
    while start < load.size:
        fits = int(np.searchsorted(cumulative, cumulative[start] + budget, side="right")) - 1
        stop = max(start + 1, min(start + most, load.size, fits))
        bounds.append((start, stop))
        start = stop
    return bounds


def _check_futures_load(expected_purchases: np.ndarray, n_futures: int, ids: pd.Index) -> None:
    """Refuse to simulate ``n_futures`` futures of a customer expected to make so many
    purchases that they would not fit in memory (a piece holds at least one customer)."""
    load = np.nan_to_num(np.asarray(expected_purchases, dtype=float)) * n_futures
    if load.size and load.max() > _MAX_CUSTOMER_PURCHASES:
        heaviest = int(np.argmax(load))
        raise ValueError(
            f"customer {ids[heaviest]!r} is expected to make "
            f"{load[heaviest] / n_futures:,.0f} purchases over the horizon, so its "
            f"{n_futures} simulated futures would hold about {load[heaviest]:,.0f} "
            f"purchases ({load[heaviest] * _BYTES_PER_PURCHASE / 1e9:,.0f} GB): check that "
            "its frequency counts repeat purchase periods, or ask for fewer futures "
            "(n_futures)"
        )


def _summarised_futures(
    purchases: SimulatedPurchases,
    values: np.ndarray,
    period_length: float,
    discount: np.ndarray,
    interval: float,
) -> _Futures:
    """:func:`discounted_value` of simulated purchases and, from it,
    :func:`predictive_interval` and the totals per draw, without the dense array of
    values (compiled: :func:`clvmodels._predictive_loops.summarise_futures`)."""
    from clvmodels._predictive_loops import summarise_futures

    values = _purchase_values(purchases, values)
    n_draws, n_units = purchases.shape
    low_p, high_p = interval_probabilities(interval)
    positions = prediction_positions(n_draws, [low_p, high_p, float(interval)])
    quantiles, zero_share, totals, pair_start, draw, value = summarise_futures(
        np.asarray(purchases.owner, dtype=np.int64), np.asarray(purchases.time, dtype=float),
        values, float(period_length), np.asarray(discount, dtype=float), n_draws, n_units,
        positions,
    )
    return _Futures(
        interval=_interval_at_atom(quantiles, zero_share, low_p), totals=totals, draw=draw,
        value=value, pair_start=pair_start, shape=purchases.shape,
    )


def _summarised_draws(
    block: _Block,
    weights: np.ndarray,
    probs: Sequence[float],
    keep: bool,
    grid: LogGrid | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Quantiles ``probs`` of a drawn block's rows over the draws (NumPy's default
    rule), its per-draw totals, when ``keep`` its per-draw CLVs and, given a ``grid``,
    their bins on it (compiled: :func:`clvmodels._expected_loops.summarise_draws`)."""
    from clvmodels._expected_loops import summarise_draws

    spend = np.ascontiguousarray(block.spend, dtype=float)
    n_draws = spend.shape[0]
    positions = np.array([(n_draws - 1) * float(p) for p in probs])
    lows = np.floor(positions).astype(np.int64)
    kth = np.unique(np.r_[lows, np.minimum(lows + 1, n_draws - 1)])
    clv = np.empty(spend.shape) if keep else np.empty((0, 0))
    if grid is None:
        bins = np.empty((0, 0), dtype=np.int32)
        placement = (np.zeros(3), np.zeros(1, dtype=np.int32), 0, 0)
    else:
        bins = np.empty(spend.shape, dtype=np.int32)
        placement = grid.placement
    quantiles, totals = summarise_draws(
        np.ascontiguousarray(block.tx_value, dtype=float),
        np.asarray(block.tx_local, dtype=np.int64),
        spend,
        np.asarray(weights, dtype=float),
        positions,
        kth,
        clv,
        bins,
        *placement,
    )
    return quantiles, totals, clv if keep else None, None if grid is None else bins


def _array(values: Any) -> np.ndarray:
    """A model's prediction (Series or array) as a float array."""
    return np.asarray(values, dtype=float)


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------
#: More draws than this add nothing to an interval's precision and would only exhaust
#: memory (a million customers x a million draws).
MAX_N_DRAWS = 1_000_000


def _check_n_futures(n_futures: Any, n_draws: int, predictive: bool) -> int:
    """Simulated futures per customer: ``n_draws`` by default, else between 2 and it."""
    if n_futures is None:
        return n_draws
    if not predictive:
        raise ValueError(
            "n_futures counts the simulated futures behind predictive intervals: it needs "
            "predictive=True"
        )
    return whole_number(n_futures, "n_futures", 2, n_draws)


def _check_n_draws(n_draws: Any) -> int:
    return whole_number(n_draws, "n_draws", 2, MAX_N_DRAWS)


def _entropy(random_state: Any) -> int:
    """A reproducible integer seed from the usual ``random_state`` forms."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, np.random.SeedSequence):
        return int(random_state.entropy)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if isinstance(random_state, int | np.integer) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be non-negative, got {random_state}")
        return int(random_state)
    raise ValueError(
        f"random_state must be None, an int, a numpy Generator or SeedSequence, "
        f"got {random_state!r}"
    )


def _chunk_seed(random_state: Any) -> list[int]:
    """Seed words for a chunk's predictive simulation (ints or tuples of ints)."""
    if isinstance(random_state, tuple | list):
        return [_entropy(v) for v in random_state]
    return [_entropy(random_state)]


@contextmanager
def _progress(total: int, show: bool | None, description: str) -> Iterator[Callable[[], None]]:
    """Progress over blocks through :mod:`clvmodels.progress` (terminal, notebook or log).

    ``show=None`` shows it when there is more than one block.
    """
    enabled = total > 1 if show is None else bool(show)
    with progress_bar(total, description, enabled=enabled) as bar:
        yield bar.advance


def _group_col(model: Any) -> str | None:
    group = getattr(model, "group_col", None)
    return group if isinstance(group, str) and group else None


def _with_group(columns: Sequence[str], group: str | None) -> list[str]:
    return list(dict.fromkeys([*columns, *([group] if group else [])]))


def _contract_members(contract: type) -> list[str]:
    """Public members a Protocol of :mod:`clvmodels.models.base` asks for."""
    names: set[str] = set()
    for cls in contract.__mro__:
        if cls.__module__ == contract.__module__:
            names.update(vars(cls))
            names.update(vars(cls).get("__annotations__", {}))
    return sorted(n for n in names if not n.startswith("_"))


def _check_models(transaction_model: Any, spend_model: Any) -> None:
    for model in (transaction_model, spend_model):
        check_summary_model(model, "CLVScorer")
    for role, model, contract in (
        ("transaction_model", transaction_model, TransactionModel),
        ("spend_model", spend_model, SpendModel),
    ):
        if not isinstance(model, contract):
            missing = [n for n in _contract_members(contract) if not hasattr(model, n)]
            raise TypeError(
                f"{role} must implement the {contract.__name__} contract of "
                f"clvmodels.models.base; {type(model).__name__} lacks {missing}"
            )
        if not model.is_fitted:
            raise NotFittedError(
                f"{role} {type(model).__name__} is not fitted yet: call `fit(data)` first "
                "(or load a saved model with `clvmodels.load(path)`)"
            )


# --------------------------------------------------------------------------------------
# Layout: distinct customers, sorted and cut into blocks
# --------------------------------------------------------------------------------------
@dataclass
class _Layout:
    rows: pd.DataFrame  # distinct customers (every column the models read), sorted
    weights: np.ndarray  # customers per distinct row
    row_of_customer: np.ndarray  # position in `rows` of every customer
    customer_order: np.ndarray  # customers ordered by their row
    block_starts: np.ndarray  # first row of each block, then len(rows)
    customer_starts: np.ndarray  # first position in `customer_order` of each block
    tx_rows: pd.DataFrame  # distinct rows of the transaction model's columns
    tx_index: np.ndarray  # row of `tx_rows` of every row of `rows`
    key_rows: pd.DataFrame  # rows on which expected purchases are evaluated
    key_of_tx: np.ndarray  # row of `key_rows` of every row of `tx_rows`

    @property
    def n_blocks(self) -> int:
        return len(self.block_starts) - 1

    def block(self, i: int) -> tuple[int, int, np.ndarray]:
        start, stop = int(self.block_starts[i]), int(self.block_starts[i + 1])
        customers = self.customer_order[self.customer_starts[i] : self.customer_starts[i + 1]]
        return start, stop, customers


def _sort_key(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
        column.dtype
    ):
        return column.to_numpy(dtype=float)
    return pd.factorize(column)[0]


def _distinct(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The distinct rows of ``frame`` by ``columns`` (whole rows, first appearance), and
    the distinct row of every row of ``frame``."""
    first, _, inverse = compress_arrays([frame[c] for c in columns])
    return frame.iloc[first].reset_index(drop=True), inverse


def _layout(
    data: pd.DataFrame,
    columns: Sequence[str],
    tx_columns: Sequence[str],
    key_columns: Sequence[str] | None,
    block_rows: int,
) -> _Layout:
    """Distinct customers sorted by ``columns`` (so that rows sharing the transaction
    model's key are adjacent), cut into blocks, with their transaction-model rows and
    the rows on which expected purchases are evaluated."""
    rows, weights, inverse = compress(data, columns=columns)
    order = np.lexsort([_sort_key(rows[c]) for c in reversed(columns)])
    rows = rows.iloc[order].reset_index(drop=True)
    rank = np.empty(order.size, dtype=np.intp)
    rank[order] = np.arange(order.size)
    row_of_customer = rank[inverse]
    customer_order = np.argsort(row_of_customer, kind="stable")
    block_starts = np.append(np.arange(0, len(rows), block_rows), len(rows))
    customer_starts = np.searchsorted(row_of_customer[customer_order], block_starts)
    tx_rows, tx_index = _distinct(rows[list(tx_columns)], tx_columns)
    if key_columns is None:
        key_rows, key_of_tx = tx_rows, np.arange(len(tx_rows))
    else:
        key_rows, key_of_tx = _distinct(tx_rows, key_columns)
        if "recency" not in key_columns and {"frequency", "recency", "T"} <= set(key_rows):
            # Expected purchases given alive do not depend on recency: evaluate them at
            # recency = T (a purchase just now) for repeat buyers, where P(alive) is
            # bounded away from 0, so that dividing by it is exact.
            key_rows["recency"] = np.where(key_rows["frequency"] > 0, key_rows["T"], 0.0)
    weights = weights[order]
    for values in (weights, row_of_customer):
        values.flags.writeable = False  # handed out by CLVForecast
    return _Layout(
        rows,
        weights,
        row_of_customer,
        customer_order,
        block_starts,
        customer_starts,
        tx_rows,
        tx_index,
        key_rows,
        key_of_tx,
    )


@dataclass
class _Block:
    """Values of one block of distinct rows, point (1-d) or per draw (n_draws, m)."""

    tx_value: np.ndarray  # discounted expected purchases per row of `tx_rows`
    expected_purchases: np.ndarray | None
    probability_alive: np.ndarray  # per row of `tx_rows`: index with `tx_local`
    tx_local: np.ndarray  # block row -> row of `tx_rows`
    spend: np.ndarray
    n_invalid_spend: int
    tx_rows: pd.DataFrame  # the block's distinct transaction-model rows
    tx_purchases: np.ndarray | None  # expected purchases over the horizon on `tx_rows`

    @property
    def clv(self) -> np.ndarray:
        # np.take and an in-place product: indexing the last axis with [..., tx_local]
        # and multiplying into a new array took eight times as long on draws.
        values = np.take(self.tx_value, self.tx_local, axis=-1)
        values *= self.spend
        return values


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
@dataclass
class ChunkScore:
    """What :meth:`CLVScorer.score_chunk` returns for one chunk of customers.

    Attributes
    ----------
    table : DataFrame
        One row per customer of the chunk, indexed like it: ``expected_purchases``,
        ``probability_alive``, ``expected_spend``, ``clv``, ``clv_lower``,
        ``clv_upper`` (and ``clv_pred_lower``, ``clv_pred_upper`` when predictive).
    draw_totals : ndarray (n_draws,)
        The chunk's summed expected CLV under each parameter draw; add them over chunks
        (partitions) to get the portfolio's per-draw totals.
    predictive_totals : ndarray (n_futures,) or None
        The chunk's summed simulated realised value under each of the first
        ``n_futures`` draws (predictive only).
    draws, predictive_draws : ndarray (n_draws or n_futures, n_customers) or None
        Per-draw expected CLV and simulated realised value, columns in the order of
        ``table`` (only with ``return_draws=True``).
    """

    table: pd.DataFrame
    draw_totals: np.ndarray
    predictive_totals: np.ndarray | None = None
    draws: np.ndarray | None = None
    predictive_draws: np.ndarray | None = None


def _realised_grid(spend: np.ndarray, purchases: np.ndarray, last_discount: float) -> LogGrid:
    """Bins for the per-draw histogram of realised values: from a hundredth of the
    smallest point spend per purchase, discounted over the whole horizon, to 256 times
    the largest point CLV (a tier boundary of realised values lies far inside; values
    outside still count, in the end bins), at most 8,000 bins.

    Examples
    --------
    >>> grid = _realised_grid(np.array([10.0, 50.0]), np.array([1.0, 4.0]), 0.9)
    >>> grid.zero_bin, round(float(np.exp(grid.log_low)), 3)
    (True, 0.09)
    """
    ok = np.isfinite(spend) & (spend > 0)
    low = 0.01 * float(spend[ok].min() if ok.any() else 1.0) * last_discount
    top = float(np.max(purchases[ok] * spend[ok], initial=0.0))
    high = max(256.0 * top, 1e3 * low) if np.isfinite(top) else 1e6 * low
    return LogGrid.spanning(low, high, zero_bin=True, max_bins=8_000)


def _expected_grid(spend: np.ndarray, purchases: np.ndarray, last_discount: float) -> LogGrid:
    """Bins for the per-draw histogram of expected CLVs: from a sixteenth of the 0.1%
    quantile of the point values (expected purchases over the horizon times spend) to
    16 times their 99.9% quantile, at most 8,000 bins. Rank-share tier boundaries lie
    inside unless a tier holds less than 0.1% of the customers;
    :func:`clvmodels.segment` checks that its boundaries do before it uses them.

    Examples
    --------
    >>> grid = _expected_grid(np.full(5, 10.0), np.linspace(0.5, 2.0, 5), 1.0)
    >>> grid.covers(5.0, 20.0), grid.covers(0.1, 20.0)
    (True, False)
    """
    value = purchases * spend
    value = value[np.isfinite(value) & (value > 0)]
    low, high = np.quantile(value, [0.001, 0.999]) if value.size else (1e-9, 1.0)
    low = float(low) * last_discount / 16.0
    return LogGrid.spanning(low, max(16.0 * float(high), 1e3 * low), max_bins=8_000)


class CLVScorer:
    """Parameter draws and settings, fixed once, to score any set of customers.

    :func:`customer_lifetime_value` builds one and runs it over all customers; a
    distributed job builds one on the driver and calls :meth:`score_chunk` on every
    partition, so that all partitions share the same parameter draws and their
    per-draw totals add up to portfolio intervals.

    Parameters
    ----------
    transaction_model : TransactionModel
        A fitted transaction model (:class:`clvmodels.models.base.TransactionModel`).
    spend_model : SpendModel
        A fitted spend model (:class:`clvmodels.models.base.SpendModel`).
    time_unit : str
        Unit of the summaries that will be scored ("D", "W", ...); it must agree with
        the units the models recorded at fit time.
    horizon, period, discount_rate, interval, n_draws, predictive, n_futures, random_state
        As in :func:`customer_lifetime_value`.
    chunk_size : int, optional
        Distinct rows per block; by default about two million draw-values per block.
    transaction_draws, spend_draws : DataFrame, optional
        Parameter draws to use (from the models' ``param_draws``, ``n_draws`` each), for
        example a driver's draws on the executors of a distributed job; by default they
        are drawn here from ``random_state``.
    n_jobs : int, optional
        Blocks scored at once, on threads: by default ``CLVMODELS_N_JOBS`` where the
        environment sets it, else every CPU available to the process, up to 8; -1 for
        all of them; 1 for one block at a time. Each block has its own seed and the
        blocks' totals are added in order, so the results do not depend on it; memory
        grows with it (a block's worth per thread).

    Attributes
    ----------
    columns : tuple of str
        The summary columns the models read (their group columns and ``data_columns``)
        and ``monetary_value``: customers equal in all of them are scored once.
    group_cols : tuple of str
        The models' group columns.
    calendar : Calendar
        Horizon, period and discount rate.

    Examples
    --------
    On a Spark driver::

        scorer = CLVScorer(bgf, ggf, time_unit="W", horizon=12, n_draws=1000, random_state=7)

        def score(pid, frame):          # frame: pandas summary of one partition
            result = scorer.score_chunk(frame.set_index("customer_id"),
                                        random_state=(7, pid))
            return result.table, result.draw_totals
    """

    def __init__(
        self,
        transaction_model: TransactionModel,
        spend_model: SpendModel,
        *,
        time_unit: str | None,
        horizon: int = 12,
        period: str = "M",
        discount_rate: float = 0.01,
        interval: float = 0.9,
        n_draws: int = 1000,
        predictive: bool = False,
        n_futures: int | None = None,
        random_state: Any = None,
        chunk_size: int | None = None,
        transaction_draws: pd.DataFrame | None = None,
        spend_draws: pd.DataFrame | None = None,
        n_jobs: int | None = None,
    ) -> None:
        _check_models(transaction_model, spend_model)
        self.calendar = Calendar(horizon=horizon, period=period, discount_rate=discount_rate)
        interval_probabilities(interval)
        self.interval = float(interval)
        self.n_draws = n_draws = _check_n_draws(n_draws)
        self.transaction_model = transaction_model
        self.spend_model = spend_model
        self.time_unit = resolve_time_unit(
            None, models=(transaction_model, spend_model), time_unit=time_unit,
            context="CLVScorer",
        )  # fmt: skip
        self.horizon = self.calendar.horizon
        self.period = self.calendar.period
        self.discount_rate = self.calendar.discount_rate
        self.period_length = self.calendar.period_length(self.time_unit)
        self.period_ends = self.calendar.period_ends(self.time_unit)
        self.discount = self.calendar.discount_factors()
        self._purchase_weights = _purchase_weights(self.discount)
        if not isinstance(predictive, bool | np.bool_):
            raise ValueError(f"predictive must be True or False, got {predictive!r}")
        self.predictive = bool(predictive)
        self.n_futures = _check_n_futures(n_futures, n_draws, self.predictive)
        self.seed = _entropy(random_state)
        if chunk_size is not None:
            chunk_size = whole_number(chunk_size, "chunk_size", 1)
        self.chunk_size = chunk_size or max(64, _BLOCK_ELEMENTS // n_draws)
        self.n_jobs = resolve_n_jobs(n_jobs)
        tx_group = _group_col(transaction_model)
        self.group_cols = tuple(dict.fromkeys(g for g in (tx_group, _group_col(spend_model)) if g))
        self._tx_columns = _with_group(transaction_model.data_columns, tx_group)
        # Optional speed-up of the contract: the simulator reuses the P(alive) draws
        # that the expected CLV has computed already.
        self._simulation_takes_alive = takes_keyword(
            transaction_model.simulate_purchases, "probability_alive"
        )
        alive = transaction_model.alive_future_columns
        self._key_columns = None if alive is None else _with_group(alive, tx_group)
        if self._key_columns is not None:
            unknown = [c for c in self._key_columns if c not in self._tx_columns]
            if unknown:
                raise ValueError(
                    f"{type(transaction_model).__name__}.alive_future_columns names {unknown}, "
                    f"which are not among its data_columns {list(self._tx_columns)}"
                )
        # Sort order of the distinct rows: rows sharing the costly key are adjacent.
        self.columns = tuple(
            dict.fromkeys(
                [
                    *self.group_cols,
                    *(alive or ()),
                    *transaction_model.data_columns,
                    *spend_model.data_columns,
                    "monetary_value",
                ]
            )
        )
        # The draws are taken once, here, so that every chunk and partition shares them.
        tx_seed, spend_seed = np.random.SeedSequence(self.seed).spawn(2)
        self.transaction_draws = (
            transaction_model.param_draws(n_draws, random_state=np.random.default_rng(tx_seed))
            if transaction_draws is None
            else transaction_draws
        )
        self.spend_draws = (
            spend_model.param_draws(n_draws, random_state=np.random.default_rng(spend_seed))
            if spend_draws is None
            else spend_draws
        )
        # Futures are simulated under the first n_futures draws: the draws are
        # independent, so these are a random sample of them.
        self._future_draws = (
            leading_draws(self.transaction_draws, self.n_futures),
            leading_draws(self.spend_draws, self.n_futures),
        )

    # -- settings -------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """The settings of the forecast, JSON-ready."""
        return {
            "horizon": self.horizon,
            "period": self.period,
            "period_length": self.period_length,
            "time_unit": self.time_unit,
            "discount_rate": self.discount_rate,
            "interval": self.interval,
            "n_draws": self.n_draws,
            "predictive": self.predictive,
            "n_futures": self.n_futures if self.predictive else None,
            "random_state": self.seed,
            "transaction_model": type(self.transaction_model).__name__,
            "spend_model": type(self.spend_model).__name__,
        }

    # -- the computation ------------------------------------------------------------
    def _purchases(self, key_rows: pd.DataFrame, *, draws: bool) -> tuple[np.ndarray, np.ndarray]:
        """Discounted and cumulative expected purchases on key rows: given alive where
        the model factorises, else plain."""
        tx = self.transaction_model
        tx_draws = self.transaction_draws if draws else None
        alive = None
        if self._key_columns is not None:
            while_alive = getattr(tx, "expected_purchases_while_alive", None)
            if while_alive is not None:
                sums = _array(while_alive(
                    self.period_ends, self._purchase_weights, data=key_rows, draws=tx_draws
                ))
                return sums[0], sums[1]
            alive = _array(tx.probability_alive(data=key_rows, draws=tx_draws))

        def cumulative_at(t: float) -> np.ndarray:
            expected = _array(tx.expected_purchases(t=t, data=key_rows, draws=tx_draws))
            return expected if alive is None else expected / alive

        return _discounted_purchases(cumulative_at, self.period_ends, self.discount)

    def _purchase_cache(self, layout: _Layout, advance: Callable[[], None]) -> np.ndarray | None:
        """Per-draw discounted purchases of every key row, kept when small so that later
        passes (draws, segments) skip the costly part."""
        n_keys = len(layout.key_rows)
        if n_keys * self.n_draws > _CACHE_VALUES:
            return None
        out = np.empty((self.n_draws, n_keys))
        step = self._cache_step(n_keys)

        def fill(start: int) -> None:
            part = layout.key_rows.iloc[start : start + step]
            out[:, start : start + len(part)] = self._purchases(part, draws=True)[0]

        steps = (partial(fill, start) for start in range(0, n_keys, step))
        for _ in in_order(steps, self.n_jobs):
            advance()
        return out

    def _cache_step(self, n_keys: int) -> int:
        """Key rows per step of the cache: a block's worth, or fewer so that every
        thread gets a share (a deterministic computation: the split changes nothing)."""
        return max(1, min(self.chunk_size, -(-n_keys // self.n_jobs)))

    def _cache_steps(self, n_keys: int) -> int:
        if n_keys * self.n_draws > _CACHE_VALUES:
            return 0
        return -(-n_keys // self._cache_step(n_keys))

    def _block(
        self,
        layout: _Layout,
        start: int,
        stop: int,
        *,
        draws: bool,
        known: tuple[np.ndarray, np.ndarray | None] | None = None,
    ) -> _Block:
        """CLV of the distinct rows ``start:stop``; ``known`` holds the discounted (and
        cumulative) purchases of every key row when they are already computed."""
        tx, sp = self.transaction_model, self.spend_model
        tx_pos, tx_local = np.unique(layout.tx_index[start:stop], return_inverse=True)
        keys = layout.key_of_tx[tx_pos]
        if known is None:
            key_pos, key_local = np.unique(keys, return_inverse=True)
            disc, cumulative = self._purchases(layout.key_rows.iloc[key_pos], draws=draws)
            disc, cumulative = (np.take(v, key_local, axis=-1) for v in (disc, cumulative))
        else:
            # np.take: indexing the last axis with [..., keys] is twice as slow on draws.
            disc = np.take(known[0], keys, axis=-1)
            cumulative = None if known[1] is None else np.take(known[1], keys, axis=-1)
        tx_rows = layout.tx_rows.iloc[tx_pos]
        tx_draws = self.transaction_draws if draws else None
        p_alive = _array(tx.probability_alive(data=tx_rows, draws=tx_draws))
        rows = layout.rows.iloc[start:stop]
        spend = _array(sp.expected_spend(data=rows, draws=self.spend_draws if draws else None))
        # A draw whose spend distribution has no finite mean gives an infinite CLV. The
        # sum is finite exactly when every value is, unless it overflows: one pass where
        # the mask is two.
        n_invalid = 0
        if not np.isfinite(spend.sum()):
            finite = np.isfinite(spend)
            n_invalid = int(finite.size - np.count_nonzero(finite))
            if n_invalid:
                spend = np.where(finite, spend, np.inf)
        if self._key_columns is not None:
            disc = p_alive * disc
            cumulative = None if cumulative is None else p_alive * cumulative
        return _Block(
            tx_value=disc,
            expected_purchases=None if cumulative is None else cumulative[..., tx_local],
            probability_alive=p_alive,
            tx_local=tx_local,
            spend=spend,
            n_invalid_spend=n_invalid,
            tx_rows=tx_rows,
            tx_purchases=cumulative,
        )

    def _check_point(self, point: _Block) -> None:
        """Guard the factorisation: it must reproduce the model's own expected purchases."""
        if self._key_columns is not None:
            tx = self.transaction_model
            direct = _array(tx.expected_purchases(t=float(self.period_ends[-1]),
                                                  data=point.tx_rows))
            if not np.allclose(point.tx_purchases, direct, rtol=1e-8, atol=1e-12):
                raise RuntimeError(
                    f"{type(tx).__name__}: expected purchases given alive depend on more than "
                    f"its alive_future_columns {list(self._key_columns)}, so the CLV "
                    "factorisation does not reproduce its own expected_purchases; the model "
                    "should declare alive_future_columns = None"
                )
        if not np.all(np.isfinite(point.spend)):
            raise ValueError(
                f"{type(self.spend_model).__name__}: the point estimate gives no finite "
                "expected spend (for Gamma-Gamma, q <= 1 means the fitted spend distribution "
                "has no finite mean)"
            )

    def _simulate(
        self,
        rows: pd.DataFrame,
        local: np.ndarray,
        rng: np.random.Generator,
        alive: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Simulated realised values (n_futures, len(local)) of customers at ``rows``
        positions ``local``, one future per parameter draw of the first ``n_futures``.
        ``alive``, when known, holds
        P(alive) per draw of the block's distinct transaction rows and the position of
        each of ``rows`` among them; a model that takes them gets them."""
        purchases, values = self._simulated_purchases(rows, local, rng, alive)
        return discounted_value(purchases, values, self.period_length, self.discount)

    def _simulated_purchases(
        self,
        rows: pd.DataFrame,
        local: np.ndarray,
        rng: np.random.Generator,
        alive: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[SimulatedPurchases, np.ndarray]:
        """The purchases behind :meth:`_simulate`, and their values."""
        frame = rows.iloc[local].reset_index(drop=True)
        known = {}
        if alive is not None and self._simulation_takes_alive:
            values, position = alive
            known["probability_alive"] = values[: self.n_futures, position[local]]
        transaction_draws, spend_draws = self._future_draws
        purchases = self.transaction_model.simulate_purchases(
            t=float(self.period_ends[-1]),
            data=frame,
            draws=transaction_draws,
            random_state=rng,
            **known,
        )
        values = self.spend_model.simulate_spend(
            purchases, frame, draws=spend_draws, random_state=rng
        )
        return purchases, values

    def _prepare(self, data: Any, context: str) -> pd.DataFrame:
        frame = validate_summary(data, require_monetary=True, context=context)
        return self._check_frame(frame, context)

    def _check_frame(self, frame: pd.DataFrame, context: str) -> pd.DataFrame:
        """The checks a validated summary still needs: its unit and the models' columns."""
        recorded = frame.attrs.get("time_unit")
        if recorded and recorded != self.time_unit:
            raise ValueError(
                f"{context}: the summary is in {recorded!r} but the forecast was set up for "
                f"{self.time_unit!r}"
            )
        missing = [g for g in self.group_cols if g not in frame.columns]
        if missing:
            raise DataValidationError(
                f"{context}: missing group column(s) {missing} that the models were fitted with"
            )
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataValidationError(
                f"{context}: missing column(s) {missing} that the models read (their "
                "data_columns)"
            )
        return frame

    def _layout(self, frame: pd.DataFrame) -> _Layout:
        return _layout(frame, self.columns, self._tx_columns, self._key_columns, self.chunk_size)

    def _run(
        self,
        frame: pd.DataFrame,
        seed_words: list[int],
        *,
        keep_draws: bool = False,
        progressbar: bool | None = None,
        histogram: bool = False,
        tier_histogram: bool = False,
    ) -> tuple[pd.DataFrame, dict[str, Any], tuple[_Layout, np.ndarray | None, Any]]:
        layout = self._layout(frame)
        n_rows, n_customers = len(layout.rows), len(frame)
        low_p, high_p = interval_probabilities(self.interval)
        per_row = {
            name: np.empty(n_rows)
            for name in (
                "expected_purchases",
                "probability_alive",
                "expected_spend",
                "clv",
                "clv_lower",
                "clv_upper",
            )
        }
        # Identical customers have one predictive distribution: their interval is the
        # mean of their individual Monte Carlo estimates, which is less noisy and the
        # same for all of them.
        pred_lower = np.zeros(n_rows) if self.predictive else None
        pred_upper = np.zeros(n_rows) if self.predictive else None
        totals = np.zeros(self.n_draws)
        pred_totals = np.zeros(self.n_futures) if self.predictive else None
        draws = np.empty((self.n_draws, n_customers)) if keep_draws else None
        pred_draws = (
            np.empty((self.n_futures, n_customers)) if keep_draws and self.predictive else None
        )
        realised_grid = realised_hist = expected_grid = expected_hist = None
        realised_wanted = self.predictive and histogram
        if realised_wanted or tier_histogram:
            spend, purchases = self._point_values(layout)
            last_discount = float(self.discount[-1])
            if realised_wanted:
                realised_grid = _realised_grid(spend, purchases, last_discount)
                realised_hist = np.zeros((self.n_futures, realised_grid.n_bins))
            if tier_histogram:
                expected_grid = _expected_grid(spend, purchases, last_discount)
                expected_hist = np.zeros((self.n_draws, expected_grid.n_bins))
        n_keys = len(layout.key_rows)
        cache_steps = self._cache_steps(n_keys)
        histogram_lock = threading.Lock()

        def score(i: int) -> tuple[np.ndarray, np.ndarray | None, int]:
            """Block ``i``: its rows' values written in place (each block its own rows and
            customers), its per-draw totals returned to be added in block order. Reads
            ``point_known`` and ``cache``, which are set below before any block runs."""
            start, stop, customers = layout.block(i)
            point = self._block(layout, start, stop, draws=False, known=point_known)
            self._check_point(point)
            drawn = self._block(
                layout, start, stop, draws=True, known=None if cache is None else (cache, None)
            )
            sl = slice(start, stop)
            per_row["expected_purchases"][sl] = point.expected_purchases
            per_row["probability_alive"][sl] = point.probability_alive[point.tx_local]
            per_row["expected_spend"][sl] = point.spend
            per_row["clv"][sl] = point.clv
            (per_row["clv_lower"][sl], per_row["clv_upper"][sl]), block_totals, clv, bins = (
                _summarised_draws(
                    drawn, layout.weights[sl], [low_p, high_p], draws is not None,
                    expected_grid,
                )
            )
            if expected_grid is not None:
                with histogram_lock:  # counts of whole customers: exact in any order
                    expected_grid.add_bins(expected_hist, bins, layout.weights[sl])
            if draws is not None:
                draws[:, customers] = clv[:, layout.row_of_customer[customers] - start]
            if not self.predictive:
                return block_totals, None, drawn.n_invalid_spend
            block_pred_totals = np.zeros(self.n_futures)
            rows = layout.rows.iloc[start:stop]
            alive = (drawn.probability_alive, drawn.tx_local)
            expected = point.expected_purchases[layout.row_of_customer[customers] - start]
            _check_futures_load(expected, self.n_futures, frame.index[customers])
            for j, piece in enumerate(self._pieces(customers, expected)):
                local = layout.row_of_customer[piece] - start
                rng = np.random.default_rng([*seed_words, 1, i, j])
                futures = _summarised_futures(
                    *self._simulated_purchases(rows, local, rng, alive),
                    self.period_length, self.discount, self.interval,
                )
                low, high = futures.interval
                pred_lower[sl] += np.bincount(local, low, minlength=stop - start)
                pred_upper[sl] += np.bincount(local, high, minlength=stop - start)
                block_pred_totals += futures.totals
                if realised_grid is not None:
                    with histogram_lock:
                        realised_grid.add_pairs(
                            realised_hist, futures.draw, futures.value, piece.size
                        )
                if pred_draws is not None:
                    pred_draws[:, piece] = futures.dense()
            return block_totals, block_pred_totals, drawn.n_invalid_spend

        n_invalid = 0
        with _progress(layout.n_blocks + cache_steps, progressbar, "CLV") as advance:
            point_known = self._purchases(layout.key_rows, draws=False)
            cache = self._purchase_cache(layout, advance)
            blocks = (partial(score, i) for i in range(layout.n_blocks))
            for block_totals, block_pred_totals, block_invalid in in_order(
                blocks, self.n_jobs, window=_BLOCKS_AHEAD
            ):
                totals += block_totals
                if block_pred_totals is not None:
                    pred_totals += block_pred_totals
                n_invalid += block_invalid
                advance()
        if n_invalid:
            warnings.warn(
                f"{n_invalid} combinations of a distinct customer and a parameter draw have no "
                "finite expected spend (the spend model's draw has no finite mean, e.g. "
                "Gamma-Gamma with p * frequency + q <= 1); their CLV is infinite, which makes "
                "upper bounds infinite where such draws reach the upper tail",
                RuntimeWarning,
                stacklevel=3,
            )
        table = pd.DataFrame(
            {k: v[layout.row_of_customer] for k, v in per_row.items()}, index=frame.index
        )
        if self.predictive:
            table["clv_pred_lower"] = (pred_lower / layout.weights)[layout.row_of_customer]
            table["clv_pred_upper"] = (pred_upper / layout.weights)[layout.row_of_customer]
        extras = {
            "draw_totals": totals,
            "predictive_totals": pred_totals,
            "draws": draws,
            "predictive_draws": pred_draws,
        }
        histograms = {
            "realised": None if realised_grid is None else (realised_grid, realised_hist),
            "expected": None if expected_grid is None else (expected_grid, expected_hist),
        }
        return table, extras, (layout, cache, histograms)

    def _point_values(self, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
        """Point spend per purchase and undiscounted expected purchases over the horizon
        of every distinct row: what the histograms' bins are placed by."""
        spend = _array(self.spend_model.expected_spend(data=layout.rows))
        purchases = _array(
            self.transaction_model.expected_purchases(
                t=float(self.period_ends[-1]), data=layout.rows
            )
        )
        return spend, purchases

    def _pieces(
        self, customers: np.ndarray, expected_purchases: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """A block's customers in the pieces whose futures are simulated together: at
        most :data:`_PIECE_ELEMENTS` futures and, given each customer's
        ``expected_purchases`` over the horizon, about :data:`_PIECE_PURCHASES` purchases
        expected of them."""
        size = min(self.chunk_size, max(1, _PIECE_ELEMENTS // self.n_futures))
        if expected_purchases is None:
            return [customers[k : k + size] for k in range(0, customers.size, size)]
        load = np.nan_to_num(np.asarray(expected_purchases, dtype=float)) * self.n_futures
        return [customers[a:b] for a, b in piece_bounds(load, size, _PIECE_PURCHASES)]

    # -- public ----------------------------------------------------------------------
    def score_chunk(
        self,
        data: Any,
        *,
        random_state: Any = None,
        return_draws: bool = False,
        progressbar: bool | None = False,
    ) -> ChunkScore:
        """Score one chunk (e.g. a Spark partition) of customers with the shared draws.

        Parameters
        ----------
        data : DataFrame
            Summary rows of the chunk, indexed by customer id, with ``frequency``,
            ``recency``, ``T``, ``monetary_value`` (and the models' group and data
            columns), in this scorer's ``time_unit``.
        random_state : int or tuple of ints, optional
            Seed of the predictive simulation for this chunk. Chunks scored separately
            must get different seeds (e.g. ``(seed, partition_id)``) or their simulated
            futures will be identical; by default the scorer's own seed is used.
        return_draws : bool
            Also return the per-draw matrices (n_draws x customers in the chunk).
        progressbar : bool, optional
            Show a progress bar over the chunk's blocks.

        Returns
        -------
        ChunkScore

        Examples
        --------
        >>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
        ...                       observation_end="1997-09-30")
        >>> scorer = CLVScorer(BetaGeo().fit(summary), GammaGamma().fit(summary),
        ...                    time_unit="W", n_draws=200, random_state=1)
        >>> part = scorer.score_chunk(summary.iloc[:100], random_state=(1, 0))
        >>> part.draw_totals.shape
        (200,)
        """
        if len(data) == 0:  # an empty partition scores to nothing
            return self._empty_score(data, return_draws)
        frame = self._prepare(data, "score_chunk")
        seed = [self.seed] if random_state is None else _chunk_seed(random_state)
        table, extras, _ = self._run(frame, seed, keep_draws=return_draws, progressbar=progressbar)
        return ChunkScore(table=table, **extras)

    def _empty_score(self, data: Any, return_draws: bool) -> ChunkScore:
        columns = ["expected_purchases", "probability_alive", "expected_spend", "clv"]
        columns += ["clv_lower", "clv_upper"]
        if self.predictive:
            columns += ["clv_pred_lower", "clv_pred_upper"]
        index = data.index if isinstance(data, pd.DataFrame) else pd.RangeIndex(0)
        return ChunkScore(
            table=pd.DataFrame({c: np.empty(0) for c in columns}, index=index),
            draw_totals=np.zeros(self.n_draws),
            predictive_totals=np.zeros(self.n_futures) if self.predictive else None,
            draws=np.empty((self.n_draws, 0)) if return_draws else None,
            predictive_draws=(
                np.empty((self.n_futures, 0)) if return_draws and self.predictive else None
            ),
        )

    def forecast(self, data: Any, *, progressbar: bool | None = None) -> CLVForecast:
        """Score every customer of ``data`` and keep what later passes need.

        This is what :func:`customer_lifetime_value` runs; calling it on several
        summaries scores them all with the same parameter draws.

        Examples
        --------
        >>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
        ...                       observation_end="1997-09-30")
        >>> scorer = CLVScorer(BetaGeo().fit(summary), GammaGamma().fit(summary),
        ...                    time_unit="W", n_draws=100, random_state=2)
        >>> scorer.forecast(summary).settings["n_customers"]
        2357
        """
        return self._forecast(self._prepare(data, "customer_lifetime_value"), progressbar)

    def _forecast(
        self, frame: pd.DataFrame, progressbar: bool | None, tier_histogram: bool = False
    ) -> CLVForecast:
        table, extras, (layout, cache, histograms) = self._run(
            frame, [self.seed], progressbar=progressbar, histogram=True,
            tier_histogram=tier_histogram,
        )  # fmt: skip
        return CLVForecast(
            table=table,
            draw_totals=extras["draw_totals"],
            predictive_totals=extras["predictive_totals"],
            scorer=self,
            layout=layout,
            index=frame.index,
            purchase_cache=cache,
            realised_histogram=histograms["realised"],
            expected_histogram=histograms["expected"],
        )


class CLVForecast:
    """Discounted CLV per customer, with intervals, from :func:`customer_lifetime_value`.

    Attributes
    ----------
    table : DataFrame
        One row per customer (indexed like the input): ``expected_purchases`` (over the
        whole horizon, undiscounted), ``probability_alive``, ``expected_spend``
        (per purchase), ``clv`` (point estimate), ``clv_lower``/``clv_upper``
        (parameter interval), and ``clv_pred_lower``/``clv_pred_upper`` (predictive
        interval) when ``predictive=True``.
    settings : dict
        Horizon, period and its length in the summary's unit, discount rate, interval,
        number of draws, seed, model names and customer counts.
    draw_totals : ndarray (n_draws,)
        Portfolio expected CLV under each parameter draw.
    predictive_totals : ndarray (n_futures,) or None
        Portfolio realised value, one simulated future under each of the first
        ``n_futures`` draws (predictive only).
    predictive_draw_totals : ndarray (n_draws,) or None
        Portfolio realised value under every draw, behind the predictive interval of
        :meth:`total`: ``predictive_totals``, and when there are fewer futures than
        draws, their purchase noise carried to the later draws
        (:func:`predictive_draw_totals`).
    scorer : CLVScorer
        The draws and settings, to score further customers consistently.
    realised_histogram : (LogGrid, ndarray (n_futures, bins)) or None
        Per-draw histogram of the customers' simulated realised values (predictive
        only), filled while they were simulated; :func:`clvmodels.segment` locates the
        realised tier boundaries with it.
    expected_histogram : (LogGrid, ndarray (n_draws, bins)) or None
        Per-draw histogram of the distinct rows' expected CLVs, kept with
        ``tier_histogram=True``: :func:`clvmodels.segment` then places the tier
        boundaries of every draw in one pass over the draws instead of two.

    Notes
    -----
    Customers identical in every column the models read share one *distinct row* and
    so all their values. :attr:`row_weights`, :attr:`row_of_customer` and
    :meth:`iter_row_draws` give the per-draw values at that level, which is all that
    tier probabilities (:func:`clvmodels.segment`) need, at a fraction of the cost of
    one column per customer.
    """

    def __init__(
        self,
        *,
        table: pd.DataFrame,
        draw_totals: np.ndarray,
        predictive_totals: np.ndarray | None,
        scorer: CLVScorer,
        layout: _Layout,
        index: pd.Index,
        purchase_cache: np.ndarray | None = None,
        realised_histogram: tuple[LogGrid, np.ndarray] | None = None,
        expected_histogram: tuple[LogGrid, np.ndarray] | None = None,
    ) -> None:
        self.table = table
        self.realised_histogram = realised_histogram
        self.expected_histogram = expected_histogram
        self._purchase_cache = purchase_cache
        self.draw_totals = draw_totals
        self.predictive_totals = predictive_totals
        self.predictive_draw_totals = predictive_draw_totals(draw_totals, predictive_totals)
        self.scorer = scorer
        self._layout = layout
        self._index = index
        self.settings = {
            **scorer.settings,
            "n_customers": len(index),
            "n_distinct_customers": len(layout.rows),
        }

    @property
    def interval(self) -> float:
        return self.scorer.interval

    @property
    def n_draws(self) -> int:
        return self.scorer.n_draws

    @property
    def n_futures(self) -> int:
        """Simulated futures per customer (under the first ``n_futures`` draws); equal to
        ``n_draws`` unless asked for fewer."""
        return self.scorer.n_futures

    @property
    def row_weights(self) -> np.ndarray:
        """Number of customers behind each distinct row (read-only)."""
        return self._layout.weights

    @property
    def row_of_customer(self) -> np.ndarray:
        """The distinct row of each customer, in the order of ``table`` (read-only)."""
        return self._layout.row_of_customer

    @property
    def n_row_blocks(self) -> int:
        """Number of chunks :meth:`iter_row_draws` yields (for progress bars)."""
        return self._layout.n_blocks

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"<CLVForecast {s['n_customers']} customers, {s['horizon']} x {s['period']!r} "
            f"at {s['discount_rate']:g}/period, {s['interval']:.0%} intervals from "
            f"{s['n_draws']} draws; total {self.table['clv'].sum():,.2f}>"
        )

    def total(self, interval: float | None = None) -> pd.Series:
        """Portfolio CLV: the point total and its interval from the per-draw totals.

        Parameters
        ----------
        interval : float, optional
            Interval level; defaults to the forecast's.

        Returns
        -------
        Series
            ``customers``, ``clv`` (sum of point CLVs), ``clv_mean`` (mean of the
            per-draw totals), ``clv_lower``, ``clv_upper`` and, when predictive,
            ``clv_pred_lower`` and ``clv_pred_upper`` (where the realised total falls,
            from :attr:`predictive_draw_totals`).

        Examples
        --------
        >>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
        ...                       observation_end="1997-09-30")
        >>> fc = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
        ...                              summary, n_draws=200, random_state=1)
        >>> t = fc.total()
        >>> bool(t["clv_lower"] < t["clv"] < t["clv_upper"])
        True
        """
        low_p, high_p = interval_probabilities(self.interval if interval is None else interval)
        lower, upper = np.quantile(self.draw_totals, [low_p, high_p])
        out = {
            "customers": float(len(self.table)),
            "clv": float(self.table["clv"].sum()),
            "clv_mean": float(np.mean(self.draw_totals)),
            "clv_lower": float(lower),
            "clv_upper": float(upper),
        }
        if self.predictive_draw_totals is not None:
            p_lower, p_upper = prediction_bounds(self.predictive_draw_totals, [low_p, high_p])
            out["clv_pred_lower"] = float(p_lower)
            out["clv_pred_upper"] = float(p_upper)
        return pd.Series(out, name="total")

    def iter_draws(self, kind: str = "expected") -> Iterator[tuple[pd.Index, np.ndarray]]:
        """Per-draw values, chunk by chunk: ``(customer_ids, values)`` pairs.

        ``values`` has shape ``(n_draws, len(customer_ids))`` (``n_futures`` rows for
        the predictive values); chunks hold about two
        million values, so memory stays bounded however many customers there are. The
        values are recomputed from the stored draws (and seeds), so they are exactly
        those behind ``table`` and ``total()``; the forecast's ``n_jobs`` threads compute
        the next few chunks while the caller works on one.

        Parameters
        ----------
        kind : {"expected", "predictive"}
            Expected CLV under each parameter draw, or the simulated realised value
            (one future under each of the first ``n_futures`` draws; needs
            ``predictive=True``).

        Examples
        --------
        >>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
        ...                       observation_end="1997-09-30")
        >>> fc = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
        ...                              summary, n_draws=100, random_state=1)
        >>> sum(values.shape[1] for _, values in fc.iter_draws())
        2357
        """
        if kind not in ("expected", "predictive"):
            raise ValueError(f"kind must be 'expected' or 'predictive', got {kind!r}")
        if kind == "predictive" and not self.scorer.predictive:
            raise ValueError("predictive draws need a forecast made with predictive=True")
        scorer, layout = self.scorer, self._layout
        blocks = [layout.block(i) for i in range(layout.n_blocks)]
        if kind == "expected":
            drawn = (partial(self._drawn_block, start, stop) for start, stop, _ in blocks)
            for (start, _, customers), block in zip(
                blocks, in_order(drawn, scorer.n_jobs), strict=True
            ):
                for piece in scorer._pieces(customers):
                    yield self._index[piece], block.clv[:, layout.row_of_customer[piece] - start]
            return

        # One task per piece, so that memory holds a few pieces, not whole blocks.
        def simulate(i: int, j: int, piece: np.ndarray) -> np.ndarray:
            start, stop, _ = blocks[i]
            rng = np.random.default_rng([scorer.seed, 1, i, j])
            local = layout.row_of_customer[piece] - start
            return scorer._simulate(layout.rows.iloc[start:stop], local, rng)

        expected = self.table["expected_purchases"].to_numpy()  # as _run cut its pieces
        pieces = [
            (i, j, piece)
            for i, (_, _, customers) in enumerate(blocks)
            for j, piece in enumerate(scorer._pieces(customers, expected[customers]))
        ]
        tasks = (partial(simulate, *task) for task in pieces)
        for (_, _, piece), values in zip(pieces, in_order(tasks, scorer.n_jobs), strict=True):
            yield self._index[piece], values

    def iter_row_draws(self) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """Per-draw expected CLV of the distinct rows, block by block.

        Yields
        ------
        rows : slice
            The block's distinct rows (positions in :attr:`row_weights`).
        weights : ndarray (m,)
            Customers behind each of these rows.
        values : ndarray (n_draws, m)
            Expected CLV of each row under each parameter draw.

        Examples
        --------
        >>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
        ...                       observation_end="1997-09-30")
        >>> fc = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
        ...                              summary, n_draws=100, random_state=1)
        >>> totals = sum(values @ weights for _, weights, values in fc.iter_row_draws())
        >>> bool(np.allclose(totals, fc.draw_totals))
        True
        """
        layout = self._layout

        def block(i: int) -> tuple[slice, np.ndarray, np.ndarray]:
            start, stop, _ = layout.block(i)
            return slice(start, stop), layout.weights[start:stop], self._drawn_block(
                start, stop
            ).clv

        blocks = (partial(block, i) for i in range(layout.n_blocks))
        yield from in_order(blocks, self.scorer.n_jobs)

    def _drawn_block(self, start: int, stop: int) -> _Block:
        cache = self._purchase_cache
        known = None if cache is None else (cache, None)
        return self.scorer._block(self._layout, start, stop, draws=True, known=known)


def customer_lifetime_value(
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    data: Any,
    *,
    horizon: int = 12,
    period: str = "M",
    discount_rate: float = 0.01,
    interval: float = 0.9,
    n_draws: int = 1000,
    predictive: bool = False,
    n_futures: int | None = None,
    random_state: Any = None,
    time_unit: str | None = None,
    progressbar: bool | None = None,
    chunk_size: int | None = None,
    tier_histogram: bool = False,
    n_jobs: int | None = None,
) -> CLVForecast:
    """Discounted customer lifetime value with parameter (and predictive) intervals.

    ``CLV = sum_{k=1..horizon} E[purchases in period k] * E[spend] / (1 + discount_rate)^k``
    per customer, conditional on the customer's history.

    Parameters
    ----------
    transaction_model : TransactionModel
        Fitted purchase model (``BetaGeo``, ``HierarchicalBetaGeo``, or any model that
        implements :class:`clvmodels.models.base.TransactionModel`).
    spend_model : SpendModel
        Fitted spend model (``GammaGamma``, ``HierarchicalGammaGamma``, or any
        :class:`clvmodels.models.base.SpendModel`).
    data : DataFrame
        Summary frame (one row per customer, indexed by customer id) with
        ``frequency``, ``recency``, ``T``, ``monetary_value`` and whatever else the
        models read (their ``data_columns`` and group columns).
    horizon : int, default 12
        Number of discount periods.
    period : str, default "M"
        Length of a discount period: "D", "W", "M" (365.25/12 days), "Q", "Y" or "h",
        optionally with a multiple ("30D" is lifetimes' 30-day month, "4W").
    discount_rate : float, default 0.01
        Discount rate per period (0.01 is 1% a month with the default period).
    interval : float, default 0.9
        Level of the intervals.
    n_draws : int, default 1000
        Parameter draws behind the intervals.
    predictive : bool, default False
        Also simulate each customer's realised value and report where it will fall.
    n_futures : int, optional
        Simulated futures per customer behind the predictive intervals, one under each
        of the first ``n_futures`` parameter draws (between 2 and ``n_draws``; only with
        ``predictive=True``). By default one under every draw. Simulation is most of the
        cost of a predictive forecast, so 100 futures make it several times faster; each
        customer's interval then rests on 100 values (it still holds its level on
        average, but is noisier customer by customer), and so are the realised tier
        probabilities of :func:`clvmodels.segment`. The expected CLV and its parameter
        interval keep all ``n_draws`` draws, and so does the predictive total, whose
        later draws take the purchase noise of the futures
        (:func:`predictive_draw_totals`); its bounds are still noisier than from one
        future per draw.
    random_state : int, numpy Generator or SeedSequence, optional
        Seed; the seed used is recorded in ``settings["random_state"]``.
    time_unit : str, optional
        Unit of ``recency`` and ``T`` when the summary records none
        (``attrs["time_unit"]``); it may not contradict a recorded one.
    progressbar : bool, optional
        Show a progress bar; by default shown on a terminal when there is more than
        one block of customers.
    chunk_size : int, optional
        Distinct customers per block (memory per block is about
        ``80 * n_draws * chunk_size`` bytes).
    tier_histogram : bool, default False
        Also keep a per-draw histogram of the expected CLVs (``n_draws`` x at most
        8,000 counts: 64 MB at 1,000 draws), so that :func:`clvmodels.segment` of this
        forecast passes over the draws once instead of twice. Worth it when tiers
        follow (the pipeline asks for it then): at 100,000 to 1,000,000 customers it
        adds about 15% to the CLV and takes about 40% off the tiers.
    n_jobs : int, optional
        Blocks of customers scored at once, on threads: by default ``CLVMODELS_N_JOBS``
        where the environment sets it, else every CPU available to the process, up to
        8; -1 for all of them; 1 for one block at a time. The results are the same
        whatever its value; the memory of a block is held once per thread. The
        forecast's later passes (:meth:`CLVForecast.iter_draws`,
        :meth:`CLVForecast.iter_row_draws`, and so :func:`clvmodels.segment`) use the
        same number.

    Returns
    -------
    CLVForecast
        ``.table``, ``.total()``, ``.iter_draws()``, ``.iter_row_draws()``, ``.settings``.

    Raises
    ------
    ValueError
        For an interval outside (0, 1), a negative discount rate, a horizon below one
        period, an unknown period, a summary without time unit (and no
        ``time_unit=``), or models fitted on different time units.
    TypeError, NotFittedError
        For models that do not implement the contract, or are not fitted.

    Notes
    -----
    Identical customers (equal in every column the models read) are computed once;
    for BG/NBD the expensive part runs once per distinct ``(frequency, T)``. With
    1,000 draws a million customers need well under 1 GB.

    Examples
    --------
    >>> from clvmodels import BetaGeo, GammaGamma, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> fc = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
    ...                              summary, horizon=12, period="M", n_draws=200,
    ...                              random_state=0)
    >>> list(fc.table.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['expected_purchases', 'probability_alive', 'expected_spend', 'clv',
     'clv_lower', 'clv_upper']
    >>> row = fc.table.loc[1]
    >>> bool(row["clv_lower"] <= row["clv"] <= row["clv_upper"])
    True
    """
    context = "customer_lifetime_value"
    for model in (transaction_model, spend_model):  # before the data: it is not a summary
        check_summary_model(model, context)
    frame = validate_summary(data, require_monetary=True, context=context)
    unit = resolve_time_unit(
        frame.attrs.get("time_unit"),
        models=(transaction_model, spend_model),
        time_unit=time_unit,
        context=context,
    )
    scorer = CLVScorer(
        transaction_model,
        spend_model,
        time_unit=unit,
        horizon=horizon,
        period=period,
        discount_rate=discount_rate,
        interval=interval,
        n_draws=n_draws,
        predictive=predictive,
        n_futures=n_futures,
        random_state=random_state,
        chunk_size=chunk_size,
        n_jobs=n_jobs,
    )
    if not isinstance(tier_histogram, bool | np.bool_):
        raise ValueError(f"tier_histogram must be True or False, got {tier_histogram!r}")
    return scorer._forecast(
        scorer._check_frame(frame, context), progressbar, tier_histogram=bool(tier_histogram)
    )
