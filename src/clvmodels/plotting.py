"""Diagnostic figures for transaction and spend models, forecasts and segments.

Every function takes ``ax=None`` (a new figure is made when none is given) and
returns the Axes it drew on; figures of several panels (ArviZ posterior and trace
plots, group parameters) take and return an array of Axes. Axes are labelled with
their units: time in the summary's ``time_unit``, values in the currency of the data.

The model checks (repeat-purchase histogram, conditional expectations, tracking) show
one model or a whole family together: pass a mapping of name to model (or to
(transaction, spend) pairs, as :func:`clvmodels.evaluation.compare` takes them), and
each model gets its own colour against the one actual series.

References: the model checks are those of Fader, Hardie and Lee (2005), "'Counting
Your Customers' the Easy Way", *Marketing Science* 24(2): figure 3 (repeat-purchase
histogram), figure 4 (tracking), figure 5 (conditional expectations).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clvmodels.evaluation import (
    conditional_expectations_by_frequency,
    repeat_purchase_histogram,
)
from clvmodels.units import period_name, unit_name

if TYPE_CHECKING:
    from clvmodels.clv import CLVForecast
    from clvmodels.models.base import TransactionModel
    from clvmodels.segmentation import Segmentation

__all__ = [
    "plot_calibration_vs_holdout",
    "plot_clv_by_rank",
    "plot_coverage_by_level",
    "plot_cumulative_purchases",
    "plot_frequency_recency_matrix",
    "plot_group_parameters",
    "plot_incremental_purchases",
    "plot_pit_histogram",
    "plot_posterior",
    "plot_probability_alive_matrix",
    "plot_repeat_purchase_histogram",
    "plot_tier_calibration",
    "plot_tier_summary",
    "plot_total_intervals",
    "plot_trace",
]

_ACTUAL = "#303030"
_MODEL = "#1f77b4"
_MODEL_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def _axes(ax: Any, figsize: tuple[float, float] = (6.4, 4.2)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _span(length: float, unit: str | None) -> str:
    """'week', '3 weeks', '2.5 months': a length of time in words."""
    return unit_name(unit, plural=False) if length == 1 else f"{length:.3g} {unit_name(unit)}"


def _horizon_words(horizon: int, period: str, discount_rate: float) -> str:
    """'12 months ahead, discounted 1% per month' (or '12 periods of 30 days ...')."""
    name = period_name(period)
    if name[:1].isdigit():
        periods = f"{horizon} periods of {name}"
    else:
        periods = f"{horizon} {name}" + ("" if horizon == 1 else "s")
    return f"{periods} ahead, discounted {100 * discount_rate:g}% per {name}"


def _model_unit(model: Any, data: pd.DataFrame | None = None) -> str | None:
    unit = getattr(model, "time_unit_", None)
    if unit is None and data is not None:
        unit = data.attrs.get("time_unit")
    return unit


def _model_label(model: Any) -> str:
    return type(model).__name__


def _model_series(table: pd.DataFrame, model: Any) -> dict[str, pd.Series]:
    """The model columns of a check table, by legend label: ``expected`` for one model,
    one column per name for a mapping (``attrs["models"]``)."""
    names = table.attrs.get("models")
    if names:
        return {name: table[name] for name in names}
    return {_model_label(model): table["expected"]}


def _colors(n: int) -> list[str]:
    return [_MODEL_COLORS[i % len(_MODEL_COLORS)] for i in range(n)]


def _group_col(model: Any) -> str | None:
    col = getattr(model, "group_col", None)
    return col if isinstance(col, str) and col else None


def _grid_frame(
    model: Any, frequency: np.ndarray, recency: np.ndarray, T: float, group: Any,
    data: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Summary rows for every (frequency, recency) cell of customers of age ``T`` (and,
    for a model with covariates, the typical covariates of ``data``)."""
    f, r = np.meshgrid(frequency, recency, indexing="ij")
    # A customer without repeat purchases has recency 0 whatever the column says;
    # the prediction then does not depend on recency, so the row is constant.
    r = np.where(f == 0, 0.0, r)
    frame = pd.DataFrame({"frequency": f.ravel(), "recency": r.ravel(), "T": float(T)})
    col = _group_col(model)
    if col is not None:
        if group is None:
            raise ValueError(
                f"{_model_label(model)} has group-level parameters ({col!r}): pass group= "
                "to choose whose customers to draw"
            )
        frame[col] = group
    covariates = [c for c in model.data_columns if c not in ("frequency", "recency", "T", col)]
    if covariates and data is None:
        raise ValueError(
            f"{_model_label(model)} takes covariates {covariates}: pass data= to draw "
            "customers with its typical covariates"
        )
    for c in covariates:
        # the median of a numeric covariate, the most common value of any other
        values = data[c]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        frame[c] = values.median() if numeric else values.mode().iloc[0]
    frame.attrs["time_unit"] = getattr(model, "time_unit_", None)
    return frame


