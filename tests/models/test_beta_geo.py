"""BetaGeo (BG/NBD): published numbers, lifetimes agreement, properties, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from given_alive import weighted_given_alive
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, ks_2samp

from clvmodels import BetaGeo, ModifiedBetaGeo, load, rfm_summary
from clvmodels.datasets import load_cdnow
from clvmodels.errors import ConvergenceError, DataValidationError, NotFittedError
from clvmodels.models.beta_geo import (
    bgnbd_expected_purchases,
    bgnbd_log_likelihood,
    bgnbd_neg_loglik_grad,
    bgnbd_probability_alive,
    bgnbd_probability_of_purchases,
)
from clvmodels.models.modified_beta_geo import mbgnbd_probability_alive
from clvmodels.simulate import simulate_bgnbd

# R BTYD's rounded CDNOW estimates, used by its documentation examples.
BTYD_PARAMS = (0.243, 4.414, 0.793, 2.426)


@pytest.fixture(scope="module")
def fitted(cdnow_summary):
    return BetaGeo().fit(cdnow_summary)


@pytest.fixture(scope="module")
def cdnow_full_summary():
    return rfm_summary(
        load_cdnow(sample=False), "customer_id", "date", observation_end="1997-09-30"
    )


# -- published values (Fader, Hardie & Lee 2005 and Hardie's spreadsheet) ----------------
def test_parameters_match_fhl2005(fitted):
    expected = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
    for name, value in expected.items():
        assert fitted.params_[name] == pytest.approx(value, rel=1e-4)
    assert fitted.log_likelihood_ == pytest.approx(-9582.43, abs=0.01)


def test_conditional_expectation_of_customer_1(fitted):
    one = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86]})
    assert fitted.expected_purchases(t=39, data=one).iloc[0] == pytest.approx(1.226, abs=1e-3)


def test_new_customer_expectations_match_spreadsheet(fitted):
    # Hardie's spreadsheet values are quoted to 4 decimals; they were computed with a
    # truncated hypergeometric series, so agreement is to about 1e-3.
    got = fitted.expected_purchases_new_customer(t=np.array([1.0, 3.0, 32.0, 78.0]))
    np.testing.assert_allclose(got, [0.0532, 0.1506, 1.0437, 1.8576], atol=1e-3)


def test_heavy_buyer_expectation_and_probability_alive(fitted):
    heavy = pd.DataFrame({"frequency": [26], "recency": [30.857], "T": [31.0]})
    assert fitted.expected_purchases(t=52, data=heavy).iloc[0] == pytest.approx(25.757, abs=1e-3)
    assert fitted.probability_alive(data=heavy).iloc[0] == pytest.approx(0.96885, abs=1e-5)


def test_probability_of_purchases_matches_r_btyd():
    model = BetaGeo()
    model._set_fitted(dict(zip(BetaGeo.param_names, BTYD_PARAMS, strict=True)))
    assert model.probability_of_purchases(n=0, t=39) == pytest.approx(0.5737864, abs=1e-7)
    assert model.probability_of_purchases(n=10, t=2) == pytest.approx(1.07869e-07, rel=1e-4)
    pmf = model.probability_of_purchases(n=np.arange(11, 21), t=30)
    btyd = [0.0019995214, 0.0015170236, 0.0011633150, 0.0009003148, 0.0007023638,
            0.0005517902, 0.0004361913, 0.0003467171, 0.0002769613, 0.0002222260]
    np.testing.assert_allclose(pmf, btyd, rtol=1e-6)


def test_pmf_sums_to_one_and_matches_mean():
    n = np.arange(0, 400)
    pmf = bgnbd_probability_of_purchases(n, 39.0, *BTYD_PARAMS)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-6)
    model = BetaGeo()
    model._set_fitted(dict(zip(BetaGeo.param_names, BTYD_PARAMS, strict=True)))
    assert (n * pmf).sum() == pytest.approx(model.expected_purchases_new_customer(t=39), rel=1e-5)


# -- lifetimes as an oracle ----------------------------------------------------------
def _lifetimes_fit(summary):
    import lifetimes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lifetimes.BetaGeoFitter().fit(
            summary["frequency"], summary["recency"], summary["T"]
        )


@pytest.mark.parametrize("cohort", ["sample", "full"])
def test_agrees_with_lifetimes(cohort, cdnow_summary, cdnow_full_summary):
    summary = cdnow_summary if cohort == "sample" else cdnow_full_summary
    oracle = _lifetimes_fit(summary)
    ours = BetaGeo().fit(summary)
    # Same optimum: lifetimes reports its likelihood on rescaled times, so both
    # optima are evaluated with one function; parameters agree to optimiser tolerance.
    x, tx, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    oracle_ll = bgnbd_log_likelihood(*oracle.params_[list(BetaGeo.param_names)], x, tx, T).sum()
    assert ours.log_likelihood_ >= oracle_ll - 1e-8 * abs(oracle_ll)
    assert ours.log_likelihood_ == pytest.approx(oracle_ll, rel=1e-6)
    for name in BetaGeo.param_names:
        assert ours.params_[name] == pytest.approx(oracle.params_[name], rel=2e-3)
    # Same predictions given the same parameters, to 1e-6 relative.
    same = BetaGeo.from_lifetimes(oracle)
    f, r, T = summary["frequency"], summary["recency"], summary["T"]
    for t in (1.0, 39.0, 52.0, 200.0):
        np.testing.assert_allclose(
            same.expected_purchases(t=t, data=summary).to_numpy(),
            oracle.conditional_expected_number_of_purchases_up_to_time(t, f, r, T),
            rtol=1e-6,
        )
    np.testing.assert_allclose(
        same.probability_alive(data=summary).to_numpy(),
        oracle.conditional_probability_alive(f, r, T),
        rtol=1e-6,
    )
    times = np.array([0.5, 1.0, 10.0, 39.0, 78.0])
    np.testing.assert_allclose(
        same.expected_purchases_new_customer(t=times),
        oracle.expected_number_of_purchases_up_to_time(times),
        rtol=1e-6,
    )
    for n in (0, 1, 3, 7):
        assert same.probability_of_purchases(n=n, t=39) == pytest.approx(
            oracle.probability_of_n_purchases_up_to_time(39, n), rel=1e-6
        )


# -- numerics and properties ----------------------------------------------------------
def test_gradient_matches_finite_differences(cdnow_summary):
    x, tx, T = (cdnow_summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    w = np.ones_like(x)
    z = np.log([0.3, 5.0, 0.9, 2.0])
    _, grad = bgnbd_neg_loglik_grad(z, x, tx, T, w)
    for j in range(4):
        h = np.zeros(4)
        h[j] = 1e-6
        numeric = (
            bgnbd_neg_loglik_grad(z + h, x, tx, T, w)[0]
            - bgnbd_neg_loglik_grad(z - h, x, tx, T, w)[0]
        ) / 2e-6
        assert grad[j] == pytest.approx(numeric, rel=1e-5)


def test_log_likelihood_sum_matches_objective(cdnow_summary, fitted):
    x, tx, T = (cdnow_summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    per_customer = bgnbd_log_likelihood(*fitted.params_.to_numpy(), x, tx, T)
    assert per_customer.sum() == pytest.approx(fitted.log_likelihood_, rel=1e-10)


valid_customer = st.tuples(
    st.integers(min_value=0, max_value=20_000),
    st.floats(min_value=1e-4, max_value=1e5, allow_nan=False),
    st.floats(min_value=0.0, max_value=1.0),
).map(lambda v: (v[0], 0.0 if v[0] == 0 else v[1] * v[2], v[1]))
valid_params = st.tuples(
    *(st.floats(min_value=1e-3, max_value=1e3) for _ in range(4))
)


@settings(max_examples=300, deadline=None)
@given(valid_customer, valid_params)
def test_log_likelihood_finite_on_extreme_valid_input(customer, params):
    x, tx, T = customer
    assert np.isfinite(bgnbd_log_likelihood(*params, x, tx, T))
    value, grad = bgnbd_neg_loglik_grad(np.log(params), np.array([x]), np.array([tx]),
                                       np.array([T]), np.ones(1))
    assert np.isfinite(value) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("alive_fn", [bgnbd_probability_alive, mbgnbd_probability_alive])
def test_probability_alive_under_draws_is_the_point_formula_per_draw(alive_fn):
    # Draws (n_draws, 1) against customers take a compiled route; each draw's row must
    # be the point formula's, also at the extremes: no repeat purchase, a heavy buyer
    # long gone (odds beyond the float range: 0), a purchase just now, T near 0.
    rng = np.random.default_rng(11)
    n_draws = 40
    params = [rng.uniform(0.05, 3.0, n_draws), rng.uniform(0.1, 60.0, n_draws),
              rng.uniform(0.05, 3.0, n_draws), rng.uniform(0.05, 5.0, n_draws)]
    x = np.r_[0.0, 0.0, 500.0, 3.0, 1.0, rng.integers(0, 60, 200).astype(float)]
    T = np.r_[40.0, 1e-9, 1e5, 40.0, 1e-6, rng.uniform(1.0, 80.0, 200)]
    t_x = np.r_[0.0, 0.0, 1.0, 40.0, 1e-6, np.where(x[5:] > 0, T[5:] * rng.random(200), 0.0)]
    got = alive_fn(*(v[:, None] for v in params), x, t_x, T)
    assert got.shape == (n_draws, x.size)
    for d in range(n_draws):
        expected = alive_fn(*(float(v[d]) for v in params), x, t_x, T)
        np.testing.assert_allclose(got[d], expected, rtol=1e-11, atol=1e-300)
    assert got[:, 2].max() == 0.0
    if alive_fn is bgnbd_probability_alive:
        assert (got[:, :2] == 1.0).all()


@settings(max_examples=200, deadline=None)
@given(valid_customer, valid_params)
def test_probability_alive_is_a_probability(customer, params):
    p = bgnbd_probability_alive(*params, *customer)
    assert 0.0 <= p <= 1.0


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
    values = bgnbd_expected_purchases(t, *params, *customer)
    assert np.all(np.isfinite(values))
    assert np.all(values >= -1e-9 * (1 + np.abs(values)))
    assert np.all(np.diff(values) >= -1e-7 * (1 + np.abs(values[1:])))


# -- recovery and robustness ----------------------------------------------------------
@pytest.mark.parametrize("n_customers", [1_000, 20_000])
def test_recovers_parameters_from_simulation(n_customers):
    true = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}
    rng = np.random.default_rng(11)
    T = np.round(rng.uniform(30, 60, n_customers) * 7) / 7
    data = simulate_bgnbd(n_customers, **true, T=T, random_state=n_customers)
    model = BetaGeo().fit(data)
    table = model.summary(interval=0.999)
    for name, value in true.items():
        assert table.loc[name, "lower 99.9%"] <= value <= table.loc[name, "upper 99.9%"]
    if n_customers >= 20_000:
        assert model.params_["r"] == pytest.approx(true["r"], rel=0.1)


def test_converges_with_a_few_extreme_customers():
    data = simulate_bgnbd(5_000, 0.243, 4.414, 0.793, 2.426, T=39.0, random_state=3)
    data.loc[0, ["frequency", "recency"]] = [3_000, 38.9]
    data.loc[1, ["frequency", "recency"]] = [400, 0.01]
    model = BetaGeo().fit(data)
    assert np.all(np.isfinite(model.standard_errors_))
    preds = model.expected_purchases(t=52, data=data.iloc[:2])
    assert np.all(np.isfinite(preds)) and preds.iloc[0] > 1_000


def test_no_repeat_buyers_is_a_clear_error():
    data = pd.DataFrame({"frequency": [0] * 50, "recency": [0.0] * 50, "T": [10.0] * 50})
    with pytest.raises(ValueError, match="none of the 50 customers has frequency > 0"):
        BetaGeo().fit(data)


def test_degenerate_data_raises_with_advice_and_penalizer_fixes_it():
    # Every repeat buyer is still buying at the end: no sign of dropout at all.
    data = pd.DataFrame({"frequency": [10] * 50 + [0] * 50,
                         "recency": [50.0] * 50 + [0.0] * 50, "T": [50.0] * 100})
    with pytest.raises(ConvergenceError, match=r"What to try.*penalizer"):
        BetaGeo().fit(data)
    model = BetaGeo(penalizer=1e-3).fit(data)
    assert np.all(np.isfinite(model.standard_errors_))
    assert np.all(np.isfinite(model.expected_purchases(t=10, data=data)))


def test_expected_purchases_match_arbitrary_precision_reference():
    import mpmath
    mpmath.mp.dps = 40
    rng = np.random.default_rng(7)
    n = 150
    t, s, h = rng.uniform(0.1, 300, n), rng.uniform(0.05, 200, n), rng.uniform(0.5, 200, n)
    a, b_x = rng.uniform(0.05, 20, n), rng.uniform(0.05, 200, n)
    a[:5] = 1.0  # the closed form's removable singularity
    # x = 0 and T = 0 turn eq. (10) into "alive with Gamma(s, h) and Beta(a, b_x)".
    got = bgnbd_expected_purchases(t, s, h, a, b_x, np.zeros(n), np.zeros(n), np.zeros(n))

    def exact(i):
        def integrand(p):
            return (1 - (1 + p * t[i] / h[i]) ** (-s[i])) / p * p ** (a[i] - 1) * (
                1 - p) ** (b_x[i] - 1)
        return float(mpmath.quad(integrand, [0, 1]) / mpmath.beta(a[i], b_x[i]))

    reference = np.array([exact(i) for i in range(n)])
    np.testing.assert_allclose(got, reference, rtol=1e-8)


def test_weights_equal_expanded_rows(cdnow_summary):
    rows = cdnow_summary[["frequency", "recency", "T"]]
    counted = rows.groupby(list(rows.columns)).size().rename("w").reset_index()
    weighted = BetaGeo().fit(counted, weights=counted["w"])
    plain = BetaGeo().fit(cdnow_summary)
    np.testing.assert_allclose(weighted.params_, plain.params_, rtol=1e-6)
    assert weighted.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-9)
    assert weighted.n_obs_ == plain.n_obs_ == 2357


def test_bad_weights_are_reported(cdnow_summary):
    w = np.ones(len(cdnow_summary))
    w[3] = -1
    with pytest.raises(ValueError, match="negative or not finite"):
        BetaGeo().fit(cdnow_summary, weights=w)
    with pytest.raises(ValueError, match="one entry per row"):
        BetaGeo().fit(cdnow_summary, weights=w[:10])


# -- contract ----------------------------------------------------------------------
def test_fit_returns_self_and_records_time_unit(cdnow_summary):
    model = BetaGeo()
    assert model.fit(cdnow_summary) is model
    assert model.time_unit_ == "W"
    assert model.aic_ == pytest.approx(8 - 2 * model.log_likelihood_)
    assert model.bic_ == pytest.approx(4 * np.log(2357) - 2 * model.log_likelihood_)


def test_init_only_stores_settings():
    model = BetaGeo(penalizer=0.1)
    assert model.penalizer == 0.1
    assert not model.is_fitted


def test_unfitted_model_says_so():
    with pytest.raises(NotFittedError, match="not fitted"):
        BetaGeo().probability_alive(data=pd.DataFrame({"frequency": [1], "recency": [1.0],
                                                      "T": [2.0]}))
    with pytest.raises(NotFittedError):
        BetaGeo().param_draws(10)


def test_summary_intervals_follow_interval(fitted):
    wide = fitted.summary(interval=0.95)
    narrow = fitted.summary(interval=0.8)
    assert list(wide.columns) == ["estimate", "se", "lower 95%", "upper 95%"]
    assert (narrow["upper 80%"] < wide["upper 95%"]).all()
    assert (narrow["lower 80%"] > wide["lower 95%"]).all()
    assert (wide["lower 95%"] > 0).all()
    with pytest.raises(ValueError, match="interval"):
        fitted.summary(interval=1.5)


def test_param_draws_follow_sampling_distribution(fitted):
    draws = fitted.param_draws(20_000, random_state=5)
    assert list(draws.columns) == ["r", "alpha", "a", "b"]
    assert (draws > 0).all().all()
    log_cov = np.cov(np.log(draws.to_numpy()).T)
    target = fitted.covariance_log_.to_numpy()
    # Sampling sd of a covariance estimate is about sqrt(s_ii s_jj / n); allow 5 of them.
    tolerance = 5 * np.sqrt(np.outer(np.diag(target), np.diag(target)) / len(draws))
    assert np.all(np.abs(log_cov - target) <= tolerance)
    np.testing.assert_allclose(
        np.log(draws).median(), np.log(fitted.params_), atol=0.01
    )
    again = fitted.param_draws(20_000, random_state=5)
    pd.testing.assert_frame_equal(draws, again)


def test_save_load_round_trip(fitted, cdnow_summary, tmp_path):
    path = fitted.save(tmp_path / "bgnbd.json")
    payload = json.loads(path.read_text())
    assert payload["model"] == "BetaGeo"
    assert path.stat().st_size < 4_000  # parameters and covariance, never the data
    loaded = load(path)
    assert isinstance(loaded, BetaGeo)
    pd.testing.assert_series_equal(loaded.params_, fitted.params_)
    np.testing.assert_allclose(loaded.covariance_log_, fitted.covariance_log_)
    assert loaded.time_unit_ == "W"
    pd.testing.assert_series_equal(
        loaded.expected_purchases(t=10, data=cdnow_summary),
        fitted.expected_purchases(t=10, data=cdnow_summary),
    )
    pd.testing.assert_frame_equal(loaded.param_draws(5, 1), fitted.param_draws(5, 1))


def test_from_lifetimes_carries_covariance(cdnow_summary, fitted):
    migrated = BetaGeo.from_lifetimes(_lifetimes_fit(cdnow_summary))
    np.testing.assert_allclose(migrated.params_, fitted.params_, rtol=2e-3)
    np.testing.assert_allclose(migrated.standard_errors_, fitted.standard_errors_, rtol=0.02)
    with pytest.raises(ValueError, match="not fitted"):
        BetaGeo.from_lifetimes(object())


def test_predictions_validate_their_input(fitted):
    bad = pd.DataFrame({"frequency": [1, 2], "recency": [5.0, 50.0], "T": [10.0, 20.0]})
    with pytest.raises(DataValidationError, match="recency"):
        fitted.expected_purchases(t=1, data=bad)
    with pytest.raises(ValueError, match="t must be"):
        fitted.expected_purchases(t=-1, data=bad.iloc[:1])
    with pytest.raises(ValueError, match="non-negative integer"):
        fitted.probability_of_purchases(n=1.5, t=3)


def test_fit_validates_input():
    with pytest.raises(DataValidationError, match="T"):
        BetaGeo().fit(pd.DataFrame({"frequency": [1], "recency": [1.0], "T": [0.0]}))
    with pytest.raises(DataValidationError, match="frequency"):
        BetaGeo().fit(pd.DataFrame({"recency": [1.0], "T": [3.0]}))


@pytest.mark.slow
def test_converges_on_a_million_customers_without_tuning():
    rng = np.random.default_rng(2)
    n = 1_000_000
    T = rng.integers(27 * 7, 39 * 7 + 1, n) / 7.0
    true = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
    data = simulate_bgnbd(n, **true, T=T, random_state=rng)
    # a daily log records whole days; rounding keeps recency unbiased
    data["recency"] = np.minimum(np.round(data["recency"] * 7.0) / 7.0, data["T"])
    model = BetaGeo().fit(data)
    table = model.summary(interval=0.999)
    for name, value in true.items():
        assert table.loc[name, "lower 99.9%"] <= value <= table.loc[name, "upper 99.9%"]
        assert model.params_[name] == pytest.approx(value, rel=0.1)


def _generative_counts(params, rows, horizon, rng, dropout_at_zero=False):
    """Purchases over the horizon by the model's own story, drawn step by step: alive
    with P(alive); if alive, a Gamma rate and Poisson arrivals, and a dropout chance
    per purchase. (The simulator draws only the pairs that buy; this draws all.)"""
    x, t_x, T = (rows[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    alive_fn = mbgnbd_probability_alive if dropout_at_zero else bgnbd_probability_alive
    alive = rng.random(x.size) < alive_fn(**params, frequency=x, recency=t_x, T=T)
    rate = rng.gamma(params["r"] + x) / (params["alpha"] + T)
    arrivals = rng.poisson(rate * horizon)
    p = rng.beta(params["a"], params["b"] + x + dropout_at_zero)
    kept = np.where(alive, np.minimum(arrivals, rng.geometric(np.maximum(p, 1e-12))), 0)
    # The kept purchases are the first `kept` of the sorted uniform arrival times.
    owner = np.repeat(np.arange(x.size), arrivals)
    times = rng.random(owner.size) * horizon
    times = times[np.lexsort((times, owner))]
    rank = np.arange(owner.size) - np.repeat(np.cumsum(arrivals) - arrivals, arrivals)
    keep = rank < kept[owner]
    return kept, owner[keep], times[keep]


@pytest.mark.parametrize("model_name", ["BetaGeo", "ModifiedBetaGeo"])
def test_simulated_purchases_follow_the_generative_story(model_name):
    # Light and heavy customers (a heavy one, x = 150 in 20 weeks, expects ~300
    # arrivals in a year: the tail inversion must not stop early); the simulator's
    # counts and those drawn step by step agree in distribution (chi-square over count
    # classes) and in mean with the closed-form expectation.
    params = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    model = (BetaGeo if model_name == "BetaGeo" else ModifiedBetaGeo).from_params(params)
    customers = pd.DataFrame({"frequency": [0, 1, 3, 8, 150], "recency": [0, 5, 30, 60, 19.5],
                              "T": [40, 40, 60, 62, 20]}, dtype=float)
    n = 40_000
    rows = customers.loc[customers.index.repeat(n)].reset_index(drop=True)
    simulated = model.simulate_purchases(52, rows, draws=None, random_state=11)
    sims = simulated.counts()[0]
    story, story_owner, story_times = _generative_counts(
        params, rows, 52, np.random.default_rng(12),
        dropout_at_zero=model_name == "ModifiedBetaGeo",
    )
    expected = np.asarray(model.expected_purchases(t=52, data=customers), dtype=float)
    for i in range(len(customers)):
        a, b = sims[i * n:(i + 1) * n], story[i * n:(i + 1) * n]
        edges = np.unique(np.quantile(np.r_[a, b], np.linspace(0, 1, 9)))
        edges[-1] += 1
        counts = np.array([np.histogram(v, edges)[0] for v in (a, b)])
        counts = counts[:, counts.sum(axis=0) > 0]
        assert chi2_contingency(counts).pvalue > 1e-4, (i, counts)
        se = a.std() / np.sqrt(n)
        assert abs(a.mean() - expected[i]) < 4.5 * se + 1e-9, (i, a.mean(), expected[i])
        # When the purchases fall: each buyer's first, last and mean purchase time (one
        # value per customer, so that the samples are independent).
        mine, theirs = simulated.owner // n == i, story_owner // n == i
        ours = pd.Series(simulated.time[mine]).groupby(simulated.owner[mine])
        story_i = pd.Series(story_times[theirs]).groupby(story_owner[theirs])
        for summary in ("min", "max", "mean"):
            pvalue = ks_2samp(ours.agg(summary), story_i.agg(summary)).pvalue
            assert pvalue > 1e-4, (i, summary, pvalue)


# -- expected purchases while alive, at several horizons at once ------------------------
def _with_k1(model_class):
    from clvmodels import BetaGeoCNBD

    if model_class == "cnbd1":
        return lambda params, **kw: BetaGeoCNBD.from_params(params, k=1, **kw)
    if model_class == "mcnbd1":
        return lambda params, **kw: BetaGeoCNBD.from_params(params, k=1, modified=True, **kw)
    return model_class.from_params


@pytest.mark.parametrize("model_class", [BetaGeo, ModifiedBetaGeo, "cnbd1", "mcnbd1"])
def test_purchases_while_alive_at_horizons_are_expected_over_alive(model_class, cdnow_summary):
    # The CLV's weighted sums over horizons equal the contract's expected purchases
    # divided by P(alive), per horizon, at the point estimate and under draws.
    make = _with_k1(model_class)
    params = {"r": 0.243, "alpha": 4.41, "a": 0.793, "b": 2.426}
    model = make(params, covariance=np.diag([1e-3, 0.1, 0.01, 0.1]), time_unit="W")
    rows = cdnow_summary.iloc[::7]
    # a heavy buyer seen a moment ago and a new customer (z near 1 at t = 300: the
    # per-horizon fallback)
    extra = pd.DataFrame({"frequency": [60.0, 0.0], "recency": [38.0, 0.0],
                          "T": [39.0, 0.01]}, index=[-1, -2])
    rows = pd.concat([rows[["frequency", "recency", "T"]], extra])
    t = np.array([1.0, 4.0, 13.0, 39.0, 300.0])
    weights = np.vstack([np.eye(5), np.linspace(-1.0, 2.0, 5)])
    draws = model.param_draws(20, random_state=1)
    for d in (None, draws):
        got = model.expected_purchases_while_alive(t, weights, rows, draws=d)
        expected = weighted_given_alive(model, t, weights, rows, d)
        assert got.shape == expected.shape == ((6, len(rows)) if d is None else (6, 20, len(rows)))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_purchases_while_alive_input_is_checked(cdnow_summary):
    from clvmodels import BetaGeoCNBD

    model = BetaGeo.from_params({"r": 0.243, "alpha": 4.41, "a": 0.793, "b": 2.426})
    rows = cdnow_summary.iloc[:5]
    with pytest.raises(ValueError, match="non-negative horizons"):
        model.expected_purchases_while_alive([1.0, -2.0], np.eye(2), rows)
    with pytest.raises(ValueError, match=r"shape \(n_sums, 2\)"):
        model.expected_purchases_while_alive([1.0, 2.0], np.eye(3), rows)
    erlang = BetaGeoCNBD.from_params({"r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}, k=2)
    with pytest.raises(ValueError, match="depends on more than frequency and T"):
        erlang.expected_purchases_while_alive([1.0], np.eye(1), rows)
