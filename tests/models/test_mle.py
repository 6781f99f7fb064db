"""The maximum-likelihood engine: a model declared in this file alone gets fitting,
covariance, summary, draws and safe persistence; analytic gradients equal automatic
ones; saved files are checked field by field."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

from clvmodels import BetaGeo, GammaGamma, load
from clvmodels.errors import DataValidationError, ModelFileError
from clvmodels.models.base import registered_models
from clvmodels.models.mle import MaximumLikelihoodModel


class DeclaredNBD(MaximumLikelihoodModel):
    """Poisson purchases with Gamma(r, alpha) rates and no dropout (Ehrenberg's NBD)."""

    param_names = ("r", "alpha")
    data_columns = ("frequency", "recency", "T")

    @staticmethod
    def log_likelihood(params, data, ops):
        r, alpha, x = params["r"], params["alpha"], data["frequency"]
        return (
            ops.gammaln(r + x) - ops.gammaln(r) + r * ops.log(alpha)
            - (r + x) * ops.log(alpha + data["T"])
        )


class DeclaredLogNormalSpend(MaximumLikelihoodModel):
    """Mean spend log-normal with a real location: exercises ``real_params``."""

    param_names = ("mu", "sigma")
    real_params = ("mu",)
    data_columns = ("frequency", "monetary_value")

    @staticmethod
    def log_likelihood(params, data, ops):
        z = (np.log(data["monetary_value"]) - params["mu"]) / params["sigma"]
        return -0.5 * z * z - ops.log(params["sigma"]) - np.log(data["monetary_value"])

    def _fit_rows(self, data):
        return data["frequency"].to_numpy() > 0


def _nbd_neg_loglik(log_params, x, T):
    r, alpha = np.exp(log_params)
    ll = (
        special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        - (r + x) * np.log(alpha + T)
    )
    return -float(ll.sum())


@pytest.fixture(scope="module")
def toy(cdnow_summary):
    return DeclaredNBD().fit(cdnow_summary)


# -- a declared model gets everything ----------------------------------------------------
def test_declared_model_fits_to_the_independent_optimum(toy, cdnow_summary):
    x = cdnow_summary["frequency"].to_numpy(float)
    T = cdnow_summary["T"].to_numpy(float)
    reference = optimize.minimize(
        _nbd_neg_loglik, np.log([1.0, 10.0]), args=(x, T), method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10_000},
    )
    np.testing.assert_allclose(np.log(toy.params_.to_numpy()), reference.x, atol=1e-5)
    assert toy.log_likelihood_ == pytest.approx(-reference.fun, rel=1e-10)
    assert toy.aic_ == pytest.approx(4 - 2 * toy.log_likelihood_)
    assert toy.bic_ == pytest.approx(2 * math.log(2357) - 2 * toy.log_likelihood_)
    assert toy.n_obs_ == 2357 and toy.time_unit_ == "W"
    assert "DeclaredNBD" in registered_models()


def test_covariance_is_the_inverse_observed_information(toy, cdnow_summary):
    x = cdnow_summary["frequency"].to_numpy(float)
    T = cdnow_summary["T"].to_numpy(float)
    z = np.log(toy.params_.to_numpy())
    h = 1e-4
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (
                _nbd_neg_loglik(z + e_i + e_j, x, T) - _nbd_neg_loglik(z + e_i - e_j, x, T)
                - _nbd_neg_loglik(z - e_i + e_j, x, T) + _nbd_neg_loglik(z - e_i - e_j, x, T)
            ) / (4 * h * h)
    np.testing.assert_allclose(toy.covariance_.to_numpy(), np.linalg.inv(hess), rtol=1e-4)
    table = toy.summary(interval=0.9)
    se_log = np.sqrt(np.diag(toy.covariance_.to_numpy()))
    np.testing.assert_allclose(table["se"], toy.params_.to_numpy() * se_log)
    np.testing.assert_allclose(
        table["upper 90%"], toy.params_.to_numpy() * np.exp(1.6448536269514722 * se_log)
    )


