"""The model contract is all the rest of the package needs: a toy model proves it.

``ToyNBD`` is the NBD model (Ehrenberg 1959; Morrison & Schmittlein 1988): purchases
at a Poisson rate ``lambda ~ Gamma(r, alpha)``, and nobody ever drops out. It is
written here, in a few lines, as a plain class: it inherits nothing from clvmodels and
only implements the members of :class:`clvmodels.models.base.TransactionModel`. CLV
(point, parameter and predictive intervals), segments, the holdout comparison, the
tracking check and the plots must then work on it and give its closed forms:

* ``E[Y(t) | x, T] = (r + x) / (alpha + T) * t``, ``P(alive) = 1``;
* ``E[X(t)] = r / alpha * t`` and ``P(X(t) = n)`` the negative binomial pmf.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy.special import gammaln, xlogy

from clvmodels import BetaGeo, GammaGamma, compare, customer_lifetime_value, segment
from clvmodels import plotting as P
from clvmodels.evaluation import (
    conditional_expectations_by_frequency,
    expected_cumulative_purchases,
    repeat_purchase_histogram,
)
from clvmodels.models.base import SimulatedPurchases, SpendModel, TransactionModel
from clvmodels.segmentation import rank_share_tiers
from clvmodels.units import Calendar

TRUE_NBD = {"r": 0.9, "alpha": 8.0}
TRUE_GG = {"p": 6.0, "q": 4.0, "gamma": 15.0}
HOLDOUT = 39.0


# --------------------------------------------------------------------------------------
# The toy model
# --------------------------------------------------------------------------------------
def nbd_log_likelihood(r, alpha, x, T):
    """Poisson purchases in (0, T] at a Gamma(r, alpha) rate: Gamma(r+x)/Gamma(r)
    alpha^r / (alpha+T)^(r+x) (the timing of the purchases carries no information)."""
    return gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + T)


def nbd_pmf(n, t, r, alpha):
    """P(X(t) = n), the negative binomial distribution."""
    log_p = (
        gammaln(r + n) - gammaln(r) - gammaln(n + 1.0)
        + r * np.log(alpha / (alpha + t)) + xlogy(n, t / (alpha + t))
    )  # fmt: skip
    return np.exp(log_p)


class ToyNBD:
    """Pure NBD, maximum likelihood; a plain class that satisfies the contract."""

    param_names = ("r", "alpha")
    group_col = None
    data_columns = ("frequency", "T")

    def __init__(self, alive_future_columns=("frequency", "T")):
        # With P(alive) = 1 the future given alive is the whole future: either answer
        # is right, and CLV must give the same numbers on both of its routes.
        self.alive_future_columns = alive_future_columns
        self.time_unit_ = None
        self.params_ = None

    @property
    def is_fitted(self):
        return self.params_ is not None

    def fit(self, data, weights=None):
        x, T = (data[c].to_numpy(dtype=float) for c in ("frequency", "T"))

        def nll(z):
            return -float(np.sum(nbd_log_likelihood(*np.exp(z), x, T)))

        z = optimize.minimize(nll, np.log([1.0, T.mean()]), method="Nelder-Mead",
                              options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 4000}).x
        h = 1e-4  # central differences of the log-likelihood: the observed information
        hess = np.array([[(nll(z + h * (ei + ej)) - nll(z + h * (ei - ej))
                           - nll(z - h * (ei - ej)) + nll(z - h * (ei + ej))) / (4 * h * h)
                          for ej in np.eye(2)] for ei in np.eye(2)])  # fmt: skip
        self._z, self._cov = z, np.linalg.inv(hess)
        self.params_ = pd.Series(np.exp(z), index=list(self.param_names))
        self.log_likelihood_ = -nll(z)
        self.n_obs_ = len(x)
        self.time_unit_ = data.attrs.get("time_unit")
        return self

    def _params(self, draws):
        if draws is None:
            return float(self.params_["r"]), float(self.params_["alpha"])
        return draws["r"].to_numpy()[:, None], draws["alpha"].to_numpy()[:, None]

    def summary(self, interval=0.95):
        se = np.sqrt(np.diag(self._cov)) * self.params_.to_numpy()
        return pd.DataFrame({"estimate": self.params_, "se": se})

    def fit_statistics(self):
        k, n, ll = 2, self.n_obs_, self.log_likelihood_
        return {"log_likelihood": ll, "aic": 2 * k - 2 * ll, "bic": k * np.log(n) - 2 * ll,
                "elpd_loo": np.nan, "elpd_loo_se": np.nan, "n_obs": float(n)}

    def param_draws(self, n, random_state=None):
        rng = np.random.default_rng(random_state)
        z = rng.multivariate_normal(self._z, self._cov, size=n)
        return pd.DataFrame(np.exp(z), columns=list(self.param_names))

    def save(self, path):
        Path(path).write_text(json.dumps({"params": self.params_.to_dict()}))
        return Path(path)

    # -- predictions ------------------------------------------------------------------
    def expected_purchases(self, t, data, *, draws=None):
        r, alpha = self._params(draws)
        x, T = (data[c].to_numpy(dtype=float) for c in ("frequency", "T"))
        values = (r + x) / (alpha + T) * np.asarray(t, dtype=float)
        return pd.Series(values, index=data.index) if draws is None else values

    def probability_alive(self, data, *, draws=None):
        if draws is None:
            return pd.Series(1.0, index=data.index)
        return np.ones((len(draws), len(data)))

    def expected_purchases_new_customer(self, t, data=None, *, draws=None):
        r, alpha = self._params(draws)
        values = r / alpha * np.asarray(t, dtype=float)
        if data is not None and draws is None:
            return pd.Series(np.broadcast_to(values, (len(data),)), index=data.index)
        return values

    def probability_of_purchases(self, n, t, data=None, *, draws=None):
        r, alpha = self._params(draws)
        values = nbd_pmf(np.asarray(n, float), np.asarray(t, float), r, alpha)
        if data is not None and draws is None:
            return pd.Series(np.broadcast_to(values, (len(data),)), index=data.index)
        return values

    def simulate_purchases(self, t, data, *, draws, random_state=None):
        rng = np.random.default_rng(random_state)
        r, alpha = self._params(draws)
        x, T = (data[c].to_numpy(dtype=float) for c in ("frequency", "T"))
        shape = (1 if draws is None else len(draws), len(data))
        # Given x purchases in T, the rate is Gamma(r + x, alpha + T).
        rate = rng.gamma(np.broadcast_to(r + x, shape)) / np.broadcast_to(alpha + T, shape)
        counts = rng.poisson(rate * t)
        owner = np.repeat(np.arange(counts.size), counts.ravel())
        return SimulatedPurchases(owner=owner, time=t * (1.0 - rng.random(owner.size)),
                                  shape=shape)


class ToyNBDWithRecency(ToyNBD):
    """A model whose future given alive *does* depend on recency: it may not declare
    ``alive_future_columns = ("frequency", "T")``."""

    data_columns = ("frequency", "recency", "T")

    def expected_purchases(self, t, data, *, draws=None):
        boost = 1.0 + 0.5 * data["recency"].to_numpy(float) / np.maximum(data["T"], 1.0)
        return super().expected_purchases(t, data, draws=draws) * boost.to_numpy()


# --------------------------------------------------------------------------------------
# Data simulated from the toy (and Gamma-Gamma spends)
# --------------------------------------------------------------------------------------
def simulate_nbd(n, seed):
    """A calibration / holdout split in weeks at daily resolution, with its log."""
    rng = np.random.default_rng(seed)
    days = rng.integers(20 * 7, 40 * 7 + 1, n)
    T = days / 7.0
    rate = rng.gamma(TRUE_NBD["r"], 1.0 / TRUE_NBD["alpha"], n)
    x = rng.poisson(rate * T)
    last = np.where(x > 0, np.floor(days * rng.beta(np.maximum(x, 1), 1.0)) / 7.0, 0.0)
    x_holdout = rng.poisson(rate * HOLDOUT)
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["gamma"], n)

    def mean_spend(k):
        return np.where(k > 0, rng.gamma(TRUE_GG["p"] * np.maximum(k, 1)) / nu
                        / np.maximum(k, 1), 0.0)  # fmt: skip

    data = pd.DataFrame(
        {
            "frequency": x,
            "recency": np.minimum(last, T),
            "T": T,
            "monetary_value": mean_spend(x),
            "frequency_holdout": x_holdout,
            "monetary_value_holdout": mean_spend(x_holdout),
            "duration_holdout": HOLDOUT,
        },
        index=pd.Index(np.arange(1, n + 1), name="customer_id"),
    )
    data.attrs["time_unit"] = "W"
    return data


@pytest.fixture(scope="module")
def split():
    return simulate_nbd(4000, seed=7)


@pytest.fixture(scope="module")
def fitted(split):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spend is independent of frequency here
        return ToyNBD().fit(split), GammaGamma().fit(split)


def closed_form_clv(toy, spend, data, calendar, draws=None, spend_draws=None):
    """(r + x) / (alpha + T) per time unit, the same in every period, times the spend."""
    rate = toy.expected_purchases(t=1.0, data=data, draws=draws)
    per_period = np.asarray(rate) * calendar.period_length("W")
    spend_values = np.asarray(spend.expected_spend(data=data, draws=spend_draws))
    return per_period * calendar.discount_factors().sum() * spend_values


# --------------------------------------------------------------------------------------
# The contract itself
# --------------------------------------------------------------------------------------
def test_the_toy_implements_the_contract_without_any_clvmodels_class(fitted):
    toy, spend = fitted
    assert ToyNBD.__mro__ == (ToyNBD, object)
    assert isinstance(toy, TransactionModel) and not isinstance(toy, SpendModel)
    assert isinstance(spend, SpendModel)
    # It learns the parameters it was simulated with (4,000 customers).
    se = toy.summary()["se"]
    for name, value in TRUE_NBD.items():
        assert abs(toy.params_[name] - value) < 4 * se[name]


@pytest.mark.parametrize("which", ["toy", "bgnbd"])
def test_simulated_purchases_average_to_the_expected_purchases(fitted, split, which):
    # What predictive intervals rest on, for any model: the simulator and the closed
    # form describe the same future (4 standard errors, 20,000 futures per customer).
    if which == "toy":
        model = fitted[0]
    else:
        model = BetaGeo()
        model._set_fitted({"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259},
                          covariance_log=np.eye(4) * 1e-24, time_unit="W")
    rows = split.iloc[:6]
    draws = pd.concat([model.param_draws(1, random_state=0)] * 20_000, ignore_index=True)
    sims = model.simulate_purchases(t=HOLDOUT, data=rows, draws=draws, random_state=1)
    assert np.all((sims.time > 0) & (sims.time <= HOLDOUT))
    counts = sims.counts()
    expected = model.expected_purchases(t=HOLDOUT, data=rows, draws=draws)[0]
    se = counts.std(axis=0) / np.sqrt(counts.shape[0])
    assert np.all(np.abs(counts.mean(axis=0) - expected) < 4 * se + 1e-12)


def test_simulated_spend_averages_to_the_expected_spend(fitted, split):
    toy, spend = fitted
    rows = split.iloc[:6]
    n = 20_000
    sims = toy.simulate_purchases(t=HOLDOUT, data=rows, draws=toy.param_draws(n, 0),
                                  random_state=1)
    spend_draws = spend.param_draws(n, random_state=3)
    values = spend.simulate_spend(sims, rows, draws=spend_draws, random_state=2)
    assert values.shape == sims.time.shape and np.all(values > 0)
    # Per customer, the value of a purchase averages (over purchases and draws) to the
    # expected spend averaged over the draws.
    row = sims.owner % len(rows)
    draw = sims.owner // len(rows)
    expected = spend.expected_spend(data=rows, draws=spend_draws)[draw, row]
    np.testing.assert_allclose(
        np.bincount(row, values) / np.bincount(row, expected), 1.0, atol=0.03
    )


# --------------------------------------------------------------------------------------
# CLV, segments, comparison, plots on the toy
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def forecast(fitted, split):
    toy, spend = fitted
    return customer_lifetime_value(toy, spend, split, horizon=6, period="M",
                                   discount_rate=0.01, n_draws=400, random_state=5)


def test_toy_clv_is_its_closed_form_under_every_draw(fitted, split, forecast):
    toy, spend = fitted
    calendar = Calendar(6, "M", 0.01)
    table = forecast.table
    np.testing.assert_allclose(table["clv"], closed_form_clv(toy, spend, split, calendar),
                               rtol=1e-12)
    np.testing.assert_allclose(
        table["expected_purchases"],
        (toy.params_["r"] + split["frequency"]) / (toy.params_["alpha"] + split["T"])
        * calendar.length("W"),
        rtol=1e-12,
    )
    np.testing.assert_array_equal(table["probability_alive"], 1.0)
    # Parameter intervals: quantiles of the closed form under the forecast's own draws.
    per_draw = closed_form_clv(toy, spend, split, calendar, forecast.scorer.transaction_draws,
                               forecast.scorer.spend_draws)
    lower, upper = np.quantile(per_draw, [0.05, 0.95], axis=0)
    np.testing.assert_allclose(table["clv_lower"], lower, rtol=1e-10)
    np.testing.assert_allclose(table["clv_upper"], upper, rtol=1e-10)
    np.testing.assert_allclose(forecast.draw_totals, per_draw.sum(axis=1), rtol=1e-10)


def test_both_clv_routes_give_the_same_numbers(fitted, split, forecast):
    # alive_future_columns=None: no factorisation, expected_purchases on distinct rows.
    _, spend = fitted
    plain = ToyNBD(alive_future_columns=None).fit(split)
    again = customer_lifetime_value(plain, spend, split, horizon=6, period="M",
                                    discount_rate=0.01, n_draws=400, random_state=5)
    pd.testing.assert_frame_equal(again.table, forecast.table, rtol=1e-12)


def test_a_wrong_factorisation_is_caught_and_none_is_right(fitted, split):
    _, spend = fitted
    wrong = ToyNBDWithRecency().fit(split)
    with pytest.raises(RuntimeError, match="alive_future_columns"):
        customer_lifetime_value(wrong, spend, split, n_draws=10, random_state=0)
    honest = ToyNBDWithRecency(alive_future_columns=None).fit(split)
    fc = customer_lifetime_value(honest, spend, split, horizon=3, n_draws=10, random_state=0)
    calendar = Calendar(3, "M", 0.01)
    r, alpha = honest.params_["r"], honest.params_["alpha"]
    rate = (r + split["frequency"]) / (alpha + split["T"]) * (1 + 0.5 * split["recency"]
                                                               / split["T"])
    expected = (rate * calendar.period_length("W") * calendar.discount_factors().sum()
                * spend.expected_spend(data=split))
    np.testing.assert_allclose(fc.table["clv"], expected, rtol=1e-12)


def test_toy_predictive_intervals_cover_its_own_holdout(fitted, split):
    # Customers simulated from the toy: 90% of their realised holdout values must fall
    # in their 90% predictive intervals (binomial sd 0.005 over 4,000 customers, plus
    # the shared parameter error).
    toy, spend = fitted
    fc = customer_lifetime_value(toy, spend, split, horizon=39, period="W", discount_rate=0.0,
                                 n_draws=500, predictive=True, random_state=8)
    realised = split["frequency_holdout"] * split["monetary_value_holdout"]
    t = fc.table
    coverage = float(((realised >= t["clv_pred_lower"]) & (realised <= t["clv_pred_upper"]))
                     .mean())
    assert 0.87 <= coverage <= 0.93, coverage
    # The simulated futures average to the expected value (the closed form).
    se = fc.predictive_totals.std() / np.sqrt(fc.n_draws)
    assert abs(fc.predictive_totals.mean() - fc.draw_totals.mean()) < 4 * se
    total = fc.total()
    assert total["clv_pred_lower"] < total["clv"] < total["clv_pred_upper"]
    # Realised tiers through the contract's simulators alone: every draw puts exactly
    # a tenth of the 4,000 customers in the top tier (ties at zero split evenly).
    seg = segment(fc).customers
    assert seg["tier_probability_realised"].between(0, 1).all()
    assert seg["top_tier_probability_realised"].mean() == pytest.approx(0.1, abs=1e-9)


def test_segment_the_toy(forecast):
    seg = segment(forecast)
    clv = forecast.table["clv"].to_numpy()
    tiers = rank_share_tiers(clv, np.ones(clv.size), np.array([0.1, 0.3, 0.6]))
    np.testing.assert_array_equal(seg.customers["tier"].cat.codes, tiers)
    assert seg.tiers["clv_total"].sum() == pytest.approx(clv.sum(), rel=1e-12)
    # Nobody ever drops out: every customer is "active".
    assert (seg.customers["activity"] == "active").all()
    assert seg.customers["tier_probability"].between(0, 1).all()


def test_compare_fits_and_scores_the_toy(split):
    toy, spend = ToyNBD(), GammaGamma()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = compare({"NBD": (toy, spend)}, split, n_draws=200, progressbar=False)
    row = table.loc["NBD"]
    assert toy.is_fitted and row["fit_seconds"] > 0
    rate = (toy.params_["r"] + split["frequency"]) / (toy.params_["alpha"] + split["T"])
    assert row["purchases_expected"] == pytest.approx((rate * HOLDOUT).sum(), rel=1e-12)
    assert row["purchases_actual"] == split["frequency_holdout"].sum()
    assert row["log_likelihood"] == pytest.approx(toy.log_likelihood_)
    assert 0.86 <= row["value_interval_coverage"] <= 0.94
    assert table.attrs["horizon"] == 39 and table.attrs["period"] == "W"


def test_evaluation_checks_and_plots_take_the_toy(fitted, split):
    toy, _ = fitted
    r, alpha = toy.params_["r"], toy.params_["alpha"]
    # Repeat-purchase histogram: sum over customers of the NB pmf at their own T.
    hist = repeat_purchase_histogram(toy, split)
    direct = [nbd_pmf(n, split["T"].to_numpy(), r, alpha).sum() for n in range(7)]
    np.testing.assert_allclose(hist["expected"].iloc[:7], direct, rtol=1e-10)
    ax = P.plot_repeat_purchase_histogram(toy, split)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights[8:15], direct, rtol=1e-10)
    # Conditional expectations by calibration frequency.
    cond = conditional_expectations_by_frequency(toy, split)
    expected = ((r + split["frequency"]) / (alpha + split["T"]) * HOLDOUT).groupby(
        np.minimum(split["frequency"], 7)).mean()
    np.testing.assert_allclose(cond["expected"], expected, rtol=1e-12)
    # Frequency-recency map: no dependence on recency, (r + x) / (alpha + T) t along x.
    ax = P.plot_frequency_recency_matrix(toy, split, t=4.0, T=30.0, max_frequency=5)
    image = ax.images[0].get_array()
    np.testing.assert_allclose(image[:, 0], (r + np.arange(6)) / (alpha + 30.0) * 4.0)
    np.testing.assert_allclose(image, np.repeat(image[:, :1], image.shape[1], axis=1))
    plt.close("all")


def test_tracking_takes_the_toy(fitted):
    # A small log: 300 customers acquired over 8 weeks, buying for 20 weeks after.
    toy, _ = fitted
    rng = np.random.default_rng(3)
    first = rng.integers(0, 56, 300)
    n_repeat = rng.poisson(0.1 * 20, 300)
    customer = np.concatenate([np.arange(300), np.repeat(np.arange(300), n_repeat)])
    day = np.concatenate([first, np.repeat(first, n_repeat) + rng.integers(1, 140,
                                                                            n_repeat.sum())])
    log = pd.DataFrame({"customer_id": customer,
                        "date": pd.Timestamp("2024-01-01") + pd.to_timedelta(day, "D")})
    track = expected_cumulative_purchases(toy, log, "customer_id", "date")
    start = log["date"].min()
    bounds = (track["t"].to_numpy() * 7)[:, None]
    age = (log.groupby("customer_id")["date"].min() - start).dt.days.to_numpy()[None, :]
    exposure = np.clip(bounds - age, 0, None) / 7
    direct = (toy.params_["r"] / toy.params_["alpha"] * exposure).sum(axis=1)
    np.testing.assert_allclose(track["expected"], direct, rtol=1e-10)
    assert track.attrs["time_unit"] == "W"
