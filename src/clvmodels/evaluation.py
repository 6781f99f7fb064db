"""Holdout validation and model comparison.

The checks of Fader, Hardie and Lee (2005), "'Counting Your Customers' the Easy
Way", *Marketing Science* 24(2) (FHL 2005), and the value metrics a CLV user needs:

* :func:`conditional_expectations_by_frequency`: holdout purchases by calibration
  frequency, model against actual (FHL 2005, figure 5);
* :func:`repeat_purchase_histogram`: how many customers made 0, 1, 2, ... repeat
  purchases in calibration, model against actual (FHL 2005, figure 3);
* :func:`expected_cumulative_purchases`: the tracking plot of cumulative repeat
  purchases of the whole cohort over calendar time (FHL 2005, figure 4);
* :func:`compare`: one row per model with holdout errors for purchases and value,
  rank quality, interval coverage (customers, the portfolio total, tier
  probabilities: :mod:`clvmodels.calibration`), fit statistics and fit time.

The metric helpers (:func:`top_share`, :func:`interval_coverage`) are small pure
functions on arrays.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from clvmodels.calibration import (
    ModelCalibration,
    coverage_by_level,
    pit_histogram,
    randomized_pit,
    rank_share_tiers,
    tier_calibration,
    total_coverage,
)
from clvmodels.clv import CLVForecast, customer_lifetime_value
from clvmodels.data import validate_summary
from clvmodels.errors import DataValidationError
from clvmodels.models.base import SpendModel, TransactionModel
from clvmodels.progress import progress_bar
from clvmodels.units import (
    TIME_UNIT_DAYS,
    Calendar,
    cutoff,
    period_length,
    resolve_time_unit,
    unit_name,
)

__all__ = [
    "compare",
    "conditional_expectations_by_frequency",
    "expected_cumulative_purchases",
    "interval_coverage",
    "repeat_purchase_histogram",
    "top_share",
]

_SHOW = 5  # offending ids named in an error message
_HOLDOUT_COLUMNS = ("frequency_holdout", "duration_holdout")
# A customer's history; a new customer's predictions depend on the other columns only.
_HISTORY_COLUMNS = ("frequency", "recency", "T")
_FIT_STATISTICS = ("log_likelihood", "aic", "bic", "elpd_loo", "elpd_loo_se")


# --------------------------------------------------------------------------------------
# Pure metric functions
# --------------------------------------------------------------------------------------
def top_share(predicted: np.ndarray, realised: np.ndarray, fraction: float) -> float:
    """Share of the realised total held by the customers ranked highest by ``predicted``.

    The top ``ceil(fraction * n)`` customers by predicted value are taken (ties keep
    their input order); a perfect ranking captures as much as possible, a random
    one about ``fraction``.

    Parameters
    ----------
    predicted, realised : array of shape (n,)
        Predicted and realised values per customer.
    fraction : float
        Share of customers in the top group, in (0, 1].

    Returns
    -------
    float
        Realised value of the top group over the realised total (NaN when the
        total is zero).

    Examples
    --------
    >>> top_share(np.array([3.0, 2.0, 1.0, 0.0]), np.array([10.0, 0.0, 5.0, 5.0]), 0.25)
    0.5
    """
    predicted = np.asarray(predicted, dtype=float)
    realised = np.asarray(realised, dtype=float)
    if predicted.shape != realised.shape or predicted.ndim != 1:
        raise ValueError(
            f"predicted and realised must be 1-d of one length, got {predicted.shape} "
            f"and {realised.shape}"
        )
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    total = realised.sum()
    if predicted.size == 0 or total == 0:
        return float("nan")
    k = math.ceil(fraction * predicted.size)
    top = np.argsort(-predicted, kind="stable")[:k]
    return float(realised[top].sum() / total)


def interval_coverage(realised: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of ``realised`` values inside ``[lower, upper]`` (bounds included).

    Examples
    --------
    >>> interval_coverage(np.array([0.0, 1.0, 5.0]), np.zeros(3), np.full(3, 2.0))
    0.666...
    """
    realised, lower, upper = (np.asarray(v, dtype=float) for v in (realised, lower, upper))
    if realised.size == 0:
        return float("nan")
    return float(np.mean((realised >= lower) & (realised <= upper)))


def _errors(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float, float]:
    """Per-customer MAE and RMSE, and the aggregate error in percent of the actual total."""
    diff = predicted - actual
    total = actual.sum()
    pct = 100.0 * (predicted.sum() - total) / total if total else float("nan")
    return float(np.mean(np.abs(diff))), float(np.sqrt(np.mean(diff**2))), float(pct)


# --------------------------------------------------------------------------------------
# Frequency tables
# --------------------------------------------------------------------------------------
def _frequency_labels(max_frequency: int) -> list[str]:
    return [str(k) for k in range(max_frequency)] + [f"{max_frequency}+"]


