"""Bayesian BG/NBD and Gamma-Gamma: likelihood agreement, published values,
parameter recovery and coverage, shrinkage, LOO, persistence and bad input.

MCMC runs are kept small; the long statistical checks are marked ``slow``.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors

from clvmodels import BetaGeo, compress, load
from clvmodels.errors import DataValidationError, SamplingWarning
from clvmodels.models import bayes
from clvmodels.models._fused_rows import RowTermsOp
from clvmodels.models._pytensor_likelihoods import (
    BetaGeoStatistics,
    GammaGammaStatistics,
    bgnbd_pointwise,
    bgnbd_total_log_likelihood,
    gamma_gamma_pointwise,
    gamma_gamma_total_log_likelihood,
)
from clvmodels.models._sampling import _initial_point
from clvmodels.models.base import NotFittedError
from clvmodels.models.beta_geo import (
    bgnbd_expected_purchases,
    bgnbd_expected_purchases_new_customer,
    bgnbd_log_likelihood,
    bgnbd_neg_loglik_grad,
    bgnbd_probability_alive,
)
from clvmodels.models.gamma_gamma import gamma_gamma_expected_spend, gamma_gamma_log_likelihood
from clvmodels.models.hierarchical import (
    HierarchicalBetaGeo,
    HierarchicalGammaGamma,
    compare_loo,
)
from clvmodels.models.ops import NUMPY
from clvmodels.simulate import simulate_bgnbd

# Maximum-likelihood estimates on the CDNOW calibration data (FHL 2005; Fader &
# Hardie 2013 for the spend model).
BGNBD_MLE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
GAMMA_GAMMA_MLE = {"p": 6.25, "q": 3.74, "gamma": 15.44}
PARAMS = ("r", "alpha", "a", "b")


def _quiet_fit(model, data, **kwargs):
    kwargs.setdefault("progressbar", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return model.fit(data, **kwargs)


@pytest.fixture(scope="module")
def cohort_summary(cdnow_summary, cdnow_transactions):
    """CDNOW calibration summary with the acquisition month as a group."""
    first = cdnow_transactions.groupby("customer_id")["date"].min()
    frame = cdnow_summary.copy()
    frame["cohort"] = first.dt.strftime("%b").reindex(frame.index).to_numpy()
    return frame


@pytest.fixture(scope="module")
def pooled_bg(cdnow_summary):
    return HierarchicalBetaGeo().fit(cdnow_summary, random_state=11, progressbar=False)


@pytest.fixture(scope="module")
def pooled_gg(cdnow_summary):
    return HierarchicalGammaGamma().fit(cdnow_summary, random_state=12, progressbar=False)


# -- the PyTensor likelihood against the NumPy reference -------------------------------
def _grouped_rows(summary, n_groups=3):
    frame = summary.assign(grp=(summary["T"].round() % n_groups).astype(int))
    rows, weights, inverse = compress(frame, extra=["grp"])
    return frame, rows, weights, inverse


def test_bgnbd_pytensor_total_and_pointwise_match_reference(cdnow_summary):
    frame, rows, weights, inverse = _grouped_rows(cdnow_summary)
    stats = BetaGeoStatistics.from_rows(
        rows["grp"], rows["frequency"], rows["recency"], rows["T"], weights, 3
    )
    values = {
        "r": np.array([0.2, 0.3, 0.25]),
        "alpha": np.array([4.0, 5.0, 3.0]),
        "a": np.array([0.7, 0.9, 0.8]),
        "b": np.array([2.0, 3.0, 2.5]),
    }
    reference = bgnbd_log_likelihood(
        *(values[k][frame["grp"]] for k in PARAMS),
        frame["frequency"],
        frame["recency"],
        frame["T"],
    )
    for fused in (True, False):
        total = bgnbd_total_log_likelihood(
            *(pt.as_tensor(values[k]) for k in PARAMS), stats, fused=fused
        )
        assert float(total.eval()) == pytest.approx(reference.sum(), rel=1e-12)
    # Pointwise over a batch of two draws, expanded back to customers.
    batch = [np.stack([values[k], 1.1 * values[k]]) for k in PARAMS]
    pointwise = bgnbd_pointwise(*batch, stats)
    assert pointwise.shape == (2, len(rows))
    np.testing.assert_allclose(pointwise[0][inverse], reference, rtol=1e-12, atol=1e-12)
    # Gamma functions are evaluated per distinct (group, x), not per row.
    assert len(stats.count_x) < 0.1 * len(stats.row_x)


def test_bgnbd_pooled_graph_gives_published_likelihood_and_gradient(cdnow_summary):
    rows, weights, _ = compress(cdnow_summary)
    stats = BetaGeoStatistics.from_rows(
        np.zeros(len(rows), int), rows["frequency"], rows["recency"], rows["T"], weights, 1
    )
    log_params = pt.dvector("log_params")
    total = bgnbd_total_log_likelihood(
        *(pt.exp(log_params[i : i + 1]) for i in range(4)), stats
    )
    grad = pt.grad(total, log_params)
    mle = np.log([0.2426, 4.4136, 0.7929, 2.4259])
    value = float(total.eval({log_params: mle}))
    assert value == pytest.approx(-9582.43, abs=0.01)  # FHL 2005
    # The autodiff gradient equals the lead's analytic one, away from the optimum too.
    at = mle + np.array([0.1, -0.2, 0.3, -0.1])
    _, analytic = bgnbd_neg_loglik_grad(
        at,
        rows["frequency"].to_numpy(float),
        rows["recency"].to_numpy(float),
        rows["T"].to_numpy(float),
        weights,
    )
    np.testing.assert_allclose(grad.eval({log_params: at}), -analytic, rtol=1e-9)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_fused_row_terms_match_the_plain_graph_in_value_and_gradient(cdnow_summary, mode):
    _, rows, weights, _ = _grouped_rows(cdnow_summary)
    stats = BetaGeoStatistics.from_rows(
        rows["grp"], rows["frequency"], rows["recency"], rows["T"], weights, 3
    )
    log_params = pt.dmatrix("log_params")  # parameter x group
    params = [pt.exp(log_params[i]) for i in range(4)]
    at = np.log([[0.2, 0.3, 0.25], [4.0, 5.0, 3.0], [0.7, 0.9, 0.8], [2.0, 3.0, 2.5]])
    results = []
    for fused in (True, False):
        total = bgnbd_total_log_likelihood(*params, stats, fused=fused)
        fn = pytensor.function([log_params], [total, pt.grad(total, log_params)], mode=mode)
        results.append(fn(at))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-9, atol=1e-9)
    # Extreme but valid values stay finite: huge odds, tiny and huge alpha.
    total = bgnbd_total_log_likelihood(*params, stats)
    fn = pytensor.function([log_params], [total, pt.grad(total, log_params)], mode=mode)
    for shift in (-25.0, 25.0):
        value, grad = fn(at + np.array([[0.0], [shift], [shift], [-shift]]))
        assert np.isfinite(value) and np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    ("cls", "covariates"),
    [
        (HierarchicalBetaGeo, {}),
        (HierarchicalGammaGamma, {}),
        # pooled covariate coefficients join the whitened coordinates
        (HierarchicalBetaGeo, {"purchase_covariates": ["first_cds", "channel"],
                               "dropout_covariates": ["multi_cd"]}),
        (HierarchicalGammaGamma, {"spend_covariates": ["channel"]}),
    ],
)
def test_pooled_numpy_density_equals_the_pymc_model(cls, covariates, cdnow_covariates):
    model = cls(**covariates)
    prep = model._prepare(cdnow_covariates, "test")
    priors = model._resolve_priors(prep.centre, model._coefficient_scales(prep))
    log_density, expand, start = model._pooled_density(prep, priors)
    pymc_model, keep = model._build_model(prep, priors, "auto")
    logp = pymc_model.compile_logp()
    dlogp = pymc_model.compile_dlogp()
    deterministics = pymc_model.compile_fn(
        pymc_model.replace_rvs_by_values([pymc_model[k] for k in keep]),
        inputs=pymc_model.value_vars,
    )
    rng = np.random.default_rng(0)
    for v in [start, *rng.normal(0.0, 2.0, size=(5, len(start)))]:
        point = {"population_offset": v}
        value, grad = log_density(v)
        assert value == pytest.approx(float(logp(point)), rel=1e-10)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-7, atol=1e-6)
        want = np.ravel(np.concatenate([np.ravel(d) for d in deterministics(point)]))
        np.testing.assert_allclose(expand(v), want, rtol=1e-12)
    # Far out in the tails the density is -inf or finite, never NaN.
    value, grad = log_density(np.full(len(start), 1e3))
    assert not np.isnan(value) and np.all(np.isfinite(grad))


def test_gamma_gamma_pytensor_total_and_pointwise_match_reference(cdnow_summary):
    buyers = cdnow_summary[cdnow_summary["frequency"] > 0]
    frame = buyers.assign(grp=(buyers["T"].round() % 3).astype(int))
    rows, weights, inverse = compress(
        frame, columns=("frequency", "monetary_value"), extra=["grp"]
    )
    stats = GammaGammaStatistics.from_rows(
        rows["grp"], rows["frequency"], rows["monetary_value"], weights, 3
    )
    values = {"p": np.array([6.0, 6.5, 5.0]), "q": np.array([3.7, 3.0, 4.0]),
              "gamma": np.array([15.0, 16.0, 14.0])}
    reference = gamma_gamma_log_likelihood(
        *(values[k][frame["grp"]] for k in values), frame["frequency"], frame["monetary_value"]
    )
    total = gamma_gamma_total_log_likelihood(*(pt.as_tensor(v) for v in values.values()), stats)
    assert float(total.eval()) == pytest.approx(reference.sum(), rel=1e-12)
    pointwise = gamma_gamma_pointwise(*values.values(), stats)
    np.testing.assert_allclose(pointwise[inverse], reference, rtol=1e-12, atol=1e-10)


# -- the CDNOW posterior against the published MLE --------------------------------------
def test_pooled_bgnbd_posterior_is_centred_on_the_mle(pooled_bg):
    table = pooled_bg.summary()
    for name, mle in BGNBD_MLE.items():
        row = table.loc[name]
        assert abs(row["estimate"] - mle) < row["sd"], name
        assert row["r_hat"] < 1.01 and row["ess_bulk"] > 400
    assert isinstance(pooled_bg.params_, pd.Series)
    assert list(pooled_bg.params_.index) == list(PARAMS)
    assert int(pooled_bg.idata_.sample_stats["diverging"].sum()) == 0
    assert pooled_bg.time_unit_ == "W"


def test_pooled_gamma_gamma_posterior_is_centred_on_the_mle(pooled_gg, cdnow_summary):
    table = pooled_gg.summary()
    for name, mle in GAMMA_GAMMA_MLE.items():
        assert abs(table.loc[name, "estimate"] - mle) < table.loc[name, "sd"], name
    assert pooled_gg.n_excluded_ == int((cdnow_summary["frequency"] == 0).sum())
    # The stored log-likelihood covers exactly the repeat buyers.
    ll = pooled_gg.idata_.log_likelihood["spend"]
    assert ll.sizes["customer"] == int((cdnow_summary["frequency"] > 0).sum())


def test_idata_layout(pooled_bg, cdnow_summary):
    idata = pooled_bg.idata_
    assert {"posterior", "sample_stats", "log_likelihood"} <= set(idata.groups())
    post = idata.posterior
    assert set(post.data_vars) == set(PARAMS)
    assert post.sizes["chain"] == 4 and post.sizes["draw"] == 1000
    ll = idata.log_likelihood["purchases"]
    assert ll.dims == ("chain", "draw", "customer")
    assert ll.sizes["customer"] == len(cdnow_summary)


def test_loo_equals_the_uncompressed_computation(pooled_bg, cdnow_summary):
    post = pooled_bg.idata_.posterior
    per_customer = bgnbd_log_likelihood(
        *(post[k].to_numpy()[..., None] for k in PARAMS),
        cdnow_summary["frequency"].to_numpy(),
        cdnow_summary["recency"].to_numpy(),
        cdnow_summary["T"].to_numpy(),
    )
    np.testing.assert_allclose(
        pooled_bg.idata_.log_likelihood["purchases"].to_numpy(), per_customer, rtol=1e-10
    )
    reference = az.from_dict(
        posterior={k: post[k].to_numpy() for k in PARAMS},
        log_likelihood={"purchases": per_customer},
    )
    ours, theirs = pooled_bg.loo(), az.loo(reference)
    assert ours.elpd_loo == pytest.approx(theirs.elpd_loo, rel=1e-10)
    assert ours.p_loo == pytest.approx(theirs.p_loo, rel=1e-8)
    # ELPD-LOO of a well-specified model sits just below the maximised log-likelihood.
    assert -9600 < ours.elpd_loo < -9582.43


def test_predictions_use_posterior_means(pooled_bg, cdnow_summary):
    p = pooled_bg.params_
    got = pooled_bg.expected_purchases(t=39, data=cdnow_summary)
    want = bgnbd_expected_purchases(
        39, p["r"], p["alpha"], p["a"], p["b"],
        cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"],
    )
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-12)
    mle = BetaGeo().fit(cdnow_summary)
    # Same data, flat-ish prior: posterior-mean predictions close to the MLE ones.
    np.testing.assert_allclose(
        pooled_bg.probability_alive(data=cdnow_summary),
        mle.probability_alive(data=cdnow_summary),
        atol=0.03,
    )
    assert pooled_bg.expected_purchases_new_customer(t=78) == pytest.approx(1.858, rel=0.03)


def test_pooled_param_draws(pooled_bg):
    draws = pooled_bg.param_draws(500, random_state=3)
    assert list(draws.columns) == list(PARAMS) and len(draws) == 500
    assert draws.equals(pooled_bg.param_draws(500, random_state=3))
    for k in PARAMS:
        samples = pooled_bg.idata_.posterior[k].to_numpy().ravel()
        assert np.isin(draws[k], samples).all()  # actual posterior draws
        assert draws[k].mean() == pytest.approx(samples.mean(), abs=3 * samples.std() / 20)
    assert len(pooled_bg.param_draws(5000)) == 5000  # beyond 4000: with replacement


def test_save_load_round_trip(pooled_bg, pooled_gg, cdnow_summary, tmp_path):
    for model in (pooled_bg, pooled_gg):
        path = model.save(tmp_path / f"{type(model).__name__}.nc")
        back = load(path)
        assert type(back) is type(model)
        assert back.group_col is None and back.priors == model.priors
        pd.testing.assert_series_equal(back.params_, model.params_)
        assert back.priors_ == model.priors_
        assert back.time_unit_ == "W"
        assert set(back.idata_.groups()) >= {"posterior", "sample_stats", "log_likelihood"}
        pd.testing.assert_frame_equal(back.summary(), model.summary())
    back = load(tmp_path / "HierarchicalBetaGeo.nc")
    pd.testing.assert_series_equal(
        back.expected_purchases(t=10, data=cdnow_summary),
        pooled_bg.expected_purchases(t=10, data=cdnow_summary),
    )


def test_convergence_warning_names_parameters(cdnow_summary):
    # cores=1: both chains in this process (the default forks one process per core).
    with pytest.warns(SamplingWarning, match=r"bulk ESS < 400 for .*\b(r|alpha|a|b)\b"):
        HierarchicalBetaGeo().fit(
            cdnow_summary, draws=30, tune=30, chains=2, random_state=1, progressbar=False,
            cores=1,
        )


def test_map_and_advi_land_near_the_mle(cdnow_summary):
    mode = HierarchicalBetaGeo().fit(cdnow_summary, method="map", progressbar=False)
    for name, mle in BGNBD_MLE.items():
        # Weak priors barely move the mode away from the maximum likelihood.
        assert mode.params_[name] == pytest.approx(mle, rel=0.03), name
    assert mode.idata_.posterior.sizes["draw"] == 1
    advi = HierarchicalBetaGeo().fit(
        cdnow_summary, method="advi", draws=500, n=8000, random_state=2, progressbar=False
    )
    assert advi.idata_.posterior.sizes["draw"] == 500
    for name in ("r", "alpha"):
        assert advi.params_[name] == pytest.approx(BGNBD_MLE[name], rel=0.1), name


# -- grouped models with a known (fake) posterior --------------------------------------
GROUP_TRUTH = pd.DataFrame(
    {"r": [0.2, 0.4], "alpha": [4.0, 8.0], "a": [0.8, 0.5], "b": [2.4, 3.0]},
    index=["north", "south"],
)


def _fake_grouped_model(n_draws=50, seed=0):
    """A grouped model whose posterior is known: draws scattered around GROUP_TRUTH."""
    rng = np.random.default_rng(seed)
    groups = list(GROUP_TRUTH.index)
    noise = lambda shape: np.exp(0.01 * rng.standard_normal(shape))  # noqa: E731
    posterior = {
        k: GROUP_TRUTH[k].to_numpy()[None, None, :] * noise((2, n_draws, 2)) for k in PARAMS
    }
    # Population: the mean of the two groups' coordinates, spread 0.3 between groups.
    centre = _coordinates(np.log(GROUP_TRUTH.to_numpy())).mean(axis=0)
    for j, k in enumerate(HierarchicalBetaGeo.coordinates):
        posterior[f"mu_{k}"] = np.full((2, n_draws), centre[j])
        posterior[f"sigma_{k}"] = np.full((2, n_draws), 0.3)
    idata = az.from_dict(
        posterior=posterior,
        dims={k: ["region"] for k in PARAMS},
        coords={"region": groups},
    )
    idata.posterior.attrs["clvmodels_model"] = "HierarchicalBetaGeo"
    idata.posterior.attrs["clvmodels_config"] = (
        '{"format_version": 2, "group_col": "region", "priors": null, "time_unit": "W", '
        '"n_customers": 10, "method": "nuts"}'
    )
    return HierarchicalBetaGeo.from_idata(idata)


def _coordinates(log_params):
    """HierarchicalBetaGeo's coordinates of rows of log-parameters."""
    theta = list(np.moveaxis(np.asarray(log_params, dtype=float), -1, 0))
    return np.stack(HierarchicalBetaGeo()._coordinates_from_theta(theta, NUMPY), axis=-1)


