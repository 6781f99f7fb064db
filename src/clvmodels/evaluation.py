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
  probabilities: :mod:`clvmodels.calibration`), fit statistics and fit time, a ranking,
  and paired per-customer comparisons with the best model; :func:`summary_text` says in
  words which model forecasts best, by how much, and whether that is more than noise.

The three checks take one model or a mapping of name to model (or to (transaction,
spend) pairs, as :func:`compare` takes them): with a mapping they return one column per
model, so the whole family is checked in one table. :func:`family_models` is the family
that :func:`compare`, the pipeline and the report use by default: every
maximum-likelihood transaction model of :mod:`clvmodels.models`, each with Gamma-Gamma.

The metric helpers (:func:`top_share`, :func:`interval_coverage`,
:func:`paired_difference`) are small pure functions on arrays.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import math
import pkgutil
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._summary_options import LOG_SPEND_COLUMN, REGULARITY_COLUMN, summary_options_for
from clvmodels.averaging import (
    average_forecasts,
    backtest_weights,
    loo_weights,
    mixture_allocation,
)
from clvmodels.calibration import (
    ModelCalibration,
    coverage_by_level,
    pit_histogram,
    randomized_pit,
    tier_calibration,
    tier_probability_gap,
    tier_reach_shares,
    total_coverage,
)
from clvmodels.clv import (
    CLVForecast,
    customer_lifetime_value,
    interval_probabilities,
    predictive_interval,
)
from clvmodels.data import add_summary_columns, validate_summary
from clvmodels.errors import ConvergenceError, DataValidationError
from clvmodels.models.base import (
    SpendModel,
    TransactionModel,
    accepted_fit_options,
    check_summary_model,
    registered_models,
)
from clvmodels.models.mle import MaximumLikelihoodModel
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
    "AVERAGE_NAME",
    "DEFAULT_SPEND_MODEL",
    "add_model_columns",
    "compare",
    "conditional_expectations_by_frequency",
    "expected_cumulative_purchases",
    "family_models",
    "forecast_calibration",
    "interval_coverage",
    "paired_difference",
    "repeat_purchase_histogram",
    "summary_text",
    "top_share",
]

_SHOW = 5  # offending ids named in an error message
_HOLDOUT_COLUMNS = ("frequency_holdout", "duration_holdout")
# A customer's history; a new customer's predictions depend on the other columns only.
_HISTORY_COLUMNS = ("frequency", "recency", "T")
_FIT_STATISTICS = ("log_likelihood", "aic", "bic", "elpd_loo", "elpd_loo_se")
#: The spend model of :func:`family_models` (a registry name).
DEFAULT_SPEND_MODEL = "GammaGamma"
#: The name of the model average's row in :func:`compare`.
AVERAGE_NAME = "model average"
# Simulated futures behind the backtest weights' log densities, at least: with fewer,
# their Monte Carlo noise pulls the stacking weights towards equal ones.
_WEIGHT_DRAWS = 1000
# Summary columns some models read that rfm_summary does not make, and how to compute
# each from the transaction log: f(summary, transactions, *, date_format) -> summary
# with the column.
# The columns of summary_options_for's options, in its order.
OPTION_COLUMNS = (LOG_SPEND_COLUMN, REGULARITY_COLUMN)
# Values per block when simulating purchases for intervals (32 MB of float64).
_BLOCK_VALUES = 4_000_000


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


