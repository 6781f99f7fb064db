"""The HTML report: self-contained, complete, with the published CDNOW figures in it."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import ClassVar

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.special import gammaln
from typer.testing import CliRunner

from clvmodels import BetaGeo, GammaGamma, __version__
from clvmodels._io import write_text_atomically
from clvmodels.cli import app
from clvmodels.models.base import BaseModel, SimulatedPurchases
from clvmodels.models.beta_geo import bgnbd_log_likelihood
from clvmodels.pipeline import PipelineSettings, run_pipeline
from clvmodels.report import build_report, default_models, render_report, write_report

pytestmark = pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")


class PosteriorBetaGeo(BetaGeo):
    """A Bayesian stand-in: the MLE plus a posterior drawn from its sampling distribution,
    with per-customer log-likelihood and sampler statistics, as a PyMC fit would give."""

    fits: ClassVar[list[dict]] = []  # the settings of every fit, copies included

    def fit(self, data, weights=None, draws=100, chains=2, random_seed=None):
        super().fit(data, weights=weights)
        self.fits.append({"draws": draws, "chains": chains, "random_seed": random_seed})
        sample = self.param_draws(draws * chains, random_state=random_seed)
        x, t_x, T = (data[c].to_numpy(float) for c in ("frequency", "recency", "T"))
        ll = bgnbd_log_likelihood(
            *(sample[k].to_numpy()[:, None] for k in self.param_names), x, t_x, T
        )
        diverging = np.zeros((chains, draws), dtype=bool)
        diverging[0, :3] = True
        self.idata_ = az.from_dict(
            posterior={k: sample[k].to_numpy().reshape(chains, draws) for k in sample},
            log_likelihood={"purchases": ll.reshape(chains, draws, -1)},
            sample_stats={"diverging": diverging},
        )
        return self


@pytest.fixture(scope="module")
def built(tmp_path_factory, cdnow_transactions):
    out = tmp_path_factory.mktemp("report") / "nested" / "cdnow report.html"
    models = {
        "BG/NBD + GG (MLE)": (BetaGeo(), GammaGamma()),
        "Posterior stand-in": (PosteriorBetaGeo(), GammaGamma()),
    }
    path = build_report(
        cdnow_transactions, "customer_id", "date", "amount", "1997-09-30", out,
        observation_end="1998-06-30", models=models, mcmc_draws=60, mcmc_chains=2,
        n_draws=200, random_state=7, currency="USD", command="clvmodels report <cdnow>",
        progressbar=False,
    )
    return path, path.read_text(encoding="utf-8"), models


def test_writes_one_self_contained_file(built):
    path, html, _ = built
    assert path.name == "cdnow report.html" and path.is_file()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # Nothing is fetched: no scripts, external styles, fonts or images.
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "url(" not in html and "@import" not in html
    # No temporary files left beside it, and no machine paths inside it.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert str(path.parent) not in html


def test_figures_are_embedded_pngs(built):
    _, html, _ = built
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    # 2 tracking + conditional expectations + histogram (all models on each) + 2 maps +
    # rank + tiers + the tiers' backtest + trace + posterior + 4 calibration (holdout
    # total, PIT, coverage by level, tier probabilities).
    assert len(images) == 15
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count("<figcaption>") == len(images)


def test_shows_calibration_and_common_shocks(built):
    _, html, _ = built
    assert "Calibration on the holdout" in html
    # The forecasting model's holdout total with common shocks, and where the realised
    # total fell; the forecast's total with and without them.
    assert "With shocks common to all customers (per-week shock sd" in html
    # By default their effect on the total is measured by refitting the model on
    # simulated shocked cohorts (the level-only multipliers are the fallback).
    assert re.search(r"their effect measured by \d\d refits of BetaGeo on simulated shocked "
                     r"cohorts\), BG/NBD \+ GG \(MLE\)", html)
    assert "level-only" not in html
    assert re.search(r"the realised total, 70,976, falls (inside it|[0-9.]+ interval widths)", html)
    assert "interval of the realised total, with common shocks" in html
    assert "realised total, customers independent" in html
    # The pipeline measured them for the forecast: its tiers' totals carry them too.
    assert "widen the interval of the total and of the tiers&#39; totals" in html
    assert "total CLV, 90% interval, with common shocks" in html
    assert "Top-tier probability: mean gap to the share that got there" in html


def test_has_every_section(built):
    _, html, _ = built
    for anchor in ("data", "models", "comparison", "checks", "forecast", "diagnostics",
                   "provenance"):
        assert f'<section id="{anchor}">' in html and f'href="#{anchor}"' in html


def test_reports_the_published_cdnow_figures(built):
    _, html, _ = built
    assert ">2,357<" in html and ">1,882<" in html  # customers; holdout repeat purchases
    for value in ("0.225", "0.523", "1.044", "1.520", "2.164", "2.654", "3.504", "6.157"):
        assert f">{value}<" in html
    assert ">0.2426<" in html and ">-9,582.4<" in html  # r and the log-likelihood
    assert ">4,339<" in html  # cumulative repeat purchases at week 78


def test_comparison_and_diagnostics_of_the_posterior_model(built):
    _, html, models = built
    # The models passed in are not changed: the report fits copies. The MCMC settings
    # reached the Bayesian fit, with the seed.
    assert not models["Posterior stand-in"][0].is_fitted
    # (Twice: the comparison's fit and the model average's backtest refit.)
    assert PosteriorBetaGeo.fits == [{"draws": 60, "chains": 2, "random_seed": 7}] * 2
    comparison = html[html.index('<section id="comparison">'):html.index('<section id="checks">')]
    assert "ELPD-LOO" in comparison and "Posterior stand-in" in comparison
    diagnostics = html[html.index('<section id="diagnostics">'):]
    assert "2 × 60" in diagnostics
    assert ">3<" in diagnostics  # the three divergences
    assert "Check the sampler" in diagnostics  # divergences fail the checks
    assert "r_hat" in diagnostics and "ess_bulk" in diagnostics


def test_records_what_produced_it(built):
    _, html, _ = built
    provenance = html[html.index('<section id="provenance">'):]
    assert f">{__version__}<" in provenance
    assert "clvmodels report &lt;cdnow&gt;" in provenance  # escaped, as given
    assert "<code>7</code>" in provenance
    for setting in ("calibration_end", "1997-09-30", "n_draws", "fit_options",
                    "&#34;draws&#34;: 60", "DataFrame (6,919 rows)"):
        assert setting in provenance


def test_forecast_section(built):
    _, html, _ = built
    forecast = html[html.index('<section id="forecast">'):html.index('<section id="diagnostics">')]
    assert "12 months, discounted at 1% per month" in forecast
    assert "total expected CLV USD" in forecast
    assert "top value" in forecast and "Ten most valuable customers" in forecast


def test_bad_arguments(tmp_path, cdnow_transactions):
    with pytest.raises(ValueError, match="directory"):
        build_report(cdnow_transactions, "customer_id", "date", "amount", "1997-09-30",
                     tmp_path, mcmc_draws=0, progressbar=False)
    with pytest.raises(ValueError, match="forecast_model"):
        build_report(cdnow_transactions, "customer_id", "date", "amount", "1997-09-30",
                     tmp_path / "r.html", mcmc_draws=0, forecast_model="nope",
                     progressbar=False)
    with pytest.raises(ValueError, match="calibration_end"):
        build_report(cdnow_transactions, "customer_id", "date", "amount", "1999-01-01",
                     tmp_path / "r.html", mcmc_draws=0, progressbar=False)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def daily(cdnow_transactions):
    """A pipeline result in days, with names that HTML must escape."""
    settings = PipelineSettings(
        cdnow_transactions, "customer_id", "date", "amount", calibration_end="1997-09-30",
        observation_end="1998-06-30", time_unit="D",
        models={"<script>alert('x')</script> & co": ("BetaGeo", "GammaGamma")},
        n_draws=50, predictive=True, horizon=2, period="Q",
    )
    return run_pipeline(settings, progressbar=False)


def test_every_text_is_escaped_and_units_come_from_the_data(daily, tmp_path):
    path = write_report(daily, tmp_path / "r.html", title="<b>T&C</b>", currency="<€>",
                        command="clvmodels report --title '<b>'", progressbar=False)
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in html
    assert "<title>&lt;b&gt;T&amp;C&lt;/b&gt;</title>" in html
    assert "total expected CLV &lt;€&gt;" in html
    # The summary is in days: nothing is said in weeks.
    assert "holdout length (days)" in html and "recency and T are in days" in html
    assert "forecasts the 273 days of the holdout" in html
    # (Embedded images are left out: their base64 text may spell anything.)
    text = re.sub(r"data:image/png;base64,[^\"]+", "", html)
    assert "Repeat purchases per day" in text and "week" not in text.lower()
    assert "2 quarters, discounted at 1% per quarter" in html


def test_both_tier_probabilities_are_shown_and_told_apart(daily):
    html = render_report(daily, progressbar=False)
    assert "mean tier probability" in html and "mean realised tier probability" in html
    assert "the realised tier probability is the chance that the customer&#39;s actual" in html
    tiers = daily.segmentation.tiers
    assert (tiers["mean_tier_probability_realised"] < tiers["mean_tier_probability"]).all()


def test_top_tier_probabilities_are_tried_on_the_last_horizon_of_the_log(daily):
    # Two quarters before 1998-06-30 the models are refitted and forecast to it; the
    # note gives the calibration map fitted there, and a figure shows it.
    html = render_report(daily, progressbar=False)
    found = re.search(
        r"refitted on the data up to (1997-12-\d\d) and forecast to 1998-06-30 .*?"
        r"logistic calibration slope ([0-9.]+), intercept ([+-][0-9.]+); mean gap between "
        r"the chance given and the share that got there ([0-9.]+)\)",
        html,
    )
    assert found, "no backtest note"
    slope, gap = float(found.group(2)), float(found.group(4))
    assert 0.3 < slope < 3 and 0 < gap < 0.2
    assert f"Backtest {found.group(1)} to 1998-06-30: of customers given about p" in html


def test_a_unit_is_never_guessed(daily):
    split = daily.split.copy()
    split.attrs = {k: v for k, v in daily.split.attrs.items() if k != "time_unit"}
    for model in daily.models["<script>alert('x')</script> & co"]:
        assert model.time_unit_ == "D"
    unknown = dataclasses.replace(daily, split=split, models={}, transaction_model=BetaGeo(),
                                  spend_model=GammaGamma())
    with pytest.raises(ValueError, match="records no time unit"):
        render_report(unknown, progressbar=False)


def test_needs_a_holdout_comparison(cdnow_transactions):
    settings = PipelineSettings(cdnow_transactions, "customer_id", "date", "amount", n_draws=50)
    with pytest.raises(ValueError, match="calibration_end"):
        render_report(run_pipeline(settings, progressbar=False), progressbar=False)


def test_templates_are_package_data():
    """Every template ships with the package (a wheel holds what pyproject names)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    import clvmodels

    root = Path(clvmodels.__file__).parent
    pyproject = root.parents[1] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    files = [p.relative_to(root).as_posix() for p in (root / "templates").iterdir()]
    assert "report.html.j2" in {Path(f).name for f in files}
    for name in files:
        assert any(fnmatch.fnmatch(name, p) for p in patterns["clvmodels"]), name


