"""The whole model family through everything the model contract gives it (issue 12).

Every registered maximum-likelihood transaction model of the package
(:func:`clvmodels.evaluation.family_models`), each with Gamma-Gamma, is fitted on the CDNOW
calibration period and goes through: CLV with parameter and predictive intervals,
segments, ``compare``, the plots, save/load, the command line (``--model <Name>``: report
and forecast), Spark scoring, and the report of the whole family. A new model file in
``models/`` joins every test here by registering. Draws are few: these tests check that
each step works and agrees with the others, not the statistics (the model and module
tests do that).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clvmodels import customer_lifetime_value, load, segment
from clvmodels import plotting as P
from clvmodels.cli import app
from clvmodels.evaluation import (
    add_model_columns,
    compare,
    expected_cumulative_purchases,
    family_models,
)
from clvmodels.models.base import leading_draws
from clvmodels.models.mle import MaximumLikelihoodModel
from clvmodels.pipeline import available_models

pytestmark = pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")

FAMILY = list(family_models())
NAMES = [pair.split(" + ")[0] for pair in FAMILY]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def split(cdnow_split, cdnow_transactions):
    """The CDNOW split with the columns any model of the family reads."""
    return add_model_columns(cdnow_split, family_models(), cdnow_transactions)


@pytest.fixture(scope="module")
def family(split):
    """The family fitted on calibration by compare, and its comparison table."""
    models = family_models()
    comparison = compare(models, split, n_draws=100, progressbar=False)
    return {pair.split(" + ")[0]: models[pair] for pair in models}, comparison


@pytest.fixture(scope="module")
def forecasts(family, split):
    """Each model's CLV over the 39-week holdout, undiscounted: the value compare scores."""
    models, _ = family
    return {
        name: customer_lifetime_value(
            tx, spend, split, horizon=39, period="W", discount_rate=0.0, n_draws=100,
            predictive=True, random_state=0, progressbar=False,
        )
        for name, (tx, spend) in models.items()
    }


@pytest.fixture(scope="module")
def transactions_csv(tmp_path_factory, cdnow_transactions):
    path = tmp_path_factory.mktemp("family") / "transactions.csv"
    cdnow_transactions.to_csv(path, index=False)
    return path


def test_the_family_is_every_package_mle_transaction_model():
    package = [
        name for name, cls in available_models("transaction").items()
        if issubclass(cls, MaximumLikelihoodModel) and not cls.is_bayesian
        and cls.__module__.startswith("clvmodels.models.")
    ]
    assert NAMES == sorted(package)
    assert {"BetaGeo", "BetaGeoCNBD", "ModifiedBetaGeo", "ModifiedBetaGeoCNBD",
            "ParetoNBD"} <= set(NAMES)
    assert all(pair.endswith(" + GammaGamma") for pair in FAMILY)


def test_the_family_stays_the_same_once_bayesian_models_are_imported():
    # Bayesian models subclass the declaration they sample; they register when their
    # module is imported (by any earlier test or user code) and must not join the family.
    import clvmodels.models.hierarchical  # noqa: F401
    from clvmodels.models.bayes import bayesian
    from clvmodels.models.beta_geo import BetaGeo
    from clvmodels.models.gamma_gamma import GammaGamma

    bayesian(BetaGeo), bayesian(GammaGamma)
    assert list(family_models()) == FAMILY
    with_bayesian = list(family_models(bayesian=True))
    assert with_bayesian[:len(FAMILY)] == FAMILY
    assert with_bayesian[len(FAMILY):] == ["HierarchicalBetaGeo + HierarchicalGammaGamma"]


@pytest.mark.parametrize("name", NAMES)
def test_compare_scores_every_model(name, family):
    models, comparison = family
    row = comparison.loc[f"{name} + GammaGamma"]
    assert models[name][0].is_fitted and models[name][1].is_fitted
    assert row["purchases_actual"] == 1882 and row["customers"] == 2357
    assert -20 < row["purchases_error_pct"] < -10  # every model under-forecasts CDNOW
    assert 0.8 < row["value_interval_coverage"] < 0.95
    assert 0.85 < row["purchases_interval_coverage"] < 0.97
    assert 0.4 < row["value_spearman"] < 0.5 and row["value_top20_share"] > 0.6
    assert row["aic"] == pytest.approx(
        2 * (len(models[name][0].params_) + name.endswith("CNBD")) - 2 * row["log_likelihood"]
    )
    assert row["value_rank"] in range(1, len(NAMES) + 1)


