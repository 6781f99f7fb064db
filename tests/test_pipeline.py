"""The pipeline: settings checked up front, one reading path, models by name, results."""

from __future__ import annotations

import ast
import dataclasses
import json
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from clvmodels import BetaGeo, GammaGamma, customer_lifetime_value
from clvmodels.averaging import AveragedForecast
from clvmodels.backtest import backtest_tier_probability
from clvmodels.calibration import recalibrated
from clvmodels.data import read_transactions
from clvmodels.errors import ConvergenceError
from clvmodels.evaluation import AVERAGE_NAME
from clvmodels.pipeline import (
    PipelineSettings,
    available_models,
    make_model,
    model_kind,
    run_pipeline,
)
from clvmodels.shocks import estimate_common_shocks, shock_factors

COLUMNS = ("customer_id", "date", "amount")
SRC = Path(__file__).resolve().parents[1] / "src" / "clvmodels"


def _settings(source, **kwargs):
    kwargs.setdefault("n_draws", 100)
    return PipelineSettings(source, *COLUMNS, **kwargs)


@pytest.fixture(scope="module")
def result(cdnow_transactions):
    return run_pipeline(
        _settings(cdnow_transactions, observation_end="1998-06-30", predictive=True),
        progressbar=False,
    )


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"period": "fortnight"}, "period='fortnight' is not supported"),
        ({"horizon": 0}, "horizon must be at least 1"),
        ({"discount_rate": -0.1}, "discount_rate"),
        ({"interval": 1.5}, "interval must lie strictly between 0 and 1"),
        ({"n_draws": 0}, "n_draws must be a positive whole number"),
        ({"n_futures": 50}, "n_futures needs predictive=True"),
        ({"predictive": True, "n_futures": 101}, "n_futures must be"),
        ({"predictive": True, "n_futures": 1}, "n_futures must be"),
        ({"time_unit": "fortnight"}, "time_unit='fortnight' is not supported"),
        ({"freq": "5min"}, "freq='5min' is not supported"),
        ({"models": ("Nope", "GammaGamma")}, "unknown transaction model 'Nope': choose one of"),
        ({"models": ("BetaGeo", "BetaGeo")}, "BetaGeo is not a spend model"),
        ({"models": {}}, "models must be"),
        ({"models": {"a": ("BetaGeo",)}}, r"models\['a'\] must be a \(transaction model"),
        ({"forecast_model": "other"}, "forecast_model='other' is not one of"),
        ({"fit_options": 3}, "fit_options must be a mapping"),
        ({"common_shocks": "yes"}, "common_shocks must be True or False"),
        ({"calibration_end": "1997-09-30", "forecast_model": "average", "common_shocks": True},
         "common_shocks=True needs one model pair's forecast: forecast_model='model average'"),
    ],
)
def test_settings_are_checked_before_any_data_is_read(change, message):
    # The source does not exist: the settings fail first, on their own.
    with pytest.raises(ValueError, match=message):
        _settings("nowhere/*.parquet", **change)


