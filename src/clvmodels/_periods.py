"""Period and time-unit conventions shared by the in-memory and out-of-core summaries.

``freq`` is the period of aggregation (purchases in one period count once); the time
unit is what recency and T are measured in. Both engines (pandas in
:mod:`clvmodels.data`, DuckDB in :mod:`clvmodels.outofcore`, and Spark) use these
definitions, so their summaries agree exactly.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

# Exact lengths in hours, so that e.g. days -> weeks is a single correctly rounded division.
UNIT_HOURS = {"h": 1.0, "D": 24.0, "W": 168.0, "M": 730.5, "Y": 8766.0}
# Periods of fixed length (hours) and calendar periods (months).
FIXED_PERIOD_HOURS = {"h": 1.0, "D": 24.0, "W": 168.0}
CALENDAR_PERIOD_MONTHS = {"M": 1, "Q": 3, "Y": 12}
WEEK_ANCHORS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def freq_base(freq: str) -> str:
    """Validate ``freq`` and return its base unit ("h", "D", "W", "M", "Q" or "Y")."""
    if not isinstance(freq, str):
        raise ValueError(f"freq must be a string, got {freq!r}")
    if freq in ("h", "D", "W", "M", "Q", "Y"):
        return freq
    if freq.startswith("W-") and freq[2:] in WEEK_ANCHORS:
        return "W"
    raise ValueError(
        f"freq={freq!r} is not supported: use 'h', 'D', 'W' (or an anchored week such as "
        "'W-MON'), 'M', 'Q' or 'Y'"
    )


def check_time_unit(time_unit: str) -> None:
    if time_unit not in UNIT_HOURS:
        raise ValueError(
            f"time_unit={time_unit!r} is not supported: use one of {list(UNIT_HOURS)} "
            "(hours, days, weeks, months of 365.25/12 days, years of 365.25 days)"
        )


def iso(moment: np.datetime64) -> str:
    stamp = pd.Timestamp(moment)
    if stamp == stamp.normalize():
        return stamp.date().isoformat()
    return stamp.isoformat()


def mean_or_zero(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    out = np.zeros(total.shape, dtype=np.float64)
    np.divide(total, count, out=out, where=count > 0)
    return out


def period_ordinals(dates: np.ndarray, freq: str) -> np.ndarray:
    """Integer index of the ``freq`` period holding each datetime64 value (pandas'
    period ordinal, the integer a SQL engine must match)."""
    base = freq_base(freq)
    if base == "D":
        return dates.astype("datetime64[D]").astype(np.int64)
    if base == "h":
        return dates.astype("datetime64[h]").astype(np.int64)
    return pd.DatetimeIndex(dates).to_period(freq).asi8.astype(np.int64)


def period_ordinal(moment: np.datetime64, freq: str) -> int:
    """:func:`period_ordinals` of one timestamp."""
    return int(period_ordinals(np.array([moment], dtype="datetime64[us]"), freq)[0])


def _period_start_hours(ordinals: np.ndarray, freq: str) -> np.ndarray:
    """Start of calendar periods (months, quarters, years) in hours since the epoch."""
    starts = pd.PeriodIndex.from_ordinals(np.asarray(ordinals), freq=freq).to_timestamp(how="start")
    return (starts.to_numpy() - np.datetime64(0, "s")) / np.timedelta64(1, "h")


def durations(start: np.ndarray, end: np.ndarray | int, freq: str, time_unit: str) -> np.ndarray:
    """Time from period ``start`` to period ``end`` (ordinals) in ``time_unit``."""
    base = freq_base(freq)
    steps = np.asarray(end, dtype=np.int64) - np.asarray(start, dtype=np.int64)
    if base in FIXED_PERIOD_HOURS:
        return steps * FIXED_PERIOD_HOURS[base] / UNIT_HOURS[time_unit]
    if time_unit in ("M", "Y"):
        # Calendar periods in calendar units: whole months, exactly.
        months = steps * CALENDAR_PERIOD_MONTHS[base]
        return months / (1.0 if time_unit == "M" else 12.0)
    start_b, end_b = np.broadcast_arrays(np.asarray(start), np.asarray(end))
    hours = _period_start_hours(end_b.ravel(), freq) - _period_start_hours(start_b.ravel(), freq)
    return (hours / UNIT_HOURS[time_unit]).reshape(start_b.shape)


def cutoff(value: Any, name: str, date_format: str | None, freq: str) -> tuple[np.datetime64, int]:
    """A user-given cut-off date as datetime64[us] and as a ``freq`` period ordinal."""
    try:
        if isinstance(value, str) and date_format is not None:
            try:
                stamp = pd.Timestamp(value)
            except ValueError:
                stamp = pd.to_datetime(value, format=date_format)
        elif isinstance(value, _dt.date | _dt.datetime | np.datetime64 | str | pd.Timestamp):
            stamp = pd.Timestamp(value)
        else:
            raise TypeError(type(value).__name__)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name}={value!r} is not a date ({err})") from err
    if stamp is pd.NaT:
        raise ValueError(f"{name} is missing (NaT)")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    moment = np.datetime64(stamp.to_datetime64(), "us")
    return moment, period_ordinal(moment, freq)
