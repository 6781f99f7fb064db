"""Customer summaries and CLV scoring on Apache Spark, for logs beyond one machine.

The division of labour follows the shape of the problem:

* the **summary** is one group-by over the transactions, run as a Spark job
  (:func:`rfm_summary_spark`, :func:`calibration_holdout_split_spark`);
* **fitting** runs on sufficient statistics: customers with the same
  ``(frequency, recency, T)`` contribute the same likelihood term, so
  :func:`compress` collects only the weighted distinct rows (a few hundred thousand at
  most, at daily resolution, whatever the number of customers) and any clvmodels
  model fits on them on the driver;
* **scoring** is embarrassingly parallel: :func:`score_spark` applies the
  single-machine CLV code (:class:`clvmodels.clv.CLVScorer`) to every partition
  with ``mapInPandas``, all partitions sharing one set of parameter draws made on the
  driver, so every customer gets exactly the numbers the single-machine path gives.

The summaries follow :func:`clvmodels.rfm_summary` and
:func:`clvmodels.calibration_holdout_split` (same columns, same validation errors),
with the customer id as a column instead of an index. What pandas keeps in
``DataFrame.attrs`` (time unit, cut-offs, counts of excluded rows and customers)
travels as metadata of the summary columns; :func:`summary_attrs` reads it and
:func:`to_pandas` collects a summary into the exact frame of the pandas path.

Calendar days are those of the Spark session time zone
(``spark.sql.session.timeZone``) for ``TIMESTAMP`` columns, and as written for
``TIMESTAMP_NTZ`` and ``DATE`` columns and for text dates, whose UTC offsets are
ignored (the wall-clock rule of the pandas path). Bad input is refused as in the pandas
path (missing or blank ids, array or binary columns, unparsable dates or dates outside
the years 1678 to 2261, non-numeric values, sums that would overflow, repeated column
names), one line naming the column, the count and the first customers.
``date_format`` takes the ``strftime`` codes of the pandas path (``"%Y%m%d"``),
translated to Spark's datetime patterns.

Needs the ``spark`` extra (``pip install clvmodels[spark]``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clvmodels._summary_options import (
    LOG_SPEND_COLUMN,
    NONPOSITIVE_ATTR,
    REGULARITY_COLUMN,
    check_log_options,
)
from clvmodels.errors import DataValidationError
from clvmodels.units import CALENDAR_PERIOD_MONTHS as _CALENDAR_PERIOD_MONTHS
from clvmodels.units import (
    DATE_RANGE_TEXT,
    FIRST_YEAR,
    LAST_YEAR,
    OFFSET_PATTERN,
    check_time_unit,
    cutoff,
    freq_base,
    iso,
    period_ordinal,
    resolve_time_unit,
    strip_offset_code,
    week_offset,
)
from clvmodels.units import FIXED_PERIOD_HOURS as _FIXED_PERIOD_HOURS
from clvmodels.units import UNIT_HOURS as _UNIT_HOURS

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

    from clvmodels.models.base import SpendModel, TransactionModel

__all__ = [
    "calibration_holdout_split_spark",
    "compress",
    "rfm_summary_spark",
    "score_spark",
    "spark_datetime_pattern",
    "summary_attrs",
    "to_pandas",
]

_EPS = float(np.finfo(np.float64).eps)
_SHOW = 5
_META_KEY = "clvmodels"
_SUMMARY_COLUMNS = ("frequency", "recency", "T")


def _functions():
    try:
        from pyspark.sql import functions as F
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "clvmodels.spark needs pyspark: pip install 'clvmodels[spark]'"
        ) from err
    return F


# --------------------------------------------------------------------------------------
# Parsing columns
# --------------------------------------------------------------------------------------
_STRFTIME_TO_SPARK = {
    "Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm",
    "S": "ss", "f": "SSSSSS", "p": "a", "b": "MMM", "B": "MMMM", "a": "EEE", "A": "EEEE",
    "j": "DDD", "z": "Z", "Z": "z",
}


def spark_datetime_pattern(date_format: str) -> str:
    """Translate a ``strftime`` format (as the pandas path takes) to a Spark pattern.

    Examples
    --------
    >>> spark_datetime_pattern("%Y-%m-%d %H:%M")
    'yyyy-MM-dd HH:mm'
    >>> spark_datetime_pattern("%d.%m.%Y T")
    "dd.MM.yyyy' T'"
    """
    out: list[str] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            text = "".join(literal).replace("'", "''")
            # Letters are pattern symbols in Spark; quote runs that hold any.
            out.append(f"'{text}'" if any(c.isalpha() for c in text) else text)
            literal.clear()

    i = 0
    while i < len(date_format):
        char = date_format[i]
        if char == "%" and i + 1 < len(date_format):
            code = date_format[i + 1]
            if code == "%":
                literal.append("%")
            elif code in _STRFTIME_TO_SPARK:
                flush()
                out.append(_STRFTIME_TO_SPARK[code])
            else:
                raise ValueError(
                    f"date_format={date_format!r}: %{code} has no Spark equivalent here; use "
                    f"codes among {sorted('%' + c for c in _STRFTIME_TO_SPARK)}"
                )
            i += 2
            continue
        literal.append(char)
        i += 1
    flush()
    return "".join(out)


def _type_name(df: DataFrame, column: str) -> str:
    return df.schema[column].dataType.typeName()


_NUMERIC_TYPES = ("byte", "short", "integer", "long", "float", "double", "decimal")
_NESTED_TYPES = ("array", "map", "struct", "binary", "variant")
_BLANK_TEXT = r"^\s*$"


def _refuse_nested(df: DataFrame, column: str, what: str, context: str) -> None:
    kind = _type_name(df, column)
    if kind in _NESTED_TYPES:
        raise DataValidationError(
            f"{context}: column '{column}' holds values of type "
            f"{df.schema[column].dataType.simpleString()}, not single {what} values"
        )


def _missing(df: DataFrame, column: str) -> Column:
    """NULL, blank text and NaN: a missing id, date or group, as in the pandas path."""
    F = _functions()
    col = F.col(column)
    kind = _type_name(df, column)
    if kind == "string":
        return col.isNull() | F.regexp_like(col, F.lit(_BLANK_TEXT))
    if kind in ("float", "double"):
        return col.isNull() | F.isnan(col)
    return col.isNull()


def _timestamp(df: DataFrame, column: str, date_format: str | None, context: str) -> Column:
    F = _functions()
    kind = _type_name(df, column)
    col = F.col(column)
    _refuse_nested(df, column, "date", context)
    if kind == "boolean":
        raise DataValidationError(f"{context}: column '{column}' holds booleans, not dates")
    if kind in ("timestamp", "timestamp_ntz", "date"):
        return col
    if kind in _NUMERIC_TYPES:
        if date_format is None:
            raise DataValidationError(
                f"{context}: column '{column}' holds numbers, not dates: convert it, or "
                "pass date_format (e.g. date_format='%Y%m%d' for 19970101)"
            )
        text = col.cast("long").cast("string")
        return F.try_to_timestamp(text, F.lit(spark_datetime_pattern(date_format)))
    # Drop a UTC offset after the time of day, keeping the time as written (as pandas).
    wall_clock = F.regexp_replace(F.trim(col.cast("string")), OFFSET_PATTERN, "$1")
    if date_format is not None:
        wall_format = strip_offset_code(date_format)
        text = wall_clock if wall_format != date_format else col.cast("string")
        return F.try_to_timestamp(text, F.lit(spark_datetime_pattern(wall_format)))
    return F.try_to_timestamp(wall_clock)


def _value(df: DataFrame, column: str, context: str) -> Column:
    F = _functions()
    kind = _type_name(df, column)
    _refuse_nested(df, column, "amount", context)
    if kind == "boolean":
        raise DataValidationError(f"{context}: column '{column}' holds booleans, not values")
    if kind in _NUMERIC_TYPES:
        return F.col(column).cast("double")
    if kind != "string":
        raise DataValidationError(
            f"{context}: column '{column}' holds values of type {kind}, not amounts"
        )
    return F.expr(f"try_cast(`{column.replace('`', '``')}` AS DOUBLE)")


def _period(ts: Column, freq: str) -> Column:
    """pandas' period ordinal of a timestamp, as a Spark column (see clvmodels.outofcore)."""
    F = _functions()
    base = freq_base(freq)
    day = F.datediff(F.to_date(ts), F.lit("1970-01-01").cast("date")).cast("long")
    if base == "D":
        return day
    if base == "h":
        return day * 24 + F.hour(ts).cast("long")
    if base == "W":
        return F.floor((day + week_offset(freq)) / 7).cast("long") + 1
    year = (F.year(ts) - 1970).cast("long")
    if base == "M":
        return year * 12 + F.month(ts) - 1
    if base == "Q":
        return year * 4 + F.quarter(ts) - 1
    return year


