"""Calibration metrics: uniform PIT and nominal coverage under a calibrated forecast,
the tiers of segment() reproduced, and compare()'s calibration of CDNOW (issue 13)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from simulated_bases import CDNOW_BG, CDNOW_GG

from clvmodels import BetaGeo, GammaGamma, compare, customer_lifetime_value, segment
from clvmodels.calibration import (
    coverage_by_level,
    logistic_recalibration,
    pit_histogram,
    randomized_pit,
    rank_share_tiers,
    recalibrated,
    tier_calibration,
    tier_reach_shares,
    total_coverage,
)
from clvmodels.segmentation import DEFAULT_TIERS

N_CUSTOMERS, N_DRAWS = 20_000, 400


def _counts(rate_scale: float, seed: int):
    """Poisson counts with gamma rates (many zeros, as holdout purchases): predictive
    draws of each customer and a realised count with rates ``rate_scale`` wider."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.5, 1.0, N_CUSTOMERS)
    draws = rng.poisson(rate, (N_DRAWS, N_CUSTOMERS)).astype(float)
    realised = rng.poisson(rate * rng.gamma(1 / rate_scale, rate_scale, N_CUSTOMERS))
    return draws, realised.astype(float)


def test_pit_is_uniform_and_coverage_nominal_when_calibrated():
    draws, realised = _counts(1e-6, seed=0)  # realised from the predictive distribution
    pit = randomized_pit(draws, realised, random_state=1)
    hist = pit_histogram(pit)
    # 20,000 customers: a bin's share has se 0.0021; 400 draws add a little
    # discreteness to F (tie randomisation absorbs most of it): 4 se leaves room.
    assert np.all(np.abs(hist["share"] - 0.1) < 4 * hist["se"])
    cov = coverage_by_level(pit)
    assert np.all(np.abs(cov["coverage"] - cov["level"]) < 4 * cov["se"])


def test_pit_shows_intervals_too_narrow():
    # Realised counts overdispersed against the forecast (gamma shock of sd 1 on each
    # rate): the PIT piles up at both ends, coverage falls short at every level.
    draws, realised = _counts(1.0, seed=2)
    pit = randomized_pit(draws, realised, random_state=3)
    hist = pit_histogram(pit)
    assert hist["share"].iloc[[0, -1]].min() > 0.1 + 4 * hist["se"].iloc[0]
    cov = coverage_by_level(pit, [0.5, 0.9])
    assert np.all(cov["coverage"] < cov["level"] - 4 * cov["se"])


def test_tier_calibration_of_calibrated_probabilities():
    rng = np.random.default_rng(4)
    p = rng.beta(0.3, 0.3, 50_000)
    table = tier_calibration(p, rng.random(p.size) < p)
    assert table["customers"].sum() == p.size
    assert np.all(np.abs(table["share"] - table["probability"]) < 4 * table["se"])
    # Overconfident probabilities (all pushed to the ends) are far off in the end bins.
    sure = tier_calibration(np.where(p > 0.5, 0.99, 0.01), rng.random(p.size) < p)
    assert sure["share"].iloc[-1] < 0.9 and sure["share"].iloc[0] > 0.05


@pytest.mark.parametrize(("intercept", "slope"), [(0.0, 1.0), (-0.4, 0.7), (0.3, 1.4)])
def test_logistic_recalibration_recovers_the_map_that_made_the_events(intercept, slope):
    # 50,000 probabilities, a third of them exactly 0 or 1 as shares of a few hundred
    # draws often are; events drawn with recalibrated(p, intercept, slope). The
    # estimates' se is about 0.02-0.03 here.
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.beta(0.6, 0.6, 33_000), np.zeros(12_000), np.ones(5_000)])
    reached = rng.random(p.size) < recalibrated(p, intercept, slope)
    a, b = logistic_recalibration(p, reached)
    assert abs(a - intercept) < 0.1 and abs(b - slope) < 0.1, (a, b)
    # the recalibrated probabilities are calibrated where the raw ones were not
    after = tier_calibration(recalibrated(p, a, b), reached)
    gaps = np.abs(after["share"] - after["probability"]) / np.maximum(after["se"], 1e-3)
    assert gaps.max() < 4, after


def test_recalibration_keeps_the_order_and_refuses_one_sided_outcomes():
    p = np.linspace(0.0, 1.0, 101)
    assert np.all(np.diff(recalibrated(p, -0.5, 0.8)) > 0)
    np.testing.assert_allclose(recalibrated(p[1:-1], 0.0, 1.0), p[1:-1], rtol=1e-12)
    with pytest.raises(ValueError, match="both kinds"):
        logistic_recalibration(p, np.zeros(p.size, dtype=bool))
    with pytest.raises(ValueError, match="differ in shape"):
        logistic_recalibration(p, np.zeros(3, dtype=bool))


