"""A self-contained HTML report: data, models, holdout comparison, forecast, diagnostics.

:func:`build_report` runs the whole flow on a transaction log and writes one HTML
file that opens anywhere without a network: figures are embedded as PNG images
(base64), styles are inline, nothing is fetched. Sections:

1. the data: customers, transactions, periods, anything excluded;
2. the models: parameter estimates with intervals and fit statistics;
3. the holdout comparison (:func:`clvmodels.evaluation.compare`);
4. model checks: repeat-purchase histogram, conditional expectations, tracking of
   cumulative and weekly repeat purchases, frequency-recency and P(alive) maps;
5. the forecast: CLV with intervals by customer rank, value tiers, top customers,
   from the chosen model refitted on all the data;
6. sampler diagnostics for Bayesian models: R-hat, effective sample sizes,
   divergences, trace, posterior and group-parameter plots;
7. what produced it: package versions, seed, settings and command.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import html
import inspect
import io
import os
import platform
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._io import write_atomically
from clvmodels.progress import progress_bar

__all__ = ["build_report", "default_models"]

_UNIT_NAMES = {"h": "hours", "D": "days", "W": "weeks", "M": "months", "Y": "years"}
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

# What each comparison metric means, how to show it, and which way is better.
_METRICS: tuple[tuple[str, str, str], ...] = (
    ("purchases_actual", "Holdout purchases, actual (total)", "int"),
    ("purchases_expected", "Holdout purchases, expected (total)", "num"),
    ("purchases_error_pct", "Purchases: aggregate error", "pct"),
    ("purchases_mae", "Purchases: mean absolute error per customer", "num"),
    ("purchases_rmse", "Purchases: root mean squared error per customer", "num"),
    ("value_actual", "Holdout value, actual (total)", "money"),
    ("value_expected", "Holdout value, expected (total)", "money"),
    ("value_error_pct", "Value: aggregate error", "pct"),
    ("value_mae", "Value: mean absolute error per customer", "num"),
    ("value_spearman", "Value: rank correlation (Spearman)", "num"),
    ("value_top10_share", "Value captured by predicted top 10%", "share"),
    ("value_top20_share", "Value captured by predicted top 20%", "share"),
    ("value_interval_coverage", "Realised value inside its {level} predictive interval", "share"),
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


# --------------------------------------------------------------------------------------
# HTML building blocks
# --------------------------------------------------------------------------------------
_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #1f77b4;
        --bg-soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.5;
       font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial,
       sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 64px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 8px; }
h1 { font-size: 1.75rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 40px 0 8px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 24px 0 6px; }
p, li { max-width: 78ch; }
.muted { color: var(--muted); font-size: 0.9rem; }
nav { background: var(--bg-soft); border: 1px solid var(--line); border-radius: 6px;
      padding: 8px 14px; margin: 16px 0; font-size: 0.92rem; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; white-space: nowrap; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr));
         gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px;
        background: var(--bg-soft); }
.card .v { font-size: 1.25rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 0.82rem; }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-size: 0.88rem; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--bg-soft); border-bottom: 2px solid var(--line);
           text-align: right; vertical-align: bottom; }
thead th:first-child, td.label { text-align: left; }
td.num, td.text { text-align: right; white-space: nowrap; }
td.label { font-weight: 500; white-space: nowrap; }
tbody tr:hover { background: #f0f6fc; }
td.best { font-weight: 700; color: #0b5394; }
.figs { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr));
        gap: 18px; margin: 10px 0 18px; }
figure { margin: 0; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figure.wide { grid-column: 1 / -1; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 4px; }
.note { border-left: 4px solid #d4a72c; background: #fff8c5; padding: 6px 12px;
        margin: 10px 0; font-size: 0.92rem; }
.ok { border-left-color: #2da44e; background: #dafbe1; }
code { background: var(--bg-soft); padding: 1px 4px; border-radius: 4px; font-size: 0.88em; }
pre { background: var(--bg-soft); padding: 10px; border-radius: 6px; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; font-size: 0.85rem; }
@media (max-width: 720px) { main { padding: 12px; } .figs { grid-template-columns: 1fr; } }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, kind: str = "num") -> str:
    """Numbers for people: thousands separators, few significant digits, '–' for missing."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return _esc(value)
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _esc(value)
    if not np.isfinite(v):
        return "–"
    if kind == "pct":
        return f"{v:+.1f}%"
    if kind == "share":
        return f"{100 * v:.1f}%"
    if kind == "int":
        return f"{v:,.0f}"
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


