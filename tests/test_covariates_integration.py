"""Covariate models through the contract: CLV with parameter and predictive intervals,
segments, the holdout comparison, the tracking check, the frequency-recency maps and
the HTML report take each customer's covariates from the data they score."""

from __future__ import annotations

import dataclasses
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from clvmodels import (
    BetaGeo,
    GammaGamma,
    ParetoNBD,
    calibration_holdout_split,
    compare,
    customer_lifetime_value,
    segment,
)
from clvmodels import plotting as P
from clvmodels.errors import DataValidationError
from clvmodels.evaluation import expected_cumulative_purchases

COVARIATES = {"purchase_covariates": ["multi_cd", "channel"], "dropout_covariates": ["multi_cd"]}


@pytest.fixture(scope="module")
def log(cdnow_transactions):
    """CDNOW with two customer attributes on every transaction: whether the first
    order had more than one CD (0/1) and a made-up channel."""
    tx = cdnow_transactions.sort_values(["customer_id", "date"], kind="stable")
    first = tx.groupby("customer_id")["quantity"].first()
    out = cdnow_transactions.copy()
    out["multi_cd"] = (first.reindex(out["customer_id"]).to_numpy() > 1).astype(float)
    out["channel"] = np.array(["web", "store", "email"], dtype=object)[
        out["customer_id"].to_numpy() % 3
    ]
    return out


@pytest.fixture(scope="module")
def split(log):
    frame = calibration_holdout_split(
        log, "customer_id", "date", "amount", calibration_end="1997-09-30",
        observation_end="1998-06-30",
    )
    attributes = log.groupby("customer_id")[["multi_cd", "channel"]].first()
    joined = frame.join(attributes)
    joined.attrs = dict(frame.attrs)
    return joined


@pytest.fixture(scope="module")
def models(split):
    return (BetaGeo(**COVARIATES).fit(split), GammaGamma(spend_covariates=["multi_cd"]).fit(split))


@pytest.fixture(scope="module")
def forecast(models, split):
    return customer_lifetime_value(
        *models, split, horizon=12, n_draws=300, predictive=True, random_state=1
    )


def test_clv_uses_each_customers_covariates(models, split, forecast):
    bg, gg = models
    table = forecast.table
    # one horizon of 12 months in weeks: the model's own expected purchases, per row
    horizon = float(forecast.settings["period_length"]) * 12
    np.testing.assert_allclose(
        table["expected_purchases"], bg.expected_purchases(t=horizon, data=split), rtol=1e-9
    )
    np.testing.assert_allclose(table["expected_spend"], gg.expected_spend(data=split), rtol=1e-12)
    assert (table["clv_lower"] <= table["clv"]).all() and (table["clv"] <= table["clv_upper"]).all()
    assert (table["clv_pred_lower"] <= table["clv_pred_upper"]).all()
    # the same history in another channel is worth something else
    one = split.iloc[[0, 0, 0]].assign(channel=["email", "store", "web"])
    one.index = ["a", "b", "c"]
    one.attrs = split.attrs
    values = customer_lifetime_value(*models, one, n_draws=50, random_state=0).table["clv"]
    assert values.nunique() == 3


