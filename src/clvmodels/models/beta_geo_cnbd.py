"""BG/CNBD-k and MBG/CNBD-k: beta-geometric models with regular (Erlang-k) purchase timing.

Reutterer, T., Platzer, M. and Schröder, N. (2021), "Leveraging purchase regularity for
predicting customer behavior the easy way", *International Journal of Research in
Marketing* 38(1), 194-215 (RPS 2021 below); implemented in R's BTYDplus
(``bgcnbd.*`` and ``mbgcnbd.*``).

The BG/NBD (Fader, Hardie & Lee 2005) and the MBG/NBD (Batislam, Denizel &
Filiztekin 2007) with Erlang-k instead of exponential inter-purchase times: while
alive, the times between a customer's purchases are ``Gamma(k, rate lambda)`` with
``lambda ~ Gamma(r, alpha)`` across customers -- every ``k``-th event of a Poisson
process of rate ``lambda`` is a purchase, so purchases are the more regular the
larger ``k``. Dropout is as in the BG/NBD (after each repeat purchase, probability
``p ~ Beta(a, b)``) or, with ``modified=True``, as in the MBG/NBD (also right after
the first purchase). ``k = 1`` is the BG/NBD or the MBG/NBD exactly.

Data. The likelihood (RPS 2021; BTYDplus ``xbgcnbd.LL``) needs, besides ``frequency``,
``recency`` and ``T``, the sum of the logarithms of each customer's inter-purchase times (BTYDplus's
``litt``), ``log_interpurchase_sum``: ``rfm_summary(..., regularity=True)`` (and
``calibration_holdout_split``) add it in every engine, :func:`add_log_interpurchase_sum`
adds it to a summary made without it, and :func:`log_interpurchase_sum` computes it
from a log on its own (the reference the summary column equals bit for bit). Its term
``(k-1) litt - x log((k-1)!)`` does not involve ``r, alpha, a, b``: it only tells the
values of ``k`` apart, and predictions never read it.

Predictions. P(alive) and the probability mass function are closed forms (RPS 2021;
BTYDplus ``xbgcnbd.PAlive`` and ``xbgcnbd.pmf``). For the expected purchases of a
customer with a history, BTYDplus uses an approximation for ``k > 1`` (the BG/NBD
expression with ``alpha`` replaced by ``k alpha``, then rescaled so that the cohort
total matches the unconditional expectation); here it is computed exactly: given alive,
the number ``j < k`` of Poisson events since the last purchase has posterior weights
``(r+kx)_j / j! u^j`` (``u = (T - t_x)/(alpha + T)``), ``lambda | j ~ Gamma(r+kx+j,
alpha+T)`` and ``p ~ Beta(a, b+x+m)``, and the expected purchases in ``t`` are ``sum_j
w_j sum_n NB(n; r+kx+j) C(floor((n+j)/k))`` with ``C(M) = sum_{i<=M} E[(1-p)^(i-1)]``, a
sum of positive terms evaluated to 1e-15 relative. Given alive the future depends on the
time since the last purchase, so ``alive_future_columns`` is None for ``k > 1``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln, polygamma

from clvmodels.data import add_summary_columns, column_arrays, validate_summary
from clvmodels.errors import ConvergenceError, DataValidationError, ModelFileError
from clvmodels.models._beta_geo_family import (
    BetaGeoFamilyFit,
    purchase_times,
    simulate_family,
    xbg_log_likelihood,
    xbg_neg_loglik_grad,
    xbg_probability_alive,
    xbg_probability_of_purchases,
)
from clvmodels.models._shared import alive_probabilities, n_draws
from clvmodels.models.base import SimulatedPurchases
from clvmodels.models.beta_geo import (
    BetaGeoPredictions,
    bgnbd_expected_purchases,
    bgnbd_expected_purchases_new_customer,
    bgnbd_probability_of_purchases,
)
from clvmodels.models.mle import MaximumLikelihoodModel, checked_weights
from clvmodels.models.modified_beta_geo import (
    mbgnbd_expected_purchases,
    mbgnbd_expected_purchases_new_customer,
)
from clvmodels.models.ops import NUMPY
from clvmodels.units import check_time_unit, cutoff, durations, freq_base, period_ordinals

__all__ = [
    "LITT_COLUMN",
    "BetaGeoCNBD",
    "add_log_interpurchase_sum",
    "bgcnbd_expected_purchases",
    "bgcnbd_expected_purchases_new_customer",
    "bgcnbd_log_likelihood",
    "bgcnbd_neg_loglik_grad",
    "bgcnbd_probability_alive",
    "bgcnbd_probability_of_purchases",
    "log_interpurchase_sum",
    "simulate_bgcnbd",
]

#: Summary column holding the sum of log inter-purchase times (BTYDplus's ``litt``).
LITT_COLUMN = "log_interpurchase_sum"
_HISTORY = ("frequency", "recency", "T")


# --------------------------------------------------------------------------------------
# The regularity statistic from a transaction log
# --------------------------------------------------------------------------------------
def log_interpurchase_sum(
    transactions: Any,
    customer_col: str,
    date_col: str,
    *,
    observation_end: Any = None,
    freq: str = "D",
    time_unit: str = "W",
    date_format: str | None = None,
) -> pd.Series:
    """Sum of the logarithms of each customer's inter-purchase times (BTYDplus ``litt``).

    With the conventions of :func:`clvmodels.rfm_summary` (same arguments): purchases
    in one ``freq`` period are one purchase, times run between period starts in
    ``time_unit``, and ``observation_end`` includes its whole period. A customer with
    purchase periods at times ``0 = t_0 < t_1 < ... < t_x`` gets
    ``sum_i log(t_i - t_{i-1})`` (0 without repeat purchases), as BTYDplus's
    ``elog2cbs`` computes it from purchase dates.

    Returns
    -------
    Series
        ``log_interpurchase_sum`` indexed by customer id (sorted), one entry per
        customer of the matching ``rfm_summary``.

    Examples
    --------
    >>> from clvmodels import load_cdnow
    >>> litt = log_interpurchase_sum(load_cdnow(), "customer_id", "date",
    ...                              observation_end="1997-09-30")
    >>> round(float(litt.loc[1]), 4)  # gaps of 17 and 196 days, in weeks
    4.2195
    """
    frame = _as_pandas(transactions)
    check_time_unit(time_unit)
    freq_base(freq)
    missing = [c for c in (customer_col, date_col) if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"log_interpurchase_sum: missing column(s) {missing}; the data has columns "
            f"{list(map(str, frame.columns))}"
        )
    ids = frame[customer_col]
    if ids.isna().any():
        raise DataValidationError(
            f"log_interpurchase_sum: column '{customer_col}' has {int(ids.isna().sum())} "
            "missing customer ids"
        )
    dates = _parse_dates(frame[date_col], date_format)
    periods = period_ordinals(dates, freq)
    if observation_end is not None:
        _, end_period = cutoff(observation_end, "observation_end", date_format, freq)
        keep = periods <= end_period
        ids, periods = ids[keep], periods[keep]
    try:
        codes, customers = pd.factorize(ids, sort=True)
    except TypeError:  # unorderable ids of mixed types
        codes, customers = pd.factorize(ids, sort=False)
    pairs = pd.DataFrame({"c": codes, "p": periods}).drop_duplicates().sort_values(["c", "p"])
    c, p = pairs["c"].to_numpy(), pairs["p"].to_numpy(np.int64)
    repeat = np.flatnonzero(c[1:] == c[:-1]) + 1
    gaps = durations(p[repeat - 1], p[repeat], freq, time_unit)
    litt = np.bincount(c[repeat], weights=np.log(gaps), minlength=len(customers))
    present = np.bincount(c, minlength=len(customers)) > 0
    index = pd.Index(customers, name=customer_col)[present]
    return pd.Series(litt[present], index=index, name=LITT_COLUMN)


def add_log_interpurchase_sum(
    summary: pd.DataFrame, transactions: Any, *, date_format: str | None = None
) -> pd.DataFrame:
    """``summary`` with a ``log_interpurchase_sum`` column from the same transaction log.

    For a summary made without ``regularity=True`` (``rfm_summary`` and
    ``calibration_holdout_split`` add the column themselves with it). The settings come
    from the summary's ``attrs`` (customer and date columns, ``freq``, ``time_unit``
    and ``observation_end`` or ``calibration_end``), and the column is that of
    ``rfm_summary(..., regularity=True)`` on ``transactions`` (a frame, or files read
    by DuckDB), so it follows exactly the conventions of the summary. Each customer's
    number of inter-purchase times is checked against its ``frequency``.

    Examples
    --------
    >>> from clvmodels import load_cdnow, rfm_summary
    >>> log = load_cdnow()
    >>> summary = rfm_summary(log, "customer_id", "date", observation_end="1997-09-30")
    >>> summary = add_log_interpurchase_sum(summary, log)
    >>> summary.columns.tolist()
    ['frequency', 'recency', 'T', 'log_interpurchase_sum']
    """
    out = add_summary_columns(summary, transactions, regularity=True, date_format=date_format)
    _check_litt(out, "add_log_interpurchase_sum")
    return out


def _as_pandas(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):
        return data.to_pandas()
    if hasattr(data, "collect"):
        return data.collect().to_pandas()
    raise TypeError(f"expected a pandas or Polars DataFrame, got {type(data).__name__}")


def _parse_dates(column: pd.Series, date_format: str | None) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column.dtype) and date_format is not None:
        column = column.astype("int64").astype(str)
    try:
        parsed = pd.to_datetime(column, format=date_format)
    except (ValueError, TypeError) as err:
        raise DataValidationError(
            f"log_interpurchase_sum: dates could not be read ({err})"
        ) from err
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)  # purchase days are local days
    if parsed.isna().any():
        raise DataValidationError(
            f"log_interpurchase_sum: {int(parsed.isna().sum())} rows have no date"
        )
    return parsed.to_numpy().astype("datetime64[us]")


def _check_litt(data: pd.DataFrame, context: str) -> None:
    """``log_interpurchase_sum`` must be finite, 0 without repeat purchases, and at most
    ``x log(t_x / x)`` (the mean of the logs is at most the log of the mean gap)."""
    if LITT_COLUMN not in data.columns:
        raise DataValidationError(
            f"{context}: the summary has no '{LITT_COLUMN}' column, which the (M)BG/CNBD-k "
            "likelihood needs to estimate k (or to fit a given k > 1). Summarise with "
            "rfm_summary(..., regularity=True), or add it with "
            "clvmodels.models.beta_geo_cnbd.add_log_interpurchase_sum(summary, transactions)."
        )
    litt = pd.to_numeric(data[LITT_COLUMN], errors="coerce").to_numpy(dtype=float)
    x = data["frequency"].to_numpy(dtype=float)
    t_x = data["recency"].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        bound = np.where(x > 0, x * np.log(t_x / np.maximum(x, 1.0)), 0.0)
        bad = ~np.isfinite(litt) | ((x == 0) & (np.abs(litt) > 1e-9)) | (
            (x > 0) & ~(litt <= bound + 1e-9 * (1.0 + np.abs(bound)))
        )
    if bad.any():
        ids = list(data.index[bad][:5])
        raise DataValidationError(
            f"{context}: column '{LITT_COLUMN}' is invalid for {int(bad.sum())} of {len(data)} "
            f"customers (first ids {ids}): it must be finite, 0 without repeat purchases and "
            "at most frequency * log(recency / frequency) -- is it in the summary's time unit?"
        )


# --------------------------------------------------------------------------------------
# Likelihood
# --------------------------------------------------------------------------------------
def bgcnbd_log_likelihood(
    r, alpha, a, b, frequency, recency, T, log_interpurchase_sum=None, *, k, modified=False,
    ops=NUMPY,
):
    """Per-customer (M)BG/CNBD-k log-likelihood (RPS 2021, appendix), in log space.

    ``(k-1) litt - x log((k-1)!) + log[B(a, b+x+m)/B(a, b)] + log[Gamma(r+kx)
    alpha^r / Gamma(r)] - (r+kx) log(alpha+T) + log(S2 + [m or x>0] S1)`` with
    ``S1 = a/(b+x-1+m) ((alpha+T)/(alpha+t_x))^(r+kx)``, ``S2 = sum_{j<k} (r+kx)_j/j!
    ((T-t_x)/(alpha+T))^j`` and ``m = 1`` for the MBG variant (BTYDplus
    ``xbgcnbd.LL``). ``k = 1`` is the BG/NBD (FHL 2005 eq. 6) or MBG/NBD likelihood.

    Parameters
    ----------
    r, alpha, a, b : float or array
        Parameters, broadcastable against the customer arrays.
    frequency, recency, T : array
        The summary columns.
    log_interpurchase_sum : array, optional
        ``litt``; None leaves out the regularity term ``(k-1) litt - x log((k-1)!)``,
        which does not involve ``r, alpha, a, b`` (it is 0 for ``k = 1``).
    k : int
        Regularity (Erlang shape).
    modified : bool
        MBG variant (dropout also at time 0).
    ops : namespace
        :mod:`clvmodels.models.ops` namespace.

    Examples
    --------
    The check values of BTYDplus (``src/slice-sampling.cpp``, unit test of
    ``xbgcnbd_ll_cpp``):

    >>> ll = bgcnbd_log_likelihood(0.5, 2, 0.3, 0.6, [3, 4], 12, 14, 3, k=3)
    >>> ll.round(5).tolist()
    [-10.425, -12.22396]
    """
    kernel = xbg_log_likelihood(
        r, alpha, a, b, frequency, recency, T, k=k, dropout_at_zero=modified, ops=ops
    )
    if k == 1 or log_interpurchase_sum is None:
        return kernel
    x = np.asarray(frequency, dtype=float)
    return kernel + ((k - 1) * np.asarray(log_interpurchase_sum, dtype=float) - x * gammaln(k))


def bgcnbd_neg_loglik_grad(
    log_params: np.ndarray,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
    groups: tuple[np.ndarray, ...] | None = None,
    *,
    k: int,
    modified: bool = False,
) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood (without the regularity term) and its analytic
    gradient in log-parameters; ``groups`` is ``frequency_groups`` of the data."""
    return xbg_neg_loglik_grad(
        log_params, frequency, recency, T, weights, groups, k=k, dropout_at_zero=modified
    )


