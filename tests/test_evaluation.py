"""Holdout validation and model comparison: published CDNOW figures, lifetimes, bad input."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from clvmodels import (
    BetaGeo,
    BetaGeoCNBD,
    GammaGamma,
    ModifiedBetaGeo,
    add_log_interpurchase_sum,
    customer_lifetime_value,
)
from clvmodels.averaging import average_forecasts, backtest_weights
from clvmodels.data import DataValidationError, calibration_holdout_split
from clvmodels.evaluation import (
    AVERAGE_NAME,
    add_model_columns,
    compare,
    conditional_expectations_by_frequency,
    expected_cumulative_purchases,
    family_models,
    forecast_calibration,
    interval_coverage,
    paired_difference,
    repeat_purchase_histogram,
    summary_text,
    top_share,
)
from clvmodels.models.beta_geo import (
    bgnbd_expected_purchases,
    bgnbd_expected_purchases_new_customer,
    bgnbd_probability_of_purchases,
)
from clvmodels.simulate import simulate_bgnbd, simulate_transactions

# FHL 2005, figure 5 / Hardie's spreadsheet: E[Y(39) | x, t_x, T] averaged by x.
PUBLISHED_CONDITIONAL = [0.225, 0.523, 1.044, 1.520, 2.164, 2.654, 3.504, 6.157]
# FHL 2005, figure 4 / Hardie's spreadsheet: expected cumulative repeat purchases.
PUBLISHED_TRACKING = {20: 1312.5, 21: 1387.3, 22: 1460.4, 23: 1531.7, 24: 1601.4, 25: 1669.6}


@pytest.fixture(scope="module")
def bgnbd(cdnow_split):
    return BetaGeo().fit(cdnow_split)


@pytest.fixture(scope="module")
def gamma_gamma(cdnow_split):
    return GammaGamma().fit(cdnow_split)


@pytest.fixture(scope="module")
def tracking(bgnbd, cdnow_transactions):
    return expected_cumulative_purchases(
        bgnbd, cdnow_transactions, "customer_id", "date", calibration_end="1997-09-30"
    )


@pytest.fixture(scope="module")
def comparison(cdnow_split, bgnbd, gamma_gamma):
    return compare(
        {"BG/NBD": (bgnbd, gamma_gamma)}, cdnow_split, n_draws=300, progressbar=False
    )


# -- published figures ----------------------------------------------------------------
def test_conditional_expectations_match_fhl2005(bgnbd, cdnow_split):
    table = conditional_expectations_by_frequency(bgnbd, cdnow_split)
    assert table.index.tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    np.testing.assert_allclose(table["expected"], PUBLISHED_CONDITIONAL, atol=0.002)
    # Actual means, counted directly: 1,882 holdout purchases in weeks 40-78.
    x = np.minimum(cdnow_split["frequency"], 7)
    direct = cdnow_split.groupby(x)["frequency_holdout"].mean().to_numpy()
    np.testing.assert_allclose(table["actual"], direct)
    assert (table["actual"] * table["customers"]).sum() == pytest.approx(1882)
    assert table["customers"].sum() == 2357
    assert table.attrs["holdout_length"] == 39.0


def test_tracking_matches_fhl2005(tracking):
    for week, value in PUBLISHED_TRACKING.items():
        assert tracking.loc[week, "expected"] == pytest.approx(value, abs=0.051)
    assert len(tracking) == 78
    # Week 39 ends the calibration period (2,457 repeat purchases), week 78 the holdout.
    assert tracking.loc[39, "actual"] == 2457
    assert tracking.loc[78, "actual"] == 2457 + 1882
    assert tracking.attrs["calibration_end_t"] == 39.0
    assert tracking.loc[39, "date"] == pd.Timestamp("1997-09-30")
    np.testing.assert_allclose(tracking["expected_incremental"].cumsum(), tracking["expected"])
    np.testing.assert_allclose(tracking["actual_incremental"].cumsum(), tracking["actual"])


def test_tracking_agrees_with_lifetimes(bgnbd, tracking, cdnow_transactions):
    import lifetimes
    from lifetimes.utils import expected_cumulative_transactions

    oracle = lifetimes.BetaGeoFitter()
    oracle.params_ = pd.Series(bgnbd.params_.to_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = expected_cumulative_transactions(
            oracle, cdnow_transactions, "date", "customer_id", 78 * 7, freq="D",
            freq_multiplier=7,
        )
    np.testing.assert_allclose(tracking["expected"], expected["predicted"], rtol=1e-8)
    np.testing.assert_array_equal(tracking["actual"], expected["actual"])


def test_tracking_in_days_and_with_an_end(bgnbd, cdnow_transactions):
    weekly = expected_cumulative_purchases(bgnbd, cdnow_transactions, "customer_id", "date",
                                           end="1997-09-30")
    daily = expected_cumulative_purchases(bgnbd, cdnow_transactions, "customer_id", "date",
                                          end="1997-09-30", time_unit="W", step=1 / 7)
    assert len(weekly) == 39 and len(daily) == 273
    assert weekly.attrs["n_transactions_after_end"] == 1959
    np.testing.assert_allclose(daily["expected"].iloc[6::7].to_numpy(), weekly["expected"])
    np.testing.assert_array_equal(daily["actual"].iloc[6::7].to_numpy(), weekly["actual"])


class _GroupedBetaGeo:
    """A test double: one BetaGeo parameter set per group, chosen by the group column,
    with the public predictions evaluation uses (no draws)."""

    group_col = "cohort"
    time_unit_ = "W"
    data_columns = ("frequency", "recency", "T")

    def __init__(self, params):
        self.params = params

    def _params(self, data):
        p = pd.DataFrame([self.params[g] for g in data["cohort"]])
        return [p[k].to_numpy() for k in ("r", "alpha", "a", "b")]

    def expected_purchases(self, t, data, *, draws=None):
        values = bgnbd_expected_purchases(
            np.asarray(t), *self._params(data), data["frequency"].to_numpy(float),
            data["recency"].to_numpy(float), data["T"].to_numpy(float),
        )
        return pd.Series(values, index=data.index)

    def expected_purchases_new_customer(self, t, data=None, *, draws=None):
        values = bgnbd_expected_purchases_new_customer(np.asarray(t), *self._params(data))
        return pd.Series(values, index=data.index)

    def probability_of_purchases(self, n, t, data=None, *, draws=None):
        values = bgnbd_probability_of_purchases(n, np.asarray(t), *self._params(data))
        return pd.Series(values, index=data.index)


def test_grouped_tracking_is_the_sum_of_its_groups(cdnow_transactions):
    log = cdnow_transactions.copy()
    first = log.groupby("customer_id")["date"].transform("min")
    log["cohort"] = first.dt.strftime("%Y-%m")
    params = {
        "1997-01": {"r": 0.3, "alpha": 5.0, "a": 0.8, "b": 2.5},
        "1997-02": {"r": 0.2, "alpha": 4.0, "a": 0.7, "b": 2.0},
        "1997-03": {"r": 0.25, "alpha": 3.0, "a": 1.2, "b": 3.0},
    }
    grouped = expected_cumulative_purchases(
        _GroupedBetaGeo(params), log, "customer_id", "date", group_col="cohort"
    )
    # Brute force, customer by customer: E[X(t)] with the customer's group parameters
    # from the acquisition day to the end of each week.
    first_day = log.groupby("customer_id").agg(day=("date", "min"), cohort=("cohort", "first"))
    start = log["date"].min()
    age_days = (first_day["day"] - start).dt.days.to_numpy()
    bounds = 7 * np.arange(1, 79)
    exposure = np.clip(bounds[:, None] - age_days[None, :], 0, None) / 7
    p = pd.DataFrame([params[c] for c in first_day["cohort"]])
    brute = bgnbd_expected_purchases_new_customer(
        exposure, *(p[k].to_numpy()[None, :] for k in ("r", "alpha", "a", "b"))
    ).sum(axis=1)
    np.testing.assert_allclose(grouped["expected"], brute, rtol=1e-10)
    # Different groups really are treated differently.
    pooled = BetaGeo()
    pooled._set_fitted(params["1997-01"], time_unit="W")
    plain = expected_cumulative_purchases(pooled, log, "customer_id", "date")
    assert abs(plain["expected"].iloc[-1] - grouped["expected"].iloc[-1]) > 50


def test_grouped_histogram_is_the_sum_of_its_groups(cdnow_split):
    split = cdnow_split.assign(cohort=np.where(cdnow_split.index % 3 == 0, "x", "y"))
    params = {
        "x": {"r": 0.3, "alpha": 5.0, "a": 0.8, "b": 2.5},
        "y": {"r": 0.2, "alpha": 4.0, "a": 0.7, "b": 2.0},
    }
    grouped = repeat_purchase_histogram(_GroupedBetaGeo(params), split)
    total = 0
    for cohort, p in params.items():
        model = BetaGeo()
        model._set_fitted(p, time_unit="W")
        total = total + repeat_purchase_histogram(model, split[split["cohort"] == cohort])
    np.testing.assert_allclose(grouped["expected"], total["expected"], rtol=1e-10)
    np.testing.assert_array_equal(grouped["actual"], total["actual"])
    with pytest.raises(DataValidationError, match="cohort"):
        repeat_purchase_histogram(_GroupedBetaGeo(params), cdnow_split)


def test_repeat_purchase_histogram(bgnbd, cdnow_split):
    hist = repeat_purchase_histogram(bgnbd, cdnow_split)
    counts = np.bincount(np.minimum(cdnow_split["frequency"], 7))
    np.testing.assert_array_equal(hist["actual"], counts)
    assert hist["actual"].iloc[0] == 1411
    assert hist["expected"].sum() == pytest.approx(2357)
    # The model counts are what the model generates: simulate the same customers.
    T = np.tile(cdnow_split["T"].to_numpy(), 40)
    sim = simulate_bgnbd(T.size, **bgnbd.params_.to_dict(), T=T, random_state=3)
    shares = np.bincount(np.minimum(sim["frequency"], 7), minlength=8) / T.size
    np.testing.assert_allclose(hist["expected"] / 2357, shares, atol=0.005)


# -- compare --------------------------------------------------------------------------
def test_compare_bgnbd_row(comparison, cdnow_split, cdnow_transactions, bgnbd):
    row = comparison.loc["BG/NBD"]
    assert row["customers"] == 2357
    assert row["purchases_actual"] == 1882
    expected = bgnbd.expected_purchases(t=39, data=cdnow_split)
    assert row["purchases_expected"] == pytest.approx(expected.sum())
    diff = expected - cdnow_split["frequency_holdout"]
    assert row["purchases_mae"] == pytest.approx(diff.abs().mean())
    assert row["purchases_rmse"] == pytest.approx(np.sqrt((diff**2).mean()))
    assert row["purchases_error_pct"] == pytest.approx(100 * (expected.sum() / 1882 - 1))
    # Realised holdout value, straight from the log: every CDNOW customer is in the split.
    holdout = cdnow_transactions["date"] > "1997-09-30"
    assert row["value_actual"] == pytest.approx(cdnow_transactions.loc[holdout, "amount"].sum())
    assert row["log_likelihood"] == pytest.approx(-9582.43, abs=0.01)
    assert row["aic"] == pytest.approx(2 * 4 + 2 * 9582.43, abs=0.02)
    assert row["spend_log_likelihood"] == pytest.approx(bgnbd_ll_gg(cdnow_split), rel=1e-9)
    assert np.isnan(row["elpd_loo"]) and np.isnan(row["fit_seconds"])
    assert comparison.attrs["horizon"] == 39 and comparison.attrs["period"] == "W"
    assert comparison.attrs["horizon_length"] == 39.0 and comparison.attrs["time_unit"] == "W"


def bgnbd_ll_gg(split):
    return GammaGamma().fit(split).log_likelihood_


def test_compare_value_metrics_are_sensible(comparison):
    row = comparison.loc["BG/NBD"]
    # 90% predictive intervals should hold about 90% of realised values.
    assert 0.85 <= row["value_interval_coverage"] <= 0.95
    # The ranking is informative: far better than random (0.1 and 0.2).
    assert 0.4 < row["value_top10_share"] < row["value_top20_share"] < 0.9
    assert 0.3 < row["value_spearman"] < 0.6
    assert row["value_expected"] == pytest.approx(
        row["value_actual"] * (1 + row["value_error_pct"] / 100)
    )


def test_compare_fits_unfitted_models_and_times_them(cdnow_split):
    models = {
        "plain": (BetaGeo(), GammaGamma()),
        "penalised": (BetaGeo(penalizer=0.05), GammaGamma(penalizer=0.05)),
    }
    table = compare(models, cdnow_split, n_draws=50, progressbar=False)
    assert table.index.tolist() == ["plain", "penalised"]
    assert all(m.is_fitted for pair in models.values() for m in pair)
    assert (table["fit_seconds"] > 0).all()
    # A strong penalty costs likelihood on the calibration data.
    assert table.loc["penalised", "log_likelihood"] < table.loc["plain", "log_likelihood"]
    assert table.loc["plain", "purchases_actual"] == table.loc["penalised", "purchases_actual"]


def test_compare_passes_fit_kwargs_to_models_that_accept_them(cdnow_split):
    class Recording(BetaGeo):
        def fit(self, data, weights=None, draws=None):
            self.draws_seen = draws
            return super().fit(data, weights=weights)

    recording = Recording()
    compare({"m": (recording, GammaGamma())}, cdnow_split, n_draws=20, progressbar=False,
            fit_kwargs={"m": {"draws": 7}})
    assert recording.draws_seen == 7


def test_compare_reports_each_model_s_fit_statistics(cdnow_split, bgnbd, gamma_gamma):
    import arviz as az

    from clvmodels.models.beta_geo import bgnbd_log_likelihood

    # A stand-in Bayesian model: BG/NBD reporting PSIS-LOO over a posterior (draws from
    # param_draws) instead of its likelihood, as a posterior model does.
    draws = bgnbd.param_draws(400, random_state=1)
    x, t_x, T = (cdnow_split[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    ll = bgnbd_log_likelihood(*(draws[k].to_numpy()[:, None] for k in "r alpha a b".split()),
                              x, t_x, T)
    idata = az.from_dict(
        posterior={k: draws[k].to_numpy().reshape(2, 200) for k in draws},
        log_likelihood={"purchases": ll.reshape(2, 200, -1)},
    )
    reference = az.loo(idata)

    class PosteriorBetaGeo(BetaGeo):
        def fit_statistics(self):
            return {"log_likelihood": np.nan, "aic": np.nan, "bic": np.nan,
                    "elpd_loo": float(reference["elpd_loo"]),
                    "elpd_loo_se": float(reference["se"]), "n_obs": 2357.0}

    model = PosteriorBetaGeo().fit(cdnow_split)
    table = compare({"bayes": (model, gamma_gamma)}, cdnow_split, n_draws=20, progressbar=False)
    row = table.loc["bayes"]
    assert row["elpd_loo"] == pytest.approx(float(reference["elpd_loo"]))
    assert row["elpd_loo_se"] == pytest.approx(float(reference["se"]))
    # ELPD-LOO sits just below the in-sample log-likelihood at the estimate.
    assert -9600 < row["elpd_loo"] < -9582.43
    # The statistics are the model's report, not attributes read off it.
    assert np.isnan(row["log_likelihood"]) and np.isnan(row["aic"])
    assert row["spend_log_likelihood"] == pytest.approx(gamma_gamma.log_likelihood_)


def test_compare_horizon_is_periods_as_in_clv(cdnow_split, bgnbd, gamma_gamma):
    # 39 half-week periods: 19.5 weeks, undiscounted.
    table = compare({"m": (bgnbd, gamma_gamma)}, cdnow_split, horizon=39, period="0.5W",
                    n_draws=20, progressbar=False)
    expected = bgnbd.expected_purchases(t=19.5, data=cdnow_split).sum()
    assert table.loc["m", "purchases_expected"] == pytest.approx(expected)
    spend = gamma_gamma.expected_spend(data=cdnow_split)
    value = (bgnbd.expected_purchases(t=19.5, data=cdnow_split) * spend).sum()
    assert table.loc["m", "value_expected"] == pytest.approx(value, rel=1e-6)
    assert (table.attrs["horizon"], table.attrs["period"]) == (39, "0.5W")
    assert table.attrs["horizon_length"] == 19.5
    # The holdout in 13-week periods, discounted 5% a period: the CLV forecast's numbers.
    quarters = compare({"m": (bgnbd, gamma_gamma)}, cdnow_split, period="13W",
                       discount_rate=0.05, n_draws=20, progressbar=False)
    assert (quarters.attrs["horizon"], quarters.attrs["horizon_length"]) == (3, 39.0)
    clv = customer_lifetime_value(bgnbd, gamma_gamma, cdnow_split, horizon=3, period="13W",
                                  discount_rate=0.05, n_draws=20, random_state=0)
    assert quarters.loc["m", "value_expected"] == pytest.approx(clv.table["clv"].sum())
    # A holdout that is not a whole number of time units is one period by default ...
    short = cdnow_split.assign(duration_holdout=19.25)
    one = compare({"m": (bgnbd, gamma_gamma)}, short, n_draws=20, progressbar=False)
    assert (one.attrs["horizon"], one.attrs["period"]) == (1, "19.25W")
    assert one.loc["m", "purchases_expected"] == pytest.approx(
        bgnbd.expected_purchases(t=19.25, data=cdnow_split).sum()
    )
    # ... and a period that does not divide the holdout needs an explicit horizon.
    with pytest.raises(ValueError, match="whole number"):
        compare({"m": (bgnbd, gamma_gamma)}, cdnow_split, period="M", progressbar=False)
    with pytest.raises(ValueError, match="horizon"):
        compare({"m": (bgnbd, gamma_gamma)}, cdnow_split, horizon=2.5, progressbar=False)


# -- pure metrics ---------------------------------------------------------------------
def test_top_share():
    realised = np.array([10.0, 0.0, 5.0, 5.0])
    assert top_share(np.array([3.0, 2.0, 1.0, 0.0]), realised, 0.25) == 0.5
    assert top_share(np.array([0.0, 1.0, 2.0, 3.0]), realised, 0.5) == 0.5
    assert top_share(np.array([0.0, 3.0, 2.0, 1.0]), realised, 0.5) == 0.25
    assert top_share(np.array([1.0, 0.0, 0.0, 0.0]), realised, 1.0) == 1.0
    assert np.isnan(top_share(np.ones(3), np.zeros(3), 0.5))
    with pytest.raises(ValueError, match="fraction"):
        top_share(np.ones(3), np.ones(3), 0.0)
    with pytest.raises(ValueError, match="one length"):
        top_share(np.ones(3), np.ones(2), 0.5)


def test_interval_coverage():
    assert interval_coverage([1.0, 2.0, 3.0], [1.0, 0.0, 4.0], [1.0, 5.0, 5.0]) == 2 / 3
    assert np.isnan(interval_coverage([], [], []))


# -- bad input ------------------------------------------------------------------------
def test_compare_needs_values_and_holdout(cdnow_transactions, cdnow_split, cdnow_summary):
    no_values = calibration_holdout_split(
        cdnow_transactions, "customer_id", "date", calibration_end="1997-09-30"
    )
    with pytest.raises(DataValidationError, match="monetary_value"):
        compare({"m": (BetaGeo(), GammaGamma())}, no_values, progressbar=False)
    with pytest.raises(DataValidationError, match="frequency_holdout"):
        compare({"m": (BetaGeo(), GammaGamma())}, cdnow_summary, progressbar=False)
    with pytest.raises(ValueError, match="non-empty"):
        compare({}, cdnow_split)
    with pytest.raises(ValueError, match="pair"):
        compare({"m": BetaGeo()}, cdnow_split)
    with pytest.raises(ValueError, match="unknown models"):
        compare({"m": (BetaGeo(), GammaGamma())}, cdnow_split, fit_kwargs={"x": {}})
    bad = cdnow_split.copy()
    bad.loc[bad.index[:3], "frequency_holdout"] = -1
    with pytest.raises(DataValidationError, match=r"frequency_holdout.*3 of 2357.*\[1, 2, 3\]"):
        compare({"m": (BetaGeo(), GammaGamma())}, bad, progressbar=False)


def test_conditional_expectations_bad_input(bgnbd, cdnow_split):
    with pytest.raises(ValueError, match="max_frequency"):
        conditional_expectations_by_frequency(bgnbd, cdnow_split, max_frequency=0)
    mixed = cdnow_split.copy()
    mixed.loc[mixed.index[0], "duration_holdout"] = 10.0
    with pytest.raises(DataValidationError, match="one holdout length"):
        conditional_expectations_by_frequency(bgnbd, mixed)


def test_tracking_bad_input(bgnbd, cdnow_transactions):
    log = cdnow_transactions.copy()
    with pytest.raises(DataValidationError, match="missing column"):
        expected_cumulative_purchases(bgnbd, log, "customer", "date")
    broken = log.astype({"date": object})
    broken.loc[[4, 9], "date"] = "not a date"
    ids = re.escape(str(log.loc[[4, 9], "customer_id"].tolist()))
    with pytest.raises(DataValidationError, match=rf"'date': 2 of 6919 rows.*{ids}"):
        expected_cumulative_purchases(bgnbd, broken, "customer_id", "date")
    with pytest.raises(ValueError, match="time_unit"):
        expected_cumulative_purchases(bgnbd, log, "customer_id", "date", time_unit="D")
    with pytest.raises(ValueError, match="step"):
        expected_cumulative_purchases(bgnbd, log, "customer_id", "date", step=0)
    # Neither the model nor the call says what a step is: no guess (it used to be weeks).
    unitless = BetaGeo()
    unitless._set_fitted(bgnbd.params_.to_dict())
    with pytest.raises(ValueError, match="time_unit="):
        expected_cumulative_purchases(unitless, log, "customer_id", "date")
    days = expected_cumulative_purchases(unitless, log, "customer_id", "date", time_unit="D",
                                         end="1997-01-31")
    assert len(days) == 31 and days.attrs["time_unit"] == "D"
    groups = log.assign(cohort=np.where(log.index % 2 == 0, "a", "b"))
    with pytest.raises(DataValidationError, match="constant"):
        expected_cumulative_purchases(
            _GroupedBetaGeo({}), groups, "customer_id", "date", group_col="cohort"
        )


def test_tracking_reads_polars(bgnbd, cdnow_transactions, tracking):
    import polars as pl
    frame = pl.from_pandas(cdnow_transactions)
    for data in (frame, frame.lazy()):
        got = expected_cumulative_purchases(
            bgnbd, data, "customer_id", "date", calibration_end="1997-09-30"
        )
        pd.testing.assert_frame_equal(got, tracking)


# --------------------------------------------------------------------------------------
# The family: default models, model columns, ranking, paired comparisons, verdict
# --------------------------------------------------------------------------------------
FAMILY = ["BetaGeo + GammaGamma", "BetaGeoCNBD + GammaGamma", "ModifiedBetaGeo + GammaGamma",
          "ModifiedBetaGeoCNBD + GammaGamma", "ParetoNBD + GammaGamma"]
# R BTYD's walkthrough, pnbd.PlotFreqVsConditionalExpectedFrequency (T.star = 39): mean
# conditional expectations and bin sizes by calibration frequency 0..6, 7+; their
# product sums to its expected holdout total (1,665.2 against 1,882 actual: -11.5%).
BTYD_PNBD_HOLDOUT = ([0.138, 0.600, 1.196, 1.714, 2.399, 2.907, 3.819, 6.403],
                     [1411, 439, 214, 100, 62, 38, 29, 64])


@pytest.fixture(scope="module")
def family(cdnow_split, cdnow_transactions):
    models = family_models()
    table = compare(models, cdnow_split, transactions=cdnow_transactions, n_draws=100,
                    progressbar=False)
    return models, table


def test_family_models_are_the_package_mle_transaction_models():
    class OwnBetaGeo(BetaGeo):  # registered, but not one of the package's models
        pass

    models = family_models()
    assert list(models) == FAMILY
    assert [type(tx).__name__ for tx, _ in models.values()] == [n.split(" + ")[0] for n in FAMILY]
    spends = [spend for _, spend in models.values()]
    assert all(isinstance(s, GammaGamma) for s in spends) and len({id(s) for s in spends}) == 5
    assert not any(m.is_fitted for pair in models.values() for m in pair)
    # The spend model by class or object (copied), and an unknown name.
    penalised = family_models(GammaGamma(penalizer=0.1))
    assert {s.penalizer for _, s in penalised.values()} == {0.1}
    assert list(family_models(GammaGamma)) == FAMILY
    with pytest.raises(ValueError, match="unknown spend model 'BetaGeo'"):
        family_models("BetaGeo")
    # Bayesian versions only on request, after the MLE ones, with the Bayesian spend model.
    bayes = family_models(bayesian=True, group_col="cohort")
    assert list(bayes)[:len(FAMILY)] == FAMILY
    tx, spend = bayes["HierarchicalBetaGeo + HierarchicalGammaGamma"]
    assert tx.group_col == "cohort" and spend.group_col == "cohort"


def test_add_model_columns(cdnow_split, cdnow_transactions):
    reads = []

    def log():
        reads.append(1)
        return cdnow_transactions

    assert add_model_columns(cdnow_split, [BetaGeo(), GammaGamma()], log) is cdnow_split
    assert reads == []  # nothing missing: the log is never read
    added = add_model_columns(cdnow_split, {"x": (BetaGeoCNBD(), GammaGamma())}, log)
    assert reads == [1] and "log_interpurchase_sum" not in cdnow_split.columns
    expected = add_log_interpurchase_sum(cdnow_split, cdnow_transactions)
    pd.testing.assert_frame_equal(added, expected)
    assert added.attrs["calibration_end"] == "1997-09-30"
    # A fitted k = 1 model reads the history only.
    fitted = BetaGeoCNBD().fit(added)
    assert fitted.k_ == 1 and add_model_columns(cdnow_split, [fitted], None) is cdnow_split

    class Covariate(BetaGeo):
        data_columns = ("frequency", "recency", "T", "income")

    with pytest.raises(DataValidationError, match=r"\['income'\].*cannot be computed"):
        add_model_columns(cdnow_split, [Covariate()], cdnow_transactions)


def test_family_comparison_matches_the_published_holdout_errors(family, cdnow_split):
    models, table = family
    assert list(table.index) == [*FAMILY, AVERAGE_NAME]
    assert (table["purchases_actual"] == 1882).all()
    table = table.loc[FAMILY]
    # BG/NBD: FHL 2005, 1,653.4 expected against 1,882 actual.
    bg = table.loc["BetaGeo + GammaGamma"]
    assert bg["purchases_expected"] == pytest.approx(1653.41, abs=0.01)
    assert round(bg["purchases_error_pct"], 1) == -12.1
    # Pareto/NBD: BTYD's walkthrough holdout table, to its printed rounding.
    means, sizes = BTYD_PNBD_HOLDOUT
    btyd_total = float(np.dot(means, sizes))
    pnbd = table.loc["ParetoNBD + GammaGamma"]
    assert pnbd["purchases_expected"] == pytest.approx(btyd_total, abs=0.0005 * 2357)
    assert round(pnbd["purchases_error_pct"], 1) == round(100 * (btyd_total / 1882 - 1), 1)
    assert round(pnbd["purchases_error_pct"], 1) == -11.5
    # CDNOW has no regularity: BG/CNBD-k picks k = 1 and forecasts as BG/NBD does; its
    # AIC counts k as a parameter.
    # So does MBG/CNBD-k, as MBG/NBD.
    for cnbd_name, nbd_name in [("BetaGeoCNBD", "BetaGeo"),
                                ("ModifiedBetaGeoCNBD", "ModifiedBetaGeo")]:
        cnbd, nbd = table.loc[f"{cnbd_name} + GammaGamma"], table.loc[f"{nbd_name} + GammaGamma"]
        assert models[f"{cnbd_name} + GammaGamma"][0].k_ == 1
        for col in ("purchases_expected", "value_expected", "purchases_mae", "value_mae"):
            assert cnbd[col] == pytest.approx(nbd[col], rel=1e-7)
        assert cnbd["aic"] == pytest.approx(nbd["aic"] + 2, abs=1e-3)
    # Log-likelihoods: FHL 2005, Batislam et al.'s MBG/NBD on CDNOW, BTYD's Pareto/NBD.
    np.testing.assert_allclose(
        table["log_likelihood"], [-9582.43, -9582.43, -9582.14, -9582.14, -9594.98], atol=0.01
    )
    np.testing.assert_allclose(table["aic"], 2 * np.array([4, 5, 4, 5, 4]) - 2 * table[
        "log_likelihood"], rtol=1e-12)


def test_family_comparison_pairs_customers_against_the_best(family, cdnow_split):
    models, with_average = family
    table = with_average.loc[FAMILY]
    table.attrs = with_average.attrs
    actual = cdnow_split["frequency_holdout"].to_numpy(float)
    realised = actual * cdnow_split["monetary_value_holdout"].to_numpy(float)
    purchases, value = {}, {}
    for name, (tx, spend) in models.items():
        purchases[name] = tx.expected_purchases(t=39, data=cdnow_split).to_numpy()
        value[name] = purchases[name] * spend.expected_spend(data=cdnow_split).to_numpy()
    # Squared errors rank the models: MBG/NBD forecasts value best, Pareto/NBD purchases.
    mse = {n: np.mean((value[n] - realised) ** 2) for n in models}
    assert table.attrs["best"] == min(mse, key=mse.get) == "ModifiedBetaGeo + GammaGamma"
    assert table.attrs["best_purchases"] == "ParetoNBD + GammaGamma"
    # Ranks follow the errors, ties sharing the better rank. The members' order is
    # that of their closed-form forecasts (the (M)BG/CNBD-k at k = 1 forecasts as the
    # (M)BG/NBD: equal ranks); the model average, whose weights come from simulated
    # predictive densities, lies between its best and worst member: where exactly
    # among them moves with the random stream (its value error is within 0.2% of the
    # Pareto/NBD's).
    for target in ("value", "purchases"):
        errors, ranks = with_average[f"{target}_rmse"], with_average[f"{target}_rank"]
        assert ranks.tolist() == errors.rank(method="min").astype(int).tolist()
        members = errors.loc[FAMILY]
        assert members.min() < errors["model average"] < members.max()
    assert table["value_rmse"].rank(method="min").tolist() == [4, 4, 1, 1, 3]
    assert table["purchases_rmse"].rank(method="min").tolist() == [4, 4, 2, 2, 1]
    np.testing.assert_allclose(table["value_rmse"], np.sqrt(list(mse.values())), rtol=1e-6)
    # The paired difference and its 95% interval, computed directly.
    best = value["ModifiedBetaGeo + GammaGamma"]
    d = (value["ParetoNBD + GammaGamma"] - realised) ** 2 - (best - realised) ** 2
    half = 1.959963984540054 * d.std(ddof=1) / np.sqrt(d.size)
    row = table.loc["ParetoNBD + GammaGamma"]
    assert row["value_loss_diff"] == pytest.approx(d.mean(), rel=1e-6)
    assert row["value_loss_diff_lower"] == pytest.approx(d.mean() - half, rel=1e-6)
    assert row["value_loss_diff_upper"] == pytest.approx(d.mean() + half, rel=1e-6)
    assert (row["value_loss_diff"], round(half)) == (pytest.approx(34.05, abs=0.01), 119)
    best_row = table.loc["ModifiedBetaGeo + GammaGamma"]
    assert best_row[["value_loss_diff", "value_loss_diff_lower"]].tolist() == [0.0, 0.0]
    # On CDNOW no model forecasts worse than the best by more than its noise; the
    # MBG/CNBD-k (k = 1) forecasts exactly as the best, the MBG/NBD.
    twin = table.loc["ModifiedBetaGeoCNBD + GammaGamma"]
    assert twin[["value_loss_diff", "value_loss_diff_lower", "value_loss_diff_upper"]].tolist() \
        == [0.0, 0.0, 0.0]
    others = table.drop(index=[table.attrs["best"], twin.name])
    assert (others["value_loss_diff_lower"] < 0).all()
    assert (others["value_loss_diff_upper"] > 0).all()
    assert table.attrs["loss"] == "squared" and table.attrs["paired_interval"] == 0.95
    # Purchases: rank correlation and simulated predictive intervals.
    from scipy import stats

    rho = stats.spearmanr(purchases["ParetoNBD + GammaGamma"], actual).statistic
    assert table.loc["ParetoNBD + GammaGamma", "purchases_spearman"] == pytest.approx(rho)
    assert table["purchases_interval_coverage"].between(0.87, 0.96).all()


def test_family_verdict_in_words(family):
    _, table = family
    pairs = (
        "ModifiedBetaGeo + GammaGamma forecasts holdout value best (as does "
        "ModifiedBetaGeoCNBD + GammaGamma, with the same forecasts): root mean squared error "
        "71.95 per customer (mean absolute error 29.71, total -19.5% off) against 72.18 "
        "(29.45, -14.8%) for the runner-up ParetoNBD + GammaGamma; the paired difference in "
        "squared error, 34 per customer (95% interval -84 to 153), is within its noise, so "
        "the two cannot be told apart on this holdout."
    )
    # Then the model average, against the best pair (its numbers: test_model_average_*).
    assert table.attrs["verdict"].startswith(pairs + " The model average forecasts holdout "
                                             "value with a root mean squared error of ")
    assert table.attrs["verdict"].endswith("is within its noise.")
    text = summary_text(table)
    assert text.startswith(table.attrs["verdict"] + " ParetoNBD + GammaGamma forecasts "
                           "holdout purchases best: root mean squared error 1.603")
    assert text.endswith("None of the other 4 models forecasts value worse than "
                         "ModifiedBetaGeo + GammaGamma by more than its noise.")
    with pytest.raises(ValueError, match="output of compare"):
        summary_text(table[["customers"]])


def test_compare_by_absolute_error_and_a_lone_model(cdnow_split, bgnbd, gamma_gamma):
    pairs = {"BG": (bgnbd, gamma_gamma), "MBG": (ModifiedBetaGeo().fit(cdnow_split),
                                                 gamma_gamma)}
    absolute = compare(pairs, cdnow_split, loss="absolute", n_draws=20, progressbar=False)
    # Absolute errors favour the lower forecast (most customers buy nothing).
    assert absolute.attrs["best"] == "MBG" and absolute.attrs["loss"] == "absolute"
    diff = absolute.loc["BG", "value_mae"] - absolute.loc["MBG", "value_mae"]
    assert absolute.loc["BG", "value_loss_diff"] == pytest.approx(diff)
    assert absolute.loc["BG", "value_loss_diff_lower"] > 0  # beyond the noise
    assert absolute.attrs["verdict"] == (
        "MBG forecasts holdout value best: mean absolute error 29.71 per customer (root mean "
        "squared error 71.95, total -19.5% off) against 30.41 (72.30, -15.6%) for the "
        "runner-up BG; the paired difference in absolute error, 0.698 per customer (95% "
        "interval 0.569 to 0.826), is larger than its noise."
    )
    with pytest.raises(ValueError, match="loss must be one of"):
        compare(pairs, cdnow_split, loss="huber", progressbar=False)
    alone = compare({"BG": (bgnbd, gamma_gamma)}, cdnow_split, n_draws=20, progressbar=False)
    assert alone.attrs["best"] == "BG" and alone["value_rank"].tolist() == [1]
    assert alone.attrs["verdict"].startswith("BG is the only model compared: its holdout "
                                             "value forecast has a root mean squared error")
    assert summary_text(alone).count("is the only model compared") == 2


def test_compare_default_family_without_the_log(cdnow_split, bgnbd, gamma_gamma):
    # compare(split): the family; BG/CNBD-k needs the log for its regularity column.
    with pytest.warns(UserWarning, match=r"\['BetaGeoCNBD \+ GammaGamma', "
                                         r"'ModifiedBetaGeoCNBD \+ GammaGamma'\] left out.*"
                                         "log_interpurchase_sum.*transactions="):
        table = compare(cdnow_split, n_draws=20, progressbar=False)
    assert list(table.index) == [n for n in FAMILY if "CNBD" not in n]
    assert table.attrs["left_out"] == ["BetaGeoCNBD + GammaGamma",
                                       "ModifiedBetaGeoCNBD + GammaGamma"]
    # Named, it is an error that says what to do.
    with pytest.raises(DataValidationError, match=r"reads column.*log_interpurchase_sum.*"
                                                  r"transactions="):
        compare({"CNBD": (BetaGeoCNBD(), gamma_gamma)}, cdnow_split, progressbar=False)
    with pytest.raises(TypeError, match="calibration_holdout"):
        compare({"BG": (bgnbd, gamma_gamma)})
    with pytest.raises(ValueError, match="mapping"):
        compare([(bgnbd, gamma_gamma)], cdnow_split)


def test_family_checks_in_one_table(family, cdnow_split, cdnow_transactions):
    models, _ = family
    pairs = {"BG": models["BetaGeo + GammaGamma"], "Pareto": models["ParetoNBD + GammaGamma"]}
    cond = conditional_expectations_by_frequency(pairs, cdnow_split)
    assert list(cond.columns) == ["customers", "actual", "BG", "Pareto"]
    assert cond.attrs["models"] == ["BG", "Pareto"]
    np.testing.assert_allclose(cond["BG"], PUBLISHED_CONDITIONAL, atol=0.002)
    np.testing.assert_allclose(cond["Pareto"], BTYD_PNBD_HOLDOUT[0], atol=0.002)
    single = conditional_expectations_by_frequency(pairs["Pareto"][0], cdnow_split)
    np.testing.assert_array_equal(cond["Pareto"], single["expected"])
    hist = repeat_purchase_histogram(pairs, cdnow_split)
    assert list(hist.columns) == ["actual", "BG", "Pareto"]
    np.testing.assert_allclose(hist[["BG", "Pareto"]].sum(), 2357)
    track = expected_cumulative_purchases(pairs, cdnow_transactions, "customer_id", "date",
                                          calibration_end="1997-09-30")
    assert list(track.columns) == ["t", "date", "actual", "BG", "Pareto"]
    for week, value in PUBLISHED_TRACKING.items():
        assert track.loc[week, "BG"] == pytest.approx(value, abs=0.051)
    # BTYD's pnbd.ExpectedCumulativeTransactions, weeks 20 and 25.
    assert track.loc[[20, 25], "Pareto"].round(1).tolist() == [1308.9, 1674.3]
    assert track.attrs["models"] == ["BG", "Pareto"] and track.attrs["calibration_end_t"] == 39
    assert track.loc[78, "actual"] == 4339
    with pytest.raises(ValueError, match="column names of the table"):
        conditional_expectations_by_frequency({"actual": pairs["BG"]}, cdnow_split)
    with pytest.raises(ValueError, match="empty"):
        repeat_purchase_histogram({}, cdnow_split)
    daily = BetaGeo()
    daily._set_fitted(pairs["BG"][0].params_.to_dict(), time_unit="D")
    with pytest.raises(ValueError, match="different time units"):
        expected_cumulative_purchases({"W": pairs["BG"], "D": daily}, cdnow_transactions,
                                      "customer_id", "date")


# --------------------------------------------------------------------------------------
# The model average's row
# --------------------------------------------------------------------------------------
def test_model_average_row_is_the_mixture_of_the_family(family, cdnow_split, cdnow_transactions):
    models, table = family
    weights = pd.Series(table.attrs["averaging_weights"])
    assert list(weights.index) == FAMILY and (weights >= 0).all()
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    # The weights are backtest_weights' (a cut inside the calibration window), computed
    # here again from the same seed: the holdout took no part.
    split = add_model_columns(cdnow_split, models, cdnow_transactions)
    # compare simulates at least 1,000 futures for the weights, whatever its n_draws.
    again = backtest_weights(models, cdnow_transactions, split, n_draws=1000, random_state=0)
    np.testing.assert_allclose(again.reindex(FAMILY), weights, rtol=1e-9, atol=1e-12)
    assert table.attrs["averaging"]["method"] == "backtest"
    assert table.attrs["averaging"]["cut"] == "1997-07-01"
    assert "the holdout played no part" in table.attrs["averaging"]["text"]
    # The row's metrics are those of average_forecasts' mixture with these weights.
    forecasts = {
        name: customer_lifetime_value(tx, spend, split, horizon=39, period="W",
                                      discount_rate=0, interval=0.9, n_draws=100,
                                      predictive=True, random_state=0)
        for name, (tx, spend) in models.items()
    }
    mix = average_forecasts(forecasts, weights)
    actual = cdnow_split["frequency_holdout"].to_numpy(float)
    realised = actual * cdnow_split["monetary_value_holdout"].to_numpy(float)
    value = mix.table["clv"].reindex(cdnow_split.index).to_numpy()
    purchases = sum(w * models[n][0].expected_purchases(t=39, data=split).to_numpy()
                    for n, w in weights.items())
    row = table.loc[AVERAGE_NAME]
    # Sums and means of the same numbers in another order: 1e-9 relative.
    assert row["value_expected"] == pytest.approx(value.sum(), rel=1e-9)
    assert row["purchases_expected"] == pytest.approx(purchases.sum(), rel=1e-9)
    assert row["value_rmse"] == pytest.approx(np.sqrt(np.mean((value - realised) ** 2)), rel=1e-9)
    assert row["value_mae"] == pytest.approx(np.mean(np.abs(value - realised)), rel=1e-9)
    assert row["value_top10_share"] == pytest.approx(top_share(value, realised, 0.1), rel=1e-9)
    bounds = mix.table.reindex(cdnow_split.index)
    assert row["value_interval_coverage"] == pytest.approx(interval_coverage(
        realised, bounds["clv_pred_lower"].to_numpy(), bounds["clv_pred_upper"].to_numpy()))
    total = mix.total()
    assert row[["value_total_lower", "value_total_upper"]].tolist() == pytest.approx(
        [total["clv_pred_lower"], total["clv_pred_upper"]], rel=1e-9)
    calibration = forecast_calibration(mix, pd.Series(realised, index=cdnow_split.index),
                                       random_state=0)
    gap = calibration.tiers
    expected_gap = np.abs(gap["probability"] - gap["share"]) @ gap["customers"]
    assert row["tier_probability_gap"] == pytest.approx(
        expected_gap / gap["customers"].sum(), rel=1e-9)
    # A weighted mean lies between its members; the paired difference is from the best.
    members = table.loc[FAMILY]
    assert members["value_expected"].min() < row["value_expected"] < members[
        "value_expected"].max()
    best = table.loc[table.attrs["best"]]
    assert row["value_loss_diff"] == pytest.approx(row["value_rmse"] ** 2 - best["value_rmse"]
                                                   ** 2, rel=1e-6)
    assert np.isnan(row[["log_likelihood", "aic", "spend_log_likelihood"]]).all()
    assert row["fit_seconds"] > 0  # the time its weights took
    assert AVERAGE_NAME in table.attrs["calibration"]


def test_model_average_with_given_weights_and_switched_off(cdnow_split, bgnbd, gamma_gamma):
    pairs = {"BG": (bgnbd, gamma_gamma),
             "MBG": (ModifiedBetaGeo().fit(cdnow_split), gamma_gamma)}
    # All the weight on one model: the average forecasts as that model does (its draws
    # are the first n of the model's, the same seed).
    table = compare(pairs, cdnow_split, n_draws=40, average_weights={"BG": 1.0},
                    progressbar=False)
    assert table.attrs["averaging_weights"] == {"BG": 1.0, "MBG": 0.0}
    assert table.attrs["averaging"]["method"] == "given"
    same = ["value_expected", "value_rmse", "purchases_expected",
            "purchases_interval_coverage", "value_total_lower", "value_total_upper"]
    np.testing.assert_allclose(table.loc[AVERAGE_NAME, same].to_numpy(float),
                               table.loc["BG", same].to_numpy(float), rtol=1e-9)
    assert np.isnan(table.loc[AVERAGE_NAME, "fit_seconds"])
    # Without the log the backtest cannot run: no average by default, an error when asked.
    plain = compare(pairs, cdnow_split, n_draws=20, progressbar=False)
    assert list(plain.index) == ["BG", "MBG"] and plain.attrs["averaging_weights"] == {}
    assert "needs transactions=" in plain.attrs["averaging"]["text"]
    with pytest.raises(ValueError, match=r"no model average.*transactions="):
        compare(pairs, cdnow_split, average=True, progressbar=False)
    off = compare(pairs, cdnow_split, n_draws=20, average=False, average_weights={"BG": 1},
                  progressbar=False)
    assert AVERAGE_NAME not in off.index
    assert off.attrs["averaging"] == {"method": None, "text": "No model average: average=False."}
    for kwargs, match in [
        ({"average": "yes"}, "average must be True, False or None"),
        ({"average_weights": "best"}, "average_weights must be one of"),
        ({"average_weights": {"Pareto": 1.0}}, r"unknown models \['Pareto'\]"),
        ({"average_weights": "loo"}, "Bayesian models only; \\['BG', 'MBG'\\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            compare(pairs, cdnow_split, progressbar=False, **kwargs)
    with pytest.raises(ValueError, match="two or more pairs"):
        compare({"BG": pairs["BG"]}, cdnow_split, average=True, progressbar=False)
    with pytest.raises(ValueError, match="may not be named 'model average'"):
        compare({AVERAGE_NAME: pairs["BG"], "MBG": pairs["MBG"]}, cdnow_split,
                progressbar=False)
    with pytest.raises(ValueError, match="non-negative"):
        compare(pairs, cdnow_split, n_draws=20, average_weights={"BG": -1.0, "MBG": 2.0},
                progressbar=False)


class PosteriorBetaGeo(BetaGeo):
    """A Bayesian stand-in: the MLE with a posterior drawn from its sampling distribution
    and the per-customer log-likelihood stored, as a PyMC fit would give."""

    is_bayesian = True

    def fit(self, data, weights=None, random_seed=None):
        import arviz as az

        from clvmodels.models.beta_geo import bgnbd_log_likelihood

        super().fit(data, weights=weights)
        sample = self.param_draws(200, random_state=random_seed)
        x, t_x, T = (data[c].to_numpy(float) for c in ("frequency", "recency", "T"))
        ll = bgnbd_log_likelihood(
            *(sample[k].to_numpy()[:, None] for k in self.param_names), x, t_x, T
        )
        self.idata_ = az.from_dict(
            posterior={k: sample[k].to_numpy().reshape(2, 100) for k in sample},
            log_likelihood={"purchases": ll.reshape(2, 100, -1)},
        )
        return self


def test_model_average_of_bayesian_models_is_weighted_by_loo(cdnow_split, gamma_gamma):
    from clvmodels.averaging import loo_weights

    pairs = {"one": (PosteriorBetaGeo(), gamma_gamma), "two": (PosteriorBetaGeo(), gamma_gamma)}
    fit_kwargs = {"one": {"random_seed": 1}, "two": {"random_seed": 2}}
    # Every model Bayesian: PSIS-LOO stacking on the calibration data, no log needed.
    table = compare(pairs, cdnow_split, n_draws=20, fit_kwargs=fit_kwargs, progressbar=False)
    assert table.attrs["averaging"]["method"] == "loo"
    assert "PSIS-LOO stacking" in table.attrs["averaging"]["text"]
    weights = pd.Series(table.attrs["averaging_weights"])
    direct = loo_weights({name: pair[0] for name, pair in pairs.items()})
    np.testing.assert_allclose(weights, direct / direct.sum(), rtol=1e-9)
    assert AVERAGE_NAME in table.index and weights.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.fixture(scope="module")
def simulated_comparison():
    # Two segments of 1,500 customers, acquired over 12 weeks, from one BG/NBD with a
    # purchase covariate: the CDNOW estimates of FHL 2005 with alpha 10 times larger in
    # one segment and 10 times smaller in the other (exp(gamma) = 100), and Gamma-Gamma
    # spend (Fader & Hardie 2013's CDNOW estimates); 52 weeks of calibration, 26 of
    # holdout. The rival is the BG/NBD without the covariate.
    base = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    spend = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    logs = []
    for k, scale in enumerate((10.0, 0.1)):
        log = simulate_transactions(1500, {**base, "alpha": base["alpha"] * scale}, spend,
                                    weeks=78, acquisition_weeks=12, random_state=10 + k)
        log["customer_id"] += 1500 * k
        logs.append(log)
    log = pd.concat(logs, ignore_index=True)
    split = calibration_holdout_split(log, "customer_id", "date", "amount",
                                      calibration_end="2020-12-31",
                                      observation_end=logs[0].attrs["observation_end"])
    split["segment"] = (split.index >= 1500).astype(float)
    pairs = {"covariate": (BetaGeo(purchase_covariates=["segment"]), GammaGamma()),
             "plain": (BetaGeo(), GammaGamma())}
    return compare(pairs, split, transactions=log, n_draws=200, progressbar=False)


def test_model_average_recovers_the_simulating_model(simulated_comparison):
    weights = simulated_comparison.attrs["averaging_weights"]
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-12)
    # The model the data came from gets most of the weight: 0.94 here, 0.62 to 0.94 over
    # the seeds 1-5 of this design (the plain BG/NBD adapts to each customer's history,
    # so its forecasts of a 17-week block are not far off).
    assert weights["covariate"] > 0.6
    # The segment column, which no log holds, was carried to the backtest's refits.
    assert simulated_comparison.attrs["averaging"]["left_out"] == {}


def test_model_average_intervals_cover_as_stated(simulated_comparison):
    # The mixture's randomised PIT of realised value: at the 50% and 90% levels the share
    # of 3,000 customers inside is within three binomial standard errors of the level.
    coverage = simulated_comparison.attrs["calibration"][AVERAGE_NAME].coverage
    coverage = coverage.set_index("level")
    for level in (0.5, 0.9):
        se = np.sqrt(level * (1 - level) / 3000)
        assert abs(coverage.loc[level, "coverage"] - level) < 3 * se
    # The realised total lies in the mixture's 90% interval of the total.
    assert simulated_comparison.loc[AVERAGE_NAME, "value_total_inside"] == 1


def test_paired_difference():
    mean, lower, upper = paired_difference(np.array([3.0, 1.0, 4.0]), np.array([1.0, 1.0, 2.0]))
    d = np.array([2.0, 0.0, 2.0])
    half = 1.959963984540054 * d.std(ddof=1) / np.sqrt(3)
    assert (mean, lower, upper) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    assert paired_difference(np.ones(4), np.ones(4)) == (0.0, 0.0, 0.0)
    assert np.isnan(paired_difference(np.ones(1), np.zeros(1))[1])
    assert paired_difference(np.ones(3), np.zeros(3), level=0.5)[0] == 1.0
    with pytest.raises(ValueError, match="one length"):
        paired_difference(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="interval"):
        paired_difference(np.ones(3), np.ones(3), level=1.0)
