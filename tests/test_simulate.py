"""The simulator agrees with the model's closed forms (and so checks both)."""

from __future__ import annotations

import numpy as np
import pytest

from clvmodels import BetaGeo, simulate_bgnbd, simulate_customers
from clvmodels.models.beta_geo import (
    bgnbd_expected_purchases,
    bgnbd_expected_purchases_new_customer,
    bgnbd_probability_of_purchases,
)

PARAMS = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def customers():
    return simulate_customers(200_000, PARAMS, SPEND, T=39.0, holdout=39.0, random_state=0,
                              return_latent=True)


def _mean_within(sample, expected, n_se=4.0):
    se = sample.std(ddof=1) / np.sqrt(len(sample))
    assert abs(sample.mean() - expected) < n_se * se


def test_frequency_distribution_matches_pmf(customers):
    x = customers["frequency"].to_numpy()
    _mean_within(x, bgnbd_expected_purchases_new_customer(39.0, **PARAMS))
    pmf = bgnbd_probability_of_purchases(np.arange(6), 39.0, **PARAMS)
    observed = np.bincount(x, minlength=6)[:6] / len(x)
    assert np.all(np.abs(observed - pmf) <= 4 * np.sqrt(pmf * (1 - pmf) / len(x)))


def test_holdout_purchases_match_conditional_expectation(customers):
    f, r, T = (customers[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    expected = bgnbd_expected_purchases(39.0, **PARAMS, frequency=f, recency=r, T=T)
    # Averaged over customers, the realised holdout count is unbiased for eq. (10).
    diff = customers["frequency_holdout"].to_numpy() - expected
    _mean_within(diff, 0.0)


def test_recency_within_observation_and_alive_flag(customers):
    assert (customers["recency"] <= customers["T"]).all()
    assert (customers.loc[customers["frequency"] == 0, "recency"] == 0).all()
    dead = ~customers["alive"]
    assert (customers.loc[dead, "frequency_holdout"] == 0).all()


def test_spend_has_the_gamma_gamma_mean(customers):
    buyers = customers[customers["frequency"] > 0]
    population_mean = SPEND["p"] * SPEND["gamma"] / (SPEND["q"] - 1)
    latent = SPEND["p"] / buyers["nu"]
    _mean_within(buyers["monetary_value"] - latent, 0.0)
    assert latent.mean() == pytest.approx(population_mean, rel=0.03)
    assert (customers.loc[customers["frequency"] == 0, "monetary_value"] == 0).all()


def test_per_customer_T_and_reproducibility():
    T = np.linspace(1, 50, 100)
    one = simulate_bgnbd(100, **PARAMS, T=T, random_state=3)
    two = simulate_bgnbd(100, **PARAMS, T=T, random_state=3)
    assert one.equals(two)
    np.testing.assert_array_equal(one["T"], T)
    assert one.attrs["time_unit"] == "W"
    assert BetaGeo().fit(simulate_bgnbd(5_000, **PARAMS, T=39, random_state=4)).is_fitted


def test_rejects_invalid_parameters():
    with pytest.raises(ValueError, match="alpha must be positive"):
        simulate_bgnbd(10, 0.2, -1.0, 0.8, 2.4, T=10)
    with pytest.raises(ValueError, match="T must be positive"):
        simulate_bgnbd(10, 0.2, 1.0, 0.8, 2.4, T=0)
