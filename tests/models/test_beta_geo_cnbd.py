"""BetaGeoCNBD ((M)BG/CNBD-k): BTYDplus check values, k = 1 is BG/NBD and MBG/NBD exactly,
exact expectations against simulation, recovery of k, the litt helper, persistence."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import hyp2f1

from clvmodels import BetaGeo, BetaGeoCNBD, ModifiedBetaGeo, add_log_interpurchase_sum, load
from clvmodels.errors import DataValidationError, ModelFileError
from clvmodels.models._beta_geo_family import purchases_while_alive
from clvmodels.models.beta_geo import bgnbd_log_likelihood
from clvmodels.models.beta_geo_cnbd import (
    LITT_COLUMN,
    _alive_purchases,
    bgcnbd_expected_purchases,
    bgcnbd_expected_purchases_new_customer,
    bgcnbd_log_likelihood,
    bgcnbd_neg_loglik_grad,
    bgcnbd_probability_alive,
    bgcnbd_probability_of_purchases,
    log_interpurchase_sum,
    simulate_bgcnbd,
)
from clvmodels.models.modified_beta_geo import mbgnbd_log_likelihood

NAMES = ("r", "alpha", "a", "b")
# Parameters of BTYDplus's own tests (tests/testthat/test-mbg-cnbd-k.R, test-bg-cnbd-k.R).
BTYDPLUS_SIM = {"r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}


@pytest.fixture(scope="module")
def cdnow_regular(cdnow_transactions, cdnow_summary):
    return add_log_interpurchase_sum(cdnow_summary, cdnow_transactions)


def _arrays(frame):
    return tuple(frame[c].to_numpy(float) for c in ("frequency", "recency", "T"))


# -- published values -------------------------------------------------------------------
def test_log_likelihood_matches_btydplus_check_values():
    # BTYDplus src/slice-sampling.cpp, R unit test of xbgcnbd_ll_cpp: params
    # (k, r, alpha, a, b) = (3, 0.5, 2, 0.3, 0.6), x = (3, 4), t.x = 12, T.cal = 14,
    # litt = 3, BG variant; rounded to 5 decimals there.
    ll = bgcnbd_log_likelihood(0.5, 2.0, 0.3, 0.6, [3, 4], 12.0, 14.0, 3.0, k=3)
    np.testing.assert_allclose(ll, [-10.42500, -12.22396], atol=5e-6)


def test_pmf_matches_btydplus_check_values():
    # BTYDplus src/slice-sampling.cpp, unit test of xbgcnbd_pmf_cpp: P(X(10) = 2) for
    # (k, r, alpha, a, b) = (3, 0.5, 2, 0.3, 0.6), BG 0.05669 and MBG 0.04548 (5 decimals).
    assert bgcnbd_probability_of_purchases(2, 10, 0.5, 2, 0.3, 0.6, k=3) == pytest.approx(
        0.05669, abs=5e-6
    )
    assert bgcnbd_probability_of_purchases(
        2, 10, 0.5, 2, 0.3, 0.6, k=3, modified=True
    ) == pytest.approx(0.04548, abs=5e-6)


def test_cdnow_shows_no_regularity(cdnow_regular):
    # BTYDplus demo/cdnow.R: mbgcnbd.EstimateParameters on CDNOW gives k = 1 ("no
    # regularity detected for CDNow"), i.e. the MBG/NBD estimates (0.525, 6.183, 0.891,
    # 1.614) quoted by lifetimes' TestModifiedBetaGammaFitter.
    model = BetaGeoCNBD(modified=True).fit(cdnow_regular)
    assert model.k_ == 1
    for name, value in {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}.items():
        assert model.params_[name] == pytest.approx(value, abs=5e-4)
    profile = model.profile_log_likelihood_
    assert list(profile.index) == [1, 2, 3]  # stopped after two falls
    assert profile.is_monotonic_decreasing
    assert model.aic_ == pytest.approx(10 - 2 * model.log_likelihood_)


# -- k = 1 is BG/NBD and MBG/NBD --------------------------------------------------------
@pytest.mark.parametrize(("modified", "reference"), [(False, BetaGeo), (True, ModifiedBetaGeo)])
def test_k1_reproduces_bgnbd_and_mbgnbd_exactly(modified, reference, cdnow_regular):
    ours = BetaGeoCNBD(k=1, modified=modified).fit(cdnow_regular)
    ref = reference().fit(cdnow_regular)
    # the same likelihood, gradient and starting points: the same optimum to the bit
    pd.testing.assert_series_equal(ours.params_, ref.params_)
    assert ours.log_likelihood_ == ref.log_likelihood_
    np.testing.assert_array_equal(ours.covariance_log_, ref.covariance_log_)
    assert ours.aic_ == ref.aic_  # k fixed: 4 parameters
    draws = ref.param_draws(20, random_state=1)
    for method, kwargs in [
        ("expected_purchases", {"t": 39, "data": cdnow_regular}),
        ("probability_alive", {"data": cdnow_regular}),
        ("expected_purchases_new_customer", {"t": np.array([1.0, 39.0, 78.0])}),
        ("probability_of_purchases", {"n": 3, "t": 39}),
    ]:
        np.testing.assert_array_equal(
            np.asarray(getattr(ours, method)(**kwargs)), np.asarray(getattr(ref, method)(**kwargs))
        )
        np.testing.assert_array_equal(
            getattr(ours, method)(**kwargs, draws=draws),
            getattr(ref, method)(**kwargs, draws=draws),
        )
    a = ours.simulate_purchases(20, cdnow_regular, draws=draws, random_state=3)
    b = ref.simulate_purchases(20, cdnow_regular, draws=draws, random_state=3)
    np.testing.assert_array_equal(a.owner, b.owner)
    np.testing.assert_array_equal(a.time, b.time)
    reference_ll = mbgnbd_log_likelihood if modified else bgnbd_log_likelihood
    np.testing.assert_array_equal(
        bgcnbd_log_likelihood(0.3, 5.0, 0.9, 2.0, *_arrays(cdnow_regular),
                              cdnow_regular[LITT_COLUMN], k=1, modified=modified),
        reference_ll(0.3, 5.0, 0.9, 2.0, *_arrays(cdnow_regular)),
    )


def test_estimated_k1_on_cdnow_is_the_bgnbd(cdnow_regular):
    ours = BetaGeoCNBD().fit(cdnow_regular)
    ref = BetaGeo().fit(cdnow_regular)
    assert ours.k_ == 1
    pd.testing.assert_series_equal(ours.params_, ref.params_)
    assert ours.log_likelihood_ == ref.log_likelihood_
    assert ours.alive_future_columns == ("frequency", "T")
    assert ours.data_columns == ("frequency", "recency", "T")


def test_series_expectation_equals_hypergeometric_form_at_k1():
    # The exact sum used for k > 1 evaluated at k = 1 against FHL 2005's closed form
    # (which is checked against arbitrary precision in test_beta_geo.py).
    rng = np.random.default_rng(7)
    n = 400
    t, s, h = rng.uniform(0.1, 150, n), rng.uniform(0.05, 200, n), rng.uniform(0.5, 200, n)
    a, b_x = rng.uniform(0.05, 20, n), rng.uniform(0.05, 200, n)
    # sums of positive terms to 1e-15: agreement to the closed form's accuracy
    np.testing.assert_allclose(
        _alive_purchases(t, s, h, np.zeros(n), a, b_x, 1), purchases_while_alive(t, s, h, a, b_x),
        rtol=1e-9,
    )


def test_series_started_far_from_zero_equals_the_full_sum(monkeypatch):
    # Heavy buyers start the sum 20 sd below the mean, with closed-form partial sums of
    # the dropout series (including a near 1 and a + b' <= 1): same as summing from 0.
    import clvmodels.models.beta_geo_cnbd as module

    rng = np.random.default_rng(3)
    n = 120
    t, s, h = rng.uniform(5, 40, n), rng.uniform(300, 1500, n), rng.uniform(2, 10, n)
    gap = rng.uniform(0, 1, n)
    a = np.r_[rng.uniform(0.05, 5, 60), 1 + rng.uniform(-5e-3, 5e-3, 30), np.ones(30)]
    b_post = np.r_[rng.uniform(0.05, 50, 90), rng.uniform(0.01, 0.3, 30)]
    a[-30:] = rng.uniform(0.05, 0.5, 30)
    for k in (1, 2, 3):
        started = _alive_purchases(t, s, h, gap, a, b_post, k)
        monkeypatch.setattr(module, "_SERIES_START_SD", 1e9)
        full = _alive_purchases(t, s, h, gap, a, b_post, k)
        monkeypatch.undo()
        # the closed-form partial sums are accurate to ~1e-10 (series near a = 1)
        np.testing.assert_allclose(started, full, rtol=1e-8)


# -- exact expectations against simulation ----------------------------------------------
def _btydplus_approximation(t, r, alpha, a, b, x, t_x, T, k, modified):
    """BTYDplus's xbgcnbd.ConditionalExpectedTransactions before its cohort rescaling:
    the BG/NBD expression with alpha replaced by k alpha."""
    m = float(modified)
    c = a + b + x - 1 + m
    h = k * alpha + T
    g = 1 - (h / (h + t)) ** (r + x) * hyp2f1(r + x, b + x + m, c, t / (h + t))
    p_alive = bgcnbd_probability_alive(r, alpha, a, b, x, t_x, T, k=k, modified=modified)
    return c / (a - 1) * g * p_alive


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("modified", [False, True])
def test_conditional_expectation_matches_simulated_holdout(k, modified):
    rng = np.random.default_rng(10 * k + modified)
    n = 60_000
    data = simulate_bgcnbd(n, **BTYDPLUS_SIM, T=rng.uniform(12, 96, n), k=k, modified=modified,
                           holdout=32, random_state=rng, return_latent=True)
    x, t_x, T = _arrays(data)
    expected = bgcnbd_expected_purchases(32, **BTYDPLUS_SIM, frequency=x, recency=t_x, T=T,
                                         k=k, modified=modified)
    actual = data["frequency_holdout"].to_numpy()
    # Customers are independent: the sum of residuals has a standard error of
    # sqrt(sum of squared residuals). Overall and by calibration frequency.
    for group in (x >= 0, x == 0, x == 1, (x >= 2) & (x <= 4), x >= 5):
        resid = actual[group] - expected[group]
        assert abs(resid.sum()) < 4 * np.sqrt((resid**2).sum())
    # P(alive) against the latent state
    p = bgcnbd_probability_alive(**BTYDPLUS_SIM, frequency=x, recency=t_x, T=T, k=k,
                                 modified=modified)
    alive = data["alive"].to_numpy()
    assert abs(alive.sum() - p.sum()) < 4 * np.sqrt((p * (1 - p)).sum())
    if k == 3:
        # The test has the power to see BTYDplus's approximation (before rescaling),
        # which misses the customers' phase since their last purchase.
        approx = _btydplus_approximation(32, *BTYDPLUS_SIM.values(), x, t_x, T, k, modified)
        resid = actual - approx
        assert abs(resid.sum()) > 4 * np.sqrt((resid**2).sum())


@pytest.mark.parametrize("k", [2, 3])
def test_predictive_simulation_matches_expectations(k):
    model = BetaGeoCNBD.from_params(BTYDPLUS_SIM, k=k, modified=True, time_unit="W")
    rng = np.random.default_rng(k)
    rows = simulate_bgcnbd(400, **BTYDPLUS_SIM, T=rng.uniform(12, 60, 400), k=k, modified=True,
                           random_state=rng)
    cov = np.diag([0.01, 0.01, 0.01, 0.01])
    model = BetaGeoCNBD.from_params(BTYDPLUS_SIM, k=k, modified=True, covariance=cov)
    for draws, size in ((None, 300), (model.param_draws(300, random_state=1), 1)):
        counts, expected = [], []
        for rep in range(size):
            sims = model.simulate_purchases(26, rows, draws=draws, random_state=100 + rep)
            assert np.all((sims.time > 0) & (sims.time <= 26))
            counts.append(sims.counts())
            expected.append(np.atleast_2d(model.expected_purchases(t=26, data=rows, draws=draws)))
        resid = np.concatenate(counts) - np.concatenate(expected)
        assert abs(resid.sum()) < 4 * np.sqrt((resid**2).sum())
        # per customer too: the heaviest buyers are where phases matter most. For rare
        # purchases the residuals underestimate the spread, so the expected count (the
        # variance of a Poisson count) is added as a floor.
        by_row = resid.sum(axis=0)
        spread = np.sqrt((resid**2).sum(axis=0) + np.concatenate(expected).sum(axis=0))
        assert np.mean(np.abs(by_row) < 4 * spread) > 0.99


@pytest.mark.parametrize("k", [1, 2, 3, 6])
@pytest.mark.parametrize("modified", [False, True])
def test_pmf_sums_to_one_and_its_mean_is_the_expectation(k, modified):
    n = np.arange(0, 2000)
    for t in (0.5, 10.0, 52.0):
        pmf = bgcnbd_probability_of_purchases(n, t, **BTYDPLUS_SIM, k=k, modified=modified)
        assert np.all(pmf >= 0)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
        mean = bgcnbd_expected_purchases_new_customer(t, **BTYDPLUS_SIM, k=k, modified=modified)
        assert (n * pmf).sum() == pytest.approx(mean, rel=1e-9)
    if k > 1 or modified:  # (k = 1 without dropout at 0 is BetaGeo's PMF, defined for t > 0)
        zero = bgcnbd_probability_of_purchases(0, 0.0, **BTYDPLUS_SIM, k=k, modified=modified)
        assert zero == 1


def test_regularity_makes_a_long_hiatus_more_telling():
    # RPS 2021 / BTYDplus vignette: after 40 weeks without a purchase, frequent buyers
    # are less likely alive the more regular their purchases.
    p = [float(bgcnbd_probability_alive(**BTYDPLUS_SIM, frequency=5, recency=12, T=52, k=k))
         for k in (1, 2, 3)]
    assert p[0] > p[1] > p[2]


# -- recovery of k and the parameters ------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("modified", [False, True])
def test_recovers_k_and_parameters(k, modified):
    # as BTYDplus's tests: 8,000 customers, T.cal 36-96 weeks in steps of 12
    rng = np.random.default_rng(100 + k)
    T = np.round(rng.uniform(36, 96, 8_000) / 12) * 12
    data = simulate_bgcnbd(8_000, **BTYDPLUS_SIM, T=T, k=k, modified=modified, random_state=rng)
    model = BetaGeoCNBD(modified=modified).fit(data)
    assert model.k_ == k
    table = model.summary(interval=0.999)
    for name, value in BTYDPLUS_SIM.items():
        assert table.loc[name, "lower 99.9%"] <= value <= table.loc[name, "upper 99.9%"]
    assert table.attrs["k"] == k and table.attrs["k_estimated"]
    profile = model.profile_log_likelihood_
    assert profile.idxmax() == k and len(profile) >= k + 1
    fixed = BetaGeoCNBD(k=k, modified=modified).fit(data)
    pd.testing.assert_series_equal(fixed.params_, model.params_, rtol=1e-6)
    assert fixed.log_likelihood_ == pytest.approx(model.log_likelihood_, rel=1e-12)
    assert fixed.aic_ == pytest.approx(model.aic_ - 2)


def test_analytic_gradient_equals_automatic_gradient():
    rng = np.random.default_rng(5)
    data = simulate_bgcnbd(3_000, **BTYDPLUS_SIM, T=rng.uniform(10, 60, 3_000), k=2,
                           random_state=rng)
    arrays = {c: data[c].to_numpy(float) for c in ("frequency", "recency", "T")}
    weights = rng.integers(1, 4, len(data)).astype(float)
    for k in (2, 3, 5):
        for modified in (False, True):
            model = BetaGeoCNBD(k=k, modified=modified)
            model._kernel_only = True
            for _ in range(3):
                theta = np.log(list(BTYDPLUS_SIM.values())) + rng.normal(0, 0.5, 4)
                analytic = model._neg_loglik_grad(theta, model._with_cache(dict(arrays), weights),
                                                  weights)
                automatic = model.automatic_neg_loglik_grad(theta, arrays, weights)
                assert analytic[0] == pytest.approx(automatic[0], rel=1e-12)
                np.testing.assert_allclose(analytic[1], automatic[1], rtol=1e-8, atol=1e-6)


def test_weights_equal_expanded_rows():
    rng = np.random.default_rng(2)
    data = simulate_bgcnbd(600, **BTYDPLUS_SIM, T=30.0, k=2, random_state=rng)
    repeat = rng.integers(1, 4, len(data))
    expanded = data.loc[data.index.repeat(repeat)].reset_index(drop=True)
    expanded.attrs = data.attrs
    weighted = BetaGeoCNBD(max_k=4).fit(data, weights=repeat)
    plain = BetaGeoCNBD(max_k=4).fit(expanded)
    assert weighted.k_ == plain.k_
    np.testing.assert_allclose(weighted.params_, plain.params_, rtol=1e-6)
    assert weighted.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-9)


# -- properties ------------------------------------------------------------------------------
valid_customer = st.tuples(
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=1e-4, max_value=1e5, allow_nan=False),
    st.floats(min_value=0.0, max_value=1.0),
).map(lambda v: (v[0], 0.0 if v[0] == 0 else v[1] * v[2], v[1]))
valid_params = st.tuples(*(st.floats(min_value=1e-3, max_value=1e3) for _ in range(4)))


@settings(max_examples=300, deadline=None)
@given(valid_customer, valid_params, st.integers(1, 12), st.booleans())
def test_log_likelihood_finite_and_p_alive_a_probability(customer, params, k, modified):
    x, t_x, T = customer
    assert np.isfinite(bgcnbd_log_likelihood(*params, x, t_x, T, k=k, modified=modified))
    value, grad = bgcnbd_neg_loglik_grad(
        np.log(params), np.array([x], float), np.array([t_x]), np.array([T]), np.ones(1),
        k=k, modified=modified,
    )
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert 0.0 <= bgcnbd_probability_alive(*params, x, t_x, T, k=k, modified=modified) <= 1.0


@settings(max_examples=100, deadline=None)
@given(
    st.tuples(
        st.integers(min_value=0, max_value=300),
        st.floats(min_value=0.5, max_value=300),
        st.floats(min_value=0.0, max_value=1.0),
    ).map(lambda v: (v[0], 0.0 if v[0] == 0 else v[1] * v[2], v[1])),
    st.tuples(
        st.floats(min_value=0.05, max_value=20),
        st.floats(min_value=0.5, max_value=100),
        st.floats(min_value=0.05, max_value=20),
        st.floats(min_value=0.05, max_value=20),
    ),
    st.integers(2, 6),
    st.booleans(),
)
def test_expected_purchases_non_negative_and_increasing(customer, params, k, modified):
    t = np.array([0.0, 0.5, 1.0, 5.0, 26.0, 52.0, 104.0])
    values = bgcnbd_expected_purchases(t, *params, *customer, k=k, modified=modified)
    assert np.all(np.isfinite(values))
    assert np.all(values >= 0)
    assert np.all(np.diff(values) >= -1e-9 * (1 + np.abs(values[1:])))


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 1e-9), (0, 0.0, 1e5), (1e4, 1e5, 1e5),
                                             (3, 5.0, 5.0), (1e4, 1e-3, 1e5)])
@pytest.mark.parametrize("k", [2, 12])
def test_extreme_valid_rows_are_finite(x, t_x, T, k):
    for modified in (False, True):
        assert np.isfinite(bgcnbd_log_likelihood(*BTYDPLUS_SIM.values(), x, t_x, T, k=k,
                                                 modified=modified))
        value = bgcnbd_expected_purchases(52.0, *BTYDPLUS_SIM.values(), x, t_x, T, k=k,
                                          modified=modified)
        assert np.isfinite(value) and value >= 0


# -- the regularity statistic ----------------------------------------------------------------
def test_log_interpurchase_sum_on_cdnow(cdnow_transactions, cdnow_regular):
    litt = cdnow_regular[LITT_COLUMN]
    # customer 1 bought on days 0, 17 and 213: gaps of 17/7 and 196/7 weeks
    assert litt.loc[1] == pytest.approx(np.log(17 / 7) + np.log(28.0), rel=1e-12)
    assert (litt[cdnow_regular["frequency"] == 0] == 0).all()
    # an independent computation from distinct purchase days
    log = cdnow_transactions[cdnow_transactions["date"] <= "1997-09-30"]
    days = log.groupby("customer_id")["date"].apply(
        lambda d: np.diff(np.unique(d.to_numpy().astype("datetime64[D]")).astype(float))
    )
    np.testing.assert_allclose(litt, days.map(lambda g: np.log(g / 7.0).sum()).loc[litt.index],
                               rtol=1e-12, atol=1e-12)
    # other units and periods follow the summary's conventions
    daily = log_interpurchase_sum(cdnow_transactions, "customer_id", "date",
                                  observation_end="1997-09-30", time_unit="D")
    np.testing.assert_allclose(daily, litt + cdnow_regular["frequency"] * np.log(7.0), atol=1e-9)
    weekly = log_interpurchase_sum(cdnow_transactions, "customer_id", "date",
                                   observation_end="1997-09-30", freq="W")
    # Monday-to-Sunday weeks: 1997-01-01, -01-18 and -08-02 fall in weeks 0, 2 and 30
    assert weekly.loc[1] == pytest.approx(np.log(2.0) + np.log(28.0), rel=1e-12)


def test_litt_follows_a_calibration_split(cdnow_split, cdnow_transactions, cdnow_regular):
    split = add_log_interpurchase_sum(cdnow_split, cdnow_transactions)
    # the calibration part, not the holdout, feeds the statistic
    pd.testing.assert_series_equal(split[LITT_COLUMN], cdnow_regular[LITT_COLUMN])
    assert "frequency_holdout" in split.columns


def test_litt_is_required_and_checked(cdnow_summary, cdnow_regular):
    with pytest.raises(DataValidationError, match="add_log_interpurchase_sum"):
        BetaGeoCNBD().fit(cdnow_summary)
    with pytest.raises(DataValidationError, match="add_log_interpurchase_sum"):
        BetaGeoCNBD(k=2).fit(cdnow_summary)
    BetaGeoCNBD(k=1).fit(cdnow_summary)  # k = 1 does not need it
    wrong_unit = cdnow_regular.assign(**{LITT_COLUMN: cdnow_regular[LITT_COLUMN] + 3.0})
    with pytest.raises(DataValidationError, match="time unit"):
        BetaGeoCNBD().fit(wrong_unit)
    with pytest.raises(ValueError, match="attrs"):
        add_log_interpurchase_sum(pd.DataFrame({"frequency": [1]}), cdnow_summary)


@pytest.mark.parametrize("settings_", [{"k": 0}, {"k": 2.5}, {"k": True}, {"max_k": 0},
                                       {"modified": "yes"}])
def test_bad_settings_are_refused(cdnow_regular, settings_):
    with pytest.raises(ValueError):
        BetaGeoCNBD(**settings_).fit(cdnow_regular)


# -- persistence and contract -----------------------------------------------------------------
def test_save_load_rebuilds_the_fitted_model(tmp_path):
    rng = np.random.default_rng(4)
    data = simulate_bgcnbd(3_000, **BTYDPLUS_SIM, T=rng.uniform(36, 96, 3_000), k=2,
                           modified=True, random_state=rng)
    model = BetaGeoCNBD(modified=True).fit(data)
    assert model.k_ == 2 and model.alive_future_columns is None
    assert model.data_columns == ("frequency", "recency", "T", LITT_COLUMN)
    path = model.save(tmp_path / "cnbd.json")
    payload = json.loads(path.read_text())
    assert payload["settings"] == {"penalizer": 0.0, "k": None, "modified": True, "max_k": 12}
    assert payload["extra"]["k"] == 2
    loaded = load(path)
    assert type(loaded) is BetaGeoCNBD and loaded.k_ == 2 and loaded.modified
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    assert loaded.aic_ == pytest.approx(model.aic_)
    pd.testing.assert_series_equal(loaded.profile_log_likelihood_, model.profile_log_likelihood_)
    pd.testing.assert_series_equal(loaded.expected_purchases(t=10, data=data),
                                   model.expected_purchases(t=10, data=data))
    pd.testing.assert_frame_equal(loaded.param_draws(5, 1), model.param_draws(5, 1))
    # tampered files
    for change, message in [({"k": 0}, "extra.k"), ({"k": "2"}, "extra.k")]:
        bad = json.loads(path.read_text())
        bad["extra"].update(change)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ModelFileError, match=message):
            load(tmp_path / "bad.json")
    bad = json.loads(path.read_text())
    bad["settings"]["k"] = 3
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ModelFileError, match="settings fix k = 3"):
        load(tmp_path / "bad.json")


def test_from_params_needs_k():
    with pytest.raises(ValueError, match="k="):
        BetaGeoCNBD.from_params(BTYDPLUS_SIM)
    model = BetaGeoCNBD.from_params(BTYDPLUS_SIM, k=3)
    assert model.k_ == 3 and "CNBD-3" in repr(model)


def test_warnings_of_discarded_k_are_not_repeated():
    rng = np.random.default_rng(6)
    data = simulate_bgcnbd(2_000, **BTYDPLUS_SIM, T=rng.uniform(36, 96, 2_000), k=2,
                           random_state=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BetaGeoCNBD().fit(data)
    assert model.k_ == 2


@pytest.mark.parametrize(("k", "modified"), [(3, False), (2, True)])
def test_likelihood_works_in_pytensor_for_the_bayesian_engine(k, modified):
    # The same log_likelihood in a PyTensor graph: its value and symbolic gradient
    # equal the NumPy value and the forward-mode gradient.
    import pytensor
    import pytensor.tensor as pt

    from clvmodels.models import ops

    rng = np.random.default_rng(k)
    data = simulate_bgcnbd(60, **BTYDPLUS_SIM, T=rng.uniform(5, 40, 60), k=k, modified=modified,
                           random_state=rng)
    columns = (*_arrays(data), data[LITT_COLUMN].to_numpy())

    def total(theta, namespace):
        r, alpha, a, b = (namespace.exp(v) for v in theta)
        return bgcnbd_log_likelihood(r, alpha, a, b, *columns, k=k, modified=modified,
                                     ops=namespace).sum()

    theta = np.log(list(BTYDPLUS_SIM.values()))
    value, grad = ops.value_and_grad(lambda p: total(p, ops.DUAL), theta)
    variable = pt.dvector("theta")
    graph = total([variable[i] for i in range(4)], ops.pytensor_ops())
    pt_value, pt_grad = pytensor.function([variable], [graph, pytensor.grad(graph, variable)])(
        theta
    )
    assert value == pytest.approx(float(pt_value), rel=1e-12)
    assert value == pytest.approx(float(total(theta, ops.NUMPY)), rel=1e-14)
    np.testing.assert_allclose(grad, pt_grad, rtol=1e-8)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("modified", [False, True])
def test_log_likelihood_of_a_batch_of_draws_is_that_of_each_draw(k, modified):
    # A batch of draws shared by every row (the pointwise log-likelihood of a posterior)
    # takes the gamma-function terms once per distinct frequency: the same values as
    # one draw at a time, which evaluates them row by row (the same operations on the
    # same numbers, so 1e-14 is ample).
    rng = np.random.default_rng(k)
    data = simulate_bgcnbd(400, **BTYDPLUS_SIM, T=rng.uniform(5, 40, 400), k=k,
                           modified=modified, random_state=rng)
    draws = {n: v * np.exp(0.2 * rng.standard_normal((5, 1))) for n, v in BTYDPLUS_SIM.items()}
    batch = bgcnbd_log_likelihood(**draws, frequency=data["frequency"].to_numpy(float),
                                  recency=data["recency"].to_numpy(float),
                                  T=data["T"].to_numpy(float), k=k, modified=modified)
    assert batch.shape == (5, 400) and len(np.unique(data["frequency"])) < 400
    for d in range(5):
        one = bgcnbd_log_likelihood(*(float(draws[n][d, 0]) for n in NAMES), *_arrays(data),
                                    k=k, modified=modified)
        np.testing.assert_allclose(batch[d], one, rtol=1e-14, atol=0)


# -- the Bayesian version ---------------------------------------------------------------------
def _simulated_k2(n=2_000, seed=11, modified=False):
    rng = np.random.default_rng(seed)
    data = simulate_bgcnbd(n, **BTYDPLUS_SIM, T=np.round(rng.uniform(36, 96, n) / 12) * 12, k=2,
                           modified=modified, random_state=rng)
    data.attrs["time_unit"] = "W"
    return data.assign(region=np.where(rng.random(n) < 0.5, "east", "west"))


@pytest.mark.parametrize("group_col", [None, "region"])
@pytest.mark.parametrize("modified", [False, True])
def test_bayesian_log_likelihood_equals_the_maximum_likelihood_one(group_col, modified):
    # The sampled PyMC graph, the pooled NumPy density and the pointwise values LOO reads,
    # at the maximum-likelihood estimates (every group at the same values), add up to
    # the maximum-likelihood log-likelihood, regularity term included. Sums of ~2,000
    # terms of size ~10 in different orders: 1e-10 relative is far above rounding.
    import pytensor
    import pytensor.tensor as pt

    from clvmodels.models.bayes import bayesian

    data = _simulated_k2(modified=modified)
    mle = BetaGeoCNBD(modified=modified).fit(data)
    assert mle.k_ == 2
    model = bayesian(BetaGeoCNBD)(group_col=group_col, modified=modified)
    prep = model._prepare(data, "test")
    assert model.k_ == 2 and model.fixed_settings_ == {"k": 2}
    n_groups = len(prep.groups)
    assert n_groups == (1 if group_col is None else 2)
    theta = pt.dvector("theta")
    params = {k: pt.exp(theta[i]) * pt.ones(n_groups) for i, k in enumerate(NAMES)}
    graph = model._total_log_likelihood(params, prep.stats)
    total = pytensor.function([theta], graph)(np.log(mle.params_.to_numpy()))
    constant = prep.constant.sum()
    assert float(total) + constant == pytest.approx(mle.log_likelihood_, rel=1e-10)
    draws = {k: np.full((3, n_groups), mle.params_[k]) for k in NAMES}
    pointwise = model._pointwise_log_likelihood(draws, prep.stats)[:, prep.inverse]
    np.testing.assert_allclose((pointwise + prep.constant).sum(axis=1), mle.log_likelihood_,
                               rtol=1e-10)
    fitter = model._new_mle()
    arrays = fitter._fit_cache(dict(prep.arrays), prep.weights)
    neg_loglik, _ = fitter._nll_and_grad(np.log(mle.params_.to_numpy()), arrays, prep.weights)
    assert -neg_loglik + constant == pytest.approx(mle.log_likelihood_, rel=1e-10)


@pytest.mark.parametrize("modified", [False, True])
def test_bayesian_posterior_on_k2_data_sits_at_the_truth_and_the_mle(modified):
    from clvmodels.models.bayes import bayesian

    data = _simulated_k2(modified=modified)
    mle = BetaGeoCNBD(modified=modified).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 x 300 draws: ESS below the 400 it asks for
        model = bayesian(BetaGeoCNBD)(modified=modified).fit(
            data, draws=300, tune=300, chains=2, random_state=3, progressbar=False
        )
    assert model.k_ == 2 and model.summary().attrs["k"] == 2
    table = model.summary()
    for name, truth in BTYDPLUS_SIM.items():
        sd = table.loc[name, "sd"]
        # Weak priors next to 2,000 customers: the posterior mean is the estimate up
        # to the skew of the likelihood (well under one sd), and the truth lies within
        # a few sd of both.
        assert abs(table.loc[name, "estimate"] - mle.params_[name]) < 0.5 * sd, name
        assert abs(table.loc[name, "estimate"] - truth) < 3 * sd, name
    # The pointwise log-likelihood includes the regularity term: its sum at the posterior
    # mean is near the maximum (within a few units of the 4 parameters' worth).
    assert "observed" in model.idata_.log_likelihood
    assert np.isfinite(model.fit_statistics()["elpd_loo"])
    assert model.fit_statistics()["elpd_loo"] == pytest.approx(mle.log_likelihood_, abs=15)


def test_bayesian_by_group_holds_k_and_finds_each_group(tmp_path):
    from clvmodels.models.bayes import bayesian

    rng = np.random.default_rng(21)
    T = np.round(rng.uniform(36, 96, 1_500) / 12) * 12
    frames = []
    for region, alpha in (("east", 1.0), ("west", 3.0)):
        part = simulate_bgcnbd(1_500, **{**BTYDPLUS_SIM, "alpha": alpha}, T=T, k=2,
                               random_state=rng)
        frames.append(part.set_axis([f"{region}{i}" for i in range(1_500)]).assign(region=region))
    data = pd.concat(frames)
    data.attrs["time_unit"] = "W"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bayesian(BetaGeoCNBD)(k=2, group_col="region").fit(
            data, draws=150, tune=150, chains=2, random_state=2, progressbar=False
        )
    assert model.k_ == 2 and model.config_["fixed_settings"] == {"k": 2}
    table = model.summary()
    for region, alpha in (("east", 1.0), ("west", 3.0)):
        mle = BetaGeoCNBD(k=2).fit(data[data["region"] == region])
        # each group near its own estimate (1,500 customers outweigh the pooling)
        for name in NAMES:
            row = table.loc[(name, region)]
            assert abs(row["estimate"] - mle.params_[name]) < 2 * row["sd"], (region, name)
        assert abs(table.loc[("alpha", region), "estimate"] - alpha) < 3 * table.loc[
            ("alpha", region), "sd"]
    # The NetCDF file keeps the settings and the k the posterior is conditional on.
    path = model.save(tmp_path / "cnbd.nc")
    loaded = load(path)
    assert loaded.k_ == 2 and loaded.k == 2 and not loaded.modified
    pd.testing.assert_series_equal(loaded.expected_purchases(t=10, data=data),
                                   model.expected_purchases(t=10, data=data))


def _tampered(path, tmp_path, **changes):
    import arviz as az

    idata = az.from_netcdf(path)
    config = json.loads(idata.posterior.attrs["clvmodels_config"])
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = {**config.get(key, {}), **value}
    idata.posterior.attrs["clvmodels_config"] = json.dumps(config)
    out = tmp_path / "tampered.nc"
    idata.to_netcdf(str(out))
    return out


def test_bayesian_settings_are_checked_at_fit_and_on_load(tmp_path, cdnow_regular,
                                                          cdnow_summary):
    from clvmodels.models.bayes import bayesian

    cls = bayesian(BetaGeoCNBD)
    # k is estimated (or k > 1 fitted) from the regularity column, as by maximum likelihood
    with pytest.raises(DataValidationError, match=r"BayesianBetaGeoCNBD\.fit.*regularity=True"):
        cls().fit(cdnow_summary, draws=5, tune=5, chains=1)
    for bad in ({"k": 0}, {"k": 2.5}, {"max_k": 0}, {"modified": "yes"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            cls(**bad).fit(cdnow_regular, draws=5, tune=5, chains=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        cls(regularity=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(modified=True, max_k=3).fit(cdnow_regular.iloc[:400], draws=20, tune=20,
                                                chains=1, random_state=0, progressbar=False)
    path = model.save(tmp_path / "model.nc")
    loaded = load(path)
    assert (loaded.k, loaded.modified, loaded.max_k, loaded.k_) == (None, True, 3, model.k_)
    for changes, message in [
        ({"fixed_settings": {"k": 0}}, "k must be a positive integer"),
        ({"fixed_settings": {"k": "2"}}, "k must be a positive integer"),
        ({"fixed_settings": None}, "k is neither given nor estimated"),
        ({"fixed_settings": {"q": 1}}, r"unknown setting\(s\) \['q'\]"),
        ({"settings": {"k": 5}}, "k is .* but the settings give 5"),
        ({"settings": {"modified": 1}}, "modified must be True or False"),
        ({"settings": {"surprise": 1}}, "unknown settings"),
    ]:
        with pytest.raises(ModelFileError, match=rf"tampered\.nc.*{message}"):
            load(_tampered(path, tmp_path, **changes))
