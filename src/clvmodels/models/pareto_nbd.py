"""Pareto/NBD: the Pareto / negative binomial distribution model.

Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987), "Counting Your Customers:
Who Are They and What Will They Do Next?", *Management Science* 33(1), 1-24 (SMC 1987).
While alive, a customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)``; the
customer's lifetime is exponential with rate ``mu ~ Gamma(s, beta)``, independent of
``lambda``. The formulas follow Fader, P. S. and Hardie, B. G. S. (2005), "A Note on
Deriving the Pareto/NBD Model and Related Expressions" (FH 2005 note below: section 3
the likelihood, 4 the mean, 5 P(alive), 6 the conditional expectation), and Fader,
Hardie and Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
Analysis", *Journal of Marketing Research* 42(4), 415-430 (FHL 2005 JMR), for DERT.

The hypergeometric term
-----------------------
Every quantity that needs Gauss's hypergeometric function reduces to one function of
three arguments,

    K(p, q, rho) = 2F1(1, p; p + q; 1 - rho)
                 = (p + q - 1) * int_0^inf (1 + rho v)^-p (1 + v)^-q dv,

with ``p = r + x``, ``q = s + 1`` and ``rho = (beta + u) / (alpha + u)`` at ``u = t_x``
and ``u = T``. It is the FH 2005 note's ``2F1(r+s+x, s+1; r+s+x+1; (alpha-beta) /
(alpha+u))`` (the ``alpha >= beta`` branch) after Euler's transformation,
``K = (1 - z)^s 2F1(r+s+x, s+1; r+s+x+1; z)`` with ``z = 1 - rho``, and likewise the
``alpha < beta`` branch; ``K`` lies between 1 and ``1 / rho``, so it never overflows.

:func:`pnbd_log_hyp2f1` evaluates ``log K`` two ways:

* for ``1/10 <= rho <= 10`` the series in ``z = 1 - rho`` (or in ``1 - 1/rho``, with
  ``K(p, q, rho) = K(q, p, 1/rho) / rho``): positive terms, each at most ``z <= 0.9``
  times the one before, so at most ~380 terms (about 15 near ``rho = 1``, where fitted
  models usually are) give full precision whatever ``p`` and ``q``, long histories
  included;
* otherwise the integral in ``w = log v`` by the trapezoid rule: the integrand is
  analytic in a strip and decays exponentially on both sides, so the rule converges
  geometrically in the number of nodes; both infinite tails are summed in closed form.
  192 nodes give about 1e-11 relative across ``rho`` from 1e-8 to 1e8 and ``p`` up to
  1e5 (``tests/models/test_pareto_nbd.py`` checks against mpmath).

Parameter derivatives are sums of the same terms, so the analytic gradient and the
forward-mode derivatives come with the value; PyTensor differentiates the quadrature
graph itself.

The pure functions below take broadcastable NumPy arrays and work in log space;
:class:`ParetoNBD` is a thin maximum-likelihood shell around them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, expit, exprel, gammaln, logsumexp, roots_legendre, xlogy

from clvmodels._validation import float_or_nan
from clvmodels.data import column_arrays, compress_arrays, validate_summary
from clvmodels.errors import DataValidationError
from clvmodels.models._hypergeometric import hyp_series_value
from clvmodels.models._jit import njit_on_first_call
from clvmodels.models._shared import (
    alive_probabilities,
    check_horizon,
    n_draws,
    purchase_times,
    shaped,
)
from clvmodels.models.base import SimulatedPurchases
from clvmodels.models.beta_geo import BetaGeoPredictions
from clvmodels.models.covariates import CovariateEffects
from clvmodels.models.mle import PurchaseDropoutModel
from clvmodels.models.ops import NUMPY, Dual

__all__ = [
    "ParetoNBD",
    "ParetoNBDPredictions",
    "pnbd_discounted_expected_residual_transactions",
    "pnbd_expected_purchases",
    "pnbd_expected_purchases_new_customer",
    "pnbd_log_hyp2f1",
    "pnbd_log_likelihood",
    "pnbd_neg_loglik_grad",
    "pnbd_probability_alive",
    "pnbd_probability_of_purchases",
]

_SUMMARY_COLUMNS = ("frequency", "recency", "T")

# The series is used where |log rho| <= log 10: its terms then shrink at least as 0.9^n.
_SERIES_LIMIT = math.log(10.0)
_SERIES_TERMS = 600
# Trapezoid rule on w = log v: nodes between the tails, which start where the first
# neglected term of their expansions is e^-19 of the leading one (e^-38 overall).
_QUAD_NODES = 192
_QUAD_TAIL = 19.0
_QUAD_STEP = 0.36
# Entries per block of the quadrature (bounds its memory to some 100 MB).
_QUAD_BLOCK = 8_000


# --------------------------------------------------------------------------------------
# The hypergeometric term K(p, q, rho) = 2F1(1, p; p + q; 1 - rho)
# --------------------------------------------------------------------------------------
def _quadrature_grid(p, q, log_rho, ops, n_nodes):
    """Nodes of the trapezoid rule for ``K``: ``b = p + q - 1``, the bends
    ``a0 = log(p rho + q)`` and ``a1 = log(p / rho + q)``, the first node, the span, the
    step and the nodes (one row of ``n_nodes + 1`` per entry)."""
    log_p, log_q = ops.log(p), ops.log(q)
    a0 = ops.logaddexp(log_p + log_rho, log_q)
    a1 = ops.logaddexp(log_p - log_rho, log_q)
    w_lo = -a0 - _QUAD_TAIL
    span = a0 + a1 + 2.0 * _QUAD_TAIL
    h = span / n_nodes
    w = w_lo[..., None] + h[..., None] * np.arange(n_nodes + 1, dtype=float)
    return p + q - 1.0, (a0, a1), w_lo, span, h, w


def _log_k_quadrature(p, q, log_rho, ops=NUMPY, n_nodes=_QUAD_NODES):
    """``log K`` by the trapezoid rule in ``w = log v``, written once for every namespace.

    ``K / b = int exp(w - p softplus(log rho + w) - q softplus(w)) dw`` over the real
    line, ``b = p + q - 1``. The nodes span ``[-a0 - 19, a1 + 19]`` with
    ``a0 = log(p rho + q)`` (where the integrand starts to fall) and
    ``a1 = log(p / rho + q)`` (beyond which it is a pure power of ``v``); outside, the
    integrand is ``e^w (1 - e^(a0 + w))`` and ``rho^-p e^(-b w) (1 - e^(a1 - w))`` to
    within ``e^-38``, and the rule's infinite sums over those are geometric series.
    """
    b, _, w_lo, span, h, w = _quadrature_grid(p, q, log_rho, ops, n_nodes)
    log_f = (w - p[..., None] * ops.logaddexp(0.0, log_rho[..., None] + w)
             - q[..., None] * ops.logaddexp(0.0, w))
    body = ops.logsumexp(log_f, axis=-1)
    e_h = ops.exp(-h)
    small = math.exp(-_QUAD_TAIL)
    # sum_{j>=1} f(w_lo - j h): geometric in e^-h, with the first correction term
    left = w_lo - h - ops.log(-ops.expm1(-h)) + ops.log1p(-small * e_h / (1.0 + e_h))
    # sum_{j>=1} f(w_hi + j h): geometric in e^(-b h)
    bh = b * h
    right = (
        -p * log_rho - b * (w_lo + span) - bh - ops.log(-ops.expm1(-bh))
        + ops.log1p(-small * e_h * ops.expm1(-bh) / ops.expm1(-bh - h))
    )
    return ops.log(b) + ops.log(h) + ops.logaddexp(body, ops.logaddexp(left, right))


# NumPy's error model, as the vectorised form had: at the extremes a sampler visits
# (p + q - 1 below 1e-16) a tail's sum divides by zero, and the density must come out
# infinite or NaN (a rejected step), not as an exception that ends the sampler.
@njit_on_first_call(error_model="numpy")
def _log_k_quadrature_grad(p, q, log_rho, n_nodes):
    """The rule of :func:`_log_k_quadrature` with the partial derivatives of ``log K`` in
    ``p``, ``q`` and ``log_rho``: sums of the same terms times the integrand's
    log-derivatives, the nodes held fixed (the integral does not depend on where they
    sit), and the tails' geometric sums differentiated in closed form.

    One entry at a time in Numba, its nodes in a buffer: with NumPy's temporaries and
    ``logaddexp`` a node cost some 90 ns, and a refit that strays far from ``rho = 1``
    spent most of its time here. Returns ``(4, n)``: ``log K`` and the three partials.
    """
    out = np.empty((4, p.size))
    log_f = np.empty(n_nodes + 1)
    soft_rho = np.empty(n_nodes + 1)
    soft_one = np.empty(n_nodes + 1)
    sigmoid = np.empty(n_nodes + 1)
    for i in range(p.size):
        p_i, q_i, lr = p[i], q[i], log_rho[i]
        # the bends of _quadrature_grid: logaddexp by hand (a compiled loop)
        u, v = math.log(p_i) + lr, math.log(q_i)
        a0 = max(u, v) + math.log1p(math.exp(-abs(u - v)))
        u = math.log(p_i) - lr
        a1 = max(u, v) + math.log1p(math.exp(-abs(u - v)))
        b = p_i + q_i - 1.0
        w_lo = -a0 - _QUAD_TAIL
        span = a0 + a1 + 2.0 * _QUAD_TAIL
        h = span / n_nodes
        w_hi = w_lo + span
        top = -math.inf
        for j in range(n_nodes + 1):
            w = w_lo + h * j
            x = lr + w
            e = math.exp(-abs(x))
            soft_rho[j] = max(x, 0.0) + math.log1p(e)
            sigmoid[j] = 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)
            soft_one[j] = max(w, 0.0) + math.log1p(math.exp(-abs(w)))
            log_f[j] = w - p_i * soft_rho[j] - q_i * soft_one[j]
            top = max(top, log_f[j])
        total = d_p = d_q = d_rho = 0.0
        for j in range(n_nodes + 1):
            f = math.exp(log_f[j] - top)
            total += f
            d_p -= f * soft_rho[j]
            d_q -= f * soft_one[j]
            d_rho -= f * sigmoid[j]
        d_rho *= p_i
        # left tail, f(w) = e^w (1 - e^(a0 + w)) below w_lo: sum over w_lo - j h, j >= 1
        g1, g2 = math.exp(-h), math.exp(-2.0 * h)
        second = math.exp(2.0 * w_lo - top) * g2 / (1.0 - g2)
        total += math.exp(w_lo - top) * g1 / (1.0 - g1) - math.exp(a0) * second
        rho = math.exp(lr)
        d_p -= rho * second
        d_q -= second
        d_rho -= p_i * rho * second
        # right tail, f(w) = rho^-p e^(-b w) (1 - e^(a1 - w)) above w_hi: over w_hi + j h
        log_scale = -p_i * lr - top
        g = math.exp(-b * h)
        base = math.exp(log_scale - b * w_hi)
        sum0 = base * g / (1.0 - g)
        moment0 = base * (w_hi * g / (1.0 - g) + h * g / (1.0 - g) ** 2)
        g = math.exp(-(b + 1.0) * h)
        base = math.exp(log_scale - (b + 1.0) * w_hi)
        sum1 = base * g / (1.0 - g)
        moment1 = base * (w_hi * g / (1.0 - g) + h * g / (1.0 - g) ** 2)
        e_a1 = math.exp(a1)
        right = sum0 - e_a1 * sum1
        shared = -moment0 + e_a1 * moment1
        total += right
        d_p += -lr * right + shared - sum1 / rho
        d_q += shared - sum1
        d_rho += -p_i * right + p_i / rho * sum1
        out[0, i] = math.log(b) + math.log(h) + top + math.log(total)
        out[1, i] = 1.0 / b + d_p / total
        out[2, i] = 1.0 / b + d_q / total
        out[3, i] = d_rho / total
    return out


@njit_on_first_call
def _hyp_series(a, c, z):
    """``S = sum_n (a)_n / (c)_n z^n`` for ``0 <= z <= 0.9``, ``0 < a < c``, with
    ``dS/da``, ``dS/dc`` and ``dS/dz``. Every term is positive and at most ``z`` times
    the previous one, so the sum stops at full precision (at most ~380 terms), checked
    every 8 terms. One entry at a time in Numba: the loop stops where each entry
    converges, and nothing is allocated per term (the Pareto/NBD gradient spends
    nearly all its time here)."""
    out = np.empty((4, z.size))
    for i in range(z.size):
        a_i, c_i, z_i = a[i], c[i], z[i]
        term = 1.0
        total = d_a = d_c = d_z = 0.0  # total - 1 and the three derivatives
        sum_a = sum_c = 0.0  # sum 1/(a+k) and -sum 1/(c+k)
        n = 0
        while True:
            for _ in range(8):
                n += 1
                a_n, c_n = a_i + (n - 1), c_i + (n - 1)
                before_z = term * (a_n / c_n)
                d_z += n * before_z
                term = before_z * z_i
                sum_a += 1.0 / a_n
                sum_c -= 1.0 / c_n
                total += term
                d_a += term * sum_a
                d_c += term * sum_c
            if term <= 1e-17 * (1.0 + total) or n >= _SERIES_TERMS:
                break
        out[0, i] = total + 1.0
        out[1, i] = d_a
        out[2, i] = d_c
        out[3, i] = d_z
    return out


def pnbd_log_hyp2f1(p, q, log_rho, derivatives: bool = False):
    """``log K(p, q, rho) = log 2F1(1, p; p + q; 1 - rho)``, the Pareto/NBD's
    hypergeometric term (see the module docstring), for ``p > 0``, ``q > 0`` with
    ``p + q > 1``, and any ``rho = exp(log_rho) > 0``.

    The series where ``1/10 <= rho <= 10``, the quadrature elsewhere.

    Parameters
    ----------
    p, q, log_rho : array-like
        Broadcastable arguments; the likelihood uses ``p = r + x``, ``q = s + 1``,
        ``log_rho = log(beta + u) - log(alpha + u)``.
    derivatives : bool
        Also return the partial derivatives of ``log K`` in ``p``, ``q`` and
        ``log_rho``.

    Returns
    -------
    ndarray, or a tuple of four ndarrays with ``derivatives``

    Examples
    --------
    >>> float(np.exp(pnbd_log_hyp2f1(2.0, 3.0, 0.0)))  # rho = 1: K = 1
    1.0
    >>> round(float(np.exp(pnbd_log_hyp2f1(1.5, 1.6, np.log(0.01)))), 10)  # 2F1(1, 1.5; 3.1; 0.99)
    3.0428626033
    """
    p, q, log_rho = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (p, q, log_rho)))
    shape = p.shape
    p, q, log_rho = p.ravel(), q.ravel(), log_rho.ravel()
    out = np.empty((4 if derivatives else 1, p.size))
    near = np.abs(log_rho) <= _SERIES_LIMIT
    for mask, swap in ((near & (log_rho <= 0.0), False), (near & (log_rho > 0.0), True)):
        if not mask.any():
            continue
        pm, qm, lm = p[mask], q[mask], log_rho[mask]
        # rho <= 1: K = S(p, p + q; 1 - rho); rho > 1: K = S(q, p + q; 1 - 1/rho) / rho
        z = -np.expm1(-lm) if swap else -np.expm1(lm)
        if not derivatives:
            total = hyp_series_value(qm if swap else pm, pm + qm, z, _SERIES_TERMS)
            out[0, mask] = np.log(total) - (lm if swap else 0.0)
            continue
        total, d_a, d_c, d_z = _hyp_series(qm if swap else pm, pm + qm, z)
        out[0, mask] = np.log(total) - (lm if swap else 0.0)
        if derivatives:
            out[1, mask] = (d_c + (0.0 if swap else d_a)) / total
            out[2, mask] = (d_c + (d_a if swap else 0.0)) / total
            dz_dlog_rho = np.exp(-lm) if swap else -np.exp(lm)
            out[3, mask] = d_z * dz_dlog_rho / total - (1.0 if swap else 0.0)
    far = np.flatnonzero(~near)
    if far.size:
        # enough nodes for a step of at most 0.36 (relative error ~1e-11) everywhere
        a0 = np.logaddexp(np.log(p[far]) + log_rho[far], np.log(q[far]))
        a1 = np.logaddexp(np.log(p[far]) - log_rho[far], np.log(q[far]))
        span = float(np.max(a0 + a1)) + 2 * _QUAD_TAIL
        nodes = max(_QUAD_NODES, math.ceil(span / _QUAD_STEP))
        for start in range(0, far.size, _QUAD_BLOCK):
            idx = far[start : start + _QUAD_BLOCK]
            args = (p[idx], q[idx], log_rho[idx])
            with np.errstate(over="ignore", under="ignore"):
                if derivatives:
                    out[:, idx] = _log_k_quadrature_grad(*args, nodes)
                else:
                    out[0, idx] = _log_k_quadrature(*args, ops=NUMPY, n_nodes=nodes)
    if derivatives:
        return tuple(part.reshape(shape) for part in out)
    return out[0].reshape(shape)


def _log_k(p, q, log_rho, ops):
    """``log K`` in any namespace: NumPy and forward mode through
    :func:`pnbd_log_hyp2f1` (series or quadrature, with exact partial derivatives),
    PyTensor through the quadrature graph, which PyTensor differentiates."""
    if ops.name == "numpy":
        return pnbd_log_hyp2f1(p, q, log_rho)
    if ops.name == "dual":
        values = [v.value if isinstance(v, Dual) else np.asarray(v, float) for v in (p, q, log_rho)]
        value, d_p, d_q, d_rho = pnbd_log_hyp2f1(*values, derivatives=True)
        # first-order expansion around the values: exact value, exact derivatives
        return (value + d_p * (p - values[0]) + d_q * (q - values[1])
                + d_rho * (log_rho - values[2]))
    if getattr(ops, "name", "") == "pytensor":
        return _log_k_op()(p, q, log_rho)
    return _log_k_quadrature(p, q, log_rho, ops)


@functools.cache
def _log_k_op():
    """``log K`` as a PyTensor Op over :func:`pnbd_log_hyp2f1` (series in Numba, or
    quadrature), with its exact partial derivatives as the gradient.

    The graph of the quadrature costs some 200 terms per entry and its automatic
    gradient as much again, in every evaluation; the Op evaluates the series, about 15
    terms per entry near ``rho = 1``. Built on first use: importing the module does not
    import PyTensor. The Op runs in Python, so graphs that contain it sample through
    nutpie's C or Numba (object mode) backends or PyMC's sampler, not through JAX.
    """
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class LogKGrad(Op):
        """The three partial derivatives of ``log K`` (:func:`pnbd_log_hyp2f1`)."""

        __props__ = ()

        def make_node(self, p, q, log_rho):
            inputs = [pt.as_tensor_variable(v) for v in (p, q, log_rho)]
            return Apply(self, inputs, [inputs[0].type() for _ in range(3)])

        def perform(self, node, inputs, outputs):
            _, d_p, d_q, d_rho = pnbd_log_hyp2f1(*inputs, derivatives=True)
            for out, value in zip(outputs, (d_p, d_q, d_rho), strict=True):
                out[0] = np.asarray(value, dtype=float)

    class LogK(Op):
        """``log K(p, q, rho)`` elementwise over arguments of one shape."""

        __props__ = ()

        def make_node(self, p, q, log_rho):
            inputs = [pt.as_tensor_variable(v) for v in (p, q, log_rho)]
            return Apply(self, inputs, [inputs[0].type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = np.asarray(pnbd_log_hyp2f1(*inputs), dtype=float)

        def grad(self, inputs, output_grads):
            (g,) = output_grads
            return [g * d for d in grad_op(*inputs)]

    grad_op, value_op = LogKGrad(), LogK()

    def log_k(p, q, log_rho):
        args = pt.broadcast_arrays(*(pt.cast(pt.as_tensor_variable(v), "float64")
                                     for v in (p, q, log_rho)))
        return value_op(*args)

    return log_k


# --------------------------------------------------------------------------------------
# Likelihood and P(alive)
# --------------------------------------------------------------------------------------
def _log_death_odds(r, alpha, s, beta, x, t_x, T, ops=NUMPY):
    """log of P(died in (t_x, T] | data) / P(alive at T | data), FH 2005 note section 3.

    With ``P(u) = (alpha+u)^-(r+x) (beta+u)^-s`` and ``K_u`` the hypergeometric term,
    the likelihood is ``L = C [P(T) + s/(r+s+x) (P(t_x) K_x - P(T) K_T)]``: the
    customer is alive at ``T``, or died in ``(t_x, T]``. The second term over the first
    is ``s/(r+s+x) K_x e^d (1 - e^(log K_T - log K_x - d))`` with
    ``d = log P(t_x) - log P(T) >= 0``, computed with ``log1p`` so that it stays exact
    as ``t_x`` approaches ``T``. Rows with ``t_x == T`` (no room to die unseen) get a
    finite placeholder; callers mask them.
    """
    p = r + x
    log_rho_T = ops.log(beta + T) - ops.log(alpha + T)
    log_rho_x = ops.log(beta + t_x) - ops.log(alpha + t_x)
    log_k_T = _log_k(p, s + 1.0, log_rho_T, ops)
    log_k_x = _log_k(p, s + 1.0, log_rho_x, ops)
    gap = T - t_x
    d = p * ops.log1p(gap / (alpha + t_x)) + s * ops.log1p(gap / (beta + t_x))
    ratio = ops.minimum(ops.where(t_x < T, log_k_T - log_k_x - d, -1.0), -1e-300)
    return ops.log(s) - ops.log(p + s) + log_k_x + d + ops.log(-ops.expm1(ratio))


def pnbd_log_likelihood(r, alpha, s, beta, frequency, recency, T, ops=NUMPY):
    """Per-customer Pareto/NBD log-likelihood, FH 2005 note section 3, in log space.

    ``L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [P(T) + s/(r+s+x) (P(t_x) K_x -
    P(T) K_T)]`` with ``P(u) = (alpha+u)^-(r+x) (beta+u)^-s`` (see
    :func:`pnbd_log_hyp2f1` for ``K``); ``log L`` adds ``softplus`` of the log odds of
    the second term to ``log P(T)``, so nothing is exponentiated.

    Parameters
    ----------
    r, alpha, s, beta : float or array
        Model parameters, broadcastable against the customer arrays.
    frequency, recency, T : array
        Repeat purchases ``x``, time of last purchase ``t_x`` and age ``T``.
    ops : namespace, default NUMPY
        Array namespace (:mod:`clvmodels.models.ops`): NumPy values, forward-mode
        derivatives, or a PyTensor graph.

    Returns
    -------
    numpy.ndarray
        log L for each customer; finite for any valid input.

    Examples
    --------
    >>> # R BTYD walkthrough's CDNOW estimates (r, alpha, s, beta)
    >>> btyd = (0.55337083, 10.57951885, 0.60590727, 11.6581111)
    >>> round(float(pnbd_log_likelihood(*btyd, 2, 30.43, 38.86)), 4)
    -9.5542
    """
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T = np.asarray(T, dtype=float)
    p = r + x
    log_p_T = -p * ops.log(alpha + T) - s * ops.log(beta + T)
    odds = _log_death_odds(r, alpha, s, beta, x, t_x, T, ops)
    return (
        ops.gammaln(p) - ops.gammaln(r) + r * ops.log(alpha) + s * ops.log(beta)
        + log_p_T + ops.where(t_x < T, ops.softplus(odds), 0.0)
    )


def pnbd_probability_alive(r, alpha, s, beta, frequency, recency, T):
    """P(alive at T | x, t_x, T), FH 2005 note section 5: ``P(T) C / L``, a logistic
    function of the log odds of having died unseen; 1 where ``t_x == T``.

    Examples
    --------
    >>> btyd = (0.55337083, 10.57951885, 0.60590727, 11.6581111)
    >>> round(float(pnbd_probability_alive(*btyd, 26, 30.857143, 31)), 6)  # BTYD: 0.997874
    0.997874
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    with np.errstate(over="ignore"):
        odds = _log_death_odds(r, alpha, s, beta, x, t_x, T)
    return np.where(t_x < T, expit(-odds), 1.0)