def _customers():
    return pd.DataFrame(
        {
            "frequency": [2, 0, 5, 1],
            "recency": [30.4, 0.0, 20.0, 3.0],
            "T": [38.9, 38.9, 30.0, 10.0],
            "region": ["north", "south", "south", "north"],
        },
        index=pd.Index(["c1", "c2", "c3", "c4"], name="customer_id"),
    )


def test_each_customer_gets_its_group_parameters():
    model = _fake_grouped_model()
    data = _customers()
    assert isinstance(model.params_, pd.DataFrame)
    assert list(model.params_.index) == ["north", "south"]
    per = GROUP_TRUTH.loc[data["region"]]
    want = bgnbd_probability_alive(
        *(model.params_.loc[data["region"], k].to_numpy() for k in PARAMS),
        data["frequency"], data["recency"], data["T"],
    )
    np.testing.assert_allclose(model.probability_alive(data=data), want, rtol=1e-12)
    np.testing.assert_allclose(model.params_.loc[data["region"], "r"], per["r"], rtol=0.02)
    # The population (median group) sits at mu: for r, the geometric mean of the groups.
    assert model.population_params_["r"] == pytest.approx(np.sqrt(0.2 * 0.4), rel=1e-9)
    assert model.population_params_["alpha"] == pytest.approx(
        np.sqrt(0.2 * 0.4) / np.sqrt(0.2 / 4.0 * 0.4 / 8.0), rel=1e-9
    )
    population = [model.population_params_[k] for k in PARAMS]
    assert model.expected_purchases_new_customer(t=10) == pytest.approx(
        float(bgnbd_expected_purchases_new_customer(10, *population)), rel=1e-12
    )


