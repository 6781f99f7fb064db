"""GammaGamma: published CDNOW estimates, lifetimes agreement, properties, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clvmodels import GammaGamma, load
from clvmodels.data import DataValidationError
from clvmodels.models.gamma_gamma import (
    gamma_gamma_expected_spend,
    gamma_gamma_log_likelihood,
    gamma_gamma_neg_loglik_grad,
)
from clvmodels.simulate import simulate_customers


@pytest.fixture(scope="module")
def fitted(cdnow_summary):
    return GammaGamma().fit(cdnow_summary)


def test_parameters_match_published_cdnow_estimates(fitted):
    # Fader, Hardie & Lee (2005, JMR) on the 946 CDNOW repeat buyers.
    assert fitted.params_["p"] == pytest.approx(6.25, abs=0.01)
    assert fitted.params_["q"] == pytest.approx(3.74, abs=0.01)
    assert fitted.params_["gamma"] == pytest.approx(15.44, abs=0.01)
    assert fitted.log_likelihood_ == pytest.approx(-4055.92, abs=0.01)
    assert fitted.n_obs_ == 946
    assert fitted.n_excluded_ == 2357 - 946


def test_population_mean_spend(fitted, cdnow_summary):
    spend = fitted.expected_spend(data=cdnow_summary)
    p, q, gamma = fitted.params_
    newcomers = cdnow_summary["frequency"] == 0
    np.testing.assert_allclose(spend[newcomers], p * gamma / (q - 1), rtol=1e-12)
    # FHL (2005, JMR) quote a mean of about $35 per transaction for the cohort.
    assert p * gamma / (q - 1) == pytest.approx(35.2, abs=0.1)


def test_agrees_with_lifetimes(cdnow_summary, fitted):
    import lifetimes
    buyers = cdnow_summary[cdnow_summary["frequency"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = lifetimes.GammaGammaFitter().fit(buyers["frequency"], buyers["monetary_value"])
    for ours, theirs in (("p", "p"), ("q", "q"), ("gamma", "v")):
        assert fitted.params_[ours] == pytest.approx(oracle.params_[theirs], rel=1e-3)
    same = GammaGamma.from_lifetimes(oracle)
    np.testing.assert_allclose(
        same.expected_spend(data=cdnow_summary).to_numpy(),
        oracle.conditional_expected_average_profit(
            cdnow_summary["frequency"], cdnow_summary["monetary_value"]
        ).to_numpy(),
        rtol=1e-6,
    )


def test_gradient_matches_finite_differences(cdnow_summary):
    buyers = cdnow_summary[cdnow_summary["frequency"] > 0]
    x = buyers["frequency"].to_numpy(float)
    m = buyers["monetary_value"].to_numpy(float)
    w = np.ones_like(x)
    z = np.log([4.0, 3.0, 20.0])
    _, grad = gamma_gamma_neg_loglik_grad(z, x, m, w)
    for j in range(3):
        h = np.zeros(3)
        h[j] = 1e-6
        numeric = (
            gamma_gamma_neg_loglik_grad(z + h, x, m, w)[0]
            - gamma_gamma_neg_loglik_grad(z - h, x, m, w)[0]
        ) / 2e-6
        assert grad[j] == pytest.approx(numeric, rel=1e-5)


def test_recovers_parameters_from_simulation():
    true = {"p": 4.0, "q": 5.0, "gamma": 30.0}
    data = simulate_customers(
        30_000, {"r": 1.0, "alpha": 4.0, "a": 0.5, "b": 3.0}, true, T=52.0, random_state=4
    )
    table = GammaGamma().fit(data).summary(interval=0.999)
    for name, value in true.items():
        assert table.loc[name, "lower 99.9%"] <= value <= table.loc[name, "upper 99.9%"]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=10_000),
    st.floats(min_value=1e-3, max_value=1e6),
    st.tuples(
        st.floats(min_value=1e-2, max_value=1e3),
        st.floats(min_value=1.01, max_value=1e3),
        st.floats(min_value=1e-2, max_value=1e4),
    ),
)
def test_expected_spend_shrinks_between_population_and_observed(x, m, params):
    p, q, gamma = params
    assert np.isfinite(gamma_gamma_log_likelihood(p, q, gamma, x, m))
    spend = gamma_gamma_expected_spend(p, q, gamma, x, m)
    population = p * gamma / (q - 1)
    low, high = sorted((population, m))
    assert spend > 0
    # A credibility-weighted mean of the population mean (weight q - 1) and the
    # customer's own mean (weight p x).
    assert low * (1 - 1e-9) <= spend <= high * (1 + 1e-9)


def test_expected_spend_under_draws_is_the_formula_per_draw_and_row():
    # Draws (n_draws, 1) against rows: a compiled pass instead of NumPy's broadcast,
    # the same values, with rows without usable history at the population mean and a
    # draw with q = 1 (no finite mean) infinite for them.
    rng = np.random.default_rng(4)
    p, q, gamma = rng.uniform(1, 10, (3, 50, 1))
    q[0] = 1.0
    x = rng.integers(0, 20, 300).astype(float)
    m = rng.gamma(2.0, 20.0, 300) * (rng.random(300) > 0.1) - 5.0 * (rng.random(300) < 0.05)
    with np.errstate(divide="ignore"):
        spend = gamma_gamma_expected_spend(p, q, gamma, x, m)
        usable = (x > 0) & (m > 0)
        xu, mu = np.where(usable, x, 0.0), np.where(usable, m, 0.0)
        want = p * (gamma + xu * mu) / (p * xu + q - 1)
    assert spend.shape == (50, 300)
    np.testing.assert_allclose(spend, want, rtol=1e-13)
    assert np.all(np.isinf(spend[0, ~usable])) and np.all(np.isfinite(spend[1:]))
    population = p[1:] * gamma[1:] / (q[1:] - 1)
    np.testing.assert_allclose(spend[1:, ~usable], np.broadcast_to(population, (49, 1))
                               .repeat((~usable).sum(), axis=1), rtol=1e-13)


def test_correlated_spend_warns_with_figure():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, 500)
    data = pd.DataFrame(
        {"frequency": x, "recency": 10.0, "T": 20.0,
         "monetary_value": 5.0 * x + rng.gamma(2, 10, 500)}
    )
    with pytest.warns(UserWarning, match=r"correlation among repeat buyers is 0\.9\d"):
        model = GammaGamma(penalizer=1e-3).fit(data)
    assert model.frequency_spend_correlation_ > 0.9


def test_needs_repeat_buyers():
    data = pd.DataFrame({"frequency": [0, 0, 1], "recency": [0.0, 0.0, 1.0],
                         "T": [5.0, 5.0, 5.0], "monetary_value": [0.0, 0.0, 3.0]})
    with pytest.raises(ValueError, match="repeat purchases"):
        GammaGamma().fit(data)


def test_monetary_value_is_validated():
    data = pd.DataFrame({"frequency": [2, 1, 3], "recency": [3.0, 1.0, 4.0],
                         "T": [5.0, 5.0, 5.0], "monetary_value": [-4.0, 3.0, 5.0]})
    with pytest.raises(DataValidationError, match=r"monetary_value': 1 of 3 rows are <= 0"):
        GammaGamma(strict=True).fit(data)
    with pytest.raises(DataValidationError, match="monetary_value"):
        GammaGamma().fit(data.drop(columns="monetary_value"))
    with pytest.raises(DataValidationError, match="missing"):
        GammaGamma().fit(data.assign(monetary_value=[np.nan, 3.0, 5.0]))


def test_one_customer_with_zero_spend_does_not_stop_the_full_cdnow_cohort():
    """The full CDNOW cohort has 80 transactions of amount 0.00; one repeat buyer's mean
    spend is 0. The fit leaves that customer out (counted, named in a warning) and the
    customer is still scored, with the population mean spend."""
    from clvmodels import load_cdnow, rfm_summary

    summary = rfm_summary(load_cdnow(sample=False), "customer_id", "date", "amount",
                          observation_end="1998-06-30")
    zero = summary.index[(summary["frequency"] > 0) & (summary["monetary_value"] <= 0)]
    assert list(zero) == [10244]
    with pytest.warns(UserWarning, match=r"1 of 23570 customers .*\[10244\]"):
        model = GammaGamma().fit(summary)
    assert model.exclusions_ == {
        "no repeat purchase": int((summary["frequency"] == 0).sum()),
        "non-positive mean spend": 1,
    }
    assert model.n_excluded_ == sum(model.exclusions_.values())
    p, q, gamma = model.params_
    spend = model.expected_spend(data=summary)
    assert spend.loc[10244] == pytest.approx(p * gamma / (q - 1), rel=1e-12)
    assert np.isfinite(spend).all() and (spend > 0).all()
    # The fit equals a fit on the usable customers alone.
    usable = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    np.testing.assert_allclose(GammaGamma().fit(usable).params_, model.params_, rtol=1e-9)
    with pytest.raises(DataValidationError, match=r"\[10244\]"):
        GammaGamma(strict=True).fit(summary)


def test_save_load_round_trip(fitted, cdnow_summary, tmp_path):
    loaded = load(fitted.save(tmp_path / "gg.json"))
    assert isinstance(loaded, GammaGamma)
    assert loaded.n_excluded_ == fitted.n_excluded_
    pd.testing.assert_series_equal(
        loaded.expected_spend(data=cdnow_summary), fitted.expected_spend(data=cdnow_summary)
    )
    draws = loaded.param_draws(4_000, random_state=0)
    assert (draws["q"] > 1).mean() > 0.99


def test_needs_only_frequency_and_monetary_value(cdnow_summary, fitted):
    spend_only = cdnow_summary[["frequency", "monetary_value"]]
    model = GammaGamma().fit(spend_only)
    pd.testing.assert_series_equal(model.params_, fitted.params_)
    pd.testing.assert_series_equal(
        model.expected_spend(data=spend_only), fitted.expected_spend(data=cdnow_summary)
    )


@pytest.mark.parametrize("extreme", [1e10, 1e12])
def test_one_extreme_spender_does_not_decide_convergence(cdnow_summary, extreme):
    """A single customer with an absurd mean spend among CDNOW's 946 repeat buyers used
    to trip the edge-of-parameter-space check (it measured drift from the arithmetic
    mean spend, which one outlier inflates); the fit must reach the finite optimum."""
    from scipy import optimize

    data = cdnow_summary.copy()
    data.loc[data.index[data["frequency"] > 0][0], "monetary_value"] = extreme
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # frequency-spend correlation
        model = GammaGamma().fit(data)
    buyers = data[data["frequency"] > 0]

    def neg_loglik(z):
        return -gamma_gamma_log_likelihood(
            *np.exp(z), buyers["frequency"].to_numpy(), buyers["monetary_value"].to_numpy()
        ).sum()

    reference = optimize.minimize(
        neg_loglik, np.log([10.0, 3.0, 7.0]), method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 20_000},
    )
    np.testing.assert_allclose(np.log(model.params_.to_numpy()), reference.x, atol=1e-5)
    assert model.log_likelihood_ == pytest.approx(-reference.fun, rel=1e-9)