def _purchases_while_alive(t, r_x, alpha_T, s, beta_T):
    """``E[purchases in the next t | alive]`` for ``lambda ~ Gamma(r_x, alpha_T)`` and
    ``mu ~ Gamma(s, beta_T)``: ``E[lambda] E[(1 - e^(-mu t)) / mu]``, FH 2005 note
    section 6: ``r_x/alpha_T * beta_T/(s-1) [1 - (beta_T/(beta_T+t))^(s-1)]``, written
    as ``beta_T L exprel(-(s-1) L)`` with ``L = log(1 + t/beta_T)``: exact at ``s = 1``
    too (where it is ``beta_T L``)."""
    log_growth = np.log1p(t / beta_T)
    return r_x / alpha_T * beta_T * log_growth * exprel(-(s - 1.0) * log_growth)


def pnbd_expected_purchases(t, r, alpha, s, beta, frequency, recency, T):
    """E[Y(t) | x, t_x, T]: expected purchases in the next ``t``, FH 2005 note section 6:
    P(alive) times the expected purchases of an active customer.

    Examples
    --------
    >>> btyd = (0.55337083, 10.57951885, 0.60590727, 11.6581111)
    >>> round(float(pnbd_expected_purchases(52, *btyd, 26, 30.857143, 31)), 5)  # BTYD: 25.45647
    25.45647
    """
    x, T_arr = np.asarray(frequency, dtype=float), np.asarray(T, dtype=float)
    alive = pnbd_probability_alive(r, alpha, s, beta, x, recency, T_arr)
    t = np.asarray(t, dtype=float)
    return alive * _purchases_while_alive(t, r + x, alpha + T_arr, s, beta + T_arr)