def test_default_models():
    mle_only = default_models()
    assert list(mle_only) == ["BetaGeo + GammaGamma", "BetaGeoCNBD + GammaGamma",
                              "ModifiedBetaGeo + GammaGamma", "ModifiedBetaGeoCNBD + GammaGamma",
                              "ParetoNBD + GammaGamma"]
    transaction, spend = mle_only["BetaGeo + GammaGamma"]
    assert isinstance(transaction, BetaGeo) and isinstance(spend, GammaGamma)
    assert not transaction.is_fitted
    with_bayes = default_models("cohort", bayesian=True)
    assert list(with_bayes)[:len(mle_only)] == list(mle_only)
    transaction, spend = with_bayes["HierarchicalBetaGeo + HierarchicalGammaGamma"]
    assert transaction.group_col == spend.group_col == "cohort"


# --------------------------------------------------------------------------------------
# Any model of the contract: a toy NBD written against the public contract only
# --------------------------------------------------------------------------------------
class ToyNBD(BaseModel):
    """Poisson purchases with gamma heterogeneity, no dropout (Ehrenberg's NBD).

    Written against the model contract of ``clvmodels.models.base`` and nothing else:
    parameters named unlike BG/NBD's, no BG/NBD attributes, no private hooks.
    """

    param_names = ("shape", "scale")
    data_columns = ("frequency", "T")
    alive_future_columns = None

    def __init__(self):
        self.params_ = None

    def fit(self, data, weights=None):
        x, T = data["frequency"].to_numpy(float), data["T"].to_numpy(float)

        def nll(z):
            s, r = np.exp(z)
            return -np.sum(gammaln(s + x) - gammaln(s) + s * np.log(r / (r + T))
                           + x * np.log(T / (r + T)))

        res = optimize.minimize(nll, np.zeros(2), method="BFGS")
        self._z, self._cov = res.x, res.hess_inv
        self.params_ = pd.Series(np.exp(res.x), index=list(self.param_names))
        self.time_unit_ = data.attrs.get("time_unit")
        self.log_likelihood_, self.n_obs_ = -res.fun, len(data)
        self.aic_, self.bic_ = 2 * res.fun + 4, 2 * res.fun + 2 * np.log(len(data))
        return self

    def _shape_scale(self, draws):
        if draws is None:
            return self.params_["shape"], self.params_["scale"]
        return draws["shape"].to_numpy()[:, None], draws["scale"].to_numpy()[:, None]

    def summary(self, interval=0.95):
        se = np.sqrt(np.diag(self._cov))
        z = stats.norm.ppf(0.5 + interval / 2)
        return pd.DataFrame({"estimate": self.params_, "se": self.params_ * se,
                             "lower": np.exp(self._z - z * se), "upper": np.exp(self._z + z * se)})

    def param_draws(self, n, random_state=None):
        rng = np.random.default_rng(random_state)
        z = rng.multivariate_normal(self._z, self._cov, size=n)
        return pd.DataFrame(np.exp(z), columns=list(self.param_names))

    def _out(self, values, data):
        values = np.asarray(values, dtype=float)
        return pd.Series(values, index=data.index) if values.ndim == 1 else values

    def expected_purchases(self, t, data, *, draws=None):
        s, r = self._shape_scale(draws)
        x, T = data["frequency"].to_numpy(float), data["T"].to_numpy(float)
        return self._out((s + x) / (r + T) * np.asarray(t, dtype=float), data)

    def probability_alive(self, data, *, draws=None):
        shape = (len(draws), len(data)) if draws is not None else (len(data),)
        return self._out(np.ones(shape), data)

    def expected_purchases_new_customer(self, t, data=None, *, draws=None):
        s, r = self._shape_scale(draws)
        return np.asarray(s / r * np.asarray(t, dtype=float))

    def probability_of_purchases(self, n, t, data=None, *, draws=None):
        s, r = self._shape_scale(draws)
        return np.asarray(stats.nbinom.pmf(n, s, r / (r + np.asarray(t, dtype=float))))

    def simulate_purchases(self, t, data, *, draws, random_state=None):
        rng = np.random.default_rng(random_state)
        s, r = self._shape_scale(draws)
        x, T = data["frequency"].to_numpy(float), data["T"].to_numpy(float)
        rate = rng.gamma(s + x, 1.0 / (r + T))
        counts = rng.poisson(rate * t)
        owner = np.repeat(np.arange(counts.size), counts.ravel())
        return SimulatedPurchases(owner=owner, time=rng.uniform(0, t, owner.size),
                                  shape=counts.shape)

    def save(self, path):
        return write_text_atomically(path, json.dumps({"model": "ToyNBD"}))