def _matrix_axes(
    model: Any, data: pd.DataFrame | None, T: float | None, max_frequency: int | None
) -> tuple[float, int, np.ndarray, np.ndarray]:
    if T is None:
        if data is None:
            raise ValueError("pass the summary as data= or the customers' age as T=")
        T = float(data["T"].max())
    if max_frequency is None:
        if data is None:
            max_frequency = 20
        else:
            # The 99th percentile keeps a handful of extreme buyers from flattening the map.
            max_frequency = max(int(np.ceil(np.quantile(data["frequency"], 0.99))), 3)
    if not (T > 0):
        raise ValueError(f"T must be positive, got {T}")
    frequency = np.arange(int(max_frequency) + 1, dtype=float)
    recency = np.linspace(0.0, float(T), 60)
    return float(T), int(max_frequency), frequency, recency


def _draw_matrix(
    ax: Any,
    values: np.ndarray,
    frequency: np.ndarray,
    recency: np.ndarray,
    unit: str,
    title: str,
    colorbar_label: str,
    vmax: float | None = None,
) -> Any:
    step_r = recency[1] - recency[0] if recency.size > 1 else 1.0
    extent = (recency[0] - step_r / 2, recency[-1] + step_r / 2, -0.5, frequency[-1] + 0.5)
    image = ax.imshow(
        values,
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap="viridis",
        vmin=0,
        vmax=vmax,
        interpolation="nearest",
    )
    from matplotlib.ticker import MaxNLocator

    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"recency: time of last purchase ({unit_name(unit)} since first purchase)")
    ax.set_ylabel("frequency (repeat purchases)")
    ax.set_title(title)
    return ax


# --------------------------------------------------------------------------------------
# Transaction model
# --------------------------------------------------------------------------------------
def plot_frequency_recency_matrix(
    model: TransactionModel,
    data: pd.DataFrame | None = None,
    *,
    t: float = 1.0,
    T: float | None = None,
    max_frequency: int | None = None,
    group: Any = None,
    ax: Any = None,
) -> Any:
    """Expected purchases in the next ``t`` time units by frequency and recency.

    Customers of age ``T`` (default: the oldest customer in ``data``); a customer who
    bought often and recently sits top right, one who bought often but long ago
    (probably gone) top left.

    Parameters
    ----------
    model : TransactionModel
        Fitted.
    data : DataFrame, optional
        Summary the model was fitted on; sets the default ``T`` and ``max_frequency``.
    t : float, default 1
        Forecast length in the model's time unit.
    T : float, optional
        Age of the customers drawn.
    max_frequency : int, optional
        Largest frequency shown (default: the 99th percentile of ``data``).
    group : optional
        Group whose parameters to use, for models with group-level parameters.
        A model with covariates draws customers with the typical covariates of
        ``data`` (the median of a numeric one, the most common value of any other).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> model = BetaGeo().fit(summary)
    >>> plot_frequency_recency_matrix(model, summary, t=1).get_ylabel()
    'frequency (repeat purchases)'
    """
    T, _, frequency, recency = _matrix_axes(model, data, T, max_frequency)
    grid = _grid_frame(model, frequency, recency, T, group, data)
    values = model.expected_purchases(t=t, data=grid).to_numpy().reshape(frequency.size, -1)
    unit = _model_unit(model, data)
    ax = _axes(ax)
    return _draw_matrix(
        ax,
        values,
        frequency,
        recency,
        unit,
        f"Expected purchases in the next {_span(t, unit)}\n"
        f"customers observed for T = {T:.1f} {unit_name(unit)}",
        "expected purchases",
    )


def plot_probability_alive_matrix(
    model: TransactionModel,
    data: pd.DataFrame | None = None,
    *,
    T: float | None = None,
    max_frequency: int | None = None,
    group: Any = None,
    ax: Any = None,
) -> Any:
    """Probability that a customer is still active, by frequency and recency.

    Parameters are as in :func:`plot_frequency_recency_matrix`.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> model = BetaGeo().fit(summary)
    >>> plot_probability_alive_matrix(model, summary).images[0].get_clim()
    (0.0, 1.0)
    """
    T, _, frequency, recency = _matrix_axes(model, data, T, max_frequency)
    grid = _grid_frame(model, frequency, recency, T, group, data)
    values = model.probability_alive(data=grid).to_numpy().reshape(frequency.size, -1)
    unit = _model_unit(model, data)
    ax = _axes(ax)
    return _draw_matrix(
        ax,
        values,
        frequency,
        recency,
        unit,
        f"Probability a customer is still active\ncustomers observed for T = {T:.1f} "
        f"{unit_name(unit)}",
        "P(alive)",
        vmax=1.0,
    )