def pnbd_expected_purchases_new_customer(t, r, alpha, s, beta):
    """E[X(t)] for a customer just acquired, FH 2005 note section 4:
    ``r beta / (alpha (s - 1)) [1 - (beta / (beta + t))^(s - 1)]``; its limit
    ``r beta / alpha log(1 + t / beta)`` at ``s = 1``.

    Examples
    --------
    >>> btyd = (0.55337083, 10.57951885, 0.60590727, 11.6581111)
    >>> round(float(pnbd_expected_purchases_new_customer(52, *btyd)), 6)  # BTYD: 1.473434
    1.473434
    """
    return _purchases_while_alive(np.asarray(t, dtype=float), r, alpha, s, beta)


# --------------------------------------------------------------------------------------
# P(X(t) = n) of a new customer
# --------------------------------------------------------------------------------------
_GL_NODES, _GL_WEIGHTS = roots_legendre(16)


def _bisect(func, low, high, steps=64):
    """Where the increasing function ``func`` crosses 0 between ``low`` and ``high``."""
    for _ in range(steps):
        mid = 0.5 * (low + high)
        below = func(mid) < 0
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    return 0.5 * (low + high)


def _log_death_integral(n, t, r, alpha, s, beta):
    """``log int_0^t tau^n (alpha+tau)^-(r+n) (beta+tau)^-(s+1) d tau`` for ``t > 0``.

    In ``w = log tau`` the log-integrand ``l(w)`` is concave with slope ``n + 1`` far
    left and features of width ~1. Below ``w0`` (``c e^w0 = e^-19``,
    ``c = (r+n)/alpha + (s+1)/beta``) the integrand is
    ``alpha^-(r+n) beta^-(s+1) e^((n+1) w) (1 - c e^w)``, integrated in closed form.
    Where ``l`` falls 46 below its maximum before ``w0``, concavity makes everything
    further left negligible (below ``e^-46`` of the peak's contribution), so the range
    starts there instead. The range is split into equal panels, short enough that the
    steepest slope in it changes the integrand by at most ``e^6`` across one, with 16
    Gauss-Legendre nodes each (about 1e-12 relative).
    """
    log_a, log_b = np.log(alpha), np.log(beta)
    top = np.log(t)

    def level(w):
        return _death_level(w, n, r, s, log_a, log_b)

    def slope(w):
        return n + 1.0 - (r + n) * expit(w - log_a) - (s + 1.0) * expit(w - log_b)

    c = (r + n) / alpha + (s + 1.0) / beta
    w0 = np.minimum(top, -np.log(c) - _QUAD_TAIL)
    peak = np.where(slope(top) >= 0, top, _bisect(lambda w: -slope(w), w0, top))
    floor = level(peak) - 46.0
    cut = level(w0) < floor
    lower = np.where(cut, _bisect(lambda w: level(w) - floor, w0, peak), w0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_tail = np.where(
            cut, -np.inf,
            -(r + n) * log_a - (s + 1.0) * log_b + (n + 1.0) * w0
            - np.log(n + 1.0) + np.log1p(-c * (n + 1.0) / (n + 2.0) * np.exp(w0)),
        )
    length = top - lower
    steepest = np.maximum(np.maximum(slope(lower), -slope(top)), 1.0)
    # panels per entry, rounded up to a power of two so that entries share few sizes
    panels = 2.0 ** np.ceil(np.log2(np.clip(np.ceil(length * steepest / 6.0), 1, 1024)))
    body = np.empty(lower.shape)
    for size in np.unique(panels):
        idx = panels == size
        k = int(size)
        half = length[idx] / (2 * k)
        starts = lower[idx][:, None] + 2 * half[:, None] * np.arange(k)
        w = (starts[:, :, None] + half[:, None, None] * (_GL_NODES + 1.0)).reshape(len(half), -1)
        log_f = _death_level(w, *(v[idx][:, None] for v in (n, r, s, log_a, log_b)))
        with np.errstate(divide="ignore"):
            body[idx] = logsumexp(log_f + np.log(np.tile(_GL_WEIGHTS, k)), axis=-1) + np.log(half)
    return np.logaddexp(log_tail, body)


def _death_level(w, n, r, s, log_a, log_b):
    """The log-integrand of :func:`_log_death_integral` at ``w = log tau``."""
    return (n + 1.0) * w - (r + n) * np.logaddexp(log_a, w) - (s + 1.0) * np.logaddexp(log_b, w)


def pnbd_probability_of_purchases(n, t, r, alpha, s, beta):
    """P(X(t) = n) for a new customer (Fader & Hardie 2006, "Deriving an Expression for
    P(X(t) = x) Under the Pareto/NBD Model").

    Conditional on ``lambda`` and ``mu`` the customer is alive at ``t`` and made ``n``
    purchases, or died at some ``tau < t`` having made ``n``; mixing over the gammas,

        P(X(t) = n) = NB(n; r, alpha, t) (beta / (beta + t))^s
                      + s alpha^r beta^s Gamma(r+n) / (Gamma(r) n!)
                        int_0^t tau^n (alpha+tau)^-(r+n) (beta+tau)^-(s+1) d tau,

    with ``NB`` the negative binomial probability of ``n`` purchases in ``t``. The
    integral has positive terms only (no cancelling hypergeometric sums).

    Examples
    --------
    >>> btyd = (0.55337083, 10.57951885, 0.60590727, 11.6581111)
    >>> round(float(pnbd_probability_of_purchases(0, 39, *btyd)), 4)
    0.5935
    """
    n, t, r, alpha, s, beta = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (n, t, r, alpha, s, beta))
    )
    log_gamma = gammaln(r + n) - gammaln(r) - gammaln(n + 1.0)
    log_alive = (
        log_gamma + r * (np.log(alpha) - np.log(alpha + t))
        + xlogy(n, t / (alpha + t)) + s * (np.log(beta) - np.log(beta + t))
    )
    died = np.zeros(n.shape)
    later = t > 0
    if later.any():
        args = [v[later] for v in (n, t, r, alpha, s, beta)]
        died[later] = np.exp(
            np.log(args[4]) + args[2] * np.log(args[3]) + args[4] * np.log(args[5])
            + log_gamma[later] + _log_death_integral(*args)
        )
    return np.exp(log_alive) + died