def _period_start(ordinal: Column, freq: str) -> Column:
    """First day of calendar period ``ordinal`` ("M", "Q" or "Y")."""
    F = _functions()
    per_year = 12 // _CALENDAR_PERIOD_MONTHS[freq]
    year = F.floor(ordinal / per_year) + 1970
    month = F.pmod(ordinal, F.lit(per_year)) * _CALENDAR_PERIOD_MONTHS[freq] + 1
    return F.make_date(year.cast("int"), month.cast("int"), F.lit(1))


def _durations(start: Column, end: Column, freq: str, time_unit: str) -> Column:
    """Time between period ordinals in ``time_unit``, with the float operations of
    the pandas path, so the results agree to the last bit."""
    F = _functions()
    base = freq_base(freq)
    steps = end - start
    if base in _FIXED_PERIOD_HOURS:
        return steps * F.lit(_FIXED_PERIOD_HOURS[base]) / F.lit(_UNIT_HOURS[time_unit])
    if time_unit in ("M", "Y"):
        months = steps * _CALENDAR_PERIOD_MONTHS[base]
        return months / F.lit(1.0 if time_unit == "M" else 12.0)
    days = F.datediff(_period_start(end, base), _period_start(start, base))
    return days * F.lit(24.0) / F.lit(_UNIT_HOURS[time_unit])


# --------------------------------------------------------------------------------------
# Validation job
# --------------------------------------------------------------------------------------
@dataclass
class _Parsed:
    tx: DataFrame  # cid, per, v, g, plus the raw columns for error examples
    context: str
    customer_col: str
    date_col: str
    value_col: str | None
    group_col: str | None
    freq: str


def _parse(
    df: DataFrame,
    customer_col: str,
    date_col: str,
    value_col: str | None,
    group_col: str | None,
    date_format: str | None,
    freq: str,
    context: str,
) -> _Parsed:
    F = _functions()
    freq_base(freq)
    if not hasattr(df, "sparkSession"):
        raise TypeError(f"{context}: expected a Spark DataFrame, got {type(df).__name__}")
    needed = [customer_col, date_col] + [c for c in (value_col, group_col) if c is not None]
    for col in needed:
        if not isinstance(col, str):
            raise ValueError(f"{context}: a column name must be a string, got {col!r}")
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"{context}: missing column(s) {missing}; the data has columns {list(df.columns)}"
        )
    for col in dict.fromkeys(needed):
        if (repeats := df.columns.count(col)) > 1:
            raise DataValidationError(
                f"{context}: column '{col}' is {repeats} columns of the data (repeated names); "
                "give each column its own name"
            )
    if group_col is not None and group_col == customer_col:
        raise ValueError(f"{context}: group_col and customer_col are both {group_col!r}")
    _refuse_nested(df, customer_col, "customer id", context)
    if group_col is not None:
        _refuse_nested(df, group_col, "group", context)
    ts = _timestamp(df, date_col, date_format, context)
    value = None if value_col is None else _value(df, value_col, context)
    tx = df.select(
        F.col(customer_col).alias("cid"),
        _missing(df, customer_col).alias("cid_missing"),
        ts.alias("ts"),
        F.col(date_col).alias("raw_date"),
        _missing(df, date_col).alias("date_missing"),
        (value if value is not None else F.lit(None).cast("double")).alias("v"),
        (F.col(value_col) if value_col else F.lit(None)).alias("raw_value"),
        (F.col(group_col) if group_col else F.lit(None)).alias("g"),
        (_missing(df, group_col) if group_col else F.lit(False)).alias("g_missing"),
    ).withColumn("per", _period(F.col("ts"), freq))
    return _Parsed(tx, context, customer_col, date_col, value_col, group_col, freq)


def _examples(tx: DataFrame, condition: Column, *columns: str) -> list:
    rows = tx.filter(condition).select(*columns).limit(_SHOW).collect()
    return [r[0] if len(r) == 1 else tuple(r) for r in rows]


def _values_and_customers(tx: DataFrame, condition: Column, raw: str) -> str:
    """"first values [...] (customers [...])" of the first offending rows."""
    examples = _examples(tx, condition, raw, "cid")
    return f"first values {[e[0] for e in examples]} (customers {[e[1] for e in examples]})"