def test_unseen_group_falls_back_to_population_with_warning():
    model = _fake_grouped_model()
    data = _customers()
    data.loc["c4", "region"] = "west"
    with pytest.warns(UserWarning, match=r"1 customers .*not seen.*west"):
        params = model._params_for(data)
    for k in PARAMS:
        assert params[k][3] == pytest.approx(model.population_params_[k])
        assert params[k][0] == pytest.approx(model.params_.loc["north", k])


def test_grouped_param_draws_and_params_for_draws():
    model = _fake_grouped_model(n_draws=100)
    draws = model.param_draws(40, random_state=1)
    assert list(draws.columns) == ["draw", "region", *PARAMS]
    assert len(draws) == 80 and draws["draw"].nunique() == 40
    population = draws.attrs["population"]
    assert list(population.columns) == ["draw", *PARAMS] and len(population) == 40
    data = _customers()
    data.loc["c4", "region"] = "west"
    with pytest.warns(UserWarning, match="not seen"):
        per_draw = model._params_for(data, draws)
    assert per_draw["r"].shape == (40, 4)
    north = draws[draws["region"] == "north"].set_index("draw")["r"].to_numpy()
    np.testing.assert_allclose(per_draw["r"][:, 0], north)
    np.testing.assert_allclose(per_draw["r"][:, 3], population["r"].to_numpy())
    # New-group draws spread with sigma = 0.3 on the log scale.
    assert np.log(population["r"]).std() == pytest.approx(0.3, rel=0.35)