@pytest.mark.parametrize("name", NAMES)
def test_clv_with_parameter_and_predictive_intervals(name, family, forecasts, split):
    models, comparison = family
    forecast = forecasts[name]
    table = forecast.table
    assert len(table) == 2357 and table.index.equals(split.index)
    assert (table["clv_lower"] <= table["clv_upper"]).all()
    inside = (table["clv_lower"] <= table["clv"]) & (table["clv"] <= table["clv_upper"])
    assert inside.mean() > 0.99
    assert (table["clv_pred_lower"] <= table["clv_pred_upper"]).all()
    # The same forecast as the comparison scored, customer by customer.
    assert table["clv"].sum() == pytest.approx(comparison.loc[f"{name} + GammaGamma",
                                                              "value_expected"], rel=1e-9)
    tx, spend = models[name]
    expected = tx.expected_purchases(t=39, data=split) * spend.expected_spend(data=split)
    np.testing.assert_allclose(table["clv"], expected, rtol=1e-6)
    total = forecast.total()
    assert total["clv_lower"] < total["clv"] < total["clv_upper"]
    assert total["clv_pred_lower"] < total["clv"] < total["clv_pred_upper"]


@pytest.mark.parametrize("name", NAMES)
def test_segments(name, forecasts):
    seg = segment(forecasts[name], progressbar=False)
    tiers = seg.tiers
    assert tiers["customers"].sum() == 2357
    assert tiers["share_of_value"].sum() == pytest.approx(1.0)
    assert tiers["share_of_value"].iloc[0] > 3 * tiers["share_of_customers"].iloc[0]
    assert seg.customers["tier_probability"].between(0, 1).all()


@pytest.mark.parametrize("name", NAMES)
def test_plots(name, family, split, cdnow_transactions):
    tx, _ = family[0][name]
    label = type(tx).__name__
    ax = P.plot_frequency_recency_matrix(tx, split, t=4)
    assert ax.images[0].get_array().max() > 0.5  # frequent, recent buyers buy again soon
    ax = P.plot_probability_alive_matrix(tx, split)
    assert ax.images[0].get_array().max() <= 1
    ax = P.plot_repeat_purchase_histogram(tx, split)
    assert sum(p.get_height() for p in ax.patches[8:]) == pytest.approx(2357)
    ax = P.plot_calibration_vs_holdout(tx, split)
    assert [line.get_label() for line in ax.get_lines()] == ["actual", label]
    track = expected_cumulative_purchases(tx, cdnow_transactions, "customer_id", "date",
                                          calibration_end="1997-09-30")
    ax = P.plot_cumulative_purchases(track)
    assert ax.get_lines()[1].get_ydata()[-1] == pytest.approx(track["expected"].iloc[-1])
    # Cumulative expectations at week 39: within 5% of the 2,457 actual repeat purchases.
    assert track.loc[39, "expected"] == pytest.approx(2457, rel=0.05)


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load(name, family, split, tmp_path):
    for model in family[0][name]:
        path = model.save(tmp_path / f"{type(model).__name__}.json")
        loaded = load(path)
        assert type(loaded) is type(model) and loaded.time_unit_ == model.time_unit_
        pd.testing.assert_series_equal(loaded.params_, model.params_)
        assert loaded.fit_statistics() == pytest.approx(model.fit_statistics(), nan_ok=True)
        assert getattr(loaded, "k_", None) == getattr(model, "k_", None)
        if hasattr(model, "expected_purchases"):
            pd.testing.assert_series_equal(loaded.expected_purchases(t=39, data=split),
                                           model.expected_purchases(t=39, data=split))
        else:
            pd.testing.assert_series_equal(loaded.expected_spend(data=split),
                                           model.expected_spend(data=split))


@pytest.mark.parametrize("name", NAMES)
def test_command_line_forecast_and_report(name, transactions_csv, tmp_path):
    columns = ["--transactions", str(transactions_csv), "--customer-col", "customer_id",
               "--date-col", "date", "--value-col", "amount", "--draws", "20", "--quiet",
               "--model", name]
    out = tmp_path / "forecast.csv"
    result = runner.invoke(app, ["forecast", *columns, "--output", str(out),
                                 "--observation-end", "1997-09-30", "--segments"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, index_col=0)
    assert len(table) == 2357 and (table["clv"] >= 0).all() and table["tier"].notna().all()
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["report", *columns, "--output", str(report),
                                 "--calibration-end", "1997-09-30"])
    assert result.exit_code == 0, result.output
    html = report.read_text(encoding="utf-8")
    assert f"1 model compared; forecast by {name} + GammaGamma." in html
    assert f"{name} + GammaGamma is the only model compared" in html
    assert f"{name} (transaction model)" in html
    # Every member's top-tier probabilities are tried on a backtest (BG/CNBD-k refits
    # its k there, from the regularity column the pipeline reads for it).
    assert "Tried on the last stretch of the log: the models refitted on the data up to" in html


