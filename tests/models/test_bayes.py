"""The Bayesian engine: any declared model, the generic graph against the declared
speed-ups, the parameterisation's algebra, settings refused up front, and NetCDF
files checked field by field.

MCMC runs are kept small; the longer ones are marked ``slow``.
"""

from __future__ import annotations

import json
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

from clvmodels import BetaGeo, GammaGamma, compress, load
from clvmodels.errors import ConvergenceError, ModelFileError, SamplingWarning
from clvmodels.models import bayes
from clvmodels.models._pytensor_likelihoods import BetaGeoStatistics, GammaGammaStatistics
from clvmodels.models.base import registered_models
from clvmodels.models.bayes import BayesianModel, RowTable, bayesian
from clvmodels.models.hierarchical import HierarchicalBetaGeo, HierarchicalGammaGamma
from clvmodels.models.mle import MaximumLikelihoodModel

PARAMS = ("r", "alpha", "a", "b")


class NBD(MaximumLikelihoodModel):
    """Purchases without dropout (Ehrenberg 1959): declared here only."""

    param_names = ("r", "alpha")
    data_columns = ("frequency", "T")

    @staticmethod
    def log_likelihood(params, data, ops):
        r, alpha, x = params["r"], params["alpha"], data["frequency"]
        return (
            ops.gammaln(r + x) - ops.gammaln(r) + r * ops.log(alpha)
            - (r + x) * ops.log(alpha + data["T"])
        )


NBD_TRUTH = {"a": (0.6, 8.0), "b": (0.9, 12.0), "c": (0.5, 4.0)}