def _table(
    frame: pd.DataFrame,
    *,
    index_label: str | None = None,
    kinds: Mapping[str, str] | None = None,
    row_kinds: Mapping[Any, str] | None = None,
    best: Mapping[Any, Any] | None = None,
) -> str:
    """A DataFrame as an HTML table: text left, numbers right-aligned and formatted."""
    kinds = dict(kinds or {})
    row_kinds = dict(row_kinds or {})
    best = dict(best or {})
    label = index_label if index_label is not None else (frame.index.name or "")
    head = "".join(f"<th>{_esc(c)}</th>" for c in [label, *frame.columns])
    body = []
    for idx, row in frame.iterrows():
        cells = [f'<td class="label">{_esc(idx)}</td>']
        for col, value in row.items():
            kind = row_kinds.get(idx, kinds.get(col, "auto"))
            numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                value, bool | np.bool_
            )
            css = "num" if numeric or value is None else "text"
            if best.get(idx) == col:
                css += " best"
            cells.append(f'<td class="{css}">{_fmt(value, kind)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><div class="v">{v}</div><div class="k">{_esc(k)}</div></div>'
                  for k, v in items)
        + "</div>"
    )


def _axes(
    figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kwargs: Any
) -> tuple[Any, Any]:
    """A figure outside pyplot (no window, nothing left open in a notebook) and its Axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def _figure(fig: Any, caption: str, *, wide: bool = False) -> str:
    """A matplotlib figure as an embedded PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130, bbox_inches="tight", facecolor="white")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    css = ' class="wide"' if wide else ""
    alt = _esc(caption.split(".")[0])
    return (
        f'<figure{css}><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _figures(parts: Sequence[str]) -> str:
    parts = [p for p in parts if p]
    return f'<div class="figs">{"".join(parts)}</div>' if parts else ""


def _note(text: str, ok: bool = False) -> str:
    return f'<div class="note{" ok" if ok else ""}">{text}</div>'


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{content}</section>'


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------
def default_models(
    group_col: str | None = None, *, bayesian: bool = True
) -> dict[str, tuple[Any, Any]]:
    """The models a report compares by default.

    BG/NBD with Gamma-Gamma by maximum likelihood, and (with ``bayesian``) their
    hierarchical Bayesian versions, with one set of parameters per group of
    ``group_col`` when given.

    Examples
    --------
    >>> list(default_models(bayesian=False))
    ['BG/NBD + Gamma-Gamma (MLE)']
    """
    from clvmodels.models.beta_geo import BetaGeo
    from clvmodels.models.gamma_gamma import GammaGamma

    models: dict[str, tuple[Any, Any]] = {
        "BG/NBD + Gamma-Gamma (MLE)": (BetaGeo(), GammaGamma())
    }
    if bayesian:
        from clvmodels.models.hierarchical import HierarchicalBetaGeo, HierarchicalGammaGamma

        name = (
            f"Hierarchical BG/NBD + Gamma-Gamma by {group_col} (Bayesian)"
            if group_col
            else "BG/NBD + Gamma-Gamma (Bayesian)"
        )
        models[name] = (
            HierarchicalBetaGeo(group_col=group_col),
            HierarchicalGammaGamma(group_col=group_col),
        )
    return models


def _is_bayesian(model: Any) -> bool:
    return getattr(model, "idata_", None) is not None


def _group_col(model: Any) -> str | None:
    col = getattr(model, "group_col", None)
    return col if isinstance(col, str) and col else None


def _param_table(model: Any, interval: float) -> pd.DataFrame:
    try:
        table = model.summary(interval=interval)
    except TypeError:  # a summary without a level argument
        table = model.summary()
    if isinstance(table.index, pd.MultiIndex):
        # (parameter, group) rows read as "r [1997-01]"; hyperparameters have no group.
        table = table.copy()
        table.index = [
            f"{i[0]} [{', '.join(map(str, i[1:]))}]" if any(str(p) for p in i[1:]) else str(i[0])
            for i in table.index
        ]
    return table


def _fit_line(model: Any) -> str:
    items = []
    for attr, label in (("log_likelihood_", "log-likelihood"), ("aic_", "AIC"), ("bic_", "BIC")):
        value = getattr(model, attr, None)
        if value is not None and np.isfinite(value):
            items.append(f"{label} {_fmt(value)}")
    n_excluded = getattr(model, "n_excluded_", None)
    if n_excluded:
        items.append(f"{n_excluded:,} customers without repeat purchases not used (no spend data)")
    note = getattr(model, "hessian_warning_", None)
    if note:
        items.append(_esc(note))
    return f'<p class="muted">{"; ".join(items)}</p>' if items else ""


def _sampler_diagnostics(model: Any, interval: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """ArviZ summary of the model's parameters and the headline sampler checks."""
    import arviz as az

    idata = model.idata_
    posterior = idata.posterior
    names = [
        n
        for n in posterior.data_vars
        # Parameters and hyperparameters, not per-customer latent variables.
        if int(np.prod([posterior[n].sizes[d] for d in posterior[n].dims
                        if d not in ("chain", "draw")] or [1])) <= 64
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


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------
class _Steps:
    """Named steps with one progress bar."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def __call__(self, description: str, func: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        self.bar.update(description=f"Report: {description}")
        try:
            return func(*args, **kw)
        finally:
            self.bar.advance()


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
    mcmc_draws: int = 500,
    mcmc_tune: int = 500,
    mcmc_chains: int = 2,
    horizon: int = 12,
    period: str = "M",
    discount_rate: float = 0.01,
    interval: float = 0.9,
    n_draws: int = 1000,
    random_state: int = 0,
    currency: str = "",
    title: str | None = None,
    command: str | None = None,
    progressbar: bool = True,
) -> Path:
    """Fit, compare and forecast, and write everything to one self-contained HTML file.

    Parameters
    ----------
    transactions : DataFrame
        The transaction log (pandas or Polars), covering calibration and holdout.
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
        Models to compare; default :func:`default_models`: BG/NBD + Gamma-Gamma by
        maximum likelihood and, when ``mcmc_draws > 0``, their (hierarchical)
        Bayesian versions.
    forecast_model : str, optional
        Which model forecasts CLV (refitted on all data up to ``observation_end``);
        default the first.
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
    currency : str, optional
        Currency of the values, for labels (e.g. "USD").
    title : str, optional
        Report title.
    command : str, optional
        The command that produced the report, recorded as given (the CLI passes its
        command line).
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
    ...                     "1997-09-30", "report.html", mcmc_draws=0)  # doctest: +SKIP
    """
    from clvmodels.clv import customer_lifetime_value
    from clvmodels.data import calibration_holdout_split, rfm_summary
    from clvmodels.evaluation import _as_pandas, compare
    from clvmodels.segmentation import segment

    transactions = _as_pandas(transactions, "build_report")
    output = Path(output)
    if output.exists() and output.is_dir():
        raise ValueError(f"output {output} is a directory; give a file name such as report.html")
    if models is None:
        models = default_models(group_col, bayesian=mcmc_draws > 0)
    models = dict(models)
    if not models:
        raise ValueError("models is empty: give at least one (transaction, spend) pair")
    forecast_name = forecast_model or next(iter(models))
    if forecast_name not in models:
        raise ValueError(f"forecast_model={forecast_model!r} is not one of {list(models)}")
    # Copies for the final fit on all the data (models passed in fitted are refitted too).
    forecast_pair = tuple(copy.deepcopy(m) for m in models[forecast_name])
    mcmc = {
        "draws": mcmc_draws,
        "tune": mcmc_tune,
        "chains": mcmc_chains,
        "random_seed": random_state,
    }
    fit_kwargs = {name: mcmc for name in models}

    started = _dt.datetime.now(_dt.UTC)
    n_steps = 9
    with progress_bar(n_steps, "Report", enabled=progressbar) as bar:
        step = _Steps(bar)
        split = step(
            "calibration/holdout split",
            calibration_holdout_split,
            transactions,
            customer_col,
            date_col,
            value_col,
            calibration_end=calibration_end,
            observation_end=observation_end,
            group_col=group_col,
        )
        comparison = step(
            "fitting and comparing models",
            compare,
            models,
            split,
            interval=interval,
            n_draws=n_draws,
            random_state=random_state,
            fit_kwargs=fit_kwargs,
            progressbar=progressbar,
        )
        summary = step(
            "summary of all data",
            rfm_summary,
            transactions,
            customer_col,
            date_col,
            value_col,
            observation_end=split.attrs["observation_end"],
            group_col=group_col,
        )
        forecast_tx, forecast_spend = forecast_pair

        def refit() -> None:
            for model in forecast_pair:
                accepted = inspect.signature(model.fit).parameters
                options = {k: v for k, v in mcmc.items() if k in accepted}
                if "progressbar" in accepted:
                    options["progressbar"] = progressbar
                model.fit(summary, **options)

        step(f"refitting {forecast_name} on all data", refit)
        forecast = step(
            "forecasting CLV",
            customer_lifetime_value,
            forecast_tx,
            forecast_spend,
            summary,
            horizon=horizon,
            period=period,
            discount_rate=discount_rate,
            interval=interval,
            n_draws=n_draws,
            predictive=True,
            random_state=random_state,
            progressbar=False,
        )
        segmentation = step("segmenting", segment, forecast)
        context = {
            "transactions": transactions,
            "customer_col": customer_col,
            "date_col": date_col,
            "value_col": value_col,
            "group_col": group_col,
            "split": split,
            "summary": summary,
            "models": models,
            "comparison": comparison,
            "forecast_name": forecast_name,
            "forecast_pair": forecast_pair,
            "forecast": forecast,
            "segmentation": segmentation,
            "interval": interval,
            "currency": currency,
            "settings": {
                "calibration_end": split.attrs["calibration_end"],
                "observation_end": split.attrs["observation_end"],
                "group_col": group_col,
                "horizon": horizon,
                "period": period,
                "discount_rate": discount_rate,
                "interval": interval,
                "n_draws": n_draws,
                "random_state": random_state,
                "mcmc_draws": mcmc_draws,
                "mcmc_tune": mcmc_tune,
                "mcmc_chains": mcmc_chains,
            },
            "command": command,
            "started": started,
        }
        checks = step("model-check figures", _checks_section, context)
        bayes = step("sampler diagnostics", _bayes_section, context)
        page = step(
            "writing HTML",
            _page,
            title or "Customer lifetime value report",
            context,
            checks,
            bayes,
        )
    return _write_atomically(page, output)


def _write_atomically(text: str, output: Path) -> Path:
    return write_atomically(output, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------
def _data_section(ctx: Mapping[str, Any]) -> str:
    split, summary = ctx["split"], ctx["summary"]
    unit = _UNIT_NAMES.get(split.attrs.get("time_unit", ""), "time units")
    tx = ctx["transactions"]
    n_rows = len(tx)
    dates = pd.to_datetime(tx[ctx["date_col"]], errors="coerce")
    values = pd.to_numeric(tx[ctx["value_col"]], errors="coerce")
    repeat = float((split["frequency"] > 0).mean())
    cards = [
        ("transaction rows", _fmt(n_rows, "int")),
        ("customers (all data)", _fmt(len(summary), "int")),
        ("customers in calibration", _fmt(len(split), "int")),
        ("repeat buyers in calibration", _fmt(repeat, "share")),
        ("total value in the log", _fmt(values.sum(), "money")),
        (f"holdout length ({unit})", f"{split['duration_holdout'].iloc[0]:g}"),
    ]
    a = split.attrs
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
            "they are netted into their day."
        )
    group_html = ""
    if ctx["group_col"]:
        counts = split[ctx["group_col"]].value_counts().sort_index()
        group_table = pd.DataFrame(
            {
                "customers": counts,
                "repeat buyers": split.groupby(ctx["group_col"], observed=True)["frequency"]
                .apply(lambda s: float((s > 0).mean())),
                "mean holdout purchases": split.groupby(ctx["group_col"], observed=True)[
                    "frequency_holdout"
                ].mean(),
            }
        )
        group_html = "<h3>Groups</h3>" + _table(
            group_table, kinds={"repeat buyers": "share", "customers": "int"}
        )
    return (
        _cards(cards)
        + _table(periods, kinds={"transactions": "int", "repeat purchases": "int"})
        + "".join(_note(_esc(n)) for n in notes)
        + group_html
        + f'<p class="muted">Frequency counts repeat purchase days; recency and T are in '
        f"{unit}. Same-day purchases count once, with their values summed.</p>"
    )


def _next_day(iso: str) -> str:
    return (pd.Timestamp(iso) + pd.Timedelta(days=1)).date().isoformat()


def _models_section(ctx: Mapping[str, Any]) -> str:
    level = f"{ctx['interval']:.0%}"
    parts = [
        f"<p>Fitted on the calibration period. Intervals are {level}: asymptotic (normal "
        "on the log scale) for maximum likelihood, posterior for Bayesian models.</p>"
    ]
    for name, pair in ctx["models"].items():
        parts.append(f"<h3>{_esc(name)}</h3>")
        for model in pair:
            parts.append(f'<p class="muted">{_esc(type(model).__name__)}</p>')
            table = _param_table(model, ctx["interval"])
            parts.append(_table(table, index_label="parameter", kinds=_DIAGNOSTIC_KINDS))
            parts.append(_fit_line(model))
            if table.attrs.get("note"):
                parts.append(_note(_esc(table.attrs["note"])))
    return "".join(parts)


def _comparison_section(ctx: Mapping[str, Any]) -> str:
    comparison: pd.DataFrame = ctx["comparison"]
    level = f"{ctx['interval']:.0%}"
    rows = [(key, label.format(level=level), kind) for key, label, kind in _METRICS
            if key in comparison.columns and comparison[key].notna().any()]
    table = pd.DataFrame(
        {name: [comparison.loc[name, key] for key, _, _ in rows] for name in comparison.index},
        index=pd.Index([label for _, label, _ in rows], name="metric"),
    )
    row_kinds = {label: kind for _, label, kind in rows}
    best = {}
    if len(comparison) > 1:
        better = {
            "purchases_mae": "min", "purchases_rmse": "min", "value_mae": "min",
            "value_spearman": "max", "value_top10_share": "max", "value_top20_share": "max",
            "elpd_loo": "max", "aic": "min", "bic": "min",
        }
        for key, label, _ in rows:
            score = None
            if key in better:
                score = comparison[key] if better[key] == "min" else -comparison[key]
            elif key.endswith("error_pct"):
                score = comparison[key].abs()
            elif key == "value_interval_coverage":
                score = (comparison[key] - ctx["interval"]).abs()
            winner = _unique_best(score) if score is not None else None
            if winner is not None:
                best[label] = winner
    a = comparison.attrs
    unit = _UNIT_NAMES.get(a.get("time_unit", ""), "time units")
    return (
        f"<p>Every model forecasts the {a.get('horizon', 0):g} {unit} of the holdout for "
        "the customers of the calibration period; the forecasts are scored against what "
        "they did. Value is undiscounted spend in the holdout. Bold marks the best model "
        f"on a metric (coverage: closest to {level}).</p>"
        + _table(table, row_kinds=row_kinds, best=best)
        + '<p class="muted">Purchase errors compare expected and actual holdout purchases '
        "per customer; the aggregate error is the relative error of the total. Spearman "
        "correlates predicted value with realised holdout value. Captured value: the "
        "share of all realised holdout value spent by the customers the model ranks "
        "highest. AIC/BIC and ELPD-LOO are on the calibration data (AIC, BIC: lower is "
        "better; ELPD: higher is better).</p>"
    )


def _unique_best(score: pd.Series) -> Any:
    """The index of the lowest score, or None when it is missing or shared (a tie)."""
    score = score.dropna()
    if len(score) < 2:
        return None
    lowest = score.min()
    ties = np.isclose(score.to_numpy(), lowest, rtol=1e-9, atol=0.0)
    return score.idxmin() if ties.sum() == 1 else None


def _checks_section(ctx: Mapping[str, Any]) -> str:
    from clvmodels import plotting
    from clvmodels.evaluation import (
        conditional_expectations_by_frequency,
        expected_cumulative_purchases,
    )

    split = ctx["split"]
    parts = []
    tracking = {}
    cond_tables = {}
    for name, (tx_model, _) in ctx["models"].items():
        tracking[name] = expected_cumulative_purchases(
            tx_model,
            ctx["transactions"],
            ctx["customer_col"],
            ctx["date_col"],
            end=split.attrs["observation_end"],
            calibration_end=split.attrs["calibration_end"],
            group_col=_group_col(tx_model),
        )
        cond_tables[name] = conditional_expectations_by_frequency(tx_model, split)

    # Tracking: all models on one pair of plots.
    fig, ax = _axes((8.5, 4.2))
    plotting.plot_cumulative_purchases(tracking, ax=ax)
    cumulative = _figure(
        fig,
        "Cumulative repeat purchases of the whole cohort, week by week: models fitted on the "
        "calibration period (left of the dotted line) forecasting the holdout (right).",
    )
    fig, ax = _axes((8.5, 4.2))
    plotting.plot_incremental_purchases(tracking, ax=ax)
    incremental = _figure(fig, "Repeat purchases per week, models against actual.")
    parts.append("<h3>Tracking over calendar time</h3>" + _figures([cumulative, incremental]))
    track_table = pd.DataFrame(
        {"actual": next(iter(tracking.values()))["actual"]}
        | {name: t["expected"] for name, t in tracking.items()}
    )
    last_cal = next(iter(tracking.values())).attrs.get("calibration_end_t")
    n = len(track_table)
    every = max(n // 6, 1)
    picks = set(range(every, n + 1, every)) | {n}
    if last_cal and float(last_cal).is_integer() and last_cal <= n:
        picks.add(int(last_cal))
    unit = _UNIT_NAMES.get(split.attrs.get("time_unit", ""), "time units")
    parts.append(
        f"<p>Cumulative repeat purchases at the end of some {unit}:</p>"
        + _table(
            track_table.loc[sorted(picks)],
            index_label=unit[:-1],
            kinds={"actual": "int"} | {name: "f1" for name in tracking},
        )
    )

    # Conditional expectations: a table over all models, and a figure per model.
    cond = pd.DataFrame(
        {"customers": next(iter(cond_tables.values()))["customers"],
         "actual": next(iter(cond_tables.values()))["actual"]}
        | {name: t["expected"] for name, t in cond_tables.items()}
    )
    parts.append(
        "<h3>Holdout purchases by calibration frequency</h3>"
        "<p>Mean purchases per customer in the holdout, by the number of repeat purchases "
        "in calibration (the conditional-expectation check).</p>"
        + _table(
            cond,
            index_label="repeat purchases",
            kinds={"customers": "int", "actual": "f3"} | {name: "f3" for name in cond_tables},
        )
    )
    for name, (tx_model, _) in ctx["models"].items():
        figs = []
        fig, ax = _axes((6.4, 4.2))
        plotting.plot_repeat_purchase_histogram(tx_model, split, ax=ax)
        figs.append(_figure(fig, f"{name}: customers by repeat purchases in calibration."))
        fig, ax = _axes((6.4, 4.2))
        plotting.plot_calibration_vs_holdout(tx_model, split, ax=ax)
        figs.append(_figure(fig, f"{name}: holdout purchases by calibration frequency."))
        parts.append(f"<h3>{_esc(name)}</h3>" + _figures(figs))

    # Maps of the forecasting model's predictions.
    model = ctx["forecast_pair"][0]
    summary = ctx["summary"]
    group = None
    col = _group_col(model)
    if col is not None:
        group = summary[col].value_counts().idxmax()
    figs = []
    fig, ax = _axes((6.4, 4.2))
    plotting.plot_frequency_recency_matrix(model, summary, t=_unit_steps(summary), group=group,
                                           ax=ax)
    where = f" (group {group})" if group is not None else ""
    figs.append(_figure(fig, f"Expected purchases in the next month by frequency and recency"
                             f"{where}, {ctx['forecast_name']} fitted on all data."))
    fig, ax = _axes((6.4, 4.2))
    plotting.plot_probability_alive_matrix(model, summary, group=group, ax=ax)
    figs.append(_figure(fig, f"Probability of being active by frequency and recency{where}."))
    parts.append("<h3>Who is still active</h3>" + _figures(figs))
    return "".join(parts)


def _unit_steps(summary: pd.DataFrame) -> float:
    """One month in the summary's time unit (for the frequency-recency map)."""
    from clvmodels.units import TIME_UNIT_DAYS

    unit = summary.attrs.get("time_unit", "W")
    return round(TIME_UNIT_DAYS["M"] / TIME_UNIT_DAYS.get(unit, 7.0), 3)


def _forecast_section(ctx: Mapping[str, Any]) -> str:
    from clvmodels import plotting

    forecast, segmentation = ctx["forecast"], ctx["segmentation"]
    s = forecast.settings
    total = forecast.total()
    level = f"{ctx['interval']:.0%}"
    money = f" {ctx['currency']}" if ctx["currency"] else ""
    cards = [
        ("customers", _fmt(total["customers"], "int")),
        ("total expected CLV" + money, _fmt(total["clv"], "money")),
        (f"{level} interval of the total", f"{_fmt(total['clv_lower'], 'money')} – "
                                           f"{_fmt(total['clv_upper'], 'money')}"),
    ]
    if "clv_pred_lower" in total:
        cards.append((f"{level} predictive interval (realised total)",
                      f"{_fmt(total['clv_pred_lower'], 'money')} – "
                      f"{_fmt(total['clv_pred_upper'], 'money')}"))
    fig, ax = _axes((8.5, 4.4))
    plotting.plot_clv_by_rank(forecast, currency=ctx["currency"], ax=ax)
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
        "belongs there.",
    )
    tiers = segmentation.tiers
    tier_frame = pd.DataFrame(index=tiers.index)
    for col in ("customers", "share_of_customers", "clv_total"):
        tier_frame[_TIER_LABELS.get(col, col)] = tiers[col]
    if {"clv_total_lower", "clv_total_upper"} <= set(tiers.columns):
        tier_frame[f"total CLV, {level} interval"] = [
            f"{_fmt(lo, 'f0')} – {_fmt(hi, 'f0')}"
            for lo, hi in zip(tiers["clv_total_lower"], tiers["clv_total_upper"], strict=True)
        ]
    for col in ("clv_mean", "share_of_value", "mean_tier_probability", "boundary"):
        if col in tiers.columns:
            tier_frame[_TIER_LABELS[col]] = tiers[col]
    tier_table = _table(
        tier_frame,
        kinds={"customers": "int", "share of customers": "share", "share of value": "share",
               "mean tier probability": "share", "total CLV": "f0", "mean CLV": "f2",
               "lowest CLV in tier": "f2"},
    )
    cols = [c for c in ("frequency", "recency", "T", "monetary_value", "probability_alive",
                        "expected_purchases", "expected_spend", "clv", "clv_lower",
                        "clv_upper") if c in forecast.table.columns or c in ctx["summary"]]
    top = ctx["summary"].join(forecast.table.drop(columns=ctx["summary"].columns,
                                                  errors="ignore"))
    top = top.sort_values("clv", ascending=False).head(10)[cols]
    top["tier"] = segmentation.customers["tier"].reindex(top.index).astype(str)
    top = top.rename(columns=_CUSTOMER_LABELS)
    return (
        f"<p>{_esc(ctx['forecast_name'])}, refitted on all data up to "
        f"{_esc(ctx['settings']['observation_end'])}: discounted CLV over the next "
        f"{_esc(_horizon_words(s))}, from {s.get('n_draws')} parameter draws.</p>"
        + _cards(cards)
        + _figures([rank_fig, tier_fig])
        + "<h3>Value tiers</h3>"
        + tier_table
        + "<h3>Ten most valuable customers</h3>"
        + _table(top, index_label=ctx["customer_col"],
                 kinds={"frequency": "int", "recency": "f1", "T": "f1", "mean spend": "f2",
                        "P(alive)": "f3", "expected purchases": "f2", "expected spend": "f2",
                        "CLV": "f2", "CLV lower": "f2", "CLV upper": "f2"})
    )


_TIER_LABELS = {
    "share_of_customers": "share of customers",
    "clv_total": "total CLV",
    "clv_total_lower": "total: lower",
    "clv_total_upper": "total: upper",
    "clv_mean": "mean CLV",
    "share_of_value": "share of value",
    "mean_tier_probability": "mean tier probability",
    "boundary": "lowest CLV in tier",
}
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
_PERIOD_NAMES = {"h": "hour", "D": "day", "W": "week", "M": "month", "Q": "quarter", "Y": "year"}


def _horizon_words(settings: Mapping[str, Any]) -> str:
    """'12 months, discounted at 1% per month' from CLV settings."""
    period = str(settings.get("period"))
    name = _PERIOD_NAMES.get(period, f"period of {period}")
    horizon = settings.get("horizon")
    rate = 100 * float(settings.get("discount_rate", 0.0))
    return f"{horizon} {name}s, discounted at {rate:g}% per {name}"


def _bayes_section(ctx: Mapping[str, Any]) -> str:
    from clvmodels import plotting

    parts = []
    level = ctx["interval"]
    for name, pair in ctx["models"].items():
        for model in pair:
            if not _is_bayesian(model):
                continue
            label = f"{name}: {type(model).__name__}"
            table, checks = _sampler_diagnostics(model, level)
            good = (
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
                n_panels = _n_panels(model.idata_.posterior, names)
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
            parts.append(
                f"<h3>{_esc(label)}</h3>"
                + _cards(cards)
                + _note(_esc(verdict), ok=bool(good))
                + _table(table, index_label="parameter", kinds=_DIAGNOSTIC_KINDS)
                + _figures(figs)
            )
    return "".join(parts)


def _n_panels(posterior: Any, names: Sequence[str]) -> int:
    """Number of scalar parameters (one ArviZ panel each) among ``names``."""
    return sum(
        int(np.prod([posterior[n].sizes[d] for d in posterior[n].dims
                     if d not in ("chain", "draw")] or [1]))
        for n in names
    )


def _provenance_section(ctx: Mapping[str, Any]) -> str:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    settings = dict(ctx["settings"])
    table = pd.DataFrame({"version": pd.Series(versions)})
    table.index.name = "package"
    setting_table = pd.DataFrame({"value": [str(v) for v in settings.values()]},
                                 index=pd.Index(list(settings), name="setting"))
    command = ctx["command"] or "clvmodels.report.build_report(...) from Python"
    return (
        f"<p>Generated {ctx['started']:%Y-%m-%d %H:%M} UTC. Seed "
        f"<code>{_esc(settings['random_state'])}</code>: the same data, settings and "
        "package versions give the same numbers.</p>"
        f"<pre>{_esc(command)}</pre>"
        + _figures_free_grid(_table(setting_table), _table(table))
    )


def _figures_free_grid(*blocks: str) -> str:
    return '<div class="figs">' + "".join(f"<div>{b}</div>" for b in blocks) + "</div>"


def _page(title: str, ctx: Mapping[str, Any], checks: str, bayes: str) -> str:
    sections = [
        ("data", "Data", _data_section(ctx)),
        ("models", "Models and parameters", _models_section(ctx)),
        ("comparison", "Holdout comparison", _comparison_section(ctx)),
        ("checks", "Model checks", checks),
        ("forecast", "Forecast and tiers", _forecast_section(ctx)),
    ]
    if bayes:
        sections.append(("diagnostics", "Sampler diagnostics", bayes))
    sections.append(("provenance", "How this report was made", _provenance_section(ctx)))
    nav = "".join(f'<a href="#{a}">{_esc(t)}</a>' for a, t, _ in sections)
    s = ctx["settings"]
    subtitle = (
        f"Calibration to {s['calibration_end']}, holdout to {s['observation_end']}; "
        f"{len(ctx['models'])} model{'s' if len(ctx['models']) != 1 else ''} compared; "
        f"forecast by {ctx['forecast_name']}."
    )
    body = "".join(_section(a, t, c) for a, t, c in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<header><h1>{_esc(title)}</h1><p class=\"muted\">{_esc(subtitle)}</p></header>"
        f"<nav>{nav}</nav>{body}</main></body></html>\n"
    )
