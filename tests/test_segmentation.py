"""Segmentation: tier rules, membership probabilities against brute force, tier totals,
the value-by-activity grid, RFM scores, honesty of tier intervals, bad input."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from simulated_bases import fitted_base, holdout_value

import clvmodels.segmentation as segmentation_module
from clvmodels import BetaGeo, GammaGamma, customer_lifetime_value, rfm_segments, segment
from clvmodels.segmentation import DEFAULT_TIERS, band_index, rank_share_tiers
from clvmodels.simulate import simulate_customers

CDNOW_BG = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
CDNOW_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def forecast(cdnow_summary):
    bg, gg = BetaGeo().fit(cdnow_summary), GammaGamma().fit(cdnow_summary)
    return customer_lifetime_value(bg, gg, cdnow_summary, n_draws=300, random_state=3)


@pytest.fixture(scope="module")
def segmentation(forecast):
    return segment(forecast)


@pytest.fixture(scope="module")
def all_draws(forecast):
    """The full (n_draws, n_customers) matrix, in the table's customer order."""
    parts = [pd.DataFrame(values, columns=ids) for ids, values in forecast.iter_draws()]
    return pd.concat(parts, axis=1)[forecast.table.index].to_numpy()


def brute_force_probabilities(draws, point_tier, tier_of):
    same = np.mean([tier_of(row) == point_tier for row in draws], axis=0)
    top = np.mean([tier_of(row) == 0 for row in draws], axis=0)
    return same, top


# -- the tier rules ----------------------------------------------------------------------
def test_rank_share_tiers_and_band_index():
    values = np.arange(10.0)
    cuts = np.array([0.1, 0.3, 0.6])
    assert rank_share_tiers(values, np.ones(10), cuts).tolist() == [3, 3, 3, 3, 2, 2, 2, 1, 1, 0]
    # Ties share a tier: the two 9s are both in the top 10%.
    tied = np.array([9.0, 9.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 0.5, 0.0])
    assert rank_share_tiers(tied, np.ones(10), cuts).tolist() == [0, 0, 1, 2, 2, 2, 3, 3, 3, 3]
    # Weights count customers: one row standing for 5 customers fills half the base.
    assert rank_share_tiers(
        np.array([3.0, 2.0, 1.0]), np.array([5.0, 1.0, 4.0]), cuts
    ).tolist() == [0, 2, 3]
    assert band_index(np.array([0.95, 0.7, 0.69, 0.3, 0.1]), np.array([0.7, 0.3])).tolist() == [
        0, 0, 1, 1, 2,
    ]  # fmt: skip


@pytest.mark.parametrize("weighted", [False, True])
def test_per_draw_boundaries_reproduce_the_rank_share_tiers(weighted):
    # Realised values (one unit per customer, ties at zero) take the order-statistic
    # path, distinct rows with weights the sorting one: both must give every draw the
    # tiers that rank_share_tiers gives it.
    rng = np.random.default_rng(4)
    values = np.where(rng.random((40, 300)) < 0.5, 0.0, rng.gamma(2.0, size=(40, 300)).round(1))
    weights = rng.integers(1, 6, 300).astype(float) if weighted else np.ones(300)
    cuts = np.cumsum([share for _, share in DEFAULT_TIERS])[:-1]
    boundaries = segmentation_module._exact_boundaries(values, weights, cuts)
    for draw, bound in zip(values, boundaries, strict=True):
        assert band_index(draw, bound).tolist() == rank_share_tiers(draw, weights, cuts).tolist()


def test_point_tiers_follow_the_rank_share_definition(segmentation, forecast):
    clv = forecast.table["clv"].to_numpy()
    tier = segmentation.customers["tier"].cat.codes.to_numpy()
    n = len(clv)
    higher = np.array([(clv > v).sum() for v in clv])
    cum = np.cumsum([share for _, share in DEFAULT_TIERS])
    for k, upper in enumerate(cum):
        members = tier == k
        lower = 0 if k == 0 else np.ceil(cum[k - 1] * n - 1e-9)
        assert np.all(higher[members] < np.ceil(upper * n - 1e-9))
        assert np.all(higher[members] >= lower)
    shares = segmentation.tiers["share_of_customers"].to_numpy()
    np.testing.assert_allclose(shares, [0.1, 0.2, 0.3, 0.4], atol=0.02)  # ties straddle cuts


