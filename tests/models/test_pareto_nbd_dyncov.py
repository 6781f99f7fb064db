"""Pareto/NBD with time-varying covariates (Bachmann, Meierer & Näf 2021).

Published numbers first (CLVTools' reference fit), then the exact reductions (constant
covariates = the static covariate model, zero coefficients = the plain Pareto/NBD),
then the closed forms against brute-force integration, then recovery on simulated
customers, then bad inputs; then saving and loading, predictions under parameter
draws, and the parts of the package that refuse the model.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from clvmodels import (
    GammaGamma,
    ParetoNBD,
    ParetoNBDDynamicCovariates,
    compare,
    customer_lifetime_value,
    dynamic_covariate_data,
    load,
    load_apparel,
    load_apparel_covariates,
    load_apparel_dynamic,
    rfm_summary,
    segment,
)
from clvmodels.clv import CLVScorer
from clvmodels.errors import DataValidationError, ModelFileError
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


# --------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(fixture_data):
    """CLVTools' reference specification fitted once (about 10 s)."""
    return ParetoNBDDynamicCovariates(THREE, THREE).fit(fixture_data)


def test_saved_fit_loads_with_identical_predictions(fitted, fixture_data, tmp_path):
    loaded = load(fitted.save(tmp_path / "dyncov.json"))
    assert type(loaded) is ParetoNBDDynamicCovariates
    assert (loaded.purchase_covariates, loaded.dropout_covariates) == (THREE, THREE)
    assert (loaded.time_unit_, loaded.period_length_) == ("W", pd.Timedelta(days=7))
    assert loaded.n_obs_ == 250 and loaded.log_likelihood_ == fitted.log_likelihood_
    # JSON writes floats by repr, which reads back to the same double: exact equality
    pd.testing.assert_series_equal(loaded.params_, fitted.params_, check_exact=True)
    pd.testing.assert_frame_equal(loaded.covariance_, fitted.covariance_, check_exact=True)
    for predict in (lambda m: m.probability_alive(fixture_data),
                    lambda m: m.expected_purchases(10, fixture_data),
                    lambda m: m.probability_alive(fixture_data, draws=fitted.param_draws(
                        3, random_state=5))):
        np.testing.assert_array_equal(np.asarray(predict(loaded)),
                                      np.asarray(predict(fitted)))


def test_a_model_without_covariance_saves_and_loads(tmp_path):
    model = ParetoNBDDynamicCovariates.from_params(
        {"r": 1.0, "alpha": 3.0, "s": 1.0, "beta": 3.0, "purchase:marketing": 0.5},
        purchase_covariates=["marketing"])
    loaded = load(model.save(tmp_path / "m.json"))
    assert loaded.covariance_.isna().all().all() and loaded.time_unit_ is None
    assert loaded.period_length_ is None and np.isnan(loaded.log_likelihood_)
    pd.testing.assert_series_equal(loaded.params_, model.params_, check_exact=True)