# --------------------------------------------------------------------------------------
# Discounted expected residual transactions
# --------------------------------------------------------------------------------------
def _discounted_lifetime_integral(s, z):
    """``psi(s, z) = int_0^inf e^(-z v) (1 + v)^-s dv = z^(s-1) U(s, s, z)``.

    The trapezoid rule in ``w = log v`` as for ``K``: the integrand
    ``exp(w - z e^w - s softplus(w))`` is ``e^w (1 - (z + s) e^w)`` below
    ``-log(z + s) - 19`` (summed in closed form) and below ``e^-60 (1 + s/z)`` of the
    total beyond ``log(60 / z)``. Evaluated once per distinct ``(s, z)``.
    """
    s, z = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(z, dtype=float))
    keys, inverse = np.unique(np.stack([s.ravel(), z.ravel()]), axis=1, return_inverse=True)
    su, zu = keys
    a0 = np.log(zu + su)
    w_lo = -a0 - _QUAD_TAIL
    w_hi = np.log(60.0 / zu) + np.log1p(su / zu)
    span = w_hi - w_lo
    nodes = max(64, math.ceil(float(span.max()) / 0.3))
    h = span / nodes
    out = np.empty(su.shape)
    for start in range(0, su.size, 20_000):
        part = slice(start, start + 20_000)
        w = w_lo[part, None] + h[part, None] * np.arange(nodes + 1)
        log_f = w - zu[part, None] * np.exp(w) - su[part, None] * np.logaddexp(0.0, w)
        e_h = np.exp(-h[part])
        left = (w_lo[part] - h[part] - np.log(-np.expm1(-h[part]))
                + np.log1p(-math.exp(-_QUAD_TAIL) * e_h / (1.0 + e_h)))
        out[part] = np.log(h[part]) + np.logaddexp(logsumexp(log_f, axis=-1), left)
    return np.exp(out)[inverse.ravel()].reshape(s.shape)


