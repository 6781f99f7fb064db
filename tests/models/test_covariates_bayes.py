"""Covariates in the Bayesian engine: pooled coefficients with normal priors, alone or
with group-level parameters; the NumPy density and the PyMC graph agree; NetCDF files
keep the covariate spec and are checked field by field."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest

from clvmodels import BetaGeo, GammaGamma, ParetoNBD, load
from clvmodels.errors import ModelFileError
from clvmodels.models.bayes import DEFAULT_COEFFICIENT_SIGMA, bayesian
from clvmodels.models.hierarchical import HierarchicalBetaGeo
from clvmodels.models.mle import DESIGN
from clvmodels.models.ops import NUMPY


@pytest.fixture(scope="module")
def summary(cdnow_covariates, cdnow_transactions):
    """CDNOW with covariates (tests/models/conftest.py) and the acquisition month as the
    group."""
    first = cdnow_transactions.groupby("customer_id")["date"].min()
    return cdnow_covariates.assign(cohort=first.dt.strftime("%b").reindex(cdnow_covariates.index))


def test_grouped_graph_likelihood_is_the_declared_one_with_covariates(summary):
    model = HierarchicalBetaGeo(
        group_col="cohort", purchase_covariates=["first_cds"], dropout_covariates=["channel"]
    )
    prep = model._prepare(summary, "test")
    priors = model._resolve_priors(prep.centre, model._coefficient_scales(prep))
    pymc_model, keep = model._build_model(prep, priors, "auto")
    names = [k for k in keep if not k.startswith(("mu_", "sigma_"))]
    assert names == ["r", "alpha", "a", "b", "coefficient_0", "coefficient_1", "coefficient_2"]
    values = pymc_model.compile_fn(
        pymc_model.replace_rvs_by_values(
            [pymc_model[k] for k in names] + [pymc_model.potentials[-1]]
        ),
        inputs=pymc_model.value_vars,
    )
    rng = np.random.default_rng(1)
    point = {v.name: rng.normal(0.0, 0.5, v.type.shape) for v in pymc_model.value_vars}
    *params, total = values(point)
    per_row = {k: v[prep.codes] for k, v in zip(names[:4], params[:4], strict=True)}
    theta = {k: np.log(v) for k, v in per_row.items()}
    gamma = np.array([float(g) for g in params[4:]])
    rows = model._natural(model._row_theta(theta, gamma, prep.arrays[DESIGN]))
    loglik = model.log_likelihood(rows, model._data(prep.arrays), NUMPY)
    assert float(total) == pytest.approx(float(prep.weights @ loglik), rel=1e-10)
    # The pointwise log-likelihood that LOO reads (the generic route with covariates),
    # for two draws: the second at these values. Same terms, same order: 1e-12.
    pointwise = model._route(prep.stats, "_pointwise_log_likelihood")
    batch = {k: np.stack([0.9 * v, v]) for k, v in zip(names[:4], params[:4], strict=True)}
    batch.update({c: np.array([0.0, g]) for c, g in
                  zip(model._coefficient_names(), gamma, strict=True)})
    np.testing.assert_allclose(pointwise(batch, prep.stats)[1], loglik, rtol=1e-12)


def test_pooled_fit_agrees_with_maximum_likelihood(summary):
    settings = {"purchase_covariates": ["multi_cd"], "dropout_covariates": ["multi_cd"]}
    mle = BetaGeo(**settings).fit(summary)
    model = bayesian(BetaGeo)(**settings).fit(
        summary, draws=400, tune=400, chains=2, random_state=3, progressbar=False
    )
    table = model.summary()
    for name in ("purchase:multi_cd", "dropout:multi_cd", "r"):
        se = mle.summary().loc[name, "se"]
        assert abs(table.loc[name, "estimate"] - mle.params_[name]) < 0.5 * se
        assert table.loc[name, "sd"] == pytest.approx(se, rel=0.3)
    # default prior: Normal(0, 1 / sd(z)), recorded with the fit
    sd = float(summary["multi_cd"].std(ddof=0))
    assert model.priors_["purchase:multi_cd"] == {
        "mu": 0.0, "sigma": pytest.approx(DEFAULT_COEFFICIENT_SIGMA / sd)
    }
    draws = model.param_draws(6, random_state=1)
    assert list(draws.columns) == ["r", "alpha", "a", "b", "purchase:multi_cd",
                                   "dropout:multi_cd"]
    assert model.expected_purchases(t=10, data=summary, draws=draws).shape == (6, len(summary))


def test_a_tight_coefficient_prior_shrinks_it(summary):
    model = bayesian(GammaGamma)(
        spend_covariates=["multi_cd"], priors={"spend:multi_cd": {"mu": 0.0, "sigma": 1e-3}}
    ).fit(summary, draws=200, tune=300, chains=1, random_state=2, progressbar=False)
    assert abs(model.params_["spend:multi_cd"]) < 5e-3
    with pytest.raises(ValueError, match="unknown prior keys"):
        bayesian(GammaGamma)(spend_covariates=["multi_cd"], priors={"spend:other": {}}).fit(
            summary, method="map", progressbar=False
        )
    with pytest.raises(ValueError, match="covariate_penalty belongs to maximum likelihood"):
        bayesian(GammaGamma)(spend_covariates=["multi_cd"], covariate_penalty=1.0).fit(
            summary, method="map", progressbar=False
        )


@pytest.mark.slow
def test_groups_and_covariates_together(summary, tmp_path):
    model = HierarchicalBetaGeo(
        group_col="cohort", purchase_covariates=["multi_cd", "channel"]
    ).fit(summary, draws=300, tune=400, chains=2, random_state=5, progressbar=False)
    mle = BetaGeo(purchase_covariates=["multi_cd", "channel"]).fit(summary)
    estimate = model.summary().loc[("purchase:multi_cd", ""), "estimate"]
    assert abs(estimate - mle.params_["purchase:multi_cd"]) < 0.5 * mle.summary().loc[
        "purchase:multi_cd", "se"
    ]
    assert set(model.params_.columns) == {
        "r", "alpha", "a", "b", "purchase:multi_cd", "purchase:channel[store]",
        "purchase:channel[web]",
    }
    draws = model.param_draws(4, random_state=0)
    head = summary.head(30)
    per_draw = model.expected_purchases(t=10, data=head, draws=draws)
    assert per_draw.shape == (4, 30)
    path = model.save(tmp_path / "bg.nc")
    loaded = load(path)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(t=10, data=head), model.expected_purchases(t=10, data=head)
    )
    assert loaded.covariate_design_.levels == {"channel": ("email", "store", "web")}


# --------------------------------------------------------------------------------------
# NetCDF files
# --------------------------------------------------------------------------------------
def _write(path, config_changes=None, drop=None):
    rng = np.random.default_rng(0)
    shape = (2, 10)
    posterior = {
        "r": np.full(shape, 0.5), "s": np.full(shape, 0.6), "alpha": np.full(shape, 10.0),
        "beta": np.full(shape, 11.0),
        "purchase:channel[web]": rng.normal(0.2, 0.01, shape),
        "dropout:z": rng.normal(-0.1, 0.01, shape),
    }
    for name in drop or ():
        posterior.pop(name)
    config = {
        "format_version": 2, "group_col": None, "priors": None, "method": "nuts",
        "time_unit": "W", "n_customers": 10, "n_excluded": 0,
        "covariate_settings": {"purchase_covariates": ["channel"],
                               "dropout_covariates": ["z"]},
        "covariates": {"levels": {"channel": ["store", "web"]}},
    }
    config.update(config_changes or {})
    idata = az.from_dict(posterior=posterior)
    idata.posterior.attrs["clvmodels_model"] = "BayesianParetoNBD"
    idata.posterior.attrs["clvmodels_config"] = json.dumps(config)
    idata.to_netcdf(str(path))
    return path


def test_a_covariate_file_loads_and_predicts_with_its_levels(tmp_path):
    model = load(_write(tmp_path / "p.nc"))
    assert type(model).__name__ == "BayesianParetoNBD"
    assert model.covariate_design_.reference_levels == {"channel": "store"}
    frame = pd.DataFrame({"frequency": [1, 1], "recency": [5.0, 5.0], "T": [20.0, 20.0],
                          "channel": ["store", "web"], "z": [0.0, 0.0]})
    ratio = model._params_for(frame)["alpha"]
    assert ratio[0] / ratio[1] == pytest.approx(np.exp(model.params_["purchase:channel[web]"]))
    plain = ParetoNBD.from_params(
        {k: model.params_[k] for k in ("r", "alpha", "s", "beta")}
    )
    assert model.expected_purchases(t=5, data=frame).iloc[0] == pytest.approx(
        plain.expected_purchases(t=5, data=frame).iloc[0]
    )


@pytest.mark.parametrize(
    ("changes", "drop", "field"),
    [
        ({"covariate_settings": {"purchase_covariates": ["T"]}}, None,
         "clvmodels_config.covariate_settings"),
        ({"covariate_settings": {"spend_covariates": ["x"]}}, None,
         "clvmodels_config.covariate_settings"),
        ({"covariates": None}, None, "must be given together"),
        ({"covariates": {"levels": {"channel": ["web"]}}}, None,
         "clvmodels_config.covariates.levels.channel"),
        ({"covariates": {"levels": {"region": ["a", "b"]}}}, None,
         "clvmodels_config.covariates.levels"),
        ({"covariate_settings": "channel"}, None, "clvmodels_config.covariate_settings"),
        (None, ["dropout:z"], "posterior.dropout:z"),
    ],
)
def test_bad_covariate_configuration_is_refused_naming_the_field(
    tmp_path, changes, drop, field
):
    path = _write(tmp_path / "p.nc", changes, drop)
    with pytest.raises(ModelFileError, match=field.replace("[", r"\[")) as info:
        load(path)
    assert "p.nc" in str(info.value)