def _first_customers(tx: DataFrame, aggregate: Column, condition: Column) -> list[tuple]:
    """(id, aggregate) of the first customers, by id, whose ``aggregate`` (named "x" in
    ``condition``) meets ``condition``: a small job, run only for an error message."""
    rows = (
        tx.groupBy("cid").agg(aggregate.alias("x")).filter(condition)
        .orderBy("cid").limit(_SHOW).collect()
    )
    return [(r["cid"], r["x"]) for r in rows]


def _check(parsed: _Parsed, cal_period: int | None, end_period: int | None) -> dict[str, Any]:
    """One job over the log: row validation, the default cut-off and the counts.

    Rows are first reduced per customer (a map-side partial aggregation), then to one
    row of totals; an error names the first offending rows with a small second job.
    """
    F = _functions()
    tx = parsed.tx
    ctx = parsed.context

    def flag(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0))

    bad_date = ~F.col("date_missing") & F.col("ts").isNull()
    far_date = (F.year("ts") < FIRST_YEAR) | (F.year("ts") > LAST_YEAR)
    bad_value = F.col("v").isNull() | F.isnan("v") | (F.abs("v") == float("inf"))
    cal = F.lit(True) if cal_period is None else F.col("per") <= cal_period
    window = F.lit(True) if end_period is None else F.col("per") <= end_period
    per_customer = tx.groupBy("cid").agg(
        F.count(F.lit(1)).alias("rows"),
        flag(F.col("cid_missing")).alias("null_cust"),
        flag(F.col("date_missing")).alias("null_date"),
        flag(bad_date).alias("bad_date"),
        flag(far_date).alias("far_date"),
        flag(bad_value if parsed.value_col else F.lit(False)).alias("bad_value"),
        flag(F.col("v") < 0).alias("negative"),
        # Values too large to add up in any order (as in the pandas path).
        F.sum(F.abs("v")).alias("magnitude"),
        flag(F.col("g_missing")).alias("null_group"),
        flag(cal).alias("rows_cal"),
        flag(window).alias("rows_window"),
        F.max("ts").alias("max_ts"),
        F.min("ts").alias("min_ts"),
        F.min("per").alias("first"),
        F.max("per").alias("last"),
        (F.min("g") != F.max("g")).alias("several_groups"),
    )
    overflow = F.isnan("magnitude") | (F.col("magnitude") == float("inf"))
    first_after_cal = F.lit(False) if cal_period is None else F.col("first") > cal_period
    first_after_end = F.lit(False) if end_period is None else F.col("first") > end_period
    stamp = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"
    totals = per_customer.agg(
        F.sum("rows").alias("rows"),
        F.sum("null_cust").alias("null_cust"),
        F.sum("null_date").alias("null_date"),
        F.sum("bad_date").alias("bad_date"),
        F.sum("far_date").alias("far_date"),
        F.sum("bad_value").alias("bad_value"),
        flag(overflow).alias("overflow"),
        F.sum("negative").alias("negative"),
        F.sum("null_group").alias("null_group"),
        F.sum("rows_cal").alias("rows_cal"),
        F.sum("rows_window").alias("rows_window"),
        F.date_format(F.max("max_ts").cast("timestamp"), stamp).alias("max_ts"),
        F.date_format(F.min("min_ts").cast("timestamp"), stamp).alias("min_ts"),
        F.max("last").alias("last"),
        F.count("cid").alias("customers"),
        flag(first_after_cal & ~first_after_end).alias("first_after_cal"),
        flag(first_after_end).alias("first_after_end"),
        F.sum(
            F.when(first_after_cal & ~first_after_end, F.col("rows_window")).otherwise(0)
        ).alias("rows_new_in_holdout"),
        flag(F.col("several_groups")).alias("several_groups"),
    ).collect()[0].asDict()
    n = int(totals["rows"] or 0)
    if n == 0:
        raise DataValidationError(f"{ctx}: the transaction log is empty")
    if totals["null_cust"]:
        dates = _examples(tx, F.col("cid_missing"), "raw_date")
        raise DataValidationError(
            f"{ctx}: column '{parsed.customer_col}': {totals['null_cust']} of {n} rows have no "
            f"customer id; first such rows (date) {dates} (empty strings count as missing)"
        )
    if totals["null_date"]:
        ids = _examples(tx, F.col("date_missing"), "cid")
        raise DataValidationError(
            f"{ctx}: column '{parsed.date_col}': {totals['null_date']} of {n} rows have no "
            f"date; first customers {ids}"
        )
    if totals["bad_date"]:
        raise DataValidationError(
            f"{ctx}: column '{parsed.date_col}': {totals['bad_date']} of {n} rows could not be "
            f"parsed as dates; {_values_and_customers(tx, bad_date, 'raw_date')}; pass "
            "date_format, e.g. '%Y-%m-%d'"
        )
    if totals["far_date"]:
        raise DataValidationError(
            f"{ctx}: column '{parsed.date_col}': {totals['far_date']} of {n} rows are dates "
            f"outside {DATE_RANGE_TEXT}; {_values_and_customers(tx, far_date, 'raw_date')}"
        )
    if totals["bad_value"]:
        raise DataValidationError(
            f"{ctx}: column '{parsed.value_col}': {totals['bad_value']} of {n} rows are missing, "
            f"infinite or not numbers; {_values_and_customers(tx, bad_value, 'raw_value')}"
        )
    if totals["overflow"]:
        magnitude = F.sum(F.abs("v"))
        rows = _first_customers(tx, magnitude, F.isnan("x") | (F.col("x") == float("inf")))
        raise DataValidationError(
            f"{ctx}: column '{parsed.value_col}': the values of {totals['overflow']} "
            f"customer(s) add up beyond the float range (about {np.finfo(np.float64).max:.3g}) "
            f"in absolute value, so their sums would be infinite; first customer ids "
            f"{[cid for cid, _ in rows]}; rescale the values (e.g. to thousands)"
        )
    if totals["null_group"]:
        ids = _examples(tx, F.col("g_missing"), "cid")
        raise DataValidationError(
            f"{ctx}: column '{parsed.group_col}': {totals['null_group']} of {n} rows have no "
            f"group; first customers {ids}"
        )
    if totals["several_groups"]:
        groups = F.array_sort(F.collect_set("g"))
        shown = {cid: list(g) for cid, g in _first_customers(tx, groups, F.size("x") > 1)}
        raise DataValidationError(
            f"{ctx}: column '{parsed.group_col}': a customer's group must be constant, but "
            f"{totals['several_groups']} customers have several groups; first: {shown}"
        )
    totals["max_moment"] = np.datetime64(pd.Timestamp(totals["max_ts"]).to_datetime64(), "us")
    totals["min_moment"] = np.datetime64(pd.Timestamp(totals["min_ts"]).to_datetime64(), "us")
    return totals