def pnbd_discounted_expected_residual_transactions(
    delta, r, alpha, s, beta, frequency, recency, T
):
    """DERT: the expected number of future purchases, each discounted continuously at
    rate ``delta`` per time unit, FHL 2005 JMR eq. (2).

    Given alive at ``T``, ``lambda ~ Gamma(r+x, alpha+T)`` and ``mu ~ Gamma(s,
    beta+T)`` independently, and ``int_0^inf lambda e^(-delta t) e^(-mu t) dt`` has
    mean ``(r+x)/(alpha+T) E[1/(delta+mu)] = (r+x)/(alpha+T) (beta+T)
    psi(s, delta (beta+T))`` with ``psi(s, z) = z^(s-1) U(s, s, z)`` (Tricomi's
    confluent hypergeometric function; FHL 2005 write the same product as
    ``alpha^r beta^s delta^(s-1) Gamma(r+x+1) U(s, s; delta(beta+T)) / (Gamma(r)
    (alpha+T)^(r+x+1) L)``); times P(alive).

    Examples
    --------
    >>> # BTYD's pnbd.DERT example: full-CDNOW parameters, 15% a year as 0.0027 a week
    >>> round(float(pnbd_discounted_expected_residual_transactions(
    ...     0.0027, 0.5629966, 12.5590370, 0.4081095, 10.5148048, 7, 35, 77.86)), 4)
    1.8642
    """
    delta = np.asarray(delta, dtype=float)
    x, T_arr = np.asarray(frequency, dtype=float), np.asarray(T, dtype=float)
    alive = pnbd_probability_alive(r, alpha, s, beta, x, recency, T_arr)
    beta_T = beta + T_arr
    psi = _discounted_lifetime_integral(np.broadcast_to(s, np.shape(beta_T)), delta * beta_T)
    return alive * (r + x) / (alpha + T_arr) * beta_T * psi


# --------------------------------------------------------------------------------------
# Analytic gradient
# --------------------------------------------------------------------------------------
def pnbd_cache(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray,
               weights: np.ndarray) -> dict[str, np.ndarray]:
    """Parameter-free pieces of :func:`pnbd_neg_loglik_grad`, computed once per fit.

    The gamma-function terms depend on the frequency alone, ``log P(T)`` on ``T``
    alone (through the weights and weighted frequencies of each distinct ``T``), and the
    hypergeometric term on ``(x, u)`` for ``u`` in ``{t_x, T}``: customers share few of
    those, so each is evaluated once per distinct value.
    """
    first, _, inverse = compress_arrays([frequency])
    weights_x = np.bincount(inverse, weights=weights, minlength=len(first))
    first_T, _, inverse_T = compress_arrays([T])
    early = np.flatnonzero(recency < T)
    pair_x = np.concatenate([frequency[early], frequency[early]])
    pair_u = np.concatenate([recency[early], T[early]])
    first_pair, _, pair_index = compress_arrays([pair_x, pair_u])
    return {
        "xs": frequency[first], "weights_x": weights_x,
        "Ts": T[first_T],
        "weights_T": np.bincount(inverse_T, weights=weights, minlength=len(first_T)),
        "frequency_T": np.bincount(inverse_T, weights=weights * frequency,
                                   minlength=len(first_T)),
        "early": early, "weights_early": weights[early],
        "pair_x": pair_x[first_pair], "pair_u": pair_u[first_pair],
        "at_recency": pair_index[: early.size], "at_T": pair_index[early.size :],
    }