def plot_repeat_purchase_histogram(
    model: TransactionModel | Mapping[str, Any],
    data: pd.DataFrame,
    *,
    max_frequency: int = 7,
    ax: Any = None,
) -> Any:
    """Customers by number of repeat purchases in calibration: actual and model(s).

    Parameters
    ----------
    model : TransactionModel or mapping of name to model
        Fitted; a mapping draws one bar per model beside the actual one.
    data : DataFrame
        The summary the models were fitted on.
    max_frequency : int, default 7
        Frequencies from here up are pooled.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from clvmodels import BetaGeo, ParetoNBD, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> model = BetaGeo().fit(summary)
    >>> [t.get_text() for t in plot_repeat_purchase_histogram(model, summary).get_xticklabels()]
    ['0', '1', '2', '3', '4', '5', '6', '7+']
    >>> family = {"BG/NBD": model, "Pareto/NBD": ParetoNBD().fit(summary)}
    >>> len(plot_repeat_purchase_histogram(family, summary).patches)  # 8 groups x 3 bars
    24
    """
    table = repeat_purchase_histogram(model, data, max_frequency=max_frequency)
    series = _model_series(table, model)
    ax = _axes(ax)
    x = np.arange(len(table))
    width = 0.8 / (len(series) + 1)
    offsets = (np.arange(len(series) + 1) - len(series) / 2) * width
    ax.bar(x + offsets[0], table["actual"], width, color=_ACTUAL, label="actual")
    for (label, values), offset, color in zip(
        series.items(), offsets[1:], _colors(len(series)), strict=True
    ):
        ax.bar(x + offset, values, width, color=color, label=label)
    ax.set_xticks(x, table.index)
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("customers")
    ax.set_title(f"Repeat-purchase frequency: {'models' if len(series) > 1 else 'model'} vs "
                 "actual")
    ax.legend(frameon=False, fontsize="small" if len(series) > 2 else None)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_calibration_vs_holdout(
    model: TransactionModel | Mapping[str, Any],
    calibration_holdout: pd.DataFrame,
    *,
    max_frequency: int = 7,
    ax: Any = None,
) -> Any:
    """Mean holdout purchases by calibration frequency: actual and model(s) (conditional
    expectations).

    Parameters
    ----------
    model : TransactionModel or mapping of name to model
        Fitted on the calibration columns; a mapping draws one line per model.
    calibration_holdout : DataFrame
        Output of :func:`clvmodels.calibration_holdout_split`.
    max_frequency : int, default 7
        Frequencies from here up are pooled.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from clvmodels import BetaGeo, ParetoNBD, calibration_holdout_split, load_cdnow
    >>> split = calibration_holdout_split(load_cdnow(), "customer_id", "date",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> model = BetaGeo().fit(split)
    >>> round(float(plot_calibration_vs_holdout(model, split).get_lines()[1].get_ydata()[0]), 3)
    0.225
    >>> ax = plot_calibration_vs_holdout({"BG/NBD": model, "Pareto/NBD": ParetoNBD().fit(split)},
    ...                                  split)
    >>> [line.get_label() for line in ax.get_lines()]
    ['actual', 'BG/NBD', 'Pareto/NBD']
    """
    table = conditional_expectations_by_frequency(
        model, calibration_holdout, max_frequency=max_frequency
    )
    series = _model_series(table, model)
    length = table.attrs["holdout_length"]
    unit = unit_name(table.attrs.get("time_unit"))
    ax = _axes(ax)
    x = np.arange(len(table))
    ax.plot(x, table["actual"], "o-", color=_ACTUAL, label="actual")
    markers = "sD^vP*X"
    for i, ((label, values), color) in enumerate(
        zip(series.items(), _colors(len(series)), strict=True)
    ):
        ax.plot(x, values, "--", marker=markers[i % len(markers)], color=color, label=label)
    ax.set_xticks(x, table.index)
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel(f"mean purchases in the holdout\n(per customer, {length:g} {unit})")
    ax.set_title("Holdout purchases by calibration frequency")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax


def _tracking_frames(tracking: Any) -> dict[str, pd.DataFrame]:
    if isinstance(tracking, pd.DataFrame) and tracking.attrs.get("models"):
        # One column per model (expected_cumulative_purchases of a mapping).
        frames = {}
        for name in tracking.attrs["models"]:
            frame = pd.DataFrame({"t": tracking["t"], "actual": tracking["actual"],
                                  "expected": tracking[name]})
            for col in ("actual", "expected"):
                frame[f"{col}_incremental"] = np.diff(frame[col].to_numpy(), prepend=0.0)
            frame.attrs = dict(tracking.attrs)
            frames[name] = frame
        return frames
    if isinstance(tracking, pd.DataFrame):
        return {tracking.attrs.get("model", "model"): tracking}
    if isinstance(tracking, Mapping) and tracking:
        return dict(tracking)
    raise TypeError(
        "tracking must be the DataFrame from expected_cumulative_purchases, or a mapping "
        "of model name to such frames"
    )


