"""Discounted customer lifetime value with parameter and predictive intervals.

The CLV of a customer over ``horizon`` discount periods of length ``period`` is

    CLV = sum_{k=1..H} E[purchases in period k | history] * E[spend | history] / (1 + d)^k

with the purchases from a transaction model (BG/NBD family) and the spend per
purchase from a spend model (Gamma-Gamma), which are independent by the Gamma-Gamma
assumption (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for
Customer Base Analysis", *Journal of Marketing Research* 42(4)). Periods are calendar
lengths converted to the summary's recorded ``time_unit``.

Two kinds of uncertainty are reported.

* **Parameter uncertainty** (``clv_lower`` / ``clv_upper``): the CLV is evaluated under
  ``n_draws`` parameter draws of both models (``param_draws``: posterior draws for
  Bayesian models, the estimator's asymptotic sampling distribution for maximum
  likelihood), and the interval is the equal-tailed quantile range over draws. It says
  where the *expected* value lies.
* **Predictive uncertainty** (``clv_pred_lower`` / ``clv_pred_upper``): under each
  parameter draw one future is simulated per customer (alive or not, the purchases in
  every period, their spends from the customer's Gamma-Gamma posterior), so the
  interval says where the *realised* value will fall.

Scale. A BG/NBD customer's future, given that the customer is alive, depends on
``(frequency, T)`` only: ``E[Y(t) | x, t_x, T] = P(alive | x, t_x, T) * E[Y(t) | x, T,
alive]``. The costly hypergeometric part is therefore evaluated once per distinct
``(frequency, T)`` (a few thousand rows for a million customers summarised by day),
``P(alive)`` once per distinct ``(frequency, recency, T)`` and the spend once per
distinct row; customers are processed in blocks, so memory stays bounded whatever
their number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clvmodels.data import compress, validate_summary
from clvmodels.errors import DataValidationError
from clvmodels.progress import progress_bar
from clvmodels.units import TIME_UNIT_DAYS, period_length

__all__ = [
    "CLVForecast",
    "CLVScorer",
    "ChunkScore",
    "customer_lifetime_value",
    "discount_factors",
    "predictive_interval",
    "simulate_future_value",
]


_KEY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
_BG_KEY = ("frequency", "recency", "T")
# Per-draw discounted purchases of the distinct (frequency, T) are kept up to this many
# values (128 MB), so that passes over the draws after the first skip the costly part.
_CACHE_VALUES = 16_000_000
# Draws x rows held per block: 4M float64 values are 32 MB per array, and a block
# keeps about ten such arrays alive.
_BLOCK_ELEMENTS = 4_000_000
_BGNBD_PARAMS = ("r", "alpha", "a", "b")
_GAMMA_GAMMA_PARAMS = ("p", "q", "gamma")


# --------------------------------------------------------------------------------------
# Small pure functions
# --------------------------------------------------------------------------------------
def discount_factors(horizon: int, discount_rate: float) -> np.ndarray:
    """``1 / (1 + d)^k`` for the periods ``k = 1 .. horizon``.

    Examples
    --------
    >>> discount_factors(3, 0.1).round(4).tolist()
    [0.9091, 0.8264, 0.7513]
    """
    return (1.0 + float(discount_rate)) ** -np.arange(1, int(horizon) + 1, dtype=float)


def _quantiles(values: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Quantiles over axis 0 with NumPy's default (linear) rule, from one partition.

    ``np.quantile`` sorts each column; partitioning the few order statistics needed, on
    a draws-contiguous copy, is about twice as fast on (1000, m) blocks.
    """
    n = values.shape[0]
    positions = [(n - 1) * float(p) for p in probs]
    lows = [math.floor(h) for h in positions]
    kth = sorted({k for low in lows for k in (low, min(low + 1, n - 1))})
    part = np.partition(np.ascontiguousarray(values.T), kth, axis=1)
    out = np.empty((len(probs), values.shape[1]))
    for i, (h, low) in enumerate(zip(positions, lows, strict=True)):
        a, b = part[:, low], part[:, min(low + 1, n - 1)]
        frac = h - low
        if frac == 0:
            out[i] = a
            continue
        with np.errstate(invalid="ignore"):  # inf - inf where both are infinite
            out[i] = np.where(a == b, a, a + (b - a) * frac)
    return out


def _interval_probs(level: float) -> tuple[float, float]:
    return (1.0 - level) / 2.0, (1.0 + level) / 2.0