def test_missing_group_column_and_missing_labels_are_reported(cdnow_summary):
    with pytest.raises(DataValidationError, match="'cohort'"):
        HierarchicalBetaGeo(group_col="cohort").fit(cdnow_summary)
    model = _fake_grouped_model()
    data = _customers()
    data.loc[["c1", "c3"], "region"] = None
    with pytest.raises(DataValidationError, match=r"'region': 2 of 4 rows .*c1"):
        model.probability_alive(data=data)


# -- settings and bad input ---------------------------------------------------------
def test_init_only_stores_settings():
    priors = {"log_r": {"mu": -1.0}, "group_sigma": 0.3}
    model = HierarchicalBetaGeo(group_col="cohort", priors=priors)
    assert model.group_col == "cohort" and model.priors is priors
    assert not model.is_fitted
    with pytest.raises(NotFittedError):
        model.param_draws(10)
    with pytest.raises(NotFittedError):
        model.summary()
    with pytest.raises(NotFittedError):
        HierarchicalGammaGamma().expected_spend(data=_customers().assign(monetary_value=10.0))


@pytest.mark.parametrize(
    ("priors", "message"),
    [
        ({"rr": {"mu": 0}}, "unknown prior keys"),
        ({"r": {"mu": 0.0}}, "unknown prior keys"),
        ({"log_r": {"sigma": -1.0}}, "sigma > 0"),
        ({"log_r": 0.5}, "must be a dict"),
        ({"group_sigma": {"zeta": 1.0}}, "group_sigma keys"),
        ({"group_sigma": 0.0}, "group_sigma must be positive"),
    ],
)
def test_bad_priors_are_rejected(priors, message, cdnow_summary):
    with pytest.raises(ValueError, match=message):
        HierarchicalBetaGeo(priors=priors).fit(cdnow_summary, method="map", progressbar=False)


