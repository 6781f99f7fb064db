"""Pareto/NBD with time-varying covariates (Bachmann, Meierer & Näf 2021).

Published numbers first (CLVTools' reference fit), then the exact reductions (constant
covariates = the static covariate model, zero coefficients = the plain Pareto/NBD),
then the closed forms against brute-force integration, then recovery on simulated
customers, then bad inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from clvmodels import (
    ParetoNBD,
    ParetoNBDDynamicCovariates,
    dynamic_covariate_data,
    load_apparel,
    load_apparel_covariates,
    load_apparel_dynamic,
    rfm_summary,
)
from clvmodels.errors import DataValidationError
from clvmodels.models.pareto_nbd import pnbd_log_likelihood
from clvmodels.models.pareto_nbd_dyncov import (
    pnbd_dyncov_expected_purchases,
    pnbd_dyncov_log_likelihood,
    pnbd_dyncov_probability_alive,
)

THREE = ["marketing", "gender", "channel"]


@pytest.fixture(scope="module")
def fixture_data():
    log, table = load_apparel_dynamic()
    return dynamic_covariate_data(log, table, "customer_id", "date",
                                  observation_end="2005-09-26")


# --------------------------------------------------------------------------------------
# Published numbers: CLVTools' reference fit
# --------------------------------------------------------------------------------------
# CLVTools (Bachmann, Meierer & Näf), tests/testthat/fitted_dyncov.rds as committed in
# bachmannpatrick/CLVTools at 0da490f (2020-06-12) and shipped with release 0.6.0
# (2ffe72f; blob ed5cd318): pnbd() with SetDynamicCovariates() on its apparel data
# (bundled as load_apparel_dynamic(), see datasets/README.md), Marketing, Gender and
# Channel on both processes, estimation.split = 38 weeks (2005-01-03 to 2005-09-26),
# stopped after one Nelder-Mead step. The object records its parameters
# (optimx.estimation.output: log.r 0, log.alpha 1.2084735175349208, log.s 0,
# log.beta log 3, all six coefficients 1), the negative log-likelihood there (value
# 3388.9430301624184) and each customer's log-likelihood (LL.data$LL), all computed
# by CLVTools' R implementation of BMN 2021's likelihood.
CLVTOOLS_PARAMS = {
    "r": 1.0, "alpha": float(np.exp(1.2084735175349208)), "s": 1.0, "beta": 3.0,
    **{f"purchase:{c}": 1.0 for c in THREE}, **{f"dropout:{c}": 1.0 for c in THREE},
}
CLVTOOLS_LL = -3388.9430301624184
CLVTOOLS_CUSTOMER_LL = {  # LL.data$LL of a few customers (Id: LL)
    1: -0.6568904904774482, 10: -9.542670273129074, 100: -44.08078944158124,
    1000: -39.98850015478266, 1108: -29.440066938904614,
}


def test_reproduces_clvtools_log_likelihood(fixture_data):
    model = ParetoNBDDynamicCovariates.from_params(
        CLVTOOLS_PARAMS, purchase_covariates=THREE, dropout_covariates=THREE)
    ll = model.log_likelihood(fixture_data)
    # CLVTools computes the weekly clocks from rounded period fractions (its customer
    # sums of rates differ from the exact ones by up to 9e-8 relative), which moves
    # single customers' LL by up to 9e-7 and the total by 1e-6: asserted to 1e-5.
    assert ll.sum() == pytest.approx(CLVTOOLS_LL, abs=1e-5)
    for customer, value in CLVTOOLS_CUSTOMER_LL.items():
        assert ll[customer] == pytest.approx(value, abs=1e-5)


# CLVTools' P(alive) at the same parameters: its pnbd_dyncov_palive() (as its test
# re-derives it, "pnbd_dyncov_palive_old") from the same object's LL.data, 1 /
# ((Bksum + alpha)^(x+r) (DkT + beta)^s s/(r+s+x) Z + 1), with x from its cbs.
CLVTOOLS_P_ALIVE = {
    1: 0.0006103566161290764, 10: 0.06407521294112054, 100: 0.8471396755662751,
    1000: 0.9855493160445659, 1108: 0.9844109841921097,
}


def test_reproduces_clvtools_probability_alive(fixture_data):
    model = ParetoNBDDynamicCovariates.from_params(
        CLVTOOLS_PARAMS, purchase_covariates=THREE, dropout_covariates=THREE)
    alive = model.probability_alive(fixture_data)
    # the same rounding of CLVTools' clocks as above: all 250 agree to 2.3e-10
    for customer, value in CLVTOOLS_P_ALIVE.items():
        assert alive[customer] == pytest.approx(value, abs=1e-8)


# --------------------------------------------------------------------------------------
# Exact reductions
# --------------------------------------------------------------------------------------
def _static_table(covariates: pd.DataFrame, first: str, weeks: int) -> pd.DataFrame:
    """Each customer's static covariates repeated over ``weeks`` weekly periods."""
    periods = pd.date_range(first, periods=weeks, freq="7D")
    rows = pd.MultiIndex.from_product([covariates.index, periods],
                                      names=["customer_id", "period"])
    return covariates.reindex(rows.get_level_values(0)).set_index(rows).reset_index()