def _plot_tracking(tracking: Any, ax: Any, incremental: bool) -> Any:
    frames = _tracking_frames(tracking)
    first = next(iter(frames.values()))
    unit_code = first.attrs.get("time_unit")
    unit = unit_name(unit_code)
    suffix = "_incremental" if incremental else ""
    ax = _axes(ax, figsize=(7.2, 4.2))
    ax.plot(first["t"], first["actual" + suffix], color=_ACTUAL, lw=1.6, label="actual")
    for (name, frame), color in zip(frames.items(), _colors(len(frames)), strict=True):
        ax.plot(frame["t"], frame["expected" + suffix], "--", color=color, lw=1.6, label=name)
    cal = first.attrs.get("calibration_end_t")
    if cal is not None:
        ax.axvline(cal, color="#888888", ls=":", lw=1.2)
        ax.annotate(
            "end of calibration",
            xy=(cal, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -12),
            textcoords="offset points",
            fontsize="small",
            color="#555555",
        )
    per = f"per {_span(first.attrs.get('step', 1.0), unit_code)}"
    ax.set_xlabel(f"{unit} since {first.attrs.get('start', 'the first purchase')}")
    ax.set_ylabel(f"repeat purchases {per}" if incremental else "cumulative repeat purchases")
    models = "models" if len(frames) > 1 else "model"
    ax.set_title(
        ("Incremental" if incremental else "Cumulative") + f" repeat purchases: {models} vs actual"
    )
    ax.legend(frameon=False, loc="upper left" if not incremental else "best")
    ax.grid(alpha=0.3)
    ax.set_xlim(0, float(first["t"].max()))
    return ax


def plot_cumulative_purchases(tracking: Any, *, ax: Any = None) -> Any:
    """Cumulative repeat purchases of the cohort over time, model(s) vs actual.

    Parameters
    ----------
    tracking : DataFrame or mapping of name to DataFrame
        From :func:`clvmodels.evaluation.expected_cumulative_purchases`: of one model,
        of a mapping of models (one line each), or a mapping of name to one-model
        frames; the end of calibration is marked when the frame records it.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
    >>> from clvmodels.evaluation import expected_cumulative_purchases
    >>> log = load_cdnow()
    >>> model = BetaGeo().fit(rfm_summary(log, "customer_id", "date",
    ...                                   observation_end="1997-09-30"))
    >>> track = expected_cumulative_purchases(model, log, "customer_id", "date",
    ...                                       calibration_end="1997-09-30")
    >>> plot_cumulative_purchases({"BG/NBD": track}).get_xlabel()
    'weeks since 1997-01-01'

    The family on one plot:

    >>> from clvmodels import ParetoNBD
    >>> summary = rfm_summary(log, "customer_id", "date", observation_end="1997-09-30")
    >>> family = expected_cumulative_purchases(
    ...     {"BG/NBD": model, "Pareto/NBD": ParetoNBD().fit(summary)}, log, "customer_id",
    ...     "date", calibration_end="1997-09-30")
    >>> ax = plot_cumulative_purchases(family)
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['actual', 'BG/NBD', 'Pareto/NBD']
    """
    return _plot_tracking(tracking, ax, incremental=False)


def plot_incremental_purchases(tracking: Any, *, ax: Any = None) -> Any:
    """Repeat purchases per step (e.g. per week), model(s) vs actual.

    Parameters are as in :func:`plot_cumulative_purchases`.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
    >>> from clvmodels.evaluation import expected_cumulative_purchases
    >>> log = load_cdnow()
    >>> model = BetaGeo().fit(rfm_summary(log, "customer_id", "date",
    ...                                   observation_end="1997-09-30"))
    >>> track = expected_cumulative_purchases(model, log, "customer_id", "date",
    ...                                       calibration_end="1997-09-30")
    >>> plot_incremental_purchases(track).get_ylabel()
    'repeat purchases per week'
    """
    return _plot_tracking(tracking, ax, incremental=True)


