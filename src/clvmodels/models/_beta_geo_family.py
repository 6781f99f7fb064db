"""Shared machinery of the beta-geometric family: BG/NBD, MBG/NBD and (M)BG/CNBD-k.

The three transaction models of :mod:`~clvmodels.models.beta_geo`,
:mod:`~clvmodels.models.modified_beta_geo` and :mod:`~clvmodels.models.beta_geo_cnbd`
are one family (Reutterer, Platzer & Schröder 2021, "Leveraging purchase regularity
for predicting customer behavior the easy way", *IJRM* 38(1), 194-215; RPS 2021
below). While alive a customer's inter-purchase times are Erlang-k with rate
``lambda ~ Gamma(r, alpha)`` (``k = 1``: a Poisson process); after every repeat
purchase (BG) -- and also right after the first purchase, at time 0 (MBG, Batislam,
Denizel & Filiztekin 2007) -- the customer drops out with probability ``p ~ Beta(a,
b)``. ``k = 1`` without dropout at time 0 is the BG/NBD of Fader, Hardie & Lee (2005).

This private module holds what the three models share, written once for any ``k``
and either dropout convention (``dropout_at_zero``):

* the log-likelihood against an ``ops`` namespace and its analytic gradient;
* P(alive), the probability mass function of a new customer's purchases;
* the expected purchases of a customer known to be alive (the Gaussian
  hypergeometric form of FHL 2005, with its quadrature fallback), for ``k = 1``;
* the purchase-time sampler of the predictive simulators, a summary simulator, and
  the fitting defaults shared by the maximum-likelihood models.

Notation: ``m = 1`` with dropout at time 0, else 0; ``s = r + k x`` and ``h = alpha +
T`` are the shape and rate of the gamma posterior of ``lambda``; the regularity sum ``S2
= sum_{j<k} (s)_j / j! u^j`` with ``u = (T - t_x) / h`` (RPS 2021, appendix; BTYDplus
``xbgcnbd.LL``) is the probability, given ``lambda``, of no purchase since the last one,
relative to its ``j = 0`` term (``S2 = 1`` for ``k = 1``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betainc, betaln, digamma, expit, gammaln, hyp2f1

from clvmodels.errors import DataValidationError
from clvmodels.models._jit import njit_on_first_call
from clvmodels.models._shared import purchase_times
from clvmodels.models.ops import NUMPY

__all__ = [
    "BetaGeoFamilyFit",
    "frequency_groups",
    "purchase_times",
    "purchases_while_alive",
    "simulate_family",
    "softplus_and_expit",
    "xbg_expected_purchases",
    "xbg_log_likelihood",
    "xbg_neg_loglik_grad",
    "xbg_probability_alive",
    "xbg_probability_of_purchases",
    "xbg_row_cache",
    "xbg_row_log_likelihood_grad",
]


# --------------------------------------------------------------------------------------
# Log-likelihood
# --------------------------------------------------------------------------------------
def _shifted(x: np.ndarray, dropout_at_zero: bool) -> np.ndarray:
    """``x + m``: the number of dropout opportunities survived by a buyer of ``x``."""
    return x + 1.0 if dropout_at_zero else x


def _has_dropout_term(x: np.ndarray, dropout_at_zero: bool) -> np.ndarray:
    """Rows that may have dropped out after their last purchase."""
    return (x > 0) | dropout_at_zero


def _log_dropout_odds(r, alpha, a, b, x, t_x, T, k, dropout_at_zero, ops=NUMPY):
    """log of ``a/(b+x-1+m) ((alpha+T)/(alpha+t_x))^(r+kx)`` (log S1 of BTYDplus ``xbgcnbd.LL``).

    The odds of having dropped out after the last purchase against being alive with
    no purchase since (before dividing by the regularity sum); rows without a
    dropout term (BG, ``x == 0``) get a finite placeholder.
    """
    has = _has_dropout_term(x, dropout_at_zero)
    kx = x if k == 1 else k * x
    return (
        ops.log(a)
        - ops.log(ops.where(has, b + _shifted(x, dropout_at_zero) - 1, 1.0))
        + (r + kx) * (ops.log(alpha + T) - ops.log(alpha + np.where(has, t_x, T)))
    )


def _log_regularity_sum(s, gap, scale, k, ops=NUMPY):
    """``log S2 = log sum_{j<k} (s)_j / j! (gap / scale)^j`` (BTYDplus ``xbgcnbd.LL``).

    Every term is positive and ``gap / scale < 1``, so the sum is formed directly.
    """
    u = gap / scale
    term = 1.0
    total = 1.0
    for j in range(1, k):
        term = term * (s + (j - 1)) * u / j
        total = total + term
    return ops.log(total)


def xbg_log_likelihood(
    r, alpha, a, b, frequency, recency, T, *, k=1, dropout_at_zero=False, ops=NUMPY
):
    """Per-customer log-likelihood of the (M)BG/CNBD-k family without its regularity term.

    RPS 2021 (appendix; BTYDplus ``xbgcnbd.LL``) less ``(k-1) sum log(itt) - x
    log((k-1)!)``, which does not involve ``r, alpha, a, b``:
    ``log[Gamma(r+kx) alpha^r / Gamma(r)] + log[B(a, b+x+m) / B(a, b)]
    - (r+kx) log(alpha+T) + log(S2 + [m or x>0] S1)``, where ``log(S2 + S1) = log S2
    + softplus(log S1 - log S2)``, so no large exponent is ever taken. ``k = 1`` and
    no dropout at time 0 is FHL 2005 eq. (6); ``k = 1`` with it, the MBG/NBD
    likelihood of Batislam et al. (2007, appendix).
    """
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T = np.asarray(T, dtype=float)
    kx = x if k == 1 else k * x
    gamma_term, beta_term = _frequency_terms(r, a, b, x, k, dropout_at_zero, ops)
    log_a1 = gamma_term - ops.gammaln(r) + r * ops.log(alpha)
    log_a2 = beta_term - ops.betaln(a, b)
    log_a3 = -(r + kx) * ops.log(alpha + T)
    odds = _log_dropout_odds(r, alpha, a, b, x, t_x, T, k, dropout_at_zero, ops)
    has = _has_dropout_term(x, dropout_at_zero)
    if k == 1:
        return log_a1 + log_a2 + log_a3 + ops.where(has, ops.softplus(odds), 0.0)
    log_s2 = _log_regularity_sum(r + kx, T - t_x, alpha + T, k, ops)
    return log_a1 + log_a2 + log_a3 + log_s2 + ops.where(has, ops.softplus(odds - log_s2), 0.0)


def _frequency_terms(r, a, b, x, k, dropout_at_zero, ops):
    """``gammaln(r + kx)`` and ``betaln(a, b + x + m)``, the likelihood's costly terms.

    For a batch of parameter draws shared by every row (NumPy, ``r`` of shape
    ``(n_draws, 1)``: the pointwise log-likelihood of a posterior) they are evaluated
    once per draw and distinct frequency, then gathered: the same numbers, bit for bit,
    at a fraction of the special-function calls (customers hold few distinct
    frequencies).
    """
    batch = ops is NUMPY and x.ndim == 1 and all(
        np.ndim(p) == 2 and np.shape(p)[-1] == 1 for p in (r, a, b)
    )
    inverse = None
    if batch:
        values, inverse = np.unique(x, return_inverse=True)
        if values.size < x.size:
            x = values
        else:
            inverse = None
    gamma_term = ops.gammaln(r + (x if k == 1 else k * x))
    beta_term = ops.betaln(a, b + _shifted(x, dropout_at_zero))
    if inverse is None:
        return gamma_term, beta_term
    return np.take(gamma_term, inverse, axis=-1), np.take(beta_term, inverse, axis=-1)


def frequency_groups(frequency: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct frequencies, each row's position among them, their total weights, and
    the positions of the repeat buyers.

    Every gamma-function term of the likelihood depends on the frequency alone, and
    customers hold few distinct frequencies: evaluating those terms once per distinct
    value, and the dropout term on repeat buyers only, makes the gradient several
    times cheaper.
    """
    values, inverse = np.unique(frequency, return_inverse=True)
    weights_x = np.bincount(inverse, weights=weights, minlength=len(values))
    return values, inverse, weights_x, np.flatnonzero(frequency > 0)