def _simulate_nbd(sizes=(1500, 1500, 1500), seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for (name, (r, alpha)), n in zip(NBD_TRUTH.items(), sizes, strict=True):
        T = rng.integers(20, 53, size=n).astype(float)
        x = rng.poisson(rng.gamma(r, 1 / alpha, size=n) * T).astype(float)
        recency = np.where(x > 0, np.round(T * rng.uniform(0.5, 1.0, size=n)), 0.0)
        frames.append(
            pd.DataFrame(
                {"frequency": x, "recency": recency, "T": T, "group": name},
                index=[f"{name}{i}" for i in range(n)],
            )
        )
    frame = pd.concat(frames)
    frame.attrs["time_unit"] = "W"
    return frame


def _quiet(model, data, **kwargs):
    kwargs.setdefault("progressbar", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return model.fit(data, **kwargs)


# -- the factory ----------------------------------------------------------------------
def test_factory_builds_registers_and_caches():
    BayesianNBD = bayesian(NBD)
    assert BayesianNBD is bayesian(NBD)
    assert BayesianNBD.__name__ == "BayesianNBD"
    assert registered_models()["BayesianNBD"] is BayesianNBD
    assert issubclass(BayesianNBD, BayesianModel) and issubclass(BayesianNBD, NBD)
    assert BayesianNBD.coordinates == ("log_r", "log_alpha")
    assert BayesianNBD._mle_class is NBD
    model = BayesianNBD(group_col="group")
    assert model.group_col == "group" and model.priors is None and not model.is_fitted
    for wrong in (HierarchicalBetaGeo, BayesianNBD, int, "BetaGeo"):
        with pytest.raises(TypeError, match="maximum-likelihood model class"):
            bayesian(wrong)
    with pytest.raises(TypeError, match="posterior"):
        BayesianNBD.from_params({"r": 1.0, "alpha": 2.0})


def test_real_parameters_get_the_identity_coordinate():
    class Shifted(NBD):
        param_names = ("r", "alpha", "shift")
        real_params = ("shift",)

    assert bayesian(Shifted).coordinates == ("log_r", "log_alpha", "shift")


# -- any declared model: fit pooled and grouped, recover the truth ----------------------
def test_generic_engine_fits_a_model_declared_elsewhere():
    data = _simulate_nbd()
    model = _quiet(bayesian(NBD)(), data, draws=400, tune=400, chains=2, random_state=1)
    assert model.idata_.posterior.attrs["nutpie_backend"] == "numpy"
    table = model.summary(interval=0.99)
    # The pooled NBD of three groups: close to the MLE of the same declaration.
    mle = NBD().fit(data)
    for k in ("r", "alpha"):
        assert table.loc[k, "lower 99%"] < mle.params_[k] < table.loc[k, "upper 99%"], k
        assert table.loc[k, "r_hat"] < 1.02
    # Pointwise log-likelihood per customer, from the declared NumPy likelihood.
    ll = model.idata_.log_likelihood["observed"]
    assert ll.sizes["customer"] == len(data)
    post = model.idata_.posterior
    want = NBD.log_likelihood(
        {k: post[k].to_numpy()[..., None] for k in ("r", "alpha")},
        {c: data[c].to_numpy() for c in ("frequency", "T")},
        __import__("clvmodels.models.ops", fromlist=["NUMPY"]).NUMPY,
    )
    np.testing.assert_allclose(ll.to_numpy(), want, rtol=1e-10)


@pytest.mark.slow
def test_generic_engine_recovers_group_parameters():
    data = _simulate_nbd()
    model = _quiet(
        bayesian(NBD)(group_col="group"), data, draws=500, tune=500, chains=2, random_state=2
    )
    assert model.idata_.posterior["r"].dims == ("chain", "draw", "group")
    table = model.summary(interval=0.99)
    for group, (r, alpha) in NBD_TRUTH.items():
        for k, truth in (("r", r), ("alpha", alpha)):
            row = table.loc[(k, group)]
            assert row["lower 99%"] < truth < row["upper 99%"], (k, group, row)
    assert int(model.idata_.sample_stats["diverging"].sum()) == 0
    assert (table["r_hat"] < 1.02).all()


# -- the generic graph against the declared speed-ups -----------------------------------
def _grouped_rows(summary, columns, n_groups=3):
    frame = summary.assign(grp=(summary["T"].round() % n_groups).astype(int))
    rows, weights, _ = compress(frame, columns=columns, extra=["grp"])
    arrays = {c: rows[c].to_numpy(dtype=float) for c in columns}
    return arrays, rows["grp"].to_numpy(), weights


def test_fused_bgnbd_equals_the_generic_graph_in_value_and_gradient(cdnow_summary):
    # (The fused Op's Numba route is checked against the plain graph in
    # test_hierarchical; here the C route against the generic graph.)
    arrays, group, weights = _grouped_rows(cdnow_summary, ("frequency", "recency", "T"))
    generic, declared = bayesian(BetaGeo)(), HierarchicalBetaGeo()
    table = generic._likelihood_statistics(arrays, group, weights, 3)
    stats = declared._likelihood_statistics(arrays, group, weights, 3)
    assert isinstance(table, RowTable) and isinstance(stats, BetaGeoStatistics)
    log_params = pt.dmatrix("log_params")  # parameter x group
    params = {k: pt.exp(log_params[i]) for i, k in enumerate(PARAMS)}
    at = np.log([[0.2, 0.3, 0.25], [4.0, 5.0, 3.0], [0.7, 0.9, 0.8], [2.0, 3.0, 2.5]])
    results = []
    for total in (
        generic._total_log_likelihood(params, table),
        declared._total_log_likelihood(params, stats, fused=True),
        declared._total_log_likelihood(params, stats, fused=False),
    ):
        fn = pytensor.function([log_params], [total, pt.grad(total, log_params)])
        results.append(fn(at))
    for value, grad in results[1:]:
        assert value == pytest.approx(results[0][0], rel=1e-12)
        np.testing.assert_allclose(grad, results[0][1], rtol=1e-9, atol=1e-9)
    # The pointwise log-likelihood per row, as LOO reads it.
    batch = {k: np.stack([np.exp(at[i]), 1.1 * np.exp(at[i])]) for i, k in enumerate(PARAMS)}
    rows_generic = generic._pointwise_log_likelihood(batch, table)
    total = float(results[0][0])
    assert float(rows_generic[0] @ weights) == pytest.approx(total, rel=1e-12)
    # Declared pointwise values come per input row in the statistics' own order.
    rows_declared = declared._pointwise_log_likelihood(batch, stats)
    np.testing.assert_allclose(rows_declared, rows_generic, rtol=1e-11, atol=1e-11)


def test_gamma_gamma_statistics_equal_the_generic_graph(cdnow_summary):
    buyers = cdnow_summary[cdnow_summary["frequency"] > 0]
    arrays, group, weights = _grouped_rows(buyers, ("frequency", "monetary_value"))
    generic, declared = bayesian(GammaGamma)(), HierarchicalGammaGamma()
    table = generic._likelihood_statistics(arrays, group, weights, 3)
    stats = declared._likelihood_statistics(arrays, group, weights, 3)
    assert isinstance(stats, GammaGammaStatistics)
    log_params = pt.dmatrix("log_params")
    params = {k: pt.exp(log_params[i]) for i, k in enumerate(("p", "q", "gamma"))}
    at = np.log([[6.0, 6.5, 5.0], [3.7, 3.0, 4.0], [15.0, 16.0, 14.0]])
    outs = []
    for total in (
        generic._total_log_likelihood(params, table),
        declared._total_log_likelihood(params, stats),
    ):
        outs.append(pytensor.function([log_params], [total, pt.grad(total, log_params)])(at))
    assert outs[1][0] == pytest.approx(outs[0][0], rel=1e-12)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-9)


@pytest.mark.parametrize("cls", [HierarchicalBetaGeo, HierarchicalGammaGamma])
def test_declared_coordinates_invert_and_match_their_jacobian(cls):
    model = cls()
    rng = np.random.default_rng(0)
    ops = __import__("clvmodels.models.ops", fromlist=["NUMPY"]).NUMPY
    for _ in range(5):
        theta = rng.normal(0.0, 1.5, size=len(model.param_names))
        u = np.array(model._coordinates_from_theta(list(theta), ops), dtype=float)
        back = np.array(model._theta_from_coordinates(list(u), ops), dtype=float)
        np.testing.assert_allclose(back, theta, atol=1e-12)
        # The closed-form Jacobian of the pooled route equals the automatic one.
        value, jacobian = model._theta_and_jacobian(u)
        auto_value, auto_jacobian = BayesianModel._theta_and_jacobian(model, u)
        np.testing.assert_allclose(value, auto_value, atol=1e-12)
        np.testing.assert_allclose(jacobian, auto_jacobian, atol=1e-12)


@pytest.mark.slow
def test_generic_bgnbd_posterior_agrees_with_the_declared_one(cdnow_summary):
    # Different coordinates (so slightly different priors) and likelihood code, same
    # data: with 2,357 customers the posteriors agree well within their spread.
    generic = _quiet(bayesian(BetaGeo)(), cdnow_summary, random_state=3)
    declared = _quiet(HierarchicalBetaGeo(), cdnow_summary, random_state=3)
    sd = declared.summary()["sd"]
    assert (abs(generic.params_ - declared.params_) < 0.25 * sd).all(), (
        generic.params_, declared.params_,
    )
    assert int(generic.idata_.sample_stats["diverging"].sum()) == 0


# -- the parameterisation --------------------------------------------------------------
def test_conditional_group_map_is_the_normal_conditional_posterior():
    rng = np.random.default_rng(1)
    G, K = 3, 4
    u_hat = rng.normal(size=(G, K))
    precision = np.zeros((G, K, K))
    for g in range(G - 1):  # the last group has no information: non-centred
        a = rng.normal(size=(K, K))
        precision[g] = a @ a.T + K * np.eye(K)
    mu, sigma, w = rng.normal(size=K), np.exp(rng.normal(size=K)), rng.normal(size=(G, K))
    mu_t, sigma_t, w_t = pt.dvector(), pt.dvector(), pt.dmatrix()
    u_t, log_prior_t = bayes._conditional_groups(w_t, mu_t, sigma_t, u_hat, precision)
    u, log_prior = pytensor.function([w_t, mu_t, sigma_t], [u_t, log_prior_t])(w, mu, sigma)
    want_log_prior = 0.0
    for g in range(G):
        P = precision[g] + np.diag(sigma**-2)
        L = np.linalg.cholesky(P)
        mean = np.linalg.solve(P, precision[g] @ u_hat[g] + mu / sigma**2)
        np.testing.assert_allclose(u[g], mean + np.linalg.solve(L.T, w[g]), rtol=1e-10)
        # log N(u | mu, sigma) + log |du/dw|, with |du/dw| = 1 / det L
        z = (u[g] - mu) / sigma
        want_log_prior += float(
            np.sum(-0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi))
            - np.log(np.diag(L)).sum()
        )
    np.testing.assert_allclose(u[-1], mu + sigma * w[-1], rtol=1e-12)
    assert log_prior == pytest.approx(want_log_prior, rel=1e-10)
    # Tiny spreads keep every digit of u - mu (the prior reads the deviation itself).
    u_tiny, lp_tiny = pytensor.function([w_t, mu_t, sigma_t], [u_t, log_prior_t])(
        w, mu, np.full(K, 1e-20)
    )
    assert np.isfinite(lp_tiny) and np.allclose(u_tiny, mu[None, :])