def test_priors_override_defaults(cdnow_summary):
    model = HierarchicalBetaGeo(priors={"log_r": {"mu": -1.5, "sigma": 0.5}})
    model.fit(cdnow_summary, method="map", progressbar=False)
    assert model.priors_["log_r"] == {"mu": -1.5, "sigma": 0.5}
    assert model.priors_["log_dropout_odds"] == {"mu": 0.0, "sigma": 2.0}
    # The mean purchase rate's default centre is the observed one, in the data's units.
    rate = cdnow_summary["frequency"].sum() / cdnow_summary["T"].sum()
    assert model.priors_["log_rate"]["mu"] == pytest.approx(np.log(rate))
    # A tight prior on r pulls the mode towards exp(-1.5) = 0.22 from the MLE 0.243.
    assert 0.22 < model.params_["r"] < 0.243


def test_bad_options_and_missing_numpyro(cdnow_summary):
    small = cdnow_summary.iloc[:300]
    with pytest.raises(ValueError, match="method"):
        HierarchicalBetaGeo().fit(small, method="laplace")
    with pytest.raises(ValueError, match="sampler"):
        HierarchicalBetaGeo().fit(small, sampler="stan")
    with pytest.raises(ValueError, match="centering"):
        HierarchicalBetaGeo().fit(small, centering="partial")
    try:
        import numpyro  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install numpyro"):
            HierarchicalBetaGeo().fit(small, sampler="numpyro")