# -- membership probabilities --------------------------------------------------------------
def test_tier_probabilities_match_a_brute_force_recount(segmentation, forecast, all_draws):
    cuts = np.array([0.1, 0.3, 0.6])
    point = segmentation.customers["tier"].cat.codes.to_numpy()
    same, top = brute_force_probabilities(
        all_draws, point, lambda row: rank_share_tiers(row, np.ones(row.size), cuts)
    )
    np.testing.assert_allclose(segmentation.customers["tier_probability"], same, atol=1e-12)
    np.testing.assert_allclose(segmentation.customers["top_tier_probability"], top, atol=1e-12)
    # Not a constant: some customers sit near a boundary.
    assert segmentation.customers["tier_probability"].min() < 0.6
    assert segmentation.settings["boundaries"] == "exact"


def test_histogram_boundaries_give_the_same_probabilities_as_exact_ones(forecast, segmentation):
    streamed = segment(forecast, exact_limit=0)
    assert streamed.settings["boundaries"] == "histogram"
    cols = ["tier", "tier_probability", "top_tier_probability", "segment"]
    pd.testing.assert_frame_equal(streamed.customers[cols], segmentation.customers[cols])
    custom = [("A", 0.05), ("B", 0.45), ("C", 0.5)]
    pd.testing.assert_frame_equal(
        segment(forecast, custom, exact_limit=0).customers,
        segment(forecast, custom).customers,
    )


def test_a_forecast_that_kept_the_tier_histogram_segments_in_one_pass(
    cdnow_summary, forecast, segmentation
):
    # customer_lifetime_value(..., tier_histogram=True) fills the per-draw histogram of
    # expected CLVs as it goes: `segment` then reads the draws once (not twice) and
    # finds the same tiers, probabilities and tier totals, exactly.
    bg, gg = forecast.scorer.transaction_model, forecast.scorer.spend_model
    kept = customer_lifetime_value(bg, gg, cdnow_summary, n_draws=300, random_state=3,
                                   tier_histogram=True)
    pd.testing.assert_frame_equal(kept.table, forecast.table)
    grid, hist = kept.expected_histogram
    assert hist.shape == (300, grid.n_bins)
    np.testing.assert_allclose(hist.sum(axis=1), len(cdnow_summary))
    assert forecast.expected_histogram is None

    def counting(fc):
        passes = []
        iter_row_draws = fc.iter_row_draws

        def counted():
            passes.append(1)
            return iter_row_draws()

        fc.iter_row_draws = counted
        return passes

    # With the histogram kept, segment takes that route at any size (without it, the
    # small forecast here would be sorted draw by draw: the `segmentation` compared to).
    for fc, n_passes, limit in [
        (kept, 1, 0), (kept, 1, segmentation_module.EXACT_LIMIT), (copy.copy(forecast), 2, 0),
    ]:
        passes = counting(fc)
        streamed = segment(fc, exact_limit=limit)
        assert len(passes) == n_passes
        assert streamed.settings["boundaries"] == "histogram"
        pd.testing.assert_frame_equal(streamed.customers, segmentation.customers)
        pd.testing.assert_frame_equal(streamed.tiers, segmentation.tiers, rtol=1e-12)
    # A tier of the top 0.02% has its boundary beyond the kept bins: two passes, on bins
    # of its own, and the same tiers.
    rare = [("top", 0.0002), ("rest", 0.9998)]
    passes = counting(kept)
    pd.testing.assert_frame_equal(segment(kept, rare, exact_limit=0).customers,
                                  segment(forecast, rare).customers)
    assert len(passes) == 2
    with pytest.raises(ValueError, match="tier_histogram must be True or False"):
        customer_lifetime_value(bg, gg, cdnow_summary, n_draws=10, tier_histogram="yes")