def paired_difference(
    loss: np.ndarray, baseline: np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``loss - baseline`` over paired units, with a normal ``level`` interval.

    The paired comparison of two forecasts of the same customers: each customer's loss
    (e.g. absolute error) under one model minus under the other. The interval is
    ``mean +- z * sd / sqrt(n)`` (``sd`` with ``n - 1`` degrees of freedom, ``z`` the
    normal quantile), which the central limit theorem justifies for the thousands of
    customers of a holdout; pairing removes the customer-to-customer variation both
    forecasts share, so it is far narrower than comparing the two means apart.

    Parameters
    ----------
    loss, baseline : array of shape (n,)
        Per-unit losses of the two forecasts, in the same order.
    level : float, default 0.95
        Interval level, in (0, 1).

    Returns
    -------
    (mean, lower, upper) : tuple of float
        NaN bounds for fewer than two units.

    Examples
    --------
    >>> mean, lower, upper = paired_difference(np.array([2.0, 3.0, 4.0, 5.0]),
    ...                                        np.array([1.0, 1.0, 2.0, 2.0]))
    >>> mean, round(lower, 3), round(upper, 3)
    (2.0, 1.2, 2.8)
    """
    loss = np.asarray(loss, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    if loss.shape != baseline.shape or loss.ndim != 1:
        raise ValueError(
            f"loss and baseline must be 1-d of one length, got {loss.shape} and {baseline.shape}"
        )
    _, high_p = interval_probabilities(level)
    diff = loss - baseline
    if diff.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(diff.mean())
    if diff.size < 2:
        return mean, float("nan"), float("nan")
    half = NormalDist().inv_cdf(high_p) * float(diff.std(ddof=1)) / math.sqrt(diff.size)
    return mean, mean - half, mean + half


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


def _named_models(model: Any, context: str) -> dict[str, Any] | None:
    """The transaction models of a mapping of name to model or to (transaction, spend)
    pair, by name; None for one model."""
    if not isinstance(model, Mapping):
        return None
    if not model:
        raise ValueError(f"{context}: the mapping of models is empty")
    named = {}
    for name, value in model.items():
        named[str(name)] = value[0] if isinstance(value, tuple | list) else value
    reserved = sorted(set(named) & {"t", "date", "actual", "customers"})
    if reserved:
        raise ValueError(f"{context}: model names {reserved} are column names of the table")
    return named


def _wide(table: pd.DataFrame, named: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    """Replace ``expected`` by one column per model (in place), in the order given."""
    del table["expected"]
    for name in named:
        table[name] = expected[name]
    table.attrs["models"] = list(named)


def conditional_expectations_by_frequency(
    model: TransactionModel | Mapping[str, Any],
    calibration_holdout: pd.DataFrame,
    max_frequency: int = 7,
) -> pd.DataFrame:
    """Mean holdout purchases by calibration frequency, actual and model (FHL 2005 fig. 5).

    Customers are grouped by their number of repeat purchases in the calibration
    period (``0, 1, ..., max_frequency - 1`` and ``max_frequency+``); within each group
    the mean realised holdout purchases are set against the mean of the model's
    conditional expectation ``E[Y(t) | x, t_x, T]`` over the holdout length ``t``.

    Parameters
    ----------
    model : TransactionModel or mapping of name to model
        Fitted on the calibration columns. A mapping (values may be (transaction,
        spend) pairs, as :func:`compare` takes them) gives one column per model.
    calibration_holdout : DataFrame
        Output of :func:`clvmodels.calibration_holdout_split`.
    max_frequency : int, default 7
        Frequencies from here up are pooled into one group.

    Returns
    -------
    DataFrame
        Indexed by group label (``"0"``, ..., ``"7+"``), with ``customers``,
        ``actual`` and ``expected`` (mean holdout purchases per customer); for a
        mapping, one column of expectations per model name instead of ``expected``
        (names in ``attrs["models"]``).

    Examples
    --------
    The published BG/NBD figures on CDNOW (weeks 40-78):

    >>> from clvmodels import BetaGeo, ParetoNBD, calibration_holdout_split, load_cdnow
    >>> split = calibration_holdout_split(load_cdnow(), "customer_id", "date",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> table = conditional_expectations_by_frequency(BetaGeo().fit(split), split)
    >>> table["expected"].round(3).tolist()
    [0.225, 0.523, 1.044, 1.52, 2.164, 2.654, 3.504, 6.157]

    Several models side by side (Pareto/NBD: BTYD's walkthrough table, 0.138, 0.600,
    1.196, 1.714, 2.399, 2.907, 3.819, 6.403 at its rounded estimates):

    >>> both = conditional_expectations_by_frequency(
    ...     {"BG/NBD": BetaGeo().fit(split), "Pareto/NBD": ParetoNBD().fit(split)}, split)
    >>> both.columns.tolist()
    ['customers', 'actual', 'BG/NBD', 'Pareto/NBD']
    >>> both["Pareto/NBD"].round(2).tolist()
    [0.14, 0.6, 1.2, 1.71, 2.4, 2.91, 3.82, 6.4]
    """
    context = "conditional_expectations_by_frequency"
    named = _named_models(model, context)
    max_frequency = _check_max_frequency(max_frequency)
    frame = _check_holdout(calibration_holdout, context)
    t = _holdout_length(frame, context)
    actual = frame["frequency_holdout"].to_numpy(dtype=float)
    group = np.minimum(frame["frequency"].to_numpy(dtype=np.int64), max_frequency)
    counts = np.bincount(group, minlength=max_frequency + 1)

    def means(values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(group, values, max_frequency + 1) / counts

    def expected_of(m: Any) -> np.ndarray:
        return means(np.asarray(m.expected_purchases(t=t, data=frame), dtype=float))

    table = pd.DataFrame(
        {
            "customers": counts,
            "actual": means(actual),
            "expected": expected_of(model) if named is None else np.nan,
        },
        index=pd.Index(_frequency_labels(max_frequency), name="calibration_frequency"),
    )
    if named is not None:
        _wide(table, named, {name: expected_of(m) for name, m in named.items()})
    table.attrs.update({"holdout_length": t, "time_unit": frame.attrs.get("time_unit")})
    return table


def repeat_purchase_histogram(
    model: TransactionModel | Mapping[str, Any], data: pd.DataFrame, max_frequency: int = 7
) -> pd.DataFrame:
    """Customers by number of repeat purchases in calibration, actual and model (FHL fig. 3).

    The model count for ``n`` repeat purchases is ``sum_i P(X(T_i) = n)``, each
    customer observed for their own ``T_i`` (``probability_of_purchases``, with each
    customer's group and covariates where the model has them); the last group holds
    the rest.

    Parameters
    ----------
    model : TransactionModel or mapping of name to model
        Fitted; a mapping (values may be (transaction, spend) pairs) gives one column
        per model.
    data : DataFrame
        The summary the model was fitted on.
    max_frequency : int, default 7
        Frequencies from here up are pooled into one group.

    Returns
    -------
    DataFrame
        Indexed by group label, with ``actual`` and ``expected`` numbers of customers
        (for a mapping, one column per model name instead of ``expected``).

    Examples
    --------
    >>> from clvmodels import BetaGeo, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> hist = repeat_purchase_histogram(BetaGeo().fit(summary), summary)
    >>> int(hist["actual"].iloc[0]), round(float(hist["expected"].sum()))
    (1411, 2357)
    """
    named = _named_models(model, "repeat_purchase_histogram")
    max_frequency = _check_max_frequency(max_frequency)
    frame = validate_summary(data, context="repeat_purchase_histogram")
    group = np.minimum(frame["frequency"].to_numpy(dtype=np.int64), max_frequency)
    table = pd.DataFrame(
        {
            "actual": np.bincount(group, minlength=max_frequency + 1),
            "expected": _histogram(model, frame, max_frequency) if named is None else np.nan,
        },
        index=pd.Index(_frequency_labels(max_frequency), name="repeat_purchases"),
    )
    if named is not None:
        _wide(table, named, {n: _histogram(m, frame, max_frequency) for n, m in named.items()})
    return table


def _histogram(model: TransactionModel, frame: pd.DataFrame, max_frequency: int) -> np.ndarray:
    """Expected customers with 0, 1, ..., max_frequency - 1 and max_frequency+ repeat
    purchases in calibration."""
    n = np.arange(max_frequency)[:, None]
    columns = _new_customer_columns(model)
    if not columns:
        # Customers share few distinct T values (days), so evaluate once per value.
        T_values, T_counts = np.unique(frame["T"].to_numpy(dtype=float), return_counts=True)
        probs = np.asarray(model.probability_of_purchases(n=n, t=T_values[None, :]), dtype=float)
        expected = probs @ T_counts
    else:
        expected = _histogram_by_row(model, frame, columns, max_frequency)
    return np.append(expected, len(frame) - expected.sum())


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
    model: TransactionModel | Mapping[str, Any],
    transactions: Any,
    customer_col: str,
    date_col: str,
    *,
    end: Any = None,
    calibration_end: Any = None,
    time_unit: str | None = None,
    step: float = 1.0,
    group_col: str | None = None,
    customer_data: pd.DataFrame | None = None,
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
    model : TransactionModel or mapping of name to model
        Fitted; with ``group_col`` each customer gets the new-customer expectation of
        their group (``expected_purchases_new_customer(t, data)``). A mapping (values
        may be (transaction, spend) pairs, as :func:`compare` takes them) tracks every
        model against the same actual purchases; there the models with group-level
        parameters use ``group_col`` (default: their own ``group_col``) and the others
        the whole population.
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
    customer_data : DataFrame, optional
        Per-customer attributes indexed by customer id: covariates that the log lacks
        are taken from it (otherwise from each customer's first row of the log).

    Returns
    -------
    DataFrame
        Indexed by step ``k = 1, 2, ...``, with ``t`` (time units since the start),
        ``date`` (the last day of the step), ``actual`` and ``expected`` cumulative
        repeat purchases, and ``actual_incremental`` and ``expected_incremental``
        (per step). For a mapping: ``t``, ``date``, ``actual`` and one column of
        expected cumulative purchases per model name (``attrs["models"]``); per-step
        values are its ``diff()``.

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

    The family together, from the same log (Pareto/NBD: BTYD's walkthrough, week 25):

    >>> from clvmodels import ParetoNBD
    >>> both = expected_cumulative_purchases(
    ...     {"BG/NBD": BetaGeo().fit(split), "Pareto/NBD": ParetoNBD().fit(split)}, log,
    ...     "customer_id", "date", calibration_end="1997-09-30")
    >>> [round(float(v), 1) for v in both.loc[25, ["actual", "BG/NBD", "Pareto/NBD"]]]
    [1672.0, 1669.6, 1674.3]
    """
    context = "expected_cumulative_purchases"
    named = _named_models(model, context)
    models = {"expected": model} if named is None else named
    frame = _as_pandas(transactions, context)
    # Each model's group column in the log: the one given (a single model uses it as
    # told); in a mapping only the models with group-level parameters use groups.
    groups_of = {
        name: group_col if named is None else (
            (group_col or _model_group_col(m)) if _model_group_col(m) else None
        )
        for name, m in models.items()
    }
    needed = [customer_col, date_col, *dict.fromkeys(g for g in groups_of.values() if g)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{context}: missing column(s) {missing}; the data has {list(frame.columns)}"
        )
    if len(frame) == 0:
        raise DataValidationError(f"{context}: the transaction log is empty")
    units = {name: _tracking_unit(m, time_unit, context) for name, m in models.items()}
    if len(set(units.values())) > 1:
        raise ValueError(f"{context}: the models were fitted in different time units {units}")
    unit = next(iter(units.values()))
    if not (isinstance(step, int | float) and step > 0 and math.isfinite(step)):
        raise ValueError(f"step must be a positive number of time units, got {step!r}")

    log = _TrackingLog.read(frame, customer_col, date_col, end, step * TIME_UNIT_DAYS[unit])
    if log.n_steps < 1:
        raise ValueError(
            f"{context}: the log spans {log.last + 1 - log.start} days, less than one step of "
            f"{step:g} {unit}"
        )
    # Covariates: a new customer's purchases depend on them too; each customer's values
    # are those of its first row in the log (covariates are static).
    covariates_of = {
        name: tuple(c for c in _new_customer_columns(m) if c != _model_group_col(m))
        for name, m in models.items()
    }
    if customer_data is not None:  # covariates the log lacks, from the customer table
        wanted = {c for cs in covariates_of.values() for c in cs
                  if c not in frame.columns and c in customer_data.columns}
        ids = frame[customer_col]
        if wanted and not ids.isin(customer_data.index).all():
            absent = ids[~ids.isin(customer_data.index)].unique()
            raise DataValidationError(
                f"{context}: customer_data has no row for {len(absent)} customers of the "
                f"log; first ids {list(absent[:5])}"
            )
        frame = frame.assign(**{c: ids.map(customer_data[c]).to_numpy() for c in sorted(wanted)})
    for name, covariates in covariates_of.items():
        missing = [c for c in covariates if c not in frame.columns]
        if missing:
            raise DataValidationError(
                f"{context}: {name if named else 'the model'}'s predictions depend on "
                f"covariate column(s) {missing}, which the transaction log does not have"
            )
    cohorts = {
        key: log.cohorts(frame, key[0], customer_col, key[1])
        for key in dict.fromkeys(zip(groups_of.values(), covariates_of.values(), strict=True))
    }
    expected = {}
    for name, m in models.items():
        cohort = cohorts[groups_of[name], covariates_of[name]]
        # Exposure of each cohort at each boundary; cohorts share few distinct values.
        exposure_days = log.bounds[:, None] - cohort["day"].to_numpy()[None, :]
        exposure = np.clip(exposure_days, 0, None) / TIME_UNIT_DAYS[unit]
        values = _new_customer_purchases(
            m, exposure, cohort["group"].to_numpy(), groups_of[name],
            cohort[list(covariates_of[name])],
        )
        expected[name] = values @ cohort["count"].to_numpy(dtype=float)
    actual_cum = np.searchsorted(log.repeat_days, log.bounds, side="left").astype(float)

    end_days = np.ceil(log.bounds).astype(np.int64) - 1
    table = pd.DataFrame(
        {
            "t": np.arange(1, log.n_steps + 1) * float(step),
            "date": pd.to_datetime(end_days.astype("datetime64[D]")),
            "actual": actual_cum,
        },
        index=pd.RangeIndex(1, log.n_steps + 1, name="step"),
    )
    if named is None:
        table["expected"] = expected["expected"]
        table["actual_incremental"] = np.diff(actual_cum, prepend=0.0)
        table["expected_incremental"] = np.diff(expected["expected"], prepend=0.0)
    else:
        for name in named:
            table[name] = expected[name]
    cal_t = None
    cal_date = None
    if calibration_end is not None:
        cal_day = _day_number(calibration_end, "calibration_end")
        cal_t = (cal_day + 1 - log.start) / TIME_UNIT_DAYS[unit]
        cal_date = pd.Timestamp(np.datetime64(cal_day, "D")).date().isoformat()
    table.attrs.update(
        {
            **({"model": type(model).__name__} if named is None else {"models": list(named)}),
            "time_unit": unit,
            "step": float(step),
            "start": pd.Timestamp(np.datetime64(log.start, "D")).date().isoformat(),
            "calibration_end": cal_date,
            "calibration_end_t": cal_t,
            "n_customers": log.n_customers,
            "n_customers_after_end": log.n_late,
            "n_transactions_after_end": log.n_after,
            "n_days_beyond_last_step": int(log.last + 1 - np.ceil(log.bounds[-1])),
        }
    )
    return table


@dataclass(frozen=True)
class _TrackingLog:
    """What tracking needs from a transaction log: acquisitions, repeat purchase days and
    the step boundaries, all as day numbers."""

    codes: np.ndarray  # customer code of each transaction
    start: int
    last: int
    n_after: int  # transactions after the last day
    acquisition_days: np.ndarray  # per customer (in code order)
    repeat_days: np.ndarray  # sorted, up to the last day
    bounds: np.ndarray  # exclusive day boundaries of the steps

    @classmethod
    def read(
        cls, frame: pd.DataFrame, customer_col: str, date_col: str, end: Any, step_days: float
    ) -> _TrackingLog:
        context = "expected_cumulative_purchases"
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
        # Distinct (customer, day) pairs, sorted by customer then day, from one integer
        # key; the first pair of each customer is the acquisition.
        span = int(days.max()) - start + 1
        keys = np.unique(codes.astype(np.int64) * span + (days - start))
        pair_codes, pair_days = np.divmod(keys, span)
        pair_days = pair_days + start
        is_first = np.r_[True, pair_codes[1:] != pair_codes[:-1]]
        n_steps = int(np.floor((last + 1 - start) / step_days + 1e-9))
        return cls(
            codes=codes,
            start=start,
            last=last,
            n_after=int(np.count_nonzero(days > last)),
            acquisition_days=pair_days[is_first],
            repeat_days=np.sort(pair_days[~is_first & (pair_days <= last)]),
            bounds=start + np.arange(1, n_steps + 1) * step_days,
        )

    @property
    def n_steps(self) -> int:
        return len(self.bounds)

    @property
    def n_customers(self) -> int:
        """Customers acquired by the last day."""
        return int(np.count_nonzero(self.acquisition_days <= self.last))

    @property
    def n_late(self) -> int:
        return len(self.acquisition_days) - self.n_customers

    def cohorts(
        self, frame: pd.DataFrame, group_col: str | None, customer_col: str,
        covariates: Sequence[str] = (),
    ) -> Any:
        """Customers acquired by the last day, counted by acquisition day (and group and
        covariates, each customer's from its first row)."""
        if group_col is not None:
            groups = _customer_groups(frame, self.codes, group_col, customer_col)
        else:
            groups = np.zeros(len(self.acquisition_days), dtype=np.int64)
        keep = self.acquisition_days <= self.last
        cohorts = pd.DataFrame({"day": self.acquisition_days[keep], "group": groups[keep]})
        _, first_rows = np.unique(self.codes, return_index=True)  # codes: 0, 1, 2, ...
        for col in covariates:
            cohorts[col] = frame[col].to_numpy()[first_rows][keep]
        return cohorts.value_counts(dropna=False).reset_index(name="count")


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
    cohort_covariates: pd.DataFrame | None = None,
) -> np.ndarray:
    """E[X(t)] for each (boundary, cohort) exposure, through the model's public API."""
    flat = exposure.ravel()
    if cohort_covariates is not None and len(cohort_covariates.columns):
        # One evaluation per (exposure, cohort): each cohort's group and covariates.
        rows = pd.DataFrame(
            {c: np.tile(cohort_covariates[c].to_numpy(), exposure.shape[0])
             for c in cohort_covariates.columns}
        )
        if group_col is not None:
            rows[_model_group_col(model) or group_col] = np.tile(cohort_groups, exposure.shape[0])
        values = model.expected_purchases_new_customer(t=flat, data=rows)
        return np.asarray(values, dtype=float).reshape(exposure.shape)
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
# The model family
# --------------------------------------------------------------------------------------
def _import_model_modules() -> None:
    """Import every public module of :mod:`clvmodels.models` (the Bayesian ones too)."""
    import clvmodels.models as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def _plays(cls: Any, method: str) -> bool:
    return callable(getattr(cls, method, None))


def _construct(cls: type, group_col: str | None) -> Any:
    takes_group = "group_col" in inspect.signature(cls).parameters
    return cls(group_col=group_col) if takes_group and group_col else cls()


def family_models(
    spend_model: Any = DEFAULT_SPEND_MODEL,
    *,
    bayesian: bool = False,
    group_col: str | None = None,
) -> dict[str, tuple[Any, Any]]:
    """The model family, unfitted: every transaction model of the package with a spend model.

    This is what :func:`compare`, :func:`clvmodels.run_pipeline` and the report compare
    when no models are named. The family is every registered maximum-likelihood
    transaction model defined in :mod:`clvmodels.models` (today BG/NBD, BG/CNBD-k,
    MBG/NBD, MBG/CNBD-k and Pareto/NBD: ``BetaGeo``, ``BetaGeoCNBD``,
    ``ModifiedBetaGeo``, ``ModifiedBetaGeoCNBD``, ``ParetoNBD``), in order of name,
    each paired with its own copy of ``spend_model``.
    A new model file in ``models/`` joins it by registering (being exported by the
    package); models registered elsewhere (a user's subclass) join only when named.

    Bayesian models are left out by default (sampling takes minutes where maximum
    likelihood takes a second). With ``bayesian=True`` every Bayesian transaction model
    defined in a model file of the package follows (``HierarchicalBetaGeo`` today; the
    versions :func:`clvmodels.models.bayes.bayesian` builds on demand join when named),
    each paired with the Bayesian version of the spend model defined there (a spend
    model whose name ends in the spend model's, e.g. ``HierarchicalGammaGamma``),
    otherwise with ``spend_model``.

    Parameters
    ----------
    spend_model : str, class or model, default "GammaGamma"
        A registered name, a class, or a model (copied for each pair).
    bayesian : bool, default False
        Also the Bayesian transaction models.
    group_col : str, optional
        Passed to the models that take one (group-level parameters).

    Returns
    -------
    dict of str to (transaction model, spend model)
        Named ``"<transaction> + <spend>"`` by class name, as the pipeline and the
        command line name pairs.

    Examples
    --------
    >>> list(family_models())  # doctest: +NORMALIZE_WHITESPACE
    ['BetaGeo + GammaGamma', 'BetaGeoCNBD + GammaGamma', 'ModifiedBetaGeo + GammaGamma',
     'ModifiedBetaGeoCNBD + GammaGamma', 'ParetoNBD + GammaGamma']
    >>> tx, spend = family_models()["ParetoNBD + GammaGamma"]
    >>> tx.is_fitted, type(spend).__name__
    (False, 'GammaGamma')
    """
    if bayesian:
        _import_model_modules()
    registry = registered_models()
    if isinstance(spend_model, str):
        if spend_model not in registry or not _plays(registry[spend_model], "expected_spend"):
            spend_names = sorted(n for n, c in registry.items() if _plays(c, "expected_spend"))
            raise ValueError(f"unknown spend model {spend_model!r}: choose one of {spend_names}")
        spend_model = registry[spend_model]
    spend_class = spend_model if isinstance(spend_model, type) else type(spend_model)
    # The package's model files; classes that bayesian() makes on demand (in the engine's
    # module) join only when named, so the family never depends on what ran before.
    ours = {
        name: cls for name, cls in registry.items()
        if cls.__module__.startswith("clvmodels.models.")
        and cls.__module__ != "clvmodels.models.bayes"
        and not getattr(cls, "summary_frames_unsupported", None)
    }
    bayesian_spend = next(
        (cls for name, cls in sorted(ours.items()) if name.endswith(spend_class.__name__)
         and _plays(cls, "expected_spend") and getattr(cls, "is_bayesian", False)),
        None,
    )
    pairs: dict[str, tuple[Any, Any]] = {}
    for name, cls in sorted(ours.items(), key=lambda item: (
        not _is_mle(item[1]), item[0]
    )):
        mle = _is_mle(cls)
        if not _plays(cls, "expected_purchases") or not (mle or bayesian):
            continue
        if not mle and bayesian_spend is not None:
            spend = _construct(bayesian_spend, group_col)
        elif isinstance(spend_model, type):
            spend = _construct(spend_model, group_col)
        else:
            spend = copy.deepcopy(spend_model)
        pairs[f"{name} + {type(spend).__name__}"] = (_construct(cls, group_col), spend)
    return pairs


def _is_mle(cls: type) -> bool:
    return issubclass(cls, MaximumLikelihoodModel) and not getattr(cls, "is_bayesian", False)


def _models_of(models: Any) -> list[Any]:
    """The models of a mapping of pairs, of pairs, or of models, flattened."""
    values = models.values() if isinstance(models, Mapping) else models
    out = []
    for value in values:
        out.extend(value if isinstance(value, tuple | list) else [value])
    return out


def _missing_columns(summary: pd.DataFrame, models: Iterable[Any]) -> list[str]:
    read = dict.fromkeys(c for m in models for c in getattr(m, "data_columns", ()))
    return [c for c in read if c not in summary.columns]


def add_model_columns(
    summary: pd.DataFrame, models: Any, transactions: Any, *, date_format: str | None = None
) -> pd.DataFrame:
    """``summary`` with the columns the models read that it lacks, computed from the log.

    Some models read more than :func:`clvmodels.rfm_summary` gives by default (their
    ``data_columns`` say so): the (M)BG/CNBD-k (``BetaGeoCNBD``) reads
    ``log_interpurchase_sum``, Gamma-Gamma on transactions ``monetary_log_mean``; they
    are computed by :func:`clvmodels.data.add_summary_columns` with the summary's own
    settings. The summary is returned unchanged (the same object) when nothing is
    missing, and the log is not read.

    Parameters
    ----------
    summary : DataFrame
        From :func:`clvmodels.rfm_summary` or :func:`clvmodels.calibration_holdout_split`.
    models : mapping of name to (transaction, spend), or iterable of models or pairs
        The models that will use the summary.
    transactions : DataFrame or callable
        The transaction log the summary was made from, or a function of no arguments
        that reads it (called only when a column is missing).
    date_format : str, optional
        ``strftime`` format of text dates in the log, as in :func:`clvmodels.rfm_summary`.

    Raises
    ------
    DataValidationError
        For a missing column that cannot be computed from a log.

    Examples
    --------
    >>> from clvmodels import BetaGeo, BetaGeoCNBD, load_cdnow, rfm_summary
    >>> log = load_cdnow()
    >>> summary = rfm_summary(log, "customer_id", "date", observation_end="1997-09-30")
    >>> add_model_columns(summary, [BetaGeo()], log) is summary
    True
    >>> add_model_columns(summary, [BetaGeoCNBD()], log).columns.tolist()
    ['frequency', 'recency', 'T', 'log_interpurchase_sum']
    """
    missing = _missing_columns(summary, _models_of(models))
    options = summary_options_for(missing)
    known = {c for flag, c in zip(options.values(), OPTION_COLUMNS, strict=True) if flag}
    unknown = [c for c in missing if c not in known]
    if unknown:
        raise DataValidationError(
            f"the models read column(s) {unknown}, which the summary lacks and which cannot "
            f"be computed from a transaction log here; the summary has {list(summary.columns)}"
        )
    if not missing:
        return summary
    if callable(transactions) and not hasattr(transactions, "columns"):
        transactions = transactions()
    return add_summary_columns(summary, transactions, date_format=date_format, **options)


# --------------------------------------------------------------------------------------
# Model comparison
# --------------------------------------------------------------------------------------
def _fit_if_needed(
    model: Any, data: pd.DataFrame, kwargs: Mapping[str, Any], progressbar: bool
) -> float:
    """Fit an unfitted model on ``data``; the seconds it took (NaN if already fitted)."""
    if getattr(model, "is_fitted", False):
        return float("nan")
    options = accepted_fit_options(model.fit, kwargs)
    if "progressbar" in inspect.signature(model.fit).parameters and "progressbar" not in options:
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
    models: Mapping[str, tuple[TransactionModel, SpendModel]] | None = None,
    calibration_holdout: pd.DataFrame | None = None,
    *,
    transactions: Any = None,
    horizon: int | None = None,
    period: str | None = None,
    discount_rate: float = 0.0,
    interval: float = 0.9,
    paired_interval: float = 0.95,
    loss: str = "squared",
    n_draws: int = 1000,
    random_state: int | None = 0,
    fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    tier_probability_col: str = "top_tier_probability_realised",
    tier_event: str = "top",
    leave_out_failures: bool | None = None,
    average: bool | None = None,
    average_weights: str | Mapping[str, float] = "auto",
    progressbar: bool = True,
) -> pd.DataFrame:
    """Compare (transaction model, spend model) pairs on a calibration/holdout split.

    Unfitted models are fitted (in place) on the calibration columns and timed;
    fitted ones are used as they are. Each pair then forecasts the holdout period,
    and the forecasts are scored against what the customers actually did. The pairs
    are ranked by their mean squared error per customer (the loss whose best forecast
    is the expectation the models give), and every pair is compared with the best one
    customer by customer (paired), so that a difference can be told from noise: see
    :func:`summary_text` for the verdict in words.

    Parameters
    ----------
    models : mapping of str to (transaction model, spend model), optional
        E.g. ``{"BG/NBD + GG": (BetaGeo(), GammaGamma())}``. Default: the whole family,
        :func:`family_models` (every maximum-likelihood transaction model of the
        package with Gamma-Gamma; Bayesian models only when passed, e.g. from
        ``family_models(bayesian=True)``). ``compare(split)`` is short for
        ``compare(None, split)``.
    calibration_holdout : DataFrame
        Output of :func:`clvmodels.calibration_holdout_split` with a ``value_col``
        (``monetary_value`` and ``monetary_value_holdout``).
    transactions : DataFrame or callable, optional
        The transaction log the split was made from, or a function of no arguments that
        reads it (called once, when needed). Needed by models that read columns the
        split lacks (``BetaGeoCNBD`` reads ``log_interpurchase_sum``), which are then
        added (:func:`add_model_columns`), and by the model average's backtest weights.
        Without it such a model is an error when named, and left out of the default
        family with a warning.
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
    paired_interval : float, default 0.95
        Level of the intervals of the paired differences (:func:`paired_difference`).
    loss : {"squared", "absolute"}, default "squared"
        The per-customer loss that ranks the models and is compared pairwise. The
        squared error is minimised in expectation by the mean, which is what the models
        forecast; the absolute error is minimised by the median, which is 0 for most
        customers of a holdout, so it favours forecasts that are too low.
    n_draws : int, default 1000
        Draws behind the intervals (see :func:`clvmodels.clv.customer_lifetime_value`).
    random_state : int, optional
        Seed, the same for every model so that comparisons are paired.
    fit_kwargs : mapping of str to dict, optional
        Extra ``fit`` arguments per model name (e.g. ``{"Bayesian": {"draws": 500}}``),
        passed to whichever of the pair's ``fit`` methods accept them.
    tier_probability_col : str, default "top_tier_probability_realised"
        The column of :func:`clvmodels.segment`'s ``customers`` whose calibration is
        measured (the probability of a tier given to each customer): by default the
        probability that the customer's realised value reaches the top tier, from the
        forecast's simulated futures; ``"top_tier_probability"`` measures the
        parameter-uncertainty one, which is overconfident about realised values.
    tier_event : {"top", "assigned"}, default "top"
        What that column is the probability of: the customer's realised holdout value
        lands in the top tier, or in the tier its point CLV assigns it (as for
        ``tier_probability``). Realised tiers are by rank share of realised value, as
        :func:`clvmodels.segment` places forecasts (:data:`DEFAULT_TIERS`).
    leave_out_failures : bool, optional
        Leave out, with a warning and in ``attrs["left_out"]``, the pairs whose fit
        raises :class:`~clvmodels.errors.ConvergenceError` (the data cannot identify
        that model), and compare the rest; if none is left the error is raised. Default:
        for the default family only; named models raise.
    average : bool, optional
        Add the model average (:mod:`clvmodels.averaging`) as one more row, named
        ``"model average"`` (:data:`AVERAGE_NAME`): the weighted mean of the pairs'
        forecasts, with intervals and calibration from the mixture of their draws (each
        pair's share of the ``n_draws`` draws is its weight), scored like every other
        row. Its weights never look at the holdout it is scored on
        (``average_weights``). Default: when two or more pairs are compared and the
        weights can be found without the holdout (``transactions`` given and no
        Bayesian model, or every model Bayesian); True insists (an error where they
        cannot be found), False leaves it out.
    average_weights : {"auto", "backtest", "loo"} or mapping of str to float
        How the average's weights are chosen. "backtest": stacking of the purchase
        counts that each model, refitted at a cut inside the calibration window,
        forecasts for the rest of the window
        (:func:`clvmodels.averaging.backtest_weights`, with ``n_draws`` but at least
        1,000 simulated futures, whose Monte Carlo noise otherwise pulls the weights
        towards equal ones; needs ``transactions``); "loo":
        PSIS-LOO stacking of Bayesian models (:func:`clvmodels.averaging.loo_weights`,
        ``arviz.compare(method="stacking")``); "auto": "loo" when every model is
        Bayesian, else "backtest"; a mapping: these weights (normalised; missing names
        get 0), e.g. chosen on another holdout.
    progressbar : bool, default True
        Show progress (also passed to the fits that accept it).

    Returns
    -------
    DataFrame
        One row per model, indexed by name:

        * ``customers``; ``purchases_actual`` and ``purchases_expected`` (holdout
          totals), ``purchases_mae``, ``purchases_rmse`` (per customer),
          ``purchases_error_pct`` (aggregate, in percent of the actual total),
          ``purchases_spearman`` (rank correlation of expected with actual
          purchases) and ``purchases_interval_coverage`` (share of customers whose
          holdout purchases lie in their ``interval`` predictive interval, simulated
          from the model; counts are discrete, so it tends to exceed the level);
        * ``value_actual`` and ``value_expected`` (totals), ``value_mae``,
          ``value_rmse``, ``value_error_pct``, ``value_spearman`` (rank correlation of predicted
          value with realised holdout value), ``value_top10_share`` and
          ``value_top20_share`` (share of realised value captured by the predicted
          top 10% / 20% of customers), ``value_interval_coverage`` (share of
          customers whose realised holdout value lies in their ``interval``
          predictive interval);
        * the ranking and the paired comparison, for ``purchases`` and for ``value``:
          ``<measure>_rank`` (1: lowest mean ``loss``) and ``<measure>_loss_diff``
          with ``_lower`` and ``_upper``: the mean over customers of the model's loss
          minus the best model's, with its ``paired_interval`` interval (0 for the
          best model itself; an interval above 0: worse by more than the noise);
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
        * ``fit_seconds``: time to fit the pair here (NaN when passed in fitted); for
          the model average, the time its weights took (NaN when given).

        The model average's row (with ``average``) has every metric above; its fit
        statistics are NaN. It is ranked with the pairs, and its paired difference is
        from the best pair.

        ``attrs`` records ``best`` (the pair with the lowest mean loss on value, the
        one to forecast with; never the model average), ``best_purchases``, ``loss``,
        ``verdict`` (one sentence: which pair forecasts value best, by how much, and
        whether the difference from the runner-up is larger than its noise; then one on
        the model average), ``averaging_weights`` (pair: weight; empty without the
        average), ``averaging`` (``method``: "backtest", "loo", "given" or None;
        ``text``: one sentence on how the weights were chosen, or why there is no
        average; for "backtest" also ``cut``, ``window_end``, ``block_days`` and
        ``left_out`` as :func:`clvmodels.averaging.backtest_weights` records them),
        ``left_out`` (pairs of the default family
        left out, with a warning, for want of a column or because the data could not
        identify them: see ``leave_out_failures``), ``left_out_reasons`` (why, by
        pair), ``horizon`` (periods), ``period``,
        ``horizon_length`` (the forecast length in ``time_unit``), ``time_unit``,
        ``discount_rate``, ``interval``, ``paired_interval``, ``n_draws`` and
        ``random_state``, and ``calibration``: per model a
        :class:`clvmodels.calibration.ModelCalibration` (the total's interval, the
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
    >>> round(float(table.loc["BG/NBD", "purchases_error_pct"]), 1)  # FHL 2005
    -12.1

    The whole family (with the log, for BG/CNBD-k's regularity column):

    >>> family = compare(split, transactions=load_cdnow(), n_draws=100, progressbar=False)
    >>> family.attrs["best"]  # the lowest value error (the rank column's 1)
    'ModifiedBetaGeo + GammaGamma'
    >>> int(family["value_rank"].loc[family.attrs["best"]])
    1
    >>> others = family.drop(index=family.attrs["best"])
    >>> bool((others["value_loss_diff_lower"] <= 0).all())  # within the noise, or the same
    True

    The last row is the model average; its weights (one per model, summing to 1; from
    a single simulated backtest block they move with the seed), and how they were chosen:

    >>> weights = family.attrs["averaging_weights"]
    >>> sorted(weights) == sorted(family.index[:-1]), round(sum(weights.values()), 9)
    (True, 1.0)
    >>> print(family.attrs["averaging"]["text"])  # doctest: +NORMALIZE_WHITESPACE
    The model average's weights are stacking weights (Yao et al. 2018) of the purchase
    counts that each model, refitted on the log up to 1997-07-01, forecast for the 91 days
    to 1997-09-30, the end of the calibration window; the holdout played no part.
    """
    context = "compare"
    if calibration_holdout is None and hasattr(models, "columns"):
        models, calibration_holdout = None, models  # compare(split)
    if calibration_holdout is None:
        raise TypeError(f"{context}: pass calibration_holdout, the output of "
                        "calibration_holdout_split")
    if callable(transactions) and not hasattr(transactions, "columns"):
        transactions = functools.cache(transactions)  # read once, when first needed
    default = models is None
    if default:
        models = family_models()
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping of name -> (transaction, spend)")
    for name, pair in models.items():
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValueError(
                f"models[{name!r}] must be a (transaction model, spend model) pair, got {pair!r}"
            )
        for model in pair:
            check_summary_model(model, context)
    fit_kwargs = dict(fit_kwargs or {})
    unknown = set(fit_kwargs) - set(models)
    if unknown:
        raise ValueError(f"fit_kwargs names unknown models {sorted(unknown)}")
    frame = _check_holdout(calibration_holdout, context)
    if "monetary_value_holdout" not in frame.columns or "monetary_value" not in frame.columns:
        raise DataValidationError(
            f"{context}: value columns missing: build the split with a value_col so that "
            "'monetary_value' and 'monetary_value_holdout' exist"
        )
    validate_summary(frame, require_monetary=True, context=context)
    frame, models, left_out = _with_model_columns(frame, models, transactions, default)
    unit = frame.attrs.get("time_unit")
    if unit is None:
        raise ValueError(f"{context}: the split records no time_unit (attrs['time_unit'])")
    holdout = _holdout_length(frame, context)
    calendar = _holdout_calendar(holdout, unit, horizon, period, discount_rate)
    length = calendar.length(unit)
    interval_probabilities(paired_interval)  # checked before the work
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {list(_LOSSES)}, got {loss!r}")
    if tier_event not in ("top", "assigned"):
        raise ValueError(f"tier_event must be 'top' or 'assigned', got {tier_event!r}")
    if average not in (None, True, False):
        raise ValueError(f"average must be True, False or None, got {average!r}")
    if AVERAGE_NAME in models:
        raise ValueError(f"a model may not be named {AVERAGE_NAME!r}: the model average's row")
    how = _weights_method(average_weights, models, transactions)
    averaging = bool(average) or (average is None and len(models) > 1 and how[1] is None)
    if average and len(models) < 2:
        raise ValueError("compare: average=True needs two or more pairs to average")
    if average and how[1] is not None:
        raise ValueError(f"compare: no model average: {how[1]}")

    actual_purchases = frame["frequency_holdout"].to_numpy(dtype=float)
    realised = actual_purchases * frame["monetary_value_holdout"].to_numpy(dtype=float)

    rows = {}
    not_fitted: dict[str, str] = {}
    calibrations = {}
    losses: dict[str, dict[str, np.ndarray]] = {"purchases": {}, "value": {}}
    forecasts: dict[str, CLVForecast] = {}
    expected_purchases: dict[str, np.ndarray] = {}

    def scored(
        name: str, forecast: CLVForecast, purchases: np.ndarray, bounds: tuple[Any, Any]
    ) -> dict[str, float]:
        """A forecast's holdout metrics and calibration columns (its calibration and
        per-customer losses kept for the ranking and the plots)."""
        calibrations[name] = forecast_calibration(
            forecast,
            pd.Series(realised, index=frame.index),
            tier_probability_col=tier_probability_col,
            tier_event=tier_event,
            random_state=random_state,
        )
        scores, losses_of = _forecast_scores(
            purchases, bounds, forecast.table.reindex(frame.index), actual_purchases,
            realised, _LOSSES[loss],
        )
        for measure, values in losses_of.items():
            losses[measure][name] = values
        return {**scores, **_calibration_columns(calibrations[name])}
    with progress_bar(3 * len(models), "Comparing models", enabled=progressbar) as bar:
        for name, (transaction_model, spend_model) in models.items():
            bar.update(description=f"Comparing models: fitting {name}")
            options = fit_kwargs.get(name, {})
            fitted = 0
            try:
                seconds = _fit_if_needed(transaction_model, frame, options, progressbar)
                fitted = 1
                bar.advance()
                seconds_spend = _fit_if_needed(spend_model, frame, options, progressbar)
                bar.advance()
            except ConvergenceError as err:
                if not (default if leave_out_failures is None else leave_out_failures):
                    raise
                # One pair that these data cannot identify does not cost the user the
                # comparison of the others.
                warnings.warn(f"compare: {name} left out: {err}", UserWarning, stacklevel=2)
                not_fitted[name] = str(err)
                bar.advance(3 - fitted)
                continue
            bar.update(description=f"Comparing models: scoring {name}")
            predicted_purchases = np.asarray(
                transaction_model.expected_purchases(t=length, data=frame), dtype=float
            )
            low, high = _purchase_intervals(
                [(transaction_model, n_draws)], frame, length, interval, n_draws, random_state
            )
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
            if averaging:
                forecasts[name], expected_purchases[name] = forecast, predicted_purchases
            fit_seconds = np.nansum([seconds, seconds_spend])
            if np.isnan(seconds) and np.isnan(seconds_spend):
                fit_seconds = np.nan
            rows[name] = {
                **scored(name, forecast, predicted_purchases, (low, high)),
                **_fit_statistics(transaction_model, ""),
                **_fit_statistics(spend_model, "spend_"),
                "fit_seconds": float(fit_seconds),
            }
            bar.advance()
    if not rows:
        raise ConvergenceError(
            f"compare: no pair could be fitted to these data: "
            f"{'; '.join(f'{name}: {why}' for name, why in not_fitted.items())}"
        )
    weights: pd.Series | None = None
    if averaging and len(forecasts) > 1:
        fitted = {name: models[name] for name in forecasts}
        started = time.perf_counter()
        weights = _average_weights(how[0], average_weights, fitted, frame, transactions,
                                   max(n_draws, _WEIGHT_DRAWS), fit_kwargs, random_state)
        seconds = np.nan if how[0] == "given" else time.perf_counter() - started
        mixture = average_forecasts(forecasts, weights, interval=interval)
        counts = mixture_allocation(mixture.weights.to_numpy(), mixture.n_draws)
        members = [(models[name][0], int(c)) for name, c in zip(forecasts, counts, strict=True)]
        bounds = _purchase_intervals(members, frame, length, interval, n_draws, random_state)
        purchases = sum(w * expected_purchases[name] for name, w in mixture.weights.items())
        rows[AVERAGE_NAME] = {
            **scored(AVERAGE_NAME, mixture, purchases, bounds),
            **{f"{p}{k}": np.nan for p in ("", "spend_") for k in _FIT_STATISTICS},
            "fit_seconds": float(seconds),
        }
        record = _averaging_record(how[0], weights)
        weights = mixture.weights
    else:
        why = how[1] or "average=False"
        if averaging:
            why = f"only {len(forecasts)} pair could be fitted"
        record = {"method": None, "text": f"No model average: {why}."}
    result = pd.DataFrame.from_dict(rows, orient="index")
    result.index.name = "model"
    best = {m: _rank_and_pair(result, m, losses[m], paired_interval) for m in losses}
    order = [c for c in result.columns if not c.startswith(("purchases", "value"))]
    for measure in ("value", "purchases"):
        order[1:1] = [c for c in result.columns if c.startswith(measure)]
    result = result[order]
    result.attrs.update(
        {
            "best": best["value"],
            "best_purchases": best["purchases"],
            "loss": loss,
            "left_out": sorted([*left_out, *not_fitted]),
            "left_out_reasons": {
                **{name: "it reads a summary column the split lacks" for name in left_out},
                **{name: f"the data could not identify it ({why})"
                   for name, why in not_fitted.items()},
            },
            "horizon": calendar.horizon,
            "period": calendar.period,
            "horizon_length": length,
            "time_unit": unit,
            "discount_rate": calendar.discount_rate,
            "interval": interval,
            "paired_interval": paired_interval,
            "n_draws": n_draws,
            "random_state": random_state,
            "calibration": calibrations,
            "averaging_weights": {} if weights is None else weights.to_dict(),
            "averaging": record,
        }
    )
    result.attrs["verdict"] = " ".join(
        filter(None, [_verdict(result, "value"), _average_verdict(result, "value")])
    )
    return result


def forecast_calibration(
    forecast: CLVForecast,
    realised: pd.Series,
    *,
    tier_probability_col: str = "top_tier_probability_realised",
    tier_event: str = "top",
    random_state: Any = None,
) -> ModelCalibration:
    """A predictive forecast's calibration against realised values, as :func:`compare`
    measures it for each model.

    Parameters
    ----------
    forecast : CLVForecast
        Made with ``predictive=True``.
    realised : Series
        Realised value of every customer of the forecast, indexed by customer id.
    tier_probability_col, tier_event : str
        As in :func:`compare`.
    random_state : int or numpy Generator, optional
        For the randomisation of the PIT within ties.

    Returns
    -------
    ModelCalibration

    Examples
    --------
    >>> from clvmodels import (BetaGeo, GammaGamma, calibration_holdout_split,
    ...                        customer_lifetime_value, load_cdnow)
    >>> split = calibration_holdout_split(load_cdnow(), "customer_id", "date", "amount",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> fc = customer_lifetime_value(BetaGeo().fit(split), GammaGamma().fit(split), split,
    ...     horizon=39, period="W", discount_rate=0, n_draws=200, predictive=True,
    ...     random_state=0)
    >>> cal = forecast_calibration(fc, split["frequency_holdout"] * split["monetary_value_holdout"])
    >>> cal.total["inside"], round(cal.total["realised"])
    (False, 70976)
    """
    from clvmodels.segmentation import DEFAULT_TIERS, segment

    if tier_event not in ("top", "assigned"):
        raise ValueError(f"tier_event must be 'top' or 'assigned', got {tier_event!r}")

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
    # Customers tied at a realised value (most at 0) share its ranks, as segment() shares
    # them: their chance of each tier, not all of them in the highest tier they reach.
    reach = tier_reach_shares(realised.to_numpy(dtype=float), [s for _, s in DEFAULT_TIERS])
    if tier_event == "top":
        hit = reach[:, 0]
    else:
        assigned = pd.Categorical(tiers["tier"].astype(str), categories=names).codes
        hit = reach[np.arange(len(reach)), assigned]
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
    total = calibration.total
    return {
        "value_total_lower": total["lower"],
        "value_total_upper": total["upper"],
        "value_total_inside": float(total["inside"]),
        "value_total_widths_outside": total["widths_outside"],
        "tier_probability_gap": tier_probability_gap(calibration.tiers),
    }


def _with_model_columns(
    frame: pd.DataFrame, models: Mapping[str, Any], transactions: Any, default: bool
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """The split with the columns the models read (from ``transactions``); without a log,
    the default family's pairs that need one are left out (with a warning)."""
    models = dict(models)
    lacking = {name: _missing_columns(frame, pair) for name, pair in models.items()}
    lacking = {name: cols for name, cols in lacking.items() if cols}
    if not lacking:
        return frame, models, []
    if transactions is not None:
        return add_model_columns(frame, models, transactions), models, []
    name, columns = next(iter(lacking.items()))
    how = ("pass transactions= (the log the split was made from), or add them with "
           "add_model_columns / rfm_summary(..., regularity=True, log_spend=True)")
    if not default:
        raise DataValidationError(
            f"compare: {name} reads column(s) {columns}, which the split lacks: {how}"
        )
    warnings.warn(
        f"compare: {sorted(lacking)} left out of the default family: they read column(s) "
        f"{sorted({c for cols in lacking.values() for c in cols})}, which the split lacks; "
        f"to compare them too, {how}",
        UserWarning,
        stacklevel=3,
    )
    kept = {name: pair for name, pair in models.items() if name not in lacking}
    return frame, kept, sorted(lacking)


def _simulated_purchases(
    model: TransactionModel, frame: pd.DataFrame, t: float, n_draws: int, random_state: Any
) -> Iterator[tuple[int, np.ndarray]]:
    """Each customer's purchases in ``t`` simulated under ``n_draws`` parameter draws (one
    future per draw), block by block: ``(start, counts (n_draws, block))``."""
    draws = model.param_draws(n_draws, random_state=random_state)
    rng = np.random.default_rng(None if random_state is None else [random_state, 11])
    block = max(1, _BLOCK_VALUES // max(n_draws, 1))
    for start in range(0, len(frame), block):
        part = frame.iloc[start:start + block]
        yield start, model.simulate_purchases(t, part, draws=draws, random_state=rng).counts()


def _purchase_intervals(
    members: Sequence[tuple[TransactionModel, int]],
    frame: pd.DataFrame,
    t: float,
    interval: float,
    n_draws: int,
    random_state: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's predictive interval of purchases in ``t`` from the mixture of
    ``(model, n)`` members: the first ``n`` of each model's simulated futures (one model
    with ``n = n_draws``: that model's interval). Every model simulates as it does alone,
    so a mixture's futures are exactly its members'."""
    members = [(model, n) for model, n in members if n > 0]
    streams = [_simulated_purchases(model, frame, t, n_draws, random_state)
               for model, _ in members]  # fmt: skip
    lower = np.empty(len(frame))
    upper = np.empty(len(frame))
    for blocks in zip(*streams, strict=True):
        start = blocks[0][0]
        counts = np.concatenate(
            [c[:n] for (_, c), (_, n) in zip(blocks, members, strict=True)]
        ).astype(float)
        stop = start + counts.shape[1]
        lower[start:stop], upper[start:stop] = predictive_interval(counts, interval)
    return lower, upper


def _forecast_scores(
    purchases: np.ndarray,
    purchase_bounds: tuple[np.ndarray, np.ndarray],
    table: pd.DataFrame,
    actual_purchases: np.ndarray,
    realised: np.ndarray,
    loss: Callable[[np.ndarray], np.ndarray],
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The holdout metrics of one forecast (expected purchases and their intervals, and
    the CLV ``table``), and its per-customer losses by measure."""
    from scipy import stats  # imported here: scipy.stats is slow to import

    value = table["clv"].to_numpy(dtype=float)
    p_mae, p_rmse, p_pct = _errors(purchases, actual_purchases)
    v_mae, v_rmse, v_pct = _errors(value, realised)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho_p = float(stats.spearmanr(purchases, actual_purchases).statistic)
        rho_v = float(stats.spearmanr(value, realised).statistic)
    scores = {
        "customers": len(table),
        "purchases_actual": actual_purchases.sum(),
        "purchases_expected": purchases.sum(),
        "purchases_mae": p_mae,
        "purchases_rmse": p_rmse,
        "purchases_error_pct": p_pct,
        "purchases_spearman": rho_p,
        "purchases_interval_coverage": interval_coverage(actual_purchases, *purchase_bounds),
        "value_actual": realised.sum(),
        "value_expected": value.sum(),
        "value_mae": v_mae,
        "value_rmse": v_rmse,
        "value_error_pct": v_pct,
        "value_spearman": rho_v,
        "value_top10_share": top_share(value, realised, 0.1),
        "value_top20_share": top_share(value, realised, 0.2),
        "value_interval_coverage": interval_coverage(
            realised, table["clv_pred_lower"], table["clv_pred_upper"]
        ),
    }
    losses = {"purchases": loss(purchases - actual_purchases), "value": loss(value - realised)}
    return scores, losses


# --------------------------------------------------------------------------------------
# The model average
# --------------------------------------------------------------------------------------
def _weights_method(
    average_weights: Any, models: Mapping[str, Any], transactions: Any
) -> tuple[str | None, str | None]:
    """How :func:`compare` finds the average's weights, and why it cannot (or None)."""
    if isinstance(average_weights, Mapping):
        unknown = sorted(set(map(str, average_weights)) - set(models))
        if unknown:
            raise ValueError(f"average_weights names unknown models {unknown}")
        return "given", None
    choices = ("auto", "backtest", "loo")
    if average_weights not in choices:
        raise ValueError(
            f"average_weights must be one of {list(choices)} or a mapping of model name to "
            f"weight, got {average_weights!r}"
        )
    bayesian = [n for n, (tx, _) in models.items() if getattr(tx, "is_bayesian", False)]
    method = average_weights
    if method == "auto":
        method = "loo" if len(bayesian) == len(models) else "backtest"
    if method == "loo":
        others = [n for n in models if n not in bayesian]
        if others:
            raise ValueError(f"average_weights='loo' needs Bayesian models only; {others} are not")
        return method, None
    if transactions is None:
        return method, ("its weights come from a backtest inside the calibration window, "
                        "which needs transactions= (the log the split was made from)")
    if bayesian and average_weights == "auto":
        return method, (f"its backtest weights would refit {bayesian} by sampling: pass "
                        "average=True to do so")
    return method, None


def _average_weights(
    method: str | None,
    given: Any,
    models: Mapping[str, tuple[Any, Any]],
    frame: pd.DataFrame,
    transactions: Any,
    n_draws: int,
    fit_kwargs: Mapping[str, Mapping[str, Any]],
    random_state: Any,
) -> pd.Series:
    """The model average's weights over the fitted pairs ``models``."""
    if method == "given":
        return pd.Series({str(k): float(v) for k, v in given.items() if str(k) in models},
                         dtype=float)  # fmt: skip
    if method == "loo":
        return loo_weights({name: pair[0] for name, pair in models.items()})
    if callable(transactions) and not hasattr(transactions, "columns"):
        transactions = transactions()
    return backtest_weights(models, transactions, frame, n_draws=n_draws,
                            fit_kwargs=fit_kwargs, random_state=random_state)  # fmt: skip


def _averaging_record(method: str | None, weights: pd.Series) -> dict[str, Any]:
    """``attrs["averaging"]`` of :func:`compare`: the method and one sentence on it."""
    if method == "given":
        text = "The model average's weights were given (average_weights=)."
    elif method == "loo":
        text = ("The model average's weights are PSIS-LOO stacking weights of the Bayesian "
                "models on the calibration data (arviz.compare); the holdout played no part.")
    else:
        a = weights.attrs
        text = (
            f"The model average's weights are stacking weights (Yao et al. 2018) of the "
            f"purchase counts that each model, refitted on the log up to {a['cut']}, "
            f"forecast for the {a['block_days']:g} days to {a['window_end']}, the end of the "
            f"calibration window; the holdout played no part."
        )
        if a["left_out"]:
            text += f" {sorted(a['left_out'])} could not be refitted there and get weight 0."
    return {"method": method, "text": text,
            **{k: v for k, v in weights.attrs.items() if k != "method"}}


def _rank_and_pair(
    result: pd.DataFrame, measure: str, losses: Mapping[str, np.ndarray], level: float
) -> str:
    """Rank by mean loss (the model average too) and add each row's paired difference
    from the best pair; the best pair's name (the first, among equals)."""
    mean = pd.Series({name: float(np.mean(v)) for name, v in losses.items()}).fillna(np.inf)
    best = str(mean.drop(index=AVERAGE_NAME, errors="ignore").idxmin())
    result[f"{measure}_rank"] = mean.rank(method="min").astype(int)
    diffs = [
        (0.0, 0.0, 0.0) if name == best
        else paired_difference(losses[name], losses[best], level)
        for name in result.index
    ]
    for i, suffix in enumerate(("", "_lower", "_upper")):
        result[f"{measure}_loss_diff{suffix}"] = [d[i] for d in diffs]
    return best


# --------------------------------------------------------------------------------------
# The verdict in words
# --------------------------------------------------------------------------------------
_MEASURES = {"value": ("holdout value", "{:,.2f}"), "purchases": ("holdout purchases", "{:,.3f}")}
_LOSSES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"squared": np.square,
                                                          "absolute": np.abs}


def _beyond_noise(comparison: pd.DataFrame, measure: str, name: str) -> bool:
    return bool(comparison.loc[name, f"{measure}_loss_diff_lower"] > 0)


def _interval_text(values: Iterable[float]) -> list[str]:
    """A difference and its interval, to about three significant digits of the interval's
    half-width."""
    mean, lower, upper = (float(v) for v in values)
    half = (upper - lower) / 2
    decimals = 2 if not (half > 0 and math.isfinite(half)) else min(
        max(2 - math.floor(math.log10(half)), 0), 8
    )
    return [f"{v:,.{decimals}f}" for v in (mean, lower, upper)]


_ERROR_NAMES = {"rmse": "root mean squared error", "mae": "mean absolute error"}


def _error_keys(comparison: pd.DataFrame) -> tuple[str, str]:
    """The error that ranks first (by the comparison's loss), then the other one."""
    return ("rmse", "mae") if comparison.attrs.get("loss", "squared") == "squared" else (
        "mae", "rmse")


def _error_texts(comparison: pd.DataFrame, measure: str, name: str) -> tuple[str, str, str]:
    """A row's two errors per customer and its total error, as text."""
    number = _MEASURES[measure][1]
    keys = _error_keys(comparison)
    row = comparison.loc[name]
    return (number.format(row[f"{measure}_{keys[0]}"]),
            number.format(row[f"{measure}_{keys[1]}"]),
            f"{row[f'{measure}_error_pct']:+.1f}%")


def _difference_text(comparison: pd.DataFrame, measure: str, name: str) -> str:
    """A row's paired difference in loss from the best pair, with its interval."""
    diff = _interval_text(
        comparison.loc[name, [f"{measure}_loss_diff{s}" for s in ("", "_lower", "_upper")]]
    )
    level = f"{comparison.attrs.get('paired_interval', 0.95):.0%}"
    return (f"the paired difference in {comparison.attrs.get('loss', 'squared')} error, "
            f"{diff[0]} per customer ({level} interval {diff[1]} to {diff[2]})")


def _verdict(comparison: pd.DataFrame, measure: str) -> str:
    """One sentence: the best pair on ``measure``, by how much, and whether the
    difference from the runner-up pair is larger than its noise."""
    what = _MEASURES[measure][0]
    best = comparison.attrs["best" if measure == "value" else "best_purchases"]
    keys = _error_keys(comparison)
    first, other, pct = _error_texts(comparison, measure, best)
    pairs = comparison.drop(index=AVERAGE_NAME, errors="ignore")
    if len(pairs) == 1:
        return (
            f"{best} is the only model compared: its {what} forecast has a "
            f"{_ERROR_NAMES[keys[0]]} of {first} and a {_ERROR_NAMES[keys[1]]} of {other} per "
            f"customer, and is {pct} off in total."
        )
    # A model whose every customer's error is the best's (the BG/CNBD-k at k = 1 is the
    # BG/NBD) is named beside it; the runner-up is the best of the others.
    diffs = pairs[[f"{measure}_loss_diff{end}" for end in ("", "_lower", "_upper")]].abs()
    tiny = 1e-9 * (1.0 + float(np.nanmax(diffs.to_numpy())))  # rounding, not a difference
    same = [str(n) for n in pairs.index if n != best and (diffs.loc[n] <= tiny).all()]
    ranks = pairs[f"{measure}_rank"].drop(index=[best, *same])
    if ranks.empty:
        ranks, same = pairs[f"{measure}_rank"].drop(index=best), []
    second = str(ranks.index[np.argmin(ranks.to_numpy())])
    first2, other2, pct2 = _error_texts(comparison, measure, second)
    noise = (
        "larger than its noise" if _beyond_noise(comparison, measure, second)
        else "within its noise, so the two cannot be told apart on this holdout"
    )
    alike = f" (as does {' and '.join(same)}, with the same forecasts)" if same else ""
    return (
        f"{best} forecasts {what} best{alike}: {_ERROR_NAMES[keys[0]]} {first} per customer "
        f"({_ERROR_NAMES[keys[1]]} {other}, total {pct} off) against {first2} ({other2}, "
        f"{pct2}) for the runner-up {second}; "
        f"{_difference_text(comparison, measure, second)}, is {noise}."
    )


def _average_verdict(comparison: pd.DataFrame, measure: str) -> str | None:
    """One sentence on the model average against the best pair (None without it)."""
    if AVERAGE_NAME not in comparison.index:
        return None
    best = comparison.attrs["best" if measure == "value" else "best_purchases"]
    first, other, pct = _error_texts(comparison, measure, AVERAGE_NAME)
    row = comparison.loc[AVERAGE_NAME]
    if row[f"{measure}_loss_diff_upper"] < 0:
        noise = "better by more than its noise"
    elif row[f"{measure}_loss_diff_lower"] > 0:
        noise = "worse by more than its noise"
    else:
        noise = "within its noise"
    keys = _error_keys(comparison)
    return (
        f"The model average forecasts {_MEASURES[measure][0]} with a "
        f"{_ERROR_NAMES[keys[0]]} of {first} per customer ({_ERROR_NAMES[keys[1]]} {other}, "
        f"total {pct} off); against {best}, "
        f"{_difference_text(comparison, measure, AVERAGE_NAME)}, is {noise}."
    )


def summary_text(comparison: pd.DataFrame) -> str:
    """The comparison in plain words: which model forecasts best, by how much, and whether
    the difference is larger than its noise, for value and for purchases.

    The first sentence is ``comparison.attrs["verdict"]`` (value, the quantity CLV is
    about); then purchases; then how many of the other models are worse than the best
    by more than their noise (a paired interval that excludes zero).

    Parameters
    ----------
    comparison : DataFrame
        From :func:`compare`.

    Examples
    --------
    >>> from clvmodels import (BetaGeo, GammaGamma, ModifiedBetaGeo,
    ...                        calibration_holdout_split, load_cdnow)
    >>> split = calibration_holdout_split(load_cdnow(), "customer_id", "date", "amount",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> table = compare({"BG/NBD": (BetaGeo(), GammaGamma()),
    ...                  "MBG/NBD": (ModifiedBetaGeo(), GammaGamma())},
    ...                 split, n_draws=100, progressbar=False)
    >>> print(summary_text(table))  # doctest: +NORMALIZE_WHITESPACE
    MBG/NBD forecasts holdout value best: root mean squared error 71.95 per customer (mean
    absolute error 29.71, total -19.5% off) against 72.30 (30.41, -15.6%) for the
    runner-up BG/NBD; the paired difference in squared error, 50.9 per customer (95%
    interval -27.6 to 129.4), is within its noise, so the two cannot be told apart on this
    holdout. MBG/NBD forecasts holdout purchases best: root mean squared error 1.607 per
    customer (mean absolute error 0.765, total -16.2% off) against 1.608 (0.785, -12.1%)
    for the runner-up BG/NBD; the paired difference in squared error, 0.0026 per customer
    (95% interval -0.0290 to 0.0342), is within its noise, so the two cannot be told
    apart on this holdout.
    """
    missing = [k for k in ("best", "best_purchases") if k not in comparison.attrs]
    if missing or "value_loss_diff" not in comparison.columns:
        raise ValueError("summary_text reads the output of compare (its ranks and attrs)")
    sentences = [
        s for measure in ("value", "purchases")
        for s in (_verdict(comparison, measure), _average_verdict(comparison, measure)) if s
    ]
    pairs = comparison.index.drop(AVERAGE_NAME, errors="ignore")
    n_others = len(pairs) - 1
    if n_others > 1:
        best = comparison.attrs["best"]
        worse = sum(_beyond_noise(comparison, "value", n) for n in pairs if n != best)
        if worse == n_others:
            sentences.append(f"Every other model forecasts value worse than {best} by more "
                             "than its noise.")
        elif worse == 0:
            sentences.append(f"None of the other {n_others} models forecasts value worse "
                             f"than {best} by more than its noise.")
        else:
            sentences.append(f"{worse} of the other {n_others} models forecast value worse "
                             f"than {best} by more than their noise.")
    return " ".join(sentences)