def _broken(payload, field, value):
    out = json.loads(json.dumps(payload))
    if field.startswith("params."):
        out["params"][field[len("params."):]] = value
    elif value is KeyError:
        del out[field]
    else:
        out[field] = value
    return out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("params.alpha", -3.0, r"field\(s\) \['params.alpha'\] must be positive"),
        ("params.r", 0.0, r"\['params.r'\] must be positive"),
        ("params.beta", 1e30, r"\['params.beta'\] lie outside e\^-60 .. e\^60"),
        ("params.dropout:gender", float("inf"), r"'params.dropout:gender' must be finite"),
        ("params.s", "1", r"'params.s' must be a number"),
        ("params", {"r": 1.0}, r"field 'params' must hold exactly \['r', 'alpha'"),
        ("covariance", [[1.0, 0.0], [0.0, 1.0]], r"'covariance' must be a 10 x 10"),
        ("covariance", np.diag([1.0] * 9 + [-1.0]).tolist(), "not positive definite"),
        ("covariance", (np.eye(10) + np.triu(np.ones((10, 10)), 1)).tolist(),
         "not symmetric"),
        ("covariance", np.where(np.eye(10) > 0, float("nan"), 0).tolist(),
         "'covariance' must be finite"),
        ("settings", {"purchase_covariates": "gender", "dropout_covariates": []},
         "field 'settings' is invalid"),
        ("settings", {"purchase_covariates": THREE}, "field 'settings' must hold exactly"),
        ("time_unit", "fortnight", "field 'time_unit' is 'fortnight'"),
        ("period_length", "soon", "field 'period_length' must be a positive"),
        ("period_length", "-P7D", "field 'period_length' must be a positive"),
        ("n_obs", -1, "field 'n_obs' must be an integer"),
        ("format_version", 2, "field 'format_version' is 2"),
        ("code", "__import__('os')", r"unknown field\(s\) \['code'\]"),
        ("params", KeyError, r"missing field\(s\) \['params'\]"),
    ],
)
def test_invalid_files_are_refused_by_field(fitted, tmp_path, field, value, message):
    payload = json.loads(fitted.save(tmp_path / "good.json").read_text())
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(payload, field, value)))  # NaN, inf as JSON tokens
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_a_file_of_another_model_is_refused(fitted, tmp_path):
    payload = json.loads(fitted.save(tmp_path / "good.json").read_text())
    with pytest.raises(ModelFileError, match="field 'model' is 'ParetoNBD', not"):
        ParetoNBDDynamicCovariates.from_payload(_broken(payload, "model", "ParetoNBD"))


def test_predictions_refuse_data_in_another_time_unit(fitted, small):
    log, table = small
    days = dynamic_covariate_data(log, table, "customer_id", "date",
                                  observation_end="2005-09-26", time_unit="D")
    with pytest.raises(DataValidationError, match="fitted with time_unit 'W'"):
        fitted.probability_alive(days)


# --------------------------------------------------------------------------------------
# Parameter uncertainty
# --------------------------------------------------------------------------------------
def test_param_draws_follow_the_estimator_distribution(fitted):
    draws = fitted.param_draws(4000, random_state=11)
    assert list(draws.columns) == list(fitted.param_names)
    theta = np.column_stack([np.log(draws.iloc[:, :4]), draws.iloc[:, 4:]])
    se = np.sqrt(np.diag(fitted.covariance_.to_numpy()))
    # draws' means within 4 Monte Carlo SEs (se / sqrt(4000)) of the optimiser's point;
    # their SDs within 6% of the SEs (the SD of a sample SD is 1.1% at n = 4000)
    centre = np.concatenate([np.log(fitted.params_.iloc[:4]), fitted.params_.iloc[4:]])
    assert np.all(np.abs(theta.mean(axis=0) - centre) < 4 * se / np.sqrt(4000))
    np.testing.assert_allclose(theta.std(axis=0), se, rtol=0.06)


def test_predictions_under_draws_are_the_predictions_at_each_draw(fitted, fixture_data):
    draws = fitted.param_draws(3, random_state=2)
    alive = fitted.probability_alive(fixture_data, draws=draws)
    expected = fitted.expected_purchases(10, fixture_data, draws=draws)
    assert alive.shape == expected.shape == (3, 250)
    for i, row in enumerate(draws.to_dict("records")):
        at = ParetoNBDDynamicCovariates.from_params(row, purchase_covariates=THREE,
                                                    dropout_covariates=THREE)
        # the same arithmetic by another route to theta (log of exp): 1e-12 relative
        np.testing.assert_allclose(alive[i], at.probability_alive(fixture_data), rtol=1e-12)
        np.testing.assert_allclose(expected[i], at.expected_purchases(10, fixture_data),
                                   rtol=1e-12)