# --------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------
def bgcnbd_probability_alive(r, alpha, a, b, frequency, recency, T, *, k, modified=False):
    """P(alive | x, t_x, T) = 1 / (1 + S1 / S2) (RPS 2021; BTYDplus
    ``xbgcnbd.PAlive``); 1 for BG customers without repeat purchases.

    Examples
    --------
    >>> p = bgcnbd_probability_alive(0.85, 1.45, 0.79, 2.42, 3, 12, 32, k=3)
    >>> round(float(p), 4)
    0.0181
    """
    return xbg_probability_alive(
        r, alpha, a, b, frequency, recency, T, k=k, dropout_at_zero=modified
    )


def bgcnbd_expected_purchases(t, r, alpha, a, b, frequency, recency, T, *, k, modified=False):
    """E[Y(t) | x, t_x, T]: expected purchases in the next ``t``, computed exactly.

    ``k = 1``: the BG/NBD (FHL 2005 eq. 10) or MBG/NBD expression. ``k > 1``:
    P(alive) times the mixture over the phase ``j`` of the Erlang clock described in
    the module docstring (BTYDplus approximates this for ``k > 1``).

    Examples
    --------
    >>> e = bgcnbd_expected_purchases(32, 0.85, 1.45, 0.79, 2.42, 3, 30, 32, k=3)
    >>> round(float(e), 3)
    2.267
    """
    if k == 1:
        expected = mbgnbd_expected_purchases if modified else bgnbd_expected_purchases
        return expected(t, r, alpha, a, b, frequency, recency, T)
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T = np.asarray(T, dtype=float)
    p_alive = bgcnbd_probability_alive(r, alpha, a, b, x, t_x, T, k=k, modified=modified)
    alive = _alive_purchases(t, r + k * x, alpha + T, T - t_x, a, b + x + float(modified), k)
    return alive * p_alive