def predictive_interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval holding ``level`` of simulated values, per column (draws on axis 0).

    Realised values have an atom at zero (a customer may buy nothing). When that atom
    holds more than the lower tail ``(1 - level) / 2``, the equal-tailed interval
    would start at zero anyway and hold more than ``level``; the interval is then
    ``[0, q_level]``, which holds ``level`` of the distribution (or ``[0, 0]`` when
    more than ``level`` of it is zero). Otherwise it is the equal-tailed interval.

    Examples
    --------
    >>> sims = np.r_[np.zeros(50), np.arange(1.0, 51.0)][:, None]
    >>> [float(v[0]) for v in predictive_interval(sims, 0.9)]
    [0.0, 40.1...]
    """
    low_p, high_p = _interval_probs(level)
    low, high, at_level = _quantiles(values, [low_p, high_p, level])
    atom = np.mean(values <= 0, axis=0) > low_p
    return np.where(atom, 0.0, low), np.where(atom, at_level, high)


def simulate_future_value(
    rng: np.random.Generator,
    *,
    probability_alive: np.ndarray,
    r: np.ndarray,
    alpha: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    gamma: np.ndarray,
    frequency: np.ndarray,
    T: np.ndarray,
    monetary_value: np.ndarray,
    period_length: float,
    discount: np.ndarray,
) -> np.ndarray:
    """One simulated discounted future value per element (BG/NBD + Gamma-Gamma).

    All arrays broadcast to one shape, typically ``(n_draws, n_customers)``. Given its
    history ``(x, T)`` and that it is alive (probability ``probability_alive``), a
    BG/NBD customer's purchase rate and dropout probability have the posteriors
    ``lambda ~ Gamma(r + x, rate alpha + T)`` and ``p ~ Beta(a, b + x)`` (the prior
    updated by ``x`` purchases and no dropout in ``T``). It then buys at the Poisson
    times of rate ``lambda`` and drops out after each purchase with probability ``p``:
    it makes ``K = min(N, D)`` purchases in the horizon, ``N ~ Poisson(lambda H L)``,
    ``D ~ Geometric(p)``. Each purchase is worth ``Gamma(p_spend, rate nu)``, with
    ``nu ~ Gamma(p_spend x + q, rate gamma + x m_x)``, the Gamma-Gamma posterior of the
    customer's spend rate (Fader & Hardie 2013). A purchase in period ``k`` is
    discounted by ``discount[k - 1]``.

    The purchase times are drawn without simulating the arrivals after dropout: the
    ``K``-th of ``N`` uniform arrival times is ``Beta(K, N - K + 1)``, and the first
    ``K - 1`` are uniform below it. The cost follows the number of purchases.

    Returns
    -------
    numpy.ndarray
        The discounted value, zero for customers who buy nothing.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> v = simulate_future_value(rng, probability_alive=np.ones(20000), r=1.0, alpha=1.0,
    ...     a=1.0, b=1e6, p=1.0, q=1e6, gamma=1e6, frequency=0.0, T=0.0,
    ...     monetary_value=0.0, period_length=1.0, discount=np.ones(2))
    >>> round(float(v.mean()), 1)  # lambda ~ Exp(1), no dropout, spend 1: mean 2
    2.0
    """
    horizon = int(np.size(discount))
    x = np.asarray(frequency, dtype=float)
    shape = np.broadcast_shapes(
        *(np.shape(v) for v in (probability_alive, r, alpha, a, b, p, q, gamma, x, T))
    )

    def full(v: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(v, dtype=float), shape)

    m = np.where(x > 0, np.asarray(monetary_value, dtype=float), 0.0)
    alive = rng.random(shape) < full(probability_alive)
    lam = rng.gamma(full(r + x)) / full(alpha + np.asarray(T, dtype=float))
    # Beta draws with a small first shape can underflow to 0; Geometric needs p > 0.
    p_drop = np.clip(rng.beta(full(a), full(b + x)), 1e-12, 1.0)
    n_arrivals = rng.poisson(lam * (period_length * horizon))
    n_kept = np.where(alive, np.minimum(n_arrivals, rng.geometric(p_drop)), 0)
    nu = rng.gamma(full(p * x + q)) / full(gamma + x * m)

    value = np.zeros(shape)
    buyers = np.flatnonzero(n_kept)
    if buyers.size == 0:
        return value
    kept = n_kept.ravel()[buyers]
    last = rng.beta(kept, n_arrivals.ravel()[buyers] - kept + 1)
    owner = np.repeat(np.arange(buyers.size), kept - 1)
    times = np.concatenate([last, rng.random(owner.size) * last[owner]])
    owner = np.concatenate([np.arange(buyers.size), owner])
    period = np.minimum((times * horizon).astype(np.int64), horizon - 1)
    spend_shape = full(p).ravel()[buyers][owner]
    spend = rng.gamma(spend_shape) / nu.ravel()[buyers][owner]
    np.put(
        value,
        buyers,
        np.bincount(owner, weights=spend * np.asarray(discount)[period], minlength=buyers.size),
    )
    return value


def _discounted_alive_purchases(
    model: Any,
    params: Mapping[str, np.ndarray],
    ref: pd.DataFrame,
    times: np.ndarray,
    discount: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Discounted and cumulative expected purchases given alive, on ``ref`` rows.

    ``E[Y(t) | x, t_x, T] / P(alive | x, t_x, T)`` does not depend on ``t_x``; it is
    evaluated on reference rows (one per distinct ``(frequency, T)``) through the
    model's own hooks, and the period increments are discounted.
    """
    p_ref = model._probability_alive_given(params, ref)
    previous: np.ndarray | float = 0.0
    discounted: np.ndarray | float = 0.0
    for t, factor in zip(times, discount, strict=True):
        cumulative = model._expected_purchases_given(np.asarray(t), params, ref) / p_ref
        discounted = discounted + (cumulative - previous) * factor
        previous = cumulative
    return np.asarray(discounted), np.asarray(previous)


