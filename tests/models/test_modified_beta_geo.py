"""ModifiedBetaGeo (MBG/NBD): published numbers, lifetimes agreement, properties, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clvmodels import BetaGeo, ModifiedBetaGeo, load
from clvmodels.errors import DataValidationError, NotFittedError
from clvmodels.models.modified_beta_geo import (
    mbgnbd_expected_purchases,
    mbgnbd_expected_purchases_new_customer,
    mbgnbd_log_likelihood,
    mbgnbd_neg_loglik_grad,
    mbgnbd_probability_alive,
    mbgnbd_probability_of_purchases,
    simulate_mbgnbd,
)

NAMES = ModifiedBetaGeo.param_names
# R BTYDplus's MBG/NBD estimates on the CDNOW calibration data, to 3 decimals, as
# quoted by lifetimes: tests/test_estimation.py,
# TestModifiedBetaGammaFitter.test_params_out_is_close_to_BTYDplus.
BTYDPLUS_CDNOW = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}


@pytest.fixture(scope="module")
def fitted(cdnow_summary):
    return ModifiedBetaGeo().fit(cdnow_summary)


def _arrays(summary):
    return tuple(summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))


# -- published values ------------------------------------------------------------------
def test_parameters_match_btydplus(fitted):
    # the published values are rounded to 3 decimals: half a unit of the last digit
    for name, value in BTYDPLUS_CDNOW.items():
        assert fitted.params_[name] == pytest.approx(value, abs=5e-4)
    assert fitted.n_obs_ == 2357 and fitted.time_unit_ == "W"


def test_mbgnbd_fits_cdnow_slightly_better_than_bgnbd(fitted, cdnow_summary):
    # Same number of parameters; on CDNOW the MBG/NBD optimum is 0.29 higher
    # (-9582.14 against FHL 2005's -9582.43).
    assert fitted.log_likelihood_ == pytest.approx(-9582.1357, abs=1e-3)
    assert fitted.log_likelihood_ > BetaGeo().fit(cdnow_summary).log_likelihood_


def test_customers_without_repeat_purchases_may_have_dropped_out(fitted):
    rows = pd.DataFrame({"frequency": [0, 0, 0], "recency": [0.0, 0.0, 0.0],
                         "T": [1.0, 10.0, 50.0]})
    p = fitted.probability_alive(data=rows).to_numpy()
    assert np.all(p < 1) and np.all(np.diff(p) < 0)
    # P(alive | x = 0, T) -> b / (a + b) as T -> 0: only the dropout at time 0 remains
    a, b = fitted.params_["a"], fitted.params_["b"]
    tiny = rows.assign(T=1e-9).iloc[:1]
    assert fitted.probability_alive(data=tiny).iloc[0] == pytest.approx(b / (a + b), rel=1e-8)


# -- lifetimes as an oracle ------------------------------------------------------------
def _lifetimes_fit(summary):
    import lifetimes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lifetimes.ModifiedBetaGeoFitter().fit(
            summary["frequency"], summary["recency"], summary["T"]
        )


def test_agrees_with_lifetimes(cdnow_summary, fitted):
    oracle = _lifetimes_fit(cdnow_summary)
    x, tx, T = _arrays(cdnow_summary)
    # Same optimum: both evaluated with one function (lifetimes rescales times).
    oracle_ll = mbgnbd_log_likelihood(*oracle.params_[list(NAMES)], x, tx, T).sum()
    assert fitted.log_likelihood_ >= oracle_ll - 1e-8 * abs(oracle_ll)
    assert fitted.log_likelihood_ == pytest.approx(oracle_ll, rel=1e-7)
    for name in NAMES:
        assert fitted.params_[name] == pytest.approx(oracle.params_[name], rel=2e-3)
    # Same predictions at the same parameters, to 1e-6 relative.
    same = ModifiedBetaGeo.from_params(oracle.params_[list(NAMES)].to_dict())
    f, r, T_ = cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    for t in (1.0, 39.0, 52.0, 200.0):
        np.testing.assert_allclose(
            same.expected_purchases(t=t, data=cdnow_summary).to_numpy(),
            oracle.conditional_expected_number_of_purchases_up_to_time(t, f, r, T_),
            rtol=1e-6,
        )
    np.testing.assert_allclose(
        same.probability_alive(data=cdnow_summary).to_numpy(),
        oracle.conditional_probability_alive(f, r, T_),
        rtol=1e-6,
    )
    times = np.array([0.1429, 0.5, 1.0, 10.0, 39.0, 78.0])
    np.testing.assert_allclose(
        same.expected_purchases_new_customer(t=times),
        oracle.expected_number_of_purchases_up_to_time(times),
        rtol=1e-6,
    )
    # lifetimes' PMF evaluates gamma functions directly: fine for small n
    for n in (0, 1, 3, 7, 12):
        for t in (2.0, 39.0):
            assert same.probability_of_purchases(n=n, t=t) == pytest.approx(
                oracle.probability_of_n_purchases_up_to_time(t, n), rel=1e-6
            )


# -- numerics and properties -----------------------------------------------------------
def test_analytic_gradient_equals_automatic_and_finite_differences(cdnow_summary, fitted):
    model = ModifiedBetaGeo()
    x, tx, T = _arrays(cdnow_summary)
    arrays = {"frequency": x, "recency": tx, "T": T}
    weights = np.random.default_rng(0).integers(1, 4, len(x)).astype(float)
    rng = np.random.default_rng(1)
    for _ in range(5):
        theta = np.log(fitted.params_.to_numpy()) + rng.normal(0.0, 0.5, 4)
        analytic = model._neg_loglik_grad(theta, model._with_cache(dict(arrays), weights), weights)
        automatic = model.automatic_neg_loglik_grad(theta, arrays, weights)
        assert analytic[0] == pytest.approx(automatic[0], rel=1e-12)
        np.testing.assert_allclose(analytic[1], automatic[1], rtol=1e-8, atol=1e-6)
        for j in range(4):
            h = np.zeros(4)
            h[j] = 1e-6
            numeric = (mbgnbd_neg_loglik_grad(theta + h, x, tx, T, weights)[0]
                       - mbgnbd_neg_loglik_grad(theta - h, x, tx, T, weights)[0]) / 2e-6
            assert analytic[1][j] == pytest.approx(numeric, rel=1e-5, abs=1e-4)


def test_log_likelihood_sum_matches_objective(cdnow_summary, fitted):
    per_customer = mbgnbd_log_likelihood(*fitted.params_.to_numpy(), *_arrays(cdnow_summary))
    assert per_customer.sum() == pytest.approx(fitted.log_likelihood_, rel=1e-10)


valid_customer = st.tuples(
    st.integers(min_value=0, max_value=20_000),
    st.floats(min_value=1e-4, max_value=1e5, allow_nan=False),
    st.floats(min_value=0.0, max_value=1.0),
).map(lambda v: (v[0], 0.0 if v[0] == 0 else v[1] * v[2], v[1]))
valid_params = st.tuples(*(st.floats(min_value=1e-3, max_value=1e3) for _ in range(4)))


@settings(max_examples=300, deadline=None)
@given(valid_customer, valid_params)
def test_log_likelihood_finite_and_p_alive_a_probability(customer, params):
    x, tx, T = customer
    assert np.isfinite(mbgnbd_log_likelihood(*params, x, tx, T))
    value, grad = mbgnbd_neg_loglik_grad(np.log(params), np.array([x]), np.array([tx]),
                                        np.array([T]), np.ones(1))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert 0.0 <= mbgnbd_probability_alive(*params, x, tx, T) <= 1.0


@pytest.mark.parametrize(("x", "tx", "T"), [(0, 0.0, 1e-9), (0, 0.0, 1e5), (1e4, 1e5, 1e5),
                                            (3, 5.0, 5.0), (1e4, 1e-3, 1e5)])
def test_extreme_valid_rows_are_finite(x, tx, T):
    params = (0.525, 6.183, 0.891, 1.614)
    assert np.isfinite(mbgnbd_log_likelihood(*params, x, tx, T))
    value = mbgnbd_expected_purchases(52.0, *params, x, tx, T)
    assert np.isfinite(value) and value >= 0


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(
        st.integers(min_value=0, max_value=500),
        st.floats(min_value=0.1, max_value=500),
        st.floats(min_value=0.0, max_value=1.0),
    ).map(lambda v: (v[0], 0.0 if v[0] == 0 else v[1] * v[2], v[1])),
    st.tuples(
        st.floats(min_value=0.05, max_value=20),
        st.floats(min_value=0.1, max_value=100),
        st.floats(min_value=0.05, max_value=20),
        st.floats(min_value=0.05, max_value=20),
    ).filter(lambda p: abs(p[2] - 1) > 1e-3),
)
def test_expected_purchases_non_negative_and_increasing(customer, params):
    t = np.array([0.0, 0.5, 1.0, 5.0, 26.0, 52.0, 104.0])
    values = mbgnbd_expected_purchases(t, *params, *customer)
    assert np.all(np.isfinite(values))
    assert np.all(values >= -1e-9 * (1 + np.abs(values)))
    assert np.all(np.diff(values) >= -1e-7 * (1 + np.abs(values[1:])))


@pytest.mark.parametrize("params", [(0.525, 6.183, 0.891, 1.614), (2.0, 1.0, 3.0, 0.5),
                                    (0.1, 20.0, 0.3, 8.0)])
@pytest.mark.parametrize("t", [1.0, 39.0, 150.0])
def test_pmf_sums_to_one_and_its_mean_is_the_expectation(params, t):
    n = np.arange(0, 3000)
    pmf = mbgnbd_probability_of_purchases(n, t, *params)
    assert np.all(pmf >= 0)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-9)
    assert (n * pmf).sum() == pytest.approx(
        mbgnbd_expected_purchases_new_customer(t, *params), rel=1e-8
    )


def test_new_customer_is_a_customer_without_history(fitted):
    # E[X(t)] = E[Y(t) | x = 0, t_x = 0, T = 0]: no history, the same future.
    times = np.array([0.5, 10.0, 78.0])
    params = fitted.params_.to_numpy()
    np.testing.assert_allclose(
        mbgnbd_expected_purchases_new_customer(times, *params),
        mbgnbd_expected_purchases(times, *params, 0, 0.0, 0.0),
        rtol=1e-12,
    )


# -- simulation ---------------------------------------------------------------------------
def test_predictive_simulation_matches_closed_forms(fitted, cdnow_summary):
    rows = cdnow_summary.iloc[:300]
    draws = fitted.param_draws(400, random_state=3)
    sims = fitted.simulate_purchases(39, rows, draws=draws, random_state=4)
    counts = sims.counts()
    expected = fitted.expected_purchases(t=39, data=rows, draws=draws)
    assert counts.shape == expected.shape == (400, 300)
    assert np.all((sims.time > 0) & (sims.time <= 39))
    # one simulated future per (draw, customer): the total over all of them has a
    # standard error of sqrt(sum of variances), estimated by the residuals
    resid = counts - expected
    z = resid.sum() / np.sqrt((resid**2).sum())
    assert abs(z) < 4
    point = fitted.simulate_purchases(39, rows, draws=None, random_state=5)
    assert point.shape == (1, 300)


def test_generative_simulation_matches_conditional_expectation():
    true = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
    rng = np.random.default_rng(8)
    data = simulate_mbgnbd(40_000, **true, T=rng.uniform(20, 60, 40_000), holdout=39,
                           random_state=9, return_latent=True)
    model = ModifiedBetaGeo.from_params(true, time_unit="W")
    expected = model.expected_purchases(t=39, data=data).to_numpy()
    resid = data["frequency_holdout"].to_numpy() - expected
    assert abs(resid.sum() / np.sqrt((resid**2).sum())) < 4
    # P(alive): the latent state is Bernoulli(P(alive)) given the history
    p = model.probability_alive(data=data).to_numpy()
    for group in (data["frequency"] == 0, data["frequency"] > 0):
        g = group.to_numpy()
        alive = data["alive"].to_numpy()[g]
        se = np.sqrt((p[g] * (1 - p[g])).sum())
        assert abs(alive.sum() - p[g].sum()) < 4 * se


@pytest.mark.parametrize("n_customers", [2_000, 30_000])
def test_recovers_parameters_from_simulation(n_customers):
    true = {"r": 0.5, "alpha": 6.0, "a": 0.9, "b": 1.6}
    rng = np.random.default_rng(11)
    T = np.round(rng.uniform(30, 60, n_customers) * 7) / 7
    data = simulate_mbgnbd(n_customers, **true, T=T, random_state=n_customers)
    model = ModifiedBetaGeo().fit(data)
    table = model.summary(interval=0.999)
    for name, value in true.items():
        assert table.loc[name, "lower 99.9%"] <= value <= table.loc[name, "upper 99.9%"]
    if n_customers >= 30_000:
        assert model.params_["r"] == pytest.approx(true["r"], rel=0.1)


# -- contract -----------------------------------------------------------------------------
def test_contract_members(fitted, cdnow_summary):
    assert fitted.data_columns == ("frequency", "recency", "T")
    assert fitted.alive_future_columns == ("frequency", "T")
    draws = fitted.param_draws(7, random_state=1)
    assert fitted.probability_alive(data=cdnow_summary, draws=draws).shape == (7, 2357)
    assert fitted.expected_purchases_new_customer(t=39, draws=draws).shape == (7,)
    assert fitted.probability_of_purchases(n=2, t=39, draws=draws).shape == (7,)
    stats = fitted.fit_statistics()
    assert stats["aic"] == pytest.approx(8 - 2 * fitted.log_likelihood_)


def test_save_load_round_trip(fitted, cdnow_summary, tmp_path):
    path = fitted.save(tmp_path / "mbgnbd.json")
    assert json.loads(path.read_text())["model"] == "ModifiedBetaGeo"
    loaded = load(path)
    assert type(loaded) is ModifiedBetaGeo
    pd.testing.assert_series_equal(loaded.params_, fitted.params_)
    np.testing.assert_allclose(loaded.covariance_log_, fitted.covariance_log_)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(t=10, data=cdnow_summary),
        fitted.expected_purchases(t=10, data=cdnow_summary),
    )


def test_bad_input_is_refused(fitted):
    with pytest.raises(ValueError, match="none of the 20 customers has frequency > 0"):
        ModifiedBetaGeo().fit(pd.DataFrame({"frequency": [0] * 20, "recency": [0.0] * 20,
                                            "T": [5.0] * 20}))
    bad = pd.DataFrame({"frequency": [1, 2], "recency": [5.0, 50.0], "T": [10.0, 20.0]})
    with pytest.raises(DataValidationError, match="recency"):
        fitted.expected_purchases(t=1, data=bad)
    with pytest.raises(ValueError, match="non-negative integer"):
        fitted.probability_of_purchases(n=-1, t=3)
    with pytest.raises(NotFittedError):
        ModifiedBetaGeo().probability_alive(data=bad.iloc[:1])
