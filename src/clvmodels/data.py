"""From a transaction log to customer summaries, and the input checks every model uses.

The summary conventions are those of the buy-till-you-die literature (Fader, Hardie
and Lee 2005, "'Counting Your Customers' the Easy Way", *Marketing Science* 24(2)):
per customer, ``frequency`` is the number of *repeat* purchase periods, ``recency``
the time from the first to the last purchase and ``T`` the time from the first
purchase to the end of observation. With the defaults (daily periods, weeks as the
time unit) the CDNOW 1/10 sample cut at 1997-09-30 reproduces the published
2,357-customer calibration data exactly.

Everything here is vectorised (factorize, sort, bincount): no Python loop runs per
customer or per transaction, so tens of millions of rows summarise in seconds.

Conventions that a user might not guess:

* Purchases in the same ``freq`` period (by default the same calendar day) are one
  purchase; their values are summed.
* ``observation_end`` (and ``calibration_end``) include their whole ``freq`` period:
  with daily periods, ``observation_end="1997-09-30"`` keeps every transaction of
  30 September. Times are measured between period starts.
* Returns and refunds (negative values) are kept: they are netted into the value of
  the period in which they occur, and a period with a net negative value still
  counts as a purchase period. Their number is recorded in ``attrs``. Remove return
  lines beforehand if they should not count as purchases.
* Nothing is dropped silently: transactions after ``observation_end`` and customers
  whose first purchase falls after the cut-off are counted in ``DataFrame.attrs``.
* Two opt-in columns serve models that need more than counts and means (existing
  outputs do not change unless asked): ``log_spend=True`` adds ``monetary_log_mean``,
  the mean natural log of the repeat purchase periods' values (each period's values
  summed first, as for ``monetary_value``; 0 without repeat purchases), which the
  transaction-level Gamma-Gamma model reads. A period whose net value is <= 0 has no
  log (nor has one whose value lies within the rounding of its sum, ``n * eps *
  sum(|x|)`` for ``n`` transactions: a refund that cancels the period's purchases
  leaves rounding noise of either sign, which would otherwise decide by the order of
  addition): such a customer's ``monetary_log_mean`` is NaN, the customer is counted in
  ``attrs["n_customers_nonpositive_repeat_period"]``, and the spend model leaves it
  out of its fit (with a count) instead of the summary refusing the whole log.
  ``regularity=True`` adds ``log_interpurchase_sum``, the sum of the natural logs of
  the times (in ``time_unit``) between consecutive purchase periods (0 without repeat
  purchases), which the (M)BG/CNBD-k models read.
* Dates are read at their wall-clock time: a UTC offset or time zone is ignored, so
  ``"2024-03-01T23:30+02:00"`` is 23:30 on 1 March, and logs that mix offsets, zones and
  naive dates need no conversion (the DuckDB and Spark engines follow the same rule).
* Dates must fall in the years 1678 to 2261 (the range of pandas timestamps); a date
  beyond, such as the placeholder ``9999-12-31``, is an error, as is a cut-off beyond.
* Empty or blank strings are missing values; ids and groups must be single values
  (not lists, dicts or tuples); values must be real numbers (not booleans or complex);
  and a customer's values must add up, in absolute value, to less than the largest
  float (about 1.8e308), so that no sum overflows to infinity. Each violation raises a
  :class:`~clvmodels.errors.DataValidationError` naming the column, the count and the
  first rows.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from clvmodels._summary_options import (
    LOG_SPEND_COLUMN,
    REGULARITY_COLUMN,
    check_log_options,
    log_attrs,
)
from clvmodels.errors import DataValidationError
from clvmodels.units import DATE_RANGE_TEXT as _DATE_RANGE_TEXT
from clvmodels.units import OFFSET_PATTERN as _OFFSET_PATTERN
from clvmodels.units import check_time_unit as _check_time_unit
from clvmodels.units import cutoff as _cutoff
from clvmodels.units import durations as _durations
from clvmodels.units import freq_base as _freq_base
from clvmodels.units import in_date_range as _in_date_range
from clvmodels.units import iso as _iso
from clvmodels.units import mean_or_zero as _mean_or_zero
from clvmodels.units import period_ordinals as _period_ordinals
from clvmodels.units import strip_offset_code as _strip_offset_code

__all__ = [
    "LOG_SPEND_COLUMN",
    "REGULARITY_COLUMN",
    "add_summary_columns",
    "calibration_holdout_split",
    "column_arrays",
    "compress",
    "compress_arrays",
    "count_distinct",
    "join_customer_data",
    "read_transactions",
    "rfm_summary",
    "validate_summary",
    "without_attrs",
]

_SUMMARY_COLUMNS = ("frequency", "recency", "T")
_SHOW = 5  # how many offending ids an error message names
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------
def _to_pandas(data: Any, context: str) -> pd.DataFrame:
    """A pandas view of ``data``; Polars (eager or lazy) and Arrow tables are converted."""
    if isinstance(data, pd.DataFrame):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        if hasattr(data, "collect") and not hasattr(data, "to_pandas"):
            data = data.collect()  # a LazyFrame
        return data.to_pandas()
    if module == "pyarrow" and hasattr(data, "to_pandas"):
        return data.to_pandas()
    raise TypeError(f"{context}: expected a pandas or Polars DataFrame, got {type(data).__name__}")


def without_attrs(data: pd.DataFrame) -> pd.DataFrame:
    """The same columns (no copy) without ``attrs``.

    pandas deep-copies a frame's ``attrs`` into every column it hands out, which
    costs more than the arithmetic of a small prediction; reading columns through
    this view skips that.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"T": [5.0]})
    >>> frame.attrs["time_unit"] = "W"
    >>> without_attrs(frame).attrs, frame.attrs
    ({}, {'time_unit': 'W'})
    """
    return pd.DataFrame(data, copy=False) if data.attrs else data


def join_customer_data(summary: pd.DataFrame, customer_data: pd.DataFrame | None) -> pd.DataFrame:
    """``summary`` with the customers' attributes (covariates) joined on by id.

    Every customer of the summary needs a row of ``customer_data`` (indexed by customer
    id); extra rows are ignored, and the summary's ``attrs`` are kept.

    Examples
    --------
    >>> import pandas as pd
    >>> summary = pd.DataFrame({"frequency": [0, 2]}, index=pd.Index([7, 9], name="id"))
    >>> table = pd.DataFrame({"gender": [1, 0, 1]}, index=[9, 7, 8])
    >>> join_customer_data(summary, table)["gender"].tolist()
    [0, 1]
    >>> join_customer_data(summary, table.drop(index=9))
    Traceback (most recent call last):
    ...
    clvmodels.errors.DataValidationError: customer_data has no row for 1 of 2 customers ...
    """
    if customer_data is None:
        return summary
    missing = ~summary.index.isin(customer_data.index)
    if missing.any():
        raise DataValidationError(
            f"customer_data has no row for {int(missing.sum())} of {len(summary)} customers "
            f"(ids are matched by value and type); first ids "
            f"{list(summary.index[missing][:_SHOW])}"
        )
    joined = summary.join(customer_data, how="left")
    joined.attrs = summary.attrs
    return joined


def column_arrays(data: pd.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The named columns of a pandas frame as float64 arrays (read through
    :func:`without_attrs`).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"frequency": [0, 2], "T": [5.0, 8.0]})
    >>> {k: v.tolist() for k, v in column_arrays(frame, ["frequency", "T"]).items()}
    {'frequency': [0.0, 2.0], 'T': [5.0, 8.0]}
    """
    arrays = _small_real_block(data, columns)
    if arrays is not None:
        return arrays
    plain = without_attrs(data)
    return {c: plain[c].to_numpy(dtype=float) for c in columns}


# Frames with at most this many values are read in one conversion (see below).
_SMALL_BLOCK = 1 << 18