def test_param_draws_follow_the_sampling_distribution(toy):
    draws = toy.param_draws(40_000, random_state=3)
    assert list(draws.columns) == ["r", "alpha"]
    empirical = np.cov(np.log(draws.to_numpy()).T)
    np.testing.assert_allclose(empirical, toy.covariance_.to_numpy(), rtol=0.05)
    np.testing.assert_allclose(
        np.log(draws).mean(), np.log(toy.params_.to_numpy()), atol=4 * 0.005
    )


def test_weights_equal_expanded_rows_and_compression(cdnow_summary):
    rows = cdnow_summary.iloc[:400]
    repeat = np.arange(400) % 3 + 1
    expanded = rows.loc[rows.index.repeat(repeat)].reset_index(drop=True)
    expanded.attrs = rows.attrs
    weighted = DeclaredNBD().fit(rows, weights=repeat)
    plain = DeclaredNBD().fit(expanded)
    np.testing.assert_allclose(weighted.params_, plain.params_, rtol=1e-7)
    assert weighted.n_obs_ == plain.n_obs_ == repeat.sum()


def test_real_parameters_are_not_log_transformed(cdnow_summary):
    model = DeclaredLogNormalSpend().fit(cdnow_summary)
    buyers = cdnow_summary.loc[cdnow_summary["frequency"] > 0, "monetary_value"]
    logs = np.log(buyers.to_numpy())
    assert model.params_["mu"] == pytest.approx(logs.mean(), rel=1e-6)
    assert model.params_["sigma"] == pytest.approx(logs.std(), rel=1e-5)
    assert model.n_excluded_ == 1411
    table = model.summary()
    se_mu = table.loc["mu", "se"]
    assert se_mu == pytest.approx(logs.std() / math.sqrt(len(logs)), rel=1e-3)
    assert table.loc["mu", "upper 95%"] == pytest.approx(logs.mean() + 1.959964 * se_mu, rel=1e-6)


def test_save_and_load_a_declared_model(toy, tmp_path):
    path = toy.save(tmp_path / "nbd.json")
    loaded = load(path)
    assert type(loaded) is DeclaredNBD
    np.testing.assert_allclose(loaded.params_, toy.params_)
    np.testing.assert_allclose(loaded.covariance_, toy.covariance_)
    assert loaded.log_likelihood_ == toy.log_likelihood_ and loaded.time_unit_ == "W"
    assert sorted(tmp_path.iterdir()) == [path]  # no temporary file left behind


# -- analytic gradients are kept as speed-ups and checked against the automatic one ------
@pytest.mark.parametrize("model_class", [BetaGeo, GammaGamma])
def test_analytic_gradient_equals_automatic_gradient(model_class, cdnow_summary):
    model = model_class()
    frame = cdnow_summary.loc[model._fit_rows(cdnow_summary)]
    arrays = {c: frame[c].to_numpy(float) for c in model.data_columns}
    weights = np.random.default_rng(0).integers(1, 4, len(frame)).astype(float)
    rng = np.random.default_rng(1)
    base = model_class().fit(cdnow_summary).params_.to_numpy()
    for _ in range(5):
        theta = np.log(base) + rng.normal(0.0, 0.5, base.size)
        analytic = model._neg_loglik_grad(theta, model._with_cache(dict(arrays), weights), weights)
        automatic = model.automatic_neg_loglik_grad(theta, arrays, weights)
        assert analytic[0] == pytest.approx(automatic[0], rel=1e-12)
        np.testing.assert_allclose(analytic[1], automatic[1], rtol=1e-8, atol=1e-6)


# -- bad settings are refused before any work ---------------------------------------------
@pytest.mark.parametrize("penalizer", [-1.0, float("nan"), float("inf"), "a lot"])
def test_bad_penalizer_is_refused(cdnow_summary, penalizer):
    with pytest.raises(ValueError, match="penalizer"):
        DeclaredNBD(penalizer=penalizer).fit(cdnow_summary)


@pytest.mark.parametrize("model_class", [BetaGeo, GammaGamma, DeclaredNBD])
def test_weights_are_checked_the_same_way_for_every_model(model_class, cdnow_summary):
    with pytest.raises(DataValidationError, match="one entry per row"):
        model_class().fit(cdnow_summary, weights=np.ones(3))
    with pytest.raises(DataValidationError, match="all 2357 weights are zero"):
        model_class().fit(cdnow_summary, weights=np.zeros(len(cdnow_summary)))
    bad = np.ones(len(cdnow_summary))
    bad[5] = -1
    with pytest.raises(DataValidationError, match="1 of 2357 rows are negative"):
        model_class().fit(cdnow_summary, weights=bad)