def _take(values: np.ndarray, index: np.ndarray, n_rows: int) -> np.ndarray:
    """Columns ``index`` of a per-row array; arrays without a row axis pass through."""
    values = np.asarray(values)
    if values.ndim >= 1 and values.shape[-1] == n_rows:
        return values[..., index]
    return values


# --------------------------------------------------------------------------------------
# Settings and units
# --------------------------------------------------------------------------------------
def _check_settings(
    horizon: Any, discount_rate: Any, interval: Any, n_draws: Any
) -> tuple[int, float, float, int]:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer):
        if not (isinstance(horizon, float) and horizon.is_integer()):
            raise ValueError(f"horizon must be a whole number of periods, got {horizon!r}")
    if int(horizon) <= 0:
        raise ValueError(f"horizon must be at least 1 period, got {horizon!r}")
    rate = float(discount_rate)
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(
            f"discount_rate must be a finite non-negative rate per period, got {discount_rate!r}"
        )
    level = float(interval)
    if not 0 < level < 1:
        raise ValueError(f"interval must lie strictly between 0 and 1, got {interval!r}")
    if isinstance(n_draws, bool) or int(n_draws) != n_draws or int(n_draws) < 2:
        raise ValueError(f"n_draws must be an integer of at least 2, got {n_draws!r}")
    return int(horizon), rate, level, int(n_draws)


