"""GammaGammaTransactions: the likelihood against pymc-marketing, quadrature and scipy;
its exact relation to GammaGamma; CDNOW; recovery from simulated logs; properties; bad
input; persistence."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from clvmodels import (
    BetaGeo,
    GammaGamma,
    GammaGammaTransactions,
    customer_lifetime_value,
    load,
    rfm_summary,
)
from clvmodels.errors import DataValidationError
from clvmodels.models import ops
from clvmodels.models.base import SimulatedPurchases
from clvmodels.models.gamma_gamma import gamma_gamma_log_likelihood
from clvmodels.models.gamma_gamma_transactions import (
    gamma_gamma_transactions_log_likelihood,
    gamma_gamma_transactions_neg_loglik_grad,
    log_density_values_given_mean,
)
from clvmodels.simulate import simulate_transactions

COLUMNS = ("frequency", "monetary_value", "monetary_log_mean")
FHL = {"p": 6.25, "q": 3.74, "gamma": 15.44}  # the mean-based CDNOW estimates (FHL 2005)
BGNBD = {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43}  # CDNOW BG/NBD (FHL 2005)


@pytest.fixture(scope="module")
def summary(cdnow_transactions):
    return rfm_summary(cdnow_transactions, "customer_id", "date", "amount",
                       observation_end="1997-09-30", log_spend=True)


@pytest.fixture(scope="module")
def buyers(summary):
    return summary[summary["frequency"] > 0]


@pytest.fixture(scope="module")
def repeat_values(cdnow_transactions):
    """The values of each CDNOW customer's repeat purchase days, by customer id."""
    log = cdnow_transactions[cdnow_transactions["date"] <= "1997-09-30"]
    days = log.groupby(["customer_id", log["date"].dt.normalize()])["amount"].sum()
    return days.groupby(level=0).apply(lambda s: s.to_numpy()[1:])


@pytest.fixture(scope="module")
def fitted(summary):
    return GammaGammaTransactions().fit(summary)


def _columns(frame):
    return {c: frame[c].to_numpy(dtype=float) for c in COLUMNS}


# --------------------------------------------------------------------------------------
# The likelihood: pymc-marketing, quadrature, scipy
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "reference"),
    [(FHL, -10871.50914071015), ({"p": 1.0, "q": 2.0, "gamma": 5.0}, -13499.330774400922)],
)
def test_total_log_likelihood_agrees_with_pymc_marketing(buyers, params, reference):
    """pymc-marketing 0.19.2, ``clv.GammaGammaModelIndividual`` (latent ``nu`` per
    customer, HalfFlat priors) built on the repeat-day values of CDNOW's 946 repeat
    buyers: ``model.compile_logp(jacobian=False)`` at the parameters and any ``nu``,
    minus the log density of ``nu``'s conjugate posterior ``Gamma(px+q, gamma + x m_x)``,
    is the marginal likelihood (the same for every ``nu``; two draws gave these numbers
    to 1e-15). benchmarks/bench_mle.py recomputes them where pymc-marketing is
    installed. 946 terms of ~10 each: agreement to 1e-12 relative is their rounding."""
    ours = gamma_gamma_transactions_log_likelihood(**params, **_columns(buyers)).sum()
    assert ours == pytest.approx(reference, rel=1e-12)


def test_likelihood_is_the_integral_over_nu(repeat_values, buyers):
    """Per customer, against quadrature of ``prod Gamma(z_j; p, nu) Gamma(nu; q, gamma)``
    over ``nu`` (scipy), and against the conjugacy identity ``log p(z, nu) - log p(nu |
    z)`` at two values of ``nu`` (scipy's gamma densities)."""
    p, q, gamma = FHL.values()
    ours = gamma_gamma_transactions_log_likelihood(p, q, gamma, **_columns(buyers))
    shown = buyers.index[:40]
    for position, cid in enumerate(shown):
        z = repeat_values.loc[cid]
        x, total = len(z), z.sum()
        assert x == buyers.loc[cid, "frequency"]
        shape, rate = p * x + q, gamma + total
        mode = (shape - 1) / rate

        def density(nu, z=z, scale=ours[position]):
            log = stats.gamma.logpdf(z, p, scale=1 / nu).sum()
            return np.exp(log + stats.gamma.logpdf(nu, q, scale=1 / gamma) - scale)

        # The integrand, scaled by the likelihood itself, integrates to 1.
        value = sum(integrate.quad(density, lo, hi, limit=200, epsabs=1e-13, epsrel=1e-11)[0]
                    for lo, hi in ((0, mode), (mode, np.inf)))
        assert value == pytest.approx(1.0, rel=1e-8)
        for nu in (mode, 2 * mode):
            joint = stats.gamma.logpdf(z, p, scale=1 / nu).sum() + stats.gamma.logpdf(
                nu, q, scale=1 / gamma)
            posterior = stats.gamma.logpdf(nu, shape, scale=1 / rate)
            assert joint - posterior == pytest.approx(ours[position], rel=1e-12, abs=1e-10)


