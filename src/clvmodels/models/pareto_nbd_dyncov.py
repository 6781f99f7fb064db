"""Pareto/NBD with time-varying covariates (maximum likelihood).

Bachmann, P., Meierer, M. and Näf, J. (2021), "The Role of Time-Varying Contextual
Factors in Latent Attrition Models for Customer Base Analysis", *Marketing Science*
40(4), 783-809 (BMN 2021), the model of R's CLVTools ``pnbd()`` on data with
``SetDynamicCovariates()``.

The model
---------
Time is cut into periods of one length (CLVTools: weeks); in period ``k`` customer
``i`` has purchase covariates ``z_ik`` and dropout covariates ``w_ik``. While alive the
customer buys at the rate ``lambda_i exp(gamma_p' z_ik)`` and dies at the rate
``mu_i exp(gamma_d' w_ik)``, with ``lambda_i ~ Gamma(r, alpha)`` and ``mu_i ~
Gamma(s, beta)`` independent, as in the Pareto/NBD. With ``a_ik = exp(gamma_p' z_ik)``,
``c_ik = exp(gamma_d' w_ik)`` and the covariate-weighted clocks

    A_i(u) = int_0^u a_i(v) dv,    C_i(u) = int_0^u c_i(v) dv

(time ``u`` counted from the customer's first purchase), a customer with ``x`` repeat
purchases at ``t_1 <= ... <= t_x = t_x`` in ``(0, T]`` has the likelihood

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * prod_j a(t_j)
        * [P(T) + s/(r+s+x) sum_k (P(l_k) K_k(l_k) - P(h_k) K_k(h_k))]

with ``P(u) = (alpha + A(u))^-(r+x) (beta + C(u))^-s``: alive at ``T`` (the first
term), or dead at some ``tau`` in ``(t_x, T]``, which the sum integrates period by
period over the pieces ``[l_k, h_k]`` of ``(t_x, T]``. Within a piece ``A`` and ``C``
are linear, and the integral of ``(alpha+A)^-(r+x) s beta^s c (beta+C)^-(s+1)`` over
it is the Pareto/NBD's closed form: ``K_k(u)`` is the Pareto/NBD's hypergeometric term
``K(r+x, s+1, rho)`` (:func:`clvmodels.models.pareto_nbd.pnbd_log_hyp2f1`) at ``rho =
(a_k / c_k) (beta + C(u)) / (alpha + A(u))``. With covariates constant in time,
``A(u) = a u`` and ``C(u) = c u``, and ``L`` is exactly the static covariate model's
(``alpha_i = alpha / a``, ``beta_i = beta / c``; Fader & Hardie's note 019, CLVTools'
``pnbd`` with static covariates): one piece, and the same terms.

Everything is computed in log space: each piece's difference as ``log(P K)`` at its
start plus ``log(-expm1(...))`` of the exact log ratio of its end to its start (with
``log1p`` of the clocks' growth), the pieces by ``logsumexp``, and the dead part
joined to the alive part by ``softplus`` of their log odds, as
:func:`clvmodels.models.pareto_nbd.pnbd_log_likelihood` does for one piece.

Predictions. Given the data, a customer is alive at ``T`` with probability ``P(T) /
[...]`` above (:func:`pnbd_dyncov_probability_alive`); an alive customer has
``lambda ~ Gamma(r+x, alpha+A(T))`` and ``mu ~ Gamma(s, beta+C(T))``, so the expected
number of purchases in ``(T, T+t]`` is

    P(alive) (r+x) / (alpha+A(T)) int_T^(T+t) a(u) ((beta+C(T)) / (beta+C(u)))^s du,

summed in closed form period by period (:func:`pnbd_dyncov_expected_purchases`). The
covariate table must then cover the horizon too.

Data. The likelihood needs more than ``(x, t_x, T)``: where each customer's periods
fall in the customer's own time, and the sum of the purchase covariates over the
periods of the repeat purchases (``log prod_j a(t_j) = gamma_p' sum_j z(t_j)``).
:func:`dynamic_covariate_data` builds both from a transaction log and a customer x
period covariate table, checks them, and hands the model a
:class:`DynamicCovariateData`; fitting and predicting take that object.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit, exprel

from clvmodels.errors import ConvergenceError, DataValidationError, ModelFileError
from clvmodels.models.base import BaseModel, check_payload_keys, write_model_file
from clvmodels.models.mle import numerical_hessian
from clvmodels.models.ops import DUAL, NUMPY, Dual, value_and_grad
from clvmodels.models.pareto_nbd import pnbd_log_hyp2f1
from clvmodels.units import TIME_UNIT_DAYS, UNIT_HOURS, check_time_unit

__all__ = [
    "DynamicCovariateData",
    "ParetoNBDDynamicCovariates",
    "dynamic_covariate_data",
    "pnbd_dyncov_expected_purchases",
    "pnbd_dyncov_log_likelihood",
    "pnbd_dyncov_probability_alive",
]

BASE_PARAMS = ("r", "alpha", "s", "beta")
#: Version of the JSON layout written by :meth:`ParetoNBDDynamicCovariates.save`.
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------
# Pure functions: arrays in, arrays out
# --------------------------------------------------------------------------------------
def _log_k(p, q, log_rho, ops):
    """``log K(p, q, rho)`` in NumPy or forward mode (exact value and derivatives from
    :func:`pnbd_log_hyp2f1`, expanded to first order around the values)."""
    if ops.name != "dual":
        return pnbd_log_hyp2f1(p, q, log_rho)
    values = [v.value if isinstance(v, Dual) else np.asarray(v, float) for v in (p, q, log_rho)]
    value, d_p, d_q, d_rho = pnbd_log_hyp2f1(*values, derivatives=True)
    return (value + d_p * (p - values[0]) + d_q * (q - values[1])
            + d_rho * (log_rho - values[2]))


def _lengths(start, end, lower, upper):
    """How much of each period ``[start, end)`` lies in ``[lower, upper]`` (data)."""
    return np.clip(end, lower, upper) - np.clip(start, lower, upper)


def _cumsum(values, ops):
    """Running sum over the periods (the last axis)."""
    if ops.name == "dual" and isinstance(values, Dual):
        return Dual(np.cumsum(values.value, axis=-1), np.cumsum(values.grad, axis=-1))
    return np.cumsum(values, axis=-1)


def _log_death_odds(r, alpha, s, beta, x, t_x, T, start, end, log_a, log_c, ops):
    """log of P(died unseen in (t_x, T] | data) / P(alive at T | data), and log P(T).

    The pieces of ``(t_x, T]`` are the periods clipped to it; each starts where the
    one before ends, so the clocks at their starts are running sums. Rows with
    ``t_x == T`` (no time to die unseen) get odds 0 as a finite placeholder; callers
    mask them.
    """
    t_x2, T2 = t_x[:, None], T[:, None]
    a, c = ops.exp(log_a), ops.exp(log_c)
    before, after = _lengths(start, end, 0.0, t_x2), _lengths(start, end, t_x2, T2)
    grown_a, grown_c = a * after, c * after
    alpha_lo = alpha + ops.sum(a * before, axis=-1)[:, None] + _cumsum(grown_a, ops) - grown_a
    beta_lo = beta + ops.sum(c * before, axis=-1)[:, None] + _cumsum(grown_c, ops) - grown_c
    p = r + x
    log_p_T = (-p * ops.log(alpha_lo[:, -1] + grown_a[:, -1])
               - s * ops.log(beta_lo[:, -1] + grown_c[:, -1]))
    p2 = p[:, None]
    log_ratio = log_a - log_c
    # K only where a piece has length (elsewhere rho = 1, where K = 1 at once)
    some = after > 0
    log_k_lo = _log_k(p2, s + 1.0, ops.where(
        some, log_ratio + ops.log(beta_lo) - ops.log(alpha_lo), 0.0), ops)
    log_k_hi = _log_k(p2, s + 1.0, ops.where(
        some, log_ratio + ops.log(beta_lo + grown_c) - ops.log(alpha_lo + grown_a), 0.0), ops)
    # log of (P K at the piece's end) / (P K at its start), exact for short pieces
    gap = (-p2 * ops.log1p(grown_a / alpha_lo) - s * ops.log1p(grown_c / beta_lo)
           + log_k_hi - log_k_lo)
    gap = ops.minimum(ops.where(some, gap, -1.0), -1e-300)
    term = -p2 * ops.log(alpha_lo) - s * ops.log(beta_lo) + log_k_lo + ops.log(-ops.expm1(gap))
    room = some.any(axis=1)
    term = ops.where(some | ~room[:, None], term, -np.inf)
    dead = ops.logsumexp(term, axis=-1)
    return ops.where(room, ops.log(s) - ops.log(p + s) + dead - log_p_T, 0.0), log_p_T


def pnbd_dyncov_log_likelihood(r, alpha, s, beta, frequency, recency, T, period_start,
                               period_end, log_a, log_c, log_purchase, ops=NUMPY):
    """Per-customer log-likelihood of the Pareto/NBD with time-varying covariates.

    Parameters
    ----------
    r, alpha, s, beta : float
        The Pareto/NBD's parameters (at covariates 0).
    frequency, recency, T : array, shape (n,)
        Repeat purchases ``x``, time of the last purchase ``t_x`` and age ``T``, in
        the time unit of the periods.
    period_start, period_end : array, shape (n, K)
        Each period's bounds in the customer's time (0 at the first purchase); the
        periods must cover ``[0, T]``. Parts outside ``[0, T]`` are ignored.
    log_a, log_c : array, shape (n, K)
        ``gamma_p' z_ik`` and ``gamma_d' w_ik``: the log multipliers of the purchase
        and the dropout rate in each period.
    log_purchase : array, shape (n,)
        ``sum_j gamma_p' z(t_j)`` over the repeat purchases.
    ops : namespace
        NUMPY for values, DUAL for values and derivatives.

    Returns
    -------
    numpy.ndarray
        log L per customer (module docstring); finite for valid input.

    Examples
    --------
    Constant covariates reduce it to the static Pareto/NBD with ``alpha / a``:

    >>> from clvmodels.models.pareto_nbd import pnbd_log_likelihood
    >>> start = np.arange(-0.5, 40, 1.0)[None, :]
    >>> ll = pnbd_dyncov_log_likelihood(
    ...     0.5, 10.0, 0.6, 12.0, np.array([2.0]), np.array([30.4]), np.array([38.9]),
    ...     start, start + 1.0, np.full(start.shape, 0.3), np.zeros(start.shape),
    ...     np.array([0.6]))
    >>> static = pnbd_log_likelihood(0.5, 10.0 / np.exp(0.3), 0.6, 12.0, 2.0, 30.4, 38.9)
    >>> bool(np.isclose(ll[0], static, rtol=1e-12))
    True
    """
    x, t_x, T_ = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    odds, log_p_T = _log_death_odds(r, alpha, s, beta, x, t_x, T_, period_start, period_end,
                                    log_a, log_c, ops)
    return (ops.gammaln(r + x) - ops.gammaln(r) + r * ops.log(alpha) + s * ops.log(beta)
            + log_purchase + log_p_T + ops.where(t_x < T_, ops.softplus(odds), 0.0))


def pnbd_dyncov_probability_alive(r, alpha, s, beta, frequency, recency, T, period_start,
                                  period_end, log_a, log_c):
    """P(alive at T | data): the alive term's share of the likelihood (1 where
    ``t_x == T``). Arguments as for :func:`pnbd_dyncov_log_likelihood`."""
    x, t_x, T_ = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    odds, _ = _log_death_odds(r, alpha, s, beta, x, t_x, T_, period_start, period_end,
                              log_a, log_c, NUMPY)
    return np.where(t_x < T_, expit(-odds), 1.0)


def pnbd_dyncov_expected_purchases(t, r, alpha, s, beta, frequency, recency, T,
                                   period_start, period_end, log_a, log_c):
    """E[purchases in (T, T+t] | data] along the covariate path (module docstring).

    The periods must cover ``[0, T + t]``; arguments as for
    :func:`pnbd_dyncov_log_likelihood`. On a period's piece of length ``d`` that
    starts at ``B0 = beta + C``, ``int a ((beta + C(T)) / (beta + C(u)))^s du = (a/c)
    (B_T/B0)^s B0 l exprel((1-s) l)`` with ``l = log1p(c d / B0)``: exact at ``s = 1``
    too.
    """
    x, t_x, T_ = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    alive = pnbd_dyncov_probability_alive(r, alpha, s, beta, x, t_x, T_, period_start,
                                          period_end, log_a, log_c)
    a, c = np.exp(log_a), np.exp(log_c)
    past = _lengths(period_start, period_end, 0.0, T_[:, None])
    future = _lengths(period_start, period_end, T_[:, None], (T_ + t)[:, None])
    alpha_T = alpha + (a * past).sum(axis=-1)
    beta_T = beta + (c * past).sum(axis=-1)
    grown = c * future
    b0 = beta_T[:, None] + np.cumsum(grown, axis=-1) - grown
    growth = np.log1p(grown / b0)
    piece = (np.exp(log_a - log_c + s * (np.log(beta_T)[:, None] - np.log(b0))) * b0
             * growth * exprel((1.0 - s) * growth))
    return alive * (r + x) / alpha_T * piece.sum(axis=-1)


# --------------------------------------------------------------------------------------
# Data: a transaction log and a customer x period covariate table
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class DynamicCovariateData:
    """A transaction log and its time-varying covariates, checked and aligned.

    Made by :func:`dynamic_covariate_data`; the models take it whole.

    Attributes
    ----------
    summary : DataFrame
        One row per customer (indexed by customer id): ``frequency``, ``recency`` and
        ``T`` as :func:`clvmodels.rfm_summary` counts them (distinct purchase days).
    periods : DatetimeIndex
        Start of every period of the covariate table, in order; each lasts
        ``period_length``.
    period_start, period_end : ndarray, shape (n_customers, n_periods)
        The periods' bounds in each customer's time (``time_unit`` since the first
        purchase).
    covariates : dict of str to ndarray
        Each covariate column as ``(n_customers, n_periods)`` values; NaN where the
        table has no row (allowed outside the time a prediction needs).
    purchase_sums : dict of str to ndarray
        Each column summed over the customer's repeat purchases (the values of the
        periods they fall in).
    time_unit, period_length, observation_end
        The unit of the times, the periods' length and the end of observation.
    """

    summary: pd.DataFrame
    periods: pd.DatetimeIndex
    period_start: np.ndarray
    period_end: np.ndarray
    covariates: Mapping[str, np.ndarray]
    purchase_sums: Mapping[str, np.ndarray]
    time_unit: str
    period_length: pd.Timedelta
    observation_end: pd.Timestamp

    def __len__(self) -> int:
        return len(self.summary)

    def values(self, columns: Sequence[str]) -> np.ndarray:
        """The covariates ``columns`` as one ``(n_customers, n_periods, len(columns))``
        array."""
        missing = [c for c in columns if c not in self.covariates]
        if missing:
            raise DataValidationError(
                f"the covariate table has no column(s) {missing}; its covariates are "
                f"{list(self.covariates)}"
            )
        n, k = self.period_start.shape
        if not columns:
            return np.zeros((n, k, 0))
        return np.stack([self.covariates[c] for c in columns], axis=-1)

    def sums(self, columns: Sequence[str]) -> np.ndarray:
        """The repeat-purchase sums of ``columns``, ``(n_customers, len(columns))``."""
        self.values(columns)  # names checked
        if not columns:
            return np.zeros((len(self), 0))
        return np.stack([self.purchase_sums[c] for c in columns], axis=-1)

    def check_covered(self, horizon: float = 0.0) -> None:
        """Refuse missing covariates in ``[0, T + horizon]`` of any customer, naming
        the first (customer, period) pairs and how far the table would have to reach."""
        T = self.summary["T"].to_numpy(float)[:, None]
        needed = _lengths(self.period_start, self.period_end, 0.0, T + horizon) > 0
        reach = self.period_end[:, -1] >= T[:, 0] + horizon - 1e-9
        missing = np.zeros(needed.shape, dtype=bool)
        for values in self.covariates.values():
            missing |= np.isnan(values)
        holes = needed & missing
        if not reach.all():
            first = self.summary.index[~reach][:5]
            raise DataValidationError(
                f"the covariate table ends with the period starting "
                f"{self.periods[-1].date()}, but {int((~reach).sum())} customers need "
                f"covariates up to {horizon:g} {self.time_unit} after the observation end "
                f"({self.observation_end.date()}); first ids {list(first)}"
            )
        if holes.any():
            rows, cols = np.nonzero(holes)
            pairs = [(customer, str(self.periods[k].date()))
                     for customer, k in zip(self.summary.index[rows[:5]].tolist(), cols[:5],
                                            strict=True)]
            raise DataValidationError(
                f"the covariate table has no row for {len(rows)} (customer, period) pairs "
                f"that the customers' time needs (first purchase to observation end"
                f"{' plus the horizon' if horizon else ''}); first {pairs}"
            )


def dynamic_covariate_data(
    transactions: pd.DataFrame,
    covariates: pd.DataFrame,
    customer_col: str,
    date_col: str,
    *,
    period_col: str = "period",
    observation_end: Any = None,
    time_unit: str = "W",
) -> DynamicCovariateData:
    """Align a transaction log with a customer x period table of covariates.

    Parameters
    ----------
    transactions : DataFrame
        One row per purchase: ``customer_col`` and ``date_col``. Purchases on one day
        count once, as in :func:`clvmodels.rfm_summary`; purchases after
        ``observation_end`` are left out, and so are customers whose first purchase
        falls after it.
    covariates : DataFrame
        One row per customer and period: ``customer_col``, ``period_col`` (the start of
        the period) and numeric covariate columns (every other column). The periods
        are the table's distinct start dates, evenly spaced (CLVTools: weeks); each
        lasts until the next starts. Every customer needs a row for every period from
        the one of the first purchase to the one of ``observation_end``; later periods
        (for forecasts) may follow.
    customer_col, date_col, period_col : str
        Column names.
    observation_end : date-like, optional
        End of observation (default: the last purchase).
    time_unit : str, default "W"
        Unit of ``recency``, ``T`` and of the model's rates.

    Returns
    -------
    DynamicCovariateData

    Raises
    ------
    DataValidationError
        Naming the column and the first rows: missing columns, dates that do not
        parse, non-numeric or missing covariate values, repeated (customer, period)
        rows, unevenly spaced periods, customers without rows, or periods missing
        between a customer's first purchase and ``observation_end``.

    Examples
    --------
    >>> from clvmodels import load_apparel_dynamic
    >>> log, table = load_apparel_dynamic()
    >>> data = dynamic_covariate_data(log, table, "customer_id", "date",
    ...                               observation_end="2005-09-26")
    >>> len(data), data.period_start.shape, sorted(data.covariates)
    (250, (250, 81), ['channel', 'gender', 'marketing'])
    >>> data.summary.loc[10].tolist()  # frequency, recency, T in weeks
    [2.0, 13.142857142857142, 38.0]
    """
    check_time_unit(time_unit)
    unit = pd.Timedelta(hours=UNIT_HOURS[time_unit])
    log = _checked_log(transactions, customer_col, date_col)
    end = log[date_col].max() if observation_end is None else _timestamp(
        observation_end, "observation_end")
    log = log[log[date_col] <= end]
    if log.empty:
        raise DataValidationError(f"no purchases on or before observation_end {end.date()}")
    days = log.drop_duplicates([customer_col, date_col]).sort_values([customer_col, date_col])
    grouped = days.groupby(customer_col, sort=True)[date_col]
    first, last, count = grouped.min(), grouped.max(), grouped.size()
    summary = pd.DataFrame({
        "frequency": (count - 1).astype("int64"),
        "recency": (last - first) / unit,
        "T": (end - first) / unit,
    })
    summary.attrs.update(time_unit=time_unit, observation_end=str(end.date()))

    table, columns = _checked_table(covariates, customer_col, period_col)
    periods = pd.DatetimeIndex(np.sort(table[period_col].unique()))
    length = _period_length(periods, period_col)
    absent = ~summary.index.isin(table[customer_col].unique())
    if absent.any():
        raise DataValidationError(
            f"the covariate table has no rows for {int(absent.sum())} of {len(summary)} "
            f"customers; first ids {list(summary.index[absent][:5])}"
        )
    if periods[0] > first.min():
        late = first.index[first < periods[0]][:5]
        raise DataValidationError(
            f"the covariate table's first period starts {periods[0].date()}, after the "
            f"first purchase of customers {list(late)}"
        )
    rows = pd.MultiIndex.from_product([summary.index, periods])
    wide = table.set_index([customer_col, period_col])[list(columns)].reindex(rows)
    n, k = len(summary), len(periods)
    values = {c: wide[c].to_numpy(float).reshape(n, k) for c in columns}
    offset = (periods.to_numpy()[None, :] - first.to_numpy()[:, None]) / unit
    repeat = days[days[date_col] > days[customer_col].map(first)]
    row = summary.index.get_indexer(repeat[customer_col])
    col = periods.searchsorted(repeat[date_col].to_numpy(), side="right") - 1
    sums = {}
    for c in columns:
        picked = values[c][row, col]
        sums[c] = np.bincount(row, weights=np.nan_to_num(picked), minlength=n)
    data = DynamicCovariateData(
        summary=summary, periods=periods, period_start=offset, period_end=offset + length / unit,
        covariates=values, purchase_sums=sums, time_unit=time_unit, period_length=length,
        observation_end=end,
    )
    data.check_covered()
    return data


def _timestamp(value: Any, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise DataValidationError(f"{name}={value!r} is not a date") from err
    if pd.isna(stamp):
        raise DataValidationError(f"{name}={value!r} is not a date")
    return stamp.normalize()


def _dates(values: pd.Series, what: str) -> pd.Series:
    """Dates (days) of a column, or an error naming the first rows that do not parse."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        raise DataValidationError(
            f"{what}: {int(bad.sum())} rows are not dates; first rows "
            f"{list(values.index[bad][:5])} ({list(values[bad][:5])})"
        )
    return parsed.dt.normalize()


