"""A self-contained HTML report: data, models, holdout comparison, forecast, diagnostics.

:func:`build_report` runs the pipeline (:mod:`clvmodels.pipeline`) with a
calibration/holdout split and writes one HTML file that opens anywhere without a
network: figures are embedded as PNG images (base64), styles are inline, nothing is
fetched. :func:`write_report` does the writing for a pipeline result that is already
there. Sections:

1. the data: customers, transactions, periods, anything excluded;
2. the models: parameter estimates with intervals and fit statistics;
3. the holdout comparison (:func:`clvmodels.evaluation.compare`), opened by its verdict in
   one sentence (which model forecasts value best, by how much, and whether the
   difference is larger than its noise), with every model's errors, ranks, paired
   differences from the best, interval coverage and fit statistics;
4. model checks, all models together: tracking of cumulative and per-period repeat
   purchases, conditional expectations by calibration frequency (table and figure),
   the repeat-purchase histogram; frequency-recency and P(alive) maps of the forecast;
5. the forecast: CLV with intervals by customer rank, value tiers, top customers,
   from the best model on the holdout (or the one named) refitted on all the data;
6. sampler diagnostics for Bayesian models (those with ``idata_``): R-hat, effective
   sample sizes, divergences, trace, posterior and group-parameter plots;
7. what produced it: package versions, seed, settings and command.

The page comes from the jinja2 templates in ``clvmodels/templates`` with autoescaping
on, so every name, label and message is escaped whatever it holds. The report uses
models only through their contract (:mod:`clvmodels.models.base`): parameter tables
from ``summary()``, fit statistics from ``fit_statistics()``; any model works. Its
time units come from the data (:mod:`clvmodels.units`), never assumed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import os
import platform
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._io import write_text_atomically
from clvmodels.evaluation import AVERAGE_NAME, family_models, summary_text
from clvmodels.pipeline import PipelineResult, PipelineSettings, run_pipeline
from clvmodels.progress import progress_bar
from clvmodels.units import freq_base, period_length, resolve_time_unit, unit_name

__all__ = ["build_report", "default_models", "render_report", "write_report"]

_PACKAGES = (
    "clvmodels",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "pymc",
    "pytensor",
    "arviz",
    "nutpie",
)

# What each comparison metric means and how to show it ("diff": a paired difference
# from the best model with its interval, from three columns).
_METRICS: tuple[tuple[str, str, str], ...] = (
    ("purchases_actual", "Holdout purchases, actual (total)", "int"),
    ("purchases_expected", "Holdout purchases, expected (total)", "num"),
    ("purchases_error_pct", "Purchases: aggregate error", "pct"),
    ("purchases_rmse", "Purchases: root mean squared error per customer", "num"),
    ("purchases_mae", "Purchases: mean absolute error per customer", "num"),
    ("purchases_rank", "Purchases: rank ({loss} error)", "int"),
    ("purchases_loss_diff", "Purchases: {loss} error above the best, per customer "
                            "({paired} interval)", "diff"),
    ("purchases_spearman", "Purchases: rank correlation (Spearman)", "num"),
    ("purchases_interval_coverage", "Purchases inside their {level} predictive interval",
     "share"),
    ("value_actual", "Holdout value, actual (total)", "money"),
    ("value_expected", "Holdout value, expected (total)", "money"),
    ("value_error_pct", "Value: aggregate error", "pct"),
    ("value_rmse", "Value: root mean squared error per customer", "num"),
    ("value_mae", "Value: mean absolute error per customer", "num"),
    ("value_rank", "Value: rank ({loss} error)", "int"),
    ("value_loss_diff", "Value: {loss} error above the best, per customer ({paired} interval)",
     "diff"),
    ("value_spearman", "Value: rank correlation (Spearman)", "num"),
    ("value_top10_share", "Value captured by predicted top 10%", "share"),
    ("value_top20_share", "Value captured by predicted top 20%", "share"),
    ("value_interval_coverage", "Realised value inside its {level} predictive interval", "share"),
    ("value_total_inside", "Realised total inside its {level} predictive interval", "yesno"),
    ("value_total_widths_outside", "Realised total: interval widths outside (0: inside)", "f2"),
    ("tier_probability_gap", "Top-tier probability: mean gap to the share that got there", "share"),
    ("log_likelihood", "Purchase model: log-likelihood", "num"),
    ("aic", "Purchase model: AIC", "num"),
    ("bic", "Purchase model: BIC", "num"),
    ("elpd_loo", "Purchase model: ELPD-LOO", "num"),
    ("elpd_loo_se", "Purchase model: ELPD-LOO standard error", "num"),
    ("spend_log_likelihood", "Spend model: log-likelihood", "num"),
    ("spend_aic", "Spend model: AIC", "num"),
    ("spend_bic", "Spend model: BIC", "num"),
    ("spend_elpd_loo", "Spend model: ELPD-LOO", "num"),
    ("spend_elpd_loo_se", "Spend model: ELPD-LOO standard error", "num"),
    ("fit_seconds", "Fit time (seconds)", "num"),
)
# Metrics where lower or higher is better (the rest: see _comparison_section).
_BETTER = {
    "purchases_mae": "min", "purchases_rmse": "min", "value_mae": "min", "value_rmse": "min",
    "purchases_rank": "min", "value_rank": "min", "purchases_spearman": "max",
    "value_spearman": "max", "value_top10_share": "max", "value_top20_share": "max",
    "elpd_loo": "max", "aic": "min", "bic": "min", "tier_probability_gap": "min",
}
_TIER_LABELS = {
    "share_of_customers": "share of customers",
    "clv_total": "total CLV",
    "clv_mean": "mean CLV",
    "share_of_value": "share of value",
    "mean_tier_probability": "mean tier probability",
    "mean_tier_probability_realised": "mean realised tier probability",
    "boundary": "lowest CLV in tier",
}
# The difference between the two tier probabilities, in one sentence.
_REALISED_TIER_NOTE = (
    " The tier probability says how sure the tier of a customer's expected value is "
    "(parameter uncertainty only); the realised tier probability is the chance that the "
    "customer's actual value over the horizon, ranked among everyone's, lands in the "
    "tier, and is far lower because who buys how much is random."
)
_CUSTOMER_LABELS = {
    "monetary_value": "mean spend",
    "probability_alive": "P(alive)",
    "expected_purchases": "expected purchases",
    "expected_spend": "expected spend",
    "clv": "CLV",
    "clv_lower": "CLV lower",
    "clv_upper": "CLV upper",
}
_DIAGNOSTIC_KINDS = {"ess_bulk": "f0", "ess_tail": "f0", "r_hat": "f3"}


# --------------------------------------------------------------------------------------
# Building blocks: numbers, tables and figures as plain data for the templates
# --------------------------------------------------------------------------------------
def _fmt(value: Any, kind: str = "num") -> str:
    """Numbers for people: thousands separators, few significant digits, '–' for missing.

    Examples
    --------
    >>> _fmt(2357, "int"), _fmt(-9582.43), _fmt(0.24260), _fmt(0.123, "share"), _fmt(None)
    ('2,357', '-9,582.4', '0.2426', '12.3%', '–')
    """
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return str(value)
    if not np.isfinite(v):
        return "–"
    if kind == "pct":
        return f"{v:+.1f}%"
    if kind == "share":
        return f"{100 * v:.1f}%"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "yesno":
        return "yes" if v else "no"
    if kind in ("f0", "f1", "f2", "f3"):
        return f"{v:,.{kind[1]}f}"
    if kind == "money":
        return f"{v:,.2f}" if abs(v) < 1e4 else f"{v:,.0f}"
    if v == round(v) and abs(v) < 1e15 and kind == "auto":
        return f"{v:,.0f}"
    a = abs(v)
    if a >= 1e4:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:,.1f}"
    if a >= 1 or a == 0:
        return f"{v:.3f}"
    return f"{v:.4g}"


@dataclass(frozen=True)
class _Table:
    """A table for the ``table`` macro: header, and rows of (label, [(text, css class)])."""

    head: list[str]
    rows: list[tuple[str, list[tuple[str, str]]]]


def _table(
    frame: pd.DataFrame,
    *,
    index_label: str | None = None,
    kinds: Mapping[str, str] | None = None,
    row_kinds: Mapping[Any, str] | None = None,
    best: Mapping[Any, Any] | None = None,
) -> _Table:
    """A DataFrame as a table: text left, numbers right-aligned and formatted."""
    kinds = dict(kinds or {})
    row_kinds = dict(row_kinds or {})
    best = dict(best or {})
    label = index_label if index_label is not None else (frame.index.name or "")
    rows = []
    for idx, row in frame.iterrows():
        cells = []
        for col, value in row.items():
            kind = row_kinds.get(idx, kinds.get(col, "auto"))
            numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                value, bool | np.bool_
            )
            css = "num" if numeric or value is None else "text"
            if best.get(idx) == col:
                css += " best"
            cells.append((_fmt(value, kind), css))
        rows.append((str(idx), cells))
    return _Table(head=[str(c) for c in [label, *frame.columns]], rows=rows)


@dataclass(frozen=True)
class _Figure:
    src: str  # a data: URI
    caption: str
    alt: str
    wide: bool = False


def _axes(
    figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kwargs: Any
) -> tuple[Any, Any]:
    """A figure outside pyplot (no window, nothing left open in a notebook) and its Axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def _figure(fig: Any, caption: str, *, wide: bool = False) -> _Figure:
    """A matplotlib figure as an embedded PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130, bbox_inches="tight", facecolor="white")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return _Figure(
        src=f"data:image/png;base64,{data}",
        caption=caption,
        alt=caption.split(".")[0],
        wide=wide,
    )


@cache
def _environment() -> Any:
    """The jinja2 environment of the report templates, autoescaping everything."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("clvmodels", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------