def bgcnbd_expected_purchases_new_customer(t, r, alpha, a, b, *, k, modified=False):
    """E[X(t)] for a customer just acquired (RPS 2021; BTYDplus ``xbgcnbd.Expectation``
    sums ``i P(X(t) = i)`` instead).

    Examples
    --------
    >>> round(float(bgcnbd_expected_purchases_new_customer(52, 0.85, 1.45, 0.79, 2.42,
    ...                                                     k=3, modified=True)), 4)
    3.4526
    """
    if k == 1:
        expected = (
            mbgnbd_expected_purchases_new_customer if modified
            else bgnbd_expected_purchases_new_customer
        )
        return expected(t, r, alpha, a, b)
    zero = np.zeros(np.shape(t))
    return bgcnbd_expected_purchases(t, r, alpha, a, b, zero, zero, zero, k=k, modified=modified)


def bgcnbd_probability_of_purchases(n, t, r, alpha, a, b, *, k, modified=False):
    """P(X(t) = n) for a new customer (RPS 2021; BTYDplus ``xbgcnbd.pmf``).

    Examples
    --------
    The check values of BTYDplus (``src/slice-sampling.cpp``, ``xbgcnbd_pmf_cpp``):

    >>> round(float(bgcnbd_probability_of_purchases(2, 10, 0.5, 2, 0.3, 0.6, k=3)), 5)
    0.05669
    >>> round(float(bgcnbd_probability_of_purchases(2, 10, 0.5, 2, 0.3, 0.6, k=3,
    ...                                              modified=True)), 5)
    0.04548
    """
    if k == 1 and not modified:
        return bgnbd_probability_of_purchases(n, t, r, alpha, a, b)
    return xbg_probability_of_purchases(n, t, r, alpha, a, b, k=k, dropout_at_zero=modified)


