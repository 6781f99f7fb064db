"""How far two engines' opt-in log columns may differ (``log_spend``, ``regularity``).

:mod:`summation` bounds sums of values; the opt-in columns are sums of *logs*, so two
more roundings enter, both bounded by what the columns add up:

* each engine's ``log`` is within 4 units in the last place (NumPy validates its SIMD
  logs to 4 ULP in ``umath-validation-set-log.csv``; glibc and Java's ``Math.log`` are
  within 1), so two engines' logs of one number differ by at most ``8 eps |log|``;
* ``log_interpurchase_sum`` adds the logs of ``n`` gaps, which every engine computes with
  the same float operations (bit for bit): two engines differ by at most
  ``(n + 1) eps sum|l|`` from the order of addition plus ``8 eps sum|l|`` from the logs;
* ``monetary_log_mean`` takes logs of period sums, which differ between engines by the
  rounding of those sums, ``delta = (k + 1) eps sum(|x|)`` for ``k`` values: the logs
  then differ by at most ``delta / (v - delta)`` for a period worth ``v`` (first order
  ``delta / v``), and the mean of ``d`` logs adds ``(d + 2) eps sum|l| / d`` (addition and
  division) on top of the ``8 eps`` of the logs.

The bounds stay strict: a gap off by one day moves its log by ``log(1 + 1/g)``, a
period off by a cent moves its log by about ``0.01 / v``; both are many orders of
magnitude above them. Which customers have no log value (NaN) must agree exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from summation import EPS, assert_same_summary

from clvmodels.units import durations, period_ordinal, period_ordinals

LOG_COLUMNS = ("monetary_log_mean", "log_interpurchase_sum")


def _periods(summary: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """The distinct purchase periods of the summarised window, one row per (customer,
    period), sorted: ``k`` transactions, ``abs_sum``, ``value`` and ``repeat``."""
    attrs = summary.attrs
    customer, date, value = attrs["customer_col"], attrs["date_col"], attrs["value_col"]
    dates = pd.to_datetime(log[date], format="ISO8601")
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_localize(None)
    freq = attrs["freq"]
    periods = period_ordinals(dates.to_numpy().astype("datetime64[us]"), freq)
    end = attrs.get("calibration_end", attrs["observation_end"])
    keep = periods <= period_ordinal(np.datetime64(pd.Timestamp(end), "us"), freq)
    values = pd.to_numeric(log[value]).to_numpy(dtype=float) if value else np.zeros(len(log))
    frame = pd.DataFrame({"c": log[customer].to_numpy()[keep], "p": periods[keep],
                          "x": values[keep]})
    frame["ax"] = frame["x"].abs()
    grouped = frame.groupby(["c", "p"], sort=True)
    out = pd.DataFrame({"k": grouped.size(), "abs_sum": grouped["ax"].sum(),
                        "value": grouped["x"].sum()}).reset_index()
    out["repeat"] = out["c"].eq(out["c"].shift())
    return out


def log_column_tolerances(summary: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """Per customer of ``summary`` (indexed alike): the largest difference summation
    order and libm can make to each column of :data:`LOG_COLUMNS` between two engines."""
    attrs = summary.attrs
    periods = _periods(summary, log)
    repeat = periods[periods["repeat"]].copy()
    previous = periods["p"].shift().loc[repeat.index].to_numpy(dtype=np.int64)
    gaps = durations(previous, repeat["p"].to_numpy(), attrs["freq"], attrs["time_unit"])
    repeat["abs_log_gap"] = np.abs(np.log(gaps))
    delta = (repeat["k"] + 1) * EPS * repeat["abs_sum"]
    clear = repeat["value"] > 2 * delta
    with np.errstate(divide="ignore", invalid="ignore"):
        repeat["log_error"] = np.where(clear, 2 * delta / (repeat["value"] - 2 * delta), np.inf)
        repeat["abs_log_value"] = np.where(clear, np.abs(np.log(repeat["value"])), 0.0)
    per = repeat.groupby("c").agg(
        n=("p", "size"), gap_logs=("abs_log_gap", "sum"), value_logs=("abs_log_value", "sum"),
        log_error=("log_error", "sum"),
    ).reindex(summary.index, fill_value=0)
    n = per["n"].to_numpy(dtype=float)
    d = np.maximum(n, 1.0)
    return pd.DataFrame(
        {
            "log_interpurchase_sum": (n + 9) * EPS * per["gap_logs"],
            "monetary_log_mean": (per["log_error"] + (n + 10) * EPS * per["value_logs"]) / d,
        },
        index=summary.index,
    )


def assert_same_log_summary(
    expected: pd.DataFrame, actual: pd.DataFrame, log: pd.DataFrame
) -> None:
    """:func:`summation.assert_same_summary` for summaries with opt-in log columns: the
    other columns as there, the log columns (in the same places, float64) with the same
    NaNs and within :func:`log_column_tolerances` of each other."""
    present = [c for c in LOG_COLUMNS if c in expected.columns]
    assert list(actual.columns) == list(expected.columns)
    assert all(actual[c].dtype == np.float64 for c in present)
    assert_same_summary(expected.drop(columns=present), actual.drop(columns=present), log)
    tolerance = log_column_tolerances(expected, log)
    for col in present:
        a, e = actual[col].to_numpy(), expected[col].to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{col}: NaNs")
        difference = np.abs(np.nan_to_num(a) - np.nan_to_num(e))
        bound = tolerance[col].to_numpy()
        worst = int(np.argmax(difference - bound))
        assert np.all(difference <= bound), (
            f"{col}: customer {expected.index.tolist()[worst]!r}: {float(a[worst])!r} "
            f"(actual) vs {float(e[worst])!r} (expected), beyond the bound {bound[worst]:.3g}"
        )