# --------------------------------------------------------------------------------------
# The exact relation to GammaGamma
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [FHL, {"p": 0.3, "q": 1.5, "gamma": 200.0},
                                    {"p": 40.0, "q": 12.0, "gamma": 2.0}])
def test_likelihoods_differ_by_the_density_of_the_values_given_their_mean(buyers, params):
    data = _columns(buyers)
    individual = gamma_gamma_transactions_log_likelihood(**params, **data)
    mean_based = gamma_gamma_log_likelihood(**params, frequency=data["frequency"],
                                            monetary_value=data["monetary_value"])
    term = log_density_values_given_mean(params["p"], **data)
    # terms of ~10-100: the identity holds to their rounding
    np.testing.assert_allclose(individual - mean_based, term, rtol=1e-10, atol=1e-10)
    # the term depends on p and the data only
    other = {**params, "q": params["q"] * 3, "gamma": params["gamma"] / 7}
    np.testing.assert_allclose(
        gamma_gamma_transactions_log_likelihood(**other, **data)
        - gamma_gamma_log_likelihood(**other, frequency=data["frequency"],
                                     monetary_value=data["monetary_value"]),
        term, rtol=1e-10, atol=1e-10,
    )
    # 0 for one value (up to the rounding of m_x, the total less the first purchase)
    np.testing.assert_allclose(term[data["frequency"] == 1], 0.0, atol=1e-12)