def _with_meta(df: DataFrame, attrs: Mapping[str, Any], customer_col: str) -> DataFrame:
    """Attach ``attrs`` to every column but the customer id, as Spark column metadata."""
    F = _functions()
    meta = {_META_KEY: json.loads(json.dumps(dict(attrs)))}
    return df.select(
        *[
            F.col(c) if c == customer_col else F.col(c).alias(c, metadata=meta)
            for c in df.columns
        ]
    )


def _with_previous_period(periods: DataFrame, log_spend: bool, regularity: bool) -> DataFrame:
    """The (customer, period) rows with ``prev``, the customer's previous purchase period
    (null for the first), where the opt-in log columns need it."""
    if not (log_spend or regularity):
        return periods
    F = _functions()
    from pyspark.sql import Window

    return periods.withColumn("prev", F.lag("per").over(Window.partitionBy("cid").orderBy("per")))


def _period_magnitude(log_spend: bool) -> list[Column]:
    """A period's ``rows`` and ``av`` (sum of absolute values): the rounding bound of
    its sum, needed to tell a positive value from rounding noise."""
    if not log_spend:
        return []
    F = _functions()
    return [F.count(F.lit(1)).alias("rows"), F.sum(F.abs("v")).alias("av")]


def _log_aggregates(
    in_window: Column, freq: str, time_unit: str, log_spend: bool, regularity: bool
) -> list[Column]:
    """Per-customer sums behind the opt-in log columns, over the repeat periods in
    ``in_window``: ``log_value_sum`` and ``n_nonpositive`` (logs of the periods' values,
    and how many have none), ``log_gap_sum`` (logs of the gaps, in ``time_unit``)."""
    F = _functions()
    repeat = in_window & F.col("prev").isNotNull()
    # Positive beyond the rounding of the period's sum, as in the pandas path.
    positive = F.col("v") > F.col("rows") * F.lit(_EPS) * F.col("av")
    out = []
    if log_spend:
        out += [
            F.sum(F.when(repeat & positive, F.log(F.col("v")))).alias("log_value_sum"),
            F.count(F.when(repeat & ~positive, 1)).alias("n_nonpositive"),
        ]
    if regularity:
        gap = _durations(F.col("prev"), F.col("per"), freq, time_unit)
        out.append(F.sum(F.when(repeat, F.log(gap))).alias("log_gap_sum"))
    return out


def _summary_select(
    parsed: _Parsed, frame: DataFrame, end_period: int, time_unit: str, extra: Sequence = ()
) -> DataFrame:
    F = _functions()
    frequency = (F.col("n_periods") - 1).cast("long")
    columns = [
        F.col("cid").alias(parsed.customer_col),
        frequency.alias("frequency"),
        _durations(F.col("first"), F.col("last"), parsed.freq, time_unit).alias("recency"),
        _durations(F.col("first"), F.lit(end_period), parsed.freq, time_unit).alias("T"),
    ]
    if parsed.value_col is not None:
        repeat = F.col("total_value") - F.col("first_value")
        columns.append(
            F.when(frequency > 0, repeat / frequency).otherwise(F.lit(0.0)).alias("monetary_value")
        )
    if "log_value_sum" in frame.columns:
        mean = F.coalesce(F.col("log_value_sum"), F.lit(0.0)) / frequency
        columns.append(
            F.when(F.col("n_nonpositive") > 0, F.lit(float("nan")))
            .when(frequency > 0, mean)
            .otherwise(F.lit(0.0))
            .alias(LOG_SPEND_COLUMN)
        )
    if "log_gap_sum" in frame.columns:
        columns.append(
            F.coalesce(F.col("log_gap_sum"), F.lit(0.0)).cast("double").alias(REGULARITY_COLUMN)
        )
    if parsed.group_col is not None:
        columns.append(F.col("g").alias(parsed.group_col))
    return frame.select(*columns, *extra)


# --------------------------------------------------------------------------------------
# Public API: summaries
# --------------------------------------------------------------------------------------
def rfm_summary_spark(
    transactions: DataFrame,
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
) -> DataFrame:
    """:func:`clvmodels.rfm_summary` of a Spark DataFrame of transactions.

    One validation job runs at once (it also finds the default ``observation_end``
    and counts what is excluded); the summary itself is returned as a lazy Spark
    DataFrame, so cache or persist the transactions first if they are expensive to
    recompute.

    Parameters
    ----------
    transactions : pyspark.sql.DataFrame
        One row per transaction.
    customer_col, date_col, value_col, observation_end, freq, time_unit, group_col, date_format
        As in :func:`clvmodels.rfm_summary`.
    log_spend, regularity
        As in :func:`clvmodels.rfm_summary`: ``monetary_log_mean`` and
        ``log_interpurchase_sum``, from a window over each customer's purchase periods.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per customer, in no particular order: the customer id column, then
        ``frequency``, ``recency``, ``T`` (and ``monetary_value``, the opt-in log
        columns, the group column), exactly the values of the pandas path
        (``monetary_value`` and the log columns up to the rounding of sums added in
        another order, bounded by the absolute values added as
        :mod:`clvmodels.outofcore` states). The pandas ``attrs`` are in the column
        metadata (:func:`summary_attrs`); with ``log_spend`` their count
        ``n_customers_nonpositive_repeat_period`` is one more job over the summary
        (cache or persist the transactions first).

    Raises
    ------
    DataValidationError
        For the problems :func:`clvmodels.rfm_summary` reports.

    Examples
    --------
    >>> from pyspark.sql import SparkSession  # doctest: +SKIP
    >>> spark = SparkSession.builder.getOrCreate()  # doctest: +SKIP
    >>> log = spark.read.parquet("s3://bucket/transactions/")  # doctest: +SKIP
    >>> summary = rfm_summary_spark(log, "customer_id", "date", "amount",
    ...                             observation_end="1997-09-30")  # doctest: +SKIP
    >>> summary_attrs(summary)["n_customers"]  # doctest: +SKIP
    2357
    """
    F = _functions()
    context = "rfm_summary"
    check_log_options(value_col, log_spend, regularity, context)
    check_time_unit(time_unit)
    parsed = _parse(
        transactions, customer_col, date_col, value_col, group_col, date_format, freq, context
    )
    end_moment = end_period = None
    if observation_end is not None:
        end_moment, end_period = cutoff(observation_end, "observation_end", date_format, freq)
    totals = _check(parsed, end_period, end_period)
    if end_period is None:
        end_moment = totals["max_moment"]
        end_period = period_ordinal(end_moment, freq)
    if not totals["rows_cal"]:
        raise DataValidationError(
            f"{context}: no transaction falls on or before observation_end "
            f"{iso(end_moment)}; the first is on {iso(totals['min_moment'])}"
        )
    periods = (
        parsed.tx.filter(F.col("per") <= end_period)
        .groupBy("cid", "per")
        .agg(
            F.sum("v").alias("v"),
            F.min("g").alias("g"),
            *_period_magnitude(log_spend),
        )
    )
    customers = _with_previous_period(periods, log_spend, regularity).groupBy("cid").agg(
        F.count(F.lit(1)).alias("n_periods"),
        F.min("per").alias("first"),
        F.max("per").alias("last"),
        F.sum("v").alias("total_value"),
        F.min_by("v", "per").alias("first_value"),
        F.min("g").alias("g"),
        *_log_aggregates(F.lit(True), freq, time_unit, log_spend, regularity),
    )
    n_customers = int(totals["customers"]) - int(totals["first_after_end"])
    attrs = {
        "kind": "rfm_summary",
        "time_unit": time_unit,
        "freq": freq,
        "observation_end": iso(end_moment),
        "customer_col": customer_col,
        "date_col": date_col,
        "value_col": value_col,
        "group_col": group_col,
        "n_customers": n_customers,
        "n_transactions": int(totals["rows_cal"]),
        "n_transactions_excluded_after_end": int(totals["rows"] - totals["rows_cal"]),
        "n_customers_first_purchase_after_end": int(totals["first_after_end"]),
        "n_negative_values": int(totals["negative"]),
    }
    summary = _summary_select(parsed, customers, end_period, time_unit)
    attrs.update(_nonpositive_count(summary) if log_spend else {})
    return _with_meta(summary, attrs, customer_col)