# --------------------------------------------------------------------------------------
# Forecasts and segments
# --------------------------------------------------------------------------------------
def plot_clv_by_rank(
    forecast: CLVForecast | pd.DataFrame,
    *,
    log_scale: bool = True,
    currency: str = "",
    ax: Any = None,
) -> Any:
    """Customers' CLV from highest to lowest, with the interval bands.

    Parameters
    ----------
    forecast : CLVForecast or DataFrame
        A forecast (or its ``table``) with ``clv``, ``clv_lower``, ``clv_upper`` and,
        when predictive, ``clv_pred_lower`` / ``clv_pred_upper``.
    log_scale : bool, default True
        Logarithmic value axis (CLV spans orders of magnitude).
    currency : str, optional
        Currency name for the axis label, e.g. ``"USD"``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from clvmodels import (BetaGeo, GammaGamma, customer_lifetime_value, load_cdnow,
    ...                        rfm_summary, segment)
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount")
    >>> forecast = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
    ...                                    summary, n_draws=100, random_state=0)
    >>> plot_clv_by_rank(forecast, currency="USD").get_ylabel()
    'discounted CLV (USD)'
    """
    table = forecast.table if hasattr(forecast, "table") else forecast
    settings = getattr(forecast, "settings", {}) or {}
    level = settings.get("interval")
    order = np.argsort(-table["clv"].to_numpy(), kind="stable")
    rank = np.arange(1, len(order) + 1)
    ax = _axes(ax, figsize=(7.2, 4.2))
    label_level = f"{level:.0%} " if level else ""
    if {"clv_pred_lower", "clv_pred_upper"} <= set(table.columns):
        ax.fill_between(
            rank,
            table["clv_pred_lower"].to_numpy()[order],
            table["clv_pred_upper"].to_numpy()[order],
            color=_MODEL,
            alpha=0.12,
            lw=0,
            step="mid",
            label=f"{label_level}predictive interval (realised value)",
        )
    if {"clv_lower", "clv_upper"} <= set(table.columns):
        ax.fill_between(
            rank,
            table["clv_lower"].to_numpy()[order],
            table["clv_upper"].to_numpy()[order],
            color=_MODEL,
            alpha=0.35,
            lw=0,
            step="mid",
            label=f"{label_level}interval of expected CLV",
        )
    ax.plot(rank, table["clv"].to_numpy()[order], color=_MODEL, lw=1.5, label="expected CLV")
    if log_scale:
        # Logarithmic above a tenth of the median customer, linear below: the many
        # customers worth (almost) nothing stay visible without stretching the axis.
        clv = table["clv"].to_numpy()
        positive = clv[clv > 0]
        median = float(np.median(positive)) if positive.size else 1.0
        ax.set_yscale("symlog", linthresh=10.0 ** np.floor(np.log10(median / 10)))
    horizon = ""
    if settings.get("horizon") is not None:
        horizon = "\n" + _horizon_words(
            int(settings["horizon"]), str(settings["period"]), settings.get("discount_rate", 0)
        )
    ax.set_xlabel("customer rank by expected CLV (1 = most valuable)")
    money = f" ({currency})" if currency else " (currency of the data)"
    ax.set_ylabel(f"discounted CLV{money}")
    ax.set_title(f"CLV by customer rank{horizon}")
    ax.set_xlim(1, len(rank))
    ax.legend(frameon=False, loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_tier_summary(segmentation: Segmentation | pd.DataFrame, *, ax: Any = None) -> Any:
    """Share of customers and share of value per CLV tier, with value-share intervals.

    Parameters
    ----------
    segmentation : Segmentation or DataFrame
        From :func:`clvmodels.segmentation.segment` (or its ``tiers`` table).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from clvmodels import (BetaGeo, GammaGamma, customer_lifetime_value, load_cdnow,
    ...                        rfm_summary, segment)
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount")
    >>> forecast = customer_lifetime_value(BetaGeo().fit(summary), GammaGamma().fit(summary),
    ...                                    summary, n_draws=100, random_state=0)
    >>> len(plot_tier_summary(segment(forecast)).patches)
    8
    """
    tiers = segmentation.tiers if hasattr(segmentation, "tiers") else segmentation
    ax = _axes(ax)
    x = np.arange(len(tiers))
    width = 0.38
    ax.bar(
        x - width / 2,
        100 * tiers["share_of_customers"],
        width,
        color="#9e9e9e",
        label="share of customers",
    )
    share = 100 * tiers["share_of_value"].to_numpy()
    errors = None
    if {"share_of_value_lower", "share_of_value_upper"} <= set(tiers.columns):
        lo = 100 * tiers["share_of_value_lower"].to_numpy()
        hi = 100 * tiers["share_of_value_upper"].to_numpy()
        errors = np.vstack([np.clip(share - lo, 0, None), np.clip(hi - share, 0, None)])
    ax.bar(
        x + width / 2,
        share,
        width,
        yerr=errors,
        capsize=3,
        color=_MODEL,
        label="share of expected CLV",
    )
    if "mean_tier_probability" in tiers.columns:
        for xi, top, prob in zip(x, share, tiers["mean_tier_probability"], strict=True):
            ax.annotate(
                f"sure: {prob:.0%}",
                xy=(xi + width / 2, top),
                xytext=(0, 10),
                textcoords="offset points",
                ha="center",
                fontsize="x-small",
                color="#333333",
            )
    labels = [f"{name}\n({n:,} customers)" for name, n in zip(tiers.index, tiers["customers"],
                                                                strict=True)]
    ax.set_xticks(x, labels, fontsize="small")
    ax.set_xlabel("CLV tier (customers ranked by expected CLV)")
    ax.set_ylabel("percent")
    ax.set_ylim(0, max(100.0, float(np.nanmax(share)) * 1.15))
    ax.set_title("CLV tiers: customers and value\n(sure = mean probability of the tier)")
    ax.legend(frameon=False, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return ax


# --------------------------------------------------------------------------------------
# Bayesian models
# --------------------------------------------------------------------------------------
def _idata(model: Any) -> Any:
    idata = getattr(model, "idata_", None)
    if idata is None or not hasattr(idata, "posterior"):
        raise ValueError(
            f"{_model_label(model)} has no posterior (idata_): posterior and trace plots are "
            "for Bayesian models fitted by sampling"
        )
    return idata


# Draws that vary by less than this, relative to their size, are one value on any axis.
_DISPLAY_SPREAD = 1e-9


def _snap_near_constant(draws: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """Set each series along ``axis`` whose finite draws barely vary to one value.

    A sampler stuck on one point can still leave draws a few ulps apart (a
    transformed parameter recomputed from the same unconstrained value), and
    ArviZ's density estimate then divides by a zero bin width. Such a series is
    one value at any resolution a figure can show, so it is drawn as exactly one.
    """
    finite = np.where(np.isfinite(draws), draws, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series stay as they are
        low = np.nanmin(finite, axis=axis, keepdims=True)
        high = np.nanmax(finite, axis=axis, keepdims=True)
    scale = np.maximum(np.abs(low), np.abs(high))
    flat = (high - low) <= _DISPLAY_SPREAD * scale
    return np.where(flat & np.isfinite(draws), low, draws)


def _displayable(idata: Any, names: Sequence[str]) -> Any:
    """A copy of ``idata``'s posterior of ``names`` that ArviZ's density plots can draw.

    Near-constant series are snapped to one value, first over all chains (the
    pooled density) and then chain by chain (the trace plot's per-chain
    densities); every other draw is unchanged.
    """
    import arviz as az

    posterior = idata.posterior[list(names)].copy()
    for name in names:
        values = posterior[name].to_numpy().astype(float)
        values = _snap_near_constant(values, axis=(0, 1))
        values = _snap_near_constant(values, axis=(1,))
        posterior[name] = (posterior[name].dims, values)
    return az.InferenceData(posterior=posterior)


def _var_names(model: Any, idata: Any, var_names: Sequence[str] | None) -> list[str]:
    if var_names is not None:
        return list(var_names)
    names = [n for n in getattr(model, "param_names", ()) if n in idata.posterior]
    return names or list(idata.posterior.data_vars)


def plot_posterior(
    model: Any, *, var_names: Sequence[str] | None = None, interval: float = 0.9, ax: Any = None
) -> np.ndarray:
    """Posterior densities of a Bayesian model's parameters (ArviZ ``plot_posterior``).

    Parameters
    ----------
    model : fitted Bayesian model
        With ``idata_`` (ArviZ InferenceData).
    var_names : sequence of str, optional
        Parameters to show; defaults to the model's ``param_names``.
    interval : float, default 0.9
        Level of the highest-density interval drawn.
    ax : array of matplotlib Axes, optional

    Returns
    -------
    numpy.ndarray of matplotlib Axes

    Examples
    --------
    >>> axes = plot_posterior(bayesian_model)  # doctest: +SKIP
    """
    import arviz as az

    idata = _idata(model)
    names = _var_names(model, idata, var_names)
    axes = az.plot_posterior(
        _displayable(idata, names), var_names=names, hdi_prob=interval, ax=ax,
        textsize=9,
    )
    return np.atleast_1d(axes)


def plot_trace(
    model: Any, *, var_names: Sequence[str] | None = None, ax: Any = None
) -> np.ndarray:
    """Trace plots (density per chain and draws over iterations) through ArviZ.

    Parameters
    ----------
    model : fitted Bayesian model
        With ``idata_``.
    var_names : sequence of str, optional
        Parameters to show; defaults to the model's ``param_names``.
    ax : 2-d array of matplotlib Axes, optional
        Shape ``(n_parameters, 2)``.

    Returns
    -------
    numpy.ndarray of matplotlib Axes, shape ``(n_parameters, 2)``

    Examples
    --------
    >>> axes = plot_trace(bayesian_model)  # doctest: +SKIP
    """
    import arviz as az

    idata = _idata(model)
    names = _var_names(model, idata, var_names)
    axes = az.plot_trace(
        _displayable(idata, names), var_names=names, axes=ax, compact=True, legend=True,
        backend_kwargs={"layout": "constrained"} if ax is None else None,
    )
    return np.atleast_2d(axes)


def plot_group_parameters(
    model: Any,
    *,
    var_names: Sequence[str] | None = None,
    interval: float = 0.9,
    ax: Any = None,
) -> np.ndarray:
    """Each group's posterior of each parameter, side by side (partial pooling at a glance).

    One panel per parameter; each group is a point (posterior median) with its
    equal-tailed ``interval``. The dashed line is the population median the groups are
    shrunk towards (``exp(mu_log_<name>)`` where the posterior has it, else the median
    over all groups' draws).

    Parameters
    ----------
    model : fitted hierarchical model
        With ``idata_.posterior`` holding the parameters with the group dimension.
    var_names : sequence of str, optional
        Parameters to show; defaults to the model's ``param_names``.
    interval : float, default 0.9
        Interval level.
    ax : array of matplotlib Axes, optional
        One Axes per parameter.

    Returns
    -------
    numpy.ndarray of matplotlib Axes

    Examples
    --------
    >>> axes = plot_group_parameters(hierarchical_model)  # doctest: +SKIP
    """
    idata = _idata(model)
    names = _var_names(model, idata, var_names)
    posterior = idata.posterior
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(
            1, len(names), figsize=(2.6 * len(names) + 1.2, 0.45 * _n_groups(posterior, names)
                                    + 1.8),
            sharey=True,
            layout="constrained",
            squeeze=False,
        )
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if axes.size != len(names):
        raise ValueError(f"ax must hold {len(names)} Axes (one per parameter), got {axes.size}")
    low_q, high_q = (1 - interval) / 2, (1 + interval) / 2
    for panel, name in zip(axes, names, strict=True):
        values = posterior[name]
        group_dims = [d for d in values.dims if d not in ("chain", "draw")]
        stacked = values.stack(sample=("chain", "draw"))
        if group_dims:
            dim = group_dims[0]
            labels = [str(g) for g in values[dim].to_numpy()]
            draws = stacked.transpose(dim, ..., "sample").to_numpy().reshape(len(labels), -1)
        else:
            labels = ["all customers"]
            draws = stacked.to_numpy().reshape(1, -1)
        median = np.median(draws, axis=1)
        lo, hi = np.quantile(draws, [low_q, high_q], axis=1)
        y = np.arange(len(labels))[::-1]
        panel.errorbar(
            median, y, xerr=[median - lo, hi - median], fmt="o", color=_MODEL, capsize=3,
            label=f"median and {interval:.0%} interval",
        )
        hyper = f"mu_log_{name}"
        if hyper in posterior:
            # The population median the groups are shrunk towards.
            centre, centre_label = float(np.exp(posterior[hyper].median())), "population median"
        else:
            centre, centre_label = float(np.median(draws)), "median of all groups"
        panel.axvline(centre, color="#888888", ls="--", lw=1, label=centre_label)
        panel.set_yticks(y, labels)
        panel.set_title(name)
        label = _PARAM_UNITS.get(name, "value")
        if name == "alpha":
            label = f"scale ({unit_name(getattr(model, 'time_unit_', None))})"
        panel.set_xlabel(label)
        panel.grid(axis="x", alpha=0.3)
    figure = axes[0].figure
    handles, labels = axes[0].get_legend_handles_labels()
    constrained = type(figure.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
    figure.legend(
        handles, labels, loc="outside lower center" if constrained else "lower center",
        ncols=2, frameon=False, fontsize="small",
    )
    figure.suptitle(
        f"Parameters by {group_dims[0] if group_dims else 'group'} "
        f"({_model_label(model)}, posterior)"
    )
    return axes


_PARAM_UNITS = {
    "r": "shape of purchase rate",
    "alpha": "scale (time units)",
    "a": "dropout shape a",
    "b": "dropout shape b",
    "p": "spend shape p",
    "q": "shape q",
    "gamma": "scale (currency)",
}


def _n_groups(posterior: Any, names: Sequence[str]) -> int:
    sizes = [
        posterior[n].sizes[d]
        for n in names
        for d in posterior[n].dims
        if d not in ("chain", "draw")
    ]
    return max(sizes, default=1)


# --------------------------------------------------------------------------------------
# Calibration on a holdout (issue 13): what compare() measured, drawn
# --------------------------------------------------------------------------------------
def _calibrations(calibration: Any) -> dict[str, Any]:
    """Per-model :class:`~clvmodels.calibration.ModelCalibration` of a compare() table,
    a mapping of them, or one."""
    if isinstance(calibration, pd.DataFrame):
        found = calibration.attrs.get("calibration")
        if not found:
            raise ValueError("this table records no calibration: make it with compare()")
        return dict(found)
    if isinstance(calibration, Mapping):
        return dict(calibration)
    return {"model": calibration}


def _example_calibration() -> Any:
    """A calibrated toy model's calibration, for the examples."""
    from clvmodels.calibration import (
        ModelCalibration,
        coverage_by_level,
        pit_histogram,
        tier_calibration,
    )

    rng = np.random.default_rng(0)
    pit, p = rng.random(2000), rng.random(2000)
    total = {"realised": 105.0, "lower": 90.0, "upper": 110.0, "inside": True,
             "widths_outside": 0.0}  # fmt: skip
    return ModelCalibration(total, pit_histogram(pit), coverage_by_level(pit),
                            tier_calibration(p, rng.random(2000) < p), 0.9)  # fmt: skip


def plot_pit_histogram(calibration: Any, *, ax: Any = None) -> Any:
    """Histogram of the customers' randomised PIT values, one line per model: flat at
    1 where the predictive distributions are calibrated (the band: two binomial
    standard errors around it).

    Parameters
    ----------
    calibration : DataFrame, mapping or ModelCalibration
        A :func:`clvmodels.compare` table (its ``attrs["calibration"]``), a mapping of
        model name to :class:`~clvmodels.calibration.ModelCalibration`, or one.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> plot_pit_histogram({"toy": _example_calibration()}).get_legend_handles_labels()[1]
    ['calibrated', 'toy']
    """
    items = _calibrations(calibration)
    ax = _axes(ax)
    first = next(iter(items.values())).pit
    n_bins = len(first)
    se = float(first["se"].iloc[0]) * n_bins
    ax.axhspan(1 - 2 * se, 1 + 2 * se, color="#dddddd", alpha=0.6, lw=0)
    ax.axhline(1.0, color=_ACTUAL, lw=1, ls=":", label="calibrated")
    for (name, cal), color in zip(items.items(), _MODEL_COLORS * 4, strict=False):
        table = cal.pit
        density = table["share"].to_numpy() * len(table)
        edges = np.r_[table["lower"].to_numpy(), table["upper"].iloc[-1]]
        ax.stairs(density, edges, color=color, lw=1.8, label=name)
    ax.set_xlim(0, 1)
    ax.set_xlabel("PIT of the realised holdout value (randomised within ties)")
    ax.set_ylabel("density")
    ax.set_title("Customers: PIT histogram (flat = calibrated)")
    ax.legend(frameon=False, fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_coverage_by_level(calibration: Any, *, ax: Any = None) -> Any:
    """Share of customers inside their central predictive interval at each level,
    against the level (the diagonal: calibrated; bars: two binomial standard errors).

    Parameters
    ----------
    calibration : DataFrame, mapping or ModelCalibration
        As in :func:`plot_pit_histogram`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> len(plot_coverage_by_level({"toy": _example_calibration()}).get_lines()) >= 2
    True
    """
    items = _calibrations(calibration)
    ax = _axes(ax)
    ax.plot([0, 100], [0, 100], color=_ACTUAL, lw=1, ls=":", label="calibrated")
    for (name, cal), color in zip(items.items(), _MODEL_COLORS * 4, strict=False):
        table = cal.coverage
        ax.errorbar(100 * table["level"], 100 * table["coverage"], yerr=200 * table["se"],
                    fmt="o-", ms=4, capsize=2, color=color, label=name)  # fmt: skip
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("nominal level of the central predictive interval (%)")
    ax.set_ylabel("customers inside (%)")
    ax.set_title("Customers: coverage by interval level")
    ax.legend(frameon=False, fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def _tier_tables(calibration: Any) -> dict[str, pd.DataFrame]:
    """Per series, a :func:`~clvmodels.calibration.tier_calibration` table: of each model
    of a compare() table (or mapping, or one calibration), or of a
    :class:`~clvmodels.backtest.TierProbabilityBacktest` before and after its map."""
    if hasattr(calibration, "recalibrated_calibration"):
        return {
            "as given": calibration.calibration,
            "recalibrated (fitted here)": calibration.recalibrated_calibration,
        }
    return {name: cal.tiers for name, cal in _calibrations(calibration).items()}


def plot_tier_calibration(calibration: Any, *, ax: Any = None) -> Any:
    """Of customers given probability ~p of a tier, the share that reached it by
    realised holdout value, per probability bin (marker area: customers; bars: two
    binomial standard errors at the probability given).

    Parameters
    ----------
    calibration : DataFrame, mapping, ModelCalibration or TierProbabilityBacktest
        As in :func:`plot_pit_histogram`; or a backtest of
        :func:`clvmodels.backtest.backtest_tier_probability`, whose probabilities are
        drawn as given and recalibrated.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_tier_calibration({"toy": _example_calibration()})
    >>> ax.get_xlabel()
    'probability given (%)'
    """
    items = _tier_tables(calibration)
    ax = _axes(ax)
    ax.plot([0, 100], [0, 100], color=_ACTUAL, lw=1, ls=":", label="calibrated")
    event = None
    for (name, table), color in zip(items.items(), _MODEL_COLORS * 4, strict=False):
        event = table.attrs.get("event", event)
        x, y = 100 * table["probability"], 100 * table["share"]
        ax.errorbar(x, y, yerr=200 * table["se"], fmt="none", capsize=2, color=color, alpha=0.7)
        size = 15 + 200 * np.sqrt(table["customers"] / table["customers"].max())
        ax.scatter(x, y, s=size, color=color, alpha=0.8, label=name, zorder=3)
    what = "the top tier" if event in (None, "top") else "the tier assigned"
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("probability given (%)")
    ax.set_ylabel(f"reached {what} by realised value (%)")
    ax.set_title(f"Tier probabilities: given against realised ({what})")
    ax.legend(frameon=False, fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_total_intervals(
    calibration: Any,
    *,
    extra: Mapping[str, tuple[float, float]] | None = None,
    currency: str = "",
    ax: Any = None,
) -> Any:
    """The predictive interval of the holdout total per model, and the realised total.

    Parameters
    ----------
    calibration : DataFrame, mapping or ModelCalibration
        As in :func:`plot_pit_histogram`.
    extra : mapping of label to (lower, upper), optional
        Further intervals to show below the models' (e.g. with common shocks,
        :func:`clvmodels.shocks.shocked_total`).
    currency : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_total_intervals({"toy": _example_calibration()}, extra={"wider": (80, 120)})
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['toy', 'wider']
    """
    items = _calibrations(calibration)
    rows = [(name, cal.total["lower"], cal.total["upper"]) for name, cal in items.items()]
    rows += [(label, float(lo), float(hi)) for label, (lo, hi) in (extra or {}).items()]
    realised = next(iter(items.values())).total["realised"]
    level = next(iter(items.values())).interval
    ax = _axes(ax, figsize=(6.4, 0.6 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    for yi, (_, lo, hi), color in zip(y, rows, _MODEL_COLORS * 4, strict=False):
        ax.plot([lo, hi], [yi, yi], lw=6, color=color, alpha=0.7, solid_capstyle="butt")
    ax.axvline(realised, color=_ACTUAL, lw=1.5, ls="--", label=f"realised {realised:,.0f}")
    ax.set_yticks(y, [name for name, _, _ in rows])
    ax.set_ylim(-0.8, len(rows) - 0.2)
    unit = f" ({currency})" if currency else ""
    ax.set_xlabel(f"holdout value, total{unit}")
    ax.set_title(f"Portfolio total: {level:.0%} predictive intervals and the realised total")
    ax.legend(frameon=False, fontsize="small", loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return ax