def test_the_term_is_a_dirichlet_density(repeat_values, buyers):
    """Values ``Gamma(p, nu)`` divided by their sum are ``Dirichlet(p, ..., p)`` whatever
    ``nu``; with the change of variables to the values given their mean that is the
    term above (scipy's Dirichlet density as the oracle)."""
    p = 2.7
    several = buyers.index[buyers["frequency"] >= 2][:30]
    term = log_density_values_given_mean(p, **_columns(buyers.loc[several]))
    for value, cid in zip(term, several, strict=True):
        z = repeat_values.loc[cid]
        x, s = len(z), z.sum()
        expected = stats.dirichlet.logpdf(z / s, np.full(x, p)) - (x - 1) * np.log(s) - np.log(x)
        assert value == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_single_repeat_purchases_give_the_gamma_gamma_fit(buyers):
    """Where every customer has one repeat purchase the likelihoods are equal, term for
    term, and so are the fits."""
    single = buyers[buyers["frequency"] == 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # weakly identified p: wide SEs
        ours = GammaGammaTransactions().fit(single)
        theirs = GammaGamma().fit(single)
    np.testing.assert_allclose(ours.params_, theirs.params_, rtol=1e-6)
    assert ours.log_likelihood_ == pytest.approx(theirs.log_likelihood_, rel=1e-12)


def test_predictions_coincide_with_gamma_gamma_at_equal_parameters(summary):
    ours = GammaGammaTransactions.from_params({"p": 3.0, "q": 4.0, "gamma": 30.0})
    theirs = GammaGamma.from_params({"p": 3.0, "q": 4.0, "gamma": 30.0})
    pd.testing.assert_series_equal(ours.expected_spend(data=summary),
                                   theirs.expected_spend(data=summary), check_exact=True)
    draws = pd.DataFrame({"p": [2.0, 3.0, 5.0], "q": [3.0, 4.0, 1.5], "gamma": [9.0, 30.0, 2.0]})
    np.testing.assert_array_equal(ours.expected_spend(data=summary, draws=draws),
                                  theirs.expected_spend(data=summary, draws=draws))
    sims = BetaGeo.from_params(BGNBD).simulate_purchases(52, summary, draws=None,
                                                         random_state=3)
    np.testing.assert_array_equal(
        ours.simulate_spend(sims, summary, draws=None, random_state=4),
        theirs.simulate_spend(sims, summary, draws=None, random_state=4),
    )
    # and so does CLV with intervals, through the public contract only
    mean_based = GammaGamma().fit(summary)
    state = {"covariance": mean_based.covariance_log_.to_numpy(), "time_unit": "W"}
    ours = GammaGammaTransactions.from_params(mean_based.params_, **state)
    theirs = GammaGamma.from_params(mean_based.params_, **state)
    bg = BetaGeo().fit(summary)
    settings_ = {"horizon": 12, "period": "M", "n_draws": 200, "random_state": 0}
    pd.testing.assert_frame_equal(customer_lifetime_value(bg, ours, summary, **settings_).table,
                                  customer_lifetime_value(bg, theirs, summary, **settings_).table)


# --------------------------------------------------------------------------------------
# CDNOW
# --------------------------------------------------------------------------------------
def test_cdnow_fit(fitted, buyers):
    """On the 946 repeat buyers of Fader, Hardie & Lee (2005): the optimum (checked with
    an independent optimiser), the population mean spend of about $35 that the
    mean-based fit also gives (FHL: $35.22), and a much sharper estimate of p."""
    assert fitted.n_obs_ == 946 and fitted.n_excluded_ == 2357 - 946
    data = _columns(buyers)

    def neg_loglik(z):
        return -gamma_gamma_transactions_log_likelihood(*np.exp(z), **data).sum()

    reference = optimize.minimize(neg_loglik, np.log([1.0, 2.0, 10.0]), method="Nelder-Mead",
                                  options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 20_000})
    np.testing.assert_allclose(np.log(fitted.params_.to_numpy()), reference.x, atol=1e-5)
    assert fitted.log_likelihood_ == pytest.approx(-reference.fun, rel=1e-12)
    assert fitted.params_.round(3).to_dict() == {"p": 3.61, "q": 4.486, "gamma": 34.083}
    p, q, gamma = fitted.params_
    assert p * gamma / (q - 1) == pytest.approx(35.3, abs=0.1)
    mean_based = GammaGamma().fit(buyers).summary()
    assert fitted.summary().loc["p", "se"] < mean_based.loc["p", "se"] / 5


def test_analytic_gradient_equals_automatic_gradient(fitted, buyers):
    arrays = _columns(buyers)
    weights = np.linspace(0.5, 2.0, len(buyers))
    for theta in (np.log([3.6, 4.5, 34.0]), np.log([0.2, 1.2, 500.0]), np.log([50.0, 20.0, 1.0])):
        value, grad = fitted._neg_loglik_grad(theta, fitted._with_cache(arrays, weights), weights)
        auto_value, auto_grad = fitted.automatic_neg_loglik_grad(theta, arrays, weights)
        assert value == pytest.approx(auto_value, rel=1e-12)
        np.testing.assert_allclose(grad, auto_grad, rtol=1e-9, atol=1e-9 * abs(value))
        assert gamma_gamma_transactions_neg_loglik_grad(
            theta, *arrays.values(), weights)[0] == pytest.approx(value, rel=1e-12)


def test_pytensor_likelihood_matches_numpy(buyers):
    import pytensor
    import pytensor.tensor as pt

    data = _columns(buyers)

    def total(theta, namespace):
        p, q, gamma = (namespace.exp(v) for v in theta)
        return gamma_gamma_transactions_log_likelihood(p, q, gamma, **data,
                                                       ops=namespace).sum()

    theta = np.log([3.6, 4.5, 34.0])
    value, grad = ops.value_and_grad(lambda t: total(t, ops.DUAL), theta)
    variable = pt.dvector("theta")
    graph = total([variable[i] for i in range(3)], ops.pytensor_ops())
    pt_value, pt_grad = pytensor.function([variable], [graph, pytensor.grad(graph, variable)])(
        theta)
    assert value == pytest.approx(float(pt_value), rel=1e-12)
    # PyTensor's digamma is a series accurate to about 1e-10 relative, and each gradient
    # entry (~20) sums 946 digamma terms of ~5 that mostly cancel: agreement to 1e-6.
    np.testing.assert_allclose(grad, pt_grad, rtol=1e-6)