# -- saved files are checked field by field ----------------------------------------------
@pytest.fixture
def saved(tmp_path, toy):
    path = toy.save(tmp_path / "model.json")
    return path, json.loads(path.read_text())


def _tamper(path, payload, **changes):
    for key, value in changes.items():
        target = payload
        *parents, last = key.split("__")
        for parent in parents:
            target = target[parent]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"params__r": -1.0}, "must be positive"),
        ({"params__r": 0.0}, "must be positive"),
        ({"params__alpha": 1e300}, "outside the supported range"),
        ({"params__r": "0.3"}, "params.r' must be a number"),
        ({"params__r": True}, "params.r' must be a number"),
        ({"params__r": KeyError}, "field 'params' must hold exactly"),
        ({"params__extra": 1.0}, "field 'params' must hold exactly"),
        ({"covariance": [[-1.0, 0.0], [0.0, -1.0]]}, "not positive definite"),
        ({"covariance": [[1.0, 0.5], [0.2, 1.0]]}, "not symmetric"),
        ({"covariance": [[1.0, 0.0]]}, "2 x 2"),
        ({"covariance": [[1.0, "x"], ["x", 1.0]]}, "must be a number"),
        ({"model": "os.system"}, "unknown model 'os.system'"),
        ({"model": 3}, "field 'model'"),
        ({"format_version": 99}, "format_version"),
        ({"time_unit": "fortnight"}, "time_unit"),
        ({"time_unit": ["W"]}, "time_unit"),
        ({"params__r": 10**400}, "beyond the range of a float"),
        ({"covariance": [[400.0, 0.0], [0.0, 1.0]]}, "standard errors above 10"),
        ({"n_obs": -5}, "n_obs"),
        ({"settings": {"penalizer": -2}}, "settings"),
        ({"settings": {"unknown": 1}}, "settings"),
        ({"extra": []}, "extra"),
        ({"surprise": 1}, "unknown field"),
        ({"params": KeyError}, "missing field"),
    ],
)
def test_tampered_json_is_refused_naming_file_and_field(saved, changes, message):
    path, payload = saved
    _tamper(path, payload, **changes)
    with pytest.raises(ModelFileError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_nan_parameter_in_json_is_refused(saved):
    path, payload = saved
    path.write_text(json.dumps(payload).replace('"r": 0.', '"r": NaN, "x": 0.', 1))
    with pytest.raises(ModelFileError, match=str(path.name)):
        load(path)


@pytest.mark.parametrize(
    "content",
    [b"{" * 100_000, b"{not json", b"\xff\xfe{\x00", b"[1, 2]", b"\x00\x01garbage", b""],
)
def test_unreadable_files_are_refused_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert "broken.json" in str(info.value)


def test_folder_and_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="folder"):
        load(tmp_path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.json")


def test_version_1_files_still_load(tmp_path, cdnow_summary):
    model = BetaGeo().fit(cdnow_summary)
    legacy = {
        "model": "BetaGeo",
        "format_version": 1,
        "settings": {"penalizer": 0.0},
        "params": model.params_.to_dict(),
        "covariance_log": model.covariance_.to_numpy().tolist(),
        "log_likelihood": model.log_likelihood_,
        "n_obs": 2357,
        "time_unit": "W",
        "extra": {},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy))
    loaded = load(path)
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    np.testing.assert_allclose(loaded.covariance_, model.covariance_)


def test_from_params_checks_values_like_a_file():
    model = DeclaredNBD.from_params({"r": 0.4, "alpha": 12.0}, time_unit="W")
    assert model.is_fitted and model.time_unit_ == "W"
    with pytest.raises(ModelFileError, match="positive"):
        DeclaredNBD.from_params({"r": -0.4, "alpha": 12.0})
    with pytest.raises(ValueError, match="no finite covariance"):
        model.param_draws(10)