class _Captured(Exception):
    """Raised by the fake ``run_inference`` once it has recorded its arguments."""


def _captured_inference(monkeypatch, model, data, **fit_kwargs):
    """The route ``fit`` takes and the keyword arguments it hands on: the PyMC model
    to ``run_inference``, or the NumPy density to ``sample_density``."""
    seen = {}

    def fake_inference(pymc_model, var_names, **kwargs):
        seen.update(kwargs, model=pymc_model, route="graph")
        raise _Captured

    def fake_density(make_logp, make_expand, start, var_names, **kwargs):
        seen.update(kwargs, route="numpy")
        raise _Captured

    monkeypatch.setattr(bayes, "run_inference", fake_inference)
    monkeypatch.setattr(bayes, "sample_density", fake_density)
    with pytest.raises(_Captured):
        model.fit(data, progressbar=False, **fit_kwargs)
    return seen


def _has_fused_op(pymc_model):
    graph = ancestors([pymc_model.logp()])
    return any(
        isinstance(v.owner.op, RowTermsOp) for v in graph if v.owner is not None
    )


def test_sampler_settings_follow_the_data(monkeypatch, cdnow_summary, cohort_summary):
    # Pooled: nutpie's defaults on the NumPy density; through the graph on request,
    # with the per-row terms in the fused Op.
    seen = _captured_inference(monkeypatch, HierarchicalBetaGeo(), cdnow_summary)
    assert seen["route"] == "numpy" and "target_accept" not in seen
    seen = _captured_inference(monkeypatch, HierarchicalBetaGeo(), cdnow_summary, backend="c")
    assert seen["route"] == "graph" and _has_fused_op(seen["model"])
    with pytest.raises(ValueError, match="backend='numpy' samples pooled models"):
        HierarchicalBetaGeo().fit(cdnow_summary, method="advi", backend="numpy")
    # Groups change the parameterisation, not the sampler's settings: few similar
    # groups (three cohorts) and many distinct ones alike get nutpie's defaults.
    seen = _captured_inference(
        monkeypatch, HierarchicalBetaGeo(group_col="cohort"), cohort_summary
    )
    assert "target_accept" not in seen and seen["n_terms"] < 5_000
    data, _ = _simulate_groups(seed=5)
    seen = _captured_inference(monkeypatch, HierarchicalBetaGeo(group_col="segment"), data)
    assert "target_accept" not in seen
    # The user's choice wins; NumPyro gets the plain graph it can translate to JAX.
    seen = _captured_inference(
        monkeypatch, HierarchicalBetaGeo(), cdnow_summary, sampler="numpyro",
        target_accept=0.95,
    )
    assert seen["target_accept"] == 0.95 and not _has_fused_op(seen["model"])