def calibration_holdout_split_spark(
    transactions: DataFrame,
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
) -> DataFrame:
    """:func:`clvmodels.calibration_holdout_split` of a Spark DataFrame of transactions.

    Parameters
    ----------
    transactions : pyspark.sql.DataFrame
        One row per transaction.
    customer_col, date_col, value_col, calibration_end, observation_end, freq, time_unit
        As in :func:`clvmodels.calibration_holdout_split`.
    group_col, date_format, log_spend, regularity
        As in :func:`clvmodels.calibration_holdout_split`.

    Returns
    -------
    pyspark.sql.DataFrame
        The customer id column, the calibration summary columns, then
        ``frequency_holdout``, ``monetary_value_holdout`` (with ``value_col``) and
        ``duration_holdout``; ``attrs`` of the pandas path in the column metadata.

    Examples
    --------
    >>> split = calibration_holdout_split_spark(
    ...     log, "customer_id", "date", "amount",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")  # doctest: +SKIP
    """
    F = _functions()
    context = "calibration_holdout_split"
    check_log_options(value_col, log_spend, regularity, context)
    check_time_unit(time_unit)
    parsed = _parse(
        transactions, customer_col, date_col, value_col, group_col, date_format, freq, context
    )
    cal_moment, cal_period = cutoff(calibration_end, "calibration_end", date_format, freq)
    end_moment = end_period = None
    if observation_end is not None:
        end_moment, end_period = cutoff(observation_end, "observation_end", date_format, freq)
        if end_period <= cal_period:
            raise ValueError(
                f"{context}: observation_end ({iso(end_moment)}) must fall in a later {freq!r} "
                f"period than calibration_end ({iso(cal_moment)})"
            )
    totals = _check(parsed, cal_period, end_period)
    if end_period is None:
        end_moment = totals["max_moment"]
        end_period = period_ordinal(end_moment, freq)
        if end_period <= cal_period:
            raise ValueError(
                f"{context}: observation_end ({iso(end_moment)}) must fall in a later {freq!r} "
                f"period than calibration_end ({iso(cal_moment)})"
            )
    if not totals["rows_cal"]:
        raise DataValidationError(
            f"{context}: no transaction falls on or before calibration_end "
            f"{iso(cal_moment)}; the first is on {iso(totals['min_moment'])}"
        )
    in_cal = F.col("per") <= cal_period
    periods = (
        parsed.tx.filter(F.col("per") <= end_period)
        .groupBy("cid", "per")
        .agg(
            F.sum("v").alias("v"),
            F.count(F.lit(1)).alias("rows"),
            F.min("g").alias("g"),
            *_period_magnitude(log_spend)[1:],
        )
    )
    customers = (
        _with_previous_period(periods, log_spend, regularity)
        .groupBy("cid")
        .agg(
            F.count(F.when(in_cal, 1)).alias("n_periods"),
            F.min("per").alias("first"),
            F.max(F.when(in_cal, F.col("per"))).alias("last"),
            F.sum(F.when(in_cal, F.col("v"))).alias("total_value"),
            F.min_by("v", "per").alias("first_value"),
            F.count(F.when(~in_cal, 1)).alias("n_holdout"),
            F.sum(F.when(~in_cal, F.col("v"))).alias("holdout_value"),
            F.min("g").alias("g"),
            *_log_aggregates(in_cal, freq, time_unit, log_spend, regularity),
        )
        .filter(F.col("n_periods") > 0)
    )
    n_holdout = F.col("n_holdout").cast("long")
    extra = [n_holdout.alias("frequency_holdout")]
    if value_col is not None:
        mean = F.coalesce(F.col("holdout_value"), F.lit(0.0)) / n_holdout
        extra.append(
            F.when(n_holdout > 0, mean).otherwise(F.lit(0.0)).alias("monetary_value_holdout")
        )
    duration = _durations(F.lit(cal_period), F.lit(end_period), freq, time_unit)
    extra.append(duration.cast("double").alias("duration_holdout"))
    summary = _summary_select(parsed, customers, cal_period, time_unit, extra)

    window_rows = (
        int(totals["rows_window"]) if observation_end is not None else int(totals["rows"])
    )
    first_after_end = int(totals["first_after_end"])
    if observation_end is None:
        first_after_end = 0  # the default end is the last date: nobody starts later
    # Holdout rows of customers who first bought in the holdout are not in the summary.
    holdout_rows_new = int(totals["rows_new_in_holdout"])
    attrs = {
        "kind": "calibration_holdout",
        "time_unit": time_unit,
        "freq": freq,
        "calibration_end": iso(cal_moment),
        "observation_end": iso(end_moment),
        "customer_col": customer_col,
        "date_col": date_col,
        "value_col": value_col,
        "group_col": group_col,
        "n_customers": int(totals["customers"]) - int(totals["first_after_cal"]) - first_after_end,
        "n_transactions": window_rows,
        "n_transactions_calibration": int(totals["rows_cal"]),
        "n_transactions_holdout": window_rows - int(totals["rows_cal"]) - holdout_rows_new,
        "n_transactions_excluded_after_end": int(totals["rows"]) - window_rows,
        "n_customers_first_purchase_after_calibration": int(totals["first_after_cal"]),
        "n_customers_first_purchase_after_end": first_after_end,
        "n_negative_values": int(totals["negative"]),
    }
    attrs.update(_nonpositive_count(summary) if log_spend else {})
    return _with_meta(summary, attrs, customer_col)