# --------------------------------------------------------------------------------------
# Simulated transaction logs
# --------------------------------------------------------------------------------------
def _simulated(n, truth, seed, **kwargs):
    log = simulate_transactions(n, BGNBD, truth, random_state=seed, **kwargs)
    return log, rfm_summary(log, "customer_id", "date", "amount",
                            observation_end=log.attrs["observation_end"], log_spend=True)


def test_simulated_logs_have_one_purchase_per_customer_and_day():
    log = simulate_transactions(5_000, BGNBD, FHL, weeks=52, acquisition_weeks=4,
                                random_state=2, return_latent=True)
    assert not log.duplicated(["customer_id", "date"]).any()
    assert log["customer_id"].nunique() == 5_000 and (log["amount"] > 0).all()
    first = log.groupby("customer_id")["date"].min()
    assert first.min() == pd.Timestamp("2020-01-06") and first.max() < pd.Timestamp("2020-02-03")
    assert log["date"].max() <= pd.Timestamp(log.attrs["observation_end"]) == pd.Timestamp(
        "2020-01-06") + pd.Timedelta(days=52 * 7 - 1)
    assert (log.groupby("customer_id")["nu"].nunique() == 1).all()
    # E[X(T)] repeat purchases per customer (BG/NBD, FHL 2005 eq. 7, at each customer's
    # T) within Monte-Carlo error; same-day purchases merge, which removes about 1%
    counts = log.groupby("customer_id").size() - 1
    T = (pd.Timestamp(log.attrs["observation_end"]) - first).dt.days / 7
    expected = BetaGeo.from_params(BGNBD).expected_purchases_new_customer(t=T.to_numpy())
    error = counts.mean() - np.mean(expected)
    assert abs(error) < 4 * counts.std() / np.sqrt(len(counts)), error
    with pytest.raises(ValueError, match="must not exceed"):
        simulate_transactions(10, BGNBD, FHL, weeks=4, acquisition_weeks=5)


def test_recovers_parameters_from_simulated_transactions():
    truth = {"p": 4.0, "q": 5.0, "gamma": 30.0}
    _, data = _simulated(30_000, truth, seed=4)
    model = GammaGammaTransactions().fit(data)
    table = model.summary(interval=0.999)
    for name, value in truth.items():
        assert table.loc[name, "lower 99.9%"] <= value <= table.loc[name, "upper 99.9%"]
    # the individual values pin p down far better than their means
    mean_based = GammaGamma().fit(data).summary()
    assert table.loc["p", "se"] < mean_based.loc["p", "se"] / 2


def test_interval_coverage_on_simulated_logs():
    """95% intervals of 60 fits on independent logs cover each parameter about 57 times
    (binomial sd 1.7); fewer than 51 would be a 3.5-sd miss."""
    truth = {"p": 2.0, "q": 6.0, "gamma": 40.0}
    hits = pd.Series(0, index=list(truth))
    for seed in range(60):
        _, data = _simulated(3_000, truth, seed=100 + seed)
        table = GammaGammaTransactions().fit(data).summary(interval=0.95)
        for name, value in truth.items():
            hits[name] += table.loc[name, "lower 95%"] <= value <= table.loc[name, "upper 95%"]
    assert (hits >= 51).all(), hits.to_dict()


def test_expected_spend_is_the_posterior_mean_of_the_true_spend():
    """Given the truth, E[p / nu | data] averaged over customers equals the average of
    the latent p / nu within Monte-Carlo error (the simulator's nu)."""
    truth = {"p": 3.0, "q": 4.0, "gamma": 20.0}
    log, data = _simulated(40_000, truth, seed=9, return_latent=True)
    true_spend = truth["p"] / log.groupby("customer_id")["nu"].first()
    predicted = GammaGammaTransactions.from_params(truth).expected_spend(data=data)
    buyers = data["frequency"] > 0
    difference = (predicted - true_spend.loc[data.index])[buyers]
    assert abs(difference.mean()) < 4 * difference.std() / np.sqrt(buyers.sum())


