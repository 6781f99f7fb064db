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
