"""Holdout validation and model comparison: published CDNOW figures, lifetimes, bad input."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from clvmodels import BetaGeo, GammaGamma, customer_lifetime_value
from clvmodels.data import DataValidationError, calibration_holdout_split
from clvmodels.evaluation import (
    compare,
    conditional_expectations_by_frequency,
    expected_cumulative_purchases,
    interval_coverage,
    repeat_purchase_histogram,
    top_share,
)
from clvmodels.models.beta_geo import (
    bgnbd_expected_purchases,
    bgnbd_expected_purchases_new_customer,
    bgnbd_probability_of_purchases,
)
from clvmodels.simulate import simulate_bgnbd

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