def pnbd_neg_loglik_grad(
    log_params: np.ndarray,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray,
    cache: Mapping[str, np.ndarray] | None = None,
) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood and its analytic gradient in log-parameters.

    ``log L = base + log P(T) + softplus(o)`` with ``o`` the log odds of having died
    unseen (:func:`pnbd_log_likelihood`). With ``sigma = expit(o)`` and
    ``o = log(s/b) + log K_x + d + log(1 - e^g)``, ``g = log K_T - log K_x - d``,

        d o = d log(s/b) + d log K_x + d d - c d g,   c = 1 / expm1(-g),

    where ``sigma c = s/b K_T / (1 + e^o)`` stays finite as ``t_x -> T``. The
    derivatives of ``log K`` come from :func:`pnbd_log_hyp2f1` on the distinct
    ``(x, u)`` pairs of ``cache`` (:func:`pnbd_cache`), and every sum over rows that
    only involves ``x``, ``T`` or a pair is taken over those distinct values.
    """
    r, alpha, s, beta = np.exp(log_params)
    cache = pnbd_cache(frequency, recency, T, weights) if cache is None else cache
    xs, weights_x = cache["xs"], cache["weights_x"]
    total = float(weights_x.sum())
    value = float(np.dot(weights_x, gammaln(r + xs))) + total * (
        -gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    )
    d_r = float(np.dot(weights_x, digamma(r + xs))) + total * (np.log(alpha) - digamma(r))
    d_alpha = total * r / alpha
    d_s = total * np.log(beta)
    d_beta = total * s / beta

    # log P(T) = -(r + x) log(alpha + T) - s log(beta + T), by distinct T
    Ts, w_T = cache["Ts"], cache["weights_T"]
    w_pT = r * w_T + cache["frequency_T"]
    log_a_T, log_b_T = np.log(alpha + Ts), np.log(beta + Ts)
    value -= float(np.dot(w_pT, log_a_T)) + s * float(np.dot(w_T, log_b_T))
    d_r -= float(np.dot(w_T, log_a_T))
    d_s -= float(np.dot(w_T, log_b_T))
    d_alpha -= float(np.dot(w_pT, 1.0 / (alpha + Ts)))
    d_beta -= s * float(np.dot(w_T, 1.0 / (beta + Ts)))

    # the hypergeometric term on distinct (x, u) pairs
    pair_u = cache["pair_u"]
    log_k, k_p, k_q, k_rho = pnbd_log_hyp2f1(
        r + cache["pair_x"], s + 1.0, np.log(beta + pair_u) - np.log(alpha + pair_u),
        derivatives=True,
    )

    # dying unseen in (t_x, T], rows with t_x < T
    e, w_e = cache["early"], cache["weights_early"]
    ix, iT = cache["at_recency"], cache["at_T"]
    p_e, t_x, T_e = r + frequency[e], recency[e], T[e]
    gap = T_e - t_x
    g_a, g_b = gap / (alpha + t_x), gap / (beta + t_x)
    d_a, d_b = np.log1p(g_a), np.log1p(g_b)
    d = p_e * d_a + s * d_b
    log_k_x = log_k[ix]
    ratio = np.minimum(log_k[iT] - log_k_x - d, -1e-300)
    log_sb = np.log(s) - np.log(p_e + s)
    odds = log_sb + log_k_x + d + np.log(-np.expm1(ratio))
    soft = np.logaddexp(0.0, odds)
    value += float(np.dot(w_e, soft))
    w_sigma = w_e * np.exp(odds - soft)
    # sigma c = exp(o - softplus(o) + g - log(1 - e^g)) = s/b K_T e^-softplus(o)
    w_sigma_c = w_e * np.exp(log_sb + log_k[iT] - soft)
    # d o = d log(s/b) + (d log K_x + d d) - c (d log K_T - d log K_x - d d)
    n_pairs = len(pair_u)
    at_x = np.bincount(ix, weights=w_sigma + w_sigma_c, minlength=n_pairs)
    at_T = np.bincount(iT, weights=w_sigma_c, minlength=n_pairs)
    w_both = w_sigma + w_sigma_c
    inv_b_term = float(np.dot(w_sigma, 1.0 / (p_e + s)))
    d_r += float(np.dot(at_x - at_T, k_p)) + float(np.dot(w_both, d_a)) - inv_b_term
    d_s += (float(np.dot(at_x - at_T, k_q)) + float(np.dot(w_both, d_b))
            + float(w_sigma.sum()) / s - inv_b_term)
    k_net = (at_x - at_T) * k_rho
    d_alpha += (-float(np.dot(k_net, 1.0 / (alpha + pair_u)))
                - float(np.dot(w_both * p_e, g_a / (alpha + T_e))))
    d_beta += (float(np.dot(k_net, 1.0 / (beta + pair_u)))
               - s * float(np.dot(w_both, g_b / (beta + T_e))))

    grad = -np.array([r * d_r, alpha * d_alpha, s * d_s, beta * d_beta])
    return -value, grad


# --------------------------------------------------------------------------------------
# Prediction methods (ParetoNBD and grouped / Bayesian variants)
# --------------------------------------------------------------------------------------
def _summary_arrays(data: pd.DataFrame) -> dict[str, np.ndarray]:
    return column_arrays(data, _SUMMARY_COLUMNS)


class ParetoNBDPredictions(BetaGeoPredictions):
    """Pareto/NBD predictions on top of ``self._params_for(data, draws)``.

    Any model whose parameters are ``r, alpha, s, beta`` (maximum likelihood or
    Bayesian, pooled or grouped) gets the prediction methods of the transaction-model
    contract (:mod:`clvmodels.models.base`) from here, plus
    :meth:`discounted_expected_residual_transactions`. The model-independent plumbing
    (validation, draws, new-customer rows, distinct-row compression) is inherited;
    every formula is the Pareto/NBD's.
    """

    def _purchases_while_alive_sums(self, t, weights, params, x, T):
        """Weighted sums over horizons of the closed form given alive (see
        :meth:`BetaGeoPredictions.expected_purchases_while_alive`)."""
        r_x, alpha_T = params["r"] + x, params["alpha"] + T
        per_time = np.stack([
            _purchases_while_alive(ti, r_x, alpha_T, params["s"], params["beta"] + T) for ti in t
        ])
        return np.tensordot(weights, per_time, axes=1)

    @property
    def alive_future_columns(self) -> tuple[str, ...] | None:
        """Given alive, a Pareto/NBD customer has ``lambda ~ Gamma(r+x, alpha+T)`` and
        ``mu ~ Gamma(s, beta+T)``: the future depends on (x, T) alone, and on its
        covariates."""
        return ("frequency", "T", *getattr(self, "covariate_columns", ()))

    def expected_purchases(
        self, t: Any, data: pd.DataFrame, *, draws: pd.DataFrame | None = None
    ) -> pd.Series | np.ndarray:
        """Expected number of purchases in the next ``t`` time units, per customer.

        Parameters
        ----------
        t : float or array
            Forecast horizon in the summary's ``time_unit`` (weeks by default): one
            value, or one per row of ``data``.
        data : DataFrame
            Summary frame with ``frequency``, ``recency`` and ``T``.
        draws : DataFrame, optional
            Parameter draws from ``param_draws``: the result is then an array
            ``(n_draws, n_rows)``, one row per draw.

        Examples
        --------
        >>> from clvmodels import ParetoNBD, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> model = ParetoNBD().fit(summary)
        >>> round(float(model.expected_purchases(t=52, data=summary).loc[1516]), 3)
        25.455
        >>> model.expected_purchases(t=39, data=summary, draws=model.param_draws(5)).shape
        (5, 2357)
        """
        return super().expected_purchases(t, data, draws=draws)

    def probability_alive(
        self, data: pd.DataFrame, *, draws: pd.DataFrame | None = None
    ) -> pd.Series | np.ndarray:
        """Probability that each customer is still active at the end of observation.

        With ``draws`` (from ``param_draws``) an array ``(n_draws, n_rows)``.

        Examples
        --------
        >>> from clvmodels import ParetoNBD, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> model = ParetoNBD().fit(summary)
        >>> round(float(model.probability_alive(data=summary).loc[1516]), 5)
        0.99787
        """
        return super().probability_alive(data, draws=draws)

    def expected_purchases_new_customer(
        self, t: Any, data: pd.DataFrame | None = None, *, draws: pd.DataFrame | None = None
    ) -> Any:
        """Expected purchases of a newly acquired customer within ``t`` time units.

        Without ``data`` for the population (a float, or an array shaped like ``t``);
        with ``data``, for a new customer of each row's group (a Series, ``t`` a scalar
        or one value per row). ``draws`` adds a leading axis of draws.

        Examples
        --------
        >>> from clvmodels import ParetoNBD, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> model = ParetoNBD().fit(summary)
        >>> round(model.expected_purchases_new_customer(t=52), 4)
        1.4734
        """
        t_arr = check_horizon(t)
        params, index = self._new_customer_params(data, draws, t_arr)
        values = pnbd_expected_purchases_new_customer(t_arr, **params)
        return shaped(values, index, draws, "expected_purchases_new_customer")

    def probability_of_purchases(
        self,
        n: Any,
        t: Any,
        data: pd.DataFrame | None = None,
        *,
        draws: pd.DataFrame | None = None,
    ) -> Any:
        """P(X(t) = n): probability that a new customer makes ``n`` purchases by ``t``.

        Without ``data`` for the population (``n`` and ``t`` broadcast); with ``data``
        for a new customer of each row's group (``n`` and ``t`` scalars or one value per
        row), a Series. ``draws`` adds a leading axis of draws.

        Examples
        --------
        >>> from clvmodels import ParetoNBD, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> model = ParetoNBD().fit(summary)
        >>> round(model.probability_of_purchases(n=0, t=39), 4)
        0.5935
        """
        n_arr = np.asarray(n)
        if np.any(n_arr < 0) or np.any(np.asarray(n_arr, float) % 1 != 0):
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        t_arr = check_horizon(t)
        params, index = self._new_customer_params(data, draws, t_arr)
        values = pnbd_probability_of_purchases(n_arr, t_arr, **params)
        return shaped(values, index, draws, "probability_of_purchases")

    def discounted_expected_residual_transactions(
        self,
        data: pd.DataFrame,
        *,
        continuous_discount_rate: float,
        draws: pd.DataFrame | None = None,
    ) -> pd.Series | np.ndarray:
        """DERT: every future purchase of each customer, discounted to the end of
        observation (FHL 2005 JMR eq. 2), over an unlimited horizon.

        Parameters
        ----------
        data : DataFrame
            Summary frame with ``frequency``, ``recency`` and ``T``.
        continuous_discount_rate : float
            ``delta > 0``, continuously compounded, per time unit of the summary
            (``time_unit_``): a purchase ``t`` units ahead counts ``exp(-delta t)``. A
            rate ``d`` per period compounded once per period is ``log(1 + d)`` per
            period; 15% a year on weekly data is ``log(1.15) / 52 = 0.00269``.
        draws : DataFrame, optional
            Parameter draws from ``param_draws``: an array ``(n_draws, n_rows)``.

        Returns
        -------
        Series (or array with ``draws``)
            Discounted expected purchases; times the expected spend per purchase, the
            customer's residual lifetime value.

        Examples
        --------
        >>> from clvmodels import ParetoNBD
        >>> model = ParetoNBD.from_params({"r": 0.5629966, "alpha": 12.5590370,
        ...                                "s": 0.4081095, "beta": 10.5148048})
        >>> one = pd.DataFrame({"frequency": [7], "recency": [35.0], "T": [77.86]})
        >>> round(float(model.discounted_expected_residual_transactions(
        ...     one, continuous_discount_rate=0.0027).iloc[0]), 4)
        1.8642
        """
        delta = float_or_nan(continuous_discount_rate)
        if not (math.isfinite(delta) and delta > 0):
            raise ValueError(
                "continuous_discount_rate must be a finite rate > 0 per time unit, got "
                f"{continuous_discount_rate!r}"
            )
        data = validate_summary(data, context="discounted_expected_residual_transactions")

        def given(params: Mapping[str, np.ndarray], rows: pd.DataFrame) -> np.ndarray:
            return pnbd_discounted_expected_residual_transactions(
                delta, **params, **_summary_arrays(rows)
            )

        if draws is not None:
            return np.asarray(given(self._params_for(data, draws), data))
        values = self._on_distinct_rows(data, given)
        return pd.Series(values, index=data.index, name="discounted_expected_residual_transactions")

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

        Given its history ``(x, t_x, T)`` a customer is alive with probability
        ``P(alive)``; if alive, ``lambda ~ Gamma(r + x, rate alpha + T)`` and
        ``mu ~ Gamma(s, rate beta + T)``, its remaining lifetime is ``Exp(mu)``
        (memoryless), and it buys at Poisson times until it dies or ``t`` ends: ``K ~
        Poisson(lambda min(lifetime, t))`` purchases, uniform over that window.

        Parameters
        ----------
        t : float
            Horizon in the model's time unit.
        data : DataFrame
            Summary rows.
        draws : DataFrame or None
            From ``param_draws``; None simulates one future at the point estimate.
        random_state : int or numpy Generator, optional
        probability_alive : array (n_draws, n_rows), optional
            This model's ``probability_alive(data, draws=draws)`` where the caller has
            it already (CLV does); computed here otherwise.

        Examples
        --------
        >>> from clvmodels import ParetoNBD, load_cdnow, rfm_summary
        >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
        ...                       observation_end="1997-09-30")
        >>> model = ParetoNBD().fit(summary)
        >>> sims = model.simulate_purchases(39, summary, draws=model.param_draws(200,
        ...                                 random_state=1), random_state=2)
        >>> sims.shape
        (200, 2357)
        """
        horizon = float(check_horizon(t))
        data = validate_summary(data, context="simulate_purchases")
        rng = np.random.default_rng(random_state)
        params = self._params_for(data, draws)
        arrays = _summary_arrays(data)
        x, T = arrays["frequency"], arrays["T"]
        shape = (1 if draws is None else n_draws(draws), len(data))
        p_alive = alive_probabilities(
            probability_alive, shape, lambda: self._probability_alive_given(params, data)
        )

        def full(v: Any) -> np.ndarray:
            return np.broadcast_to(np.asarray(v, dtype=float), shape)

        alive = rng.random(shape) < full(p_alive)
        lam = rng.gamma(full(params["r"] + x)) / full(params["alpha"] + T)
        mu = rng.gamma(full(params["s"])) / full(params["beta"] + T)
        with np.errstate(divide="ignore"):
            # a Gamma draw with a tiny shape can be 0: that customer never dies
            window = np.minimum(rng.exponential(size=shape) / mu, horizon)
        counts = np.where(alive, rng.poisson(lam * window), 0)
        return purchase_times(rng, counts, counts, window, shape)

    # Array-level hooks: CLV and scoring evaluate these under many parameter draws at
    # once (params from ``self._params_for(data, draws)``), on validated frames.
    @staticmethod
    def _expected_purchases_given(
        t: Any, params: Mapping[str, np.ndarray], data: pd.DataFrame
    ) -> np.ndarray:
        return pnbd_expected_purchases(t, **params, **_summary_arrays(data))

    @staticmethod
    def _probability_alive_given(
        params: Mapping[str, np.ndarray], data: pd.DataFrame
    ) -> np.ndarray:
        return pnbd_probability_alive(**params, **_summary_arrays(data))