def _resolve_time_unit(
    data_unit: str | None, time_unit: str | None, transaction_model: Any, spend_model: Any
) -> str:
    """The one time unit of data and models; any disagreement is an error."""
    tx_unit = getattr(transaction_model, "time_unit_", None)
    spend_unit = getattr(spend_model, "time_unit_", None)
    if tx_unit and spend_unit and tx_unit != spend_unit:
        raise ValueError(
            f"the models were fitted on different time units: {type(transaction_model).__name__} "
            f"on {tx_unit!r}, {type(spend_model).__name__} on {spend_unit!r}; fit both on the "
            "same summary"
        )
    if data_unit and time_unit and data_unit != time_unit:
        raise ValueError(
            f"time_unit={time_unit!r} contradicts the summary, which records "
            f"time_unit={data_unit!r}"
        )
    unit = data_unit or time_unit
    if unit is None:
        raise ValueError(
            "the summary records no time unit (attrs['time_unit']), so the horizon cannot be "
            "converted: pass time_unit= (e.g. 'W' if recency and T are in weeks)"
        )
    if unit not in TIME_UNIT_DAYS:
        raise ValueError(f"time_unit={unit!r} is not supported: use one of {list(TIME_UNIT_DAYS)}")
    model_unit = tx_unit or spend_unit
    if model_unit and model_unit != unit:
        raise ValueError(
            f"the models were fitted on a summary in {model_unit!r} but this summary is in "
            f"{unit!r}: summarise the data in the models' unit"
        )
    return unit


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
    raise TypeError(
        f"random_state must be None, an int, a numpy Generator or SeedSequence, "
        f"got {type(random_state).__name__}"
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


# --------------------------------------------------------------------------------------
# Layout: distinct customers, sorted and cut into blocks
# --------------------------------------------------------------------------------------
@dataclass
class _Layout:
    rows: pd.DataFrame  # distinct customer rows, sorted so that equal (x, T) are adjacent
    weights: np.ndarray  # customers per distinct row
    row_of_customer: np.ndarray  # position in `rows` of every customer
    customer_order: np.ndarray  # customers ordered by their row
    block_starts: np.ndarray  # first row of each block, then len(rows)
    customer_starts: np.ndarray  # first position in `customer_order` of each block
    xt_rows: pd.DataFrame  # distinct (frequency, T[, group]) with a reference recency
    xt_index: np.ndarray  # row of `xt_rows` of every row of `rows`

    @property
    def n_blocks(self) -> int:
        return len(self.block_starts) - 1

    def block(self, i: int) -> tuple[int, int, np.ndarray]:
        start, stop = int(self.block_starts[i]), int(self.block_starts[i + 1])
        customers = self.customer_order[self.customer_starts[i] : self.customer_starts[i + 1]]
        return start, stop, customers


def _layout(
    data: pd.DataFrame, group_cols: Sequence[str], tx_groups: Sequence[str], block_rows: int
) -> _Layout:
    rows, weights, inverse = compress(data, columns=[*_KEY_COLUMNS, *group_cols])
    keys = [rows[c].to_numpy(dtype=float) for c in ("monetary_value", "recency", "T", "frequency")]
    keys += [pd.factorize(rows[g])[0] for g in reversed(group_cols)]
    order = np.lexsort(keys)
    rows = rows.iloc[order].reset_index(drop=True)
    rank = np.empty(order.size, dtype=np.intp)
    rank[order] = np.arange(order.size)
    row_of_customer = rank[inverse]
    customer_order = np.argsort(row_of_customer, kind="stable")
    block_starts = np.append(np.arange(0, len(rows), block_rows), len(rows))
    customer_starts = np.searchsorted(row_of_customer[customer_order], block_starts)
    xt_rows, _, xt_index = compress(rows, columns=("frequency", "T"), extra=tx_groups)
    # The hooks are evaluated at recency = T (x > 0), where P(alive) is bounded away
    # from 0, so that dividing by it is exact.
    xt_rows["recency"] = np.where(xt_rows["frequency"] > 0, xt_rows["T"], 0.0)
    return _Layout(
        rows,
        weights[order],
        row_of_customer,
        customer_order,
        block_starts,
        customer_starts,
        xt_rows,
        xt_index,
    )


@dataclass
class _Block:
    """Values of one block of distinct rows, point (1-d) or per draw (n_draws, m)."""

    clv: np.ndarray
    expected_purchases: np.ndarray | None
    probability_alive: np.ndarray  # per distinct (x, t_x, T) row: index with `bg_index`
    spend: np.ndarray
    bg_index: np.ndarray  # block row -> distinct (x, t_x, T) row
    n_bg: int
    tx_params: Mapping[str, np.ndarray]  # per distinct (x, t_x, T) row
    spend_params: Mapping[str, np.ndarray]  # per block row
    n_invalid_spend: int


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
    predictive_totals : ndarray (n_draws,) or None
        The chunk's summed simulated realised value per draw (predictive only).
    draws, predictive_draws : ndarray (n_draws, n_customers) or None
        Per-draw expected CLV and simulated realised value, columns in the order of
        ``table`` (only with ``return_draws=True``).
    """

    table: pd.DataFrame
    draw_totals: np.ndarray
    predictive_totals: np.ndarray | None = None
    draws: np.ndarray | None = None
    predictive_draws: np.ndarray | None = None


class CLVScorer:
    """Parameter draws and settings, fixed once, to score any set of customers.

    :func:`customer_lifetime_value` builds one and runs it over all customers; a
    distributed job builds one on the driver and calls :meth:`score_chunk` on every
    partition, so that all partitions share the same parameter draws and their
    per-draw totals add up to portfolio intervals.

    Parameters
    ----------
    transaction_model, spend_model
        Fitted models (``BetaGeo`` or ``HierarchicalBetaGeo``; ``GammaGamma`` or
        ``HierarchicalGammaGamma``).
    time_unit : str
        Unit of the summaries that will be scored ("D", "W", ...); it must agree with
        the units the models recorded at fit time.
    horizon, period, discount_rate, interval, n_draws, predictive, random_state
        As in :func:`customer_lifetime_value`.
    chunk_size : int, optional
        Distinct rows per block; by default about four million draw-values per block.

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
        transaction_model: Any,
        spend_model: Any,
        *,
        time_unit: str | None,
        horizon: int = 12,
        period: str = "M",
        discount_rate: float = 0.01,
        interval: float = 0.9,
        n_draws: int = 1000,
        predictive: bool = False,
        random_state: Any = None,
        chunk_size: int | None = None,
    ) -> None:
        _check_models(transaction_model, spend_model, predictive)
        horizon, rate, level, n_draws = _check_settings(horizon, discount_rate, interval, n_draws)
        self.transaction_model = transaction_model
        self.spend_model = spend_model
        self.time_unit = _resolve_time_unit(None, time_unit, transaction_model, spend_model)
        self.horizon = horizon
        self.period = period
        self.period_length = period_length(period, self.time_unit)
        self.discount_rate = rate
        self.interval = level
        self.n_draws = n_draws
        self.predictive = bool(predictive)
        self.seed = _entropy(random_state)
        self.times = self.period_length * np.arange(1, horizon + 1, dtype=float)
        self.discount = discount_factors(horizon, rate)
        if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.chunk_size = int(chunk_size or max(64, _BLOCK_ELEMENTS // n_draws))
        self.group_cols = tuple(
            dict.fromkeys(g for g in (_group_col(transaction_model), _group_col(spend_model)) if g)
        )
        self._tx_groups = tuple(g for g in (_group_col(transaction_model),) if g)
        # The draws are taken once, here, so that every chunk and partition shares them.
        tx_seed, spend_seed = np.random.SeedSequence(self.seed).spawn(2)
        self.transaction_draws = transaction_model.param_draws(
            n_draws, random_state=np.random.default_rng(tx_seed)
        )
        self.spend_draws = spend_model.param_draws(
            n_draws, random_state=np.random.default_rng(spend_seed)
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
            "random_state": self.seed,
            "transaction_model": type(self.transaction_model).__name__,
            "spend_model": type(self.spend_model).__name__,
        }

    # -- the computation ------------------------------------------------------------
    def _alive_purchases(self, ref: pd.DataFrame, *, draws: bool) -> tuple[np.ndarray, np.ndarray]:
        """Discounted and cumulative expected purchases given alive on reference rows."""
        tx = self.transaction_model
        params = tx._params_for(ref, self.transaction_draws if draws else None)
        return _discounted_alive_purchases(tx, params, ref, self.times, self.discount)

    def _alive_cache(self, layout: _Layout, advance: Callable[[], None]) -> np.ndarray | None:
        """Per-draw discounted purchases given alive for every distinct (frequency, T),
        kept when small so that later passes (draws, segments) skip the costly part."""
        n_xt = len(layout.xt_rows)
        if n_xt * self.n_draws > _CACHE_VALUES:
            return None
        out = np.empty((self.n_draws, n_xt))
        for start in range(0, n_xt, self.chunk_size):
            part = layout.xt_rows.iloc[start : start + self.chunk_size]
            out[:, start : start + len(part)] = self._alive_purchases(part, draws=True)[0]
            advance()
        return out

    def _block(
        self,
        rows: pd.DataFrame,
        *,
        draws: bool,
        alive: tuple[np.ndarray, np.ndarray | None] | None = None,
    ) -> _Block:
        """CLV of a block of distinct rows; ``alive`` holds the rows' discounted (and
        cumulative) purchases given alive when they are already known."""
        tx, sp = self.transaction_model, self.spend_model
        bg_rows, _, bg_index = compress(rows, columns=_BG_KEY, extra=self._tx_groups)
        if alive is None:
            ref, _, ref_index = compress(bg_rows, columns=("frequency", "T"), extra=self._tx_groups)
            ref["recency"] = np.where(ref["frequency"] > 0, ref["T"], 0.0)
            disc, cumulative = self._alive_purchases(ref, draws=draws)
            to_ref = ref_index[bg_index]
            alive = (disc[..., to_ref], cumulative[..., to_ref])
        disc_rows, cumulative_rows = alive
        tx_params = tx._params_for(bg_rows, self.transaction_draws if draws else None)
        p_alive = np.asarray(tx._probability_alive_given(tx_params, bg_rows))
        spend_params = sp._params_for(rows, self.spend_draws if draws else None)
        spend = np.asarray(sp._expected_spend_given(spend_params, rows), dtype=float)
        # Where p x + q <= 1 the customer's spend has no finite posterior mean.
        invalid = ~(spend > 0) | ~np.isfinite(spend)
        n_invalid = int(invalid.sum())
        if n_invalid:
            spend = np.where(invalid, np.inf, spend)
        alive_rows = p_alive[..., bg_index]
        return _Block(
            clv=alive_rows * disc_rows * spend,
            expected_purchases=None if cumulative_rows is None else alive_rows * cumulative_rows,
            probability_alive=p_alive,
            spend=spend,
            bg_index=bg_index,
            n_bg=len(bg_rows),
            tx_params=tx_params,
            spend_params=spend_params,
            n_invalid_spend=n_invalid,
        )

    def _simulate(
        self, block: _Block, rows: pd.DataFrame, local: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Simulated realised values (n_draws, len(local)) for customers at block rows
        ``local``, one future per parameter draw."""
        bg = block.bg_index[local]
        n_rows = len(rows)
        tx = {k: _take(block.tx_params[k], bg, block.n_bg) for k in _BGNBD_PARAMS}
        sp = {k: _take(block.spend_params[k], local, n_rows) for k in _GAMMA_GAMMA_PARAMS}
        return simulate_future_value(
            rng,
            probability_alive=block.probability_alive[..., bg],
            **tx,
            **sp,
            frequency=rows["frequency"].to_numpy(dtype=float)[local],
            T=rows["T"].to_numpy(dtype=float)[local],
            monetary_value=rows["monetary_value"].to_numpy(dtype=float)[local],
            period_length=self.period_length,
            discount=self.discount,
        )

    def _prepare(self, data: Any, context: str, time_unit: str | None = None) -> pd.DataFrame:
        frame = validate_summary(data, require_monetary=True, context=context)
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
        return frame

    def _run(
        self,
        frame: pd.DataFrame,
        seed_words: list[int],
        *,
        keep_draws: bool = False,
        progressbar: bool | None = None,
    ) -> tuple[pd.DataFrame, dict[str, Any], tuple[_Layout, np.ndarray | None]]:
        layout = _layout(frame, self.group_cols, self._tx_groups, self.chunk_size)
        n_rows, n_customers = len(layout.rows), len(frame)
        low_p, high_p = _interval_probs(self.interval)
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
        pred_totals = np.zeros(self.n_draws) if self.predictive else None
        draws = np.empty((self.n_draws, n_customers)) if keep_draws else None
        pred_draws = (
            np.empty((self.n_draws, n_customers)) if keep_draws and self.predictive else None
        )
        n_invalid = 0
        n_xt = len(layout.xt_rows)
        cache_steps = -(-n_xt // self.chunk_size) if n_xt * self.n_draws <= _CACHE_VALUES else 0
        with _progress(layout.n_blocks + cache_steps, progressbar, "CLV") as advance:
            point_alive = self._alive_purchases(layout.xt_rows, draws=False)
            cache = self._alive_cache(layout, advance)
            for i in range(layout.n_blocks):
                start, stop, customers = layout.block(i)
                rows = layout.rows.iloc[start:stop]
                xt = layout.xt_index[start:stop]
                point = self._block(
                    rows, draws=False, alive=(point_alive[0][xt], point_alive[1][xt])
                )
                _check_point(point, rows, self.transaction_model, self.times[-1])
                drawn = self._block(
                    rows, draws=True, alive=None if cache is None else (cache[:, xt], None)
                )
                n_invalid += drawn.n_invalid_spend
                sl = slice(start, stop)
                per_row["expected_purchases"][sl] = point.expected_purchases
                per_row["probability_alive"][sl] = point.probability_alive[point.bg_index]
                per_row["expected_spend"][sl] = point.spend
                per_row["clv"][sl] = point.clv
                per_row["clv_lower"][sl], per_row["clv_upper"][sl] = _quantiles(
                    drawn.clv, [low_p, high_p]
                )
                totals += drawn.clv @ layout.weights[sl]
                if draws is not None:
                    draws[:, customers] = drawn.clv[:, layout.row_of_customer[customers] - start]
                if self.predictive:
                    for j, piece in enumerate(self._pieces(customers)):
                        local = layout.row_of_customer[piece] - start
                        rng = np.random.default_rng([*seed_words, 1, i, j])
                        sims = self._simulate(drawn, rows, local, rng)
                        low, high = predictive_interval(sims, self.interval)
                        pred_lower[sl] += np.bincount(local, low, minlength=stop - start)
                        pred_upper[sl] += np.bincount(local, high, minlength=stop - start)
                        pred_totals += sims.sum(axis=1)
                        if pred_draws is not None:
                            pred_draws[:, piece] = sims
                advance()
        if n_invalid:
            warnings.warn(
                f"{n_invalid} combinations of a distinct customer and a parameter draw have no "
                "finite expected spend (the spend model's draw puts p * frequency + q <= 1); "
                "their CLV is infinite, which makes upper bounds infinite where such draws "
                "reach the upper tail",
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
        return table, extras, (layout, cache)

    def _pieces(self, customers: np.ndarray) -> list[np.ndarray]:
        return [
            customers[k : k + self.chunk_size] for k in range(0, customers.size, self.chunk_size)
        ]

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
            ``recency``, ``T``, ``monetary_value`` (and the models' group column), in
            this scorer's ``time_unit``.
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
        empty = np.empty((self.n_draws, 0)) if return_draws else None
        return ChunkScore(
            table=pd.DataFrame({c: np.empty(0) for c in columns}, index=index),
            draw_totals=np.zeros(self.n_draws),
            predictive_totals=np.zeros(self.n_draws) if self.predictive else None,
            draws=empty,
            predictive_draws=empty if self.predictive else None,
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
        frame = self._prepare(data, "customer_lifetime_value")
        table, extras, (layout, cache) = self._run(frame, [self.seed], progressbar=progressbar)
        return CLVForecast(
            table=table,
            draw_totals=extras["draw_totals"],
            predictive_totals=extras["predictive_totals"],
            scorer=self,
            layout=layout,
            index=frame.index,
            alive_cache=cache,
        )


def _group_col(model: Any) -> str | None:
    group = getattr(model, "group_col", None)
    return group if isinstance(group, str) and group else None


def _check_models(transaction_model: Any, spend_model: Any, predictive: bool) -> None:
    for role, model, hook, example in (
        ("transaction_model", transaction_model, "_expected_purchases_given", "BetaGeo"),
        ("spend_model", spend_model, "_expected_spend_given", "GammaGamma"),
    ):
        if not hasattr(model, hook) or not hasattr(model, "param_draws"):
            raise TypeError(
                f"{role} must be a clvmodels {example}-like model, got {type(model).__name__}"
            )
        model._check_fitted()
    if predictive:
        tx_names = set(getattr(transaction_model, "param_names", ()))
        sp_names = set(getattr(spend_model, "param_names", ()))
        if not set(_BGNBD_PARAMS) <= tx_names or not set(_GAMMA_GAMMA_PARAMS) <= sp_names:
            raise ValueError(
                "predictive=True simulates BG/NBD purchases and Gamma-Gamma spends; "
                f"{type(transaction_model).__name__} / {type(spend_model).__name__} do not "
                "have those parameters"
            )


def _check_point(point: _Block, rows: pd.DataFrame, model: Any, t_end: float) -> None:
    """Guard the (frequency, T) factorisation: it must reproduce the model's own answer."""
    direct = model._expected_purchases_given(np.asarray(t_end), model._params_for(rows), rows)
    if not np.allclose(point.expected_purchases, direct, rtol=1e-8, atol=1e-12):
        raise RuntimeError(
            f"{type(model).__name__}: expected purchases given alive depend on recency, so the "
            "CLV factorisation used here does not apply to this model"
        )
    if not np.all(np.isfinite(point.spend)):
        raise ValueError(
            "the spend model's point estimate gives no finite expected spend (q <= 1 means "
            "the fitted spend distribution has no finite mean)"
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
    predictive_totals : ndarray (n_draws,) or None
        Portfolio realised value, one simulated future per draw (predictive only).
    scorer : CLVScorer
        The draws and settings, to score further customers consistently.
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
        alive_cache: np.ndarray | None = None,
    ) -> None:
        self.table = table
        self._alive_cache = alive_cache
        self.draw_totals = draw_totals
        self.predictive_totals = predictive_totals
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
            ``clv_pred_lower`` and ``clv_pred_upper`` (where the realised total falls).

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
        level = self.interval if interval is None else float(interval)
        if not 0 < level < 1:
            raise ValueError(f"interval must lie strictly between 0 and 1, got {interval!r}")
        low_p, high_p = _interval_probs(level)
        lower, upper = np.quantile(self.draw_totals, [low_p, high_p])
        out = {
            "customers": float(len(self.table)),
            "clv": float(self.table["clv"].sum()),
            "clv_mean": float(np.mean(self.draw_totals)),
            "clv_lower": float(lower),
            "clv_upper": float(upper),
        }
        if self.predictive_totals is not None:
            p_lower, p_upper = np.quantile(self.predictive_totals, [low_p, high_p])
            out["clv_pred_lower"] = float(p_lower)
            out["clv_pred_upper"] = float(p_upper)
        return pd.Series(out, name="total")

    def iter_draws(self, kind: str = "expected") -> Iterator[tuple[pd.Index, np.ndarray]]:
        """Per-draw values, chunk by chunk: ``(customer_ids, values)`` pairs.

        ``values`` has shape ``(n_draws, len(customer_ids))``; chunks hold about four
        million values, so memory stays bounded however many customers there are. The
        values are recomputed from the stored draws (and seeds), so they are exactly
        those behind ``table`` and ``total()``.

        Parameters
        ----------
        kind : {"expected", "predictive"}
            Expected CLV under each parameter draw, or the simulated realised value
            (one future per draw; needs ``predictive=True``).

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
        for i in range(layout.n_blocks):
            start, stop, customers = layout.block(i)
            rows = layout.rows.iloc[start:stop]
            drawn = self._drawn_block(start, stop)
            for j, piece in enumerate(scorer._pieces(customers)):
                local = layout.row_of_customer[piece] - start
                if kind == "expected":
                    values = drawn.clv[:, local]
                else:
                    rng = np.random.default_rng([scorer.seed, 1, i, j])
                    values = scorer._simulate(drawn, rows, local, rng)
                yield self._index[piece], values

    def _iter_row_draws(self) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """Per-draw expected CLV of the distinct rows: (row slice, weights, values)."""
        layout = self._layout
        for i in range(layout.n_blocks):
            start, stop, _ = layout.block(i)
            yield slice(start, stop), layout.weights[start:stop], self._drawn_block(start, stop).clv

    def _drawn_block(self, start: int, stop: int) -> _Block:
        layout, cache = self._layout, self._alive_cache
        alive = None if cache is None else (cache[:, layout.xt_index[start:stop]], None)
        return self.scorer._block(layout.rows.iloc[start:stop], draws=True, alive=alive)


def customer_lifetime_value(
    transaction_model: Any,
    spend_model: Any,
    data: Any,
    *,
    horizon: int = 12,
    period: str = "M",
    discount_rate: float = 0.01,
    interval: float = 0.9,
    n_draws: int = 1000,
    predictive: bool = False,
    random_state: Any = None,
    time_unit: str | None = None,
    progressbar: bool | None = None,
    chunk_size: int | None = None,
) -> CLVForecast:
    """Discounted customer lifetime value with parameter (and predictive) intervals.

    ``CLV = sum_{k=1..horizon} E[purchases in period k] * E[spend] / (1 + discount_rate)^k``
    per customer, conditional on the customer's history.

    Parameters
    ----------
    transaction_model : BetaGeo or HierarchicalBetaGeo
        Fitted purchase model.
    spend_model : GammaGamma or HierarchicalGammaGamma
        Fitted spend model.
    data : DataFrame
        Summary frame (one row per customer, indexed by customer id) with
        ``frequency``, ``recency``, ``T`` and ``monetary_value``.
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
        Parameter draws (and simulated futures) behind the intervals.
    predictive : bool, default False
        Also simulate each customer's realised value and report where it will fall.
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

    Returns
    -------
    CLVForecast
        ``.table``, ``.total()``, ``.iter_draws()``, ``.settings``.

    Raises
    ------
    ValueError
        For an interval outside (0, 1), a negative discount rate, a horizon below one
        period, an unknown period, a summary without time unit (and no
        ``time_unit=``), or models fitted on different time units.

    Notes
    -----
    Identical customers (same frequency, recency, T, monetary value and group) are
    computed once; the expensive part of BG/NBD runs once per distinct
    ``(frequency, T)``. With 1,000 draws a million customers need well under 1 GB.

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
    frame = validate_summary(data, require_monetary=True, context="customer_lifetime_value")
    unit = _resolve_time_unit(
        frame.attrs.get("time_unit"), time_unit, transaction_model, spend_model
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
        random_state=random_state,
        chunk_size=chunk_size,
    )
    return scorer.forecast(frame, progressbar=progressbar)
