"""Compiled hypergeometric series.

``hyp_series_value``: the Pareto/NBD's ``S(a, c; z) = sum_n (a)_n / (c)_n z^n`` for
``0 <= z <= 0.9`` and ``0 < a < c``: the same terms, added in the same order and stopped
by the same rule (checked every 8 terms) as the loop of :mod:`clvmodels.models.pareto_nbd`
that also carries the partial derivatives that fitting needs. Predictions (P(alive),
expected purchases) need only the value, for millions of customer-draw pairs; a loop per
entry that stops when that entry has converged does in one pass what the vectorised loop
does in ~380 passes over shrinking arrays.

``purchases_while_alive_sums``: the beta-geometric family's expected purchases of a
customer known to be alive at several horizons at once, combined with weights (the CLV's
discounted sum over its period ends and the cumulative value at the horizon). By
Euler's transformation ``2F1(s, b'; c; z) = (1-z)^(c-s-b') 2F1(c-s, a-1; c; z)`` with
``c = a + b' - 1``, so that (FHL 2005 eq. 10, ``z = t/(h+t)``)

    E[Y(t) | alive] = c/(a-1) (1 - (1-z)^(a-1) 2F1(c-s, a-1; c; z))
                    = c (-log(1-z) exprel((a-1) log(1-z)) - (1-z)^(a-1) S'(z)),

``S'(z) = sum_{k>=1} (c-s)_k (a)_{k-1} / ((c)_k k!) z^k`` (the series without its first
term, divided by ``a-1``: finite at ``a = 1``). The coefficients do not depend on ``t``,
so every horizon shares them: one chain of divisions per customer and draw where
scipy's ``hyp2f1`` runs one per horizon. The parameters of this form do not grow with
the customer's purchases ``x`` except ``c``, which only speeds convergence.
"""

from __future__ import annotations

import numpy as np

from clvmodels.models._jit import njit_on_first_call


@njit_on_first_call
def hyp_series_value(a: np.ndarray, c: np.ndarray, z: np.ndarray, max_terms: int) -> np.ndarray:
    """``S(a, c; z)`` per entry (1-d arrays of one length)."""
    out = np.empty(z.size)
    for i in range(z.size):
        ai, ci, zi = a[i], c[i], z[i]
        term, total = 1.0, 0.0
        n = 0
        while True:
            for _ in range(8):
                n += 1
                term = term * ((ai + (n - 1)) / (ci + (n - 1))) * zi
                total += term
            if term <= 1e-17 * (1.0 + total) or n >= max_terms:
                break
        out[i] = total + 1.0
    return out


@njit_on_first_call
def purchases_while_alive_sums(
    t: np.ndarray,
    weights: np.ndarray,
    s: np.ndarray,
    h: np.ndarray,
    a: np.ndarray,
    b_x: np.ndarray,
    max_terms: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``sum_j weights[q, j] E[Y(t_j) | alive]`` per entry, and where the series is not
    to be trusted.

    ``t`` holds the horizons (non-negative), ``weights`` is ``(n_sums, len(t))``; ``s``,
    ``h``, ``a``, ``b_x`` (1-d, one length) are the Gamma posterior of the purchase rate
    (shape ``r + x``, rate ``alpha + T``) and the Beta posterior of the dropout
    probability. Returns the sums ``(n_sums, n)`` and a mask of the entries to compute
    another way: the series did not converge in ``max_terms`` terms, gave a value that
    is not finite, or lost more than four digits to cancellation (large ``a``, ``c``
    near a non-positive integer); their sums are NaN.
    """
    n_times, n = t.size, s.size
    n_sums = weights.shape[0]
    out = np.empty((n_sums, n))
    untrusted = np.zeros(n, dtype=np.bool_)
    coefficients = np.empty(max_terms + 8)
    z = np.empty(n_times)
    partial = np.empty(n_times)
    for i in range(n):
        hi = h[i]
        c = a[i] + b_x[i] - 1.0
        upper = c - s[i]
        lower = a[i] - 1.0
        z_max = 0.0
        for j in range(n_times):
            z[j] = t[j] / (hi + t[j])
            z_max = max(z_max, z[j])
        # The coefficients u_k of S'(z) = sum_{k>=1} u_k z^k, until the series has
        # converged at the largest z (and so at every other).
        coefficient = upper / c
        power_max = z_max
        absolute = 0.0
        n_terms = 0
        converged = False
        while n_terms < max_terms:
            for _ in range(8):
                coefficients[n_terms] = coefficient
                n_terms += 1
                term = abs(coefficient) * power_max
                absolute += term
                power_max *= z_max
                coefficient *= (upper + n_terms) * (lower + n_terms) / (
                    (c + n_terms) * (n_terms + 1.0)
                )
            # What is left is at most the last term times q / (1 - q), q the larger of
            # the current ratio of terms and its limit z (approached from either side).
            ratio = max(abs(coefficient / coefficients[n_terms - 1]) * z_max, z_max)
            if ratio < 1.0 and term * ratio <= 1e-17 * (1.0 - ratio) * absolute:
                converged = True
                break
        # Horner's rule for every horizon at once: independent chains, one per horizon.
        for j in range(n_times):
            partial[j] = 0.0
        for k in range(n_terms - 1, -1, -1):
            u = coefficients[k]
            for j in range(n_times):
                partial[j] = partial[j] * z[j] + u
        trusted = converged
        for q in range(n_sums):
            out[q, i] = 0.0
        for j in range(n_times):
            log_survive = -np.log1p(t[j] / hi)  # log(1 - z)
            scaled = lower * log_survive
            shrink = np.expm1(scaled)
            exprel = shrink / scaled if scaled != 0.0 else 1.0
            survive = 1.0 + shrink if scaled > -1.0 else np.exp(scaled)
            first = -log_survive * exprel
            value = c * (first - survive * partial[j] * z[j])
            # sum_k |u_k| z_j^k <= z_j / z_max * sum_k |u_k| z_max^k, as z_j <= z_max
            size = abs(first) + survive * absolute * (z[j] / z_max if z_max > 0.0 else 0.0)
            if not (np.isfinite(value) and abs(value) * 1e4 >= abs(c) * size):
                trusted = False
            for q in range(n_sums):
                out[q, i] += weights[q, j] * value
        if not trusted:
            untrusted[i] = True
            for q in range(n_sums):
                out[q, i] = np.nan
    return out, untrusted