def _small_real_block(frame: pd.DataFrame, columns: Sequence[Any]) -> dict[Any, np.ndarray] | None:
    """The ``columns`` of a small frame of plain real numbers as float64 arrays, from one
    conversion of the whole frame; ``None`` for any other frame (read column by column).

    A forecast hands its models thousands of small frames: pandas takes some 20 us to
    hand out each column, about what converting the whole of a few-thousand-row frame
    takes. Large frames are read column by column, so that no copy of every column is
    made at once; frames with other columns (ids, labels, dates, booleans, nullable
    types) convert to ``object`` and are read column by column too.
    """
    if frame.size > _SMALL_BLOCK or len(frame) == 0 or not frame.columns.is_unique:
        return None
    block = frame.to_numpy()
    if block.dtype.kind not in "iuf":
        return None
    try:
        positions = [frame.columns.get_loc(c) for c in columns]
    except KeyError:
        return None
    # Each column contiguous (a frame of one float dtype converts to exactly that).
    by_column = np.ascontiguousarray(block.T, dtype=np.float64)
    return {c: by_column[j] for c, j in zip(columns, positions, strict=True)}


_LONG = 60  # longest value repr shown in a message


def _shown(value: Any) -> Any:
    """A value for a message: plain Python scalars, dates as ISO text, long reprs cut."""
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    if len(text) > _LONG or "\n" in text:
        return text.replace("\n", " ")[:_LONG] + "..."
    return value


def _as_list(values: Any) -> list:
    """Plain Python scalars for readable messages (no numpy reprs)."""
    return [_shown(v) for v in list(values)[:_SHOW]]


def _prefix(context: str) -> str:
    return f"{context}: " if context else ""


def _check_columns(frame: pd.DataFrame, columns: Sequence[Any], context: str) -> None:
    """Every column named once in ``frame``; missing and repeated names are errors."""
    pre = _prefix(context)
    for col in columns:
        if not isinstance(col, Hashable):
            raise ValueError(f"{pre}a column name must be a label such as a string, got {col!r}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{pre}missing column(s) {missing}; the data has columns "
            f"{list(map(str, frame.columns))}"
        )
    if frame.columns.is_unique and not isinstance(frame.columns, pd.MultiIndex):
        return
    for col in dict.fromkeys(columns):
        selected = frame[col]
        if isinstance(selected, pd.DataFrame):
            raise DataValidationError(
                f"{pre}column '{col}' is {selected.shape[1]} columns of the data (repeated "
                "names, or a level of column labels); give each column its own name"
            )


def _is_blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _blank_mask(values: Any) -> np.ndarray:
    """Which values are empty or whitespace-only strings (a loop: use on few values)."""
    return np.fromiter((_is_blank(v) for v in values), dtype=bool, count=len(values))


_CONTAINERS = (list, tuple, dict, set, frozenset, np.ndarray, pd.Series, pd.DataFrame)


def _is_container(value: Any) -> bool:
    return isinstance(value, _CONTAINERS) or not isinstance(value, Hashable)


def _container_mask(values: Any) -> np.ndarray:
    """Which values are lists, tuples, dicts, sets, arrays or otherwise unhashable (a
    loop: use on few values)."""
    return np.fromiter((_is_container(v) for v in values), dtype=bool, count=len(values))


# --------------------------------------------------------------------------------------
# Transactions: parsing and validation
# --------------------------------------------------------------------------------------
@dataclass
class _Log:
    """A validated transaction log as arrays."""

    codes: np.ndarray  # int64 customer code per row (index into `customers`)
    customers: pd.Index  # customer ids, sorted where they can be
    dates: np.ndarray  # datetime64[us] per row
    periods: np.ndarray  # int64 `freq` period ordinal per row
    values: np.ndarray | None  # float64 per row
    groups: pd.Index | None  # group of each customer code
    n_negative: int


def _row_report(frame: pd.DataFrame, mask: np.ndarray, customer_col: str) -> str:
    rows = _as_list(frame.index[mask])
    customers = _as_list(frame[customer_col].to_numpy()[mask])
    return f"first rows {rows} (customers {customers})"