@pytest.fixture(scope="module")
def apparel_static():
    """The bundled apparel data at 40 weeks, its static covariates as a weekly table
    (periods starting on Sundays, so every customer's time is cut mid-week)."""
    log, covariates = load_apparel(), load_apparel_covariates()
    summary = rfm_summary(log, "customer_id", "date", observation_end="2005-10-10")
    table = _static_table(covariates, "2005-01-02", 60)  # through the next 19 weeks
    data = dynamic_covariate_data(log, table, "customer_id", "date",
                                  observation_end="2005-10-10")
    return summary.join(covariates), data


# CLVTools' vignette estimates of the static model (tests/models/test_covariates.py)
STATIC_POINT = {
    "r": 0.9134, "alpha": 12.5136, "s": 0.5509, "beta": 25.7751,
    "purchase:gender": 1.1772, "purchase:channel": 0.5996,
    "dropout:gender": 0.7941, "dropout:channel": -0.3323,
}
BOTH = {"purchase_covariates": ["gender", "channel"], "dropout_covariates": ["gender", "channel"]}


def test_constant_covariates_are_the_static_model(apparel_static):
    summary, data = apparel_static
    pd.testing.assert_frame_equal(data.summary, summary[["frequency", "recency", "T"]],
                                  check_names=False)
    dynamic = ParetoNBDDynamicCovariates.from_params(STATIC_POINT, **BOTH)
    static = ParetoNBD.from_params(STATIC_POINT, time_unit="W", **BOTH)
    # The static model's customers have alpha_i = alpha exp(-g_p' z), beta_i = beta
    # exp(-g_d' z). Two routes to the same numbers (one piece against some 40 weekly
    # pieces): equal to rounding, 1e-10 relative.
    z = summary[["gender", "channel"]].to_numpy()
    static_ll = pnbd_log_likelihood(
        0.9134, 12.5136 * np.exp(-z @ [1.1772, 0.5996]), 0.5509,
        25.7751 * np.exp(-z @ [0.7941, -0.3323]),
        summary["frequency"], summary["recency"], summary["T"])
    np.testing.assert_allclose(dynamic.log_likelihood(data).to_numpy(), static_ll, rtol=1e-10)
    np.testing.assert_allclose(dynamic.probability_alive(data).to_numpy(),
                               static.probability_alive(data=summary).to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(dynamic.expected_purchases(12.5, data).to_numpy(),
                               static.expected_purchases(t=12.5, data=summary).to_numpy(),
                               rtol=1e-10)


def test_constant_covariates_fit_the_static_estimates(apparel_static):
    summary, data = apparel_static
    dynamic = ParetoNBDDynamicCovariates(**BOTH).fit(data)
    static = ParetoNBD(**BOTH).fit(summary)
    # The same likelihood by two optimisers: the maxima agree to 1e-8 relative, the
    # estimates to the flatness of the likelihood (beta's SE is as large as beta).
    assert dynamic.log_likelihood_ == pytest.approx(static.log_likelihood_, rel=1e-8)
    assert dynamic.log_likelihood_ == pytest.approx(-3481.6392, abs=1e-3)  # CLVTools
    pd.testing.assert_series_equal(dynamic.params_, static.params_[dynamic.params_.index],
                                   rtol=2e-3)
    table, published = dynamic.summary(), static.summary()
    np.testing.assert_allclose(table["se"].to_numpy(),
                               published.loc[table.index, "se"].to_numpy(), rtol=1e-2)


def test_zero_coefficients_are_the_plain_pareto_nbd(fixture_data):
    params = {"r": 0.7, "alpha": 4.0, "s": 0.4, "beta": 20.0,
              **{f"purchase:{c}": 0.0 for c in THREE}, **{f"dropout:{c}": 0.0 for c in THREE}}
    model = ParetoNBDDynamicCovariates.from_params(
        params, purchase_covariates=THREE, dropout_covariates=THREE)
    frame = fixture_data.summary
    plain = pnbd_log_likelihood(0.7, 4.0, 0.4, 20.0, frame["frequency"], frame["recency"],
                                frame["T"])
    np.testing.assert_allclose(model.log_likelihood(fixture_data).to_numpy(), plain,
                               rtol=1e-10)


# --------------------------------------------------------------------------------------
# Closed forms against brute-force integration, covariates varying strongly
# --------------------------------------------------------------------------------------
R, ALPHA, S, BETA = 0.8, 6.0, 0.7, 9.0
START = np.arange(-0.3, 30.0, 1.0)[None, :]  # weekly periods, customer time cut at 0.3
LOG_A = 0.9 * np.sin(np.arange(START.shape[1]))[None, :]
LOG_C = 1.2 * np.cos(0.7 * np.arange(START.shape[1]))[None, :]


def _rate(log_rate, u):
    return np.exp(log_rate[0, np.searchsorted(START[0], u, side="right") - 1])


def _clock(log_rate, u):
    return integrate.quad(lambda v: _rate(log_rate, v), 0.0, u, points=START[0][1:],
                          limit=200, epsabs=0, epsrel=1e-13)[0]


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 20.0), (3, 11.6, 20.0), (5, 19.9, 20.0)])
def test_likelihood_and_p_alive_against_quadrature(x, t_x, T):
    args = (np.array([x], float), np.array([t_x]), np.array([T]), START, START + 1.0,
            LOG_A, LOG_C)
    log_purchase = np.array([0.37])
    ll = pnbd_dyncov_log_likelihood(R, ALPHA, S, BETA, *args, log_purchase)[0]
    p = R + x
    A_T, C_T = _clock(LOG_A, T), _clock(LOG_C, T)
    alive = (ALPHA / (ALPHA + A_T)) ** R * (BETA / (BETA + C_T)) ** S / (ALPHA + A_T) ** x

    def dead_density(tau):
        return ((ALPHA / (ALPHA + _clock(LOG_A, tau))) ** R / (ALPHA + _clock(LOG_A, tau)) ** x
                * S * BETA**S * _rate(LOG_C, tau) / (BETA + _clock(LOG_C, tau)) ** (S + 1))

    dead = integrate.quad(dead_density, t_x, T, points=START[0][1:], limit=200,
                          epsabs=0, epsrel=1e-12)[0]
    from scipy.special import gammaln

    expected = gammaln(p) - gammaln(R) + 0.37 + np.log(alive + dead)
    # quad's tolerance is 1e-12 relative on nested quadratures: 1e-9 relative.
    assert ll == pytest.approx(expected, rel=1e-9)
    p_alive = pnbd_dyncov_probability_alive(R, ALPHA, S, BETA, *args)[0]
    assert p_alive == pytest.approx(alive / (alive + dead), rel=1e-9)