def test_spread_prior_is_the_half_normal():
    # sigma = tau softplus(x): the pushed-forward density of x integrates to one, and
    # sigma's distribution under it is the HalfNormal(tau).
    with pm.Model() as model:
        sigma = bayes._spreads(["k"], bayes.as_data(np.array([0.5])))
    logp = model.compile_logp()
    x = np.linspace(-40.0, 12.0, 200_001)
    density = np.exp([logp({"spread_offset": np.array([v])}) for v in x[::100]])
    assert np.trapezoid(density, x[::100]) == pytest.approx(1.0, abs=2e-3)
    assert sigma.ndim == 1


# -- settings refused up front ---------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"draws": 0}, "draws"),
        ({"draws": 1.5}, "draws"),
        ({"draws": True}, "draws"),
        ({"tune": -1}, "tune"),
        ({"chains": 0}, "chains"),
        ({"chains": None}, "chains"),
        ({"target_accept": 1.5}, "target_accept"),
        ({"target_accept": 0}, "target_accept"),
        ({"cores": 0}, "cores"),
        ({"method": "laplace"}, "method"),
        ({"sampler": "stan"}, "sampler"),
        ({"backend": "gpu"}, "backend"),
        ({"centering": "partial"}, "centering"),
        ({"log_likelihood": "yes"}, "log_likelihood"),
        ({"method": "advi", "n": 0}, "n"),
    ],
)
def test_impossible_settings_fail_before_any_work(monkeypatch, cdnow_summary, settings, name):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr(BayesianModel, "_prepare", no_work)
    with pytest.raises(ValueError, match=name):
        HierarchicalBetaGeo().fit(cdnow_summary, progressbar=False, **settings)