def _nonpositive_count(summary: DataFrame) -> dict[str, int]:
    """The ``attrs`` count of ``log_spend=True`` (see :func:`clvmodels.rfm_summary`): a
    job over the summary, so over the transactions once more."""
    F = _functions()
    no_log = F.isnan(LOG_SPEND_COLUMN) & (F.col("frequency") > 0)
    return {NONPOSITIVE_ATTR: int(summary.filter(no_log).count())}


# --------------------------------------------------------------------------------------
# Public API: metadata, collection and compression
# --------------------------------------------------------------------------------------
def summary_attrs(summary: DataFrame) -> dict[str, Any]:
    """The pandas ``attrs`` of a Spark summary (time unit, cut-offs, counts).

    Examples
    --------
    >>> summary_attrs(summary)["time_unit"]  # doctest: +SKIP
    'W'
    """
    for field in summary.schema.fields:
        if _META_KEY in field.metadata:
            return dict(field.metadata[_META_KEY])
    return {}


def to_pandas(summary: DataFrame) -> pd.DataFrame:
    """Collect a Spark summary as the frame the pandas path returns.

    Indexed by the customer id (sorted), with ``attrs`` restored. Only for summaries
    that fit on the driver; for large ones, fit on :func:`compress` instead.

    Examples
    --------
    >>> frame = to_pandas(rfm_summary_spark(log, "customer_id", "date"))  # doctest: +SKIP
    """
    attrs = summary_attrs(summary)
    customer_col = attrs.get("customer_col") or summary.columns[0]
    frame = summary.toPandas()
    index = pd.Index(frame.pop(customer_col).to_numpy(), name=customer_col)
    frame.index = index
    frame = frame.sort_index(kind="stable")
    frame.attrs.update(attrs)
    return frame


def compress(
    summary: DataFrame,
    columns: Sequence[str] = _SUMMARY_COLUMNS,
    group_col: str | None = None,
) -> pd.DataFrame:
    """The weighted distinct rows of a Spark summary, collected to the driver.

    Customers with identical ``columns`` (and group) contribute identical likelihood
    terms, so a model fitted on the distinct rows with their counts as weights gives
    the fit on all customers. At daily resolution the distinct ``(frequency,
    recency, T)`` rows number in the hundreds of thousands at most, whatever the
    number of customers.

    Parameters
    ----------
    summary : pyspark.sql.DataFrame
        From :func:`rfm_summary_spark` or :func:`calibration_holdout_split_spark`.
    columns : sequence of str, default ("frequency", "recency", "T")
        Columns that define identical customers; add ``"monetary_value"`` for a
        spend model.
    group_col : str, optional
        A group column to keep in the key (for hierarchical models).

    Returns
    -------
    DataFrame
        The distinct rows, sorted, with a ``weight`` column (int64: customers per
        row) and the summary's ``attrs`` (so models record its ``time_unit``).

    Examples
    --------
    >>> rows = compress(summary)  # doctest: +SKIP
    >>> model = BetaGeo().fit(rows, weights=rows["weight"])  # doctest: +SKIP
    """
    F = _functions()
    key = list(dict.fromkeys([*columns, *([group_col] if group_col else [])]))
    missing = [c for c in key if c not in summary.columns]
    if missing:
        raise DataValidationError(
            f"compress: missing column(s) {missing}; the summary has {list(summary.columns)}"
        )
    rows = summary.groupBy(*key).agg(F.count(F.lit(1)).cast("long").alias("weight")).toPandas()
    rows = rows.sort_values(key, kind="stable").reset_index(drop=True)
    rows.attrs.update(summary_attrs(summary))
    return rows


# --------------------------------------------------------------------------------------
# Public API: scoring
# --------------------------------------------------------------------------------------
def _model_payload(model: Any) -> dict[str, Any]:
    """A fitted model as text (JSON) or bytes (NetCDF), through its own ``save``."""
    with tempfile.TemporaryDirectory(prefix="clvmodels-") as folder:
        path = Path(folder) / "model"
        written = Path(model.save(path) or path)
        data = written.read_bytes()
    if data.lstrip()[:1] == b"{":
        return {"format": "json", "data": data.decode()}
    return {"format": "netcdf", "data": data}


def _model_from_payload(payload: Mapping[str, Any]) -> Any:
    from clvmodels.models.base import load

    with tempfile.TemporaryDirectory(prefix="clvmodels-") as folder:
        path = Path(folder) / ("model.json" if payload["format"] == "json" else "model.nc")
        if payload["format"] == "json":
            path.write_text(payload["data"])
        else:
            path.write_bytes(payload["data"])
        return load(path)


def _tier_spec(tiers: Any, thresholds: Any) -> tuple[list[str], np.ndarray | None, np.ndarray]:
    """Tier names, cumulative rank shares (None for value thresholds) and value bounds."""
    from clvmodels.segmentation import DEFAULT_TIERS

    if tiers is not None and thresholds is not None:
        raise ValueError("give either tiers (rank shares) or thresholds (values), not both")
    spec = thresholds if thresholds is not None else (DEFAULT_TIERS if tiers is None else tiers)
    items = list(spec.items()) if isinstance(spec, Mapping) else list(spec)
    if len(items) < 2:
        raise ValueError(f"tiers need at least two (name, value) entries, got {spec!r}")
    names = [str(name) for name, _ in items]
    values = np.array([float(v) for _, v in items])
    if len(set(names)) != len(names) or not np.all(np.isfinite(values)):
        raise ValueError(f"tier names must be distinct and values finite, got {spec!r}")
    if thresholds is not None:
        bounds = values[:-1]
        if np.any(np.diff(bounds) >= 0):
            raise ValueError(
                f"threshold lower bounds must decrease from first to last, got {values.tolist()}"
            )
        return names, None, bounds
    if np.any(values <= 0) or abs(float(values.sum()) - 1.0) > 1e-9:
        raise ValueError(f"tier shares must be positive and sum to 1, got {values.tolist()}")
    return names, np.cumsum(values)[:-1], np.empty(0)