def test_mean_over_draws_is_the_point_prediction_to_second_order(fitted, fixture_data):
    names = list(fitted.param_names)
    centre = np.concatenate([np.log(fitted.params_.iloc[:4]), fitted.params_.iloc[4:]])

    def at(theta):  # expected purchases at parameters on the optimiser's scale
        values = np.concatenate([np.exp(theta[:4]), theta[4:]])
        return fitted.expected_purchases(
            10, fixture_data, draws=pd.DataFrame([values], columns=names))[0]

    point = fitted.expected_purchases(10, fixture_data).to_numpy()
    # E f(theta) for theta ~ N(centre, cov) is f(centre) + tr(H cov) / 2 to second
    # order: curvature along each principal axis of cov by central differences of half
    # its standard deviation. beta's SE is as large as beta, so the curvature term is
    # up to half a draw SD here and cannot be left out.
    values, axes = np.linalg.eigh(fitted.covariance_.to_numpy())
    curvature = sum(
        (at(centre + 0.5 * np.sqrt(v) * u) - 2 * point + at(centre - 0.5 * np.sqrt(v) * u))
        / (0.25 * v) * v / 2 for v, u in zip(values, axes.T, strict=True))
    sample = fitted.expected_purchases(10, fixture_data,
                                       draws=fitted.param_draws(1000, random_state=3))
    assert sample.shape == (1000, 250)
    sd = sample.std(axis=0)
    # Left: the Monte Carlo error, sd / sqrt(1000) = 0.032 sd per customer (3.5 of them,
    # 0.11 sd, over 250 customers), and third- and higher-order terms (below 0.05 sd
    # with three seeds): within 0.2 sd for every customer, and the total within 0.5%.
    assert (sd > 0).all()
    assert np.all(np.abs(sample.mean(axis=0) - point - curvature) < 0.2 * sd)
    assert sample.mean(axis=0).sum() == pytest.approx((point + curvature).sum(), rel=5e-3)
    # without the curvature the point is still within a draw SD of the mean
    assert np.all(np.abs(sample.mean(axis=0) - point) < sd)


def test_draws_are_checked(fitted, fixture_data):
    draws = fitted.param_draws(2, random_state=0)
    with pytest.raises(ValueError, match=r"missing \['dropout:channel'\]"):
        fitted.probability_alive(fixture_data, draws=draws.drop(columns="dropout:channel"))
    with pytest.raises(ValueError, match="alpha, s, beta positive"):
        fitted.expected_purchases(5, fixture_data, draws=draws.assign(alpha=-1.0))
    with pytest.raises(ValueError, match="DataFrame of param_draws"):
        fitted.probability_alive(fixture_data, draws=draws.to_numpy())
    with pytest.raises(ValueError, match="no finite covariance"):
        ParetoNBDDynamicCovariates.from_params(
            {"r": 1.0, "alpha": 3.0, "s": 1.0, "beta": 3.0}).param_draws(5)


# --------------------------------------------------------------------------------------
# Where the package does not take it (yet)
# --------------------------------------------------------------------------------------
REFUSED = r"does not support ParetoNBDDynamicCovariates yet: it fits and predicts on " \
          r"DynamicCovariateData .* ParetoNBD with static covariates"


def test_clv_segments_and_comparison_refuse_it_clearly(fitted, fixture_data):
    with pytest.raises(TypeError, match="customer_lifetime_value " + REFUSED):
        customer_lifetime_value(fitted, GammaGamma(), fixture_data.summary)
    with pytest.raises(TypeError, match="CLVScorer " + REFUSED):  # Spark's scorer
        CLVScorer(fitted, GammaGamma(), time_unit="W")
    with pytest.raises(TypeError, match="segment " + REFUSED):
        segment(fitted)
    with pytest.raises(TypeError, match="compare " + REFUSED):
        compare({"dynamic": (fitted, GammaGamma())}, pd.DataFrame({"frequency": [1]}))


def test_the_pipeline_refuses_it_clearly_and_does_not_offer_it():
    from clvmodels.evaluation import family_models
    from clvmodels.pipeline import PipelineSettings, available_models, make_model

    for spec in ("ParetoNBDDynamicCovariates", ParetoNBDDynamicCovariates,
                 ParetoNBDDynamicCovariates()):
        with pytest.raises(TypeError, match="the pipeline " + REFUSED):
            make_model(spec, kind="transaction")
    log = pd.DataFrame({"id": [1, 1], "day": ["2020-01-01", "2020-02-01"], "v": [1.0, 2.0]})
    with pytest.raises(TypeError, match="the pipeline " + REFUSED):
        PipelineSettings(log, "id", "day", "v",
                         models=("ParetoNBDDynamicCovariates", "GammaGamma"))
    assert "ParetoNBDDynamicCovariates" not in available_models()
    assert not any(name.startswith("ParetoNBDDynamic")
                   for name in family_models(bayesian=True))