def _phase_weights(s: np.ndarray, u: np.ndarray, k: int) -> list[np.ndarray]:
    """Posterior weights of the phase ``j < k`` given alive: ``(s)_j / j! u^j``, normalised."""
    terms = [np.ones_like(s)]
    for j in range(1, k):
        terms.append(terms[-1] * (s + (j - 1)) * u / j)
    total = sum(terms)
    return [term / total for term in terms]


def _alive_purchases(t, s, h, gap, a, b_post, k):
    """Expected purchases in ``t`` of an Erlang-k customer known to be alive.

    ``s, h``: gamma posterior of ``lambda`` before the phase; ``gap = T - t_x``;
    ``p ~ Beta(a, b_post)``. Sums over the phase ``j`` (weights
    :func:`_phase_weights`) of ``E_j = sum_n NB(n; s+j, h, t) C(floor((n+j)/k))``.
    """
    t, s, h, gap, a, b_post = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (t, s, h, gap, a, b_post))
    )
    shape = t.shape
    t, s, h, gap, a, b_post = (v.ravel() for v in (t, s, h, gap, a, b_post))
    weights = _phase_weights(s, gap / h, k)
    out = np.zeros(t.size)
    live = np.flatnonzero(t > 0)
    if live.size:
        phases = np.repeat(np.arange(k), live.size)
        rows = np.tile(live, k)
        sums = _phase_sums(
            t[rows], s[rows] + phases, h[rows], phases, a[rows], b_post[rows], k
        ).reshape(k, live.size)
        out[live] = sum(weights[j][live] * sums[j] for j in range(k))
    return out.reshape(shape)


# Terms of the NBD sum below this fraction of the running total are negligible.
_SERIES_TOLERANCE = 1e-15
# The sum starts this many standard deviations below the NBD mean (or at its first
# non-zero term): the mass below is below exp(-200) of the total.
_SERIES_START_SD = 20.0
_RESCALE = 1e250


def _phase_sums(t, s, h, phase, a, b_post, k):
    """``E_j = sum_{n >= k-j} NB(n; s, h, t) C(floor((n+j)/k))`` for each entry.

    ``NB`` is the gamma-Poisson count of events in ``t`` (shape ``s``, rate ``h``);
    ``C(M) = sum_{i=1}^M c_i`` with ``c_1 = 1``, ``c_{i+1} = c_i (b'+i-1)/(a+b'+i-1)``
    (``c_i = E[(1-p)^(i-1)]``, ``p ~ Beta(a, b')``). Every term is positive. The sum
    runs upwards a level ``M`` (``k`` consecutive ``n``) at a time from its first term
    (or from 20 standard deviations below the mean), with the NBD ratios, rescaled
    against overflow, and stops once a geometric bound on the remaining terms falls
    below 1e-15 of the total.
    """
    q = t / (h + t)
    mean = s * t / h
    sd = np.sqrt(mean * (1.0 + t / h))
    level = np.maximum(1, np.floor((mean - _SERIES_START_SD * sd + phase) / k)).astype(np.int64)
    start = level * k - phase  # first n of the level
    total = np.ones_like(t)  # C(level)
    c_next = b_post / (a + b_post)  # c_{level+1}
    skip = level > 1
    if skip.any():
        total[skip], c_next[skip] = _partial_sums(level[skip], a[skip], b_post[skip])
    log_start = (
        gammaln(s + start) - gammaln(s) - gammaln(start + 1.0)
        - s * np.log1p(t / h) + start * (np.log(t) - np.log(h + t))
    )
    term = np.ones_like(t)  # NB(n) / exp(log_start)
    acc = np.zeros_like(t)
    n = start.astype(float)
    level = level.astype(float)
    result = np.zeros_like(t)
    active = np.arange(t.size)
    state = [t, s, phase, a, b_post, q, log_start, term, acc, n, level, total, c_next]
    while active.size:
        t, s, phase, a, b_post, q, log_start, term, acc, n, level, total, c_next = state
        level_sum = np.zeros_like(term)
        for _ in range(k):
            level_sum += term
            ratio = (s + n) / (n + 1.0) * q
            term = term * ratio
            n = n + 1.0
        acc = acc + level_sum * total
        total = total + c_next
        level = level + 1.0
        c_next = c_next * (b_post + level - 1.0) / (a + b_post + level - 1.0)
        # the NBD ratios fall towards q from above when s >= 1, rise towards it otherwise
        rho = np.where(s >= 1.0, ratio, q)
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = term * (total / (1.0 - rho) + c_next * rho / (k * (1.0 - rho) ** 2))
        done = (rho < 1.0) & (bound <= _SERIES_TOLERANCE * acc)
        big = term > _RESCALE
        if big.any():
            term = np.where(big, term / _RESCALE, term)
            acc = np.where(big, acc / _RESCALE, acc)
            log_start = np.where(big, log_start + math.log(_RESCALE), log_start)
        state = [t, s, phase, a, b_post, q, log_start, term, acc, n, level, total, c_next]
        n_done = int(np.count_nonzero(done))
        if n_done:
            with np.errstate(divide="ignore"):
                result[active[done]] = np.exp(log_start[done] + np.log(acc[done]))
            # finished entries only cost work until the next compaction
            if n_done == active.size or n_done * 5 >= active.size or active.size < 4096:
                keep = ~done
                active = active[keep]
                state = [v[keep] for v in state]
    return result


