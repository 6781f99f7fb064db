"""ModifiedBetaGeoCNBD (MBG/CNBD-k): exactly BetaGeoCNBD(modified=True) under a name of its
own, with that name in model files, the Bayesian version and the model family."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from clvmodels import BetaGeoCNBD, ModifiedBetaGeoCNBD, add_log_interpurchase_sum, load
from clvmodels.errors import ModelFileError
from clvmodels.evaluation import family_models
from clvmodels.models.beta_geo_cnbd import bgcnbd_probability_alive, simulate_bgcnbd

# BTYDplus's own simulation settings (tests/testthat/test-mbg-cnbd-k.R).
BTYDPLUS_SIM = {"r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}


@pytest.fixture(scope="module")
def cdnow_regular(cdnow_transactions, cdnow_summary):
    return add_log_interpurchase_sum(cdnow_summary, cdnow_transactions)


@pytest.fixture(scope="module")
def regular_k2():
    rng = np.random.default_rng(7)
    T = np.round(rng.uniform(36, 96, 4_000) / 12) * 12
    return simulate_bgcnbd(4_000, **BTYDPLUS_SIM, T=T, k=2, modified=True, random_state=rng)


def test_cdnow_fit_is_btydplus_mbgnbd_and_the_modified_bgcnbd(cdnow_regular):
    # BTYDplus on CDNOW: k = 1 (no regularity), and the MBG/NBD estimates
    # r 0.525, alpha 6.183, a 0.891, b 1.614.
    model = ModifiedBetaGeoCNBD().fit(cdnow_regular)
    assert model.k_ == 1 and model.modified is True
    assert model.params_.round(3).to_dict() == {"r": 0.525, "alpha": 6.183, "a": 0.891,
                                                "b": 1.614}
    reference = BetaGeoCNBD(modified=True).fit(cdnow_regular)
    pd.testing.assert_series_equal(model.params_, reference.params_)
    assert model.log_likelihood_ == reference.log_likelihood_
    assert model.aic_ == reference.aic_


def test_recovers_k_and_predicts_as_the_modified_bgcnbd(regular_k2):
    model = ModifiedBetaGeoCNBD().fit(regular_k2)
    assert model.k_ == 2
    table = model.summary(interval=0.999)
    for name, value in BTYDPLUS_SIM.items():
        assert table.loc[name, "lower 99.9%"] <= value <= table.loc[name, "upper 99.9%"]
    reference = BetaGeoCNBD(modified=True).fit(regular_k2)
    rows = regular_k2.iloc[:200]
    np.testing.assert_array_equal(model.expected_purchases(t=26, data=rows),
                                  reference.expected_purchases(t=26, data=rows))
    np.testing.assert_array_equal(model.probability_alive(data=rows),
                                  reference.probability_alive(data=rows))
    # ... and differs from the unmodified BG/CNBD-k at the same parameters.
    plain = BetaGeoCNBD.from_params(model.params_.to_dict(), k=2, time_unit="W")
    assert not np.allclose(plain.probability_alive(data=rows), model.probability_alive(data=rows))


def test_the_variant_is_fixed(regular_k2):
    with pytest.raises(TypeError, match="modified"):
        ModifiedBetaGeoCNBD(modified=False)
    model = ModifiedBetaGeoCNBD(k=2)
    model.modified = False
    with pytest.raises(ValueError, match=r"modified variant.*use BetaGeoCNBD"):
        model.fit(regular_k2)


def test_save_load_keeps_the_name_and_refuses_another_variant(regular_k2, tmp_path):
    model = ModifiedBetaGeoCNBD(max_k=4).fit(regular_k2)
    path = model.save(tmp_path / "model.json")
    payload = json.loads(path.read_text())
    assert payload["model"] == "ModifiedBetaGeoCNBD"
    assert payload["settings"] == {"penalizer": 0.0, "k": None, "max_k": 4}
    loaded = load(path)
    assert type(loaded) is ModifiedBetaGeoCNBD and loaded.modified is True
    assert loaded.k_ == 2 and loaded.max_k == 4
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    payload["settings"]["modified"] = False
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(payload))
    with pytest.raises(ModelFileError, match=r"tampered\.json.*unknown settings.*modified"):
        load(tampered)


def test_is_a_member_of_the_family():
    models = family_models()
    transaction, _ = models["ModifiedBetaGeoCNBD + GammaGamma"]
    assert isinstance(transaction, ModifiedBetaGeoCNBD) and transaction.modified is True


def test_bayesian_version_is_modified_and_keeps_its_name(regular_k2, tmp_path):
    from clvmodels.models.bayes import bayesian

    cls = bayesian(ModifiedBetaGeoCNBD)
    assert cls.__name__ == "BayesianModifiedBetaGeoCNBD"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short run: ESS below what the checks ask for
        model = cls(max_k=3).fit(regular_k2.iloc[:800], draws=30, tune=30, chains=1,
                                 random_state=0, progressbar=False)
    assert model.modified is True and model.k_ == 2
    # Its predictions are the MBG/CNBD-2's under each draw.
    rows = regular_k2.iloc[:50]
    draws = model.param_draws(10, random_state=1)
    history = (rows[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    params = (draws[name].to_numpy()[:, None] for name in ("r", "alpha", "a", "b"))
    np.testing.assert_allclose(
        model.probability_alive(data=rows, draws=draws),
        bgcnbd_probability_alive(*params, *history, k=2, modified=True), rtol=1e-12,
    )
    loaded = load(model.save(tmp_path / "model.nc"))
    assert type(loaded).__name__ == "BayesianModifiedBetaGeoCNBD"
    assert (loaded.modified, loaded.max_k, loaded.k_) == (True, 3, 2)