def default_models(
    group_col: str | None = None, *, bayesian: bool = False
) -> dict[str, tuple[Any, Any]]:
    """The models a report compares by default (unfitted): the family.

    Every maximum-likelihood transaction model of the package with Gamma-Gamma
    (:func:`clvmodels.evaluation.family_models`) and, with ``bayesian``, the Bayesian
    versions after them, with one set of parameters per group of ``group_col`` where
    given. The models come from the registry.

    Examples
    --------
    >>> list(default_models())  # doctest: +NORMALIZE_WHITESPACE
    ['BetaGeo + GammaGamma', 'BetaGeoCNBD + GammaGamma', 'ModifiedBetaGeo + GammaGamma',
     'ModifiedBetaGeoCNBD + GammaGamma', 'ParetoNBD + GammaGamma']
    >>> list(default_models(bayesian=True))[-1]
    'HierarchicalBetaGeo + HierarchicalGammaGamma'
    """
    return family_models(bayesian=bayesian, group_col=group_col)


def bayesian_versions(models: Mapping[str, tuple[Any, Any]]) -> dict[str, tuple[str, str]]:
    """The Bayesian version of each named maximum-likelihood pair, by registry name.

    A pair given by names or classes (``("ParetoNBD", "GammaGamma")``) gets
    ``("BayesianParetoNBD", "BayesianGammaGamma")``, named ``"BayesianParetoNBD +
    BayesianGammaGamma"``; pairs of Bayesian models, and pairs given as model objects
    (whose settings a name would not carry), get none.

    Examples
    --------
    >>> list(bayesian_versions({"P": ("ParetoNBD", "GammaGamma")}))
    ['BayesianParetoNBD + BayesianGammaGamma']
    """
    from clvmodels.models.base import find_model_class

    out = {}
    for pair in models.values():
        names = [spec if isinstance(spec, str) else getattr(spec, "__name__", None)
                 for spec in pair]
        if None in names:
            continue  # a model object: its settings would be lost in a name
        classes = [find_model_class(name) for name in names]
        if any(cls is None or getattr(cls, "is_bayesian", False) for cls in classes):
            continue
        tx, spend = (f"Bayesian{name}" for name in names)
        out[f"{tx} + {spend}"] = (tx, spend)
    return out


def _is_bayesian(model: Any) -> bool:
    return getattr(model, "idata_", None) is not None


def _group_col(model: Any) -> str | None:
    col = getattr(model, "group_col", None)
    return col if isinstance(col, str) and col else None


def _param_table(model: Any, interval: float) -> pd.DataFrame:
    table = model.summary(interval=interval)
    if isinstance(table.index, pd.MultiIndex):
        # (parameter, group) rows read as "r [1997-01]"; hyperparameters have no group.
        attrs = table.attrs
        table = table.copy()
        table.index = [
            f"{i[0]} [{', '.join(map(str, i[1:]))}]" if any(str(p) for p in i[1:]) else str(i[0])
            for i in table.index
        ]
        table.attrs = attrs
    return table


def _fit_line(model: Any, n_customers: int) -> str:
    """Fit statistics of a model, from its ``fit_statistics()``, as one line."""
    stats = model.fit_statistics()
    items = []
    for key, label in (("log_likelihood", "log-likelihood"), ("aic", "AIC"), ("bic", "BIC"),
                       ("elpd_loo", "ELPD-LOO")):
        value = stats.get(key)
        if value is not None and np.isfinite(value):
            items.append(f"{label} {_fmt(value)}")
    n_obs = stats.get("n_obs")
    if n_obs is not None and np.isfinite(n_obs) and n_obs < n_customers:
        items.append(f"fitted on {n_obs:,.0f} of {n_customers:,} customers (the others "
                     "give this model no data)")
    return "; ".join(items)


