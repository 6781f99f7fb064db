"""Time units, period lengths and calendar settings: the one place that knows them.

Two kinds of time appear in clvmodels, and they are never guessed:

* the **time unit** of a summary (``"h"``, ``"D"``, ``"W"``, ``"M"``, ``"Y"``): what
  ``recency``, ``T`` and every model horizon ``t`` are measured in. A summary records
  it in ``DataFrame.attrs["time_unit"]`` and a fitted model in ``time_unit_``;
* **calendar settings** of a forecast: ``horizon`` periods of length ``period``
  (``"M"``, ``"30D"``, ``"4W"`` ...), discounted at ``discount_rate`` per period. They
  are converted to the summary's time unit here, by :func:`period_length`.

A month is a twelfth of a Julian year (365.25 / 12 days) and a quarter a quarter of
it, so months mean the same thing whatever the unit of the data (lifetimes' month is
30 days for daily data but 4.345 weeks for weekly data).

The summary conventions shared by the pandas (:mod:`clvmodels.data`), DuckDB
(:mod:`clvmodels.outofcore`) and Spark engines are here too: ``freq`` is the period
of aggregation (purchases in one ``freq`` period count once), and period ordinals
and durations are computed by one implementation, so the engines agree.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._validation import float_or_nan

__all__ = [
    "PERIOD_DAYS",
    "TIME_UNIT_DAYS",
    "Calendar",
    "period_length",
    "period_name",
    "resolve_time_unit",
    "unit_name",
]

# Exact lengths in hours, so that e.g. days -> weeks is a single correctly rounded division.
UNIT_HOURS = {"h": 1.0, "D": 24.0, "W": 168.0, "M": 730.5, "Y": 8766.0}
#: Length of each supported ``time_unit`` in days (a month is 365.25 / 12 days).
TIME_UNIT_DAYS: dict[str, float] = {unit: hours / 24.0 for unit, hours in UNIT_HOURS.items()}
#: Length of each period code in days: the time units and the quarter.
PERIOD_DAYS: dict[str, float] = {**TIME_UNIT_DAYS, "Q": 365.25 / 4}
# Periods of fixed length (hours) and calendar periods (months).
FIXED_PERIOD_HOURS = {"h": 1.0, "D": 24.0, "W": 168.0}
CALENDAR_PERIOD_MONTHS = {"M": 1, "Q": 3, "Y": 12}
WEEK_ANCHORS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
# A trailing UTC offset ("+02:00", "Z") after a time of day, as a regex that Python, DuckDB
# and Spark read alike. Every engine drops it and keeps the time as written (the wall-clock
# rule, see :func:`strip_offset_code`).
OFFSET_PATTERN = r"(\d{2}:\d{2}(:\d{2}(\.\d+)?)?)\s*(Z|[+-]\d{2}(:?\d{2})?)$"
# Transaction dates a summary accepts: the years FIRST_YEAR to LAST_YEAR, inside the range
# of pandas' nanosecond timestamps (1677-09-21 to 2262-04-11), so that every engine can
# represent them. Dates beyond are placeholders ("9999-12-31", "0001-01-01") or typing errors.
FIRST_YEAR = 1678
LAST_YEAR = 2261
DATE_MIN = np.datetime64(f"{FIRST_YEAR}-01-01", "us")
DATE_END = np.datetime64(f"{LAST_YEAR + 1}-01-01", "us")  # exclusive
DATE_RANGE_TEXT = f"the supported years {FIRST_YEAR} to {LAST_YEAR}"

_UNIT_WORDS = {"h": "hour", "D": "day", "W": "week", "M": "month", "Q": "quarter", "Y": "year"}
_PERIOD_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*([A-Za-z]+)\s*$")


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------
def unit_name(unit: str | None, *, plural: bool = True) -> str:
    """The English name of a time unit or period code.

    Examples
    --------
    >>> unit_name("W"), unit_name("M", plural=False), unit_name(None)
    ('weeks', 'month', 'time units')
    """
    word = _UNIT_WORDS.get(str(unit)) if unit is not None else None
    if word is None:
        return "time units" if plural else "time unit"
    return f"{word}s" if plural else word


def period_name(period: str) -> str:
    """A readable name of a period code: ``"M"`` -> ``"month"``, ``"30D"`` -> ``"30 days"``.

    Examples
    --------
    >>> period_name("M"), period_name("30D"), period_name("4W")
    ('month', '30 days', '4 weeks')
    """
    multiple, base = _parse_period(period)
    if multiple is None:
        return unit_name(base, plural=False)
    return f"{multiple:g} {unit_name(base, plural=multiple != 1)}"


def check_time_unit(time_unit: Any) -> str:
    """Return ``time_unit`` if it is supported, else raise a ValueError saying which are."""
    if not isinstance(time_unit, str) or time_unit not in UNIT_HOURS:
        raise ValueError(
            f"time_unit={time_unit!r} is not supported: use one of {list(UNIT_HOURS)} "
            "(hours, days, weeks, months of 365.25/12 days, years of 365.25 days)"
        )
    return time_unit


# --------------------------------------------------------------------------------------
# Calendar settings of a forecast
# --------------------------------------------------------------------------------------
def _parse_period(period: Any) -> tuple[float | None, str]:
    if not isinstance(period, str) or (match := _PERIOD_RE.match(period)) is None:
        raise ValueError(_period_message(period))
    multiple, base = match.groups()
    if base not in PERIOD_DAYS:
        raise ValueError(_period_message(period))
    factor = float(multiple) if multiple else None
    if factor is not None and not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"period={period!r}: the multiple must be positive")
    return factor, base


def _period_message(period: Any) -> str:
    return (
        f"period={period!r} is not supported: use 'D', 'W', 'M' (365.25/12 days), 'Q', 'Y' "
        "or 'h', optionally with a multiple such as '30D' or '4W'"
    )


def period_length(period: str, time_unit: str) -> float:
    """Length of one period in ``time_unit``.

    Parameters
    ----------
    period : str
        "h", "D", "W", "M" (365.25/12 days), "Q" (365.25/4 days) or "Y" (365.25
        days), optionally preceded by a multiple: "30D" is a 30-day month (the month
        of lifetimes' daily CLV), "4W" four weeks.
    time_unit : str
        Unit of the summary's ``recency`` and ``T`` (see :func:`clvmodels.rfm_summary`).

    Examples
    --------
    >>> period_length("M", "D")
    30.4375
    >>> period_length("30D", "D"), period_length("2W", "D")
    (30.0, 14.0)
    """
    multiple, base = _parse_period(period)
    check_time_unit(time_unit)
    return (multiple or 1.0) * PERIOD_DAYS[base] / TIME_UNIT_DAYS[time_unit]


# A horizon this long (in periods) is almost certainly a mistake (10**6 months), and its
# cost grows with it: refuse it rather than run for hours.
MAX_HORIZON_PERIODS = 10_000


@dataclass(frozen=True)
class Calendar:
    """Calendar settings of a forecast, checked once: ``horizon`` periods of length
    ``period``, discounted at ``discount_rate`` per period.

    Every public function that forecasts over calendar time takes these three
    settings under these names; this class converts them to a summary's time unit.

    Examples
    --------
    >>> cal = Calendar(horizon=3, period="M", discount_rate=0.01)
    >>> cal.period_ends("W").round(3).tolist()
    [4.348, 8.696, 13.045]
    >>> cal.discount_factors().round(4).tolist()
    [0.9901, 0.9803, 0.9706]
    """

    horizon: int = 12
    period: str = "M"
    discount_rate: float = 0.01

    def __post_init__(self) -> None:
        horizon = self.horizon
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer | float):
            raise ValueError(f"horizon must be a whole number of periods, got {horizon!r}")
        if isinstance(horizon, float) and not (math.isfinite(horizon) and horizon.is_integer()):
            raise ValueError(f"horizon must be a whole number of periods, got {horizon!r}")
        if int(horizon) < 1:
            raise ValueError(f"horizon must be at least 1 period, got {horizon!r}")
        if int(horizon) > MAX_HORIZON_PERIODS:
            raise ValueError(
                f"horizon={horizon!r} periods is beyond the supported {MAX_HORIZON_PERIODS:,}: "
                "use a longer period (e.g. period='Y') for long horizons"
            )
        object.__setattr__(self, "horizon", int(horizon))
        _parse_period(self.period)
        rate = float_or_nan(self.discount_rate)
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(
                "discount_rate must be a finite non-negative rate per period, got "
                f"{self.discount_rate!r}"
            )
        object.__setattr__(self, "discount_rate", rate)

    def period_length(self, time_unit: str) -> float:
        """Length of one period in ``time_unit``."""
        return period_length(self.period, time_unit)

    def length(self, time_unit: str) -> float:
        """The whole horizon in ``time_unit``."""
        return self.horizon * self.period_length(time_unit)

    def period_ends(self, time_unit: str) -> np.ndarray:
        """End of each period, ``1 .. horizon`` periods from now, in ``time_unit``."""
        return self.period_length(time_unit) * np.arange(1, self.horizon + 1, dtype=float)

    def discount_factors(self) -> np.ndarray:
        """``1 / (1 + discount_rate)^k`` for the periods ``k = 1 .. horizon``."""
        return (1.0 + self.discount_rate) ** -np.arange(1, self.horizon + 1, dtype=float)

    def describe(self) -> str:
        """E.g. ``"12 months at 1% a month"``."""
        name = period_name(self.period)
        plural = name if self.horizon == 1 else _plural(name)
        return f"{self.horizon} {plural} at {self.discount_rate:.4g} a {name}"


def _plural(name: str) -> str:
    return name if name.endswith("s") else f"{name}s"


def resolve_time_unit(
    data_unit: str | None,
    *,
    models: Iterable[Any] = (),
    time_unit: str | None = None,
    context: str = "",
) -> str:
    """The one time unit of a summary and the models used on it; never a guess.

    Parameters
    ----------
    data_unit : str or None
        The unit the summary records (``attrs["time_unit"]``).
    models : iterable of fitted models
        Their ``time_unit_`` (None where unknown) must agree with each other and the data.
    time_unit : str, optional
        The user's statement of the unit, for a summary that records none; it may not
        contradict a recorded one.
    context : str
        Prefix of error messages (the calling function).

    Raises
    ------
    ValueError
        Where units disagree, or where none is known and a unit would have to be guessed.

    Examples
    --------
    >>> resolve_time_unit("W")
    'W'
    >>> resolve_time_unit(None, time_unit="D")
    'D'
    """
    prefix = f"{context}: " if context else ""
    model_units = {
        type(m).__name__: u for m in models if (u := getattr(m, "time_unit_", None)) is not None
    }
    if len(set(model_units.values())) > 1:
        raise ValueError(
            f"{prefix}the models were fitted on different time units ({model_units}); fit them "
            "on the same summary"
        )
    if data_unit and time_unit and data_unit != time_unit:
        raise ValueError(
            f"{prefix}time_unit={time_unit!r} contradicts the summary, which records "
            f"time_unit={data_unit!r}"
        )
    unit = data_unit or time_unit
    model_unit = next(iter(model_units.values()), None)
    if unit is None:
        if model_unit is None:
            raise ValueError(
                f"{prefix}the summary records no time unit (attrs['time_unit']) and neither do "
                "the models, so times cannot be converted: pass time_unit= (e.g. 'W' if "
                "recency and T are in weeks)"
            )
        raise ValueError(
            f"{prefix}the summary records no time unit (attrs['time_unit']); the models were "
            f"fitted in {model_unit!r}: pass time_unit={model_unit!r} if that is the unit of "
            "this summary"
        )
    check_time_unit(unit)
    if model_unit and model_unit != unit:
        raise ValueError(
            f"{prefix}the models were fitted on a summary in {model_unit!r} but this summary is "
            f"in {unit!r}: summarise the data in the models' unit"
        )
    return unit


# --------------------------------------------------------------------------------------
# Summary periods (``freq``) shared by the pandas, DuckDB and Spark engines
# --------------------------------------------------------------------------------------
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
    """A user-given cut-off date as datetime64[us] and as a ``freq`` period ordinal.

    A date with a UTC offset or a time zone is read at its own wall-clock time, as the
    transactions are; a date outside the years ``FIRST_YEAR`` to ``LAST_YEAR`` is refused.

    Examples
    --------
    >>> moment, ordinal = cutoff("1997-09-30T23:30:00+02:00", "observation_end", None, "D")
    >>> str(moment), ordinal
    ('1997-09-30T23:30:00.000000', 10134)
    >>> cutoff("9999-12-31", "observation_end", None, "D")
    Traceback (most recent call last):
    ...
    ValueError: observation_end='9999-12-31' is outside the supported years 1678 to 2261
    """
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
    except (ValueError, TypeError, OverflowError) as err:
        reason = " ".join(str(err).split())  # one line, whatever the parser said
        raise ValueError(f"{name}={value!r} is not a date ({reason})") from err
    if stamp is pd.NaT:
        raise ValueError(f"{name} is missing (NaT)")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    moment = stamp.to_datetime64()
    if not in_date_range(np.array([moment]))[0]:
        raise ValueError(f"{name}={value!r} is outside {DATE_RANGE_TEXT}")
    moment = np.datetime64(moment, "us")
    return moment, period_ordinal(moment, freq)


def in_date_range(dates: np.ndarray) -> np.ndarray:
    """Whether each datetime64 value lies in the years ``FIRST_YEAR`` to ``LAST_YEAR``
    (NaT: False).

    The comparison runs in the array's own unit, so a far date cannot overflow on the way.

    Examples
    --------
    >>> in_date_range(np.array(["2024-05-01", "9999-12-31", "NaT"], dtype="datetime64[s]"))
    array([ True, False, False])
    """
    dates = np.asarray(dates)
    lo, hi = DATE_MIN.astype(dates.dtype), DATE_END.astype(dates.dtype)
    return (dates >= lo) & (dates < hi)


def strip_offset_code(date_format: str | None) -> str | None:
    """``date_format`` without a trailing UTC offset code (``%z``), for wall-clock parsing.

    The wall-clock rule: a date written with a UTC offset or time zone is read at the
    time written, ignoring the offset, in every engine (pandas, DuckDB, Spark). A
    purchase at 23:30+02:00 happened on the customer's own day, and logs that mix
    offsets (daylight saving time, several shops) give no error and no day shifts. The
    engines strip the offset from the text (:data:`OFFSET_PATTERN`) and parse the rest
    with this format.

    Examples
    --------
    >>> strip_offset_code("%Y-%m-%d %H:%M:%S %z"), strip_offset_code("%d.%m.%Y")
    ('%Y-%m-%d %H:%M:%S', '%d.%m.%Y')
    """
    if date_format is None:
        return None
    text = date_format.rstrip()
    if text.endswith("%z") and not text.endswith("%%z"):
        return text[:-2].rstrip()
    return date_format


def week_offset(freq: str) -> int:
    """``c`` such that ``floor((epoch_day + c) / 7) + 1`` is pandas' weekly period ordinal.

    A week "W-XXX" ends on XXX and starts the day after; 1970-01-01 was a Thursday
    (weekday 3), so day ``d`` starts a week when ``(d + 3 - start) % 7 == 0``.
    """
    anchor = "SUN" if freq == "W" else freq[2:]
    start = (WEEK_ANCHORS.index(anchor) + 1) % 7
    return (3 - start) % 7