def test_tier_reach_shares_split_ties_and_agree_with_rank_share_tiers_elsewhere():
    rng = np.random.default_rng(3)
    distinct = rng.permutation(np.arange(1000.0))
    shares = [0.1, 0.2, 0.3, 0.4]
    one_hot = tier_reach_shares(distinct, shares)
    np.testing.assert_array_equal(one_hot.argmax(axis=1), rank_share_tiers(distinct, shares))
    assert set(np.unique(one_hot)) == {0.0, 1.0}
    # 850 zeros hold ranks 150-999: none of the top 10% (ranks 0-99), 150 of the next
    # 20%'s (100-299), all 300 of the middle tier's and all 400 of the bottom's.
    values = np.r_[rng.uniform(1, 2, 150), np.zeros(850)]
    reach = tier_reach_shares(values, shares)
    np.testing.assert_allclose(reach[150:], [[0, 150 / 850, 300 / 850, 400 / 850]] * 850)
    np.testing.assert_allclose(reach.sum(axis=1), 1.0)
    np.testing.assert_allclose(reach.sum(axis=0), [100, 200, 300, 400])


def test_assigned_tier_probabilities_are_calibrated_on_data_from_the_model():
    # Cohorts simulated from BG/NBD + Gamma-Gamma, 13-week holdouts: about 85% of the
    # customers realise exactly 0. Their chance of having reached their assigned tier is
    # shared among the zeros' ranks, as segment() shares it; counting them all in the
    # highest tier they reach put the realised share near 0.03 where 0.44 was given.
    from clvmodels import calibration_holdout_split
    from clvmodels.evaluation import forecast_calibration
    from clvmodels.simulate import simulate_transactions

    tables = []
    for seed in range(4):
        log = simulate_transactions(5000, CDNOW_BG, CDNOW_GG, start="1997-01-01",
                                    random_state=seed)
        split = calibration_holdout_split(log, "customer_id", "date", "amount",
                                          calibration_end="1997-09-30",
                                          observation_end="1997-12-30")  # fmt: skip
        fc = customer_lifetime_value(BetaGeo().fit(split), GammaGamma().fit(split), split,
                                     horizon=13, period="W", discount_rate=0, n_draws=300,
                                     predictive=True, random_state=seed,
                                     progressbar=False)  # fmt: skip
        realised = split["frequency_holdout"] * split["monetary_value_holdout"]
        tables.append(forecast_calibration(fc, realised, tier_event="assigned",
                                           tier_probability_col="tier_probability_realised",
                                           random_state=seed).tiers)  # fmt: skip
    pooled = pd.concat(tables).assign(hits=lambda t: t["share"] * t["customers"],
                                      given=lambda t: t["probability"] * t["customers"])
    bins = pooled.groupby(["lower", "upper"])[["customers", "hits", "given"]].sum()
    big = bins[bins["customers"] >= 1000]
    assert len(big) >= 3
    gaps = (big["hits"] - big["given"]) / big["customers"]
    assert (gaps.abs() < 0.03).all(), bins


def test_rank_share_tiers_match_segment(cdnow_split):
    fc = customer_lifetime_value(BetaGeo().fit(cdnow_split), GammaGamma().fit(cdnow_split),
                                 cdnow_split, n_draws=20, random_state=0)  # fmt: skip
    seg = segment(fc, progressbar=False)
    names = [name for name, _ in DEFAULT_TIERS]
    codes = seg.customers["tier"].astype(str).map(names.index).to_numpy()
    ours = rank_share_tiers(fc.table["clv"].to_numpy(), [s for _, s in DEFAULT_TIERS])
    assert np.array_equal(ours, codes)