def _sampler_diagnostics(model: Any, interval: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """ArviZ summary of the model's parameters and the headline sampler checks."""
    import arviz as az

    idata = model.idata_
    posterior = idata.posterior
    names = [
        n
        for n in posterior.data_vars
        # Parameters and hyperparameters, not per-customer latent variables.
        if _n_scalars(posterior, [n]) <= 64
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(idata, var_names=names, hdi_prob=interval, round_to="none")
    keep = [c for c in table.columns if not c.startswith("mcse")]
    table = table[keep]
    checks: dict[str, Any] = {
        "chains": int(posterior.sizes.get("chain", 0)),
        "draws": int(posterior.sizes.get("draw", 0)),
        "max_r_hat": float(table["r_hat"].max()) if "r_hat" in table else float("nan"),
        "min_ess_bulk": float(table["ess_bulk"].min()) if "ess_bulk" in table else float("nan"),
        "divergences": None,
    }
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "diverging" in stats:
        checks["divergences"] = int(stats["diverging"].sum())
    return table, checks


def _n_scalars(posterior: Any, names: Sequence[str]) -> int:
    """Number of scalar parameters (one ArviZ panel each) among ``names``."""
    return sum(
        int(np.prod([posterior[n].sizes[d] for d in posterior[n].dims
                     if d not in ("chain", "draw")] or [1]))
        for n in names
    )


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------
def build_report(
    transactions: Any,
    customer_col: str,
    date_col: str,
    value_col: str,
    calibration_end: Any,
    output: str | os.PathLike[str],
    *,
    observation_end: Any = None,
    group_col: str | None = None,
    models: Mapping[str, tuple[Any, Any]] | None = None,
    forecast_model: str | None = None,
    bayesian: bool = False,
    mcmc_draws: int = 500,
    mcmc_tune: int = 500,
    mcmc_chains: int = 2,
    horizon: int = 12,
    period: str = "M",
    discount_rate: float = 0.01,
    interval: float = 0.9,
    n_draws: int = 1000,
    random_state: int = 0,
    freq: str = "D",
    time_unit: str = "W",
    date_format: str | None = None,
    currency: str = "",
    title: str | None = None,
    command: str | None = None,
    common_shocks: bool = True,
    customer_data: Any = None,
    progressbar: bool = True,
) -> Path:
    """Fit, compare and forecast, and write everything to one self-contained HTML file.

    Runs :func:`clvmodels.pipeline.run_pipeline` with a calibration/holdout split and
    predictive intervals, then :func:`write_report`.

    Parameters
    ----------
    transactions : DataFrame, path, glob, folder or list of paths
        The transaction log (pandas or Polars, or Parquet / CSV files read by DuckDB),
        covering calibration and holdout.
    customer_col, date_col, value_col : str
        Customer id, date and value columns.
    calibration_end : date-like
        Last day of the calibration period; the holdout runs from the next day to
        ``observation_end``.
    output : path
        The HTML file to write (written through a temporary file and a rename).
    observation_end : date-like, optional
        Last day of the holdout and of the data used for the forecast (default: the
        last date in the log).
    group_col : str, optional
        Per-customer group (cohort, region, channel): the Bayesian models then get
        one set of parameters per group, partially pooled.
    models : mapping of name to (transaction model, spend model), optional
        Models to compare: registry names (``"BetaGeo"``), classes or objects (copied,
        never changed); default :func:`default_models`: the whole family (BG/NBD,
        BG/CNBD-k, MBG/NBD and Pareto/NBD, each with Gamma-Gamma, by maximum
        likelihood) and, with ``bayesian``, the Bayesian versions.
    forecast_model : str, optional
        Which model forecasts CLV (refitted on all data up to ``observation_end``);
        default the best on the holdout: the lowest squared error of holdout value
        per customer (``comparison.attrs["best"]``). ``"average"``: the model average
        (see :class:`clvmodels.pipeline.PipelineSettings`).
    bayesian : bool, default False
        Add the Bayesian versions to the default models (sampling: minutes, not
        seconds); with ``models``, the Bayesian version of each pair named by registry
        names or classes (:func:`bayesian_versions`).
    mcmc_draws, mcmc_tune, mcmc_chains : int
        Posterior draws and tuning steps per chain, and chains, for Bayesian models;
        ``mcmc_draws=0`` leaves the Bayesian models out of the default set.
    horizon, period, discount_rate : int, str, float
        The CLV forecast: ``horizon`` periods of ``period`` ("M": months) at
        ``discount_rate`` per period.
    interval : float, default 0.9
        Level of every interval in the report.
    n_draws : int, default 1000
        Parameter draws behind the CLV intervals.
    random_state : int, default 0
        Seed for sampling and simulation, recorded in the report.
    freq, time_unit, date_format : str
        How the log is summarised, as in :func:`clvmodels.rfm_summary`.
    currency : str, optional
        Currency of the values, for labels (e.g. "USD").
    title : str, optional
        Report title.
    command : str, optional
        The command that produced the report, recorded as given (the CLI passes its
        command line).
    common_shocks : bool, default True
        Put shocks common to all customers into the intervals of portfolio totals
        (:mod:`clvmodels.shocks`, estimated on the log); the plain intervals are shown
        beside them.
    customer_data : DataFrame, optional
        Per-customer attributes (covariates) joined onto the summaries, for models with
        covariates (see :class:`clvmodels.pipeline.PipelineSettings`).
    progressbar : bool, default True
        Show progress.

    Returns
    -------
    pathlib.Path
        The HTML file written.

    Examples
    --------
    >>> from clvmodels import load_cdnow
    >>> path = build_report(load_cdnow(), "customer_id", "date", "amount",
    ...                     "1997-09-30", "report.html")  # doctest: +SKIP
    """
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"output {output} is a directory; give a file name such as report.html")
    if models is None and bayesian and mcmc_draws > 0:
        models = default_models(group_col, bayesian=True)
    elif bayesian and mcmc_draws > 0:
        models = {**models, **bayesian_versions(models)}
    settings = PipelineSettings(
        transactions,
        customer_col,
        date_col,
        value_col,
        group_col=group_col,
        customer_data=customer_data,
        date_format=date_format,
        observation_end=observation_end,
        calibration_end=calibration_end,
        freq=freq,
        time_unit=time_unit,
        models=models,
        forecast_model=forecast_model,
        fit_options={"draws": mcmc_draws, "tune": mcmc_tune, "chains": mcmc_chains},
        horizon=horizon,
        period=period,
        discount_rate=discount_rate,
        interval=interval,
        n_draws=n_draws,
        predictive=True,
        segments=True,
        # The forecast's total and tiers with common shocks (one model's: not the average's).
        common_shocks=common_shocks and forecast_model not in (AVERAGE_NAME, "average"),
        random_state=random_state,
    )
    result = run_pipeline(settings, progressbar=progressbar)
    return write_report(
        result, output, title=title, currency=currency, command=command,
        common_shocks=common_shocks, progressbar=progressbar,
    )  # fmt: skip


def write_report(
    result: PipelineResult,
    output: str | os.PathLike[str],
    *,
    title: str | None = None,
    currency: str = "",
    command: str | None = None,
    common_shocks: bool = True,
    progressbar: bool = True,
) -> Path:
    """Write the report of a pipeline result to ``output``, atomically.

    Parameters are those of :func:`render_report`; ``output`` is the HTML file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from clvmodels import PipelineSettings, load_cdnow, run_pipeline
    >>> result = run_pipeline(PipelineSettings(
    ...     load_cdnow(), "customer_id", "date", "amount", calibration_end="1997-09-30",
    ...     n_draws=100), progressbar=False)
    >>> path = write_report(result, pathlib.Path(tempfile.mkdtemp()) / "report.html",
    ...                     progressbar=False)
    >>> path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    True
    """
    page = render_report(
        result, title=title, currency=currency, command=command,
        common_shocks=common_shocks, progressbar=progressbar,
    )  # fmt: skip
    return write_text_atomically(output, page)


def render_report(
    result: PipelineResult,
    *,
    title: str | None = None,
    currency: str = "",
    command: str | None = None,
    common_shocks: bool = True,
    progressbar: bool = True,
) -> str:
    """The HTML report of a pipeline result run with ``calibration_end``.

    Parameters
    ----------
    result : PipelineResult
        From :func:`clvmodels.pipeline.run_pipeline` with ``calibration_end`` (the
        report compares models on the holdout) and ``segments``; with ``predictive``
        the forecast shows predictive intervals too.
    title : str, optional
        Report title.
    currency : str, optional
        Currency of the values, for labels.
    command : str, optional
        The command that produced the report, recorded as given.
    common_shocks : bool, default True
        Put shocks common to all customers into the intervals of portfolio totals
        (the forecast's, and the forecasting model's holdout total), estimated on the
        log by :func:`clvmodels.shocks.estimate_common_shocks`.
    progressbar : bool, default True
        Show progress.

    Returns
    -------
    str
        The whole page.

    Raises
    ------
    ValueError
        For a result without a holdout comparison or segments, or whose summary
        records no time unit.
    """
    if result.split is None or result.comparison is None:
        raise ValueError(
            "the report compares models on a holdout: run the pipeline with calibration_end"
        )
    if result.segmentation is None:
        raise ValueError("the report shows value tiers: run the pipeline with segments=True")
    models = [m for pair in result.models.values() for m in pair]
    unit = resolve_time_unit(
        result.split.attrs.get("time_unit"),
        models=[*models, result.transaction_model, result.spend_model],
        context="report",
    )
    ctx = _Context(
        result=result,
        transactions=result.transactions(),
        unit=unit,
        level=result.settings.interval,
        currency=currency,
        started=_dt.datetime.now(_dt.UTC),
        common_shocks=common_shocks,
    )
    sections = [
        ("data", "Data", _data_section),
        ("models", "Models and parameters", _models_section),
        ("comparison", "Holdout comparison", _comparison_section),
        ("checks", "Model checks", _checks_section),
        ("forecast", "Forecast and tiers", _forecast_section),
        ("diagnostics", "Sampler diagnostics", _diagnostics_section),
        ("provenance", "How this report was made", lambda c: _provenance_section(c, command)),
    ]
    built = []
    with progress_bar(len(sections) + 1, "Report", enabled=progressbar) as bar:
        for anchor, heading, make in sections:
            bar.update(description=f"Report: {heading.lower()}")
            data = make(ctx)
            if data is not None:
                built.append({"anchor": anchor, "title": heading, "data": data})
            bar.advance()
        bar.update(description="Report: writing HTML")
        n_models = len(result.models)
        page = _environment().get_template("report.html.j2").render(
            title=title or "Customer lifetime value report",
            subtitle=(
                f"Calibration to {result.split.attrs['calibration_end']}, holdout to "
                f"{result.split.attrs['observation_end']}; {n_models} "
                f"model{'s' if n_models != 1 else ''} compared; forecast by "
                f"{result.forecast_name}."
            ),
            sections=built,
        )
        bar.advance()
    return page


@dataclass(frozen=True)
class _Context:
    result: PipelineResult
    transactions: pd.DataFrame  # the columns of the log, for per-transaction checks
    unit: str
    level: float
    currency: str
    started: _dt.datetime
    common_shocks: bool = True

    @property
    def level_text(self) -> str:
        return f"{self.level:.0%}"


# --------------------------------------------------------------------------------------
# Sections: each returns the data of its template
# --------------------------------------------------------------------------------------
def _data_section(ctx: _Context) -> dict[str, Any]:
    result = ctx.result
    s = result.settings
    split, summary = result.split, result.summary
    unit = unit_name(ctx.unit)
    tx = ctx.transactions
    dates = pd.to_datetime(tx[s.date_col], errors="coerce")
    values = pd.to_numeric(tx[s.value_col], errors="coerce")
    a = split.attrs
    cards = [
        ("transaction rows", _fmt(len(tx), "int")),
        ("customers (all data)", _fmt(len(summary), "int")),
        ("customers in calibration", _fmt(len(split), "int")),
        ("repeat buyers in calibration", _fmt(float((split["frequency"] > 0).mean()), "share")),
        ("total value in the log", _fmt(values.sum(), "money")),
        (f"holdout length ({unit})", f"{split['duration_holdout'].iloc[0]:g}"),
    ]
    periods = pd.DataFrame(
        {
            "from": [dates.min().date().isoformat(), _next_day(a["calibration_end"])],
            "to": [a["calibration_end"], a["observation_end"]],
            "transactions": [a.get("n_transactions_calibration"), a.get("n_transactions_holdout")],
            "repeat purchases": [int(split["frequency"].sum()),
                                 int(split["frequency_holdout"].sum())],
        },
        index=pd.Index(["calibration", "holdout"], name="period"),
    )
    notes = []
    late = a.get("n_customers_first_purchase_after_calibration", 0)
    if late:
        notes.append(
            f"{late:,} customers first bought during the holdout: they have no calibration "
            "history, so they are not in the holdout comparison (they are in the forecast)."
        )
    after = a.get("n_transactions_excluded_after_end", 0)
    if after:
        notes.append(f"{after:,} transactions after {a['observation_end']} are not used.")
    if a.get("n_negative_values"):
        notes.append(
            f"{a['n_negative_values']:,} transaction lines have negative values (returns); "
            "they are netted into their period."
        )
    groups = None
    if s.group_col:
        by_group = split.groupby(s.group_col, observed=True)
        group_table = pd.DataFrame(
            {
                "customers": split[s.group_col].value_counts().sort_index(),
                "repeat buyers": by_group["frequency"].apply(lambda x: float((x > 0).mean())),
                "mean holdout purchases": by_group["frequency_holdout"].mean(),
            }
        )
        groups = _table(group_table, kinds={"repeat buyers": "share", "customers": "int"})
    return {
        "cards": cards,
        "periods": _table(periods, kinds={"transactions": "int", "repeat purchases": "int"}),
        "notes": notes,
        "groups": groups,
        "unit": unit,
        "freq_name": unit_name(freq_base(a.get("freq", s.freq)), plural=False),
    }


def _next_day(iso: str) -> str:
    return (pd.Timestamp(iso) + pd.Timedelta(days=1)).date().isoformat()


# Attributes of a summary() table that the fit line or the note already show.
_SHOWN_ATTRS = {"log_likelihood", "aic", "bic", "n_obs", "note", "elpd_loo", "elpd_loo_se"}


def _settings_line(attrs: Mapping[str, Any]) -> str:
    """Other scalar facts a model's summary() records (e.g. BG/CNBD-k's ``k``)."""
    scalar = bool | int | float | str | np.generic
    items = [f"{key} {_fmt(value, 'auto')}" for key, value in attrs.items()
             if key not in _SHOWN_ATTRS and isinstance(value, scalar)]
    return "; ".join(items)


def _models_section(ctx: _Context) -> dict[str, Any]:
    n_customers = len(ctx.result.split)
    pairs = []
    for name, pair in ctx.result.models.items():
        shown = []
        for role, model in zip(("transaction model", "spend model"), pair, strict=True):
            table = _param_table(model, ctx.level)
            fit_line = "; ".join(
                part for part in (_fit_line(model, n_customers), _settings_line(table.attrs))
                if part
            )
            shown.append({
                "kind": f"{type(model).__name__} ({role})",
                "table": _table(table, index_label="parameter", kinds=_DIAGNOSTIC_KINDS),
                "fit_line": fit_line,
                "note": table.attrs.get("note") or "",
            })
        pairs.append({"name": name, "models": shown})
    return {"level": ctx.level_text, "pairs": pairs}


def _interval_cell(mean: float, lower: float, upper: float) -> str:
    """'34 (-84 to 153)': a difference and its interval, to about three significant
    digits of the interval's half-width."""
    half = (upper - lower) / 2
    digits = 2
    if np.isfinite(half) and half > 0:
        digits = int(min(max(2 - np.floor(np.log10(half)), 0), 8))
    return f"{mean:,.{digits}f} ({lower:,.{digits}f} to {upper:,.{digits}f})"


def _comparison_section(ctx: _Context) -> dict[str, Any]:
    comparison = ctx.result.comparison
    attrs = comparison.attrs
    words = {"level": ctx.level_text, "loss": attrs.get("loss", "squared"),
             "paired": f"{attrs.get('paired_interval', 0.95):.0%}"}
    rows = [(key, label.format(**words), kind) for key, label, kind in _METRICS
            if key in comparison.columns and comparison[key].notna().any()]
    cells = {}
    for name in comparison.index:
        column = []
        for key, _, kind in rows:
            if kind != "diff":
                column.append(comparison.loc[name, key])
            elif name == attrs.get("best" if key.startswith("value") else "best_purchases"):
                column.append("best")
            else:
                column.append(_interval_cell(*(comparison.loc[name, f"{key}{suffix}"]
                                               for suffix in ("", "_lower", "_upper"))))
        cells[name] = column
    table = pd.DataFrame(cells, index=pd.Index([label for _, label, _ in rows], name="metric"))
    best = {}
    if len(comparison) > 1:
        for key, label, _ in rows:
            score = None
            if key in _BETTER:
                score = comparison[key] if _BETTER[key] == "min" else -comparison[key]
            elif key.endswith("error_pct"):
                score = comparison[key].abs()
            elif key.endswith("interval_coverage"):
                score = (comparison[key] - ctx.level).abs()
            winner = _unique_best(score) if score is not None else None
            if winner is not None:
                best[label] = winner
    length = float(ctx.result.split["duration_holdout"].iloc[0])
    weights = pd.DataFrame({"weight": pd.Series(attrs.get("averaging_weights") or {},
                                                dtype=float)})  # fmt: skip
    weights.index.name = "model"
    verdict = attrs.get("verdict", "")
    more = summary_text(comparison)[len(verdict):].strip() if "best" in attrs else ""
    figures, notes = _calibration_figures(ctx)
    return {
        "holdout": f"{length:g} {unit_name(ctx.unit, plural=length != 1)}",
        "level": ctx.level_text,
        "paired": words["paired"],
        "loss": words["loss"],
        "verdict": verdict,
        "more": more,
        "left_out": attrs.get("left_out") or [],
        "left_out_reasons": attrs.get("left_out_reasons") or {},
        "table": _table(table, row_kinds={label: kind for _, label, kind in rows}, best=best),
        "averaging": (attrs.get("averaging") or {}).get("text"),
        "weights": _table(weights, kinds={"weight": "f3"}) if len(weights) else None,
        "calibration_figures": figures,
        "calibration_notes": notes,
    }


def _estimate_shocks(ctx: _Context, model: Any, end: Any) -> tuple[Any, str]:
    """Common shocks of ``model`` on the log up to ``end``, or None and why not."""
    from clvmodels.shocks import estimate_common_shocks

    s = ctx.result.settings
    try:
        shocks = estimate_common_shocks(
            model, ctx.transactions, s.customer_col, s.date_col, calibration_end=end,
            random_state=s.random_state,
        )  # fmt: skip
    except ValueError as err:
        return None, f"not estimated: {err}"
    return shocks, _about_shocks(shocks, model)


def _about_shocks(shocks: Any, model: Any) -> str:
    """The estimates of common shocks, in words, with the model they were measured
    against where it is not ``model`` itself."""
    measured = shocks.settings.get("model", type(model).__name__)
    against = "" if measured == type(model).__name__ else f", measured against {measured}"
    return shocks.describe() + against


def _shock_method(total: pd.Series) -> str:
    """How :func:`clvmodels.shocks.shocked_total` carried the shocks into a total."""
    a = total.attrs
    if a.get("shock_method") == "refits":
        return (
            f"their effect measured by {a['n_refits']} refits of {a['refit_model']} on "
            "simulated shocked cohorts"
        )
    why = a.get("level_only_reason")
    return "level-only multipliers" + (f" (no refits: {why})" if why else "")


def _calibration_figures(ctx: _Context) -> tuple[list[_Figure], list[str]]:
    """Total, PIT, coverage-by-level and tier-probability figures of the comparison."""
    from clvmodels import plotting
    from clvmodels.calibration import total_coverage
    from clvmodels.clv import customer_lifetime_value
    from clvmodels.shocks import shocked_total

    result, level = ctx.result, ctx.level_text
    comparison = result.comparison
    calibration = comparison.attrs.get("calibration")
    if not calibration:
        return [], []
    notes = []
    extra = {}
    name = result.forecast_name if result.forecast_name in result.models else None
    if ctx.common_shocks and name is not None:
        tx, spend = result.models[name]
        shocks, about = _estimate_shocks(ctx, tx, result.split.attrs["calibration_end"])
        if shocks is not None:
            a = comparison.attrs
            # The comparison's forecast again (same settings and seed, so the same draws).
            forecast = customer_lifetime_value(
                tx, spend, result.split, horizon=a["horizon"], period=a["period"],
                discount_rate=a["discount_rate"], interval=a["interval"],
                n_draws=a["n_draws"], predictive=True, random_state=a["random_state"],
                progressbar=False,
            )  # fmt: skip
            total = shocked_total(forecast, result.split, shocks, random_state=a["random_state"])
            lo, hi = float(total["clv_pred_lower"]), float(total["clv_pred_upper"])
            extra[f"{name}, with common shocks"] = (lo, hi)
            realised = calibration[name].total["realised"]
            where = total_coverage(realised, lo, hi)
            fell = ("inside it" if where["inside"] else
                    f"{abs(where['widths_outside']):.2f} interval widths "
                    f"{'above' if where['widths_outside'] > 0 else 'below'} it")  # fmt: skip
            notes.append(
                f"With shocks common to all customers ({about}, estimated on the calibration "
                f"log; {_shock_method(total)}), {name}'s {level} predictive interval of the "
                f"holdout total is {_fmt(lo, 'money')} – {_fmt(hi, 'money')}; the realised total, "
                f"{_fmt(realised, 'money')}, falls {fell}."
            )
        else:
            notes.append(f"Common shocks for {name}: {about}.")
    figures = []
    fig, ax = _axes((7.2, 0.55 * (len(calibration) + len(extra)) + 1.8))
    plotting.plot_total_intervals(calibration, extra=extra, currency=ctx.currency, ax=ax)
    figures.append(_figure(
        fig, f"Holdout total: each model's {level} predictive interval (parameter uncertainty "
        "and purchase noise; customers independent) and the realised total (dashed)."
        + (" The last bar adds shocks common to all customers." if extra else ""),
    ))  # fmt: skip
    fig, ax = _axes((6.4, 4.2))
    plotting.plot_pit_histogram(calibration, ax=ax)
    figures.append(_figure(
        fig, "Where each customer's realised holdout value falls in its predictive "
        "distribution (PIT, randomised within ties such as zero spend): flat when calibrated; "
        "a U shape means intervals too narrow, a hump too wide.",
    ))  # fmt: skip
    fig, ax = _axes((6.4, 4.2))
    plotting.plot_coverage_by_level(calibration, ax=ax)
    figures.append(_figure(
        fig, "Share of customers inside their central predictive interval at every level: "
        "on the diagonal when calibrated (bars: two binomial standard errors).",
    ))  # fmt: skip
    fig, ax = _axes((6.4, 4.2))
    plotting.plot_tier_calibration(calibration, ax=ax)
    column = next(iter(calibration.values())).tiers.attrs.get("column", "tier probability")
    figures.append(_figure(
        fig, f"Tier probabilities ({column}) against what happened: of the customers given "
        "about p, the share whose realised holdout value reached the tier (on the diagonal "
        "when calibrated). " + (
            "These come from the simulated futures, so they carry the purchase noise that "
            "decides who ends up on top." if column.endswith("_realised") else
            "Parameter uncertainty alone makes these probabilities near 0 or 1; realised "
            "values are far less certain."
        ),
    ))  # fmt: skip
    return figures, notes


def _unique_best(score: pd.Series) -> Any:
    """The index of the lowest score, or None when it is missing or shared (a tie)."""
    score = score.dropna()
    if len(score) < 2:
        return None
    lowest = score.min()
    ties = np.isclose(score.to_numpy(), lowest, rtol=1e-9, atol=0.0)
    return score.idxmin() if ties.sum() == 1 else None


def _checks_section(ctx: _Context) -> dict[str, Any]:
    from clvmodels import plotting
    from clvmodels.evaluation import (
        conditional_expectations_by_frequency,
        expected_cumulative_purchases,
    )

    result = ctx.result
    s = result.settings
    split = result.split
    one = unit_name(ctx.unit, plural=False)
    # Every model against the one actual series: tables with one column per model.
    tx_models = {name: pair[0] for name, pair in result.models.items()}
    tracking = expected_cumulative_purchases(
        tx_models,
        ctx.transactions,
        s.customer_col,
        s.date_col,
        end=split.attrs["observation_end"],
        calibration_end=split.attrs["calibration_end"],
        time_unit=ctx.unit,
        group_col=s.group_col,
        customer_data=s.customer_data,
    )
    cond = conditional_expectations_by_frequency(tx_models, split)

    fig, ax = _axes((8.5, 4.2))
    plotting.plot_cumulative_purchases(tracking, ax=ax)
    cumulative = _figure(
        fig,
        f"Cumulative repeat purchases of the whole cohort, {one} by {one}: every model fitted "
        "on the calibration period (left of the dotted line) forecasting the holdout (right).",
    )
    fig, ax = _axes((8.5, 4.2))
    plotting.plot_incremental_purchases(tracking, ax=ax)
    incremental = _figure(fig, f"Repeat purchases per {one}, every model against actual.")
    track_table = tracking[["actual", *tx_models]]
    last_cal = tracking.attrs.get("calibration_end_t")
    n = len(track_table)
    every = max(n // 6, 1)
    picks = set(range(every, n + 1, every)) | {n}
    if last_cal and float(last_cal).is_integer() and last_cal <= n:
        picks.add(int(last_cal))

    fig, ax = _axes((8.5, 4.2))
    plotting.plot_calibration_vs_holdout(tx_models, split, ax=ax)
    conditional = _figure(fig, "Mean holdout purchases by calibration frequency: every model's "
                               "conditional expectation against actual.")
    fig, ax = _axes((8.5, 4.2))
    plotting.plot_repeat_purchase_histogram(tx_models, split, ax=ax)
    histogram = _figure(fig, "Customers by repeat purchases in calibration: every model "
                             "against actual (the fit to the calibration data).")

    # Maps of the forecasting model's predictions.
    model, summary = result.transaction_model, result.summary
    group = None
    col = _group_col(model)
    if col is not None:
        group = summary[col].value_counts().idxmax()
    month = round(period_length("M", ctx.unit), 3)
    fig, ax = _axes((6.4, 4.2))
    plotting.plot_frequency_recency_matrix(model, summary, t=month, group=group, ax=ax)
    where = f" (group {group})" if group is not None else ""
    name = result.forecast_name
    if name == AVERAGE_NAME:  # the maps are of one model: the one with the largest weight
        name = f"{type(model).__name__}, the largest weight of the model average,"
    maps = [_figure(fig, f"Expected purchases in the next month by frequency and recency"
                         f"{where}, {name} fitted on all data.")]
    fig, ax = _axes((6.4, 4.2))
    plotting.plot_probability_alive_matrix(model, summary, group=group, ax=ax)
    maps.append(_figure(fig, f"Probability of being active by frequency and recency{where}."))
    return {
        "unit": unit_name(ctx.unit),
        "tracking_figures": [cumulative, incremental],
        "tracking_table": _table(
            track_table.loc[sorted(picks)],
            index_label=one,
            kinds={"actual": "int"} | {name: "f1" for name in tx_models},
        ),
        "conditional_table": _table(
            cond,
            index_label="repeat purchases",
            kinds={"customers": "int", "actual": "f3"} | {name: "f3" for name in tx_models},
        ),
        "conditional_figures": [conditional, histogram],
        "map_figures": maps,
    }


def _tier_backtest(ctx: _Context) -> tuple[str | None, _Figure | None]:
    """The pipeline's tier backtest (the forecast's top-tier probabilities tried on the
    last horizon of the log): a note and a figure, or why it did not run (None, None
    without realised tier probabilities)."""
    from clvmodels import plotting
    from clvmodels.calibration import tier_probability_gap

    result = ctx.result
    column = "top_tier_probability_realised"
    if result.segmentation is None or column not in result.segmentation.customers.columns:
        return None, None
    check = result.tier_backtest
    if check is None:
        why = result.tier_backtest_note or "the pipeline ran with tier_backtest=False"
        return f"Top-tier probabilities were not tried on a backtest: {why}.", None
    gap = tier_probability_gap(check.calibration)
    tone = ("too confident" if check.slope < 0.95 else
            "not confident enough" if check.slope > 1.05 else "about right")  # fmt: skip
    note = (
        f"Tried on the last stretch of the log: the models refitted on the data up to "
        f"{check.cut} and forecast to {check.end} gave each customer a chance of the top "
        f"tier by realised value; the chances given were {tone} (logistic calibration "
        f"slope {check.slope:.2f}, intercept {check.intercept:+.2f}; mean gap between the "
        f"chance given and the share that got there {gap:.3f}). "
        "The customer table's top_tier_probability_realised_recalibrated is this "
        "forecast's top-tier probability mapped by it, assuming the model errs ahead as it "
        "did there."
    )
    fig, ax = _axes((6.0, 4.4))
    plotting.plot_tier_calibration(check, ax=ax)
    caption = (
        f"Backtest {check.cut} to {check.end}: of customers given about p of the top tier, "
        "the share that reached it, as given and after the recalibration fitted on these "
        "same customers."
    )
    return note, _figure(fig, caption)


def _forecast_shocks(ctx: _Context) -> tuple[pd.Series | None, str]:
    """The forecast's total with common shocks and the shocks in words; (None, why not)
    where they were not estimated. The pipeline's own (``common_shocks=True``, which also
    carries them into the tiers' totals) where it measured them, else measured here."""
    result = ctx.result
    if result.shock_factors is not None:
        return result.total(), _about_shocks(result.common_shocks, result.transaction_model)
    if result.common_shocks_note is not None:
        return None, f"not estimated: {result.common_shocks_note}"
    shocks, about = _estimate_shocks(ctx, result.transaction_model,
                                     result.summary.attrs.get("observation_end"))  # fmt: skip
    if shocks is None:
        return None, about
    from clvmodels.shocks import shocked_total

    return shocked_total(result.forecast, result.summary, shocks,
                         random_state=result.settings.random_state), about  # fmt: skip


def _forecast_section(ctx: _Context) -> dict[str, Any]:
    from clvmodels import plotting

    result = ctx.result
    forecast, segmentation = result.forecast, result.segmentation
    total = forecast.total()
    level = ctx.level_text
    money = f" {ctx.currency}" if ctx.currency else ""
    cards = [
        ("customers", _fmt(total["customers"], "int")),
        ("total expected CLV" + money, _fmt(total["clv"], "money")),
        (f"{level} interval of the total", f"{_fmt(total['clv_lower'], 'money')} – "
                                           f"{_fmt(total['clv_upper'], 'money')}"),
    ]
    shock_note = None
    if ctx.common_shocks and result.forecast_name == AVERAGE_NAME:
        shock_note = ("Common shocks are estimated for one model, so the model average's "
                      "intervals treat customers as independent.")
    elif ctx.common_shocks:
        wide, about = _forecast_shocks(ctx)
        if wide is not None:
            key = "clv_pred" if "clv_pred_lower" in wide else "clv"
            cards.append((f"{level} interval of the realised total, with common shocks",
                          f"{_fmt(wide[f'{key}_lower'], 'money')} – "
                          f"{_fmt(wide[f'{key}_upper'], 'money')}"))  # fmt: skip
            tiers_too = segmentation is not None and segmentation.settings.get(
                "common_multipliers")
            shock_note = (
                f"Common shocks ({about}; {_shock_method(wide)}) widen the interval of the "
                "total" + (" and of the tiers' totals" if tiers_too else "") + ": periods "
                "share shocks that independent customers do not average away. The other "
                "intervals treat customers as independent."
            )  # fmt: skip
        else:
            shock_note = f"Common shocks: {about}; the intervals treat customers as independent."
    if "clv_pred_lower" in total:
        cards.append((f"{level} predictive interval (realised total"
                      f"{', customers independent' if ctx.common_shocks else ''})",
                      f"{_fmt(total['clv_pred_lower'], 'money')} – "
                      f"{_fmt(total['clv_pred_upper'], 'money')}"))  # fmt: skip
    fig, ax = _axes((8.5, 4.4))
    plotting.plot_clv_by_rank(forecast, currency=ctx.currency, ax=ax)
    rank_fig = _figure(
        fig,
        f"Expected CLV of every customer from the most to the least valuable, with the {level} "
        "interval of the expected value (dark band: parameter uncertainty) and the "
        f"{level} predictive interval of the realised value (light band).",
    )
    fig, ax = _axes((7.2, 4.4))
    plotting.plot_tier_summary(segmentation, ax=ax)
    tier_fig = _figure(
        fig,
        "Tiers by CLV rank: their share of customers and of expected value (with its "
        f"{level} interval); 'sure' is the mean probability that a customer of the tier "
        "belongs there." + _REALISED_TIER_NOTE * ("mean_tier_probability_realised"
                                                   in segmentation.tiers.columns),
    )
    tier_note, tier_backtest_fig = _tier_backtest(ctx)
    tiers = segmentation.tiers
    tier_frame = pd.DataFrame(index=tiers.index)
    for col in ("customers", "share_of_customers", "clv_total"):
        tier_frame[_TIER_LABELS.get(col, col)] = tiers[col]
    if {"clv_total_lower", "clv_total_upper"} <= set(tiers.columns):
        shocked = ", with common shocks" if segmentation.settings.get("common_multipliers") else ""
        tier_frame[f"total CLV, {level} interval{shocked}"] = [
            f"{_fmt(lo, 'f0')} – {_fmt(hi, 'f0')}"
            for lo, hi in zip(tiers["clv_total_lower"], tiers["clv_total_upper"], strict=True)
        ]
    for col in ("clv_mean", "share_of_value", "mean_tier_probability",
                "mean_tier_probability_realised", "boundary"):
        if col in tiers.columns:
            tier_frame[_TIER_LABELS[col]] = tiers[col]
    customers = result.customers()
    cols = [c for c in ("frequency", "recency", "T", "monetary_value", "probability_alive",
                        "expected_purchases", "expected_spend", "clv", "clv_lower",
                        "clv_upper") if c in customers.columns]
    top = customers.sort_values("clv", ascending=False).head(10)[cols]
    top["tier"] = segmentation.customers["tier"].reindex(top.index).astype(str)
    top = top.rename(columns=_CUSTOMER_LABELS)
    if result.forecast_name == AVERAGE_NAME:
        chosen = ("the models' forecasts mixed with the weights of the holdout comparison's "
                  "model average, each model")
    elif result.settings.forecast_model is not None:
        chosen = "chosen by name"
    elif len(result.models) > 1:
        loss = result.comparison.attrs.get("loss", "squared")
        chosen = (f"the best of the {len(result.models)} models on the holdout by the {loss} "
                  "error of holdout value per customer")
    else:
        chosen = ""
    return {
        "name": result.forecast_name,
        "chosen": chosen,
        "observation_end": result.summary.attrs.get("observation_end"),
        "horizon": result.settings.describe_horizon(),
        "n_draws": result.settings.n_draws,
        "cards": cards,
        "shock_note": shock_note,
        "figures": [rank_fig, tier_fig],
        "tier_note": tier_note,
        "tier_figures": [] if tier_backtest_fig is None else [tier_backtest_fig],
        "tiers": _table(
            tier_frame,
            kinds={"customers": "int", "share of customers": "share", "share of value": "share",
                   "mean tier probability": "share",
                   "mean realised tier probability": "share", "total CLV": "f0", "mean CLV": "f2",
                   "lowest CLV in tier": "f2"},
        ),
        "top": _table(
            top, index_label=result.settings.customer_col,
            kinds={"frequency": "int", "recency": "f1", "T": "f1", "mean spend": "f2",
                   "P(alive)": "f3", "expected purchases": "f2", "expected spend": "f2",
                   "CLV": "f2", "CLV lower": "f2", "CLV upper": "f2"},
        ),
    }


def _diagnostics_section(ctx: _Context) -> dict[str, Any] | None:
    from clvmodels import plotting

    shown = []
    level = ctx.level
    for name, pair in ctx.result.models.items():
        for model in pair:
            if not _is_bayesian(model):
                continue
            label = f"{name}: {type(model).__name__}"
            table, checks = _sampler_diagnostics(model, level)
            good = bool(
                np.isfinite(checks["max_r_hat"])
                and checks["max_r_hat"] < 1.01
                and (checks["divergences"] or 0) == 0
                and checks["min_ess_bulk"] >= 100 * max(checks["chains"], 1) / 2
            )
            verdict = (
                "Sampler checks passed: R-hat below 1.01, no divergences, enough effective "
                "draws."
                if good
                else "Check the sampler: R-hat of 1.01 or more, divergences or few effective "
                "draws mean the posterior may be unreliable; sample longer (more tuning and "
                "draws) before trusting the intervals."
            )
            cards = [
                ("chains × draws", f"{checks['chains']} × {checks['draws']}"),
                ("max R-hat", _fmt(checks["max_r_hat"])),
                ("min bulk ESS", _fmt(checks["min_ess_bulk"], "int")),
                ("divergences", "–" if checks["divergences"] is None
                 else f"{checks['divergences']:,}"),
            ]
            figs = []
            names = [n for n in model.param_names if n in model.idata_.posterior]
            fig, axes = _axes((9.0, 1.9 * len(names)), len(names), 2, squeeze=False)
            plotting.plot_trace(model, var_names=names, ax=axes)
            figs.append(_figure(fig, f"{label}: trace (left: density per chain and group; "
                                     "right: draws).", wide=True))
            group = _group_col(model)
            if group is None:
                n_panels = _n_scalars(model.idata_.posterior, names)
                ncols = min(n_panels, 4)
                nrows = -(-n_panels // ncols)
                fig, axes = _axes((3.4 * ncols, 2.8 * nrows), nrows, ncols, squeeze=False)
                for extra in axes.ravel()[n_panels:]:
                    extra.set_visible(False)
                plotting.plot_posterior(model, var_names=names, interval=level,
                                        ax=axes.ravel()[:n_panels])
                figs.append(_figure(fig, f"{label}: posterior densities with {level:.0%} HDI.",
                                    wide=True))
            else:
                n_groups = model.idata_.posterior.sizes.get(group, 1)
                fig, axes = _axes((2.6 * len(names) + 1.2, 0.45 * n_groups + 1.8), 1,
                                  len(names), sharey=True, squeeze=False)
                plotting.plot_group_parameters(model, var_names=names, interval=level,
                                               ax=axes.ravel())
                figs.append(_figure(fig, f"{label}: each group's parameters, partially "
                                         "pooled.", wide=True))
            shown.append({
                "label": label,
                "cards": cards,
                "verdict": verdict,
                "ok": good,
                "table": _table(table, index_label="parameter", kinds=_DIAGNOSTIC_KINDS),
                "figures": figs,
            })
    return {"models": shown} if shown else None


def _setting_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _provenance_section(ctx: _Context, command: str | None) -> dict[str, Any]:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    settings = ctx.result.settings.to_dict()
    if ctx.currency:
        settings["currency"] = ctx.currency
    version_table = pd.DataFrame({"version": pd.Series(versions)})
    version_table.index.name = "package"
    setting_table = pd.DataFrame(
        {"value": [_setting_text(v) for v in settings.values()]},
        index=pd.Index(list(settings), name="setting"),
    )
    return {
        "started": f"{ctx.started:%Y-%m-%d %H:%M}",
        "seed": settings["random_state"],
        "command": command or "clvmodels.report.build_report(...) from Python",
        "settings": _table(setting_table),
        "versions": _table(version_table),
    }