@dataclass
class _ScoringJob:
    """Everything an executor needs: models as JSON (or NetCDF bytes), the settings, and
    the parameter draws made once on the driver (the models' own frames, passed back to
    them as they came)."""

    transaction_model: dict[str, Any]
    spend_model: dict[str, Any]
    settings: dict[str, Any]
    transaction_draws: pd.DataFrame
    spend_draws: pd.DataFrame
    customer_col: str
    group_cols: tuple[str, ...]
    time_unit: str
    batch_rows: int
    tier_names: list[str] | None = None
    tier_bounds: list[float] | None = None

    def scorer(self, n_draws: int | None = None) -> Any:
        from clvmodels.clv import CLVScorer

        s = self.settings
        # The driver's draws, not redrawn: identical on every executor whatever its
        # linear-algebra library. The point-only pass takes two fresh draws it ignores.
        shared = n_draws is None
        return CLVScorer(
            _model_from_payload(self.transaction_model),
            _model_from_payload(self.spend_model),
            time_unit=self.time_unit,
            horizon=s["horizon"],
            period=s["period"],
            discount_rate=s["discount_rate"],
            interval=s["interval"],
            n_draws=n_draws or s["n_draws"],
            predictive=s["predictive"] and shared,
            n_futures=s["n_futures"] if s["predictive"] and shared else None,
            random_state=s["random_state"],
            transaction_draws=self.transaction_draws if shared else None,
            spend_draws=self.spend_draws if shared else None,
            n_jobs=1,  # Spark runs one task per executor core already
        )

    def batches(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Arrow batches regrouped into chunks of about ``batch_rows`` customers."""
        pending: list[pd.DataFrame] = []
        size = 0
        for frame in frames:
            pending.append(frame)
            size += len(frame)
            if size >= self.batch_rows:
                yield pd.concat(pending, ignore_index=True)
                pending, size = [], 0
        if pending:
            yield pd.concat(pending, ignore_index=True)

    def summary_chunk(self, frame: pd.DataFrame) -> pd.DataFrame:
        chunk = frame.set_index(self.customer_col)
        chunk.attrs["time_unit"] = self.time_unit
        return chunk

    def with_tier(self, out: pd.DataFrame) -> pd.DataFrame:
        if self.tier_names is not None:
            from clvmodels.segmentation import band_index

            codes = band_index(out["clv"].to_numpy(), np.asarray(self.tier_bounds))
            out["tier"] = np.asarray(self.tier_names, dtype=object)[codes]
        return out


def _point_clv(job: _ScoringJob) -> Any:
    """mapInPandas function: the point CLV only (two draws, never used), for tiers."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = job.scorer(n_draws=2)
        for frame in job.batches(frames):
            table = scorer.score_chunk(job.summary_chunk(frame)).table
            yield pd.DataFrame({"clv": table["clv"].to_numpy()})

    return run


def _full_scores(job: _ScoringJob) -> Any:
    """mapInPandas function: the single-machine scorer applied to one partition."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        scorer = job.scorer()
        for k, frame in enumerate(job.batches(frames)):
            chunk = job.summary_chunk(frame)
            seed = (job.settings["random_state"], partition, k)
            table = scorer.score_chunk(chunk, random_state=seed).table
            out = pd.DataFrame({job.customer_col: chunk.index.to_numpy()})
            for col in job.group_cols:
                out[col] = chunk[col].to_numpy()
            for col in table.columns:
                out[col] = table[col].to_numpy()
            yield job.with_tier(out)

    return run


def _rank_share_boundaries(
    points: DataFrame, cuts: np.ndarray, relative_error: float = 1e-4
) -> np.ndarray:
    """Exact per-cut boundaries: the ``ceil(S * N)``-th largest point CLV.

    Approximate quantiles bracket each boundary within a rank error of
    ``relative_error * N``; a second pass counts the customers above each bracket and
    the customers at each distinct value inside it (few values, however many customers
    tie on them), which pins the boundary exactly. A bracket that misses (the sketch's
    guarantee says it cannot, but it costs nothing to be safe) is widened tenfold.
    """
    F = _functions()
    points = points.persist()
    try:
        delta = 2 * relative_error
        while True:
            edges = [q for c in cuts for q in (1 - c - delta, 1 - c + delta)]
            probs = sorted({float(np.clip(q, 0, 1)) for q in edges})
            row = points.agg(
                F.count(F.lit(1)).alias("n"),
                F.percentile_approx("clv", probs, int(1 / relative_error)).alias("q"),
            ).collect()[0]
            n = int(row["n"])
            quantile = dict(zip(probs, row["q"], strict=True))
            brackets = [
                (
                    quantile[float(np.clip(1 - c - delta, 0, 1))],
                    quantile[float(np.clip(1 - c + delta, 0, 1))],
                )
                for c in cuts
            ]
            above = points.agg(
                *[F.count(F.when(F.col("clv") > high, 1)) for _, high in brackets]
            ).collect()[0]
            inside = F.lit(False)
            for low, high in brackets:
                inside = inside | F.col("clv").between(low, high)
            counted = points.filter(inside).groupBy("clv").count().collect()
            values = np.array([r["clv"] for r in counted], dtype=float)
            counts = np.array([r["count"] for r in counted], dtype=np.int64)
            order = np.argsort(-values)
            values, counts = values[order], counts[order]
            bounds = np.empty(cuts.size)
            for k, (cut, (low, high)) in enumerate(zip(cuts, brackets, strict=True)):
                target = max(int(np.ceil(cut * n - 1e-9)), 1)
                mine = (values >= low) & (values <= high)
                reached = int(above[k]) + np.cumsum(counts[mine])
                hit = np.flatnonzero(reached >= target)
                if int(above[k]) >= target or hit.size == 0:
                    break
                bounds[k] = values[mine][hit[0]]
            else:
                return bounds
            if delta >= 1:  # pragma: no cover - the whole range was in the brackets
                raise RuntimeError("could not bracket the tier boundaries")
            delta = min(delta * 10, 1.0)
    finally:
        points.unpersist()


def score_spark(
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    summary: DataFrame,
    *,
    horizon: int = 12,
    period: str = "M",
    discount_rate: float = 0.01,
    interval: float = 0.9,
    n_draws: int = 1000,
    predictive: bool = False,
    n_futures: int | None = None,
    random_state: Any = None,
    tiers: Any = None,
    thresholds: Any = None,
    time_unit: str | None = None,
    batch_rows: int = 100_000,
) -> DataFrame:
    """Per-customer CLV forecast with intervals and value tier, partition by partition.

    The parameter draws are made once, here on the driver, and shipped with the
    fitted models (as their JSON / NetCDF payloads) to every partition, where the
    single-machine scorer (:class:`clvmodels.clv.CLVScorer`) runs with ``mapInPandas``.
    Every customer therefore gets exactly what
    :func:`clvmodels.customer_lifetime_value` gives on one machine.

    Tiers are by rank share of the point CLV over **all** customers, as in
    :func:`clvmodels.segment`: the boundaries are the ``ceil(S * N)``-th largest point
    CLVs, found exactly before scoring (approximate quantiles bracket each boundary,
    then the customers above and inside each bracket are counted by distinct value),
    so each customer's tier is the one :func:`clvmodels.segment` gives. These passes
    read a temporarily persisted frame of point CLVs, computed without draws. Tier
    membership probabilities would need every draw's global boundaries and are left
    to :func:`clvmodels.segment` on one machine.

    Parameters
    ----------
    transaction_model : TransactionModel
        Fitted (e.g. on :func:`compress` rows of the same summary); any model of the
        contract in :mod:`clvmodels.models.base`.
    spend_model : SpendModel
        Fitted, likewise.
    summary : pyspark.sql.DataFrame
        From :func:`rfm_summary_spark` (customer id column, ``frequency``,
        ``recency``, ``T``, ``monetary_value`` and the models' group and data columns). It is
        read once per tier pass and once for the scores: persist it first.
    horizon, period, discount_rate, interval, n_draws, n_futures, random_state
        As in :func:`clvmodels.customer_lifetime_value`.
    predictive : bool, default False
        Also simulate the realised value's interval. Each partition simulates with its
        own seed ``(random_state, partition, batch)``, so these bounds are Monte Carlo
        estimates that differ from a single-machine run's (not the expected-value
        columns, which are identical).
    tiers : sequence of (name, share) or mapping, optional
        Rank-share tiers, most valuable first; default
        :data:`clvmodels.segmentation.DEFAULT_TIERS`. ``False`` for no tier column.
    thresholds : sequence of (name, lower_bound) or mapping, optional
        Value tiers instead of rank shares (no extra pass needed).
    time_unit : str, optional
        Unit of ``recency`` and ``T`` when the summary's metadata records none.
    batch_rows : int, default 100000
        Customers scored together inside a partition (bounds executor memory:
        about ``80 * n_draws`` bytes per distinct customer of a block).

    Returns
    -------
    pyspark.sql.DataFrame
        Customer id (and group) column, ``expected_purchases``, ``probability_alive``,
        ``expected_spend``, ``clv``, ``clv_lower``, ``clv_upper`` (and
        ``clv_pred_lower``, ``clv_pred_upper``), and ``tier``. Lazy: write it out.

    Examples
    --------
    >>> rows = compress(summary)  # doctest: +SKIP
    >>> bgnbd = BetaGeo().fit(rows, weights=rows["weight"])  # doctest: +SKIP
    >>> spend_rows = compress(summary, columns=("frequency", "recency", "T",
    ...                                         "monetary_value"))  # doctest: +SKIP
    >>> spend = GammaGamma().fit(spend_rows, weights=spend_rows["weight"])  # doctest: +SKIP
    >>> scores = score_spark(bgnbd, spend, summary, n_draws=500, random_state=1)  # doctest: +SKIP
    >>> scores.write.parquet("s3://bucket/clv/")  # doctest: +SKIP
    """
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    from clvmodels.clv import CLVScorer

    attrs = summary_attrs(summary)
    unit = resolve_time_unit(
        attrs.get("time_unit"), models=(transaction_model, spend_model), time_unit=time_unit,
        context="score_spark",
    )  # fmt: skip
    customer_col = attrs.get("customer_col") or summary.columns[0]
    scorer = CLVScorer(
        transaction_model,
        spend_model,
        time_unit=unit,
        horizon=horizon,
        period=period,
        discount_rate=discount_rate,
        interval=interval,
        n_draws=n_draws,
        predictive=predictive,
        n_futures=n_futures,
        random_state=random_state,
    )
    needed = list(
        dict.fromkeys([customer_col, "frequency", "recency", "T", "monetary_value",
                       *scorer.columns])
    )  # fmt: skip
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise DataValidationError(
            f"score_spark: missing column(s) {missing}; the summary has {list(summary.columns)}"
        )
    if int(batch_rows) < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows!r}")
    job = _ScoringJob(
        transaction_model=_model_payload(transaction_model),
        spend_model=_model_payload(spend_model),
        settings=scorer.settings,
        transaction_draws=scorer.transaction_draws,
        spend_draws=scorer.spend_draws,
        customer_col=customer_col,
        group_cols=tuple(scorer.group_cols),
        time_unit=scorer.time_unit,
        batch_rows=int(batch_rows),
    )
    inputs = summary.select(*needed)
    if tiers is not False:
        names, cuts, bounds = _tier_spec(tiers, thresholds)
        if cuts is not None:
            schema = StructType([StructField("clv", DoubleType())])
            points = inputs.mapInPandas(_point_clv(job), schema)
            bounds = _rank_share_boundaries(points, cuts)
        job.tier_names, job.tier_bounds = names, [float(b) for b in bounds]

    fields = [summary.schema[customer_col]]
    fields += [summary.schema[g] for g in job.group_cols]
    columns = ["expected_purchases", "probability_alive", "expected_spend", "clv"]
    columns += ["clv_lower", "clv_upper"]
    if predictive:
        columns += ["clv_pred_lower", "clv_pred_upper"]
    fields += [StructField(c, DoubleType()) for c in columns]
    if job.tier_names is not None:
        fields.append(StructField("tier", StringType()))
    plain = [StructField(f.name, f.dataType, f.nullable) for f in fields]
    return inputs.mapInPandas(_full_scores(job), StructType(plain))
