"""Model averaging: stacking weights, and intervals from the mixture (issue 13)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvmodels import BetaGeo, GammaGamma, ParetoNBD, customer_lifetime_value, simulate_bgnbd
from clvmodels.averaging import (
    AveragedForecast,
    average_forecasts,
    holdout_log_density,
    holdout_weights,
    mixture_allocation,
    stacking_weights,
)
from clvmodels.clv import prediction_bounds

CDNOW_BGNBD = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}


def _split(params, n, seed):
    frame = simulate_bgnbd(n, **params, T=39.0, holdout=39.0, random_state=seed)
    frame["duration_holdout"] = 39.0
    return frame


def test_a_dominating_model_gets_almost_all_the_weight():
    # Holdout from the CDNOW BG/NBD; the rival is a BG/NBD of a population that buys
    # five times as often and rarely drops out: the true model takes >= 90%. (Over
    # eight simulated populations and two streams of parameter draws its weight was
    # 0.92-1.00: the densities' Monte Carlo noise from 300 draws lets the rival take a
    # few per cent of customers with unusual holdouts.)
    split = _split(CDNOW_BGNBD, 4000, seed=1)
    truth = BetaGeo().fit(split)
    rival = BetaGeo().fit(_split({"r": 1.2, "alpha": 4.4, "a": 0.3, "b": 5.0}, 4000, seed=2))
    lp = pd.DataFrame({
        "truth": holdout_log_density(truth, split, n_draws=300, random_state=0),
        "rival": holdout_log_density(rival, split, n_draws=300, random_state=0),
    })  # fmt: skip
    weights = stacking_weights(lp)
    assert weights.sum() == pytest.approx(1.0)
    assert weights["truth"] >= 0.9
    # The same from the models (pairs, as compare takes them).
    pairs = {"truth": (truth, None), "rival": (rival, None)}
    again = holdout_weights(pairs, split, n_draws=300, random_state=0)
    pd.testing.assert_series_equal(again, weights)


def test_stacking_weights_split_between_models_each_right_for_half():
    # Two populations, one model fitted to each: stacking gives each about its share.
    a = _split(CDNOW_BGNBD, 3000, seed=3)
    b = _split({"r": 1.2, "alpha": 4.4, "a": 0.3, "b": 5.0}, 1000, seed=4)
    both = pd.concat([a, b], ignore_index=True)
    both.attrs = a.attrs
    lp = pd.DataFrame({
        "a": holdout_log_density(BetaGeo().fit(a), both, n_draws=300, random_state=0),
        "b": holdout_log_density(BetaGeo().fit(b), both, n_draws=300, random_state=0),
    })  # fmt: skip
    weights = stacking_weights(lp)
    # Mixture weights of two well-separated populations of 3,000 and 1,000: 0.75 and 0.25,
    # blurred by the customers both models explain alike (no purchases at all): "a" gets
    # 0.87 to 0.92 over the seeds 0-5 of the simulated densities.
    assert 0.6 < weights["a"] < 0.97 and weights.sum() == pytest.approx(1.0)


def test_mixture_allocation_sums_to_n():
    rng = np.random.default_rng(0)
    for _ in range(50):
        w = rng.dirichlet(np.ones(4))
        n = int(rng.integers(1, 500))
        counts = mixture_allocation(w, n)
        assert counts.sum() == n and np.all(np.abs(counts - w * n) < 1)
    with pytest.raises(ValueError, match="sum to 1"):
        mixture_allocation(np.array([0.5, 0.6]), 10)


@pytest.fixture(scope="module")
def forecasts(cdnow_split):
    spend = GammaGamma().fit(cdnow_split)
    return {
        name: customer_lifetime_value(model.fit(cdnow_split), spend, cdnow_split, horizon=39,
                                      period="W", discount_rate=0, n_draws=400,
                                      predictive=True, random_state=0)
        for name, model in {"bgnbd": BetaGeo(), "pareto": ParetoNBD()}.items()
    }


def test_mixture_of_one_model_is_that_model(forecasts):
    mix = average_forecasts(forecasts, {"bgnbd": 1.0, "pareto": 0.0})
    one = forecasts["bgnbd"]
    pd.testing.assert_series_equal(mix.total(), one.total())
    table = one.table.reindex(mix.table.index)
    for col in ("clv", "clv_lower", "clv_upper"):
        np.testing.assert_allclose(mix.table[col], table[col], rtol=1e-12)
    # Predictive bounds come from each customer's own simulated futures (iter_draws),
    # the forecast's from its distinct rows: equal up to the Monte Carlo error of a 95%
    # quantile of 400 draws, which averages out over customers.
    for col in ("clv_pred_lower", "clv_pred_upper"):
        assert mix.table[col].mean() == pytest.approx(table[col].mean(), rel=0.03)


def test_mixture_intervals_lie_within_the_components(forecasts):
    mix = average_forecasts(forecasts, {"bgnbd": 0.5, "pareto": 0.5})
    assert mix.weights.sum() == pytest.approx(1.0)
    assert list(np.unique(mix.model_of_draw)) == ["bgnbd", "pareto"]
    a, b = (fc.total() for fc in forecasts.values())
    t = mix.total()
    # A quantile of a 50/50 mixture lies between the components' quantiles; with 200
    # draws from each, allow 1% for the Monte Carlo error of the quantiles.
    for key in ("clv_lower", "clv_upper", "clv_pred_lower", "clv_pred_upper"):
        low, high = sorted((a[key], b[key]))
        assert 0.99 * low <= t[key] <= 1.01 * high
    assert t["clv"] == pytest.approx((a["clv"] + b["clv"]) / 2)
    # Per customer, where the two models agree (upper bounds within 2%), the mixture's
    # bound agrees with them too.
    ta, tb = (fc.table.reindex(mix.table.index) for fc in forecasts.values())
    agree = (np.abs(ta["clv_upper"] - tb["clv_upper"]) <= 0.02 * ta["clv_upper"]).to_numpy()
    assert agree.sum() > 50
    upper = mix.table["clv_upper"].to_numpy()[agree]
    lo = np.minimum(ta["clv_upper"], tb["clv_upper"]).to_numpy()[agree]
    hi = np.maximum(ta["clv_upper"], tb["clv_upper"]).to_numpy()[agree]
    # The 95% quantile of 200 draws per model moves by a few percent: 5% allowed.
    assert np.all((upper >= 0.95 * lo) & (upper <= 1.05 * hi))


def test_a_mixture_shares_out_the_fewest_futures_by_the_weights(forecasts, cdnow_split):
    # A member simulated 100 futures per customer, the other 400: the mixture has the
    # members' 400 draws and 100 futures, 50 from each, the first of each member's.
    from clvmodels import segment

    spend = GammaGamma().fit(cdnow_split)
    few = customer_lifetime_value(
        ParetoNBD().fit(cdnow_split), spend, cdnow_split, horizon=39, period="W",
        discount_rate=0, n_draws=400, predictive=True, n_futures=100, random_state=0,
    )  # fmt: skip
    members = {"bgnbd": forecasts["bgnbd"], "pareto": few}
    mix = average_forecasts(members, {"bgnbd": 0.5, "pareto": 0.5})
    assert (mix.n_draws, mix.n_futures, mix.settings["n_futures"]) == (400, 100, 100)
    np.testing.assert_array_equal(
        mix.predictive_totals,
        np.r_[forecasts["bgnbd"].predictive_totals[:50], few.predictive_totals[:50]],
    )
    sims = sum(values.sum(axis=1) for _, values in mix.iter_draws("predictive"))
    np.testing.assert_allclose(sims, mix.predictive_totals, rtol=1e-12)
    # The total's predictive interval keeps all 400 draws: each member's realised totals
    # for the 200 draws it gives, the 100-future member's carried from its futures.
    np.testing.assert_array_equal(
        mix.predictive_draw_totals,
        np.r_[forecasts["bgnbd"].predictive_totals[:200], few.predictive_draw_totals[:200]],
    )  # fmt: skip
    np.testing.assert_array_equal(few.predictive_draw_totals[:100], few.predictive_totals)
    np.testing.assert_allclose(
        mix.total()[["clv_pred_lower", "clv_pred_upper"]].to_numpy(dtype=float),
        prediction_bounds(mix.predictive_draw_totals, [0.05, 0.95]),
        rtol=1e-12,
    )  # fmt: skip
    with pytest.raises(ValueError, match="come together"):
        AveragedForecast(mix.table, mix.weights, mix.draw_totals, mix.predictive_totals,
                         mix.model_of_draw, 0.9)  # fmt: skip
    realised = segment(mix).customers["top_tier_probability_realised"].to_numpy()
    np.testing.assert_allclose(realised * 100, np.round(realised * 100), atol=1e-9)
    # Only members with weight count: all of it on the 400-future model keeps 400.
    assert average_forecasts(members, {"bgnbd": 1.0, "pareto": 0.0}).n_futures == 400


def test_average_forecasts_bad_input(forecasts):
    with pytest.raises(ValueError, match="non-empty"):
        average_forecasts({})
    with pytest.raises(TypeError, match="not a CLVForecast"):
        average_forecasts({"x": 1})
    with pytest.raises(ValueError, match="unknown models"):
        average_forecasts(forecasts, {"nope": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        average_forecasts(forecasts, {"bgnbd": -1.0, "pareto": 2.0})


def test_a_mixture_is_a_forecast_that_segment_takes(forecasts):
    # The mixture's draws feed segment() as one model's do: tier probabilities of the
    # mixture lie between 0 and 1, and with all the weight on one model its top-tier
    # probabilities are that model's (same draws), up to the histogram of realised
    # values the model's forecast keeps (binned, where the mixture's are exact).
    from clvmodels import segment

    one = average_forecasts(forecasts, {"bgnbd": 1.0, "pareto": 0.0})
    assert one.n_draws == 400 and one.row_weights.sum() == len(one.table)
    mine, theirs = segment(one).customers, segment(forecasts["bgnbd"]).customers
    theirs = theirs.reindex(mine.index)
    np.testing.assert_allclose(mine["top_tier_probability"], theirs["top_tier_probability"])
    gap = np.abs(mine["top_tier_probability_realised"]
                 - theirs["top_tier_probability_realised"]).mean()
    assert gap < 0.01
    without = average_forecasts(forecasts, per_customer=False)
    with pytest.raises(ValueError, match="per_customer=False"):
        next(without.iter_draws())


def test_backtest_weights_bad_input(cdnow_split, cdnow_transactions):
    from clvmodels.averaging import backtest_weights

    with pytest.raises(ValueError, match="non-empty mapping"):
        backtest_weights({}, cdnow_transactions, cdnow_split)
    bare = cdnow_split.copy()
    bare.attrs = {"time_unit": "W"}
    with pytest.raises(ValueError, match="calibration_holdout_split"):
        backtest_weights({"bg": BetaGeo()}, cdnow_transactions, bare)
    with pytest.raises(ValueError, match="block_days must lie between 1 and 272"):
        backtest_weights({"bg": BetaGeo()}, cdnow_transactions, cdnow_split, block_days=300)