def _require_columns(frame: Any, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{what} has no column(s) {missing}; its columns are {list(frame.columns)}"
        )


def _checked_log(transactions: Any, customer_col: str, date_col: str) -> pd.DataFrame:
    _require_columns(transactions, (customer_col, date_col), "transactions")
    log = transactions[[customer_col, date_col]].copy()
    log[date_col] = _dates(log[date_col], f"transactions column '{date_col}'")
    return log


def _checked_table(
    covariates: Any, customer_col: str, period_col: str
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    _require_columns(covariates, (customer_col, period_col), "the covariate table")
    table = covariates.copy()
    table[period_col] = _dates(table[period_col], f"covariate column '{period_col}'")
    columns = tuple(str(c) for c in table.columns if c not in (customer_col, period_col))
    if not columns:
        raise DataValidationError(
            f"the covariate table has no covariate columns besides '{customer_col}' and "
            f"'{period_col}'"
        )
    for c in columns:
        column = table[c]
        if column.dtype == bool:
            table[c] = column.astype(float)
        elif not pd.api.types.is_numeric_dtype(column):
            numbers = pd.to_numeric(column, errors="coerce")
            bad = numbers.isna() & column.notna()
            raise DataValidationError(
                f"covariate column '{c}' is not numeric (dtype {column.dtype}); first rows "
                f"{list(column.index[bad][:5])} ({list(column[bad][:5])}); encode "
                "categories as 0/1 columns"
            )
        missing = table[c].isna() | ~np.isfinite(table[c].to_numpy(float))
        if missing.any():
            raise DataValidationError(
                f"covariate column '{c}' has {int(missing.sum())} missing or infinite "
                f"values; first rows {list(table.index[missing][:5])}"
            )
    repeated = table.duplicated([customer_col, period_col])
    if repeated.any():
        first = table.loc[repeated, [customer_col, period_col]].head(5)
        raise DataValidationError(
            f"the covariate table has {int(repeated.sum())} repeated (customer, period) "
            f"rows; first {[(i, str(p.date())) for i, p in first.itertuples(index=False)]}"
        )
    return table, columns


def _period_length(periods: pd.DatetimeIndex, period_col: str) -> pd.Timedelta:
    """The common spacing of the period starts, or an error naming the first gap."""
    if len(periods) < 2:
        raise DataValidationError(
            f"the covariate table has one period ({periods[0].date()}): it needs at least "
            f"two, evenly spaced, in '{period_col}'"
        )
    steps = np.diff(periods.to_numpy())
    uneven = np.flatnonzero(steps != steps[0])
    if uneven.size:
        k = int(uneven[0]) + 1
        raise DataValidationError(
            f"the periods in '{period_col}' must be evenly spaced: "
            f"{periods[k - 1].date()} to {periods[k].date()} is "
            f"{pd.Timedelta(steps[k - 1]).days} days, the first step "
            f"{pd.Timedelta(steps[0]).days} days (a period with no row for any customer?)"
        )
    return pd.Timedelta(steps[0])


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------
class ParetoNBDDynamicCovariates(BaseModel):
    """Pareto/NBD with time-varying covariates (BMN 2021; CLVTools ``pnbd`` with
    dynamic covariates), fitted by maximum likelihood.

    The model fits and predicts on :class:`DynamicCovariateData` (a transaction log and
    a customer x period covariate table, made by :func:`dynamic_covariate_data`), not
    on a summary frame: its likelihood needs the period of every repeat purchase.
    With covariates constant in time it is :class:`~clvmodels.ParetoNBD` with the same
    static covariates.

    Parameters
    ----------
    purchase_covariates : list of str, optional
        Covariate columns that scale the purchase rate, ``lambda exp(gamma_p' z_t)``
        (CLVTools' ``trans`` coefficients).
    dropout_covariates : list of str, optional
        Columns that scale the dropout rate, ``mu exp(gamma_d' w_t)`` (CLVTools'
        ``life`` coefficients).

    Attributes
    ----------
    params_ : Series
        ``r, alpha, s, beta`` (rates per ``time_unit``), then ``purchase:<column>``
        and ``dropout:<column>`` coefficients.
    covariance_ : DataFrame
        Asymptotic covariance on the optimiser's scale (log for ``r, alpha, s, beta``).
    log_likelihood_, aic_, bic_, n_obs_, time_unit_
        Fit statistics and the time unit.
    period_length_ : Timedelta or None
        The length of the periods of the data it was fitted on (None when made by
        :meth:`from_params`); predictions refuse data with other periods or another
        time unit.

    Notes
    -----
    Saved as JSON by :meth:`save` and read back by :func:`clvmodels.load`. Predictions
    take ``draws=`` (from :meth:`param_draws`) like the other models. CLV,
    segmentation, comparison and the pipeline work on summary frames and refuse this
    model (see ``summary_frames_unsupported``).

    Examples
    --------
    >>> from clvmodels import load_apparel_dynamic
    >>> from clvmodels.models.pareto_nbd_dyncov import dynamic_covariate_data
    >>> log, table = load_apparel_dynamic()
    >>> data = dynamic_covariate_data(log, table, "customer_id", "date",
    ...                               observation_end="2005-09-26")
    >>> both = ["marketing", "gender", "channel"]
    >>> model = ParetoNBDDynamicCovariates(purchase_covariates=both, dropout_covariates=both)
    >>> model = model.fit(data)
    >>> round(model.log_likelihood_, 1), round(float(model.params_["purchase:marketing"]), 2)
    (-2710.3, 0.39)
    >>> model.probability_alive(data).round(3).loc[[1, 10]].tolist()
    [0.317, 0.51]
    >>> model.expected_purchases(10, data).round(3).loc[[1, 10]].tolist()  # next 10 weeks
    [0.082, 0.408]
    """

    summary_frames_unsupported: ClassVar[str | None] = (
        "it fits and predicts on DynamicCovariateData (dynamic_covariate_data(...)), not on "
        "a summary frame; use its probability_alive(data, draws=...) and "
        "expected_purchases(t, data, draws=...) directly, or ParetoNBD with static "
        "covariates for CLV, segments and comparisons"
    )
    period_length_: pd.Timedelta | None = None

    def __init__(
        self,
        purchase_covariates: Sequence[str] | None = None,
        dropout_covariates: Sequence[str] | None = None,
    ) -> None:
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates

    # -- settings -------------------------------------------------------------------
    def _roles(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        out = []
        for name in ("purchase_covariates", "dropout_covariates"):
            value = getattr(self, name)
            if value is None:
                out.append(())
                continue
            if isinstance(value, str) or not all(isinstance(c, str) for c in value):
                raise ValueError(f"{name} must be a list of column names, got {value!r}")
            if len(set(value)) != len(value):
                raise ValueError(f"{name} names a column twice: {list(value)}")
            out.append(tuple(value))
        return out[0], out[1]

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        purchase, dropout = self._roles()
        return (*BASE_PARAMS, *(f"purchase:{c}" for c in purchase),
                *(f"dropout:{c}" for c in dropout))

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, float],
        *,
        purchase_covariates: Sequence[str] | None = None,
        dropout_covariates: Sequence[str] | None = None,
        time_unit: str | None = None,
    ) -> ParetoNBDDynamicCovariates:
        """A model at given parameter values (published estimates, say), without a
        covariance (so no ``param_draws``).

        Examples
        --------
        >>> model = ParetoNBDDynamicCovariates.from_params(
        ...     {"r": 1.0, "alpha": 3.0, "s": 1.0, "beta": 3.0, "purchase:marketing": 0.5},
        ...     purchase_covariates=["marketing"])
        >>> model.params_.to_dict()
        {'r': 1.0, 'alpha': 3.0, 's': 1.0, 'beta': 3.0, 'purchase:marketing': 0.5}
        """
        model = cls(purchase_covariates, dropout_covariates)
        names = model.param_names
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in names]
        if missing or extra:
            raise ValueError(f"params need exactly {list(names)}: missing {missing}, extra {extra}")
        values = np.array([float(params[n]) for n in names])
        if not np.all(np.isfinite(values)) or np.any(values[:4] <= 0):
            raise ValueError(f"params must be finite, r, alpha, s, beta positive: {dict(params)}")
        model._install(values, None, float("nan"), 0, time_unit)
        return model

    # -- fitting ----------------------------------------------------------------------
    def _arrays(self, data: DynamicCovariateData, horizon: float = 0.0) -> dict[str, Any]:
        if not isinstance(data, DynamicCovariateData):
            raise DataValidationError(
                f"{type(self).__name__} takes the DynamicCovariateData of "
                f"dynamic_covariate_data(transactions, covariates, ...), got "
                f"{type(data).__name__}"
            )
        purchase, dropout = self._roles()
        data.check_covered(horizon)
        frame = data.summary
        # periods no customer-time needs may hold NaN: they carry no weight, so zero them
        T = frame["T"].to_numpy(float)[:, None] + horizon
        unused = _lengths(data.period_start, data.period_end, 0.0, T) <= 0
        z_p = np.where(unused[..., None], 0.0, data.values(purchase))
        z_d = np.where(unused[..., None], 0.0, data.values(dropout))
        return {
            "frequency": frame["frequency"].to_numpy(float),
            "recency": frame["recency"].to_numpy(float),
            "T": frame["T"].to_numpy(float),
            "period_start": data.period_start,
            "period_end": data.period_end,
            "z_p": z_p, "z_d": z_d, "sums": data.sums(purchase),
        }

    @staticmethod
    def _log_likelihood_at(theta: Any, arrays: Mapping[str, Any], ops: Any) -> Any:
        """Per-customer log-likelihood at transformed parameters ``theta``."""
        r, alpha, s, beta = (ops.exp(theta[i]) for i in range(4))
        n_p = arrays["z_p"].shape[-1]
        gamma_p, gamma_d = theta[4:4 + n_p], theta[4 + n_p:]
        log_a = _linear(arrays["z_p"], gamma_p)
        log_c = _linear(arrays["z_d"], gamma_d)
        log_purchase = _linear(arrays["sums"], gamma_p)
        return pnbd_dyncov_log_likelihood(
            r, alpha, s, beta, arrays["frequency"], arrays["recency"], arrays["T"],
            arrays["period_start"], arrays["period_end"], log_a, log_c, log_purchase, ops=ops)

    def fit(self, data: DynamicCovariateData) -> ParetoNBDDynamicCovariates:
        """Maximum likelihood on ``data`` (L-BFGS-B on log ``r, alpha, s, beta`` and
        the coefficients, with exact forward-mode gradients), started from the
        Pareto/NBD without covariates; the covariance is the inverse observed
        information.

        Raises
        ------
        ConvergenceError
            When the optimiser fails or stops at a non-finite likelihood.
        """
        from clvmodels.models.pareto_nbd import ParetoNBD

        arrays = self._arrays(data)
        if not (arrays["frequency"] > 0).any():
            raise DataValidationError(
                f"{type(self).__name__} needs repeat purchases to learn from, but none of "
                f"the {len(data)} customers has any"
            )
        names = self.param_names
        start = np.zeros(len(names))
        base = ParetoNBD().fit(data.summary).params_
        start[:4] = np.log(base[list(BASE_PARAMS)].to_numpy(float))

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = value_and_grad(
                lambda t: -DUAL.sum(self._log_likelihood_at(t, arrays, DUAL)), theta)
            return value, grad

        result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                   options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-7})
        if not np.isfinite(result.fun) or not result.success:
            raise ConvergenceError(
                f"{type(self).__name__} did not converge ({result.message}); check that the "
                "covariates vary enough to identify their coefficients and are on a "
                "moderate scale (standardise large values)"
            )
        hessian = numerical_hessian(lambda t: objective(t)[1], result.x)
        try:
            covariance = np.linalg.inv(hessian)
        except np.linalg.LinAlgError:
            covariance = np.full_like(hessian, np.nan)
        if not np.all(np.linalg.eigvalsh(hessian) > 0):
            covariance = np.full_like(hessian, np.nan)
        values = np.concatenate([np.exp(result.x[:4]), result.x[4:]])
        self._install(values, covariance, -float(result.fun), len(data), data.time_unit)
        self.period_length_ = data.period_length
        return self

    def _install(self, values: np.ndarray, covariance: np.ndarray | None, log_likelihood: float,
                 n_obs: int, time_unit: str | None) -> None:
        names = self.param_names
        self._theta = np.concatenate([np.log(values[:4]), values[4:]])
        labels = pd.Index(list(names), dtype=object)  # as the other models label them
        self.params_ = pd.Series(values, index=labels, dtype=float, name="estimate")
        cov = np.full((len(names), len(names)), np.nan) if covariance is None else covariance
        self.covariance_ = pd.DataFrame(cov, index=labels, columns=labels)
        self.log_likelihood_ = log_likelihood
        self.n_obs_ = n_obs
        self.aic_ = 2 * len(names) - 2 * log_likelihood
        self.bic_ = len(names) * math.log(max(n_obs, 1)) - 2 * log_likelihood
        self.time_unit_ = time_unit
        self.period_length_ = None

    # -- saving ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the parameters, their covariance, the covariate names, the time unit
        and the period length as JSON (never the data); :func:`clvmodels.load` reads it.

        Examples
        --------
        >>> import tempfile
        >>> from clvmodels import load
        >>> model = ParetoNBDDynamicCovariates.from_params(
        ...     {"r": 1.0, "alpha": 3.0, "s": 1.0, "beta": 3.0, "dropout:gender": -0.2},
        ...     dropout_covariates=["gender"], time_unit="W")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     loaded = load(model.save(Path(folder) / "dyncov.json"))
        >>> loaded.params_.to_dict(), loaded.dropout_covariates, loaded.time_unit_
        ({'r': 1.0, 'alpha': 3.0, 's': 1.0, 'beta': 3.0, 'dropout:gender': -0.2}, ['gender'], 'W')
        """
        self._check_fitted()
        purchase, dropout = self._roles()
        cov = self.covariance_.to_numpy()
        payload = {
            "model": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "settings": {"purchase_covariates": list(purchase),
                         "dropout_covariates": list(dropout)},
            "params": {k: float(v) for k, v in self.params_.items()},
            "covariance": cov.tolist() if np.all(np.isfinite(cov)) else None,
            "log_likelihood": (self.log_likelihood_ if math.isfinite(self.log_likelihood_)
                               else None),
            "n_obs": int(self.n_obs_),
            "time_unit": self.time_unit_,
            "period_length": (None if self.period_length_ is None
                              else self.period_length_.isoformat()),
        }
        return write_model_file(path, json.dumps(payload, indent=2, allow_nan=False).encode())

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], source: str = "model file") -> Any:
        """A fitted model from a saved JSON payload; every field is checked first and
        anything that would not make a valid model raises
        :class:`~clvmodels.errors.ModelFileError` naming ``source`` and the field."""
        check_payload_keys(
            payload, required={"model", "format_version", "settings", "params"},
            optional={"covariance", "log_likelihood", "n_obs", "time_unit", "period_length"},
            source=source,
        )
        if payload["model"] != cls.__name__:
            raise ModelFileError(
                f"{source}: field 'model' is {payload['model']!r}, not {cls.__name__!r}")
        version = payload["format_version"]
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise ModelFileError(f"{source}: field 'format_version' is {version!r}; this "
                                 f"version of clvmodels reads {FORMAT_VERSION}")
        settings = payload["settings"]
        roles = ("purchase_covariates", "dropout_covariates")
        if not isinstance(settings, Mapping) or set(settings) != set(roles):
            raise ModelFileError(f"{source}: field 'settings' must hold exactly {list(roles)}")
        model = cls(*(settings[k] for k in roles))
        try:
            model._roles()
        except (TypeError, ValueError) as err:
            raise ModelFileError(f"{source}: field 'settings' is invalid ({err})") from err
        names = list(model.param_names)
        params = payload["params"]
        if not isinstance(params, Mapping) or set(params) != set(names):
            raise ModelFileError(f"{source}: field 'params' must hold exactly {names}")
        values = np.array([_file_number(params[k], f"params.{k}", source) for k in names])
        bad = [k for k, v in zip(BASE_PARAMS, values, strict=False) if not v > 0]
        if bad:
            raise ModelFileError(f"{source}: field(s) {[f'params.{k}' for k in bad]} must be "
                                 "positive")
        # no data makes r, alpha, s, beta beyond e^+-60, and predictions would overflow
        wild = [k for k, v in zip(BASE_PARAMS, values, strict=False) if abs(math.log(v)) > 60]
        if wild:
            raise ModelFileError(f"{source}: field(s) {[f'params.{k}' for k in wild]} lie "
                                 "outside e^-60 .. e^60")
        covariance = _file_covariance(payload.get("covariance"), len(names), source)
        log_likelihood = payload.get("log_likelihood")
        log_likelihood = (float("nan") if log_likelihood is None
                          else _file_number(log_likelihood, "log_likelihood", source))
        n_obs = payload.get("n_obs", 0)
        if isinstance(n_obs, bool) or not isinstance(n_obs, int) or n_obs < 0:
            raise ModelFileError(f"{source}: field 'n_obs' must be an integer >= 0, got {n_obs!r}")
        time_unit = payload.get("time_unit")
        if time_unit is not None and (not isinstance(time_unit, str)
                                      or time_unit not in TIME_UNIT_DAYS):
            raise ModelFileError(f"{source}: field 'time_unit' is {time_unit!r}; expected one "
                                 f"of {list(TIME_UNIT_DAYS)} or null")
        length = payload.get("period_length")
        if length is not None:
            length = _file_duration(length, source)
        model._install(values, covariance, log_likelihood, n_obs, time_unit)
        model.period_length_ = length
        return model

    # -- contract -------------------------------------------------------------------
    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        """Estimates, standard errors and ``interval`` confidence intervals (for
        ``r, alpha, s, beta`` symmetric on the log scale, so they stay positive)."""
        self._check_fitted()
        if not 0 < interval < 1:
            raise ValueError(f"interval must lie strictly between 0 and 1, got {interval!r}")
        z = stats.norm.ppf(0.5 + interval / 2)
        se = np.sqrt(np.diag(self.covariance_.to_numpy()))
        est = self.params_.to_numpy()
        positive = np.arange(len(est)) < 4
        pct = f"{100 * interval:g}%"
        table = pd.DataFrame({
            "estimate": est,
            "se": np.where(positive, est * se, se),
            f"lower {pct}": np.where(positive, est * np.exp(-z * se), est - z * se),
            f"upper {pct}": np.where(positive, est * np.exp(z * se), est + z * se),
        }, index=self.params_.index)
        table.attrs.update(log_likelihood=self.log_likelihood_, aic=self.aic_, bic=self.bic_,
                           n_obs=self.n_obs_)
        return table

    def param_draws(self, n: int, random_state: Any = None) -> pd.DataFrame:
        """Draws from the estimator's asymptotic normal distribution on the optimiser's
        scale, mapped back."""
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        cov = self.covariance_.to_numpy()
        if not np.all(np.isfinite(cov)):
            raise ValueError(f"{type(self).__name__} has no finite covariance, so no draws")
        rng = np.random.default_rng(random_state)
        theta = rng.multivariate_normal(self._theta, cov, size=int(n), method="eigh")
        # From a contiguous copy, as MaximumLikelihoodModel.param_draws does (NumPy 2.0's
        # np.exp of a strided array could differ in the last bit from one call to the next).
        theta[:, :4] = np.exp(np.ascontiguousarray(theta[:, :4]))
        return pd.DataFrame(theta, columns=list(self.param_names))

    def log_likelihood(self, data: DynamicCovariateData) -> pd.Series:
        """Each customer's log-likelihood at the fitted parameters."""
        self._check_fitted()
        values = self._log_likelihood_at(self._theta, self._arrays(data), NUMPY)
        return pd.Series(values, index=data.summary.index, name="log_likelihood")

    def _draw_thetas(self, draws: pd.DataFrame | None) -> np.ndarray:
        """The parameters on the optimiser's scale: one row, or one per draw."""
        self._check_fitted()
        if draws is None:
            return self._theta[None, :]
        names = list(self.param_names)
        if not isinstance(draws, pd.DataFrame):
            raise ValueError(f"draws must be the DataFrame of param_draws(n), got "
                             f"{type(draws).__name__}")
        missing = [n for n in names if n not in draws.columns]
        if missing or draws.empty:
            raise ValueError(f"draws must have at least one row and the columns {names} (as "
                             f"param_draws(n) returns them); missing {missing}")
        values = draws[names].to_numpy(dtype=float)
        base = values[:, :4]
        if not np.isfinite(values).all() or not (base > 0).all():
            raise ValueError("draws must be finite, with r, alpha, s, beta positive")
        return np.concatenate([np.log(base), values[:, 4:]], axis=1)

    def _predict(self, function: Any, data: DynamicCovariateData, horizon: float,
                 draws: pd.DataFrame | None, name: str, *head: float) -> Any:
        """``function(*head, r, alpha, s, beta, ...)`` at the estimates (a Series) or
        at each draw (an ``(n_draws, n_customers)`` array, one pass per draw: the
        customers' period arrays are as large as the draws would make them)."""
        thetas = self._draw_thetas(draws)
        arrays = self._arrays(data, horizon)
        self._check_units(data)
        n_p = arrays["z_p"].shape[-1]
        rows = []
        for theta in thetas:
            log_a = _linear(arrays["z_p"], theta[4:4 + n_p])
            log_c = _linear(arrays["z_d"], theta[4 + n_p:])
            rows.append(function(*head, *np.exp(theta[:4]), arrays["frequency"],
                                 arrays["recency"], arrays["T"], arrays["period_start"],
                                 arrays["period_end"], log_a, log_c))
        if draws is None:
            return pd.Series(rows[0], index=data.summary.index, name=name)
        return np.stack(rows)

    def _check_units(self, data: DynamicCovariateData) -> None:
        """Refuse data in another time unit or with other periods than the fit's."""
        if self.time_unit_ is not None and data.time_unit != self.time_unit_:
            raise DataValidationError(
                f"{type(self).__name__} was fitted with time_unit '{self.time_unit_}' (its "
                f"rates are per {self.time_unit_}), but the data counts time in "
                f"'{data.time_unit}'; build it with time_unit='{self.time_unit_}'"
            )
        if self.period_length_ is not None and data.period_length != self.period_length_:
            raise DataValidationError(
                f"{type(self).__name__} was fitted on periods of {self.period_length_}, but "
                f"the data's covariate table has periods of {data.period_length}"
            )

    def probability_alive(self, data: DynamicCovariateData, *,
                          draws: pd.DataFrame | None = None) -> pd.Series | np.ndarray:
        """P(alive at the observation end | each customer's data): a Series, or with
        ``draws`` (from :meth:`param_draws`) an ``(n_draws, n_customers)`` array."""
        return self._predict(pnbd_dyncov_probability_alive, data, 0.0, draws,
                             "probability_alive")

    def expected_purchases(self, t: float, data: DynamicCovariateData, *,
                           draws: pd.DataFrame | None = None) -> pd.Series | np.ndarray:
        """Expected purchases in the next ``t`` (``time_unit``) after the observation
        end, along each customer's covariate path (the table must cover it): a Series,
        or with ``draws`` (from :meth:`param_draws`) an ``(n_draws, n_customers)`` array.
        """
        if not (isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
                and t >= 0):
            raise ValueError(f"t must be a finite number >= 0, got {t!r}")
        return self._predict(pnbd_dyncov_expected_purchases, data, float(t), draws,
                             "expected_purchases", float(t))