def test_the_report_compares_the_whole_family(transactions_csv, tmp_path):
    report = tmp_path / "family.html"
    result = runner.invoke(app, [
        "report", "--transactions", str(transactions_csv), "--customer-col", "customer_id",
        "--date-col", "date", "--value-col", "amount", "--calibration-end", "1997-09-30",
        "--observation-end", "1998-06-30", "--output", str(report), "--draws", "50",
        "--quiet",
    ])
    assert result.exit_code == 0, result.output
    html = report.read_text(encoding="utf-8")
    comparison = html[html.index('<section id="comparison">'):html.index('<section id="checks">')]
    checks = html[html.index('<section id="checks">'):html.index('<section id="forecast">')]
    header = "".join(f"<th>{pair}</th>" for pair in FAMILY)
    assert header in comparison and header in checks  # the table and the checks: all models
    assert f"{len(FAMILY)} models compared" in html
    # The verdict opens the comparison; the best on holdout value forecasts.
    verdict = comparison[comparison.index('<div class="verdict">'):]
    assert verdict.startswith('<div class="verdict">ModifiedBetaGeo + GammaGamma forecasts '
                              "holdout value best")
    assert "within its noise" in verdict[:verdict.index("</div>")]
    assert "forecast by ModifiedBetaGeo + GammaGamma." in html
    # BG/CNBD-k's regularity: estimated, and k = 1 on CDNOW.
    assert "k 1; k_estimated yes" in html


