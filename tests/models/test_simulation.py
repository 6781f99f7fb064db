"""The compiled simulators: their futures follow the models' closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvmodels import BetaGeo, GammaGamma, ModifiedBetaGeo, customer_lifetime_value, segment
from clvmodels.models._simulation import (
    beta_geo_purchases,
    compact,
    gamma_gamma_spends,
    read_only,
    standard_gamma,
)

# Three very different parameter sets, interleaved over 999 draws: a customer's chance
# to buy changes from draw to draw, so the simulator's thinning (candidates at the
# row's largest chance, kept in proportion) is exercised, not bypassed.
PARAM_SETS = pd.DataFrame(
    {"r": [0.243, 1.5, 0.1], "alpha": [4.4, 12.0, 2.0], "a": [0.79, 0.3, 2.5],
     "b": [2.43, 5.0, 1.0]}
)
CUSTOMERS = pd.DataFrame(
    {"frequency": [0.0, 2.0, 9.0, 1.0], "recency": [0.0, 30.0, 12.0, 2.0],
     "T": [40.0, 38.0, 39.0, 41.0]}
)


@pytest.mark.parametrize("model_class", [BetaGeo, ModifiedBetaGeo])
def test_thinned_futures_buy_as_often_and_as_much_as_each_draw_says(model_class):
    model = model_class.from_params(PARAM_SETS.iloc[0].to_dict())
    draws = PARAM_SETS.iloc[np.arange(999) % 3].reset_index(drop=True)
    copies = 300
    rows = CUSTOMERS.loc[CUSTOMERS.index.repeat(copies)].reset_index(drop=True)
    horizon = 30.0
    counts = model.simulate_purchases(horizon, rows, draws=draws, random_state=7).counts()
    alive = np.asarray(model.probability_alive(data=CUSTOMERS, draws=draws))
    expected = np.asarray(model.expected_purchases(t=horizon, data=CUSTOMERS, draws=draws))
    shape = np.asarray(draws["r"])[:, None] + CUSTOMERS["frequency"].to_numpy()
    scale = np.asarray(draws["alpha"])[:, None] + CUSTOMERS["T"].to_numpy()
    buys = alive * (1.0 - (1.0 + horizon / scale) ** -shape)
    for k in range(3):
        for i in range(len(CUSTOMERS)):
            pairs = counts[k::3, i * copies:(i + 1) * copies]
            share, chance = (pairs > 0).mean(), buys[k, i]
            assert abs(share - chance) < 4.5 * np.sqrt(chance * (1 - chance) / pairs.size) + 1e-12
            se = pairs.std() / np.sqrt(pairs.size)
            assert abs(pairs.mean() - expected[k, i]) < 4.5 * se + 1e-12, (k, i)


def test_customers_without_a_chance_to_buy_make_no_purchase():
    # P(alive) at the edge of underflow: the gaps between candidates are astronomically
    # long, which must end the row rather than overflow an integer.
    model = BetaGeo.from_params(PARAM_SETS.iloc[0].to_dict())
    rows = CUSTOMERS.iloc[:1]
    for alive in (0.0, 5e-324, 1e-300, 1e-13):
        sims = model.simulate_purchases(52.0, rows, draws=PARAM_SETS.iloc[[0] * 5000],
                                        random_state=1, probability_alive=np.full((5000, 1),
                                                                                  alive))
        assert sims.n_purchases == 0, alive


def test_purchases_of_one_future_share_its_spend_rate():
    # Every pair makes two purchases. Their values share the pair's nu, so they covary
    # by Var(E[z | nu]) = p^2 (gamma + x m)^2 / ((s - 1)^2 (s - 2)), s = p x + q; drawn
    # per purchase they would not covary at all.
    p, q, gamma = 6.25, 3.74, 15.44
    x, m = np.array([0.0, 3.0]), np.array([0.0, 40.0])
    n_pairs = 200_000
    owner = np.repeat(np.arange(n_pairs), 2)
    values = gamma_gamma_spends(
        read_only(owner, np.int64), 2, n_pairs,
        *(compact(v, (n_pairs // 2, 2)) for v in (p, q, gamma)), read_only(x), read_only(m),
        np.random.default_rng(3),
    ).reshape(n_pairs, 2)
    for row in range(2):
        first, second = values[row::2, 0], values[row::2, 1]
        s, rate = p * x[row] + q, gamma + x[row] * m[row]
        mean = p * rate / (s - 1)
        assert abs(first.mean() / mean - 1) < 0.01
        cov = np.mean((first - first.mean()) * (second - second.mean()))
        expected_cov = p**2 * rate**2 / ((s - 1) ** 2 * (s - 2))
        assert abs(cov / expected_cov - 1) < 0.15, (row, cov, expected_cov)


def test_spends_of_simulated_purchases_average_to_the_expected_spend():
    model = BetaGeo.from_params(PARAM_SETS.iloc[0].to_dict())
    spend = GammaGamma.from_params({"p": 6.25, "q": 3.74, "gamma": 15.44})
    rows = CUSTOMERS.assign(monetary_value=[0.0, 25.0, 12.0, 80.0])
    rows = rows.loc[rows.index.repeat(20_000)].reset_index(drop=True)
    sims = model.simulate_purchases(52.0, rows, draws=None, random_state=4)
    values = spend.simulate_spend(sims, rows, draws=None, random_state=5)
    expected = spend.expected_spend(data=rows.iloc[::20_000]).to_numpy()
    # A ratio of sums over pairs, whose purchases share a spend rate: its standard
    # error from the pairs' residuals.
    pair, slot = sims.buyers()
    pair_sum, pair_count = np.bincount(slot, values), np.bincount(slot)
    row = pair % len(rows) // 20_000
    for i, mean in enumerate(expected):
        sums, counts = pair_sum[row == i], pair_count[row == i]
        ratio = sums.sum() / counts.sum()
        se = np.sqrt(np.sum((sums - ratio * counts) ** 2)) / counts.sum()
        assert abs(ratio - mean) < 4.5 * se, (i, ratio, mean, se)


def test_compact_refuses_what_does_not_broadcast():
    with pytest.raises(ValueError, match="do not broadcast"):
        compact(np.ones(3), (2, 4))


@pytest.mark.parametrize("n_rows", [1, 7, 1000, 123_457])
def test_split_pair_is_divmod(n_rows):
    # Pairs of the largest flat indices a piece can have and far beyond (2^40), where
    # the product by the inverse rounds: still exact after the correction.
    from clvmodels.models._simulation import split_pair

    pairs = np.r_[np.arange(0, 3 * n_rows + 5), 2**40 + np.arange(-3 * n_rows, 3 * n_rows)]
    inverse = 1.0 / n_rows
    got = [split_pair(int(p), n_rows, inverse) for p in pairs]
    assert got == [divmod(int(p), n_rows) for p in pairs]


@pytest.mark.parametrize("shape", [0.0, 0.05, 0.2426, 0.5, 1.0, 2.5, 6.25, 180.0])
def test_standard_gamma_draws_numpy_s_variates(shape):
    # The same variates as NumPy's Generator.standard_gamma from the same seed (so a
    # seed's futures do not depend on which sampler drew them), and with them NumPy's
    # Beta of two gammas where a parameter exceeds 1, as the BG/NBD simulator uses it.
    import numba

    @numba.njit
    def draw(rng, shape, n):
        out = np.empty(n)
        for i in range(n):
            out[i] = standard_gamma(rng, shape)
        return out

    @numba.njit
    def beta_of_gammas(rng, a, b, n):
        out = np.empty(n)
        for i in range(n):
            before = standard_gamma(rng, a)
            out[i] = before / (before + standard_gamma(rng, b))
        return out

    n = 20_000
    np.testing.assert_allclose(draw(np.random.default_rng(8), shape, n),
                               np.random.default_rng(8).standard_gamma(shape, n),
                               rtol=1e-12)  # fmt: skip
    a, b = 1.0 + 3.0 * shape, 2.0 + shape
    np.testing.assert_allclose(beta_of_gammas(np.random.default_rng(9), a, b, n),
                               np.random.default_rng(9).beta(a, b, n), rtol=1e-12)  # fmt: skip


def test_a_forecast_and_its_tiers_compile_each_simulator_once(cdnow_summary):
    # The forecast hands BG/NBD's simulator the P(alive) it computed (a writable array);
    # segment simulates again and lets the model compute it (a read-only view). The
    # simulators take every array read-only, so Numba compiles one version of each, not
    # one per mix (a second or so on a first forecast).
    summary = cdnow_summary.iloc[:300]
    bg, gg = BetaGeo().fit(cdnow_summary), GammaGamma().fit(cdnow_summary)
    forecast = customer_lifetime_value(bg, gg, summary, n_draws=40, predictive=True,
                                       random_state=1)  # fmt: skip
    assert "tier_probability_realised" in segment(forecast).customers
    assert len(beta_geo_purchases.signatures) == 1
    assert len(gamma_gamma_spends.signatures) == 1