def test_expected_purchases_against_quadrature():
    x, t_x, T, t = 3, 11.6, 20.0, 7.45
    args = (np.array([x], float), np.array([t_x]), np.array([T]), START, START + 1.0,
            LOG_A, LOG_C)
    value = pnbd_dyncov_expected_purchases(t, R, ALPHA, S, BETA, *args)[0]
    p_alive = pnbd_dyncov_probability_alive(R, ALPHA, S, BETA, *args)[0]
    A_T, C_T = _clock(LOG_A, T), _clock(LOG_C, T)

    def rate(u):  # E[lambda a(u) 1{alive at u} | alive at T]
        survive = ((BETA + C_T) / (BETA + _clock(LOG_C, u))) ** S
        return (R + x) / (ALPHA + A_T) * _rate(LOG_A, u) * survive

    expected = p_alive * integrate.quad(rate, T, T + t, points=START[0][1:], limit=200,
                                        epsabs=0, epsrel=1e-12)[0]
    assert value == pytest.approx(expected, rel=1e-9)
    at_s_one = pnbd_dyncov_expected_purchases(t, R, ALPHA, 1.0, BETA, *args)[0]
    near_one = pnbd_dyncov_expected_purchases(t, R, ALPHA, 1.0 + 1e-7, BETA, *args)[0]
    assert at_s_one == pytest.approx(near_one, rel=1e-6)  # exprel: no 0/0 at s = 1