def test_initial_point_without_compilation():
    with pm.Model() as model:
        pm.Flat("v", shape=3)
        pm.HalfNormal("s", sigma=2.0)
    point = _initial_point(model)
    assert {k: v.shape for k, v in point.items()} == {"v": (3,), "s_log__": ()}
    assert all(np.all(v == 0) for v in point.values())


def test_diagnostics_leave_arviz_numba_setting_alone(pooled_bg):
    from arviz.utils import Numba

    before = Numba.numba_flag
    pooled_bg.summary()
    assert Numba.numba_flag == before


def test_invalid_summary_is_rejected(cdnow_summary):
    bad = cdnow_summary.copy()
    bad.loc[bad.index[:3], "recency"] = bad["T"].iloc[:3] + 1
    with pytest.raises(DataValidationError, match="recency"):
        HierarchicalBetaGeo().fit(bad)
    no_buyers = cdnow_summary[cdnow_summary["frequency"] == 0]
    with pytest.raises(DataValidationError, match=r"GammaGamma\.fit: .*repeat purchases"):
        HierarchicalGammaGamma().fit(no_buyers)


def test_pooled_spend_prediction(pooled_gg, cdnow_summary):
    p = pooled_gg.params_
    got = pooled_gg.expected_spend(data=cdnow_summary)
    want = gamma_gamma_expected_spend(
        p["p"], p["q"], p["gamma"], cdnow_summary["frequency"], cdnow_summary["monetary_value"]
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)


# -- CDNOW by acquisition month: the worked example ------------------------------------
@pytest.mark.slow
def test_cdnow_by_acquisition_month(cohort_summary, pooled_bg):
    # The README's worked example at the default settings: no sampler warning at all.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        model = HierarchicalBetaGeo(group_col="cohort").fit(
            cohort_summary, random_state=1, progressbar=False
        )
    assert model.sampling_problems_ == []
    assert list(model.groups_) == ["Feb", "Jan", "Mar"]
    assert model.idata_.posterior["r"].dims == ("chain", "draw", "cohort")
    table = model.summary()
    assert table.loc[("r", "Jan"), "r_hat"] < 1.01
    # The three months behave alike: each group sits within its sd of the pooled fit,
    # and the between-month spread of log r is small.
    for k in PARAMS:
        for month in model.groups_:
            row = table.loc[(k, month)]
            assert abs(row["estimate"] - pooled_bg.params_[k]) < row["sd"], (k, month)
    assert float(model.idata_.posterior["sigma_log_r"].median()) < 0.15
    # Model comparison: grouping by month buys no predictive accuracy (the extra
    # parameters cost a little ELPD instead).
    comparison = compare_loo({"pooled": pooled_bg, "by month": model})
    assert set(comparison.index) == {"pooled", "by month"}
    elpd = comparison["elpd_loo"]
    assert elpd["by month"] < elpd["pooled"] + 2 * comparison.loc["by month", "dse"]
    assert comparison.loc["by month", "p_loo"] > comparison.loc["pooled", "p_loo"]
    draws = model.param_draws(100, random_state=0)
    params = model._params_for(cohort_summary, draws)
    assert params["alpha"].shape == (100, len(cohort_summary))


@pytest.mark.slow
def test_grouped_spend_model_by_acquisition_month(cohort_summary, pooled_gg):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        model = HierarchicalGammaGamma(group_col="cohort").fit(
            cohort_summary, random_state=6, progressbar=False
        )
    assert int(model.idata_.sample_stats["diverging"].sum()) == 0
    assert isinstance(model.params_, pd.DataFrame)
    assert list(model.params_.columns) == ["p", "q", "gamma"]
    table = model.summary()
    # Spend per transaction looks alike across the three months.
    for month in model.groups_:
        for k in ("p", "q", "gamma"):
            row = table.loc[(k, month)]
            assert abs(row["estimate"] - pooled_gg.params_[k]) < 1.5 * row["sd"], (k, month)
    spend = model.expected_spend(data=cohort_summary)
    pooled_spend = pooled_gg.expected_spend(data=cohort_summary)
    assert np.corrcoef(spend, pooled_spend)[0, 1] > 0.99
    # Repeat buyers only in the log-likelihood; every month has parameters.
    assert model.idata_.log_likelihood["spend"].sizes["customer"] == int(
        (cohort_summary["frequency"] > 0).sum()
    )