def _linear(values: np.ndarray, coefficients: Any) -> Any:
    """``values @ coefficients`` over the last axis, for plain or Dual coefficients."""
    total: Any = np.zeros(values.shape[:-1])
    for j in range(values.shape[-1]):
        total = total + coefficients[j] * values[..., j]
    return total


def _file_number(value: Any, field: str, source: str) -> float:
    """A finite number read from a model file, or an error naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelFileError(f"{source}: field '{field}' must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ModelFileError(f"{source}: field '{field}' must be finite, got {value!r}")
    return float(value)


def _file_covariance(value: Any, k: int, source: str) -> np.ndarray | None:
    """The saved covariance: None, or a symmetric positive definite k x k matrix."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == k
            and all(isinstance(row, list) and len(row) == k for row in value)):
        raise ModelFileError(f"{source}: field 'covariance' must be a {k} x {k} list of numbers")
    matrix = np.array([[_file_number(v, "covariance", source) for v in row] for row in value])
    # a fit's inverse Hessian is symmetric to rounding: 1e-8 of its largest entry
    if np.abs(matrix - matrix.T).max() > 1e-8 * np.abs(matrix).max():
        raise ModelFileError(f"{source}: field 'covariance' is not symmetric")
    if np.linalg.eigvalsh((matrix + matrix.T) / 2).min() <= 0:
        raise ModelFileError(f"{source}: field 'covariance' is not positive definite")
    return matrix


def _file_duration(value: Any, source: str) -> pd.Timedelta:
    """A positive period length saved as an ISO 8601 duration ("P7DT0H0M0S")."""
    try:
        length = pd.Timedelta(value) if isinstance(value, str) else None
    except ValueError:
        length = None
    if length is None or pd.isna(length) or length <= pd.Timedelta(0):
        raise ModelFileError(f"{source}: field 'period_length' must be a positive ISO 8601 "
                             f"duration such as 'P7DT0H0M0S', got {value!r}")
    return length