# --------------------------------------------------------------------------------------
# Spark scoring: the same numbers as on one machine, for every model
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def spark():
    """A local Spark session, built as tests/test_spark.py builds its own, so that the
    later module reuses it (getOrCreate) rather than starting a second JVM."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs a Java runtime")
    from pyspark.sql import SparkSession

    previous = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("clvmodels-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    if previous is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = previous


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")
def test_spark_scores_every_model_as_one_machine_does(spark, family, split):
    from clvmodels.spark import score_spark

    frame = spark.createDataFrame(split.reset_index()).repartition(2).cache()
    for name, (tx, spend) in family[0].items():
        settings = {"horizon": 6, "period": "M", "n_draws": 20, "random_state": 3}
        scores = score_spark(tx, spend, frame, tiers=False, time_unit="W", **settings)
        actual = scores.toPandas().set_index("customer_id").sort_index()
        expected = customer_lifetime_value(tx, spend, split, progressbar=False, **settings).table
        # The models travel to the executors as their saved files: the same numbers.
        pd.testing.assert_frame_equal(actual[expected.columns], expected, check_exact=True,
                                      obj=name)
    frame.unpersist()


# --------------------------------------------------------------------------------------
# The Bayesian versions, pooled and by group: fit, CLV with both intervals, segments,
# NetCDF files and the command line
# --------------------------------------------------------------------------------------
# Name of the Bayesian version -> its maximum-likelihood declaration and settings.
BAYESIAN = {
    "ModifiedBetaGeo": ("ModifiedBetaGeo", {}),
    "ParetoNBD": ("ParetoNBD", {}),
    "BetaGeoCNBD": ("BetaGeoCNBD", {}),
    "ModifiedBetaGeoCNBD": ("ModifiedBetaGeoCNBD", {}),
}
GROUPINGS = [None, "cohort"]


@pytest.fixture(scope="module")
def cohorts(cdnow_summary, cdnow_transactions):
    """500 CDNOW customers with their acquisition month (three groups), and the
    regularity column the (M)BG/CNBD-k reads."""
    first = cdnow_transactions.groupby("customer_id")["date"].min()
    data = cdnow_summary.assign(cohort=first.dt.strftime("%b").reindex(cdnow_summary.index))
    data = add_model_columns(data, family_models(), cdnow_transactions)
    return data.sample(500, random_state=0)


@pytest.fixture(scope="module")
def bayesian_fits(cohorts):
    """Each model pooled and by cohort, with few draws: these tests check that every
    step works; the posterior itself is compared with pymc-marketing's in
    benchmarks/bench_bayesian.py."""
    from clvmodels import GammaGamma
    from clvmodels.errors import SamplingWarning
    from clvmodels.models.bayes import bayesian

    fits = {}
    for name, (declaration, settings) in BAYESIAN.items():
        cls = bayesian(available_models("transaction")[declaration])
        for group in GROUPINGS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)  # 60 draws: low ESS
                fits[name, group] = cls(group_col=group, **settings).fit(
                    cohorts, draws=60, tune=60, chains=2, random_state=1, progressbar=False
                )
    return fits, GammaGamma().fit(cohorts)


@pytest.mark.parametrize("group", GROUPINGS)
@pytest.mark.parametrize("name", BAYESIAN)
def test_bayesian_versions_fit_near_the_maximum_likelihood(name, group, bayesian_fits, cohorts):
    model = bayesian_fits[0][name, group]
    declaration, settings = BAYESIAN[name]
    mle = available_models("transaction")[declaration](**settings).fit(cohorts)
    table = model.summary()
    assert model.is_fitted and type(model).__name__ == f"Bayesian{declaration}"
    if declaration.endswith("CNBD"):
        # k is chosen by the maximum-likelihood profile (CDNOW: 1, no regularity) and
        # held; the posterior is conditional on it.
        assert model.k_ == mle.k_ == 1 and table.attrs["k"] == 1
        assert model.modified is mle.modified is declaration.startswith("Modified")
    if group is None:
        estimates = model.params_
        sds = table["sd"]
    else:
        assert sorted(model.params_.index) == ["Feb", "Jan", "Mar"]
        estimates = model.params_.mean()  # groups shrink towards one another
        sds = table["sd"].groupby(level="parameter").max()
    # Every parameter within 3 posterior sd of the MLE on the same customers (the
    # priors are weak next to 500 customers' likelihood).
    for k in mle.params_.index:
        assert abs(estimates[k] - mle.params_[k]) < 3 * sds[k], k


@pytest.mark.parametrize("group", GROUPINGS)
@pytest.mark.parametrize("name", BAYESIAN)
def test_bayesian_versions_clv_segments_and_files(name, group, bayesian_fits, cohorts,
                                                  tmp_path):
    model, spend = bayesian_fits[0][name, group], bayesian_fits[1]
    forecast = customer_lifetime_value(model, spend, cohorts, horizon=12, period="M",
                                       n_draws=200, predictive=True, random_state=0,
                                       progressbar=False)
    table = forecast.table
    assert len(table) == 500
    # The point forecast (at the posterior means) sits inside the 90% interval of the
    # draws; by cohort the posterior is skewed and the point lies near 0.7 of the way up,
    # so the interval needs some 200 draws (with 50, all customers' upper ends move
    # together and half of them fall below the point).
    inside = (table["clv_lower"] <= table["clv"]) & (table["clv"] <= table["clv_upper"])
    assert inside.mean() > 0.95
    assert (table["clv_pred_lower"] <= table["clv_pred_upper"]).all()
    total = forecast.total()
    assert total["clv_lower"] < total["clv"] < total["clv_upper"]
    assert total["clv_pred_lower"] < total["clv"] < total["clv_pred_upper"]
    tiers = segment(forecast, progressbar=False).tiers
    assert tiers["customers"].sum() == 500
    # The first draws of a (long, for groups) frame of draws are the model's first
    # draws: predictions under them are the first rows of predictions under all.
    draws = model.param_draws(12, random_state=1)
    np.testing.assert_array_equal(
        model.probability_alive(cohorts, draws=leading_draws(draws, 5)),
        model.probability_alive(cohorts, draws=draws)[:5],
    )
    # 50 futures per customer, under the first 50 of the 200 draws.
    few = customer_lifetime_value(model, spend, cohorts, horizon=12, period="M",
                                  n_draws=200, predictive=True, n_futures=50, random_state=0,
                                  progressbar=False)  # fmt: skip
    pd.testing.assert_frame_equal(few.table[["clv", "clv_lower", "clv_upper"]],
                                  table[["clv", "clv_lower", "clv_upper"]])
    assert few.predictive_totals.shape == (50,)
    assert (few.table["clv_pred_lower"] <= few.table["clv_pred_upper"]).all()
    path = model.save(tmp_path / "model.nc")
    loaded = load(path)
    assert type(loaded) is type(model) and loaded.group_col == group
    assert loaded.fixed_settings_ == model.fixed_settings_
    assert loaded._model_settings() == model._model_settings()
    pd.testing.assert_series_equal(loaded.expected_purchases(t=39, data=cohorts),
                                   model.expected_purchases(t=39, data=cohorts))


@pytest.mark.filterwarnings("ignore::clvmodels.errors.SamplingWarning")  # 40 draws
@pytest.mark.parametrize("name", ["ModifiedBetaGeo", "ParetoNBD", "BetaGeoCNBD",
                                  "ModifiedBetaGeoCNBD"])
def test_command_line_forecasts_with_a_bayesian_model(name, transactions_csv, tmp_path):
    out = tmp_path / "forecast.csv"
    result = runner.invoke(app, [
        "forecast", "--transactions", str(transactions_csv), "--customer-col", "customer_id",
        "--date-col", "date", "--value-col", "amount", "--observation-end", "1997-09-30",
        "--model", f"Bayesian{name}", "--mcmc-draws", "40", "--mcmc-tune", "40",
        "--mcmc-chains", "2", "--draws", "20", "--segments", "--quiet", "--output", str(out),
    ])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, index_col=0)
    assert len(table) == 2357 and table["tier"].notna().all()
    assert (table["clv_lower"] <= table["clv_upper"]).all()