def test_settings_are_frozen_and_normalised():
    settings = _settings("log.parquet", horizon=6.0, models=(BetaGeo, GammaGamma()))
    assert settings.horizon == 6 and isinstance(settings.horizon, int)
    assert list(settings.models) == ["BetaGeo + GammaGamma"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.horizon = 3
    with pytest.raises(TypeError):
        settings.models["other"] = ("BetaGeo", "GammaGamma")
    assert settings.calendar.period_length("W") == pytest.approx(365.25 / 12 / 7)


def test_settings_as_json_name_files_but_never_their_folders(tmp_path):
    source = [tmp_path / "a.parquet", str(tmp_path / "b.parquet")]
    settings = _settings(source, observation_end=pd.Timestamp("1998-06-30"),
                         models={"mle": (BetaGeo(), "GammaGamma")}, fit_options={"draws": 5})
    d = settings.to_dict()
    json.dumps(d)
    assert d["source"] == ["a.parquet", "b.parquet"]
    assert str(tmp_path) not in json.dumps(d)
    assert d["models"] == {"mle": ["BetaGeo", "GammaGamma"]}
    assert d["observation_end"] == "1998-06-30T00:00:00" and d["fit_options"] == {"draws": 5}


# --------------------------------------------------------------------------------------
# Models by name
# --------------------------------------------------------------------------------------
def test_models_come_from_the_registry():
    transaction, spend = available_models("transaction"), available_models("spend")
    assert {"BetaGeo", "HierarchicalBetaGeo"} <= set(transaction)
    assert {"GammaGamma", "HierarchicalGammaGamma"} <= set(spend)
    assert not set(transaction) & set(spend)
    assert model_kind(transaction["BetaGeo"]) == "transaction"
    grouped = make_model("HierarchicalBetaGeo", kind="transaction", group_col="cohort")
    assert grouped.group_col == "cohort"
    assert make_model("BetaGeo", group_col="cohort").group_col is None  # takes no groups
    with pytest.raises(ValueError, match="kind must be one of"):
        available_models("churn")


def test_model_objects_are_copied_never_changed(cdnow_transactions):
    given = BetaGeo()
    result = run_pipeline(
        _settings(cdnow_transactions, models=(given, GammaGamma), segments=False),
        progressbar=False,
    )
    assert not given.is_fitted and result.transaction_model is not given
    assert result.transaction_model.is_fitted and result.spend_model.is_fitted


# --------------------------------------------------------------------------------------
# One reading path
# --------------------------------------------------------------------------------------
def test_files_are_read_out_of_core_with_the_same_result(
    result, cdnow_transactions, tmp_path, monkeypatch
):
    for i, rows in enumerate(np.array_split(np.arange(len(cdnow_transactions)), 3)):
        cdnow_transactions.iloc[rows].to_csv(tmp_path / f"part{i}.csv", index=False)

    def refuse(*args, **kwargs):
        raise AssertionError("files go to DuckDB, never through pandas readers")

    monkeypatch.setattr(pd, "read_csv", refuse)
    monkeypatch.setattr(pd, "read_parquet", refuse)
    from_files = run_pipeline(
        dataclasses.replace(result.settings, source=str(tmp_path / "*.csv")), progressbar=False
    )
    pd.testing.assert_frame_equal(from_files.summary, result.summary, check_exact=False)
    pd.testing.assert_frame_equal(from_files.customers(), result.customers(), check_exact=False)
    assert from_files.settings.to_dict()["source"] == "*.csv"
    # Single transactions, where a step needs them, come the same way.
    log = from_files.transactions()
    assert list(log.columns) == list(COLUMNS) and len(log) == len(cdnow_transactions)
    assert log["date"].dtype.kind == "M"
    assert (log["amount"].to_numpy() == cdnow_transactions["amount"].to_numpy()).all()


def test_a_polars_frame_takes_the_in_memory_route(result, cdnow_transactions):
    import polars as pl
    frame = pl.from_pandas(cdnow_transactions)
    summary = run_pipeline(
        dataclasses.replace(result.settings, source=frame, segments=False), progressbar=False
    ).summary
    pd.testing.assert_frame_equal(summary, result.summary)
    assert read_transactions(frame, *COLUMNS).shape == (len(cdnow_transactions), 3)


def test_missing_columns_are_named(cdnow_transactions, tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['price'\]"):
        run_pipeline(PipelineSettings(cdnow_transactions, "customer_id", "date", "price"),
                     progressbar=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['price'\]"):
        read_transactions(cdnow_transactions, "customer_id", "date", "price")


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
def test_result_holds_every_step(result):
    assert len(result.summary) == 2357 and result.time_unit == "W"
    assert result.split is None and result.comparison is None and result.models == {}
    customers = result.customers()
    assert len(customers) == 2357
    assert {"frequency", "clv", "clv_lower", "clv_pred_upper", "tier",
            "top_tier_probability_realised_recalibrated"} <= set(customers.columns)
    assert list(result.timings) == ["summary", "fitting BetaGeo + GammaGamma",
                                    "forecasting CLV", "segmenting", "tier backtest"]
    assert result.warnings == [] and result.tier_backtest_note is None
    d = result.to_dict()
    json.dumps(d)
    assert d["customers"] == 2357 and d["settings"]["source"] == "DataFrame (6,919 rows)"
    assert d["tier_backtest"]["cut"] == "1997-06-30" and d["settings"]["tier_backtest"]
    assert d["total"]["clv_lower"] < d["total"]["clv"] < d["total"]["clv_upper"]


def test_top_tier_probabilities_come_recalibrated_by_a_backtest(result):
    # The forecast (12 months from 1998-06-30) is tried on the 12 months before its
    # calibration end, with the models refitted on the data up to 1997-06-30; every
    # customer's top-tier probability is then mapped as that backtest found.
    check = result.tier_backtest
    assert (check.cut, check.end, check.n_customers) == ("1997-06-30", "1998-06-30", 2357)
    direct = backtest_tier_probability(result.forecast, result.transactions(), *COLUMNS,
                                       calibration_end="1998-06-30", random_state=0)
    assert (check.intercept, check.slope) == pytest.approx((direct.intercept, direct.slope))
    customers = result.customers()
    raw = customers["top_tier_probability_realised"].to_numpy()
    mapped = customers["top_tier_probability_realised_recalibrated"].to_numpy()
    np.testing.assert_allclose(mapped, recalibrated(raw, check.intercept, check.slope))
    # CDNOW's realised top tier is less predictable than the draws say: the map
    # shrinks the probabilities towards the share of the tier.
    assert 0.5 < check.slope < 1.0
    high = raw > 0.5
    assert (mapped[high] < raw[high]).all()


def test_the_tier_backtest_says_why_it_did_not_run(cdnow_transactions):
    # Twelve months before 1997-09-30 is before the log's first purchase.
    settings = _settings(cdnow_transactions, observation_end="1997-09-30", predictive=True)
    with pytest.warns(UserWarning, match="the tier backtest did not run"):
        result = run_pipeline(settings, progressbar=False)
    assert result.tier_backtest is None
    assert "no transaction falls on or before calibration_end" in result.tier_backtest_note
    assert "the first is on 1997-01-01" in result.tier_backtest_note
    assert "top_tier_probability_realised_recalibrated" not in result.customers()
    assert "the customer table has no recalibrated top-tier probability" in result.warnings[0]
    assert result.to_dict()["tier_backtest"] == {"not_run": result.tier_backtest_note}
    # Turned off, or without predictive tiers, it is not tried at all.
    for change in ({"tier_backtest": False}, {"predictive": False}, {"segments": False}):
        quiet = run_pipeline(dataclasses.replace(settings, **change), progressbar=False)
        assert "tier backtest" not in quiet.timings and quiet.warnings == []
        assert quiet.tier_backtest is None and quiet.tier_backtest_note is None
    with pytest.raises(ValueError, match="tier_backtest must be True or False"):
        _settings(cdnow_transactions, tier_backtest="yes")


class ShortWindowFails(BetaGeo):
    """Does not converge on a window shorter than a year (the tier backtest's)."""

    def fit(self, data, weights=None):
        if data["T"].max() < 52:
            raise ConvergenceError("no convergence on the short window")
        return super().fit(data, weights=weights)


def test_a_backtest_refit_that_fails_leaves_the_forecast_whole(cdnow_transactions):
    settings = _settings(cdnow_transactions, observation_end="1998-06-30", predictive=True,
                         models=(ShortWindowFails, "GammaGamma"))
    with pytest.warns(UserWarning, match="no convergence on the short window"):
        result = run_pipeline(settings, progressbar=False)
    assert result.tier_backtest is None
    assert result.tier_backtest_note == "no convergence on the short window"
    customers = result.customers()
    assert "top_tier_probability_realised" in customers
    assert "top_tier_probability_realised_recalibrated" not in customers


def test_common_shocks_widen_the_totals_and_leave_customers_alone(cdnow_transactions):
    settings = _settings(cdnow_transactions, observation_end="1998-06-30", predictive=True,
                         models=("BetaGeo", "GammaGamma"), tier_backtest=False,
                         common_shocks=True, n_draws=300)  # fmt: skip
    result = run_pipeline(settings, progressbar=False)
    plain = run_pipeline(dataclasses.replace(settings, common_shocks=False), progressbar=False)
    assert "common shocks" in result.timings and result.common_shocks_note is None
    # The shocks are those measured on the log up to the summary's end, against the
    # forecasting model; the factors those made for the forecast.
    shocks = estimate_common_shocks(result.transaction_model, cdnow_transactions,
                                    "customer_id", "date", calibration_end="1998-06-30",
                                    random_state=0)  # fmt: skip
    pd.testing.assert_frame_equal(result.common_shocks.summary(), shocks.summary())
    factors = shock_factors(result.forecast, result.summary, shocks, random_state=0)
    np.testing.assert_array_equal(result.shock_factors.factors, factors.factors)
    # CDNOW's weekly purchases scatter around the curve by about 0.2 beyond purchase noise.
    assert 0.15 < result.common_shocks.summary().loc["sigma", "mean"] < 0.3
    # Customers, tiers and their probabilities are those of the plain run ...
    pd.testing.assert_frame_equal(result.customers(), plain.customers())
    total, plain_total = result.total(), plain.total()
    pd.testing.assert_series_equal(plain_total, result.forecast.total())
    assert total["clv"] == plain_total["clv"]
    # ... the totals' intervals carry the shocks: the portfolio's and every tier's.
    for low, high in (("clv_lower", "clv_upper"), ("clv_pred_lower", "clv_pred_upper")):
        assert total[high] - total[low] > 1.5 * (plain_total[high] - plain_total[low])
    tiers, plain_tiers = result.segmentation.tiers, plain.segmentation.tiers
    assert ((tiers["clv_total_upper"] - tiers["clv_total_lower"]) > 1.5 * (
        plain_tiers["clv_total_upper"] - plain_tiers["clv_total_lower"])).all()  # fmt: skip
    record = json.loads(json.dumps(result.to_dict()))
    assert record["total"]["clv_pred_upper"] == pytest.approx(total["clv_pred_upper"])
    assert record["common_shocks"]["shock_method"] == "refits"
    assert record["common_shocks"]["total_without_shocks"]["clv_pred_upper"] == pytest.approx(
        plain_total["clv_pred_upper"])  # fmt: skip
    assert "common_shocks" not in plain.to_dict()


def test_common_shocks_the_data_cannot_show_are_said_not_dropped(cdnow_transactions):
    # 120 customers expect fewer than 10 repeat purchases in every week.
    first = cdnow_transactions["customer_id"].drop_duplicates().iloc[:120]
    small = cdnow_transactions[cdnow_transactions["customer_id"].isin(first)]
    settings = _settings(small, observation_end="1998-06-30", models=("BetaGeo", "GammaGamma"),
                         segments=False, common_shocks=True)  # fmt: skip
    with pytest.warns(UserWarning, match="the common shocks were not measured"):
        result = run_pipeline(settings, progressbar=False)
    assert result.common_shocks is None and result.shock_factors is None
    assert "only 0 steps expect at least 10 repeat purchases" in result.common_shocks_note
    assert result.to_dict()["common_shocks"] == {"not_run": result.common_shocks_note}
    pd.testing.assert_series_equal(result.total(), result.forecast.total())


def test_comparison_fits_every_pair_on_calibration_and_forecasts_on_all(cdnow_transactions):
    settings = _settings(
        cdnow_transactions, calibration_end="1997-09-30", observation_end="1998-06-30",
        models={"penalised": ("BetaGeo", "GammaGamma"), "plain": (BetaGeo(), GammaGamma())},
        forecast_model="plain", segments=False,
    )
    result = run_pipeline(settings, progressbar=False)
    # With the log the comparison adds the model average (clvmodels.compare).
    assert list(result.comparison.index) == ["penalised", "plain", AVERAGE_NAME]
    assert (result.comparison["purchases_actual"] == 1882).all()
    assert result.summary.attrs["observation_end"] == "1998-06-30"
    assert len(result.split) == 2357 and len(result.summary) == 2357
    calibration, forecast = result.models["plain"][0], result.transaction_model
    assert calibration.is_fitted and forecast is not calibration
    assert forecast.params_["r"] != pytest.approx(calibration.params_["r"])
    json.dumps(result.to_dict())


def test_the_model_average_forecasts(cdnow_transactions):
    settings = _settings(
        cdnow_transactions, calibration_end="1997-09-30", observation_end="1998-06-30",
        models={"BG": ("BetaGeo", "GammaGamma"), "Pareto": ("ParetoNBD", "GammaGamma")},
        forecast_model="average", n_draws=50, horizon=6,
    )
    assert settings.forecast_model == settings.forecast_name == AVERAGE_NAME
    result = run_pipeline(settings, progressbar=False)
    forecast, weights = result.forecast, result.comparison.attrs["averaging_weights"]
    assert isinstance(forecast, AveragedForecast) and result.forecast_name == AVERAGE_NAME
    assert forecast.weights.to_dict() == pytest.approx(weights, abs=1e-12)
    # Each pair refitted on all the data; the forecast is their weighted mean.
    members = {
        name: customer_lifetime_value(make_model(tx).fit(result.summary),
                                      GammaGamma().fit(result.summary), result.summary,
                                      horizon=6, n_draws=50, random_state=0)
        for name, tx in (("BG", "BetaGeo"), ("Pareto", "ParetoNBD"))
    }
    mean = sum(weights[n] * fc.table["clv"] for n, fc in members.items())
    np.testing.assert_allclose(forecast.table["clv"], mean.reindex(forecast.table.index),
                               rtol=1e-9)
    # The segments are the mixture's; the pair with the largest weight stands for it.
    assert result.segmentation is not None and len(result.segmentation.customers) == 2357
    largest = max(weights, key=weights.get)
    assert type(result.transaction_model).__name__ == settings.models[largest][0]
    json.dumps(result.to_dict())
    with pytest.raises(ValueError, match="needs calibration_end and two or more models"):
        _settings(cdnow_transactions, forecast_model="average")


class Recording(BetaGeo):
    """Records the options its fit received, and warns."""

    calls: ClassVar[list[dict]] = []

    def fit(self, data, weights=None, draws=100, random_seed=None):
        self.calls.append({"draws": draws, "random_seed": random_seed})
        warnings.warn("recorded on the way", UserWarning, stacklevel=2)
        return super().fit(data, weights=weights)


def test_fit_options_and_warnings(cdnow_transactions):
    Recording.calls.clear()
    settings = _settings(cdnow_transactions, models=(Recording, "GammaGamma"),
                         fit_options={"draws": 7, "chains": 3}, random_state=11,
                         segments=False)
    with pytest.warns(UserWarning, match="recorded on the way"):
        result = run_pipeline(settings, progressbar=False)
    # Options a fit takes reach it (the seed from random_state); others are left out.
    assert Recording.calls == [{"draws": 7, "random_seed": 11}]
    assert result.warnings == ["UserWarning: recorded on the way"]


class Failing(GammaGamma):
    def fit(self, data, weights=None):
        raise RuntimeError("spend fit failed")


def test_warnings_are_shown_when_a_step_fails(cdnow_transactions):
    settings = _settings(cdnow_transactions, models=(Recording, Failing), segments=False)
    with pytest.warns(UserWarning, match="recorded on the way"), pytest.raises(
        RuntimeError, match="spend fit failed"
    ):
        run_pipeline(settings, progressbar=False)


# --------------------------------------------------------------------------------------
# No concrete models outside models/
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["pipeline.py", "report.py", "cli.py"])
def test_models_are_named_never_imported(module):
    """The pipeline, the report and the command line know models only by the contract."""
    tree = ast.parse((SRC / module).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module in {"clvmodels.models", "clvmodels.models.base"} or (
                not node.module.startswith("clvmodels.models")
            ), f"{module} imports {node.module}"
        # No BG/NBD parameter names: parameter tables come from summary().
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value not in {"r", "alpha", "a", "b", "p", "q", "gamma"}, module


# --------------------------------------------------------------------------------------
# The family by default; the best forecasts; columns a model needs come from the log
# --------------------------------------------------------------------------------------
FAMILY = ["BetaGeo + GammaGamma", "BetaGeoCNBD + GammaGamma", "ModifiedBetaGeo + GammaGamma",
          "ModifiedBetaGeoCNBD + GammaGamma", "ParetoNBD + GammaGamma"]


def test_the_default_models_are_the_family():
    settings = _settings("log.parquet")
    assert list(settings.models) == FAMILY
    assert settings.to_dict()["models"]["BetaGeoCNBD + GammaGamma"] == ["BetaGeoCNBD",
                                                                        "GammaGamma"]
    # Without a holdout the first pair forecasts; with one, the comparison chooses.
    assert settings.forecast_name == "BetaGeo + GammaGamma"
    assert _settings("log.parquet", calibration_end="1997-09-30").forecast_name is None
    chosen = _settings("log.parquet", calibration_end="1997-09-30",
                       forecast_model="ParetoNBD + GammaGamma")
    assert chosen.forecast_name == "ParetoNBD + GammaGamma"


@pytest.fixture(scope="module")
def family_result(cdnow_transactions):
    return run_pipeline(
        _settings(cdnow_transactions, calibration_end="1997-09-30", observation_end="1998-06-30",
                  n_draws=50, segments=False),
        progressbar=False,
    )


def test_the_family_is_compared_and_the_best_forecasts(family_result, cdnow_transactions):
    result = family_result
    assert list(result.comparison.index) == [*FAMILY, AVERAGE_NAME]
    assert list(result.models) == FAMILY
    # BG/CNBD-k's regularity column was computed from the same log for the comparison.
    assert "log_interpurchase_sum" in result.split.columns
    assert result.models["BetaGeoCNBD + GammaGamma"][0].k_ == 1
    # The best on holdout value forecasts, refitted on all the data.
    best = result.comparison.attrs["best"]
    assert best == result.forecast_name == "ModifiedBetaGeo + GammaGamma"
    assert type(result.transaction_model).__name__ == "ModifiedBetaGeo"
    assert result.transaction_model.params_["r"] != pytest.approx(
        result.models[best][0].params_["r"]
    )
    assert "log_interpurchase_sum" not in result.summary.columns  # MBG/NBD does not read it
    d = result.to_dict()
    json.dumps(d)
    assert d["forecast_model"] == best and d["verdict"].startswith(f"{best} forecasts")


def test_a_model_s_extra_columns_come_from_files_too(cdnow_transactions, tmp_path, monkeypatch):
    cdnow_transactions.to_csv(tmp_path / "log.csv", index=False)
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("files go to DuckDB"))
    settings = _settings(str(tmp_path / "log.csv"), observation_end="1997-09-30",
                         models=("BetaGeoCNBD", "GammaGamma"), segments=False)
    result = run_pipeline(settings, progressbar=False)
    assert result.forecast_name == "BetaGeoCNBD + GammaGamma"
    from clvmodels import add_log_interpurchase_sum, rfm_summary

    direct = add_log_interpurchase_sum(
        rfm_summary(cdnow_transactions, *COLUMNS, observation_end="1997-09-30"),
        cdnow_transactions,
    )
    np.testing.assert_allclose(result.summary["log_interpurchase_sum"],
                               direct["log_interpurchase_sum"], rtol=1e-12)
    # CDNOW shows no regularity (BTYDplus: "k=1 -> no regularity detected").
    assert result.transaction_model.k_ == 1
    assert result.transaction_model.params_.round(4).to_dict() == {
        "r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
    # The default forecast without a holdout (BG/NBD) reads no extra column.
    plain = run_pipeline(dataclasses.replace(settings, models=None), progressbar=False)
    assert "log_interpurchase_sum" not in plain.summary.columns


def test_a_family_member_the_data_cannot_identify_is_left_out(cdnow_transactions, tmp_path):
    # Six months of the first 400 CDNOW customers: Pareto/NBD's likelihood keeps rising
    # towards s, beta -> infinity (no sign of dropout), so its fit raises
    # ConvergenceError; the rest of the family is compared, and the report is written.
    from clvmodels.errors import ConvergenceError
    from clvmodels.evaluation import compare
    from clvmodels.models.pareto_nbd import ParetoNBD
    from clvmodels.report import write_report

    first = cdnow_transactions["customer_id"].unique()[:400]
    log = cdnow_transactions[cdnow_transactions["customer_id"].isin(first)]
    settings = PipelineSettings(source=log, customer_col="customer_id", date_col="date",
                                value_col="amount", calibration_end="1997-03-31", n_draws=50)
    with pytest.warns(UserWarning, match="ParetoNBD \\+ GammaGamma left out: ParetoNBD did "
                                         "not converge"):
        result = run_pipeline(settings, progressbar=False)
    assert result.comparison.attrs["left_out"] == ["ParetoNBD + GammaGamma"]
    assert list(result.models) == [
        "BetaGeo + GammaGamma", "BetaGeoCNBD + GammaGamma", "ModifiedBetaGeo + GammaGamma",
        "ModifiedBetaGeoCNBD + GammaGamma"]
    assert list(result.comparison.index) == [*result.models, AVERAGE_NAME]
    assert result.forecast_name in result.models
    assert np.isfinite(result.forecast.table["clv"]).all()
    html = write_report(result, tmp_path / "report.html", progressbar=False).read_text()
    assert "ParetoNBD + GammaGamma was left out: the data could not identify it (ParetoNBD " \
           "did not converge to a finite optimum" in html
    # Named, the same model raises; with nothing left to compare, so does the option.
    split = result.split
    with pytest.raises(ConvergenceError, match="ParetoNBD did not converge"):
        compare({"Pareto": (ParetoNBD(), GammaGamma())}, split, n_draws=50,
                progressbar=False)
    with pytest.raises(ConvergenceError, match="no pair could be fitted to these data: "
                                               "Pareto: ParetoNBD did not converge"), \
            pytest.warns(UserWarning, match="left out"):
        compare({"Pareto": (ParetoNBD(), GammaGamma())}, split, n_draws=50,
                leave_out_failures=True, progressbar=False)