def _check_max_frequency(max_frequency: int) -> int:
    if isinstance(max_frequency, bool) or int(max_frequency) != max_frequency or max_frequency < 1:
        raise ValueError(f"max_frequency must be a positive integer, got {max_frequency!r}")
    return int(max_frequency)


def _check_holdout(calibration_holdout: Any, context: str) -> pd.DataFrame:
    frame = validate_summary(calibration_holdout, context=context)
    missing = [c for c in _HOLDOUT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{context}: missing holdout column(s) {missing}: pass the output of "
            "calibration_holdout_split"
        )
    for col in _HOLDOUT_COLUMNS:
        values = frame[col].to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise DataValidationError(
                f"{context}: column '{col}': {int(bad.sum())} of {len(frame)} rows are missing, "
                f"negative or infinite; first customer ids {list(frame.index[bad][:_SHOW])}"
            )
    return frame


def _holdout_length(frame: pd.DataFrame, context: str) -> float:
    durations = frame["duration_holdout"].to_numpy(dtype=float)
    if not np.allclose(durations, durations[0]):
        raise DataValidationError(
            f"{context}: column 'duration_holdout' must be one holdout length for all "
            f"customers, found {np.unique(durations)[:_SHOW].tolist()}..."
        )
    return float(durations[0])