# --------------------------------------------------------------------------------------
# Maximum-likelihood model
# --------------------------------------------------------------------------------------
class ParetoNBD(ParetoNBDPredictions, PurchaseDropoutModel):
    """Pareto/NBD transaction model (SMC 1987) fitted by maximum likelihood.

    Parameters
    ----------
    penalizer : float, default 0
        Optional ridge penalty (per customer) on the log-parameters around their
        natural centre. Not needed on well-behaved data; a small value (1e-3)
        regularises data that cannot identify every parameter.
    purchase_covariates : list of str, optional
        Summary columns that scale each customer's purchase rate:
        ``alpha_i = alpha exp(-gamma_p' z_i)``, so ``E[lambda_i] = r / alpha_i`` grows
        by ``exp(gamma_p' z_i)`` (CLVTools ``pnbd`` with static covariates, its
        ``trans`` coefficients; :mod:`clvmodels.models.covariates`).
    dropout_covariates : list of str, optional
        Columns that scale the dropout rate: ``beta_i = beta exp(-gamma_d' z_i)``, so
        ``E[mu_i] = s / beta_i`` grows by ``exp(gamma_d' z_i)`` (CLVTools' ``life``
        coefficients).
    constrain : list of str or dict, optional
        Columns whose purchase and dropout coefficients are one shared coefficient
        (CLVTools ``names.cov.constr``).
    covariate_penalty : float or dict, default 0
        L2 penalty per customer on the coefficients (CLVTools ``reg.lambdas``).

    Attributes
    ----------
    params_ : Series
        Estimates of ``r, alpha, s, beta`` (``alpha`` and ``beta`` in the summary's
        time unit), then the coefficients with covariates.
    covariate_design_ : CovariateDesign or None
        The fitted covariates: categorical levels and their reference, coefficients.
    log_likelihood_, aic_, bic_ : float
        Fit statistics on the customers the model was fitted on.
    covariance_log_ : DataFrame
        Asymptotic covariance of the log-parameters (inverse observed information).
    time_unit_ : str or None
        The time unit recorded on the summary frame (e.g. ``"W"``).

    Examples
    --------
    >>> from clvmodels import ParetoNBD, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> model = ParetoNBD().fit(summary)
    >>> model.params_.round(3).to_dict()
    {'r': 0.553, 'alpha': 10.578, 's': 0.606, 'beta': 11.669}
    >>> round(model.log_likelihood_, 2)
    -9594.98

    With covariates, CLVTools' vignette example (version 0.5.0: LL -3481.6392,
    ``trans.Gender`` 1.1772, ``trans.Channel`` 0.5996):

    >>> from clvmodels import load_apparel, load_apparel_covariates
    >>> apparel = rfm_summary(load_apparel(), "customer_id", "date",
    ...                       observation_end="2005-10-10").assign(**load_apparel_covariates())
    >>> both = ["gender", "channel"]
    >>> model = ParetoNBD(purchase_covariates=both, dropout_covariates=both).fit(apparel)
    >>> round(model.log_likelihood_, 2), model.params_[["purchase:gender",
    ...                                                  "purchase:channel"]].round(2).tolist()
    (-3481.64, [1.18, 0.6])
    """

    param_names = ("r", "alpha", "s", "beta")
    #: alpha_i = alpha exp(-gamma_p' z), beta_i = beta exp(-gamma_d' z) (Fader & Hardie
    #: 2007 note 019; CLVTools ``pnbd_staticcov``).
    covariate_effects: ClassVar[CovariateEffects] = {
        "purchase": (("alpha", -1.0),),
        "dropout": (("beta", -1.0),),
    }


    @staticmethod
    def log_likelihood(params, data, ops):
        """FH 2005 note section 3: :func:`pnbd_log_likelihood`."""
        return pnbd_log_likelihood(**params, **data, ops=ops)

    def _check_data(self, data: pd.DataFrame) -> None:
        if not (data["frequency"].to_numpy() > 0).any():
            raise DataValidationError(
                f"ParetoNBD needs repeat purchases to learn from, but none of the "
                f"{len(data)} customers has frequency > 0 (check the observation period "
                "and `freq`)"
            )

    # The analytic gradient evaluates the hypergeometric term once per distinct
    # (frequency, time) pair: benchmarks/bench_mle.py measures it against the automatic
    # gradient of the same likelihood.
    def _with_cache(self, arrays, weights):
        return {**arrays, "_cache": pnbd_cache(arrays["frequency"], arrays["recency"],
                                               arrays["T"], weights)}

    def _neg_loglik_grad(self, theta, arrays, weights):
        return pnbd_neg_loglik_grad(
            theta, arrays["frequency"], arrays["recency"], arrays["T"], weights,
            arrays.get("_cache"),
        )

    def _neg_loglik(self, theta, arrays, weights):
        # the final log-likelihood, through the same distinct-pair evaluation
        return self._neg_loglik_grad(theta, arrays, weights)[0]

    def _log_reference(self, arrays, weights):
        scale = float(np.average(arrays["T"], weights=weights))
        return np.log([1.0, scale, 1.0, scale])

    def _initial_values(self, arrays, weights):
        scale = float(np.average(arrays["T"], weights=weights))
        starts = [
            (0.5, scale / 3, 0.5, scale / 3),
            (1.0, scale, 1.0, scale),
            (0.2, scale / 10, 1.0, 3 * scale),
            (2.0, 3 * scale, 0.2, scale / 10),
        ]
        return [np.log(s) for s in starts]

    @classmethod
    def from_lifetimes(cls, fitter: Any) -> ParetoNBD:
        """Build a fitted :class:`ParetoNBD` from a fitted ``lifetimes.ParetoNBDFitter``.

        lifetimes keeps no Hessian for this model, so the result predicts but has no
        covariance (``param_draws`` needs a fit here); its log-likelihood is evaluated
        on the data lifetimes recorded. lifetimes records no time unit: set
        ``model.time_unit_`` if CLV needs it.

        Examples
        --------
        >>> from lifetimes import ParetoNBDFitter  # doctest: +SKIP
        >>> model = ParetoNBD.from_lifetimes(ParetoNBDFitter().fit(f, r, T))  # doctest: +SKIP
        """
        params = getattr(fitter, "params_", None)
        if params is None:
            raise ValueError("the lifetimes fitter is not fitted: call its fit() first")
        params = {k: float(params[k]) for k in cls.param_names}
        data = getattr(fitter, "data", None)
        n_obs, log_lik = 0, float("nan")
        if data is not None and {"frequency", "recency", "T", "weights"} <= set(data):
            weights = data["weights"].to_numpy(dtype=float)
            n_obs = round(float(weights.sum()))
            per_row = pnbd_log_likelihood(
                *params.values(), *(data[c].to_numpy(dtype=float) for c in _SUMMARY_COLUMNS)
            )
            log_lik = float(np.dot(weights, per_row))
        model = cls(penalizer=float(getattr(fitter, "penalizer_coef", 0.0)))
        model._set_fitted(params, log_likelihood=log_lik, n_obs=n_obs)
        return model