def test_value_thresholds_are_fixed_in_every_draw(forecast, all_draws):
    thresholds = [("big", 100.0), ("mid", 20.0), ("small", 0.0)]
    seg = segment(forecast, thresholds=thresholds)
    bounds = np.array([100.0, 20.0])
    clv = forecast.table["clv"].to_numpy()
    point = band_index(clv, bounds)
    np.testing.assert_array_equal(seg.customers["tier"].cat.codes, point)
    same, top = brute_force_probabilities(all_draws, point, lambda row: band_index(row, bounds))
    np.testing.assert_allclose(seg.customers["tier_probability"], same, atol=1e-12)
    np.testing.assert_allclose(seg.customers["top_tier_probability"], top, atol=1e-12)
    assert seg.settings["boundaries"] == "fixed"
    assert seg.tiers["boundary"]["big"] >= 100.0 and seg.tiers["boundary"]["mid"] >= 20.0


# -- tier summary and grid -----------------------------------------------------------------
def test_tier_summary_totals_and_intervals(segmentation, forecast, all_draws):
    tiers = segmentation.tiers
    assert tiers.index.tolist() == [name for name, _ in DEFAULT_TIERS]
    assert tiers["customers"].sum() == len(forecast.table)
    assert tiers["clv_total"].sum() == pytest.approx(forecast.table["clv"].sum(), rel=1e-10)
    assert tiers["share_of_value"].sum() == pytest.approx(1.0)
    codes = segmentation.customers["tier"].cat.codes.to_numpy()
    for k, name in enumerate(tiers.index):
        per_draw = all_draws[:, codes == k].sum(axis=1)
        lower, upper = np.quantile(per_draw, [0.05, 0.95])
        assert tiers.loc[name, "clv_total_lower"] == pytest.approx(lower, rel=1e-10)
        assert tiers.loc[name, "clv_total_upper"] == pytest.approx(upper, rel=1e-10)
        n = (codes == k).sum()
        assert tiers.loc[name, "clv_mean_lower"] == pytest.approx(lower / n, rel=1e-10)
        members = forecast.table["clv"].to_numpy()[codes == k]
        assert tiers.loc[name, "boundary"] == members.min()
    # The top 10% of customers hold more than half of the value (CDNOW's skew).
    assert tiers.loc["top value", "share_of_value"] > 0.5
    row = tiers.loc["top value"]
    assert row["share_of_value_lower"] < row["share_of_value"] < row["share_of_value_upper"]
    wider = segment(forecast, interval=0.99).tiers
    assert (wider["clv_total_upper"] > tiers["clv_total_upper"]).all()


def test_common_multipliers_widen_the_tier_totals_and_move_no_customer(
    segmentation, forecast, all_draws
):
    # A shock common to all customers scales every value of a draw alike: ranks, tiers
    # and their probabilities stay; each tier's per-draw total is scaled by its draw's
    # multiplier before the quantiles are read.
    multipliers = np.exp(np.random.default_rng(8).normal(-0.02, 0.2, forecast.n_draws))
    shocked = segment(forecast, common_multipliers=multipliers)
    pd.testing.assert_frame_equal(shocked.customers, segmentation.customers)
    tiers = shocked.tiers
    codes = segmentation.customers["tier"].cat.codes.to_numpy()
    for k, name in enumerate(tiers.index):
        per_draw = all_draws[:, codes == k].sum(axis=1) * multipliers
        lower, upper = np.quantile(per_draw, [0.05, 0.95])
        assert tiers.loc[name, "clv_total_lower"] == pytest.approx(lower, rel=1e-10)
        assert tiers.loc[name, "clv_total_upper"] == pytest.approx(upper, rel=1e-10)
        n = (codes == k).sum()
        assert tiers.loc[name, "clv_mean_upper"] == pytest.approx(upper / n, rel=1e-10)
    plain = segmentation.tiers
    for column in ("clv_total", "clv_mean", "share_of_value", "mean_tier_probability"):
        np.testing.assert_array_equal(tiers[column], plain[column])
    # Shares of value are ratios within a draw: a common multiplier cancels.
    np.testing.assert_allclose(tiers["share_of_value_lower"], plain["share_of_value_lower"],
                               rtol=1e-12)  # fmt: skip
    assert (tiers["clv_total_upper"] - tiers["clv_total_lower"]
            > 1.5 * (plain["clv_total_upper"] - plain["clv_total_lower"])).all()  # fmt: skip
    assert shocked.settings["common_multipliers"] and not segmentation.settings[
        "common_multipliers"
    ]
    ones = segment(forecast, common_multipliers=np.ones(forecast.n_draws))
    pd.testing.assert_frame_equal(ones.tiers, plain)