# exp(-40) ~ 4e-18: beyond this the terms below are negligible, and clipping keeps
# exp() away from subnormal results, which are ~50x slower on x86.
_EXP_CLIP = 40.0


def softplus_and_expit(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log(1 + e^rho)`` and ``1 / (1 + e^-rho)``, stable and fast for any ``rho``."""
    tail = np.exp(-np.minimum(np.abs(rho), _EXP_CLIP))
    softplus = np.maximum(rho, 0.0) + np.log1p(tail)
    share = np.where(rho >= 0, 1.0, tail) / (1.0 + tail)
    return softplus, share


def _regularity_sum_and_slopes(
    s: np.ndarray, u: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log S2`` and its derivatives: ``d log S2 / ds`` and ``sum_j j tau_j / S2``.

    ``tau_j = (s)_j / j! u^j``; ``d tau_j / ds = tau_j sum_{i<j} 1 / (s + i)`` and
    ``u d tau_j / du = j tau_j``.
    """
    term = np.ones_like(s)
    total = np.ones_like(s)
    harmonic = np.zeros_like(s)
    d_s = np.zeros_like(s)
    d_u = np.zeros_like(s)
    for j in range(1, k):
        term = term * (s + (j - 1)) * u / j
        harmonic = harmonic + 1.0 / (s + (j - 1))
        total += term
        d_s += term * harmonic
        d_u += j * term
    return np.log(total), d_s / total, d_u / total


def xbg_neg_loglik_grad(
    log_params: np.ndarray,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
    groups: tuple[np.ndarray, ...] | None = None,
    *,
    k: int = 1,
    dropout_at_zero: bool = False,
) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood of :func:`xbg_log_likelihood` and its analytic
    gradient in log-parameters.

    ``log(A3 + A4) = log A3 + log S2 + log(1 + exp(rho - log S2))`` with ``rho`` the log
    dropout odds; ``w4 = expit(rho - log S2)`` is the share of the dropout branch, so
    no exponent of a large number is ever taken, and every partial derivative is a mix
    of closed-form digamma and log terms. ``groups`` is :func:`frequency_groups` of the
    data, computed once per fit.
    """
    r, alpha, a, b = np.exp(log_params)
    xs, inverse, wx, rep = frequency_groups(frequency, weights) if groups is None else groups
    if dropout_at_zero:  # every customer may have dropped out after the last purchase
        rep = slice(None)
    shift = _shifted(xs, dropout_at_zero)
    kxs = xs if k == 1 else k * xs
    # terms of the distinct frequencies
    psi_abx = digamma(a + b + shift)
    log_bx1_s = np.log(np.where(_has_dropout_term(xs, dropout_at_zero), b + shift - 1, 1.0))
    total = float(wx.sum())
    psi_ab = digamma(a + b)
    value = (
        float(np.dot(wx, gammaln(r + kxs) + betaln(a, b + shift)))
        + total * (r * np.log(alpha) - gammaln(r) - betaln(a, b))
    )
    d_r = float(np.dot(wx, digamma(r + kxs))) + total * (np.log(alpha) - digamma(r))
    d_a = total * psi_ab - float(np.dot(wx, psi_abx))
    d_b = total * (psi_ab - digamma(b)) + float(np.dot(wx, digamma(b + shift) - psi_abx))

    # A3 for every row
    rx = r + (frequency if k == 1 else k * frequency)
    log_alpha_T = np.log(alpha + T)
    w_rx = weights * rx
    value -= float(np.dot(w_rx, log_alpha_T))
    d_r -= float(np.dot(weights, log_alpha_T))
    inv_alpha_T = 1.0 / (alpha + T)
    d_alpha = total * r / alpha - float(np.dot(w_rx, inv_alpha_T))

    # the dropout term, rows that have one (A4 = 0 otherwise)
    w_rep = weights[rep]
    log_gap = log_alpha_T[rep] - np.log(alpha + recency[rep])
    rho = np.log(a) - log_bx1_s[inverse[rep]] + rx[rep] * log_gap
    if k > 1:
        # the regularity sum S2 of every row: d/dr through s, d/dalpha through u
        log_s2, dlog_s2_ds, u_dlog_s2_du = _regularity_sum_and_slopes(
            rx, (T - recency) * inv_alpha_T, k
        )
        d_s2_alpha = -u_dlog_s2_du * inv_alpha_T
        value += float(np.dot(weights, log_s2))
        d_r += float(np.dot(weights, dlog_s2_ds))
        d_alpha += float(np.dot(weights, d_s2_alpha))
        rho = rho - log_s2[rep]
    softplus, w4 = softplus_and_expit(rho)
    ww4 = w_rep * w4
    value += float(np.dot(w_rep, softplus))
    d_r += float(np.dot(ww4, log_gap))
    d_alpha -= float(np.dot(ww4 * rx[rep], 1.0 / (alpha + recency[rep]) - inv_alpha_T[rep]))
    d_a += float(ww4.sum()) / a
    d_b -= float(np.dot(ww4, np.exp(-log_bx1_s[inverse[rep]])))
    if k > 1:
        # the dropout branch replaces S2 by S1 in the share w4
        d_r -= float(np.dot(ww4, dlog_s2_ds[rep]))
        d_alpha -= float(np.dot(ww4, d_s2_alpha[rep]))

    grad = -np.array([r * d_r, alpha * d_alpha, a * d_a, b * d_b])
    return -value, grad


# --------------------------------------------------------------------------------------
# Per-customer derivatives (customer covariates)
# --------------------------------------------------------------------------------------
# Rows whose beta-function ratio has at most this many factors get it as a finite sum
# of logarithms; the few beyond, from gamma and digamma functions.
_SUM_TERMS = 16


def xbg_row_cache(frequency: np.ndarray, dropout_at_zero: bool = False) -> dict[str, Any]:
    """Parameter-free pieces of :func:`xbg_row_log_likelihood_grad`, once per fit: the
    distinct frequencies, and the rows ordered by the number of factors ``x + m`` of
    their beta-function ratio."""
    x = np.asarray(frequency, dtype=float)
    values, inverse = np.unique(x, return_inverse=True)
    n = _shifted(x, dropout_at_zero)
    order = np.argsort(-n, kind="stable")
    sorted_n = n[order]
    terms = int(min(sorted_n[0] if n.size else 0, _SUM_TERMS))
    # rows with more than j factors: the first count[j] of ``order``
    count = np.searchsorted(-sorted_n, -np.arange(terms), side="left")
    return {"x_values": values, "x_inverse": inverse, "order": order, "count": count,
            "long": np.flatnonzero(n > _SUM_TERMS)}


def _beta_ratio(a, b, n, cache):
    """``log B(a, b+n) / B(a, b)`` and its derivatives in ``a`` and ``b``, per row, for
    per-row ``a``, ``b``: ``sum_{j<n} log((b+j) / (a+b+j))`` and the sums of
    ``-1/(a+b+j)`` and ``1/(b+j) - 1/(a+b+j)``, accumulated over the rows that still
    have a factor ``j`` (rows sorted by ``n``), so that the cost is the total number of
    factors; rows with more than ``_SUM_TERMS`` factors use gamma functions."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    a = np.broadcast_to(a, n.shape)
    b = np.broadcast_to(b, n.shape)
    order, count = cache["order"], cache["count"]
    b_o = b[order]
    ab_o = a[order] + b_o
    log_ratio = np.zeros(n.shape)
    inv_ab = np.zeros(n.shape)
    inv_b = np.zeros(n.shape)
    for j, c in enumerate(count):
        bj = b_o[:c] + j
        abj = ab_o[:c] + j
        log_ratio[:c] += np.log(bj / abj)
        inv_ab[:c] += 1.0 / abj
        inv_b[:c] += 1.0 / bj
    value, d_a, d_b = (np.empty(n.shape) for _ in range(3))
    value[order], d_a[order], d_b[order] = log_ratio, -inv_ab, inv_b - inv_ab
    long = cache["long"]
    if long.size:
        al, bl, nl = a[long], b[long], n[long]
        psi_abn, psi_ab = digamma(al + bl + nl), digamma(al + bl)
        value[long] = betaln(al, bl + nl) - betaln(al, bl)
        d_a[long] = psi_ab - psi_abn
        d_b[long] = digamma(bl + nl) - digamma(bl) + psi_ab - psi_abn
    return value, d_a, d_b


def xbg_row_log_likelihood_grad(
    r, alpha, a, b, frequency, recency, T, *, dropout_at_zero=False, cache=None
):
    """Per-customer log-likelihood of :func:`xbg_log_likelihood` (``k = 1``) and its
    derivatives in ``log r``, ``log alpha``, ``log a`` and ``log b``, for parameters
    that may differ per customer (covariates).

    With ``A1 A2 (A3 + A4)`` as in FHL 2005 eq. (6), ``rho = log(A4 / A3)`` and
    ``w4 = expit(rho)``: ``d/d log alpha = r - (r+x) alpha/(alpha+T) + w4 (r+x) alpha
    (1/(alpha+T) - 1/(alpha+t_x))``, ``d/d log a = a dlogB/da + w4``, ``d/d log b = b
    dlogB/db - w4 b/(b+x+m-1)``, ``d/d log r = r (psi(r+x) - psi(r) + log alpha -
    log(alpha+T) + w4 log((alpha+T)/(alpha+t_x)))``; ``log B = log B(a, b+x+m) /
    B(a, b)``. Gamma-function terms of ``r`` are taken once per distinct frequency,
    those of ``a`` and ``b`` once per distinct frequency where ``a`` and ``b`` are
    shared, else as finite sums (:func:`_beta_ratio`). ``cache`` is
    :func:`xbg_row_cache` of the frequencies.

    Returns
    -------
    log_likelihood : ndarray
    derivatives : dict of ndarray
        ``{"r": ..., "alpha": ..., "a": ..., "b": ...}``, in the log-parameters.
    """
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T = np.asarray(T, dtype=float)
    cache = xbg_row_cache(x, dropout_at_zero) if cache is None else cache
    xs, inverse = cache["x_values"], cache["x_inverse"]
    m = 1.0 if dropout_at_zero else 0.0
    has = _has_dropout_term(x, dropout_at_zero)
    # gamma-function terms of r
    if np.ndim(r) == 0:
        log_gamma = (gammaln(r + xs) - gammaln(r))[inverse]
        psi = (digamma(r + xs) - digamma(r))[inverse]
    else:
        log_gamma, psi = gammaln(r + x) - gammaln(r), digamma(r + x) - digamma(r)
    # beta-function ratio of a, b
    if np.ndim(a) == 0 and np.ndim(b) == 0:
        shift_s = xs + m
        psi_abn, psi_ab = digamma(a + b + shift_s), digamma(a + b)
        log_beta = (betaln(a, b + shift_s) - betaln(a, b))[inverse]
        d_beta_a = (psi_ab - psi_abn)[inverse]
        d_beta_b = (digamma(b + shift_s) - digamma(b) + psi_ab - psi_abn)[inverse]
    else:
        log_beta, d_beta_a, d_beta_b = _beta_ratio(a, b, x + m, cache)
    rx = r + x
    alpha_T = alpha + T
    alpha_x = alpha + np.where(has, t_x, T)
    log_alpha_T = np.log(alpha_T)
    log_gap = log_alpha_T - np.log(alpha_x)
    b_last = np.where(has, b + x + (m - 1.0), 1.0)
    rho = np.log(a) - np.log(b_last) + rx * log_gap
    soft, w4 = softplus_and_expit(rho)
    soft = np.where(has, soft, 0.0)
    w4 = np.where(has, w4, 0.0)
    log_alpha = np.log(alpha)
    value = log_gamma + r * log_alpha + log_beta - rx * log_alpha_T + soft
    derivatives = {
        "r": r * (psi + log_alpha - log_alpha_T + w4 * log_gap),
        "alpha": r - rx * alpha / alpha_T + w4 * rx * alpha * (1.0 / alpha_T - 1.0 / alpha_x),
        "a": a * d_beta_a + w4,
        "b": b * d_beta_b - w4 * b / b_last,
    }
    return value, derivatives


# --------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------
def xbg_probability_alive(r, alpha, a, b, frequency, recency, T, *, k=1, dropout_at_zero=False):
    """P(alive | x, t_x, T) = 1 / (1 + S1 / S2) (RPS 2021; BTYDplus ``xbgcnbd.PAlive``;
    FHL 2005 eq. 10 denominator for ``k = 1``); 1 for BG customers without repeat purchases.

    Computed as a logistic function of the log odds, so it never overflows.
    """
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T = np.asarray(T, dtype=float)
    params = [np.asarray(v, dtype=float) for v in (r, alpha, a, b)]
    per_row = x.ndim == 1 and t_x.ndim <= 1 and T.ndim <= 1
    if k == 1 and per_row and all(v.ndim == 2 and v.shape[1] == 1 for v in params):
        # Parameter draws against customers: the common case of every forecast.
        return _probability_alive_per_draw(
            *(v[:, 0] for v in params),
            x,
            np.broadcast_to(t_x, x.shape),
            np.broadcast_to(T, x.shape),
            1.0 if dropout_at_zero else 0.0,
        )
    odds = _log_dropout_odds(r, alpha, a, b, x, t_x, T, k, dropout_at_zero)
    if k > 1:
        odds = odds - _log_regularity_sum(r + k * x, T - t_x, alpha + T, k)
    return np.where(_has_dropout_term(x, dropout_at_zero), expit(-odds), 1.0)


@njit_on_first_call
def _growth_ratios(alpha, T, t_x, out):  # pragma: no cover
    """``out[d, i] = (alpha[d] + T[i]) / (alpha[d] + t_x[i])``."""
    for d in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[d, i] = (alpha[d] + T[i]) / (alpha[d] + t_x[i])


@njit_on_first_call
def _log_odds_from_growth(r, log_a, x, log_b_last, x_index, out):  # pragma: no cover
    """``out[d, i] = (r[d] + x[i]) out[d, i] + log_a[d] - log_b_last[d, x_index[i]]``:
    the log dropout odds from the log growth ratios in ``out``."""
    for d in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[d, i] = (r[d] + x[i]) * out[d, i] + log_a[d] - log_b_last[d, x_index[i]]


@njit_on_first_call
def _logistic_of_odds(x, m, out):  # pragma: no cover
    """``out[d, i] = 1 / (1 + out[d, i])`` (the odds in ``out``) where row ``i`` has a
    dropout term, else 1."""
    for d in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[d, i] = 1.0 / (1.0 + out[d, i]) if x[i] > 0 or m > 0 else 1.0


def _probability_alive_per_draw(r, alpha, a, b, x, t_x, T, m):
    """:func:`xbg_probability_alive` for ``k = 1`` with parameters per draw ``(n_draws,)``
    and customers ``(n_rows,)``, as ``(n_draws, n_rows)``.

    The same logistic function of the log odds, in five passes over the ``(n_draws,
    n_rows)`` values where the broadcast expression takes about fifteen: three compiled
    loops for the arithmetic, with NumPy's vectorised ``log`` and ``exp`` between them
    (faster than a compiled loop's scalar ones). ``log(b + x - 1 + m)`` is taken once per
    distinct ``x``. An odds that overflows gives 0.
    """
    out = np.empty((r.size, x.size))
    _growth_ratios(alpha, T, t_x, out)
    np.log(out, out=out)
    distinct_x, x_index = np.unique(x, return_inverse=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # rows without a dropout term
        log_b_last = np.log(b[:, None] + distinct_x + (m - 1.0))
    _log_odds_from_growth(r, np.log(a), x, log_b_last, x_index.astype(np.int64), out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    _logistic_of_odds(x, m, out)
    return out


def purchases_while_alive_quadrature(t, s, h, a, b_x):
    """``E_p[(1 - (1 + p t / h)^-s) / p]`` for ``p ~ Beta(a, b_x)``, by Gauss-Jacobi.

    For an active customer with posterior ``lambda ~ Gamma(s, h)`` and
    ``p ~ Beta(a, b_x)``, the expected purchases in ``t`` are
    ``E[(1 - exp(-lambda p t)) / p]``; integrating ``lambda`` out leaves this smooth
    one-dimensional integral. One rule per entry, doubled until two successive rules
    agree: slow, but valid for every parameter value, so it is the fallback where the
    hypergeometric forms overflow.
    """
    from scipy.special import betaincinv, roots_jacobi, roots_legendre

    def integrand(p, ti, si, hi):
        return -np.expm1(-si * np.log1p(p * ti / hi)) / p

    out = np.empty(np.shape(t))
    flat = [np.ravel(v) for v in (t, s, h, a, b_x)]
    for i, (ti, si, hi, ai, bi) in enumerate(zip(*flat, strict=True)):
        value = previous = np.nan
        with np.errstate(all="ignore"):
            for nodes in (64, 128, 256, 512):
                # Weight (1-y)^(b_x-1) (1+y)^(a-1) on [-1, 1] is Beta(a, b_x), p = (1+y)/2.
                y, w = roots_jacobi(nodes, bi - 1.0, ai - 1.0)
                value = np.dot(w, integrand((1.0 + y) / 2.0, ti, si, hi)) / w.sum()
                if not np.isfinite(value) or abs(value - previous) <= 1e-10 * abs(value):
                    break
                previous = value
        if not np.isfinite(value):
            # Very large b_x defeats the Jacobi rule; integrate over the Beta quantile
            # instead, E[g(p)] = int_0^1 g(F^-1(u)) du, with Gauss-Legendre nodes in u.
            u, w = roots_legendre(1024)
            p = betaincinv(ai, bi, (u + 1.0) / 2.0)
            value = np.dot(w, integrand(p, ti, si, hi)) / 2.0
        out.flat[i] = value
    return out


def purchases_while_alive(t, s, h, a, b_x):
    """Expected purchases in the next ``t`` of a customer known to be alive (``k = 1``).

    FHL 2005 eq. (10) numerator, ``c/(a-1) * (1 - (h/(h+t))^s 2F1(s, b_x; c; t/(h+t)))``
    with ``c = a + b_x - 1``. Where ``t <= h`` Pfaff's transformation
    ``2F1(s, b'; c; z) = (1-z)^-s 2F1(s, c-b'; c; z/(z-1))`` gives the single term
    ``2F1(s, a-1; c; -t/h)`` on ``[-1, 0]``, where scipy's series is most accurate;
    beyond, the original argument in ``[1/2, 1)`` is used, combined in log space.
    Entries where either form overflows (extreme ``s`` and ``t/h``) or ``a`` is at 1
    are recomputed by quadrature.
    """
    t, s, h, a, b_x = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, s, h, a, b_x)))
    c = a + b_x - 1.0
    near = t <= h
    far = ~near
    value = np.empty(t.shape)
    with np.errstate(all="ignore"):
        value[near] = 1.0 - hyp2f1(s[near], a[near] - 1.0, c[near], -t[near] / h[near])
        log_tail = s[far] * (np.log(h[far]) - np.log(h[far] + t[far])) + np.log(
            hyp2f1(s[far], b_x[far], c[far], t[far] / (h[far] + t[far]))
        )
        value[far] = -np.expm1(log_tail)
        value *= c / (a - 1.0)
    bad = (~np.isfinite(value) | (value < 0) | (np.abs(a - 1.0) < 1e-6)) & (t > 0)
    value[t == 0] = 0.0
    if np.any(bad):
        value[bad] = purchases_while_alive_quadrature(t[bad], s[bad], h[bad], a[bad], b_x[bad])
    return value