def test_zero_coefficients_give_the_base_models_clv(split):
    base = BetaGeo().fit(split)
    spend = GammaGamma().fit(split)
    zeros = dict.fromkeys(["purchase:multi_cd", "purchase:channel[store]",
                           "purchase:channel[web]", "dropout:multi_cd"], 0.0)
    covariance = np.diag(np.full(8, 1e-12))
    covariance[:4, :4] = base.covariance_.to_numpy()
    covariate = BetaGeo.from_params(
        {**base.params_.to_dict(), **zeros}, time_unit="W", covariance=covariance,
        covariate_levels={"channel": ["email", "store", "web"]}, **COVARIATES,
    )
    plain = BetaGeo.from_params(
        base.params_.to_dict(), time_unit="W", covariance=base.covariance_.to_numpy()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = customer_lifetime_value(covariate, spend, split, n_draws=10, random_state=0)
        b = customer_lifetime_value(plain, spend, split, n_draws=10, random_state=0)
    pd.testing.assert_series_equal(a.table["clv"], b.table["clv"])


def test_segments_and_comparison_take_covariate_models(split, forecast):
    seg = segment(forecast)
    assert seg.tiers["clv_total"].sum() == pytest.approx(forecast.table["clv"].sum(), rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = compare(
            {
                "BG/NBD + GG": (BetaGeo(), GammaGamma()),
                "BG/NBD + GG with covariates": (
                    BetaGeo(**COVARIATES), GammaGamma(spend_covariates=["multi_cd"])
                ),
                "Pareto/NBD with covariates": (
                    ParetoNBD(**COVARIATES), GammaGamma(spend_covariates=["multi_cd"])
                ),
            },
            split, n_draws=100, progressbar=False,
        )
    assert table.loc["BG/NBD + GG with covariates", "log_likelihood"] > table.loc[
        "BG/NBD + GG", "log_likelihood"
    ]
    assert table["purchases_expected"].notna().all()


def test_maps_draw_customers_with_typical_covariates(models, split):
    bg, _ = models
    ax = P.plot_frequency_recency_matrix(bg, split, t=4.0, T=30.0, max_frequency=3)
    typical = pd.DataFrame({"frequency": [2.0], "recency": [30.0], "T": [30.0],
                            "multi_cd": [split["multi_cd"].median()], "channel": ["email"]})
    assert split["channel"].mode().iloc[0] == "email"
    image = ax.images[0].get_array()
    assert image[2, -1] == pytest.approx(float(bg.expected_purchases(t=4.0, data=typical).iloc[0]))
    P.plot_probability_alive_matrix(bg, split, T=30.0)
    with pytest.raises(ValueError, match="takes covariates"):
        P.plot_frequency_recency_matrix(bg, T=30.0)
    plt.close("all")


def test_tracking_uses_each_customers_covariates(models, log):
    bg, _ = models
    track = expected_cumulative_purchases(bg, log, "customer_id", "date",
                                          calibration_end="1997-09-30")
    first = log.groupby("customer_id").first()
    start = log["date"].min()
    at = 40
    exposure = np.clip(at * 7 - (first["date"] - start).dt.days.to_numpy(), 0, None) / 7.0
    direct = bg.expected_purchases_new_customer(t=exposure, data=first)
    assert track.loc[at, "expected"] == pytest.approx(float(direct.sum()), rel=1e-9)
    with pytest.raises(DataValidationError, match="covariate column"):
        expected_cumulative_purchases(bg, log.drop(columns="channel"), "customer_id", "date")


def test_tracking_a_family_reads_each_models_own_covariates(models, split, log):
    bg, _ = models
    others = {"plain": BetaGeo().fit(split),
              "channel only": BetaGeo(purchase_covariates=["channel"]).fit(split)}
    both = expected_cumulative_purchases({"covariates": bg, **others}, log, "customer_id",
                                         "date")
    for name, model in {"covariates": bg, **others}.items():
        alone = expected_cumulative_purchases(model, log, "customer_id", "date")
        # the same sums over the same cohorts (grouped by other columns in the family)
        np.testing.assert_allclose(both[name], alone["expected"], rtol=1e-10)
    with pytest.raises(DataValidationError, match="channel only's predictions"):
        expected_cumulative_purchases(
            {"channel only": others["channel only"]}, log.drop(columns="channel"),
            "customer_id", "date",
        )


@pytest.mark.slow
def test_report_with_a_covariate_model(log, tmp_path):
    from clvmodels.report import build_report

    # the pipeline's summaries carry group_col: a categorical covariate can ride on it
    path = build_report(
        log, "customer_id", "date", "amount", "1997-09-30", tmp_path / "report.html",
        group_col="channel",
        models={
            "BG/NBD + GG by channel (covariates)": (
                BetaGeo(purchase_covariates=["channel"], dropout_covariates=["channel"]),
                GammaGamma(spend_covariates=["channel"]),
            ),
            "BG/NBD + GG": (BetaGeo(), GammaGamma()),
        },
        n_draws=100, mcmc_draws=0, progressbar=False,
    )
    page = path.read_text(encoding="utf-8")
    assert "purchase:channel[web]" in page and "BG/NBD + GG by channel" in page
    # The tier backtest refits the covariate model on a summary that carries the group.
    assert "Tried on the last stretch of the log: the models refitted on the data up to" in page


def test_report_and_pipeline_join_customer_data(log, cdnow_transactions, tmp_path):
    from clvmodels.pipeline import PipelineSettings, run_pipeline
    from clvmodels.report import build_report

    attributes = log.groupby("customer_id")[["multi_cd", "channel"]].first()
    pair = (BetaGeo(**COVARIATES), GammaGamma(spend_covariates=["multi_cd"]))
    settings = PipelineSettings(
        cdnow_transactions, "customer_id", "date", "amount", calibration_end="1997-09-30",
        models={"covariates": pair, "plain": (BetaGeo(), GammaGamma())},
        customer_data=attributes.reset_index(), n_draws=100,
    )
    result = run_pipeline(settings, progressbar=False)
    fitted = result.models["covariates"][0]
    assert fitted.summary().index.str.startswith("purchase:").sum() == 3  # multi_cd, 2 channels
    # The same coefficients as a fit on the split joined by hand (same rows, same optimum).
    direct = BetaGeo(**COVARIATES).fit(
        result.split[["frequency", "recency", "T", "multi_cd", "channel"]])
    np.testing.assert_allclose(fitted.params_.to_numpy(), direct.params_.to_numpy(), rtol=1e-6)
    assert list(result.summary.columns[-2:]) == ["multi_cd", "channel"]
    # The covariate pair forecasts each channel differently from the joined columns.
    by_channel = customer_lifetime_value(
        *result.models["covariates"], result.split, n_draws=50, random_state=0
    ).table["clv"].groupby(attributes["channel"]).mean()
    assert by_channel.nunique() == 3
    page = build_report(
        cdnow_transactions, "customer_id", "date", "amount", "1997-09-30",
        tmp_path / "report.html", models={"covariates": pair}, customer_data=attributes,
        n_draws=100, progressbar=False,
    ).read_text(encoding="utf-8")
    assert "purchase:channel[web]" in page and "dropout:multi_cd" in page
    # Refused by name: a customer without a row, a duplicated id, a clashing column.
    with pytest.raises(DataValidationError, match=r"customer_data has no row for 1 of 2357 "
                                                  r"customers .*first ids \[1\]"):
        run_pipeline(dataclasses.replace(settings, customer_data=attributes.iloc[1:]),
                     progressbar=False)
    with pytest.raises(DataValidationError, match="1 customer ids have more than one row; "
                                                  "first ids \\[5\\]"):
        PipelineSettings(cdnow_transactions, "customer_id", "date", "amount",
                         customer_data=pd.concat([attributes, attributes.loc[[5]]]))
    with pytest.raises(ValueError, match="columns \\['T'\\] would replace the summary's own"):
        PipelineSettings(cdnow_transactions, "customer_id", "date", "amount",
                         customer_data=attributes.assign(T=1.0))
    with pytest.raises(ValueError, match="customer_data must be a pandas DataFrame"):
        PipelineSettings(cdnow_transactions, "customer_id", "date", "amount",
                         customer_data=[1, 2])