@pytest.mark.parametrize(
    ("multipliers", "message"),
    [
        (np.ones(5), r"one per draw of the forecast \(300\), got shape \(5,\)"),
        (np.r_[np.ones(299), 0.0], r"draw 299 has 0.0 \(1 such draws\)"),
        (np.r_[np.nan, np.ones(299)], "must be positive and finite; draw 0 has nan"),
    ],
)
def test_bad_common_multipliers_are_refused_by_name(forecast, multipliers, message):
    with pytest.raises(ValueError, match=message):
        segment(forecast, common_multipliers=multipliers)


def test_common_multipliers_need_rank_share_tiers(forecast):
    with pytest.raises(ValueError, match="tiers by thresholds would move"):
        segment(forecast, thresholds={"high": 100.0, "low": 0.0},
                common_multipliers=np.ones(forecast.n_draws))  # fmt: skip


def test_value_by_activity_grid(segmentation, forecast):
    grid = segmentation.grid
    assert len(grid) == 12
    assert grid["customers"].sum() == len(forecast.table)
    assert grid["clv_total"].sum() == pytest.approx(forecast.table["clv"].sum())
    assert {"top value, active", "high value, at risk", "low value, lapsed"} <= set(grid["segment"])
    cust = segmentation.customers
    # Each cell's figures, tier-major, are those of a group-by of the customers.
    cells = cust.groupby(["tier", "activity"], observed=False)
    np.testing.assert_array_equal(grid["customers"], cells.size())
    np.testing.assert_allclose(grid["clv_total"], cells["clv"].sum(), rtol=1e-12)
    np.testing.assert_allclose(grid["mean_probability_alive"],
                               cells["probability_alive"].mean(), rtol=1e-12)  # fmt: skip
    assert grid[["tier", "activity"]].astype(str).agg(", ".join, axis=1).tolist() \
        == grid["segment"].tolist()
    active = cust["probability_alive"] >= 0.7
    lapsed = cust["probability_alive"] < 0.3
    assert (cust.loc[active, "activity"] == "active").all()
    assert (cust.loc[lapsed, "activity"] == "lapsed").all()
    labels = cust["tier"].astype(str) + ", " + cust["activity"].astype(str)
    assert (labels == cust["segment"].astype(str)).all()
    pivot = segmentation.pivot("customers")
    assert pivot.shape == (4, 3) and pivot.to_numpy().sum() == len(cust)
    # The customers' frame shares no memory a write could reach the forecast through.
    again = segment(forecast)
    first = again.customers.index[0]
    value = forecast.table.loc[first, "clv"]
    again.customers.loc[first, ["clv", "probability_alive"]] = -1.0
    assert forecast.table.loc[first, "clv"] == value
    assert forecast.table.loc[first, "probability_alive"] != -1.0
    custom = segment(forecast, activity_bands=[("engaged", 0.5), ("dormant", 0.0)])
    assert set(custom.customers["activity"].astype(str)) == {"engaged", "dormant"}
    assert ((custom.customers["activity"] == "engaged") == (cust["probability_alive"] >= 0.5)).all()