def xbg_expected_purchases(t, r, alpha, a, b, frequency, recency, T, *, dropout_at_zero=False):
    """E[Y(t) | x, t_x, T] for ``k = 1``: P(alive) times :func:`purchases_while_alive` with
    ``lambda ~ Gamma(r+x, alpha+T)`` and ``p ~ Beta(a, b+x+m)`` (FHL 2005 eq. 10; Wagner
    & Hoppe 2008 for the MBG/NBD)."""
    x = np.asarray(frequency, dtype=float)
    T = np.asarray(T, dtype=float)
    p_alive = xbg_probability_alive(
        r, alpha, a, b, x, recency, T, dropout_at_zero=dropout_at_zero
    )
    return purchases_while_alive(t, r + x, alpha + T, a, b + _shifted(x, dropout_at_zero)) * p_alive


def _nbd_log_pmf(i, r, log_p, log_q):
    """log P(N = i) of the NBD count of a gamma-Poisson process (``p = alpha/(alpha+t)``)."""
    return gammaln(r + i) - gammaln(r) - gammaln(i + 1.0) + r * log_p + i * log_q


def xbg_probability_of_purchases(n, t, r, alpha, a, b, *, k=1, dropout_at_zero=False):
    """P(X(t) = n) for a new customer (RPS 2021; BTYDplus ``xbgcnbd.pmf``).

    With ``N(t)`` the NBD count of the underlying Poisson events (every ``k``-th is a
    purchase) and ``s = n - 1 + m`` survived dropout opportunities,
    ``P = B(a, b+s+1)/B(a, b) [P(kn <= N < kn+k) + [n>0 or m] a/(b+s) P(N >= kn)]``:
    either still alive at ``t`` after ``n`` purchases, or dropped out right after the
    ``n``-th. ``P(N >= kn)`` is the regularised incomplete beta function
    ``I_{t/(alpha+t)}(kn, r)``. For ``k = 1`` this is FHL 2005 eq. (8).
    """
    n, t = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(t, dtype=float))
    m = 1.0 if dropout_at_zero else 0.0
    kn = k * n
    positive_t = t > 0
    t_safe = np.where(positive_t, t, 1.0)
    log_p = np.log(alpha) - np.log(alpha + t_safe)
    log_q = np.log(t_safe) - np.log(alpha + t_safe)
    window = 0.0
    for i in range(k):
        window = window + np.exp(_nbd_log_pmf(kn + i, r, log_p, log_q))
    window = np.where(positive_t, window, (n == 0).astype(float))
    with np.errstate(all="ignore"):
        tail = np.where(kn > 0, betainc(np.maximum(kn, 1.0), r, t_safe / (alpha + t_safe)), 1.0)
    tail = np.where(positive_t, tail, (n == 0).astype(float))
    survived = n - 1.0 + m
    has = (n > 0) | dropout_at_zero
    b_s = np.where(has, b + survived, 1.0)
    log_alive = betaln(a, b + survived + 1.0) - betaln(a, b)
    log_dropped = betaln(a + 1.0, b_s) - betaln(a, b)
    return np.exp(log_alive) * window + np.where(has, np.exp(log_dropped) * tail, 0.0)


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------
def simulate_family(
    n_customers: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | np.ndarray,
    *,
    k: int = 1,
    dropout_at_zero: bool = False,
    holdout: float | None = None,
    random_state: Any = None,
    return_latent: bool = False,
    time_unit: str = "W",
) -> pd.DataFrame:
    """Simulate (M)BG/CNBD-k customers: summaries with ``log_interpurchase_sum``.

    Each customer draws ``lambda ~ Gamma(r, rate alpha)``, ``p ~ Beta(a, b)`` and the
    number of purchases after which it drops out, ``D ~ Geometric(p)`` on ``1, 2, ...``
    (``D - 1`` repeat purchases with dropout at time 0); its inter-purchase times are
    ``Gamma(k, rate lambda)``, drawn in rounds for the customers still buying.
    """
    for name, value in {"r": r, "alpha": alpha, "a": a, "b": b, "T": T}.items():
        arr = np.asarray(value, dtype=float)
        if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if holdout is not None and not (np.isfinite(holdout) and holdout > 0):
        raise ValueError(f"holdout must be positive and finite, got {holdout!r}")
    n = int(n_customers)
    rng = np.random.default_rng(random_state)
    T_arr = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    # number of repeat purchases the customer lives to make
    lives = rng.geometric(np.maximum(p, 1e-12)) - (1 if dropout_at_zero else 0)
    end = T_arr + (0.0 if holdout is None else float(holdout))
    x = np.zeros(n, dtype=np.int64)
    x_holdout = np.zeros(n, dtype=np.int64)
    recency = np.zeros(n)
    litt = np.zeros(n)
    clock = np.zeros(n)
    made = np.zeros(n, dtype=np.int64)
    active = np.flatnonzero(lives > 0)
    while active.size:
        gap = rng.gamma(float(k), 1.0 / lam[active])
        when = clock[active] + gap
        inside = when <= end[active]
        active, gap, when = active[inside], gap[inside], when[inside]
        calibration = when <= T_arr[active]
        cal = active[calibration]
        x[cal] += 1
        recency[cal] = when[calibration]
        litt[cal] += np.log(gap[calibration])
        x_holdout[active[~calibration]] += 1
        clock[active] = when
        made[active] += 1
        active = active[made[active] < lives[active]]
    frame = pd.DataFrame(
        {"frequency": x, "recency": recency, "T": T_arr, "log_interpurchase_sum": litt},
        index=pd.RangeIndex(n, name="customer_id"),
    )
    alive = lives > x
    if holdout is not None:
        frame["frequency_holdout"] = x_holdout
        frame["duration_holdout"] = float(holdout)
    if return_latent:
        frame["lambda"] = lam
        frame["p_dropout"] = p
        frame["alive"] = alive
    frame.attrs["time_unit"] = time_unit
    return frame