def test_bad_prior_keys_fail_before_any_work(monkeypatch, cdnow_summary):
    monkeypatch.setattr(BayesianModel, "_prepare", lambda *a, **k: pytest.fail("work"))
    with pytest.raises(ValueError, match="unknown prior keys"):
        HierarchicalBetaGeo(priors={"log_alpha": {"mu": 1.0}}).fit(cdnow_summary)


def test_random_seed_still_works_with_a_deprecation_warning(monkeypatch, cdnow_summary):
    seen = {}

    def fake_density(make_logp, make_expand, start, var_names, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(bayes, "sample_density", fake_density)
    with pytest.warns(DeprecationWarning, match="random_state"), pytest.raises(RuntimeError):
        HierarchicalBetaGeo().fit(cdnow_summary, random_seed=7, progressbar=False)
    assert seen["random_state"] == 7


def test_non_finite_parameters_never_make_a_fitted_model(monkeypatch, cdnow_summary):
    def nan_density(make_logp, make_expand, start, var_names, **kwargs):
        values = {k: np.full((2, 5), np.nan if k == "r" else 1.0) for k in var_names}
        return az.from_dict(posterior=values)

    monkeypatch.setattr(bayes, "sample_density", nan_density)
    model = HierarchicalBetaGeo()
    with pytest.raises(ConvergenceError, match=r"not finite \(r\)"):
        model.fit(cdnow_summary, progressbar=False)
    assert not model.is_fitted


# -- NetCDF files, checked field by field ----------------------------------------------
GROUPS = ["north", "south"]


def _posterior(n_draws=20, seed=0):
    rng = np.random.default_rng(seed)
    base = {"r": [0.2, 0.4], "alpha": [4.0, 8.0], "a": [0.8, 0.5], "b": [2.4, 3.0]}
    posterior = {
        k: np.asarray(v)[None, None, :] * np.exp(0.01 * rng.standard_normal((2, n_draws, 2)))
        for k, v in base.items()
    }
    for k in HierarchicalBetaGeo.coordinates:
        posterior[f"mu_{k}"] = np.full((2, n_draws), 0.1)
        posterior[f"sigma_{k}"] = np.full((2, n_draws), 0.3)
    return posterior


CONFIG = {
    "format_version": 2, "group_col": "region", "priors": None, "groups": GROUPS,
    "method": "nuts", "time_unit": "W", "n_customers": 10, "n_excluded": 0,
}


def _write(path, posterior=None, config=CONFIG, name="HierarchicalBetaGeo"):
    posterior = _posterior() if posterior is None else posterior
    idata = az.from_dict(
        posterior=posterior, dims={k: ["region"] for k in PARAMS}, coords={"region": GROUPS}
    )
    idata.posterior.attrs["clvmodels_model"] = name
    if config is not None:
        idata.posterior.attrs["clvmodels_config"] = (
            config if isinstance(config, str) else json.dumps(config)
        )
    idata.to_netcdf(str(path))
    return path


def test_a_valid_file_loads(tmp_path):
    model = load(_write(tmp_path / "ok.nc"))
    assert type(model) is HierarchicalBetaGeo and model.group_col == "region"
    assert list(model.params_.index) == GROUPS
    # It saves atomically and loads back the same.
    back = load(model.save(tmp_path / "again.nc"))
    pd.testing.assert_frame_equal(back.params_, model.params_)
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*.tmp"))


def test_factory_classes_load_by_name(tmp_path):
    posterior = {k: v for k, v in _posterior().items() if not k.startswith(("mu_", "sigma_"))}
    coords = bayesian(BetaGeo).coordinates
    for k in coords:
        posterior[f"mu_{k}"] = np.full((2, 20), 0.1)
        posterior[f"sigma_{k}"] = np.full((2, 20), 0.3)
    model = load(_write(tmp_path / "generic.nc", posterior, name="BayesianBetaGeo"))
    assert type(model) is bayesian(BetaGeo)
    # mu of log_alpha is 0.1, so the population alpha is exp(0.1).
    assert model.population_params_["alpha"] == pytest.approx(np.exp(0.1))


@pytest.mark.parametrize("value", [-1.0, 0.0, np.nan, np.inf])
def test_impossible_parameter_in_one_draw_is_refused(tmp_path, value):
    posterior = _posterior()
    posterior["r"][1, 7, 0] = value
    path = _write(tmp_path / "bad.nc", posterior)
    with pytest.raises(ModelFileError, match=r"bad\.nc.*posterior\.r"):
        load(path)


def test_out_of_range_hyperparameters_are_refused(tmp_path):
    posterior = _posterior()
    posterior["sigma_log_r"][0, 0] = -0.1
    with pytest.raises(ModelFileError, match=r"posterior\.sigma_log_r.*>= 0"):
        load(_write(tmp_path / "sigma.nc", posterior))
    posterior = _posterior()
    posterior["alpha"][0, 0, 1] = 1e40
    with pytest.raises(ModelFileError, match=r"posterior\.alpha.*supported range"):
        load(_write(tmp_path / "alpha.nc", posterior))
    posterior = _posterior()
    del posterior["mu_log_rate"]
    with pytest.raises(ModelFileError, match=r"posterior\.mu_log_rate' is missing"):
        load(_write(tmp_path / "mu.nc", posterior))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (None, "clvmodels_config"),
        ("{not json", "clvmodels_config"),
        ("[1, 2]", "clvmodels_config"),
        ({k: v for k, v in CONFIG.items() if k != "group_col"}, "clvmodels_config.group_col"),
        ({k: v for k, v in CONFIG.items() if k != "format_version"}, "format_version"),
        ({**CONFIG, "format_version": 99}, "clvmodels_config.format_version"),
        ({**CONFIG, "format_version": "2"}, "clvmodels_config.format_version"),
        ({**CONFIG, "group_col": 5}, "clvmodels_config.group_col"),
        ({**CONFIG, "n_customers": "ten"}, "clvmodels_config.n_customers"),
        ({**CONFIG, "n_customers": -1}, "clvmodels_config.n_customers"),
        ({**CONFIG, "time_unit": "fortnight"}, "clvmodels_config.time_unit"),
        ({**CONFIG, "priors": [1]}, "clvmodels_config.priors"),
        ({**CONFIG, "surprise": 1}, "clvmodels_config.surprise"),
        ({**CONFIG, "group_col": "cohort"}, "cohort"),
        ({**CONFIG, "groups": ["east", "west"]}, "clvmodels_config.groups"),
        ({**CONFIG, "priors": {"rr": {"mu": 0}}}, "clvmodels_config.priors"),
    ],
)
def test_bad_configuration_is_refused_naming_file_and_field(tmp_path, config, field):
    path = _write(tmp_path / "config.nc", config=config)
    with pytest.raises(ModelFileError, match=rf"config\.nc.*{field}"):
        load(path)


def test_garbage_and_mismatched_files_are_refused_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ModelFileError, match=r"garbage\.nc"):
        load(garbage)
    cdf = tmp_path / "cdf.nc"
    cdf.write_bytes(b"CDF\x01" + b"\x00" * 7 + b"\xff" * 50)
    with pytest.raises(ModelFileError, match=r"cdf\.nc"):
        load(cdf)
    # A JSON file naming a Bayesian model, and a NetCDF file naming a JSON model.
    as_json = tmp_path / "bayes.json"
    as_json.write_text(json.dumps({"model": "HierarchicalBetaGeo", "format_version": 2,
                                   "params": {"r": 1.0}}))
    with pytest.raises(ModelFileError, match=r"bayes\.json.*HierarchicalBetaGeo.*NetCDF"):
        load(as_json)
    with pytest.raises(ModelFileError, match=r"mle\.nc.*BetaGeo.*JSON"):
        load(_write(tmp_path / "mle.nc", name="BetaGeo"))