def test_simulated_spend_matches_the_expected_spend_under_draws():
    """Each (draw, customer) pair draws its nu from the posterior and all its purchases
    from Gamma(p, nu): averaged over 300 pairs per customer and draw setting, the
    simulated mean value is the closed-form expected spend within Monte-Carlo error
    (pair means spread by about spend / sqrt(p x + q - 2), the posterior of p / nu)."""
    truth = {"p": 3.0, "q": 4.0, "gamma": 20.0}
    _, data = _simulated(2_000, truth, seed=11)
    rows = data[data["frequency"] > 0].iloc[:4]
    model = GammaGammaTransactions.from_params(truth)
    draws = pd.DataFrame({"p": [3.0, 2.0] * 150, "q": [4.0, 6.0] * 150,
                          "gamma": [20.0, 50.0] * 150})
    # 200 purchases by every (draw, customer) pair
    pairs = len(draws) * len(rows)
    sims = SimulatedPurchases(owner=np.repeat(np.arange(pairs), 200),
                              time=np.tile(np.linspace(0.01, 2.0, 200), pairs),
                              shape=(len(draws), len(rows)))
    values = model.simulate_spend(sims, rows, draws=draws, random_state=6)
    counts = sims.counts()
    pair_mean = np.bincount(sims.owner, weights=values, minlength=counts.size).reshape(
        counts.shape) / counts
    expected = model.expected_spend(data=rows, draws=draws)
    shape = draws["p"].to_numpy()[:, None] * rows["frequency"].to_numpy() + draws[
        "q"].to_numpy()[:, None]
    for setting in (0, 1):
        pick = slice(setting, None, 2)
        error = (pair_mean[pick] - expected[pick]).mean(axis=0)
        sd = (expected[pick] / np.sqrt(shape[pick] - 2)).mean(axis=0) / np.sqrt(150)
        assert np.all(np.abs(error) < 5 * sd), (error, sd)


# --------------------------------------------------------------------------------------
# Properties on extreme valid data
# --------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=10_000),
    st.floats(min_value=1e-3, max_value=1e6),
    st.floats(min_value=0.0, max_value=30.0),
    st.tuples(
        st.floats(min_value=1e-2, max_value=1e3),
        st.floats(min_value=1.01, max_value=1e3),
        st.floats(min_value=1e-2, max_value=1e4),
    ),
)
def test_log_likelihood_is_finite_and_spend_shrinks(x, m, spread, params):
    p, q, gamma = params
    log_mean = np.log(m) - (spread if x > 1 else 0.0)  # Jensen: <= log m, = for x = 1
    value = gamma_gamma_transactions_log_likelihood(p, q, gamma, x, m, log_mean)
    assert np.isfinite(value)
    term = log_density_values_given_mean(p, x, m, log_mean)
    assert value == pytest.approx(gamma_gamma_log_likelihood(p, q, gamma, x, m) + term,
                                  rel=1e-9, abs=1e-6 * (1 + abs(value)))
    model = GammaGammaTransactions.from_params({"p": p, "q": q, "gamma": gamma})
    row = pd.DataFrame({"frequency": [x], "monetary_value": [m], "monetary_log_mean": [log_mean]})
    spend = float(model.expected_spend(data=row).iloc[0])
    low, high = sorted((p * gamma / (q - 1), m))
    assert low * (1 - 1e-9) <= spend <= high * (1 + 1e-9)