def test_any_model_of_the_contract(tmp_path, cdnow_transactions):
    models = {"toy NBD": (ToyNBD(), GammaGamma()), "BG/NBD": ("BetaGeo", "GammaGamma")}
    path = build_report(
        cdnow_transactions, "customer_id", "date", "amount", "1997-09-30",
        tmp_path / "toy.html", models=models, mcmc_draws=0, n_draws=100, progressbar=False,
    )
    html = path.read_text(encoding="utf-8")
    models_section = html[html.index('<section id="models">'):html.index('<section id="compar')]
    assert "ToyNBD (transaction model)" in models_section and ">shape<" in models_section
    assert '<section id="diagnostics">' not in html  # no posterior, no sampler section
    # The command line takes it by name from the registry, like any model.
    log, out = tmp_path / "log.csv", tmp_path / "cli.html"
    cdnow_transactions.to_csv(log, index=False)
    result = CliRunner().invoke(app, [
        "report", "--transactions", str(log), "--customer-col", "customer_id",
        "--date-col", "date", "--value-col", "amount", "--calibration-end", "1997-09-30",
        "--output", str(out), "--model", "ToyNBD", "--model", "BetaGeo", "--n-draws", "50",
        "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "ToyNBD + GammaGamma" in out.read_text(encoding="utf-8")


def test_comparison_opens_with_the_verdict(built):
    _, html, _ = built
    comparison = html[html.index('<section id="comparison">'):html.index('<section id="checks">')]
    verdict = comparison[comparison.index('<div class="verdict">'):]
    verdict = verdict[:verdict.index("</div>")]
    assert comparison.index('<div class="verdict">') < comparison.index("<table>")
    # The posterior stand-in forecasts with the MLE: the same forecast, told apart by nothing.
    assert verdict == (
        '<div class="verdict">BG/NBD + GG (MLE) forecasts holdout value best: root mean squared '
        "error 72.30 per customer (mean absolute error 30.41, total -15.6% off) against 72.30 "
        "(30.41, -15.6%) for the runner-up Posterior stand-in; the paired difference in squared "
        "error, 0.00 per customer (95% interval 0.00 to 0.00), is within its noise, so the two "
        "cannot be told apart on this holdout. The model average forecasts holdout value with "
        "a root mean squared error of 72.30 per customer (mean absolute error 30.41, total "
        "-15.6% off); against BG/NBD + GG (MLE), the paired difference in squared error, 0.00 "
        "per customer (95% interval 0.00 to 0.00), is within its noise."
    )
    # The average's weights (two forecasts alike: any split of the weight is as good) and
    # one sentence on how they were chosen, below the table.
    assert "the holdout played no part." in comparison
    weights = comparison[comparison.index("the holdout played no part."):]
    assert "<th>weight</th>" in weights and "Posterior stand-in" in weights
    # Purchases in words below it, then the table with ranks and paired differences.
    assert "forecasts holdout purchases best: root mean squared error 1.608" in comparison
    for label in ("Value: rank (squared error)", "Purchases: rank (squared error)",
                  "Value: squared error above the best, per customer (95% interval)",
                  "Purchases inside their 90% predictive interval", "-12.1%"):
        assert f">{label}<" in comparison
    assert '<td class="text">best</td>' in comparison
    assert ">0.00 (0.00 to 0.00)<" in comparison
    # The checks show both models on one table and one figure each; the forecast says
    # how its model was chosen (the first of two equals: the best on the holdout).
    checks = html[html.index('<section id="checks">'):html.index('<section id="forecast">')]
    assert "<th>BG/NBD + GG (MLE)</th><th>Posterior stand-in</th>" in checks
    forecast = html[html.index('<section id="forecast">'):]
    assert ("BG/NBD + GG (MLE), the best of the 2 models on the holdout by the squared error "
            "of holdout value per customer, refitted on all data up to 1998-06-30") in forecast


@pytest.mark.filterwarnings("ignore::clvmodels.errors.SamplingWarning")  # 60 draws
def test_named_models_get_their_bayesian_versions(cdnow_transactions, tmp_path):
    from clvmodels.report import bayesian_versions

    named = {"MBG": ("ModifiedBetaGeo", GammaGamma), "mine": (BetaGeo(), GammaGamma())}
    # Model objects keep settings a name would lose: they get no Bayesian version.
    assert bayesian_versions(named) == {
        "BayesianModifiedBetaGeo + BayesianGammaGamma": ("BayesianModifiedBetaGeo",
                                                         "BayesianGammaGamma")}
    assert bayesian_versions({"B": ("BayesianBetaGeo", "BayesianGammaGamma")}) == {}
    first = cdnow_transactions["customer_id"].unique()[:600]
    log = cdnow_transactions[cdnow_transactions["customer_id"].isin(first)]
    html = build_report(
        log, "customer_id", "date", "amount", "1997-09-30", tmp_path / "r.html",
        models={"MBG": ("ModifiedBetaGeo", "GammaGamma")}, bayesian=True, mcmc_draws=60,
        mcmc_tune=60, mcmc_chains=2, n_draws=60, progressbar=False,
    ).read_text(encoding="utf-8")
    assert "BayesianModifiedBetaGeo + BayesianGammaGamma" in html and "2 models compared" in html
    # The Bayesian pair forecasts; its tier probabilities are not tried on a backtest,
    # which would rerun MCMC, and the report says so (without a warning).
    assert ("Top-tier probabilities were not tried on a backtest: BayesianModifiedBetaGeo is "
            "a Bayesian or grouped fit") in html
