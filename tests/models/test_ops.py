"""Array namespaces: forward-mode derivatives against PyTensor's symbolic gradient and
finite differences, on the package's own likelihoods and on each operation."""

from __future__ import annotations

import numpy as np
import pytest

from clvmodels.models import ops
from clvmodels.models.beta_geo import bgnbd_log_likelihood
from clvmodels.models.gamma_gamma import gamma_gamma_log_likelihood

RNG = np.random.default_rng(11)
N = 50
X = RNG.integers(0, 6, N).astype(float)
T_ = RNG.uniform(5.0, 40.0, N)
TX = np.where(X > 0, T_ * RNG.uniform(0.05, 1.0, N), 0.0)
M = RNG.gamma(3.0, 10.0, N)


def _central_difference(func, x, h=1e-6):
    grad = np.empty(len(x))
    for j in range(len(x)):
        up, down = np.array(x, float), np.array(x, float)
        up[j] += h
        down[j] -= h
        grad[j] = (func(up) - func(down)) / (2 * h)
    return grad


UNARY = {
    "exp": (lambda v: v, -1.0, 2.0),
    "log": (lambda v: v, 0.1, 5.0),
    "log1p": (lambda v: v, -0.5, 5.0),
    "expm1": (lambda v: v, -2.0, 2.0),
    "sqrt": (lambda v: v, 0.1, 9.0),
    "gammaln": (lambda v: v, 0.05, 30.0),
    "digamma": (lambda v: v, 0.2, 30.0),
    "softplus": (lambda v: v, -40.0, 40.0),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_derivatives_match_finite_differences(name):
    _, low, high = UNARY[name]
    values = np.linspace(low, high, 7)
    fn = getattr(ops.DUAL, name)
    for v in values:
        value, grad = ops.value_and_grad(lambda p, fn=fn: fn(p[0]), [v])
        plain = getattr(ops.NUMPY, name)
        assert value == pytest.approx(float(plain(v)), rel=1e-14)
        expected = _central_difference(lambda p, plain=plain: float(plain(p[0])), [v])
        assert grad[0] == pytest.approx(expected[0], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", ["betaln", "logaddexp", "maximum", "minimum"])
def test_binary_derivatives_match_finite_differences(name):
    dual, plain = getattr(ops.DUAL, name), getattr(ops.NUMPY, name)
    for a, b in [(0.3, 2.5), (4.0, 0.7), (12.0, 30.0), (1.5, -3.0)]:
        if name == "betaln" and b <= 0:
            continue
        value, grad = ops.value_and_grad(lambda p, f=dual: f(p[0], p[1]), [a, b])
        assert value == pytest.approx(float(plain(a, b)), rel=1e-14)
        expected = _central_difference(lambda p, f=plain: float(f(p[0], p[1])), [a, b])
        # Central differences of values near 30 carry ~1e-9 of rounding noise.
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-7)


def test_arithmetic_and_broadcasting_against_arrays():
    data = np.array([1.0, 2.0, 3.0])

    def f(p):
        a, b = p
        return ((a * data + b) / (1.0 + a) - data / b + (a**2.5) * data + 2.0**b - (b**a)).sum()

    def plain(p):
        a, b = p
        out = (a * data + b) / (1.0 + a) - data / b + (a**2.5) * data + 2.0**b - b**a
        return float(out.sum())

    value, grad = ops.value_and_grad(f, [0.7, 1.9])
    assert value == pytest.approx(plain([0.7, 1.9]), rel=1e-14)
    np.testing.assert_allclose(grad, _central_difference(plain, [0.7, 1.9]), rtol=1e-6)


def test_where_takes_the_derivative_of_the_chosen_branch():
    mask = np.array([True, False, True])
    value, grad = ops.value_and_grad(
        lambda p: ops.DUAL.where(mask, p[0] * 2.0, p[1] * np.array([1.0, 3.0, 1.0])).sum(),
        [1.0, 1.0],
    )
    assert value == 7.0
    np.testing.assert_array_equal(grad, [4.0, 3.0])


def _bgnbd_total(theta, namespace):
    r, alpha, a, b = (namespace.exp(v) for v in theta)
    per_row = bgnbd_log_likelihood(r, alpha, a, b, X, TX, T_, ops=namespace)
    return (per_row * np.arange(1, N + 1)).sum()


def _gamma_gamma_total(theta, namespace):
    p, q, gamma = (namespace.exp(v) for v in theta)
    repeat = X > 0
    return gamma_gamma_log_likelihood(p, q, gamma, X[repeat], M[repeat], ops=namespace).sum()


@pytest.mark.parametrize(
    ("total", "theta"),
    [
        (_bgnbd_total, np.log([0.24, 4.4, 0.79, 2.4])),
        (_bgnbd_total, np.log([3.0, 0.05, 40.0, 0.02])),
        (_gamma_gamma_total, np.log([6.25, 3.74, 15.44])),
    ],
)
def test_dual_gradient_equals_pytensor_symbolic_gradient(total, theta):
    import pytensor
    import pytensor.tensor as pt

    value, grad = ops.value_and_grad(lambda p: total(p, ops.DUAL), theta)
    variable = pt.dvector("theta")
    graph = total([variable[i] for i in range(len(theta))], ops.pytensor_ops())
    compiled = pytensor.function([variable], [graph, pytensor.grad(graph, variable)])
    pt_value, pt_grad = compiled(np.asarray(theta))
    assert value == pytest.approx(float(pt_value), rel=1e-12)
    # Gradient entries are sums of large terms that nearly cancel (Gamma-Gamma's d/dq
    # is ~9 from terms of ~1e3): agreement is to the rounding of those terms.
    np.testing.assert_allclose(grad, pt_grad, rtol=1e-7)
    assert value == pytest.approx(float(total(theta, ops.NUMPY)), rel=1e-14)


def test_value_and_grad_needs_a_scalar():
    with pytest.raises(ValueError, match="scalar"):
        ops.value_and_grad(lambda p: p[0] * np.ones(3), [1.0])


def test_numpy_arrays_on_the_left_defer_to_duals():
    dual = ops.seed([2.0])[0]
    out = np.array([1.0, 3.0]) * dual
    assert isinstance(out, ops.Dual)
    np.testing.assert_array_equal(out.grad, [[1.0, 3.0]])


def test_logsumexp_reduces_an_axis_with_softmax_derivatives():
    data = np.array([[0.5, -1.0, 700.0], [2.0, 3.0, -4.0]])

    def f(p, ns):
        terms = p[0] * data + p[1] * data**2 / 100.0
        return (ns.logsumexp(terms, axis=-1) * np.array([1.0, 2.0])).sum()

    point = [0.7, 0.3]
    value, grad = ops.value_and_grad(lambda p: f(p, ops.DUAL), point)
    assert value == pytest.approx(f(point, ops.NUMPY), rel=1e-14)
    assert np.isfinite(value)  # no overflow from exp(490)
    expected = _central_difference(lambda p: f(p, ops.NUMPY), point, h=1e-7)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
    rows = ops.DUAL.logsumexp(ops.Dual(data, np.ones((1, 2, 3))), axis=0)
    np.testing.assert_allclose(rows.value, ops.NUMPY.logsumexp(data, axis=0))
    np.testing.assert_allclose(rows.grad, np.ones((1, 3)))