def test_total_coverage_signs_and_widths():
    assert total_coverage(5.0, 0.0, 10.0) == {"inside": True, "widths_outside": 0.0}
    assert total_coverage(-5.0, 0.0, 10.0)["widths_outside"] == -0.5
    assert total_coverage(25.0, 0.0, 10.0)["widths_outside"] == 1.5
    assert total_coverage(1.0, 1.0, 1.0)["inside"]
    with pytest.raises(ValueError, match="below lower"):
        total_coverage(1.0, 2.0, 1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="n_draws, n"):
        randomized_pit(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="levels"):
        coverage_by_level(np.zeros(3), [0.0, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tier_calibration(np.array([1.5]), np.array([True]))
    with pytest.raises(ValueError, match="shape"):
        tier_calibration(np.array([0.5, 0.5]), np.array([True]))
    with pytest.raises(ValueError, match="shares"):
        rank_share_tiers(np.zeros(3), [0.5, 0.0])


# --------------------------------------------------------------------------------------
# compare() on CDNOW
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def comparison(cdnow_split):
    return compare({"BG/NBD": (BetaGeo(), GammaGamma())}, cdnow_split, n_draws=500,
                   progressbar=False)  # fmt: skip


def test_compare_reports_the_cdnow_total_outside_its_interval(comparison):
    # Issue 13: realised 70,976 against a 90% predictive interval near [53,400, 66,700],
    # about 0.3 widths above. The bounds move with the Monte Carlo quantiles of 500
    # draws (about 1% each), hence the band.
    row = comparison.loc["BG/NBD"]
    assert row["value_total_inside"] == 0.0
    assert 0.12 < row["value_total_widths_outside"] < 0.5
    assert 50_000 < row["value_total_lower"] < 56_000 < 64_000 < row["value_total_upper"] < 70_000
    cal = comparison.attrs["calibration"]["BG/NBD"]
    assert cal.total["realised"] == pytest.approx(row["value_actual"])


def test_compare_customer_calibration_agrees_with_interval_coverage(comparison):
    row = comparison.loc["BG/NBD"]
    cal = comparison.attrs["calibration"]["BG/NBD"]
    assert cal.pit["customers"].sum() == 2357
    assert cal.pit["share"].sum() == pytest.approx(1.0)
    at_90 = cal.coverage.set_index("level").loc[0.9, "coverage"]
    # Randomised PIT and the closed interval differ only for customers whose realised
    # value sits on an interval bound (zero spend on a lower bound of 0): a few percent.
    assert abs(at_90 - row["value_interval_coverage"]) < 0.03
    assert 0.85 < at_90 < 0.93


def test_compare_shows_top_tier_probabilities_overconfident(cdnow_split, comparison):
    # Issue 13: parameter draws barely move ranks, so the customers placed in the top
    # tier get probabilities near 1, yet only about half reach the top 10% by realised
    # holdout value.
    parameter = compare({"BG/NBD": (BetaGeo(), GammaGamma())}, cdnow_split, n_draws=500,
                        tier_probability_col="top_tier_probability", progressbar=False)
    tiers = parameter.attrs["calibration"]["BG/NBD"].tiers
    top = tiers.iloc[-1]
    assert top["probability"] > 0.9 and top["customers"] > 150
    assert 0.35 < top["share"] < 0.7
    assert parameter.loc["BG/NBD", "tier_probability_gap"] > 0.05
    assert tiers.attrs == {"column": "top_tier_probability", "event": "top"}
    # The default, the probability of reaching the top tier by realised value, holds:
    # in every bin the share that got there is within 3 binomial se (+0.03 for the
    # Monte Carlo error of 500 draws) of the probability given (measured: gap 0.012).
    realised = comparison.attrs["calibration"]["BG/NBD"].tiers
    assert realised.attrs == {"column": "top_tier_probability_realised", "event": "top"}
    filled = realised[realised["customers"] > 0]
    assert (abs(filled["share"] - filled["probability"]) <= 3 * filled["se"] + 0.03).all()
    assert comparison.loc["BG/NBD", "tier_probability_gap"] < 0.03


def test_compare_tier_column_and_event_are_checked(cdnow_split):
    models = {"m": (BetaGeo(), GammaGamma())}
    with pytest.raises(ValueError, match="tier_event"):
        compare(models, cdnow_split, tier_event="bottom", progressbar=False)
    with pytest.raises(ValueError, match="no column 'nope'"):
        compare(models, cdnow_split, n_draws=20, tier_probability_col="nope", progressbar=False)
    assigned = compare(models, cdnow_split, n_draws=50, tier_probability_col="tier_probability",
                       tier_event="assigned", progressbar=False)  # fmt: skip
    tiers = assigned.attrs["calibration"]["m"].tiers
    assert tiers["customers"].sum() == 2357 and tiers.attrs["event"] == "assigned"


def test_calibration_plots_draw_every_model(comparison):
    from clvmodels import plotting

    for plot in (plotting.plot_pit_histogram, plotting.plot_coverage_by_level,
                 plotting.plot_tier_calibration):  # fmt: skip
        ax = plot(comparison)
        assert "BG/NBD" in ax.get_legend_handles_labels()[1]
    ax = plotting.plot_total_intervals(comparison, extra={"with shocks": (50_000, 72_000)})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["BG/NBD", "with shocks"]
    with pytest.raises(ValueError, match="no calibration"):
        plotting.plot_pit_histogram(pd.DataFrame({"x": [1.0]}))
