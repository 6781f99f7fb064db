"""The compiled hypergeometric series behind Pareto/NBD predictions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import hyp2f1

from clvmodels.models._hypergeometric import hyp_series_value
from clvmodels.models.pareto_nbd import pnbd_log_hyp2f1


def test_series_value_is_gauss_hypergeometric_function():
    # S(a, c; z) = 2F1(1, a; c; z); SciPy is the oracle. The series stops below 1e-17
    # of its sum, SciPy is accurate to ~1e-14 relative here: compare to 1e-12.
    rng = np.random.default_rng(0)
    a = rng.uniform(0.05, 40.0, 5000)
    c = a + rng.uniform(0.05, 40.0, 5000)
    z = rng.uniform(0.0, 0.9, 5000)
    np.testing.assert_allclose(hyp_series_value(a, c, z, 600), hyp2f1(1.0, a, c, z), rtol=1e-12)
    assert hyp_series_value(np.array([2.0]), np.array([3.0]), np.array([0.0]), 600)[0] == 1.0


@pytest.mark.parametrize("log_rho", [-2.0, -0.3, 0.0, 0.4, 2.2])
def test_value_alone_agrees_with_the_value_beside_derivatives(log_rho):
    # One path gives the value only (compiled), the other value and derivatives
    # (NumPy); both add the same terms in the same order: agreement to rounding.
    p = np.linspace(0.3, 25.0, 50)
    q = np.linspace(1.1, 4.0, 50)
    value = pnbd_log_hyp2f1(p, q, log_rho)
    with_derivatives = pnbd_log_hyp2f1(p, q, log_rho, derivatives=True)[0]
    np.testing.assert_allclose(value, with_derivatives, rtol=1e-13, atol=1e-13)


# -- the beta-geometric family's purchases while alive, all horizons at once ----------
def _while_alive_exact(t, s, h, a, b_x):
    """FHL 2005 eq. (10) given alive, ``c/(a-1) (1 - (h/(h+t))^s 2F1(s, b_x; c; t/(h+t)))``,
    at 40 digits (the removable singularity at ``a = 1`` moved off by 1e-25)."""
    import mpmath

    mpmath.mp.dps = 40
    t, s, h, a, b_x = (mpmath.mpf(float(v)) for v in (t, s, h, a, b_x))
    if a == 1:
        a += mpmath.mpf("1e-25")
    c = a + b_x - 1
    return float(c / (a - 1) * (1 - (h / (h + t)) ** s * mpmath.hyp2f1(s, b_x, c, t / (h + t))))


def test_purchases_while_alive_sums_match_arbitrary_precision():
    from clvmodels.models._hypergeometric import purchases_while_alive_sums

    # A customer's posterior: s = r + x, h = alpha + T, b_x = b + x.
    rng = np.random.default_rng(3)
    n = 120
    r, alpha, a, b = (rng.uniform(lo, hi, n) for lo, hi in [(0.05, 5), (0.5, 60), (0.05, 8),
                                                             (0.1, 30)])
    x, T = rng.integers(0, 200, n).astype(float), rng.uniform(1.0, 500.0, n)
    a[:4] = 1.0  # the closed form's removable singularity: the series has none
    a[4:8] = 1.0 + 1e-7
    s, h, b_x = r + x, alpha + T, b + x
    t = np.array([0.0, 1.0, 7.0, 30.0, 91.0, 365.0])
    sums, untrusted = purchases_while_alive_sums(t, np.eye(t.size), s, h, a, b_x, 2000)
    rows = list(zip(s, h, a, b_x, strict=True))
    exact = np.array([[_while_alive_exact(tj, *v) for v in rows] for tj in t])
    # Flagged only where the last horizon is far beyond alpha + T (z > 0.95: slow)
    # or s far beyond c (r > a + b - 1: terms that alternate and cancel).
    c = a + b_x - 1
    weak = (t[-1] / (h + t[-1]) > 0.95) | (s > c + 5)
    assert np.all(weak[untrusted]) and untrusted.sum() < 0.1 * n
    assert np.all(np.isnan(sums[:, untrusted]))
    assert np.all(sums[0, ~untrusted] == 0.0)
    np.testing.assert_allclose(sums[1:, ~untrusted], exact[1:, ~untrusted], rtol=1e-11)


def test_purchases_while_alive_sums_are_weighted_sums_of_the_horizons():
    from clvmodels.models._hypergeometric import purchases_while_alive_sums

    rng = np.random.default_rng(4)
    s, h = rng.uniform(0.2, 20.0, 50), rng.uniform(20.0, 90.0, 50)
    a, b_x = rng.uniform(0.3, 3.0, 50), rng.uniform(1.0, 30.0, 50)
    t = np.arange(1.0, 13.0) * 4.0
    each, _ = purchases_while_alive_sums(t, np.eye(12), s, h, a, b_x, 2000)
    weights = rng.uniform(-1.0, 1.0, (3, 12))
    combined, untrusted = purchases_while_alive_sums(t, weights, s, h, a, b_x, 2000)
    assert not untrusted.any()
    np.testing.assert_allclose(combined, weights @ each, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "s, h, a, b_x, why",
    [
        (0.24, 4.4, 0.79, 2.43, "z = 1000/1004.4: more than 2000 terms"),
        (5.0, 10.0, 500.0, 3.0, "a = 500: terms grow like (1-z)^-499 before they fall"),
        (5.0, 10.0, 0.5, 1e5, "c/s = 2e4: the two parts cancel to five digits"),
    ],
)
def test_purchases_while_alive_sums_flag_what_they_cannot_give(s, h, a, b_x, why):
    from clvmodels.models._hypergeometric import purchases_while_alive_sums

    t = np.array([1.0, 1000.0])
    arrays = [np.array([v]) for v in (s, h, a, b_x)]
    sums, untrusted = purchases_while_alive_sums(t, np.eye(2), *arrays, 2000)
    assert untrusted[0], why
    assert np.all(np.isnan(sums))