# --------------------------------------------------------------------------------------
# Customers the fit leaves out, bad input, persistence
# --------------------------------------------------------------------------------------
def test_non_positive_repeat_periods_are_excluded_counted_and_scored():
    """The full CDNOW cohort has 8 repeat buyers with a repeat day worth $0.00: no log.
    They are left out (counted, named in a warning), get the population mean spend,
    and the fit equals that on the other customers; strict=True refuses them."""
    from clvmodels import load_cdnow

    summary = rfm_summary(load_cdnow(sample=False), "customer_id", "date", "amount",
                          observation_end="1998-06-30", log_spend=True)
    no_log = summary.index[summary["monetary_log_mean"].isna()]
    assert len(no_log) == 8 == summary.attrs["n_customers_nonpositive_repeat_period"]
    assert (summary.loc[no_log, "monetary_value"] > 0).sum() == 7  # GammaGamma keeps these
    with pytest.warns(UserWarning, match=r"8 of 23570 customers have a repeat purchase period"):
        model = GammaGammaTransactions().fit(summary)
    assert model.exclusions_ == {
        "no repeat purchase": int((summary["frequency"] == 0).sum()),
        "non-positive repeat purchase value": 8,
    }
    assert model.n_excluded_ == sum(model.exclusions_.values())
    p, q, gamma = model.params_
    spend = model.expected_spend(data=summary)
    np.testing.assert_allclose(spend.loc[no_log], p * gamma / (q - 1), rtol=1e-12)
    usable = summary[(summary["frequency"] > 0) & summary["monetary_log_mean"].notna()]
    np.testing.assert_allclose(GammaGammaTransactions().fit(usable).params_, model.params_,
                               rtol=1e-9)
    with pytest.raises(DataValidationError, match="8 of 23570 rows are NaN"):
        GammaGammaTransactions(strict=True).fit(summary)
    sims = BetaGeo.from_params(BGNBD).simulate_purchases(52, summary.loc[no_log], draws=None,
                                                         random_state=1)
    values = model.simulate_spend(sims, summary.loc[no_log], draws=None, random_state=2)
    assert values.shape == sims.time.shape and np.all(values > 0)


def test_needs_the_log_column_and_checks_it(summary, fitted):
    plain = summary.drop(columns="monetary_log_mean")
    with pytest.raises(DataValidationError, match=r"log_spend=True"):
        GammaGammaTransactions().fit(plain)
    with pytest.raises(DataValidationError, match=r"log_spend=True"):
        fitted.expected_spend(data=plain)
    one = summary.index[summary["frequency"] == 1][0]
    two = summary.index[summary["frequency"] == 2][0]
    x, m = summary["frequency"], summary["monetary_value"]
    wrong = {
        "log of the total": summary.assign(
            monetary_log_mean=np.log((m * x).where(x > 0, 1.0))),
        "base 10": summary.assign(monetary_log_mean=summary["monetary_log_mean"] / np.log(10)),
        "one customer": summary.assign(monetary_log_mean=summary["monetary_log_mean"].where(
            summary.index != two, summary.loc[two, "monetary_log_mean"] + 1.0)),
    }
    for frame in wrong.values():
        with pytest.raises(DataValidationError, match="does not fit 'monetary_value'"):
            GammaGammaTransactions().fit(frame)
    assert np.log10(summary.loc[one, "monetary_value"]) != summary.loc[one, "monetary_log_mean"]
    with pytest.raises(DataValidationError, match="infinite"):
        GammaGammaTransactions().fit(summary.assign(monetary_log_mean=-np.inf))
    with pytest.raises(DataValidationError, match="must be numeric"):
        GammaGammaTransactions().fit(summary.assign(monetary_log_mean="x"))
    few = summary[summary["frequency"] == 0].head(5)
    with pytest.raises(DataValidationError, match="found 0 among 5"):
        GammaGammaTransactions().fit(few)
    with pytest.raises(ValueError, match="strict must be True or False"):
        GammaGammaTransactions(strict="yes").fit(summary)
    with pytest.raises(TypeError, match="lifetimes has no transaction-level"):
        GammaGammaTransactions.from_lifetimes(object())


def test_save_load_round_trip_and_draws(fitted, summary, tmp_path):
    loaded = load(fitted.save(tmp_path / "ggt.json"))
    assert isinstance(loaded, GammaGammaTransactions)
    assert loaded.exclusions_ == fitted.exclusions_
    pd.testing.assert_series_equal(loaded.expected_spend(data=summary),
                                   fitted.expected_spend(data=summary))
    draws = loaded.param_draws(500, random_state=0)
    spend = loaded.expected_spend(data=summary, draws=draws)
    assert spend.shape == (500, len(summary)) and np.all(np.isfinite(spend))
    assert loaded.data_columns == ("frequency", "monetary_value", "monetary_log_mean")