def test_extreme_values_stay_finite(fixture_data):
    params = {"r": 1e-3, "alpha": 1e4, "s": 50.0, "beta": 1e-3,
              **{f"purchase:{c}": 3.0 for c in THREE}, **{f"dropout:{c}": -3.0 for c in THREE}}
    model = ParetoNBDDynamicCovariates.from_params(
        params, purchase_covariates=THREE, dropout_covariates=THREE)
    assert np.isfinite(model.log_likelihood(fixture_data)).all()
    alive = model.probability_alive(fixture_data)
    assert ((alive >= 0) & (alive <= 1)).all()


# --------------------------------------------------------------------------------------
# Recovery on simulated customers with time-varying covariates
# --------------------------------------------------------------------------------------
TRUE = {"r": 0.9, "alpha": 6.0, "s": 0.6, "beta": 10.0,
        "purchase:promo": 0.8, "purchase:female": 0.4, "dropout:promo": -0.5}


def _simulate(n: int, weeks: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers joining in the first 8 weeks; a promotion in random weeks (30% of
    customer-weeks); purchases a Poisson process at lambda exp(g' z_t) while alive,
    dropout at mu exp(g' w_t), both piecewise by week."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-06")
    promo = rng.random((n, weeks)) < 0.3
    female = rng.random(n) < 0.5
    lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    mu = rng.gamma(TRUE["s"], 1 / TRUE["beta"], n)
    join = rng.integers(0, 56, n)  # day of the first purchase
    rows = []
    for i in range(n):
        a = lam[i] * np.exp(TRUE["purchase:promo"] * promo[i] + TRUE["purchase:female"] * female[i])
        c = mu[i] * np.exp(TRUE["dropout:promo"] * promo[i])
        budget = rng.exponential()  # dies when the dropout clock passes it
        days = [join[i]]
        for week in range(join[i] // 7, weeks):
            lo = max(week * 7, join[i])
            hi = (week + 1) * 7
            span = (hi - lo) / 7
            if budget < c[week] * span:
                hi = lo + 7 * budget / c[week]
                span = (hi - lo) / 7
                count = rng.poisson(a[week] * span)
                days += list(rng.uniform(lo, hi, count))
                break
            budget -= c[week] * span
            days += list(rng.uniform(lo, hi, rng.poisson(a[week] * span)))
        rows += [(i, start + pd.Timedelta(days=int(d))) for d in days]
    log = pd.DataFrame(rows, columns=["customer_id", "date"])
    periods = pd.date_range(start, periods=weeks, freq="7D")
    table = pd.DataFrame({
        "customer_id": np.repeat(np.arange(n), weeks),
        "period": np.tile(periods, n),
        "promo": promo.ravel().astype(float),
        "female": np.repeat(female.astype(float), weeks),
    })
    return log, table


def test_recovers_parameters_of_simulated_customers():
    log, table = _simulate(1500, 60, seed=7)
    data = dynamic_covariate_data(log, table, "customer_id", "date",
                                  observation_end="2021-02-28")
    model = ParetoNBDDynamicCovariates(["promo", "female"], ["promo"]).fit(data)
    table = model.summary()
    # every estimate within 3.5 standard errors of the truth (a 1-in-2000 miss each)
    z = (table["estimate"] - pd.Series(TRUE)) / table["se"]
    assert (z.abs() < 3.5).all(), z
    # the purchase effects are well identified: within 0.15 of the truth
    assert abs(model.params_["purchase:promo"] - 0.8) < 0.08  # SE about 0.02


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    log, table = load_apparel_dynamic()
    ids = [1, 10, 100]
    return log[log["customer_id"].isin(ids)], table[table["customer_id"].isin(ids)]


def _build(log, table, **kwargs):
    return dynamic_covariate_data(log, table, "customer_id", "date",
                                  observation_end="2005-09-26", **kwargs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda log, t: (log, t[t["customer_id"] != 100]),
         r"no rows for 1 of 3 customers; first ids \[100\]"),
        (lambda log, t: (log, t.drop(t.index[(t["customer_id"] == 10)
                                             & (t["period"] == "2005-03-06")])),
         r"no row for 1 \(customer, period\) pairs .* first \[\(10, '2005-03-06'\)\]"),
        (lambda log, t: (log, t.assign(gender=t["gender"].map({0: "m", 1: "f"}))),
         r"covariate column 'gender' is not numeric"),
        (lambda log, t: (log, t.assign(marketing=t["marketing"].where(t.index != t.index[4])),),
         r"covariate column 'marketing' has 1 missing or infinite values; first rows"),
        (lambda log, t: (log, pd.concat([t, t.head(1)])),
         r"1 repeated \(customer, period\) rows; first \[\(1, '2005-01-02'\)\]"),
        (lambda log, t: (log, t[t["period"] != "2005-02-06"]),
         r"evenly spaced: 2005-01-30 to 2005-02-13 is 14 days, the first step 7 days"),
        (lambda log, t: (log.rename(columns={"date": "day"}), t),
         r"transactions has no column\(s\) \['date'\]"),
        (lambda log, t: (log, t.drop(columns="period")),
         r"the covariate table has no column\(s\) \['period'\]"),
        (lambda log, t: (log.assign(date=log["date"].astype(str).where(
            log.index != log.index[0], "soon")), t),
         r"transactions column 'date': 1 rows are not dates"),
        (lambda log, t: (log, t[t["period"] <= "2005-06-01"]),
         r"covariate table ends with the period starting 2005-05-29"),
    ],
)
def test_bad_data_is_refused_by_name(small, change, message):
    log, table = change(*small)
    with pytest.raises(DataValidationError, match=message):
        _build(log, table)


def test_predictions_need_covariates_over_the_horizon(small):
    log, table = small
    data = _build(log, table[table["period"] <= "2005-10-30"])
    model = ParetoNBDDynamicCovariates.from_params(
        {"r": 1.0, "alpha": 3.0, "s": 1.0, "beta": 3.0, "purchase:marketing": 0.3},
        purchase_covariates=["marketing"])
    assert model.expected_purchases(5.0, data).notna().all()
    with pytest.raises(DataValidationError, match=r"up to 10 W after the observation end"):
        model.expected_purchases(10.0, data)


def test_model_settings_and_inputs_are_checked(small):
    data = _build(*small)
    with pytest.raises(DataValidationError, match=r"no column\(s\) \['age'\]"):
        ParetoNBDDynamicCovariates(purchase_covariates=["age"]).fit(data)
    with pytest.raises(DataValidationError, match="takes the DynamicCovariateData"):
        ParetoNBDDynamicCovariates().fit(data.summary)
    with pytest.raises(ValueError, match="must be a list of column names"):
        ParetoNBDDynamicCovariates(purchase_covariates="gender").fit(data)
    with pytest.raises(ValueError, match=r"missing \['s', 'beta'\]"):
        ParetoNBDDynamicCovariates.from_params({"r": 1.0, "alpha": 2.0})
