"""Figures: each draws the numbers it claims to draw, labelled, on the Axes it is given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from clvmodels import BetaGeo, GammaGamma, ModifiedBetaGeo, ParetoNBD
from clvmodels import plotting as P
from clvmodels.clv import customer_lifetime_value
from clvmodels.evaluation import (
    conditional_expectations_by_frequency,
    expected_cumulative_purchases,
    repeat_purchase_histogram,
)
from clvmodels.segmentation import segment

# ArviZ 0.23 calls a matplotlib helper deprecated in 3.11; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def bgnbd(cdnow_split):
    return BetaGeo().fit(cdnow_split)


@pytest.fixture(scope="module")
def forecast(cdnow_split, bgnbd):
    return customer_lifetime_value(
        bgnbd, GammaGamma().fit(cdnow_split), cdnow_split, n_draws=100, predictive=True,
        random_state=0,
    )


@pytest.fixture(scope="module")
def tracking(bgnbd, cdnow_transactions):
    return expected_cumulative_purchases(
        bgnbd, cdnow_transactions, "customer_id", "date", calibration_end="1997-09-30"
    )


class _Posterior:
    """A fitted-Bayesian-model stand-in: a known posterior with a group dimension."""

    param_names = ("r", "alpha", "a", "b")
    group_col = "cohort"

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        centres = {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}
        shift = np.array([0.8, 1.0, 1.25])
        self.idata_ = az.InferenceData(
            posterior=xr.Dataset(
                {
                    k: (("chain", "draw", "cohort"),
                        v * shift * rng.lognormal(0, 0.05, size=(2, 150, 3)))
                    for k, v in centres.items()
                },
                coords={"cohort": ["1997-01", "1997-02", "1997-03"]},
            )
        )


def _labelled(ax):
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_frequency_recency_matrix(bgnbd, cdnow_split):
    _fig, given = plt.subplots()
    ax = P.plot_frequency_recency_matrix(bgnbd, cdnow_split, t=2, max_frequency=10, ax=given)
    assert ax is given
    _labelled(ax)
    assert "weeks" in ax.get_xlabel()
    values = ax.images[0].get_array()
    assert values.shape == (11, 60)
    # Top-right cell: 10 repeat purchases, the last one at T.
    T = cdnow_split["T"].max()
    cell = pd.DataFrame({"frequency": [10], "recency": [T], "T": [T]})
    assert values[10, -1] == pytest.approx(bgnbd.expected_purchases(t=2, data=cell).iloc[0])
    # Expected purchases rise with recency for a repeat buyer.
    assert np.all(np.diff(values[5]) >= 0)


def test_probability_alive_matrix(bgnbd, cdnow_split):
    ax = P.plot_probability_alive_matrix(bgnbd, cdnow_split)
    _labelled(ax)
    values = np.asarray(ax.images[0].get_array())
    assert np.all((values >= 0) & (values <= 1))
    assert np.all(values[0] == 1.0)  # no repeat purchase: not yet seen to drop out
    assert ax.images[0].get_clim() == (0.0, 1.0)


def test_matrix_needs_an_age(bgnbd):
    with pytest.raises(ValueError, match="T="):
        P.plot_probability_alive_matrix(bgnbd)
    ax = P.plot_probability_alive_matrix(bgnbd, T=20.0, max_frequency=4)
    assert ax.images[0].get_array().shape == (5, 60)


def test_repeat_purchase_histogram_bars(bgnbd, cdnow_split):
    ax = P.plot_repeat_purchase_histogram(bgnbd, cdnow_split)
    _labelled(ax)
    table = repeat_purchase_histogram(bgnbd, cdnow_split)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights[:8], table["actual"])
    np.testing.assert_allclose(heights[8:], table["expected"])
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "7+"
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"actual", "BetaGeo"}


def test_calibration_vs_holdout_lines(bgnbd, cdnow_split):
    ax = P.plot_calibration_vs_holdout(bgnbd, cdnow_split)
    _labelled(ax)
    assert "39 weeks" in ax.get_ylabel()
    table = conditional_expectations_by_frequency(bgnbd, cdnow_split)
    actual, model = ax.get_lines()
    np.testing.assert_allclose(actual.get_ydata(), table["actual"])
    np.testing.assert_allclose(model.get_ydata()[:3], [0.225, 0.523, 1.044], atol=0.002)


def test_tracking_plots(tracking):
    ax = P.plot_cumulative_purchases(tracking)
    _labelled(ax)
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), tracking["actual"])
    np.testing.assert_allclose(lines[1].get_ydata()[19], 1312.5, atol=0.05)
    # The end of calibration is marked at week 39.
    marks = [line for line in lines if np.all(np.asarray(line.get_xdata()) == 39.0)]
    assert len(marks) == 1
    assert "weeks since 1997-01-01" in ax.get_xlabel()

    ax = P.plot_incremental_purchases({"A": tracking, "B": tracking})
    _labelled(ax)
    assert ax.get_ylabel() == "repeat purchases per week"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["actual", "A", "B"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), tracking["expected_incremental"])
    with pytest.raises(TypeError, match="tracking"):
        P.plot_cumulative_purchases([tracking])


@pytest.fixture(scope="module")
def family(cdnow_split, bgnbd):
    return {
        "BG/NBD": (bgnbd, GammaGamma()),  # pairs as compare takes them: the first is used
        "MBG/NBD": ModifiedBetaGeo().fit(cdnow_split),
        "Pareto/NBD": ParetoNBD().fit(cdnow_split),
    }


def test_family_checks_one_colour_per_model(family, cdnow_split, cdnow_transactions):
    names = ["actual", "BG/NBD", "MBG/NBD", "Pareto/NBD"]
    ax = P.plot_calibration_vs_holdout(family, cdnow_split)
    _labelled(ax)
    table = conditional_expectations_by_frequency(family, cdnow_split)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == names
    for line, name in zip(lines, names, strict=True):
        np.testing.assert_allclose(line.get_ydata(), table[name])
    assert len({line.get_color() for line in lines}) == 4
    # Pareto/NBD, BTYD's walkthrough: 0.138 for customers without repeat purchases.
    assert lines[3].get_ydata()[0] == pytest.approx(0.138, abs=0.001)

    ax = P.plot_repeat_purchase_histogram(family, cdnow_split)
    hist = repeat_purchase_histogram(family, cdnow_split)
    heights = np.array([p.get_height() for p in ax.patches]).reshape(4, 8)
    np.testing.assert_allclose(heights, hist[names].to_numpy().T)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names

    track = expected_cumulative_purchases(family, cdnow_transactions, "customer_id", "date",
                                          calibration_end="1997-09-30")
    for plot, suffix in ((P.plot_cumulative_purchases, ""),
                         (P.plot_incremental_purchases, "_incremental")):
        ax = plot(track)
        _labelled(ax)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == names
        one = expected_cumulative_purchases(family["Pareto/NBD"], cdnow_transactions,
                                            "customer_id", "date")
        np.testing.assert_allclose(ax.get_lines()[3].get_ydata(), one["expected" + suffix])
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), one["actual" + suffix])
        assert len([ln for ln in ax.get_lines() if np.all(np.asarray(ln.get_xdata()) == 39)]) == 1


def test_clv_by_rank(forecast):
    ax = P.plot_clv_by_rank(forecast, currency="USD")
    _labelled(ax)
    assert "USD" in ax.get_ylabel()
    assert "12 months ahead, discounted 1% per month" in ax.get_title()
    line = ax.get_lines()[0].get_ydata()
    assert np.all(np.diff(line) <= 0)  # ranked from the most valuable down
    np.testing.assert_allclose(line, np.sort(forecast.table["clv"].to_numpy())[::-1])
    assert len(ax.collections) == 2  # parameter and predictive bands
    table_only = P.plot_clv_by_rank(forecast.table[["clv"]], log_scale=False)
    assert len(table_only.collections) == 0 and table_only.get_yscale() == "linear"


def test_clv_by_rank_names_any_period(forecast):
    # Settings alone drive the title: a multiple of a unit reads as periods of it.
    settings = {**forecast.settings, "horizon": 6, "period": "30D", "discount_rate": 0.02}
    table = forecast.table

    class Stub:
        pass

    stub = Stub()
    stub.table, stub.settings = table, settings
    title = P.plot_clv_by_rank(stub).get_title()
    assert "6 periods of 30 days ahead, discounted 2% per 30 days" in title
    stub.settings = {**settings, "horizon": 1, "period": "Q"}
    assert "1 quarter ahead, discounted 2% per quarter" in P.plot_clv_by_rank(stub).get_title()


def test_tier_summary(forecast):
    seg = segment(forecast)
    ax = P.plot_tier_summary(seg)
    _labelled(ax)
    heights = [p.get_height() for p in ax.patches]
    n = len(seg.tiers)
    np.testing.assert_allclose(heights[:n], 100 * seg.tiers["share_of_customers"])
    np.testing.assert_allclose(heights[n:], 100 * seg.tiers["share_of_value"])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0].startswith("top value")


def test_group_parameters():
    model = _Posterior()
    axes = P.plot_group_parameters(model, interval=0.9)
    assert axes.shape == (4,)
    r = model.idata_.posterior["r"].stack(s=("chain", "draw")).to_numpy()
    points = axes[0].get_lines()[0]
    # Groups are drawn top to bottom in their order: y = 2, 1, 0.
    np.testing.assert_allclose(points.get_xdata(), np.median(r, axis=1))
    ticks = {t.get_text(): y for t, y in zip(axes[0].get_yticklabels(), axes[0].get_yticks(),
                                              strict=True)}
    assert ticks == {"1997-01": 2, "1997-02": 1, "1997-03": 0}
    np.testing.assert_allclose(points.get_ydata(), [2, 1, 0])
    assert axes[0].get_title() == "r" and axes[0].get_xlabel()
    _fig, given = plt.subplots(1, 2)
    out = P.plot_group_parameters(model, var_names=["a", "b"], ax=given)
    assert list(out) == list(given)
    with pytest.raises(ValueError, match="one per parameter"):
        P.plot_group_parameters(model, ax=given)


def test_group_parameters_mark_the_population_median():
    model = _Posterior()
    mu = np.log(0.3) + np.zeros((2, 150))
    model.idata_.posterior["mu_log_r"] = (("chain", "draw"), mu)
    axes = P.plot_group_parameters(model, var_names=["r", "a"])
    centre = [line for line in axes[0].get_lines() if line.get_label() == "population median"]
    assert len(centre) == 1 and centre[0].get_xdata()[0] == pytest.approx(0.3)
    assert axes[1].get_lines()[-1].get_label() == "median of all groups"


def test_trace_and_posterior():
    model = _Posterior()
    axes = P.plot_trace(model)
    assert axes.shape == (4, 2)
    axes = P.plot_posterior(model, var_names=["r"])
    assert axes.size == 3  # one panel per cohort


def test_a_stuck_chain_is_drawn_not_refused():
    # A stuck sampler can leave draws one ulp apart; ArviZ's density estimate then
    # divides by a zero bin width (seen in CI on a short hierarchical run).
    model = _Posterior()
    r = model.idata_.posterior["r"]
    stuck = np.where(np.arange(150) % 2 == 0, 0.3, np.nextafter(0.3, 1.0))
    r.values[1, :, 2] = stuck
    original = r.to_numpy().copy()
    axes = P.plot_trace(model)
    draws = [line.get_ydata() for line in axes[0, 1].get_lines()]
    assert any(np.array_equal(y, np.full(150, 0.3)) for y in draws)
    assert any(np.array_equal(y, original[0, :, 0]) for y in draws)  # others untouched
    r.values[:, :, 2] = stuck  # every chain of one cohort
    axes = P.plot_posterior(model, var_names=["r"])
    assert axes.size == 3
    np.testing.assert_array_equal(r.values[1, :, 2], stuck)  # the model's posterior is kept


def test_bayesian_plots_need_a_posterior(bgnbd):
    with pytest.raises(ValueError, match="no posterior"):
        P.plot_trace(bgnbd)


def test_grouped_model_needs_a_group_for_maps():
    class Grouped(BetaGeo):
        group_col = "cohort"

    model = Grouped()
    model._set_fitted({"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}, time_unit="W")
    with pytest.raises(ValueError, match="group="):
        P.plot_probability_alive_matrix(model, T=30.0)
