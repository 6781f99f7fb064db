"""The HTML report: self-contained, complete, with the published CDNOW figures in it."""

from __future__ import annotations

import base64
import re

import arviz as az
import numpy as np
import pytest

from clvmodels import BetaGeo, GammaGamma, __version__
from clvmodels.models.beta_geo import bgnbd_log_likelihood
from clvmodels.report import build_report, default_models

pytestmark = pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")


class PosteriorBetaGeo(BetaGeo):
    """A Bayesian stand-in: the MLE plus a posterior drawn from its sampling distribution,
    with per-customer log-likelihood and sampler statistics, as a PyMC fit would give."""

    def fit(self, data, weights=None, draws=100, chains=2, random_seed=None):
        super().fit(data, weights=weights)
        self.fit_settings = {"draws": draws, "chains": chains, "random_seed": random_seed}
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
    # 2 tracking + 2 per model + 2 maps + rank + tiers + trace + posterior.
    assert len(images) == 12
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count("<figcaption>") == len(images)


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
    stand_in = models["Posterior stand-in"][0]
    # The MCMC settings reached the Bayesian fit, with the seed.
    assert stand_in.fit_settings == {"draws": 60, "chains": 2, "random_seed": 7}
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
    for setting in ("calibration_end", "1997-09-30", "n_draws", "mcmc_draws"):
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


def test_default_models():
    mle_only = default_models(bayesian=False)
    assert list(mle_only) == ["BG/NBD + Gamma-Gamma (MLE)"]
    transaction, spend = mle_only["BG/NBD + Gamma-Gamma (MLE)"]
    assert isinstance(transaction, BetaGeo) and isinstance(spend, GammaGamma)
    assert not transaction.is_fitted