# --------------------------------------------------------------------------------------
# Fitting defaults of the family's maximum-likelihood models
# --------------------------------------------------------------------------------------
class BetaGeoFamilyFit:
    """Data check, analytic gradient, natural centre and starting points shared by the
    family's maximum-likelihood models (placed before ``MaximumLikelihoodModel``).

    ``_rate_divisor`` scales the starting ``alpha``: with Erlang-k inter-purchase times
    of rate ``lambda`` a customer buys at rate ``lambda / k``, so comparable fits have
    ``alpha`` about ``k`` times smaller.
    """

    def _family_shape(self) -> dict[str, Any]:
        """The model's place in the family: Erlang shape ``k`` and ``dropout_at_zero``."""
        return {"k": 1, "dropout_at_zero": False}

    def _rate_divisor(self) -> float:
        return float(self._family_shape()["k"])

    # The analytic gradient evaluates the gamma-function terms once per distinct
    # frequency and the dropout term only where it exists: benchmarks/bench_mle.py
    # measures it against the automatic gradient of the same likelihood.
    def _with_cache(self, arrays, weights):
        return {**arrays, "_groups": frequency_groups(arrays["frequency"], weights)}

    def _neg_loglik_grad(self, theta, arrays, weights):
        return xbg_neg_loglik_grad(
            theta, arrays["frequency"], arrays["recency"], arrays["T"], weights,
            arrays.get("_groups"), **self._family_shape(),
        )

    # With covariates the parameters differ per customer: the per-row derivatives are
    # analytic for k = 1 (benchmarks/bench_mle.py measures them against the automatic
    # ones), forward-mode automatic otherwise.
    def _with_row_cache(self, arrays, weights):
        shape = self._family_shape()
        if shape["k"] != 1:
            return arrays
        return {**arrays, "_rows": xbg_row_cache(arrays["frequency"], shape["dropout_at_zero"])}

    def _row_log_likelihood_grad(self, params, arrays):
        shape = self._family_shape()
        if shape["k"] != 1:
            return self.automatic_row_log_likelihood_grad(params, arrays)
        return xbg_row_log_likelihood_grad(
            **params, frequency=arrays["frequency"], recency=arrays["recency"], T=arrays["T"],
            dropout_at_zero=shape["dropout_at_zero"], cache=arrays.get("_rows"),
        )

    def _check_data(self, data: pd.DataFrame) -> None:
        if not (data["frequency"].to_numpy() > 0).any():
            raise DataValidationError(
                f"{type(self).__name__} needs repeat purchases to learn from, but none of "
                f"the {len(data)} customers has frequency > 0 (check the observation period "
                "and `freq`)"
            )

    def _log_reference(self, arrays, weights):
        scale = float(np.average(arrays["T"], weights=weights)) / self._rate_divisor()
        return np.log([1.0, scale, 1.0, 1.0])

    def _initial_values(self, arrays, weights):
        scale = float(np.average(arrays["T"], weights=weights)) / self._rate_divisor()
        starts = [
            (1.0, scale, 1.0, 1.0),
            (0.25, scale / 8, 0.8, 2.5),
            (0.1, scale / 50, 0.5, 5.0),
            (5.0, 10 * scale, 2.0, 0.5),
        ]
        return [np.log(s) for s in starts]