def _partial_sums(level, a, b_post):
    """``C(M)`` and ``c_{M+1}`` in closed form, for a sum that starts far from its first term.

    ``c_i = Gamma(b'+i-1) Gamma(a+b') / (Gamma(b') Gamma(a+b'+i-1))`` and, telescoping,
    ``C(M) = (a+b'-1)/(a-1) (1 - R)`` with ``log R = -sum_{i<M} log1p((a-1)/(b'+i))``;
    for ``a + b' <= 1`` the first term is split off (``C(M; b') = 1 + b'/(a+b')
    C(M-1; b'+1)``), and near ``a = 1`` ``log R`` is its polygamma series.
    """
    level = level.astype(float)
    c_next = np.exp(
        gammaln(b_post + level) - gammaln(b_post)
        + gammaln(a + b_post) - gammaln(a + b_post + level)
    )
    shift = a + b_post <= 1.0
    factor = np.where(shift, b_post / (a + b_post), 1.0)
    b1 = np.where(shift, b_post + 1.0, b_post)
    m1 = np.where(shift, level - 1.0, level)
    delta = a - 1.0
    small = np.abs(delta) < 1e-2
    with np.errstate(all="ignore"):
        direct = gammaln(b1 + m1) - gammaln(b1) - gammaln(b1 + delta + m1) + gammaln(b1 + delta)
        series = sum(
            -(delta ** (order + 1)) / math.factorial(order + 1)
            * (polygamma(order, b1 + m1) - polygamma(order, b1))
            for order in range(4)
        )
        log_r = np.where(small, series, direct)
        ratio = np.where(
            delta == 0.0, b1 * (digamma(b1 + m1) - digamma(b1)),
            (b1 + delta) * -np.expm1(log_r) / np.where(delta == 0.0, 1.0, delta),
        )
    total = np.where(shift, 1.0 + factor * ratio, ratio)
    return total, c_next


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------
def simulate_bgcnbd(
    n_customers: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | np.ndarray,
    *,
    k: int = 1,
    modified: bool = False,
    holdout: float | None = None,
    random_state: Any = None,
    return_latent: bool = False,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Simulate (M)BG/CNBD-k summaries with ``log_interpurchase_sum`` (BTYDplus
    ``xbgcnbd.GenerateData``).

    Inter-purchase times are ``Gamma(k, rate lambda)``; ``lambda ~ Gamma(r, rate
    alpha)``; the customer drops out with probability ``p ~ Beta(a, b)`` after each
    repeat purchase (and, with ``modified``, right after the first).

    Parameters
    ----------
    n_customers : int
    r, alpha, a, b : float
    T : float or array of shape (n_customers,)
        Observation length of each customer.
    k : int
        Regularity.
    modified : bool
        MBG variant.
    holdout : float, optional
        Adds ``frequency_holdout`` and ``duration_holdout``.
    random_state : int or numpy Generator, optional
    return_latent : bool
        Also return ``lambda``, ``p_dropout`` and ``alive`` (at ``T``).
    time_unit : str
        Recorded in ``attrs["time_unit"]``.

    Examples
    --------
    >>> data = simulate_bgcnbd(500, 0.85, 1.45, 0.79, 2.42, T=52, k=2, random_state=1)
    >>> list(data.columns)
    ['frequency', 'recency', 'T', 'log_interpurchase_sum']
    """
    return simulate_family(
        n_customers, r, alpha, a, b, T, k=k, dropout_at_zero=modified, holdout=holdout,
        random_state=random_state, return_latent=return_latent, time_unit=time_unit,
    )


# --------------------------------------------------------------------------------------
# Maximum-likelihood model
# --------------------------------------------------------------------------------------
def _history(data: pd.DataFrame) -> dict[str, np.ndarray]:
    return column_arrays(data, _HISTORY)


def _check_k(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class BetaGeoCNBD(BetaGeoPredictions, BetaGeoFamilyFit, MaximumLikelihoodModel):
    """BG/CNBD-k (or, with ``modified=True``, MBG/CNBD-k) fitted by maximum likelihood.

    Parameters
    ----------
    k : int, optional
        Regularity: inter-purchase times are Erlang-k. None (default) estimates it by
        profile likelihood: the continuous parameters are fitted for ``k = 1, 2, ...``
        up to ``max_k``, stopping early once the profile log-likelihood has fallen
        twice in a row (as BTYDplus's ``xbgcnbd.EstimateParameters``), and the best
        ``k`` is kept.
    modified : bool, default False
        MBG variant: customers may also drop out right after the first purchase.
    penalizer : float, default 0
        Optional ridge penalty on the log-parameters (see ``BetaGeo``).
    max_k : int, default 12
        Largest ``k`` tried when ``k`` is estimated (BTYDplus's grid).

    Attributes
    ----------
    k_ : int
        The fitted (or given) regularity.
    params_ : Series
        Estimates of ``r, alpha, a, b`` given ``k_``; ``covariance_log_`` and
        ``param_draws`` are conditional on ``k_``.
    log_likelihood_, aic_, bic_ : float
        Including the regularity term; AIC and BIC count ``k`` as a parameter when it
        was estimated.
    profile_log_likelihood_ : Series
        Log-likelihood at each ``k`` tried.

    Notes
    -----
    The summary needs ``log_interpurchase_sum`` (``rfm_summary(..., regularity=True)``,
    or :func:`add_log_interpurchase_sum`) to estimate ``k`` or to fit a given ``k > 1``;
    predictions read only ``frequency``, ``recency`` and ``T``.

    The Bayesian version (``bayesian(BetaGeoCNBD)(k=..., modified=..., group_col=...)``)
    takes the same settings; ``k`` stays an integer outside the sampler: given, or
    chosen by this maximum-likelihood profile on all customers, and the posterior of
    ``r, alpha, a, b`` is conditional on it.

    Examples
    --------
    CDNOW shows no regularity (BTYDplus ``demo/cdnow.R``: "k=1 -> no regularity
    detected"), so the MBG/CNBD-k is the MBG/NBD there:

    >>> from clvmodels import load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30", regularity=True)
    >>> model = BetaGeoCNBD(modified=True).fit(summary)
    >>> model.k_, model.params_.round(3).to_dict()
    (1, {'r': 0.525, 'alpha': 6.183, 'a': 0.891, 'b': 1.614})
    """

    param_names = ("r", "alpha", "a", "b")
    model_settings = ("k", "modified", "max_k")

    def __init__(
        self,
        k: int | None = None,
        modified: bool = False,
        penalizer: float = 0.0,
        max_k: int = 12,
    ) -> None:
        super().__init__(penalizer=penalizer)
        self.k = k
        self.modified = modified
        self.max_k = max_k

    # -- settings and state ----------------------------------------------------------
    def _k_in_use(self) -> int | None:
        fitting = getattr(self, "_fitting_k", None)
        if fitting is not None:
            return fitting
        fitted = getattr(self, "k_", None)
        return fitted if fitted is not None else self.k

    def _check_settings(self) -> None:
        if self.k is not None:
            _check_k(self.k, "k")
        _check_k(self.max_k, "max_k")
        if not isinstance(self.modified, bool | np.bool_):
            raise ValueError(f"modified must be True or False, got {self.modified!r}")

    def _chosen_settings(self) -> dict[str, Any]:
        k = self._k_in_use()
        if k is None:
            raise ValueError(
                f"{type(self).__name__}: k is neither given nor estimated; fit the model "
                "(k by profile likelihood) or pass k=<positive integer>"
            )
        return {"k": _check_k(k, "k")}

    def _family_shape(self) -> dict[str, Any]:
        return {"k": int(self._k_in_use() or 1), "dropout_at_zero": bool(self.modified)}

    @property
    def data_columns(self) -> tuple[str, ...]:
        return _HISTORY if self._k_in_use() == 1 else (*_HISTORY, LITT_COLUMN)

    def _likelihood_columns(self) -> tuple[str, ...]:
        # The engines fit the likelihood less its regularity term (rows compressed on
        # the history); the term is added per k (_regularity_sums) or per customer
        # (_constant_log_likelihood).
        return _HISTORY

    def _constant_log_likelihood(self, data: pd.DataFrame) -> np.ndarray | None:
        """The regularity term ``(k-1) litt - x log((k-1)!)`` of each row at the model's
        ``k`` (None for ``k = 1``, where it is 0)."""
        k = self._k_in_use()
        if k == 1:
            return None
        x = data["frequency"].to_numpy(dtype=float)
        return (k - 1) * data[LITT_COLUMN].to_numpy(dtype=float) - x * gammaln(k)

    @property
    def alive_future_columns(self) -> tuple[str, ...] | None:  # type: ignore[override]
        # Given alive, the future of an Erlang-k customer depends on the time since the
        # last purchase (the phase of its clock) unless k = 1.
        return ("frequency", "T") if self._k_in_use() == 1 else None

    def __repr__(self) -> str:
        name = "MBG" if self.modified else "BG"
        if self.is_fitted:
            inner = ", ".join(f"{key}={v:.4g}" for key, v in self.params_.items())
            return f"<{type(self).__name__} ({name}/CNBD-{self.k_}) fitted: {inner}>"
        return f"<{type(self).__name__} ({name}/CNBD-{self.k or 'k'}) (not fitted)>"

    # -- likelihood -------------------------------------------------------------------
    def log_likelihood(self, params, data, ops):
        """The (M)BG/CNBD-k likelihood at the model's ``k``: :func:`bgcnbd_log_likelihood` (without
        the regularity term where ``data`` has no ``log_interpurchase_sum``)."""
        return bgcnbd_log_likelihood(
            **params, **{c: data[c] for c in _HISTORY},
            log_interpurchase_sum=data.get(LITT_COLUMN), k=self._k_in_use(),
            modified=self.modified, ops=ops,
        )

    # -- fitting ------------------------------------------------------------------------
    def fit(self, data: Any, weights: Any = None) -> BetaGeoCNBD:
        """Fit by maximum likelihood, estimating ``k`` by profile likelihood unless given.

        Rows are compressed on ``(frequency, recency, T)``: the regularity term
        ``(k-1) sum litt - log((k-1)!) sum x`` does not involve ``r, alpha, a, b`` and
        is added once per ``k``.

        Parameters
        ----------
        data : DataFrame
            Summary with ``frequency``, ``recency``, ``T`` and (to estimate ``k`` or
            fit a given ``k > 1``) ``log_interpurchase_sum``.
        weights : array-like, optional
            Number of customers each row stands for.
        """
        self._check_settings()
        self._pending_weights = weights
        try:
            super().fit(data, weights)
        finally:
            self._pending_weights = None
            self._fitting_k = None
        return self

    def _check_data(self, data: pd.DataFrame) -> None:
        super()._check_data(data)
        x = data["frequency"].to_numpy(dtype=float)
        w = (
            np.ones(len(data)) if self._pending_weights is None
            else checked_weights(self._pending_weights, data)
        )
        if self.k == 1:
            self._regularity_sums = (0.0, float(np.dot(w, x)))
            return
        _check_litt(data, f"{type(self).__name__}.fit")
        litt = data[LITT_COLUMN].to_numpy(dtype=float)
        self._regularity_sums = (float(np.dot(w, litt)), float(np.dot(w, x)))

    def _candidate_ks(self) -> list[int]:
        return [int(self.k)] if self.k is not None else list(range(1, int(self.max_k) + 1))

    def _initial_values(self, arrays, weights):
        starts = super()._initial_values(arrays, weights)
        previous = getattr(self, "_previous_fit", None)
        if previous is not None:
            theta, k_prev = previous
            # a customer of Erlang-k rate lambda buys at rate lambda / k
            shifted = np.array(theta, dtype=float)
            shifted[1] += math.log(k_prev / self._k_in_use())
            starts = [shifted, *starts]
        return starts

    def _fit_arrays(self, arrays, weights, n_obs, penalizer):
        sums = getattr(self, "_regularity_sums", None)
        if sums is None:
            # fitted on history arrays alone (the Bayesian engine's fits of groups, at a
            # given k): the log-likelihood is then that of the kernel
            if self.k is None:
                raise ValueError("estimating k needs log_interpurchase_sum: call fit(data)")
            sums = (0.0, 0.0)
        litt_total, x_total = sums
        results: list[dict[str, Any]] = []
        self._previous_fit = None
        try:
            for k in self._candidate_ks():
                self._fitting_k = k
                try:
                    # warnings about a k that is not kept would mislead: they are kept
                    # with its result and repeated for the chosen k only
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        super()._fit_arrays(arrays, weights, n_obs, penalizer)
                except ConvergenceError:
                    if self.k is not None or not results:
                        raise
                    break  # as BTYDplus: stop the search where a k cannot be fitted
                log_lik = self.log_likelihood_ + (k - 1) * litt_total - gammaln(k) * x_total
                results.append({
                    "k": k, "theta": self._theta.copy(), "log_likelihood": log_lik,
                    "covariance": self.covariance_.to_numpy().copy(),
                    "warning": self.hessian_warning_, "caught": caught,
                })
                self._previous_fit = (self._theta.copy(), k)
                self.k_ = k  # the installed parameters are this k's until the best is chosen
                lls = [res["log_likelihood"] for res in results]
                if len(lls) >= 3 and lls[-1] < lls[-2] < lls[-3]:
                    break
        finally:
            self._previous_fit = None
        best = max(results, key=lambda res: res["log_likelihood"])
        if self.k is None and best["k"] == self.max_k:
            warnings.warn(
                f"{type(self).__name__}: the profile likelihood is largest at k = max_k = "
                f"{self.max_k}; raise max_k to search further", RuntimeWarning, stacklevel=4,
            )
        for caught in best["caught"]:
            warnings.warn_explicit(
                caught.message, caught.category, caught.filename, caught.lineno
            )
        self._fitting_k = None
        self.k_ = best["k"]
        self.hessian_warning_ = best["warning"]
        self._install(best["theta"], best["covariance"], best["log_likelihood"], n_obs)
        self.profile_log_likelihood_ = pd.Series(
            {res["k"]: res["log_likelihood"] for res in results}, name="log_likelihood"
        ).rename_axis("k")
        self._set_information_criteria()

    def _set_information_criteria(self) -> None:
        n_params = len(self.param_names) + (1 if self.k is None else 0)
        self.aic_ = 2 * n_params - 2 * self.log_likelihood_
        self.bic_ = n_params * math.log(max(self.n_obs_, 1)) - 2 * self.log_likelihood_

    def summary(self, interval: float = 0.95) -> pd.DataFrame:
        """Estimates given ``k_`` (see ``MaximumLikelihoodModel.summary``); ``attrs``
        also records ``k`` and whether it was estimated."""
        table = super().summary(interval)
        table.attrs.update({"k": self.k_, "k_estimated": self.k is None})
        return table

    # -- persistence ----------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return {
            **super()._settings(), "k": None if self.k is None else int(self.k),
            "modified": bool(self.modified), "max_k": int(self.max_k),
        }

    EXTRA_FIELDS = MaximumLikelihoodModel.EXTRA_FIELDS | {"k", "profile_log_likelihood"}

    def _fitted_extra(self) -> dict[str, Any]:
        extra = {**super()._fitted_extra(), "k": int(self.k_)}
        profile = getattr(self, "profile_log_likelihood_", None)
        if profile is not None:
            extra["profile_log_likelihood"] = {
                str(key): float(v) for key, v in profile.items() if math.isfinite(v)
            }
        return extra

    def _install_checked(self, params, **kwargs) -> None:
        super()._install_checked(params, **kwargs)
        # a model built from parameters (from_params) is fitted at its given k
        self.k_ = None if self.k is None else int(self.k)

    def _restore_extra(self, extra: Mapping[str, Any], source: str) -> None:
        super()._restore_extra(extra, source)
        try:
            self._check_settings()
        except ValueError as err:
            raise ModelFileError(f"{source}: field 'settings' is invalid ({err})") from err
        k = extra.get("k", self.k)
        try:
            k = _check_k(k, "k")
        except ValueError as err:
            raise ModelFileError(f"{source}: field 'extra.k' is invalid ({err})") from err
        if self.k is not None and k != self.k:
            raise ModelFileError(
                f"{source}: field 'extra.k' is {k} but the settings fix k = {self.k}"
            )
        self.k_ = k
        profile = extra.get("profile_log_likelihood")
        if profile is not None:
            try:
                items = {_check_k(int(key), "k"): float(v) for key, v in profile.items()}
            except (AttributeError, TypeError, ValueError) as err:
                raise ModelFileError(
                    f"{source}: field 'extra.profile_log_likelihood' is invalid ({err})"
                ) from err
            self.profile_log_likelihood_ = pd.Series(
                items, name="log_likelihood", dtype=float
            ).rename_axis("k")
        if math.isfinite(self.log_likelihood_):
            self._set_information_criteria()

    @classmethod
    def from_params(cls, params: Mapping[str, float], **kwargs: Any) -> BetaGeoCNBD:
        """A fitted model at given parameters; ``k`` (and ``modified``) are required
        settings here, e.g. ``BetaGeoCNBD.from_params(params, k=2, modified=True)``."""
        if kwargs.get("k") is None:
            raise ValueError("from_params needs the regularity: pass k=<positive integer>")
        _check_k(kwargs["k"], "k")
        return super().from_params(params, **kwargs)

    # -- prediction hooks (see BetaGeoPredictions) ------------------------------------------
    def _shape(self) -> dict[str, Any]:
        self._check_fitted()
        return {"k": int(self.k_), "modified": bool(self.modified)}

    def _expected_purchases_given(self, t, params, data):
        return bgcnbd_expected_purchases(t, **params, **_history(data), **self._shape())

    def _probability_alive_given(self, params, data):
        return bgcnbd_probability_alive(**params, **_history(data), **self._shape())

    def _expected_purchases_new_customer_given(self, t, params):
        return bgcnbd_expected_purchases_new_customer(t, **params, **self._shape())

    def _probability_of_purchases_given(self, n, t, params):
        return bgcnbd_probability_of_purchases(n, t, **params, **self._shape())

    def _dropout_b_shift(self, frequency):
        return np.asarray(frequency, dtype=float) + float(self.modified)

    def simulate_purchases(
        self,
        t: float,
        data: pd.DataFrame,
        *,
        draws: pd.DataFrame | None,
        random_state: Any = None,
        probability_alive: np.ndarray | None = None,
    ) -> SimulatedPurchases:
        """One simulated future per parameter draw and customer over the next ``t``.

        Given its history a customer is alive with probability P(alive); if alive, the
        phase ``j`` of its Erlang clock (Poisson events since its last purchase), its
        rate and its dropout probability are drawn from their joint posterior
        (``j`` with weights ``(r+kx)_j/j! u^j``, ``lambda ~ Gamma(r+kx+j, alpha+T)``,
        ``p ~ Beta(a, b+x+m)``); it then has ``N ~ Poisson(lambda t)`` events, its
        purchases are events ``k-j, 2k-j, ...``, and it drops out after each with
        probability ``p``. ``k = 1`` is the BG/NBD (MBG/NBD) simulator.

        Examples
        --------
        >>> model = BetaGeoCNBD.from_params(
        ...     {"r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}, k=2, time_unit="W")
        >>> rows = pd.DataFrame({"frequency": [3, 0], "recency": [20.0, 0.0],
        ...                      "T": [26.0, 10.0]})
        >>> model.simulate_purchases(12, rows, draws=None, random_state=1).shape
        (1, 2)
        """
        k = self._shape()["k"]
        if k == 1:
            return super().simulate_purchases(
                t, data, draws=draws, random_state=random_state,
                probability_alive=probability_alive,
            )
        horizon = float(np.asarray(t, dtype=float))
        if not (math.isfinite(horizon) and horizon >= 0):
            raise ValueError(f"t must be finite and non-negative, got {t!r}")
        data = validate_summary(data, context="simulate_purchases")
        rng = np.random.default_rng(random_state)
        params = self._params_for(data, draws)
        history = _history(data)
        x, t_x, T = history["frequency"], history["recency"], history["T"]
        shape = (1 if draws is None else n_draws(draws), len(data))
        p_alive = alive_probabilities(
            probability_alive, shape, lambda: self._probability_alive_given(params, data)
        )

        def full(v: Any) -> np.ndarray:
            return np.broadcast_to(np.asarray(v, dtype=float), shape)

        alive = rng.random(shape) < full(p_alive)
        s = full(params["r"] + k * x)
        weights = _phase_weights(s, full((T - t_x) / (params["alpha"] + T)), k)
        phase = (rng.random(shape)[..., None] > np.cumsum(np.stack(weights, -1), -1)).sum(-1)
        phase = np.minimum(phase, k - 1)
        lam = rng.gamma(s + phase) / full(params["alpha"] + T)
        b_post = params["b"] + self._dropout_b_shift(x)
        p_drop = np.clip(rng.beta(full(params["a"]), full(b_post)), 1e-12, 1.0)
        n_events = rng.poisson(lam * horizon)
        slots = (n_events + phase) // k
        n_kept = np.where(alive, np.minimum(slots, rng.geometric(p_drop)), 0)
        return purchase_times(rng, n_kept, n_events, horizon, shape, k=k, phase=phase)