def _labels(
    frame: pd.DataFrame,
    column: str,
    what: str,
    customer_col: str,
    context: str,
    sort: bool,
) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and distinct values of an id or group column.

    Missing values (NaN, None, empty or blank strings) and containers (lists, dicts,
    tuples, sets, arrays) are errors naming the column, the count and the first rows.
    """
    pre = _prefix(context)
    series = frame[column]
    n = len(frame)
    blank_note = ""
    try:
        codes, uniques = pd.factorize(series, sort=sort)
    except TypeError:
        try:  # values of mixed, unorderable types: keep order of appearance
            codes, uniques = pd.factorize(series, sort=False)
        except TypeError:  # unhashable values: lists, dicts, sets, arrays
            codes, uniques = None, None
    if codes is None:
        bad = _container_mask(series.to_numpy(dtype=object))
    else:
        uniques = pd.Index(uniques)
        kind = pd.api.types.infer_dtype(uniques, skipna=True)
        # Checking the distinct values costs a loop over them, not over the rows.
        bad_unique = np.zeros(len(uniques), dtype=bool)
        blank_unique = np.zeros(len(uniques), dtype=bool)
        if kind == "string":
            blank_unique = np.asarray(uniques.astype(str).str.strip() == "", dtype=bool)
        elif kind.startswith("mixed") or kind == "unknown-array":
            objects = uniques.to_numpy(dtype=object)
            bad_unique = _container_mask(objects)
            blank_unique = _blank_mask(objects)
        if blank_unique.any():
            codes = np.where(np.isin(codes, np.flatnonzero(blank_unique)), -1, codes)
            blank_note = " (empty strings count as missing)"
        bad = np.isin(codes, np.flatnonzero(bad_unique)) if bad_unique.any() else None
    if bad is not None and bad.any():
        raise DataValidationError(
            f"{pre}column '{column}': {int(bad.sum())} of {n} rows hold lists, dicts or other "
            f"containers, not single {what} values; first values "
            f"{_as_list(series.to_numpy(dtype=object)[bad])}; first rows "
            f"{_as_list(frame.index[bad])}"
        )
    missing = codes < 0
    if missing.any():
        where = (
            f"first rows {_as_list(frame.index[missing])}"
            if column == customer_col
            else _row_report(frame, missing, customer_col)
        )
        raise DataValidationError(
            f"{pre}column '{column}': {int(missing.sum())} of {n} rows have no {what}; {where}"
            f"{blank_note}"
        )
    return codes.astype(np.int64), uniques


def _customer_codes(
    frame: pd.DataFrame, customer_col: str, context: str
) -> tuple[np.ndarray, pd.Index]:
    codes, customers = _labels(frame, customer_col, "customer id", customer_col, context, True)
    return codes, pd.Index(customers, name=customer_col)


def _customer_groups(
    frame: pd.DataFrame,
    group_col: str,
    codes: np.ndarray,
    customers: pd.Index,
    context: str,
) -> pd.Index:
    """The one group of each customer; several groups for a customer is an error."""
    customer_col = str(customers.name)
    gcodes, groups = _labels(frame, group_col, "group", customer_col, context, False)
    n_groups = len(groups)
    pairs = np.unique(codes * n_groups + gcodes)
    pair_customer = pairs // n_groups
    per_customer = np.bincount(pair_customer, minlength=len(customers))
    several = np.flatnonzero(per_customer > 1)
    if several.size:
        shown = {}
        for code in several[:_SHOW]:  # at most five customers, for the message only
            shown[_as_list([customers[code]])[0]] = _as_list(
                groups[pairs[pair_customer == code] % n_groups]
            )
        raise DataValidationError(
            f"{_prefix(context)}column '{group_col}': a customer's group must be constant, but "
            f"{several.size} customer(s) have several groups; first: {shown}"
        )
    group_code = np.empty(len(customers), dtype=np.int64)
    group_code[codes] = gcodes
    return pd.Index(groups.take(group_code), name=group_col)


def _vectorised_dates(values: pd.Series, date_format: str | None) -> np.ndarray | None:
    """pandas' parse of a date column at wall-clock time (NaT where unparsable), or None
    where pandas refuses the column as a whole (mixed time zones, odd objects)."""
    try:
        with warnings.catch_warnings():
            # Rows pandas cannot read in the inferred format are reported below, by row.
            warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
            parsed = pd.to_datetime(values, format=date_format, errors="coerce")
            if date_format is None and parsed.isna().any():
                # pandas infers one format from the first value; ISO 8601 strings with and
                # without a time of day ("2024-01-15", "2024-01-15 09:30") are one standard.
                iso = pd.to_datetime(values, format="ISO8601", errors="coerce")
                if iso.isna().sum() < parsed.isna().sum():
                    parsed = iso
    except (ValueError, TypeError, OverflowError):  # e.g. "Mixed timezones detected"
        return None
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    if not pd.api.types.is_datetime64_dtype(parsed.dtype):
        return None
    return parsed.to_numpy()


def _wall_clock_dates(values: np.ndarray, date_format: str | None) -> np.ndarray:
    """Dates of mixed time zones, offsets or kinds, each at its own wall-clock time.

    The slow path of :func:`_parse_dates`, for the rows the vectorised parse could not
    read: strings lose a trailing UTC offset (:data:`clvmodels.units.OFFSET_PATTERN`) and
    are parsed with ``date_format`` (its ``%z`` dropped); datetime objects lose their
    time zone. Anything else stays NaT.
    """
    out = np.full(len(values), np.datetime64("NaT", "us"))
    text = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    if text.any():
        stripped = pd.Series(values[text], dtype=object).str.strip()
        stripped = stripped.str.replace(_OFFSET_PATTERN, r"\1", regex=True)
        wall_format = _strip_offset_code(date_format)
        parsed = _vectorised_dates(stripped, wall_format)
        if parsed is None:  # still mixed (e.g. zone names): one value at a time
            parsed = np.array(
                [
                    p[0] if (p := _vectorised_dates(stripped.iloc[[i]], wall_format)) is not None
                    else np.datetime64("NaT")
                    for i in range(len(stripped))
                ],
                dtype="datetime64[us]",
            )
        out[text] = _in_range_or_nat(parsed)
    for i in np.flatnonzero(~text):
        value = values[i]
        if isinstance(value, pd.Timestamp | _dt.datetime):
            moment = pd.Timestamp(value)
            if moment.tzinfo is not None:
                moment = moment.tz_localize(None)
            out[i] = _in_range_or_nat(np.array([moment.to_datetime64()]))[0]
        elif isinstance(value, _dt.date | np.datetime64):
            out[i] = _in_range_or_nat(np.array([np.datetime64(value)]))[0]
    return out


def _calendar_dates(values: np.ndarray, date_format: str | None) -> np.ndarray:
    """Which values Python's own calendar reads as dates (ISO 8601, or ``date_format``).

    Asked only of values pandas could not parse: those it reads are real dates outside
    what pandas can hold (year 9999 with pandas 2), to be reported as out of range.
    """
    def readable(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            if date_format:
                _dt.datetime.strptime(value.strip(), date_format)
            else:
                _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return False
        return True

    return np.fromiter((readable(v) for v in values), dtype=bool, count=len(values))


def _in_range_or_nat(dates: np.ndarray) -> np.ndarray:
    """datetime64[us]; values outside the supported years become the year-1 sentinel so
    that they are reported as out of range, not as unparsable."""
    dates = np.asarray(dates)
    ok = _in_date_range(dates) | np.isnat(dates)
    out = np.where(ok, dates, np.datetime64("NaT")).astype("datetime64[us]")
    out[~ok] = _OUT_OF_RANGE
    return out


# Stands for a parsed date outside the supported years (inside datetime64[us] itself).
_OUT_OF_RANGE = np.datetime64("0001-01-01", "us")


def _parse_dates(
    frame: pd.DataFrame, date_col: str, customer_col: str, date_format: str | None, context: str
) -> np.ndarray:
    """The date column as datetime64[us] at wall-clock time.

    Missing (NaN, NaT, empty strings), unparsable and out-of-range dates are errors.
    Dates with UTC offsets or time zones keep the time as written, whatever the mix of
    offsets, zones and naive values (see :func:`clvmodels.units.strip_offset_code`).
    """
    pre = _prefix(context)
    raw = frame[date_col]
    n = len(frame)
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise DataValidationError(f"{pre}column '{date_col}' holds booleans, not dates")
    if pd.api.types.is_timedelta64_dtype(raw.dtype) or isinstance(raw.dtype, pd.PeriodDtype):
        raise DataValidationError(
            f"{pre}column '{date_col}' holds {raw.dtype} values, not dates: convert it with "
            "pandas.to_datetime (or Series.dt.to_timestamp for periods)"
        )
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        # Keep each timestamp's own wall-clock time: purchase days are local days.
        raw = raw.dt.tz_localize(None)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        if pd.api.types.is_complex_dtype(raw.dtype) or date_format is None:
            raise DataValidationError(
                f"{pre}column '{date_col}' holds numbers, not dates: convert it, or "
                "pass date_format (e.g. date_format='%Y%m%d' for 19970101)"
            )
        numbers = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers)) & (np.abs(numbers) < 2**62)
        text = np.where(whole, numbers, 0).astype(np.int64).astype(str).astype(object)
        if not whole.all():  # fractions, infinities: shown as written, and refused below
            text[~whole] = numbers[~whole].astype(str)
            text[np.isnan(numbers)] = None
        raw = pd.Series(text, index=raw.index, dtype=object)
    missing = raw.isna().to_numpy().copy()
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        dates = _in_range_or_nat(raw.to_numpy())
    else:
        parsed = _vectorised_dates(raw, date_format)
        retry = ~missing if parsed is None else np.isnat(parsed) & ~missing
        dates = (
            np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
            if parsed is None
            else _in_range_or_nat(parsed)
        )
        if retry.any():
            dates[retry] = _wall_clock_dates(raw.to_numpy(dtype=object)[retry], date_format)
    unparsed = np.isnat(dates) & ~missing
    if unparsed.any():  # empty strings are missing dates, not unparsable ones
        missing[unparsed] = _blank_mask(raw.to_numpy(dtype=object)[unparsed])
        unparsed &= ~missing
    if unparsed.any():  # pandas < 3 cannot hold year 9999 and calls it unparsable
        far_away = _calendar_dates(raw.to_numpy(dtype=object)[unparsed], date_format)
        dates[np.flatnonzero(unparsed)[far_away]] = _OUT_OF_RANGE
        unparsed[np.flatnonzero(unparsed)[far_away]] = False
    if missing.any():
        raise DataValidationError(
            f"{pre}column '{date_col}': {int(missing.sum())} of {n} rows have no date; "
            f"{_row_report(frame, missing, customer_col)}"
        )
    if unparsed.any():
        examples = _as_list(raw.to_numpy(dtype=object)[unparsed])
        hint = (
            f"with date_format={date_format!r}"
            if date_format
            else "with an inferred format; pass date_format, e.g. '%Y-%m-%d'"
        )
        raise DataValidationError(
            f"{pre}column '{date_col}': {int(unparsed.sum())} of {n} rows could not be parsed "
            f"as dates ({hint}); first values {examples}; "
            f"{_row_report(frame, unparsed, customer_col)}"
        )
    far = dates == _OUT_OF_RANGE
    if far.any():
        raise DataValidationError(
            f"{pre}column '{date_col}': {int(far.sum())} of {n} rows are dates outside "
            f"{_DATE_RANGE_TEXT}; first values {_as_list(raw.to_numpy(dtype=object)[far])}; "
            f"{_row_report(frame, far, customer_col)}"
        )
    return dates


def _real_number(value: Any) -> float:
    """One value as a float; NaN for anything that is not a real number."""
    if isinstance(value, bool | np.bool_ | complex | np.complexfloating):
        return math.nan
    if isinstance(value, str):
        value = value.strip()
    try:
        return float(value)
    except OverflowError:  # an integer beyond the float range
        return math.inf
    except (TypeError, ValueError):
        return math.nan


def _parse_values(
    frame: pd.DataFrame, value_col: str, customer_col: str, context: str
) -> np.ndarray:
    """The value column as float64; missing, infinite and non-real values are errors."""
    pre = _prefix(context)
    raw = frame[value_col]
    n = len(frame)
    dtype = raw.dtype
    kind = None if pd.api.types.is_numeric_dtype(dtype) else pd.api.types.infer_dtype(raw)
    if pd.api.types.is_bool_dtype(dtype) or kind == "boolean":
        raise DataValidationError(f"{pre}column '{value_col}' holds booleans, not values")
    if pd.api.types.is_complex_dtype(dtype) or kind == "complex":
        numbers = raw.to_numpy(dtype=np.complex128, na_value=np.nan)
        imaginary = np.imag(numbers) != 0
        detail = (
            f"{int(imaginary.sum())} of {n} rows have an imaginary part; "
            f"{_row_report(frame, imaginary, customer_col)}"
            if imaginary.any()
            else "convert the column to float"
        )
        raise DataValidationError(
            f"{pre}column '{value_col}' holds complex numbers, but values must be real: {detail}"
        )
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise DataValidationError(
            f"{pre}column '{value_col}' holds {dtype} values, not amounts"
        )
    values = None
    if kind is None:
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    elif not kind.startswith("mixed") or kind == "mixed-integer-float":
        try:
            numeric = pd.to_numeric(raw, errors="coerce")
            values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError, OverflowError):
            values = None
    if values is None:  # booleans, complex numbers, containers among numbers: each value
        values = np.fromiter(
            (_real_number(v) for v in raw.to_numpy(dtype=object)), dtype=np.float64, count=n
        )
    bad = ~np.isfinite(values)
    if bad.any():
        examples = _as_list(raw.to_numpy(dtype=object)[bad])
        raise DataValidationError(
            f"{pre}column '{value_col}': {int(bad.sum())} of {n} rows are missing, infinite "
            f"or not numbers; first values {examples}; {_row_report(frame, bad, customer_col)}"
        )
    return values


def _check_value_range(
    codes: np.ndarray, values: np.ndarray, customers: pd.Index, value_col: str, context: str
) -> None:
    """A customer's values, added up in absolute value, must stay finite.

    Otherwise a sum (a period's value, the repeat total) could overflow to infinity in
    some order of addition; the rule does not depend on the order, so every engine
    applies it alike.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        magnitude = np.bincount(codes, weights=np.abs(values), minlength=len(customers))
    over = ~np.isfinite(magnitude)
    if over.any():
        raise DataValidationError(
            f"{_prefix(context)}column '{value_col}': the values of {int(over.sum())} "
            f"customer(s) add up beyond the float range (about {np.finfo(np.float64).max:.3g}) "
            f"in absolute value, so their sums would be infinite; first customer ids "
            f"{_as_list(customers[over])}; rescale the values (e.g. to thousands)"
        )


def _prepare_log(
    transactions: Any,
    customer_col: str,
    date_col: str,
    value_col: str | None,
    group_col: str | None,
    date_format: str | None,
    freq: str,
    context: str,
) -> _Log:
    frame = _to_pandas(transactions, context)
    _freq_base(freq)
    needed = [customer_col, date_col]
    needed += [c for c in (value_col, group_col) if c is not None]
    _check_columns(frame, needed, context)
    if group_col is not None and group_col == customer_col:
        raise ValueError(f"{context}: group_col and customer_col are both {group_col!r}")
    if len(frame) == 0:
        raise DataValidationError(f"{_prefix(context)}the transaction log is empty")
    codes, customers = _customer_codes(frame, customer_col, context)
    dates = _parse_dates(frame, date_col, customer_col, date_format, context)
    values = None
    n_negative = 0
    if value_col is not None:
        values = _parse_values(frame, value_col, customer_col, context)
        _check_value_range(codes, values, customers, value_col, context)
        n_negative = int(np.count_nonzero(values < 0))
    groups = None
    if group_col is not None:
        groups = _customer_groups(frame, group_col, codes, customers, context)
    return _Log(
        codes=codes,
        customers=customers,
        dates=dates,
        periods=_period_ordinals(dates, freq),
        values=values,
        groups=groups,
        n_negative=n_negative,
    )

# --------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------
class _Pairs(NamedTuple):
    """Distinct (customer, period) pairs, sorted by customer then period."""

    codes: np.ndarray  # customer code of each pair
    periods: np.ndarray  # period ordinal of each pair
    values: np.ndarray | None  # summed value of each pair
    # Rounding bound of each summed value, n * eps * sum(|x|) over its n transactions
    # (only where asked for): a net value within it has no meaningful sign.
    noise: np.ndarray | None = None


def _distinct_periods(
    codes: np.ndarray, periods: np.ndarray, values: np.ndarray | None, *, noise: bool = False
) -> _Pairs:
    """Collapse rows into distinct (customer, period) pairs, sorted by customer then period.

    Returns the customer code, period ordinal and summed value of each pair (and, with
    ``noise``, the rounding bound of each sum).
    """
    lo, hi = int(periods.min()), int(periods.max())
    span = hi - lo + 1
    n_codes = int(codes.max()) + 1
    if n_codes * span < 2**62:
        order = np.argsort(codes * span + (periods - lo), kind="stable")
    else:  # a single int64 key would overflow
        order = np.lexsort((periods, codes))
    c, p = codes[order], periods[order]
    new_pair = np.empty(c.size, dtype=bool)
    new_pair[0] = True
    np.not_equal(c[1:], c[:-1], out=new_pair[1:])
    new_pair[1:] |= p[1:] != p[:-1]
    starts = np.flatnonzero(new_pair)
    pair_values = pair_noise = None
    if values is not None:
        pair_values = np.add.reduceat(values[order], starts)
        if noise:
            rows = np.diff(np.append(starts, c.size))
            pair_noise = rows * _EPS * np.add.reduceat(np.abs(values[order]), starts)
    return _Pairs(c[starts], p[starts], pair_values, pair_noise)


@dataclass
class _CustomerStats:
    codes: np.ndarray  # customers present, ascending code
    n_periods: np.ndarray
    first: np.ndarray
    last: np.ndarray
    repeat_value: np.ndarray | None  # summed value of the periods after the first


def _customer_stats(
    pair_codes: np.ndarray, pair_periods: np.ndarray, pair_values: np.ndarray | None
) -> _CustomerStats:
    n = pair_codes.size
    new_customer = np.empty(n, dtype=bool)
    new_customer[0] = True
    np.not_equal(pair_codes[1:], pair_codes[:-1], out=new_customer[1:])
    starts = np.flatnonzero(new_customer)
    ends = np.append(starts[1:], n) - 1
    repeat_value = None
    if pair_values is not None:
        repeat_value = np.add.reduceat(pair_values, starts) - pair_values[starts]
    return _CustomerStats(
        codes=pair_codes[starts],
        n_periods=np.diff(np.append(starts, n)),
        first=pair_periods[starts],
        last=pair_periods[ends],
        repeat_value=repeat_value,
    )


def _log_statistics(
    pairs: _Pairs,
    stats: _CustomerStats,
    freq: str,
    time_unit: str,
    *,
    log_spend: bool,
    regularity: bool,
) -> dict[str, np.ndarray]:
    """The opt-in columns :data:`LOG_SPEND_COLUMN` and :data:`REGULARITY_COLUMN`, one
    entry per customer of ``stats``, from the distinct (customer, period) pairs sorted by
    customer then period (:func:`_distinct_periods`).

    A repeat purchase period is a pair whose predecessor belongs to the same customer;
    its gap is the time since that predecessor. Sums run over the pairs in that order
    (``np.bincount``), the order of :func:`clvmodels.models.beta_geo_cnbd.log_interpurchase_sum`,
    so the regularity column equals that function's result to the last bit.
    """
    n = len(stats.codes)
    slot = np.repeat(np.arange(n), stats.n_periods)
    repeat = np.flatnonzero(pairs.codes[1:] == pairs.codes[:-1]) + 1
    columns: dict[str, np.ndarray] = {}
    if log_spend and pairs.values is not None and pairs.noise is not None:
        values = pairs.values[repeat]
        # Positive beyond the rounding of its sum: a refund that cancels a period's
        # purchases leaves 0 or rounding noise of either sign, in any engine.
        positive = values > pairs.noise[repeat]
        logs = np.log(np.where(positive, values, 1.0))
        total = np.bincount(slot[repeat], weights=logs, minlength=n)
        no_log = np.bincount(slot[repeat], weights=~positive, minlength=n) > 0
        mean = _mean_or_zero(total, stats.n_periods - 1)
        columns[LOG_SPEND_COLUMN] = np.where(no_log, np.nan, mean)
    if regularity:
        gaps = _durations(pairs.periods[repeat - 1], pairs.periods[repeat], freq, time_unit)
        columns[REGULARITY_COLUMN] = np.bincount(slot[repeat], weights=np.log(gaps), minlength=n)
    return columns


def _summary_frame(
    log: _Log,
    stats: _CustomerStats,
    end_period: int,
    freq: str,
    time_unit: str,
    customer_col: str,
    group_col: str | None,
    extra: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    frequency = stats.n_periods - 1
    columns: dict[str, Any] = {
        "frequency": frequency.astype(np.int64),
        "recency": _durations(stats.first, stats.last, freq, time_unit).astype(np.float64),
        "T": _durations(stats.first, end_period, freq, time_unit).astype(np.float64),
    }
    if stats.repeat_value is not None:
        columns["monetary_value"] = _mean_or_zero(stats.repeat_value, frequency)
    columns.update(extra or {})
    if group_col is not None and log.groups is not None:
        columns[group_col] = log.groups.take(stats.codes).to_numpy()
    index = log.customers.take(stats.codes)
    index.name = customer_col
    return pd.DataFrame(columns, index=index)


def _first_purchase_periods(log: _Log) -> np.ndarray:
    first = np.full(len(log.customers), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, log.codes, log.periods)
    return first


# --------------------------------------------------------------------------------------
# Public API: summaries
# --------------------------------------------------------------------------------------
def rfm_summary(
    transactions: Any,
    customer_col: str,
    date_col: str,
    value_col: str | None = None,
    *,
    observation_end: Any = None,
    freq: str = "D",
    time_unit: str = "W",
    group_col: str | None = None,
    date_format: str | None = None,
    log_spend: bool = False,
    regularity: bool = False,
) -> pd.DataFrame:
    """One row per customer: frequency, recency, T (and monetary value) from a transaction log.

    Parameters
    ----------
    transactions : pandas or Polars DataFrame, or path(s) to Parquet / CSV files
        One row per transaction. A path, a glob, a folder or a list of files is
        summarised out of core in DuckDB (see :mod:`clvmodels.outofcore`) with the
        same result (up to the rounding of summed values), without loading the
        transactions into memory.
    customer_col, date_col : str
        Columns holding the customer id and the transaction date. Dates may be
        datetime64, Python dates and datetimes or strings; dates with a time zone or
        UTC offset are read at their own wall-clock time, whatever the mix.
    value_col : str, optional
        Column holding the transaction value; adds ``monetary_value``. Negative
        values (returns) are netted into their period, and counted in ``attrs``.
    observation_end : date-like, optional
        End of observation; its whole ``freq`` period is included. Defaults to the
        last date in the data. Later transactions are left out and counted in
        ``attrs["n_transactions_excluded_after_end"]``.
    freq : {"D", "h", "W", "W-MON", ..., "M", "Q", "Y"}, default "D"
        Period of aggregation: purchases in one period count as one purchase
        ("W" weeks run Monday to Sunday, as in pandas).
    time_unit : {"W", "D", "h", "M", "Y"}, default "W"
        Unit of ``recency`` and ``T``: weeks are 7 days, months 365.25/12 days and
        years 365.25 days; with ``freq`` "M", "Q" or "Y" and ``time_unit`` "M" or
        "Y", times count whole calendar months.
    group_col : str, optional
        A per-customer attribute (region, channel, cohort) carried into the output;
        a customer with several groups is an error.
    date_format : str, optional
        ``strftime`` format of string (or integer) dates, e.g. ``"%Y%m%d"``.
    log_spend : bool, default False
        Add ``monetary_log_mean`` (needs ``value_col``), the statistic of the
        transaction-level Gamma-Gamma model
        (:class:`~clvmodels.models.gamma_gamma_transactions.GammaGammaTransactions`).
    regularity : bool, default False
        Add ``log_interpurchase_sum``, the statistic of the regularity models
        (:class:`~clvmodels.models.beta_geo_cnbd.BetaGeoCNBD`).

    Returns
    -------
    DataFrame
        Indexed by customer id (sorted), with

        * ``frequency``: distinct purchase periods minus one (repeat purchases);
        * ``recency``: first to last purchase period, in ``time_unit``;
        * ``T``: first purchase period to the ``observation_end`` period;
        * ``monetary_value``: mean value of the repeat purchase periods (the first
          purchase excluded), 0 where frequency is 0 — only with ``value_col``;
        * ``monetary_log_mean``: mean of the natural logs of the repeat purchase
          periods' values, 0 where frequency is 0, and NaN where a repeat period's net
          value is <= 0 (it has no log; see the module notes) — only with ``log_spend``;
        * ``log_interpurchase_sum``: sum of the natural logs of the times between
          consecutive purchase periods, in ``time_unit`` (BTYDplus's ``litt``), 0 where
          frequency is 0 — only with ``regularity``;
        * the ``group_col`` column, when given.

        ``attrs`` records ``time_unit``, ``freq``, ``observation_end`` (ISO string),
        the column names, ``n_customers``, ``n_transactions`` (rows used),
        ``n_transactions_excluded_after_end``,
        ``n_customers_first_purchase_after_end`` and ``n_negative_values``; with
        ``log_spend`` also ``n_customers_nonpositive_repeat_period`` (the repeat buyers
        whose ``monetary_log_mean`` is NaN).

    Raises
    ------
    DataValidationError
        For an empty log, missing or repeated columns, missing (or empty) customer
        ids, ids that are lists or dicts, missing, unparsable or out-of-range dates
        (years 1678 to 2261), missing, non-numeric, boolean or complex values, values
        whose sums would overflow, customers in several groups, or a log with no
        transaction up to ``observation_end``; the message names the column, the
        count and the first rows.
    ValueError
        For unsupported ``freq`` or ``time_unit``, a cut-off that is not a date, or
        ``log_spend`` without ``value_col``.

    Examples
    --------
    The calibration data of Fader, Hardie and Lee (2005): customer 1 bought three
    times, in weeks 0, 2.43 and 30.43 of a 38.86-week window, and spent $29.73 and
    $14.96 on the two repeat purchases.

    >>> from clvmodels import load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> summary.loc[1].round(3).to_dict()
    {'frequency': 2.0, 'recency': 30.429, 'T': 38.857, 'monetary_value': 22.345}
    >>> len(summary), int(summary["frequency"].sum()), summary.attrs["time_unit"]
    (2357, 2457, 'W')
    >>> summary.attrs["n_transactions_excluded_after_end"]
    1959

    The statistics of the transaction-level spend model and of the regularity models:
    customer 1's repeat purchases were worth $29.73 and $14.96, 17 and 196 days apart
    from the purchase before.

    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30", log_spend=True, regularity=True)
    >>> row = summary.loc[1, ["monetary_log_mean", "log_interpurchase_sum"]]
    >>> bool(np.isclose(row.iloc[0], (np.log(29.73) + np.log(14.96)) / 2, rtol=1e-12))
    True
    >>> bool(np.isclose(row.iloc[1], np.log(17 / 7) + np.log(196 / 7), rtol=1e-12))
    True
    """
    from clvmodels.outofcore import is_file_source, rfm_summary_duckdb

    context = "rfm_summary"
    check_log_options(value_col, log_spend, regularity, context)
    if is_file_source(transactions):
        return rfm_summary_duckdb(
            transactions, customer_col, date_col, value_col, observation_end=observation_end,
            freq=freq, time_unit=time_unit, group_col=group_col, date_format=date_format,
            log_spend=log_spend, regularity=regularity,
        )
    _check_time_unit(time_unit)
    log = _prepare_log(
        transactions, customer_col, date_col, value_col, group_col, date_format, freq, context
    )
    if observation_end is None:
        end_moment = log.dates.max()
        end_period = int(log.periods.max())
    else:
        end_moment, end_period = _cutoff(observation_end, "observation_end", date_format, freq)
    keep = log.periods <= end_period
    if not keep.any():
        raise DataValidationError(
            f"{context}: no transaction falls on or before observation_end "
            f"{_iso(end_moment)}; the first is on {_iso(log.dates.min())}"
        )
    values = None if log.values is None else log.values[keep]
    pairs = _distinct_periods(log.codes[keep], log.periods[keep], values, noise=log_spend)
    stats = _customer_stats(pairs.codes, pairs.periods, pairs.values)
    extra = _log_statistics(
        pairs, stats, freq, time_unit, log_spend=log_spend, regularity=regularity
    )
    frame = _summary_frame(
        log, stats, end_period, freq, time_unit, customer_col, group_col, extra
    )
    frame.attrs.update(
        {
            "kind": "rfm_summary",
            "time_unit": time_unit,
            "freq": freq,
            "observation_end": _iso(end_moment),
            "customer_col": customer_col,
            "date_col": date_col,
            "value_col": value_col,
            "group_col": group_col,
            "n_customers": len(frame),
            "n_transactions": int(keep.sum()),
            "n_transactions_excluded_after_end": int((~keep).sum()),
            "n_customers_first_purchase_after_end": len(log.customers) - len(frame),
            "n_negative_values": log.n_negative,
            **log_attrs(frame),
        }
    )
    return frame


def calibration_holdout_split(
    transactions: Any,
    customer_col: str,
    date_col: str,
    value_col: str | None = None,
    *,
    calibration_end: Any,
    observation_end: Any = None,
    freq: str = "D",
    time_unit: str = "W",
    group_col: str | None = None,
    date_format: str | None = None,
    log_spend: bool = False,
    regularity: bool = False,
) -> pd.DataFrame:
    """Calibration summary plus what each customer did in the holdout period.

    The calibration part has the :func:`rfm_summary` columns (``frequency``,
    ``recency``, ``T`` and, with ``value_col``, ``monetary_value``) computed on the
    transactions up to ``calibration_end``, so any model fits on it directly. The
    holdout part covers the periods after ``calibration_end`` up to and including
    ``observation_end``:

    * ``frequency_holdout``: number of distinct purchase periods in the holdout;
    * ``monetary_value_holdout``: mean value per holdout purchase period, 0 if none
      (only with ``value_col``);
    * ``duration_holdout``: length of the holdout in ``time_unit``.

    With ``log_spend`` and ``regularity`` the calibration part also has
    ``monetary_log_mean`` and ``log_interpurchase_sum`` (as in :func:`rfm_summary`, of
    the calibration transactions).

    Parameters
    ----------
    transactions, customer_col, date_col, value_col, freq, time_unit, group_col, date_format
        As in :func:`rfm_summary`.
    log_spend, regularity
        As in :func:`rfm_summary`.
    calibration_end : date-like
        Last date of the calibration period (its whole ``freq`` period included).
    observation_end : date-like, optional
        Last date of the holdout; defaults to the last date in the data.

    Returns
    -------
    DataFrame
        One row per customer whose first purchase is on or before
        ``calibration_end``. Customers who first buy later cannot be in a calibration
        summary; their number is in ``attrs["n_customers_first_purchase_after_calibration"]``
        (first purchase in the holdout) and
        ``attrs["n_customers_first_purchase_after_end"]``. ``attrs`` also records
        ``calibration_end``, ``observation_end`` and everything
        :func:`rfm_summary` records.

    Examples
    --------
    >>> from clvmodels import calibration_holdout_split, load_cdnow
    >>> split = calibration_holdout_split(
    ...     load_cdnow(), "customer_id", "date", "amount",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> split.loc[1, ["frequency", "frequency_holdout", "duration_holdout"]].round(2).tolist()
    [2.0, 1.0, 39.0]
    >>> int(split["frequency"].sum()), int(split["frequency_holdout"].sum())
    (2457, 1882)
    """
    from clvmodels.outofcore import calibration_holdout_split_duckdb, is_file_source

    context = "calibration_holdout_split"
    check_log_options(value_col, log_spend, regularity, context)
    if is_file_source(transactions):
        return calibration_holdout_split_duckdb(
            transactions, customer_col, date_col, value_col, calibration_end=calibration_end,
            observation_end=observation_end, freq=freq, time_unit=time_unit,
            group_col=group_col, date_format=date_format, log_spend=log_spend,
            regularity=regularity,
        )
    _check_time_unit(time_unit)
    log = _prepare_log(
        transactions, customer_col, date_col, value_col, group_col, date_format, freq, context
    )
    cal_moment, cal_period = _cutoff(calibration_end, "calibration_end", date_format, freq)
    if observation_end is None:
        end_moment = log.dates.max()
        end_period = int(log.periods.max())
    else:
        end_moment, end_period = _cutoff(observation_end, "observation_end", date_format, freq)
    if end_period <= cal_period:
        raise ValueError(
            f"{context}: observation_end ({_iso(end_moment)}) must fall in a later {freq!r} "
            f"period than calibration_end ({_iso(cal_moment)})"
        )
    calibration = log.periods <= cal_period
    if not calibration.any():
        raise DataValidationError(
            f"{context}: no transaction falls on or before calibration_end "
            f"{_iso(cal_moment)}; the first is on {_iso(log.dates.min())}"
        )
    in_window = log.periods <= end_period

    values = None if log.values is None else log.values[calibration]
    pairs = _distinct_periods(
        log.codes[calibration], log.periods[calibration], values, noise=log_spend
    )
    stats = _customer_stats(pairs.codes, pairs.periods, pairs.values)
    extra = _log_statistics(
        pairs, stats, freq, time_unit, log_spend=log_spend, regularity=regularity
    )
    frame = _summary_frame(
        log, stats, cal_period, freq, time_unit, customer_col, group_col, extra
    )

    known = np.zeros(len(log.customers), dtype=bool)
    known[stats.codes] = True
    holdout = in_window & ~calibration & known[log.codes]
    n_customers = len(log.customers)
    counts = np.zeros(n_customers, dtype=np.int64)
    totals = np.zeros(n_customers, dtype=np.float64)
    if holdout.any():
        values = None if log.values is None else log.values[holdout]
        pair_codes, _, pair_values, _ = _distinct_periods(
            log.codes[holdout], log.periods[holdout], values
        )
        counts = np.bincount(pair_codes, minlength=n_customers)
        if pair_values is not None:
            totals = np.bincount(pair_codes, weights=pair_values, minlength=n_customers)
    frame["frequency_holdout"] = counts[stats.codes].astype(np.int64)
    if log.values is not None:
        frame["monetary_value_holdout"] = _mean_or_zero(totals[stats.codes], counts[stats.codes])
    frame["duration_holdout"] = float(_durations(cal_period, end_period, freq, time_unit))

    first = _first_purchase_periods(log)
    frame.attrs.update(
        {
            "kind": "calibration_holdout",
            "time_unit": time_unit,
            "freq": freq,
            "calibration_end": _iso(cal_moment),
            "observation_end": _iso(end_moment),
            "customer_col": customer_col,
            "date_col": date_col,
            "value_col": value_col,
            "group_col": group_col,
            "n_customers": len(frame),
            "n_transactions": int(in_window.sum()),
            "n_transactions_calibration": int(calibration.sum()),
            "n_transactions_holdout": int(holdout.sum()),
            "n_transactions_excluded_after_end": int((~in_window).sum()),
            "n_customers_first_purchase_after_calibration": int(
                np.count_nonzero((first > cal_period) & (first <= end_period))
            ),
            "n_customers_first_purchase_after_end": int(np.count_nonzero(first > end_period)),
            "n_negative_values": log.n_negative,
            **log_attrs(frame),
        }
    )
    return frame


def read_transactions(
    transactions: Any,
    customer_col: str,
    date_col: str,
    value_col: str | None = None,
    *,
    group_col: str | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """The transaction columns as a pandas frame, from the sources :func:`rfm_summary` takes.

    For the few steps that need single transactions rather than a summary (the
    tracking check of a report). A pandas, Polars or Arrow frame is viewed as pandas;
    a path, glob, folder or list of Parquet / CSV files is read by DuckDB with the
    checks and parsing of :func:`rfm_summary` (see
    :func:`clvmodels.outofcore.read_transactions_duckdb`), and only the named columns.

    Parameters
    ----------
    transactions, customer_col, date_col, value_col, group_col, date_format
        As in :func:`rfm_summary`.

    Returns
    -------
    DataFrame
        The named columns, one row per transaction.

    Raises
    ------
    DataValidationError
        When a named column is missing (and, for files, for the problems
        :func:`rfm_summary` reports).

    Examples
    --------
    >>> from clvmodels import load_cdnow
    >>> log = read_transactions(load_cdnow(), "customer_id", "date", "amount")
    >>> list(log.columns), len(log)
    (['customer_id', 'date', 'amount'], 6919)
    """
    from clvmodels.outofcore import is_file_source, read_transactions_duckdb

    if is_file_source(transactions):
        return read_transactions_duckdb(
            transactions, customer_col, date_col, value_col, group_col=group_col,
            date_format=date_format,
        )
    frame = _to_pandas(transactions, "read_transactions")
    columns = [customer_col, date_col] + [c for c in (value_col, group_col) if c is not None]
    _check_columns(frame, columns, "read_transactions")
    return frame[columns]


# --------------------------------------------------------------------------------------
# Public API: summary validation and compression
# --------------------------------------------------------------------------------------
def _ids_of(frame: pd.DataFrame) -> np.ndarray | pd.Index:
    """Customer ids for messages: the id column where the frame has one, else the index."""
    col = frame.attrs.get("customer_col")
    if isinstance(col, Hashable) and col in frame.columns:
        return frame[col].to_numpy()
    if isinstance(frame.index, pd.RangeIndex) and "customer_id" in frame.columns:
        return frame["customer_id"].to_numpy()
    return frame.index


def add_summary_columns(
    summary: pd.DataFrame,
    transactions: Any,
    *,
    log_spend: bool = False,
    regularity: bool = False,
    date_format: str | None = None,
) -> pd.DataFrame:
    """``summary`` with the opt-in columns of :func:`rfm_summary`, from the same log.

    For a summary made without ``log_spend=True`` / ``regularity=True``: the settings
    come from its ``attrs`` (customer, date and value columns, ``freq``, ``time_unit``
    and ``calibration_end`` or ``observation_end``), and the columns are those of
    ``rfm_summary(..., log_spend=..., regularity=...)`` on ``transactions`` (a frame, or
    files read by DuckDB), so they follow the summary's conventions exactly. Each
    customer's repeat purchases in the log are checked against its ``frequency``.

    Examples
    --------
    >>> from clvmodels import load_cdnow, rfm_summary
    >>> log = load_cdnow()
    >>> summary = rfm_summary(log, "customer_id", "date", "amount",
    ...                       observation_end="1997-09-30")
    >>> add_summary_columns(summary, log, log_spend=True, regularity=True).columns.tolist()
    ['frequency', 'recency', 'T', 'monetary_value', 'monetary_log_mean', 'log_interpurchase_sum']
    """
    from clvmodels._summary_options import LOG_SPEND_COLUMN, REGULARITY_COLUMN

    context = "add_summary_columns"
    if not (log_spend or regularity):
        return summary
    attrs = summary.attrs
    needed = ("customer_col", "date_col", "freq", "time_unit") + (
        ("value_col",) if log_spend else ()
    )
    lacking = [key for key in needed if not attrs.get(key)]
    end = attrs.get("calibration_end", attrs.get("observation_end"))
    if lacking or end is None:
        raise ValueError(
            f"{context} needs a summary made by rfm_summary or calibration_holdout_split "
            f"(its attrs lack {lacking or ['observation_end']})"
        )
    extra = rfm_summary(
        transactions, attrs["customer_col"], attrs["date_col"],
        attrs.get("value_col") if log_spend else None, observation_end=end,
        freq=attrs["freq"], time_unit=attrs["time_unit"], date_format=date_format,
        log_spend=log_spend, regularity=regularity,
    )
    repeats = extra["frequency"].reindex(summary.index)
    if repeats.isna().any():
        missing = repeats.isna().to_numpy()
        raise DataValidationError(
            f"{context}: {int(missing.sum())} customers of the summary have no transactions "
            f"in this log (first ids {_as_list(summary.index[missing])})"
        )
    differ = repeats.to_numpy() != summary["frequency"].to_numpy()
    if differ.any():
        raise DataValidationError(
            f"{context}: the log gives other repeat purchases than the summary's frequency "
            f"for {int(differ.sum())} customers (first ids {_as_list(summary.index[differ])}): "
            "is it the same log?"
        )
    out = summary.copy()
    for flag, column in ((log_spend, LOG_SPEND_COLUMN), (regularity, REGULARITY_COLUMN)):
        if flag:
            out[column] = extra[column].reindex(summary.index).to_numpy(dtype=float)
    for key, value in extra.attrs.items():
        out.attrs.setdefault(key, value)
    return out


def validate_summary(
    data: Any,
    *,
    require_monetary: bool = False,
    positive_monetary: bool = False,
    context: str = "",
    require_timing: bool = True,
) -> pd.DataFrame:
    """Check a customer summary before a model uses it.

    Parameters
    ----------
    data : pandas or Polars DataFrame
        One row per customer with ``frequency``, ``recency`` and ``T`` (and
        ``monetary_value`` when ``require_monetary``), in one time unit. Customer ids
        are the index, or a column (e.g. after a round trip through Polars).
    require_monetary : bool, default False
        Also require a numeric, finite ``monetary_value`` column.
    positive_monetary : bool, default False
        Also require ``monetary_value > 0`` for every repeat buyer (a spend model's
        strict mode; by default spend models leave such customers out of their fit
        and count them).
    context : str
        Prefix for error messages, e.g. ``"BetaGeo.fit"``.

    Returns
    -------
    DataFrame
        The data as a pandas frame (the same object when it already is one),
        ``attrs`` preserved.

    Raises
    ------
    DataValidationError
        Naming the column, how many rows are wrong and the first customer ids, for:
        empty data; missing or non-numeric columns; NaN or infinite values; negative
        or non-integer frequency; negative recency; T negative, or zero for a
        customer with repeat purchases; recency > T (beyond a 1e-9 relative
        tolerance); frequency 0 with non-zero recency; non-positive
        monetary_value where frequency > 0 (with ``positive_monetary``); duplicate
        customer ids in the index.
        A customer whose first purchase falls in the last period (T = 0, no repeat
        purchases) is valid: such customers appear whenever a summary is cut at the
        last date of a log, and their likelihood contribution is simply 1.

    Examples
    --------
    >>> from clvmodels import load_cdnow, rfm_summary, validate_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date", "amount")
    >>> validate_summary(summary, require_monetary=True) is summary
    True
    >>> bad = summary.assign(recency=summary["T"] + 1)
    >>> validate_summary(bad, context="BetaGeo.fit")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clvmodels.errors.DataValidationError: BetaGeo.fit: column 'recency': 2357 of 2357 rows ...
    """
    frame = _to_pandas(data, context or "validate_summary")
    pre = _prefix(context)
    if len(frame) == 0:
        raise DataValidationError(f"{pre}the summary is empty (no customers)")
    # Spend models need only frequency and monetary value; timing columns are then
    # checked only when present.
    timing = [c for c in ("recency", "T") if require_timing or c in frame.columns]
    require_monetary = require_monetary or positive_monetary
    required = ["frequency", *timing] + (["monetary_value"] if require_monetary else [])
    _check_columns(frame, required, context)
    n = len(frame)

    def fail(column: str, mask: np.ndarray, problem: str) -> None:
        raise DataValidationError(
            f"{pre}column '{column}': {int(np.count_nonzero(mask))} of {n} rows {problem}; "
            f"first customer ids {_as_list(_ids_of(frame)[mask])}"
        )

    arrays = _small_real_block(frame, required)
    if arrays is not None:
        for col, values in arrays.items():
            if not np.isfinite(values).all():
                fail(col, ~np.isfinite(values), "are missing (NaN) or infinite")
    else:
        arrays = _checked_columns(frame, required, pre, fail)

    x = arrays["frequency"]
    if (bad := x < 0).any():
        fail("frequency", bad, "are negative")
    if (bad := np.abs(x - np.round(x)) > 1e-9).any():
        fail("frequency", bad, "are not whole numbers (frequency counts repeat purchases)")
    if len(timing) == 2:
        _check_timing(x, arrays["recency"], arrays["T"], fail)
    if positive_monetary:
        m = arrays["monetary_value"]
        if (bad := (x > 0) & (m <= 0)).any():
            fail(
                "monetary_value",
                bad,
                "are <= 0 for customers with repeat purchases (spend models need positive "
                "mean spend; drop them or net returns differently)",
            )
    if not frame.index.is_unique:
        dup = frame.index.duplicated(keep=False)
        raise DataValidationError(
            f"{pre}index: {int(dup.sum())} of {n} rows share a customer id with another row; "
            f"first duplicated ids {_as_list(pd.unique(frame.index[dup]))}"
        )
    return frame


def is_real_dtype(dtype: Any) -> bool:
    """Whether a column of this dtype holds real numbers: numeric, not boolean or complex.

    Examples
    --------
    >>> import numpy as np
    >>> is_real_dtype(np.dtype("int64")), is_real_dtype(np.dtype(bool))
    (True, False)
    """
    return (
        pd.api.types.is_numeric_dtype(dtype)
        and not pd.api.types.is_bool_dtype(dtype)
        and not pd.api.types.is_complex_dtype(dtype)
    )


def _checked_columns(
    frame: pd.DataFrame, required: Sequence[str], pre: str, fail: Callable[..., None]
) -> dict[str, np.ndarray]:
    """The required columns as float arrays, each checked to be real numbers, finite."""
    arrays: dict[str, np.ndarray] = {}
    plain = without_attrs(frame)
    for col in required:
        series = plain[col]
        if not is_real_dtype(series.dtype):
            raise DataValidationError(
                f"{pre}column '{col}' must be numeric (real numbers), got dtype {series.dtype}"
            )
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            fail(col, bad, "are missing (NaN) or infinite")
        arrays[col] = values
    return arrays


def _check_timing(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, fail: Callable[..., None]
) -> None:
    """The recency and T rules of a summary (``fail`` raises with the details)."""
    if (bad := t_x < 0).any():
        fail("recency", bad, "are negative")
    if (bad := T < 0).any():
        fail("T", bad, "are negative")
    if (bad := (T == 0) & (x > 0)).any():
        fail("T", bad, "are 0 for customers with repeat purchases")
    if (bad := t_x > T * (1 + 1e-9)).any():
        fail("recency", bad, "exceed T (recency must be <= T, in the same time unit)")
    if (bad := (x == 0) & (t_x != 0)).any():
        fail("recency", bad, "are non-zero although frequency is 0 (no repeat purchase)")


def compress(
    data: Any,
    columns: Sequence[str] = _SUMMARY_COLUMNS,
    extra: Sequence[str] = (),
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Collapse identical rows into weighted distinct rows (sufficient statistics).

    Customers with the same ``frequency``, ``recency`` and ``T`` contribute the same
    likelihood term, so a model can fit on the distinct rows with their counts as
    weights; at daily resolution the distinct rows stay few whatever the number of
    customers.

    Parameters
    ----------
    data : pandas or Polars DataFrame
        Summary frame.
    columns : sequence of str, default ("frequency", "recency", "T")
        Columns whose values define identical rows.
    extra : sequence of str
        Further columns in the key, e.g. ``"monetary_value"`` or a group column.

    Returns
    -------
    unique_rows : DataFrame
        The distinct rows of ``[*columns, *extra]``, in order of first appearance,
        with a fresh ``RangeIndex``.
    weights : ndarray of float64
        Number of input rows behind each distinct row.
    inverse : ndarray of intp
        For each input row, the position of its distinct row, so that
        ``unique_rows.iloc[inverse]`` rebuilds the input and per-row results map
        back with ``result[inverse]``.

    Examples
    --------
    >>> from clvmodels import compress, load_cdnow, rfm_summary
    >>> summary = rfm_summary(load_cdnow(), "customer_id", "date",
    ...                       observation_end="1997-09-30")
    >>> rows, weights, inverse = compress(summary)
    >>> len(summary), len(rows), int(weights.sum())
    (2357, 1016, 2357)
    >>> bool((rows.iloc[inverse].to_numpy() == summary[["frequency", "recency", "T"]]
    ...       .to_numpy()).all())
    True
    """
    frame = _to_pandas(data, "compress")
    columns = [columns] if isinstance(columns, str) else columns
    extra = [extra] if isinstance(extra, str) else extra
    cols = list(dict.fromkeys([*columns, *extra]))
    if not cols:
        raise ValueError("compress needs at least one column")
    _check_columns(frame, cols, "compress")
    n = len(frame)
    if n == 0:
        return (
            frame[cols].iloc[:0].reset_index(drop=True),
            np.zeros(0, dtype=np.float64),
            np.zeros(0, dtype=np.intp),
        )
    for col in cols:
        kind = pd.api.types.infer_dtype(frame[col], skipna=True)
        if kind.startswith("mixed") or kind == "unknown-array":
            bad = _container_mask(frame[col].to_numpy(dtype=object))
            if bad.any():
                raise DataValidationError(
                    f"compress: column '{col}': {int(bad.sum())} of {n} rows hold lists, dicts "
                    f"or other containers, not single values; first rows "
                    f"{_as_list(frame.index[bad])}"
                )
    first, weights, inverse = compress_arrays([frame[col] for col in cols])
    unique_rows = frame[cols].iloc[first].reset_index(drop=True)
    return unique_rows, weights, inverse


def compress_arrays(
    columns: Sequence[np.ndarray | pd.Series],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The array-level core of :func:`compress`.

    Parameters
    ----------
    columns : sequence of equally long arrays
        The key columns.

    Returns
    -------
    first : ndarray of intp
        Position of the first row of each distinct key, in order of first appearance.
    weights : ndarray of float64
        Number of rows behind each distinct key.
    inverse : ndarray of intp
        For each row, the position of its distinct key.

    Examples
    --------
    >>> first, weights, inverse = compress_arrays([np.array([1, 2, 1]), np.array([5, 5, 5])])
    >>> first.tolist(), weights.tolist(), inverse.tolist()
    ([0, 1], [2.0, 1.0], [0, 1, 0])
    """
    n = len(columns[0])
    # Hash-factorize each column (NaN is a value of its own), then fold the codes into
    # one integer key; hashing is linear where sorting whole rows would not be.
    key = np.zeros(n, dtype=np.int64)
    cardinality = 1
    for column in columns:
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        k = max(len(uniques), 1)
        if cardinality * k >= 2**62:
            key, seen = pd.factorize(key)
            cardinality = len(seen)
        key = key * k + codes
        cardinality *= k
    inverse, seen = pd.factorize(key)
    weights = np.bincount(inverse, minlength=len(seen)).astype(np.float64)
    # Codes are numbered in order of first appearance, so a row holds a new code
    # exactly where the running maximum of the codes grows.
    running = np.maximum.accumulate(inverse)
    first = np.flatnonzero(np.diff(running, prepend=-1) > 0)
    return first, weights, inverse.astype(np.intp)


def count_distinct(
    columns: Sequence[np.ndarray],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of equally long numeric columns and how often each occurs.

    A leaner sibling of :func:`compress_arrays` for fitting, which needs neither the
    inverse map nor first-appearance order: the distinct rows come sorted by key.

    Parameters
    ----------
    columns : sequence of equally long numeric arrays
        The key columns.

    Returns
    -------
    uniques : list of ndarray
        One array per input column, holding the distinct rows' values.
    counts : ndarray of float64
        Number of input rows behind each distinct row.

    Examples
    --------
    >>> uniques, counts = count_distinct([np.array([1.0, 2.0, 1.0]), np.array([5, 5, 5])])
    >>> [u.tolist() for u in uniques], counts.tolist()
    ([[1.0, 2.0], [5, 5]], [2.0, 1.0])
    """
    n = len(columns[0])
    codes, levels = [], []
    for column in columns:
        values = np.asarray(column)
        hashable = values
        if values.dtype.kind == "f" and values.itemsize == 8 and not np.isnan(values).any():
            # Integer hashing is ~3x faster than float hashing; adding 0.0 maps -0.0
            # onto 0.0 so equal floats share one bit pattern.
            hashable = (values + 0.0).view(np.int64)
        code, seen = pd.factorize(hashable, use_na_sentinel=False)
        codes.append(code)
        levels.append(np.asarray(seen).view(values.dtype) if hashable is not values
                      else np.asarray(seen, dtype=values.dtype))
    sizes = [max(len(level), 1) for level in levels]
    cardinality = math.prod(sizes)
    if n == 0 or cardinality > 4 * n:
        first, counts, _ = compress_arrays(columns)
        return [np.asarray(column)[first] for column in columns], counts
    # Few enough combinations to count them densely: no second hashing pass.
    key = np.zeros(n, dtype=np.int64)
    for code, size in zip(codes, sizes, strict=True):
        key = key * size + code
    dense = np.bincount(key, minlength=cardinality)
    present = np.flatnonzero(dense)
    uniques: list[np.ndarray] = [np.empty(0)] * len(columns)
    rest = present
    for j in range(len(columns) - 1, -1, -1):
        rest, code = np.divmod(rest, sizes[j])
        uniques[j] = levels[j][code]
    return uniques, dense[present].astype(np.float64)