# -- recovery, coverage and shrinkage on simulated groups -------------------------------
SIZES = (40, 100, 300, 1000, 3000, 10_000, 20_000)
POPULATION = np.log([0.3, 5.0, 0.8, 2.5])
SPREAD = np.array([0.35, 0.35, 0.35, 0.35])


def _simulate_groups(seed: int, sizes=SIZES, spread=SPREAD):
    rng = np.random.default_rng(seed)
    truth, frames = {}, []
    for i, n in enumerate(sizes):
        theta = np.exp(POPULATION + spread * rng.standard_normal(4))
        name = f"g{i}"
        truth[name] = dict(zip(PARAMS, theta, strict=True))
        T = rng.integers(26 * 7, 52 * 7 + 1, size=n) / 7  # whole days, in weeks
        frame = simulate_bgnbd(n, *theta, T=T, random_state=rng)
        # Purchases recorded by day, as rfm_summary does.
        frame["recency"] = np.minimum(np.ceil(frame["recency"] * 7) / 7, frame["T"])
        frame.index = name + "-" + frame.index.astype(str)
        frame["segment"] = name
        frames.append(frame)
    return pd.concat(frames), pd.DataFrame(truth).T


@pytest.mark.slow
def test_recovery_coverage_and_shrinkage():
    data, truth = _simulate_groups(seed=5)
    model = _quiet_fit(
        HierarchicalBetaGeo(group_col="segment"),
        data,
        draws=500,
        tune=500,
        random_state=3,
        log_likelihood=False,
    )
    # Weakly identified spreads leave a few divergences at most.
    assert int(model.idata_.sample_stats["diverging"].sum()) < 0.02 * 2000
    # Large groups are sampled (nearly) centred, the smallest mostly non-centred.
    assert min(model.centering_["g6"].values()) > 0.9
    assert model.centering_["g0"]["log_concentration"] < 0.5
    table = model.summary(interval=0.94)
    inside = []
    for name in truth.index:
        for k in PARAMS:
            row = table.loc[(k, name)]
            inside.append(row["lower 94%"] <= truth.loc[name, k] <= row["upper 94%"])
    # 28 intervals at 94%: nominal 26.3 covered; 22 or fewer would be a 1-in-200 event.
    assert sum(inside) >= 23, table
    # The largest group is pinned down: within 10% of the truth for every parameter.
    big = model.params_.loc["g6"]
    np.testing.assert_allclose(big.to_numpy(), truth.loc["g6"].to_numpy(), rtol=0.1)
    # Shrinkage: the smallest group's estimate lies closer to the population (in the
    # model's log-scale coordinates) than its own separate maximum-likelihood
    # estimate does.
    to_u = _coordinates
    small = data[data["segment"] == "g0"]
    separate = to_u(np.log(BetaGeo().fit(small).params_.to_numpy()))
    shrunk = to_u(np.log(model.params_.loc["g0"].to_numpy()))
    population = np.array(
        [float(model.idata_.posterior[f"mu_{k}"].mean()) for k in model.coordinates]
    )
    assert np.linalg.norm(shrunk - population) < 0.5 * np.linalg.norm(separate - population)
    # A group with thousands of customers is not shrunk noticeably.
    big_mle = np.log(BetaGeo().fit(data[data["segment"] == "g6"]).params_.to_numpy())
    np.testing.assert_allclose(np.log(big.to_numpy()), big_mle, atol=0.05)


# -- other samplers and backends ------------------------------------------------------
@pytest.mark.slow
def test_other_samplers_and_backends_agree_with_the_default(pooled_bg, cdnow_summary):
    reference = pooled_bg.params_
    pymc = _quiet_fit(
        HierarchicalBetaGeo(), cdnow_summary, sampler="pymc", draws=300, tune=300, chains=2,
        random_state=4, cores=1,
    )
    numba = _quiet_fit(
        HierarchicalBetaGeo(), cdnow_summary, draws=300, tune=300, chains=2, random_state=4,
        backend="numba",
    )
    c = _quiet_fit(
        HierarchicalBetaGeo(), cdnow_summary, draws=300, tune=300, chains=2, random_state=4,
        backend="c",
    )
    assert numba.idata_.posterior.attrs["nutpie_backend"] == "numba"
    assert c.idata_.posterior.attrs["nutpie_backend"] == "c"
    assert pooled_bg.idata_.posterior.attrs["nutpie_backend"] == "numpy"
    sd = pooled_bg.summary()["sd"]
    for other in (pymc, numba, c):
        assert (abs(other.params_ - reference) < 0.5 * sd).all(), other.params_