# -- RFM scores ----------------------------------------------------------------------------
def test_rfm_scores_on_a_small_frame():
    summary = pd.DataFrame(
        {
            "frequency": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            "recency": [0.0, 5, 10, 15, 20, 25, 30, 35, 38, 39],
            "T": [40.0] * 10,
            "monetary_value": [0.0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
        },
        index=pd.Index(range(100, 110), name="customer_id"),
    )
    rfm = rfm_segments(summary)
    assert rfm["frequency_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # The most recent buyer (last purchase 1 week ago) scores 5 on recency.
    assert rfm["recency_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rfm.loc[109, "rfm_segment"] == "555" and rfm.loc[109, "rfm_score"] == 15
    assert rfm.loc[100, "time_since_last_purchase"] == 40.0
    assert rfm_segments(summary, n_scores=2)["monetary_score"].tolist() == [1] * 5 + [2] * 5


def test_rfm_scores_on_cdnow(cdnow_summary):
    rfm = rfm_segments(cdnow_summary)
    assert rfm.index.equals(cdnow_summary.index)
    counts = rfm["recency_score"].value_counts().sort_index()
    assert counts.index.tolist() == [1, 2, 3, 4, 5]
    assert (counts.between(0.15 * len(rfm), 0.25 * len(rfm))).all()
    # 1,411 one-time buyers tie at frequency 0: they all score 1.
    one_timers = cdnow_summary["frequency"] == 0
    assert one_timers.sum() == 1411
    assert (rfm.loc[one_timers, "frequency_score"] == 1).all()
    assert (rfm.loc[~one_timers, "frequency_score"] > 1).all()
    assert rfm["rfm_segment"].str.fullmatch(r"[1-5]{3}").all()


# -- honesty: tier totals over repeated simulations ----------------------------------------
def true_clv(data, horizon, step, rate):
    """CLV under the true parameters, from the models' public predictions."""
    bg, gg = BetaGeo(), GammaGamma()
    bg._set_fitted(CDNOW_BG, time_unit="W")
    gg._set_fitted(CDNOW_GG, time_unit="W")
    previous, value = 0.0, 0.0
    for k in range(1, horizon + 1):
        cumulative = bg.expected_purchases(t=k * step, data=data).to_numpy()
        value = value + (cumulative - previous) / (1 + rate) ** k
        previous = cumulative
    return value * gg.expected_spend(data=data).to_numpy()


@pytest.mark.slow
def test_tier_total_intervals_cover_the_true_expected_value():
    # 100 simulated bases of 2,000 customers (CDNOW parameters, 27-39 weeks at daily
    # resolution), fitted by maximum likelihood, forecast over 4 quarters at 3% with 200
    # draws. The target of a parameter interval is the expected CLV given each history
    # under the true parameters; each tier's total (tiers from the estimated CLV) should
    # be inside its 90% interval in about 90% of runs. 400 checks, correlated within a
    # run: the pooled rate has an sd of about 0.02-0.03, so accept 0.84-0.96, and
    # 0.75-1.0 per tier (100 runs each, sd 0.03).
    hits = []
    for rep in range(100):
        rng = np.random.default_rng(rep)
        T = rng.integers(27 * 7, 39 * 7 + 1, 2000) / 7
        data = simulate_customers(2000, CDNOW_BG, CDNOW_GG, T=T, random_state=rng)
        data["recency"] = np.minimum(np.round(data["recency"] * 7) / 7, data["T"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bg, gg = BetaGeo().fit(data), GammaGamma().fit(data)
        fc = customer_lifetime_value(
            bg, gg, data, horizon=4, period="Q", discount_rate=0.03, n_draws=200,
            random_state=rep,
        )  # fmt: skip
        seg = segment(fc)
        truth = pd.Series(true_clv(data, 4, 365.25 / 4 / 7, 0.03), index=data.index)
        by_tier = truth.groupby(seg.customers["tier"], observed=False).sum()
        inside = (seg.tiers["clv_total_lower"] <= by_tier) & (
            by_tier <= seg.tiers["clv_total_upper"]
        )
        hits.append(inside.to_numpy())
    hits = np.array(hits)
    assert 0.84 <= hits.mean() <= 0.96, hits.mean(axis=0)
    assert np.all((hits.mean(axis=0) >= 0.75) & (hits.mean(axis=0) <= 1.0)), hits.mean(axis=0)


# -- realised-value tier probabilities -------------------------------------------------------
def random_tie_tiers(values, cuts, rng):
    """Tier of each value by rank share, ties broken at random (as realised values are
    ranked for ``tier_probability_realised``)."""
    n = values.size
    order = np.lexsort((rng.random(n), -values))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return np.searchsorted(np.ceil(cuts * n - 1e-9), rank, side="right")


@pytest.fixture(scope="module", params=[None, 50], ids=["futures-all-draws", "futures-50"])
def predictive_forecast(cdnow_summary, request):
    # One future per draw, or 50 per customer under the first 50 of the 200 draws.
    bg, gg = BetaGeo().fit(cdnow_summary), GammaGamma().fit(cdnow_summary)
    return customer_lifetime_value(
        bg, gg, cdnow_summary, n_draws=200, predictive=True, n_futures=request.param,
        random_state=5,
    )


def test_realised_tier_probabilities_match_a_recount(predictive_forecast):
    fc = predictive_forecast
    seg = segment(fc)
    parts = [pd.DataFrame(v, columns=ids) for ids, v in fc.iter_draws("predictive")]
    draws = pd.concat(parts, axis=1)[fc.table.index].to_numpy()
    point = seg.customers["tier"].cat.codes.to_numpy()
    n = draws.shape[1]
    cuts = np.array([0.1, 0.3, 0.6])
    edges = np.concatenate([[0.0], cuts, [1.0]]) * n
    same, top = np.zeros(n), np.zeros(n)
    for row in draws:
        # Positive values by the rank rule; zeros spread over the ranks they tie on.
        tier = rank_share_tiers(row, np.ones(n), cuts)
        zero = row == 0
        z = zero.sum()
        share = np.clip(np.minimum(edges[1:], n) - np.maximum(edges[:-1], n - z), 0, None) / z
        same += np.where(zero, share[point], tier == point)
        top += np.where(zero, share[0], tier == 0)
    got = seg.customers
    # Sums of at most 200 shares (one per future): agreement to rounding.
    np.testing.assert_allclose(got["tier_probability_realised"], same / len(draws), atol=1e-9)
    np.testing.assert_allclose(got["top_tier_probability_realised"], top / len(draws), atol=1e-9)
    # Every draw fills each tier with its share of the customers (ties at zero split).
    means = got.groupby("tier", observed=False)["tier_probability_realised"].mean()
    np.testing.assert_allclose(means, seg.tiers["mean_tier_probability_realised"], atol=1e-12)
    assert got["top_tier_probability_realised"].mean() == pytest.approx(0.1, abs=1e-3)
    # Realised values are far less certain than expected ones (the 98-99%).
    assert got["tier_probability"].mean() > 0.9
    assert got["tier_probability_realised"].mean() < 0.6
    assert seg.settings["realised"] is True
    assert len(draws) == seg.settings["n_futures"] == fc.n_futures
    # Above, the histogram the forecast filled while simulating settled every boundary
    # (at any size). Without it, the same tiers come from a sort of every draw (small
    # forecasts) or from a histogram pass of segment's own.
    assert fc.realised_histogram is not None
    streamed = segment(fc, exact_limit=0)
    cols = ["tier_probability_realised", "top_tier_probability_realised"]
    np.testing.assert_allclose(streamed.customers[cols], got[cols], atol=1e-12)
    bare = copy.copy(fc)
    bare.realised_histogram = None
    for limit in (0, segmentation_module.EXACT_LIMIT):
        np.testing.assert_allclose(
            segment(bare, exact_limit=limit).customers[cols], got[cols], atol=1e-12
        )


def test_realised_tier_probabilities_need_a_predictive_forecast(segmentation):
    assert "tier_probability_realised" not in segmentation.customers.columns
    assert "mean_tier_probability_realised" not in segmentation.tiers.columns
    assert segmentation.settings["realised"] is False


def test_realised_tier_probabilities_with_value_thresholds(predictive_forecast):
    fc = predictive_forecast
    seg = segment(fc, thresholds=[("high", 100.0), ("some", 1.0), ("none", 0.0)])
    parts = [pd.DataFrame(v, columns=ids) for ids, v in fc.iter_draws("predictive")]
    draws = pd.concat(parts, axis=1)[fc.table.index].to_numpy()
    point = seg.customers["tier"].cat.codes.to_numpy()
    tier = band_index(draws, np.array([100.0, 1.0]))
    np.testing.assert_allclose(
        seg.customers["tier_probability_realised"], np.mean(tier == point, axis=0), atol=1e-12
    )


def test_realised_tier_probabilities_are_calibrated_on_simulated_data():
    # 6 bases of 3,000 simulated customers (CDNOW parameters, 27-39 weeks at daily
    # resolution) with a 39-week holdout, fitted by maximum likelihood; 39 weekly
    # periods undiscounted, 200 draws. The customers' realised holdout values are ranked
    # (ties broken at random) into the default tiers. Of the customers given about p,
    # about p must land in their tier (and in the top tier): per decile bin of the
    # probability, the landed share is within 3 binomial sd (plus 0.02 for the shared
    # parameter error of each base) of the bin's mean probability.
    cuts = np.cumsum([share for _, share in DEFAULT_TIERS])[:-1]
    probs, landed, probs_top, landed_top = [], [], [], []
    for rep in range(6):
        data, bg, gg, rng = fitted_base(100 + rep)
        fc = customer_lifetime_value(
            bg, gg, data, horizon=39, period="W", discount_rate=0.0, n_draws=200,
            predictive=True, random_state=rep,
        )  # fmt: skip
        seg = segment(fc).customers
        realised = random_tie_tiers(holdout_value(data), cuts, rng)
        point = seg["tier"].cat.codes.to_numpy()
        probs.append(seg["tier_probability_realised"].to_numpy())
        landed.append(realised == point)
        probs_top.append(seg["top_tier_probability_realised"].to_numpy())
        landed_top.append(realised == 0)
        # The parameter-uncertainty probability answers another question: nearly every
        # customer gets > 0.9, and far fewer than that land in the tier by realised value.
        confident = seg["tier_probability"].to_numpy() > 0.9
        assert confident.mean() > 0.8
        assert (realised == point)[confident].mean() < 0.6
    for p, hit in ((probs, landed), (probs_top, landed_top)):
        p, hit = np.concatenate(p), np.concatenate(hit)
        bins = np.minimum((p * 10).astype(int), 9)
        checked = 0
        for b in range(10):
            inside = bins == b
            n = inside.sum()
            if n < 50:
                continue
            mean_p = p[inside].mean()
            sd = np.sqrt(max(mean_p * (1 - mean_p), 0.01) / n)
            assert abs(hit[inside].mean() - mean_p) <= 3 * sd + 0.02, (
                b,
                n,
                mean_p,
                hit[inside].mean(),
            )
            checked += 1
        assert checked >= 4


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tiers": [("a", 0.5), ("b", 0.4)]}, "sum to 1"),
        ({"tiers": [("a", 1.2), ("b", -0.2)]}, "positive"),
        ({"tiers": [("a", 1.0)]}, "at least two"),
        ({"tiers": [("a", 0.5), ("a", 0.5)]}, "distinct"),
        ({"thresholds": [("a", 10.0), ("b", 50.0), ("c", 0.0)]}, "decrease"),
        ({"tiers": [("a", 0.5), ("b", 0.5)], "thresholds": [("a", 1), ("b", 0)]}, "not both"),
        ({"activity_bands": [("on", 0.2), ("off", 0.5), ("gone", 0.0)]}, "decrease"),
        ({"interval": 1.5}, "interval"),
        ({"tiers": [("a", "lots"), ("b", 0.5)]}, "number"),
    ],
)
def test_bad_settings_are_refused(forecast, kwargs, message):
    with pytest.raises(ValueError, match=message):
        segment(forecast, **kwargs)


def test_segment_needs_a_forecast(cdnow_summary):
    with pytest.raises(TypeError, match="CLVForecast"):
        segment(cdnow_summary)


def test_rfm_segments_validates_input(cdnow_summary):
    with pytest.raises(ValueError, match="monetary_value"):
        rfm_segments(cdnow_summary.drop(columns="monetary_value"))
    with pytest.raises(ValueError, match="n_scores"):
        rfm_segments(cdnow_summary, n_scores=1)