def conditional_expectations_by_frequency(
    model: TransactionModel, calibration_holdout: pd.DataFrame, max_frequency: int = 7
) -> pd.DataFrame:
    """Mean holdout purchases by calibration frequency, actual and model (FHL 2005 fig. 5).

    Customers are grouped by their number of repeat purchases in the calibration
    period (``0, 1, ..., max_frequency - 1`` and ``max_frequency+``); within each group
    the mean realised holdout purchases are set against the mean of the model's
    conditional expectation ``E[Y(t) | x, t_x, T]`` over the holdout length ``t``.

    Parameters
    ----------
    model : TransactionModel
        Fitted on the calibration columns.
    calibration_holdout : DataFrame
        Output of :func:`clvmodels.calibration_holdout_split`.
    max_frequency : int, default 7
        Frequencies from here up are pooled into one group.

    Returns
    -------
    DataFrame
        Indexed by group label (``"0"``, ..., ``"7+"``), with ``customers``,
        ``actual`` and ``expected`` (mean holdout purchases per customer).

    Examples
    --------
    The published BG/NBD figures on CDNOW (weeks 40-78):

    >>> from clvmodels import BetaGeo, calibration_holdout_split, load_cdnow
    >>> split = calibration_holdout_split(load_cdnow(), "customer_id", "date",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> table = conditional_expectations_by_frequency(BetaGeo().fit(split), split)
    >>> table["expected"].round(3).tolist()
    [0.225, 0.523, 1.044, 1.52, 2.164, 2.654, 3.504, 6.157]
    """
    context = "conditional_expectations_by_frequency"
    max_frequency = _check_max_frequency(max_frequency)
    frame = _check_holdout(calibration_holdout, context)
    t = _holdout_length(frame, context)
    expected = model.expected_purchases(t=t, data=frame).to_numpy(dtype=float)
    actual = frame["frequency_holdout"].to_numpy(dtype=float)
    group = np.minimum(frame["frequency"].to_numpy(dtype=np.int64), max_frequency)
    counts = np.bincount(group, minlength=max_frequency + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame(
            {
                "customers": counts,
                "actual": np.bincount(group, actual, max_frequency + 1) / counts,
                "expected": np.bincount(group, expected, max_frequency + 1) / counts,
            },
            index=pd.Index(_frequency_labels(max_frequency), name="calibration_frequency"),
        )
    table.attrs.update({"holdout_length": t, "time_unit": frame.attrs.get("time_unit")})
    return table


def repeat_purchase_histogram(
    model: TransactionModel, data: pd.DataFrame, max_frequency: int = 7
) -> pd.DataFrame:
    """Customers by number of repeat purchases in calibration, actual and model (FHL fig. 3).

    The model count for ``n`` repeat purchases is ``sum_i P(X(T_i) = n)``, each
    customer observed for their own ``T_i`` (``probability_of_purchases``, with each
    customer's group and covariates where the model has them); the last group holds
    the rest.

    Parameters
    ----------
    model : TransactionModel
        Fitted.
    data : DataFrame
        The summary the model was fitted on.
    max_frequency : int, default 7
        Frequencies from here up are pooled into one group.

    Returns
    -------
    DataFrame
        Indexed by group label, with ``actual`` and ``expected`` numbers of customers.

    Examples
    --------
    >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> hist = repeat_purchase_histogram(BetaGeo().fit(summary), summary)
    >>> int(hist["actual"].iloc[0]), round(float(hist["expected"].sum()))
    (1411, 2357)
    """
    max_frequency = _check_max_frequency(max_frequency)
    frame = validate_summary(data, context="repeat_purchase_histogram")
    n = np.arange(max_frequency)[:, None]
    columns = _new_customer_columns(model)
    if not columns:
        # Customers share few distinct T values (days), so evaluate once per value.
        T_values, T_counts = np.unique(frame["T"].to_numpy(dtype=float), return_counts=True)
        probs = np.asarray(model.probability_of_purchases(n=n, t=T_values[None, :]), dtype=float)
        expected = probs @ T_counts
    else:
        expected = _histogram_by_row(model, frame, columns, max_frequency)
    expected = np.append(expected, len(frame) - expected.sum())
    group = np.minimum(frame["frequency"].to_numpy(dtype=np.int64), max_frequency)
    actual = np.bincount(group, minlength=max_frequency + 1)
    return pd.DataFrame(
        {"actual": actual, "expected": expected},
        index=pd.Index(_frequency_labels(max_frequency), name="repeat_purchases"),
    )


def _model_group_col(model: Any) -> str | None:
    col = getattr(model, "group_col", None)
    return col if isinstance(col, str) and col else None


def _new_customer_columns(model: TransactionModel) -> list[str]:
    """The columns a new customer's predictions depend on: group and covariates."""
    group = _model_group_col(model)
    others = [c for c in model.data_columns if c not in _HISTORY_COLUMNS]
    return list(dict.fromkeys([*([group] if group else []), *others]))


def _histogram_by_row(
    model: TransactionModel, frame: pd.DataFrame, columns: list[str], max_frequency: int
) -> np.ndarray:
    """sum_i P(X(T_i) = n) with each customer's group and covariates, once per distinct
    (T, columns) row."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"repeat_purchase_histogram: the model's predictions depend on column(s) {missing} "
            f"(its group column and covariates), but the data has no such column"
        )
    cells = frame.groupby(["T", *columns], observed=True, sort=False).size()
    rows = cells.index.to_frame(index=False)
    rows.attrs = dict(frame.attrs)
    t = rows["T"].to_numpy(dtype=float)
    probs = np.stack(
        [
            np.asarray(model.probability_of_purchases(n=k, t=t, data=rows), dtype=float)
            for k in range(max_frequency)
        ]
    )
    return probs @ cells.to_numpy(dtype=float)


# --------------------------------------------------------------------------------------
# Tracking: cumulative repeat purchases over calendar time
# --------------------------------------------------------------------------------------
def _as_pandas(data: Any, context: str) -> pd.DataFrame:
    """A pandas view of a pandas, Polars (eager or lazy) or Arrow table."""
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "collect") and not hasattr(data, "to_pandas"):
        data = data.collect()  # a Polars LazyFrame
    if hasattr(data, "to_pandas"):
        return data.to_pandas()
    raise TypeError(f"{context}: expected a pandas or Polars DataFrame, got {type(data).__name__}")


def _day_numbers(frame: pd.DataFrame, date_col: str, customer_col: str) -> np.ndarray:
    raw = frame[date_col]
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        raw = raw.dt.tz_localize(None)
    parsed = pd.to_datetime(raw, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataValidationError(
            f"expected_cumulative_purchases: column '{date_col}': {int(bad.sum())} of "
            f"{len(frame)} rows are missing or not dates; first customers "
            f"{frame[customer_col].to_numpy()[bad][:_SHOW].tolist()}"
        )
    return parsed.to_numpy().astype("datetime64[D]").astype(np.int64)


def _day_number(value: Any, name: str) -> int:
    """Days since the epoch of a user-given date."""
    return cutoff(value, name, None, "D")[1]


def _customer_groups(
    frame: pd.DataFrame, codes: np.ndarray, group_col: str, customer_col: str
) -> np.ndarray:
    """Each customer's one group (codes into the unique groups), or an error."""
    gcodes, groups = pd.factorize(frame[group_col])
    if (gcodes < 0).any():
        raise DataValidationError(
            f"expected_cumulative_purchases: column '{group_col}': {int((gcodes < 0).sum())} rows "
            "have no group"
        )
    _, first_rows = np.unique(codes, return_index=True)  # factorize codes: 0, 1, 2, ...
    first = gcodes[first_rows]
    mismatch = gcodes != first[codes]
    if mismatch.any():
        ids = pd.unique(frame[customer_col].to_numpy()[mismatch])[:_SHOW].tolist()
        raise DataValidationError(
            f"expected_cumulative_purchases: column '{group_col}': a customer's group must "
            f"be constant, but {len(pd.unique(codes[mismatch]))} customers have several; "
            f"first {ids}"
        )
    return np.asarray(groups)[first]


def expected_cumulative_purchases(
    model: TransactionModel,
    transactions: Any,
    customer_col: str,
    date_col: str,
    *,
    end: Any = None,
    calibration_end: Any = None,
    time_unit: str | None = None,
    step: float = 1.0,
    group_col: str | None = None,
) -> pd.DataFrame:
    """Cumulative repeat purchases of the whole cohort over calendar time, model and actual.

    The tracking check of FHL 2005 (figure 4). Time starts on the first day in the
    log and runs in steps of ``step`` time units; the value at step ``k`` counts what
    happened before ``start + k * step`` (for weeks: up to the end of week ``k``).

    * actual: repeat purchases (purchase days of a customer after the first one,
      same-day purchases counted once, as in :func:`clvmodels.rfm_summary`) so far;
    * expected: every customer acquired on day ``d`` before the boundary contributes
      the expected purchases of a new customer, ``E[X(t)]`` (FHL 2005 eq. 9), over
      the ``t`` time units from ``d`` to the boundary.

    Parameters
    ----------
    model : TransactionModel
        Fitted; with ``group_col`` each customer gets the new-customer expectation of
        their group (``expected_purchases_new_customer(t, data)``).
    transactions : DataFrame
        The transaction log, covering calibration and holdout.
    customer_col, date_col : str
        Customer id and date columns.
    end : date-like, optional
        Last day to include (default: the last date in the log). Later
        transactions are left out and counted in ``attrs["n_transactions_after_end"]``.
    calibration_end : date-like, optional
        Recorded (as a date and as a time ``calibration_end_t``) for plots.
    time_unit : str, optional
        Unit of time; defaults to the model's (``model.time_unit_``). One of the two
        must be known: the unit is never guessed.
    step : float, default 1
        Length of a step in ``time_unit``.
    group_col : str, optional
        Per-customer group column for models with group-level parameters.

    Returns
    -------
    DataFrame
        Indexed by step ``k = 1, 2, ...``, with ``t`` (time units since the start),
        ``date`` (the last day of the step), ``actual`` and ``expected`` cumulative
        repeat purchases, and ``actual_incremental`` and ``expected_incremental``
        (per step).

    Examples
    --------
    The published BG/NBD tracking of CDNOW at weeks 20 and 25:

    >>> from clvmodels import BetaGeo, calibration_holdout_split, load_cdnow
    >>> log = load_cdnow()
    >>> split = calibration_holdout_split(log, "customer_id", "date",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> track = expected_cumulative_purchases(BetaGeo().fit(split), log, "customer_id",
    ...                                       "date", calibration_end="1997-09-30")
    >>> track.loc[[20, 25], "expected"].round(1).tolist()
    [1312.5, 1669.6]
    >>> int(track["actual"].iloc[-1]), track.attrs["calibration_end_t"]
    (4339, 39.0)
    """
    context = "expected_cumulative_purchases"
    frame = _as_pandas(transactions, context)
    needed = [customer_col, date_col] + ([group_col] if group_col else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{context}: missing column(s) {missing}; the data has {list(frame.columns)}"
        )
    if len(frame) == 0:
        raise DataValidationError(f"{context}: the transaction log is empty")
    unit = _tracking_unit(model, time_unit, context)
    if not (isinstance(step, int | float) and step > 0 and math.isfinite(step)):
        raise ValueError(f"step must be a positive number of time units, got {step!r}")

    ids = frame[customer_col]
    if ids.isna().any():
        raise DataValidationError(
            f"{context}: column '{customer_col}': {int(ids.isna().sum())} rows have no "
            "customer id"
        )
    codes, _ = pd.factorize(ids)
    days = _day_numbers(frame, date_col, customer_col)
    start = int(days.min())
    last = int(days.max()) if end is None else _day_number(end, "end")
    if last < start:
        raise ValueError(f"{context}: end is before the first transaction")
    n_after = int(np.count_nonzero(days > last))

    # Distinct (customer, day) pairs, sorted by customer then day, from one integer key;
    # the first pair of each customer is the acquisition.
    span = int(days.max()) - start + 1
    keys = np.unique(codes.astype(np.int64) * span + (days - start))
    pair_codes, pair_days = np.divmod(keys, span)
    pair_days = pair_days + start
    is_first = np.r_[True, pair_codes[1:] != pair_codes[:-1]]
    acquisition_days = pair_days[is_first]
    acquisition_codes = pair_codes[is_first]
    repeat_days = np.sort(pair_days[~is_first & (pair_days <= last)])

    unit_days = TIME_UNIT_DAYS[unit]
    step_days = step * unit_days
    n_steps = int(np.floor((last + 1 - start) / step_days + 1e-9))
    if n_steps < 1:
        raise ValueError(
            f"{context}: the log spans {last + 1 - start} days, less than one step of "
            f"{step:g} {unit}"
        )
    bounds = start + np.arange(1, n_steps + 1) * step_days  # exclusive day boundaries

    if group_col is not None:
        groups = _customer_groups(frame, codes, group_col, customer_col)
        acq_groups = groups[acquisition_codes]
    else:
        acq_groups = np.zeros(acquisition_days.size, dtype=np.int64)
    keep = acquisition_days <= last
    n_late = int(np.count_nonzero(~keep))
    cohorts = pd.DataFrame({"day": acquisition_days[keep], "group": acq_groups[keep]})
    cohort = cohorts.value_counts().reset_index(name="count")

    # Exposure of each cohort at each boundary; cohorts share few distinct values.
    exposure_days = bounds[:, None] - cohort["day"].to_numpy()[None, :]
    exposure = np.clip(exposure_days, 0, None) / unit_days
    expected = _new_customer_purchases(model, exposure, cohort["group"].to_numpy(), group_col)
    expected_cum = expected @ cohort["count"].to_numpy(dtype=float)
    actual_cum = np.searchsorted(repeat_days, bounds, side="left").astype(float)

    end_days = np.ceil(bounds).astype(np.int64) - 1
    table = pd.DataFrame(
        {
            "t": np.arange(1, n_steps + 1) * float(step),
            "date": pd.to_datetime(end_days.astype("datetime64[D]")),
            "actual": actual_cum,
            "expected": expected_cum,
            "actual_incremental": np.diff(actual_cum, prepend=0.0),
            "expected_incremental": np.diff(expected_cum, prepend=0.0),
        },
        index=pd.RangeIndex(1, n_steps + 1, name="step"),
    )
    cal_t = None
    cal_date = None
    if calibration_end is not None:
        cal_day = _day_number(calibration_end, "calibration_end")
        cal_t = (cal_day + 1 - start) / unit_days
        cal_date = pd.Timestamp(np.datetime64(cal_day, "D")).date().isoformat()
    table.attrs.update(
        {
            "model": type(model).__name__,
            "time_unit": unit,
            "step": float(step),
            "start": pd.Timestamp(np.datetime64(start, "D")).date().isoformat(),
            "calibration_end": cal_date,
            "calibration_end_t": cal_t,
            "n_customers": int(keep.sum()),
            "n_customers_after_end": n_late,
            "n_transactions_after_end": n_after,
            "n_days_beyond_last_step": int(last + 1 - np.ceil(bounds[-1])),
        }
    )
    return table


def _tracking_unit(model: TransactionModel, time_unit: str | None, context: str) -> str:
    """The unit of the tracking steps: the user's or the model's, never a guess."""
    model_unit = model.time_unit_
    if time_unit is not None and model_unit is not None and time_unit != model_unit:
        raise ValueError(
            f"{context}: time_unit={time_unit!r} but the model was fitted on a summary in "
            f"{model_unit!r}"
        )
    if time_unit is None and model_unit is None:
        raise ValueError(
            f"{context}: the model records no time unit (time_unit_), so the steps cannot be "
            "placed in calendar time: pass time_unit= (e.g. 'W' if the model was fitted on "
            "a weekly summary)"
        )
    return resolve_time_unit(None, models=(model,), time_unit=time_unit or model_unit,
                             context=context)


def _new_customer_purchases(
    model: TransactionModel,
    exposure: np.ndarray,
    cohort_groups: np.ndarray,
    group_col: str | None,
) -> np.ndarray:
    """E[X(t)] for each (boundary, cohort) exposure, through the model's public API."""
    flat = exposure.ravel()
    if group_col is None:
        values, inverse = np.unique(flat, return_inverse=True)
        out = np.asarray(model.expected_purchases_new_customer(t=values), dtype=float)
        return out.reshape(-1)[inverse].reshape(exposure.shape)
    # One evaluation per distinct (exposure, group), for a new customer of that group.
    group_of = np.broadcast_to(cohort_groups[None, :], exposure.shape).ravel()
    keys = pd.DataFrame({"t": flat, "g": group_of})
    rows = keys.drop_duplicates(ignore_index=True)
    codes = keys.merge(rows.reset_index(), on=["t", "g"], how="left")["index"].to_numpy()
    groups = pd.DataFrame({_model_group_col(model) or group_col: rows["g"].to_numpy()})
    values = model.expected_purchases_new_customer(t=rows["t"].to_numpy(dtype=float), data=groups)
    return np.asarray(values, dtype=float)[codes].reshape(exposure.shape)


# --------------------------------------------------------------------------------------
# Model comparison
# --------------------------------------------------------------------------------------
def _fit_if_needed(
    model: Any, data: pd.DataFrame, kwargs: Mapping[str, Any], progressbar: bool
) -> float:
    """Fit an unfitted model on ``data``; the seconds it took (NaN if already fitted)."""
    if getattr(model, "is_fitted", False):
        return float("nan")
    accepted = inspect.signature(model.fit).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    options = {k: v for k, v in kwargs.items() if takes_any or k in accepted}
    if "progressbar" in accepted and "progressbar" not in options:
        options["progressbar"] = progressbar
    started = time.perf_counter()
    model.fit(data, **options)
    return time.perf_counter() - started


def _fit_statistics(model: Any, prefix: str) -> dict[str, float]:
    """Log-likelihood, AIC, BIC (maximum likelihood); ELPD-LOO and its SE (Bayesian)."""
    stats = model.fit_statistics()
    return {f"{prefix}{k}": float(stats.get(k, np.nan)) for k in _FIT_STATISTICS}


def _holdout_calendar(
    length: float, unit: str, horizon: int | None, period: str | None, discount_rate: float
) -> Calendar:
    """Forecast settings of a comparison; by default the holdout, in periods of ``unit``."""
    if horizon is not None:
        return Calendar(horizon, unit if period is None else period, discount_rate)
    if period is None:
        whole = round(length)
        if whole >= 1 and abs(length - whole) < 1e-9:
            return Calendar(whole, unit, discount_rate)
        # Not a whole number of time units: the holdout is one period.
        return Calendar(1, f"{length:.10g}{unit}", discount_rate)
    periods = length / period_length(period, unit)
    whole = round(periods)
    if whole < 1 or abs(periods - whole) > 1e-9 * periods:
        raise ValueError(
            f"compare: the holdout ({length:g} {unit_name(unit)}) is {periods:.4g} periods of "
            f"{period!r}, not a whole number: pass horizon= as well"
        )
    return Calendar(whole, period, discount_rate)


def compare(
    models: Mapping[str, tuple[TransactionModel, SpendModel]],
    calibration_holdout: pd.DataFrame,
    *,
    horizon: int | None = None,
    period: str | None = None,
    discount_rate: float = 0.0,
    interval: float = 0.9,
    n_draws: int = 1000,
    random_state: int | None = 0,
    fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    tier_probability_col: str = "top_tier_probability",
    tier_event: str = "top",
    progressbar: bool = True,
) -> pd.DataFrame:
    """Compare (transaction model, spend model) pairs on a calibration/holdout split.

    Unfitted models are fitted (in place) on the calibration columns and timed;
    fitted ones are used as they are. Each pair then forecasts the holdout period,
    and the forecasts are scored against what the customers actually did.

    Parameters
    ----------
    models : mapping of str to (transaction model, spend model)
        E.g. ``{"BG/NBD + GG": (BetaGeo(), GammaGamma())}``.
    calibration_holdout : DataFrame
        Output of :func:`clvmodels.calibration_holdout_split` with a ``value_col``
        (``monetary_value`` and ``monetary_value_holdout``).
    horizon : int, optional
        Number of forecast periods, as in :func:`clvmodels.customer_lifetime_value`.
        Defaults to the holdout length in periods of ``period``.
    period : str, optional
        Length of a period ("W", "M", "30D", ...). Defaults to one time unit of the
        summary (e.g. "W" for a weekly split, so that the default forecast is the 39
        weeks of a 39-week holdout); when the holdout is not a whole number of time
        units and neither ``horizon`` nor ``period`` is given, the holdout is one
        period.
    discount_rate : float, default 0
        Discount rate per period applied to the predicted value. The realised
        holdout value is undiscounted, so 0 compares like with like.
    interval : float, default 0.9
        Level of the predictive intervals whose coverage is measured.
    n_draws : int, default 1000
        Draws behind the intervals (see :func:`clvmodels.clv.customer_lifetime_value`).
    random_state : int, optional
        Seed, the same for every model so that comparisons are paired.
    fit_kwargs : mapping of str to dict, optional
        Extra ``fit`` arguments per model name (e.g. ``{"Bayesian": {"draws": 500}}``),
        passed to whichever of the pair's ``fit`` methods accept them.
    tier_probability_col : str, default "top_tier_probability"
        The column of :func:`clvmodels.segment`'s ``customers`` whose calibration is
        measured (the probability of a tier given to each customer).
    tier_event : {"top", "assigned"}, default "top"
        What that column is the probability of: the customer's realised holdout value
        lands in the top tier, or in the tier its point CLV assigns it (as for
        ``tier_probability``). Realised tiers are by rank share of realised value, as
        :func:`clvmodels.segment` places forecasts (:data:`DEFAULT_TIERS`).
    progressbar : bool, default True
        Show progress (also passed to the fits that accept it).

    Returns
    -------
    DataFrame
        One row per model, indexed by name:

        * ``customers``; ``purchases_actual`` and ``purchases_expected`` (holdout
          totals), ``purchases_mae``, ``purchases_rmse`` (per customer) and
          ``purchases_error_pct`` (aggregate, in percent of the actual total);
        * ``value_actual`` and ``value_expected`` (totals), ``value_mae``,
          ``value_error_pct``, ``value_spearman`` (rank correlation of predicted
          value with realised holdout value), ``value_top10_share`` and
          ``value_top20_share`` (share of realised value captured by the predicted
          top 10% / 20% of customers);
        * ``value_interval_coverage``: share of customers whose realised holdout
          value lies in their ``interval`` predictive interval;
        * ``value_total_lower`` and ``value_total_upper``: the ``interval``
          predictive interval of the total (parameter uncertainty and purchase noise;
          no common shocks: :func:`clvmodels.shocks.shocked_total` adds them),
          ``value_total_inside`` (1 when the realised total lies in it, else 0) and
          ``value_total_widths_outside`` (by how many interval widths it falls
          outside: positive above, negative below);
        * ``tier_probability_gap``: mean absolute gap between the tier probability
          given and the share that reached the tier, over probability deciles,
          weighted by customers;
        * ``log_likelihood``, ``aic``, ``bic`` (maximum likelihood) and ``elpd_loo``,
          ``elpd_loo_se`` (Bayesian) of the transaction model, and the same with a
          ``spend_`` prefix for the spend model;
        * ``fit_seconds``: time to fit the pair here (NaN when passed in fitted).

        ``attrs`` records ``horizon`` (periods), ``period``, ``horizon_length`` (the
        forecast length in ``time_unit``), ``time_unit``, ``discount_rate``,
        ``interval``, ``n_draws`` and ``random_state``, and ``calibration``: per model
        a :class:`clvmodels.calibration.ModelCalibration` (the total's interval, the
        customers' PIT histogram and coverage by level, the tier-probability
        calibration table), which :mod:`clvmodels.plotting` draws.

    Examples
    --------
    >>> from clvmodels import BetaGeo, GammaGamma, calibration_holdout_split, load_cdnow
    >>> split = calibration_holdout_split(load_cdnow(), "customer_id", "date", "amount",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> table = compare({"BG/NBD": (BetaGeo(), GammaGamma())}, split, n_draws=200,
    ...                 progressbar=False)
    >>> int(table.loc["BG/NBD", "purchases_actual"])
    1882
    """
    from scipy import stats  # imported here: scipy.stats is slow to import

    context = "compare"
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping of name -> (transaction, spend)")
    for name, pair in models.items():
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValueError(
                f"models[{name!r}] must be a (transaction model, spend model) pair, got {pair!r}"
            )
    frame = _check_holdout(calibration_holdout, context)
    if "monetary_value_holdout" not in frame.columns or "monetary_value" not in frame.columns:
        raise DataValidationError(
            f"{context}: value columns missing: build the split with a value_col so that "
            "'monetary_value' and 'monetary_value_holdout' exist"
        )
    validate_summary(frame, require_monetary=True, context=context)
    unit = frame.attrs.get("time_unit")
    if unit is None:
        raise ValueError(f"{context}: the split records no time_unit (attrs['time_unit'])")
    holdout = _holdout_length(frame, context)
    calendar = _holdout_calendar(holdout, unit, horizon, period, discount_rate)
    length = calendar.length(unit)
    fit_kwargs = dict(fit_kwargs or {})
    unknown = set(fit_kwargs) - set(models)
    if unknown:
        raise ValueError(f"fit_kwargs names unknown models {sorted(unknown)}")
    if tier_event not in ("top", "assigned"):
        raise ValueError(f"tier_event must be 'top' or 'assigned', got {tier_event!r}")

    actual_purchases = frame["frequency_holdout"].to_numpy(dtype=float)
    realised = actual_purchases * frame["monetary_value_holdout"].to_numpy(dtype=float)

    rows = {}
    calibrations = {}
    with progress_bar(3 * len(models), "Comparing models", enabled=progressbar) as bar:
        for name, (transaction_model, spend_model) in models.items():
            bar.update(description=f"Comparing models: fitting {name}")
            options = fit_kwargs.get(name, {})
            seconds = _fit_if_needed(transaction_model, frame, options, progressbar)
            bar.advance()
            seconds_spend = _fit_if_needed(spend_model, frame, options, progressbar)
            bar.advance()
            bar.update(description=f"Comparing models: scoring {name}")
            predicted_purchases = transaction_model.expected_purchases(
                t=length, data=frame
            ).to_numpy(dtype=float)
            forecast = customer_lifetime_value(
                transaction_model,
                spend_model,
                frame,
                horizon=calendar.horizon,
                period=calendar.period,
                discount_rate=calendar.discount_rate,
                interval=interval,
                n_draws=n_draws,
                predictive=True,
                random_state=random_state,
                progressbar=False,
            )
            table = forecast.table.reindex(frame.index)
            calibrations[name] = _calibration(
                forecast,
                pd.Series(realised, index=frame.index),
                tier_probability_col=tier_probability_col,
                tier_event=tier_event,
                random_state=random_state,
            )
            predicted_value = table["clv"].to_numpy(dtype=float)
            p_mae, p_rmse, p_pct = _errors(predicted_purchases, actual_purchases)
            v_mae, _, v_pct = _errors(predicted_value, realised)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", stats.ConstantInputWarning)
                rho = float(stats.spearmanr(predicted_value, realised).statistic)
            fit_seconds = np.nansum([seconds, seconds_spend])
            if np.isnan(seconds) and np.isnan(seconds_spend):
                fit_seconds = np.nan
            rows[name] = {
                "customers": len(frame),
                "purchases_actual": actual_purchases.sum(),
                "purchases_expected": predicted_purchases.sum(),
                "purchases_mae": p_mae,
                "purchases_rmse": p_rmse,
                "purchases_error_pct": p_pct,
                "value_actual": realised.sum(),
                "value_expected": predicted_value.sum(),
                "value_mae": v_mae,
                "value_error_pct": v_pct,
                "value_spearman": rho,
                "value_top10_share": top_share(predicted_value, realised, 0.1),
                "value_top20_share": top_share(predicted_value, realised, 0.2),
                "value_interval_coverage": interval_coverage(
                    realised, table["clv_pred_lower"], table["clv_pred_upper"]
                ),
                **_calibration_columns(calibrations[name]),
                **_fit_statistics(transaction_model, ""),
                **_fit_statistics(spend_model, "spend_"),
                "fit_seconds": float(fit_seconds),
            }
            bar.advance()
    result = pd.DataFrame.from_dict(rows, orient="index")
    result.index.name = "model"
    result.attrs.update(
        {
            "horizon": calendar.horizon,
            "period": calendar.period,
            "horizon_length": length,
            "time_unit": unit,
            "discount_rate": calendar.discount_rate,
            "interval": interval,
            "n_draws": n_draws,
            "random_state": random_state,
            "calibration": calibrations,
        }
    )
    return result


def _calibration(
    forecast: CLVForecast,
    realised: pd.Series,
    *,
    tier_probability_col: str,
    tier_event: str,
    random_state: Any,
) -> ModelCalibration:
    """One forecast's calibration on the realised holdout values (by customer id)."""
    from clvmodels.segmentation import DEFAULT_TIERS, segment

    total = forecast.total()
    outside = total_coverage(realised.sum(), total["clv_pred_lower"], total["clv_pred_upper"])
    rng = np.random.default_rng(random_state)
    pit = np.concatenate(
        [
            randomized_pit(values, realised.reindex(ids).to_numpy(dtype=float), rng)
            for ids, values in forecast.iter_draws("predictive")
        ]
    )
    tiers = segment(forecast, progressbar=False).customers.reindex(realised.index)
    if tier_probability_col not in tiers.columns:
        raise ValueError(
            f"compare: segment() gives no column {tier_probability_col!r} "
            f"(it gives {sorted(tiers.columns)})"
        )
    names = [name for name, _ in DEFAULT_TIERS]
    reached = rank_share_tiers(realised.to_numpy(dtype=float), [s for _, s in DEFAULT_TIERS])
    if tier_event == "top":
        hit = reached == 0
    else:
        hit = reached == pd.Categorical(tiers["tier"].astype(str), categories=names).codes
    table = tier_calibration(tiers[tier_probability_col].to_numpy(dtype=float), hit)
    table.attrs.update({"column": tier_probability_col, "event": tier_event})
    return ModelCalibration(
        total={
            "realised": float(realised.sum()),
            "lower": float(total["clv_pred_lower"]),
            "upper": float(total["clv_pred_upper"]),
            **outside,
        },
        pit=pit_histogram(pit),
        coverage=coverage_by_level(pit),
        tiers=table,
        interval=forecast.interval,
    )


def _calibration_columns(calibration: ModelCalibration) -> dict[str, float]:
    """The columns of :func:`compare` that summarise a :class:`ModelCalibration`."""
    total, tiers = calibration.total, calibration.tiers
    gap = np.abs(tiers["probability"] - tiers["share"]) @ tiers["customers"]
    return {
        "value_total_lower": total["lower"],
        "value_total_upper": total["upper"],
        "value_total_inside": float(total["inside"]),
        "value_total_widths_outside": total["widths_outside"],
        "tier_probability_gap": float(gap / max(tiers["customers"].sum(), 1)),
    }
