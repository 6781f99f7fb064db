"""Customer summaries of transaction files larger than memory, computed in DuckDB.

:func:`rfm_summary_duckdb` and :func:`calibration_holdout_split_duckdb` read Parquet
or CSV files (a path, a list of paths, a glob or a folder) and run the whole
aggregation in DuckDB: the transactions never enter pandas, only the per-customer
result comes back. DuckDB streams the files and spills its hash tables to a temporary
folder when they outgrow ``memory_limit``, so the log may be far larger than memory.

The results follow :func:`clvmodels.rfm_summary` and
:func:`clvmodels.calibration_holdout_split`: same index, columns, dtypes, ``attrs``
and validation errors (one line each, naming the column, the count, the first values
and rows; DuckDB's own errors, such as a malformed CSV line, come back as
:class:`~clvmodels.errors.DataValidationError` naming the files), and the same counts
and durations to the last bit. Summed values are the one exception: pandas and DuckDB
add a customer's values in different orders and with different algorithms, so
``monetary_value`` and ``monetary_value_holdout`` may differ by the rounding of those
sums, which is bounded by the values added, not by the result: at most about
``(n + 1) * eps * sum(|x|) / d`` for a mean of ``n`` values ``x`` over ``d`` periods
(``eps`` = 2.2e-16). Where purchases and refunds nearly cancel, that bound is large
relative to the mean itself (a mean of -0.0233 from purchases and returns worth
hundreds may differ in its 13th significant digit); the difference never exceeds it.
The opt-in columns ``monetary_log_mean`` and ``log_interpurchase_sum`` are sums of logs:
the gaps between purchase periods are computed with the float operations of the pandas
path (bit for bit), and the sums then differ by the rounding of the logs (a few units in
the last place each) and of their addition in another order.

Conventions specific to files:

* dates with a time zone are read in their own wall-clock time, as the pandas path
  does: Parquet timestamps in the zone stored in the file, text dates with a UTC
  offset (``2020-01-01T23:30:00+02:00``, or ``%z`` in ``date_format``) at the time
  written, whatever the mix of offsets;
* CSV columns are read as text and converted here, so that a value the type sniffer
  did not sample (a string id after 30,000 integer ones, "n/a" in row 30,000) is
  counted and reported, never a conversion crash. Ids and groups become integers or
  floats only where every row is one, as in :func:`pandas.read_csv`; dates are parsed
  as ISO 8601 or in the format the sniffer found, unless ``date_format`` is given. Bad
  rows are named by their row number (counted from 0 after the header, as pandas
  numbers them; ``file:row`` for several files).
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clvmodels._summary_options import (
    LOG_SPEND_COLUMN,
    REGULARITY_COLUMN,
    check_log_options,
    log_attrs,
)
from clvmodels.errors import DataValidationError
from clvmodels.units import (
    CALENDAR_PERIOD_MONTHS,
    DATE_END,
    DATE_MIN,
    DATE_RANGE_TEXT,
    FIXED_PERIOD_HOURS,
    OFFSET_PATTERN,
    UNIT_HOURS,
    check_time_unit,
    cutoff,
    durations,
    freq_base,
    iso,
    mean_or_zero,
    period_ordinal,
    strip_offset_code,
    week_offset,
)

__all__ = [
    "calibration_holdout_split_duckdb",
    "is_file_source",
    "read_transactions_duckdb",
    "rfm_summary_duckdb",
]

_SHOW = 5  # offending examples named in an error message
EPS = float(np.finfo(np.float64).eps)
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_COMPRESSION_SUFFIXES = (".gz", ".zst")
# A UTC offset (or Z) right after a time of day: "10:00:00+02:00", "10:00Z", "10:00 +0200".


# --------------------------------------------------------------------------------------
# Sources and the DuckDB connection
# --------------------------------------------------------------------------------------
def is_file_source(transactions: Any) -> bool:
    """Whether ``transactions`` names files (a path, glob or folder, or a list of them).

    :func:`clvmodels.rfm_summary` and :func:`clvmodels.calibration_holdout_split` send
    such arguments here, to DuckDB, instead of reading them into pandas.

    Examples
    --------
    >>> is_file_source("logs/*.parquet"), is_file_source(["a.csv", "b.csv"])
    (True, True)
    >>> import pandas as pd
    >>> is_file_source(pd.DataFrame())
    False
    """
    if isinstance(transactions, str | os.PathLike):
        return True
    return (
        isinstance(transactions, list | tuple)
        and len(transactions) > 0
        and all(isinstance(item, str | os.PathLike) for item in transactions)
    )


@dataclass
class _Source:
    kind: str  # "parquet" or "csv"
    patterns: list[str]
    files: list[str]
    text_columns: tuple[str, ...] = ()  # CSV columns to read as text, not sniffed

    def relation(self, paths: Sequence[str] | None = None) -> str:
        listed = "[" + ", ".join(_quote(p) for p in (paths or self.patterns)) + "]"
        if self.kind == "parquet":
            return f"read_parquet({listed})"
        types = ""
        if self.text_columns:
            pairs = ", ".join(f"{_quote(c)}: 'VARCHAR'" for c in self.text_columns)
            types = f", types = {{{pairs}}}"
        return f"read_csv({listed}, union_by_name = true{types})"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _kind_of(path: str) -> str | None:
    name = path.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    return None


def _resolve(transactions: Any) -> _Source:
    """Files behind a path, a folder, a glob or a list of those; one format for all."""
    items = (
        [transactions]
        if isinstance(transactions, str | Path)
        else list(transactions)
        if isinstance(transactions, Sequence)
        else None
    )
    if not items or not all(isinstance(item, str | Path) for item in items):
        raise TypeError(
            "expected a path, a glob or a list of paths to Parquet or CSV files, got "
            f"{type(transactions).__name__}"
        )
    patterns: list[str] = []
    files: list[str] = []
    for item in map(str, items):
        if Path(item).is_dir():
            found = sorted(
                str(p) for p in Path(item).rglob("*") if p.is_file() and _kind_of(str(p))
            )
            if not found:
                raise FileNotFoundError(f"folder {item} holds no Parquet or CSV files")
            patterns += found
            files += found
            continue
        found = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        found = [f for f in found if Path(f).is_file()]
        if not found:
            raise FileNotFoundError(f"no file matches {item}")
        patterns.append(item)
        files += found
    kinds = {_kind_of(f) for f in files}
    if None in kinds:
        odd = [f for f in files if _kind_of(f) is None][:_SHOW]
        raise ValueError(
            f"cannot tell the format of {odd}: name Parquet files *.parquet and CSV files "
            "*.csv (optionally .gz or .zst compressed)"
        )
    if len(kinds) > 1:
        raise ValueError("mixing Parquet and CSV files in one call is not supported")
    return _Source(kind=kinds.pop(), patterns=patterns, files=files)


def _one_line(err: BaseException) -> str:
    """DuckDB's message in one line: its first line and the offending CSV line, if named."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    kept = lines[:1] + [line for line in lines[1:] if line.startswith("Original Line")]
    text = " ".join(kept)
    return text if len(text) <= 300 else text[:300] + "..."


class _Engine:
    """A private DuckDB connection with a memory limit and a spill folder.

    Queries run through :meth:`run`, which turns DuckDB's exceptions into the package's
    own one-line errors, naming the files.
    """

    def __init__(
        self, memory_limit: str | None, temp_directory: str | Path | None, threads: int | None
    ) -> None:
        import duckdb

        self._duckdb = duckdb
        self.failure = "could not read the files"  # set to name them once they are known
        self._tmp = None
        if temp_directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="clvmodels-duckdb-")
            temp_directory = self._tmp.name
        self.con = duckdb.connect(":memory:")
        settings = {
            "temp_directory": str(temp_directory),
            # Group-by results need no particular order; not keeping it saves memory.
            "preserve_insertion_order": False,
            # Timestamps with a time zone are turned into wall-clock time explicitly.
            "TimeZone": "UTC",
            "enable_progress_bar": False,
        }
        if memory_limit is not None:
            settings["memory_limit"] = str(memory_limit)
        if threads is not None:
            settings["threads"] = int(threads)
        for key, value in settings.items():
            self.con.execute(f"SET {key} = {_quote(value) if isinstance(value, str) else value}")

    def __enter__(self) -> _Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def run(self, sql: str) -> Any:
        try:
            return self.con.execute(sql)
        except self._duckdb.OutOfMemoryException as err:
            raise MemoryError(
                f"{self.failure}: DuckDB ran out of memory ({_one_line(err)}); raise "
                "memory_limit or give temp_directory more room"
            ) from err
        except self._duckdb.Error as err:
            raise DataValidationError(f"{self.failure}: {_one_line(err)}") from err

    def one(self, sql: str) -> tuple:
        return self.run(sql).fetchone()

    def error_of(self, sql: str) -> str | None:
        """DuckDB's message (one line) where ``sql`` fails, else None."""
        try:
            self.con.execute(sql)
        except self._duckdb.Error as err:
            return _one_line(err)
        return None

    def rows(self, sql: str) -> list[tuple]:
        return self.run(sql).fetchall()


# --------------------------------------------------------------------------------------
# Column expressions
# --------------------------------------------------------------------------------------
_INTEGER_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "BIGNUM", "VARINT",
)
_NUMERIC = (*_INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL")
_INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"
_DECIMAL_TEXT = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
_BLANK_TEXT = r"^\s*$"


def _is_numeric(sql_type: str) -> bool:
    return sql_type.startswith(_NUMERIC)


def _is_nested(sql_type: str) -> bool:
    return sql_type.endswith("]") or sql_type.startswith(("STRUCT", "MAP", "UNION"))


def _parquet_time_zone(source: _Source, column: str) -> str | None:
    import pyarrow.parquet as pq

    field = pq.read_schema(source.files[0]).field(column)
    return getattr(field.type, "tz", None)


def _sniffed_formats(engine: _Engine, source: _Source) -> list[str]:
    """The date and timestamp formats DuckDB's sniffer found in the first CSV file."""
    row = engine.one(
        f"SELECT DateFormat, TimestampFormat FROM sniff_csv({_quote(source.files[0])})"
    )
    return [f for f in row if f]


def _text_date(col: str, date_format: str | None, formats: Sequence[str] = ()) -> str:
    """SQL parsing text dates at wall-clock time (a trailing UTC offset is dropped)."""
    text = f"trim({col})"
    # Only text longer than a date ("2024-01-15") can hold a time and an offset.
    wall_clock = (
        f"CASE WHEN length({text}) > 10 THEN regexp_replace({text}, '{OFFSET_PATTERN}', '\\1') "
        f"ELSE {text} END"
    )
    if date_format is not None:
        wall_format = strip_offset_code(date_format)
        parsed = wall_clock if wall_format != date_format else text
        return f"CAST(try_strptime({parsed}, {_quote(wall_format)}) AS TIMESTAMP)"
    parsed = [f"CAST(try_strptime({text}, {_quote(f)}) AS TIMESTAMP)" for f in formats]
    return f"coalesce({', '.join([f'TRY_CAST({wall_clock} AS TIMESTAMP)', *parsed])})"


def _date_expression(
    engine: _Engine,
    source: _Source,
    column: str,
    sql_type: str,
    date_format: str | None,
    context: str,
) -> str:
    """SQL turning the date column into a wall-clock TIMESTAMP (NULL where unparsable).

    ``sql_type`` is the type DuckDB stores (Parquet) or sniffed (CSV, whose columns are
    read as text whatever the sniffer thinks, so that a late row cannot break the read).
    """
    col = _ident(column)
    if date_format is not None:
        # Else DuckDB's complaint would only say that the files could not be read.
        error = engine.error_of(f"SELECT try_strptime('2000-01-01', {_quote(str(date_format))})")
        if error is not None:
            raise ValueError(
                f"{context}: date_format={date_format!r} is not a valid format: {error}"
            )
    if sql_type == "BOOLEAN":
        raise DataValidationError(f"{context}: column '{column}' holds booleans, not dates")
    if _is_numeric(sql_type) and date_format is None:
        raise DataValidationError(
            f"{context}: column '{column}' holds numbers, not dates: convert it, or "
            "pass date_format (e.g. date_format='%Y%m%d' for 19970101)"
        )
    if source.kind == "csv":
        formats = _sniffed_formats(engine, source) if sql_type.startswith(("DATE", "TIME")) else []
        return _text_date(col, date_format, formats)
    if sql_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"timezone({_quote(_parquet_time_zone(source, column) or 'UTC')}, {col})"
    if sql_type.startswith(("TIMESTAMP", "DATE")) and sql_type != "DATE[]":
        return f"CAST({col} AS TIMESTAMP)"
    if _is_numeric(sql_type):
        text = f"CAST(TRY_CAST({col} AS BIGINT) AS VARCHAR)"
        return f"CAST(try_strptime({text}, {_quote(str(date_format))}) AS TIMESTAMP)"
    if sql_type == "VARCHAR":
        return _text_date(col, date_format)
    raise DataValidationError(
        f"{context}: column '{column}' holds values of type {sql_type}, not dates"
    )


def _period_expression(ts: str, freq: str) -> str:
    """SQL for pandas' period ordinal of the TIMESTAMP expression ``ts``."""
    base = freq_base(freq)
    day = f"CAST(CAST({ts} AS DATE) - DATE '1970-01-01' AS BIGINT)"
    if base == "D":
        return day
    if base == "h":
        return f"date_diff('hour', TIMESTAMP '1970-01-01', {ts})"
    if base == "W":
        return f"CAST(floor(({day} + {week_offset(freq)}) / 7.0) AS BIGINT) + 1"
    year = f"(year({ts}) - 1970)"
    if base == "M":
        return f"({year} * 12 + month({ts}) - 1)"
    if base == "Q":
        return f"({year} * 4 + quarter({ts}) - 1)"
    return year


def _value_expression(column: str, sql_type: str, context: str) -> str:
    if sql_type == "BOOLEAN":
        raise DataValidationError(f"{context}: column '{column}' holds booleans, not values")
    if _is_numeric(sql_type) or sql_type == "VARCHAR":
        return f"TRY_CAST({_ident(column)} AS DOUBLE)"
    raise DataValidationError(
        f"{context}: column '{column}' holds values of type {sql_type}, not amounts"
    )


@dataclass
class _Label:
    """An id or group column: SQL for its value and for "missing" (NULL, blank, NaN)."""

    column: str
    raw: str  # the column as stored (text for CSV)
    missing: str
    # For CSV text the sniffer's guess ("BIGINT", "DOUBLE" or "VARCHAR"), checked on every
    # row: the column is converted only if all of them convert, as in pandas.read_csv.
    candidate: str = "VARCHAR"

    def type_checks(self) -> list[str]:
        """Whether a present value is not an integer, and not a decimal number."""
        if self.candidate == "VARCHAR":
            return []
        present = f"NOT ({self.missing})"
        not_decimal = f"NOT regexp_full_match({self.raw}, '{_DECIMAL_TEXT}')"
        checks = [f"{present} AND {not_decimal}"]
        if self.candidate == "BIGINT":
            not_integer = (
                f"NOT regexp_full_match({self.raw}, '{_INTEGER_TEXT}') "
                f"OR TRY_CAST({self.raw} AS BIGINT) IS NULL"
            )
            checks.insert(0, f"{present} AND ({not_integer})")
        return checks

    def value(self, failures: Sequence[int]) -> str:
        """The SQL of the column, given the counts of :meth:`type_checks`."""
        if self.candidate == "BIGINT" and failures[0] == 0:
            return f"CAST({self.raw} AS BIGINT)"
        if self.candidate != "VARCHAR" and failures[-1] == 0:
            return f"CAST({self.raw} AS DOUBLE)"
        return self.raw


def _label(column: str, sql_type: str, source: _Source, what: str, context: str) -> _Label:
    if _is_nested(sql_type) or sql_type == "BIT":
        raise DataValidationError(
            f"{context}: column '{column}' holds values of type {sql_type}, not single {what} "
            "values (use text or numbers)"
        )
    col = _ident(column)
    if source.kind == "csv":
        candidate = "VARCHAR"
        if _is_numeric(sql_type):
            candidate = "BIGINT" if sql_type.startswith(_INTEGER_TYPES) else "DOUBLE"
        missing = f"({col} IS NULL OR regexp_full_match({col}, '{_BLANK_TEXT}'))"
        return _Label(column, col, missing, candidate)
    missing = f"{col} IS NULL"
    if sql_type == "VARCHAR":
        missing = f"({col} IS NULL OR regexp_full_match({col}, '{_BLANK_TEXT}'))"
    elif sql_type in ("FLOAT", "DOUBLE"):
        missing = f"({col} IS NULL OR isnan({col}))"
    return _Label(column, col, missing)


# --------------------------------------------------------------------------------------
# The two passes: validation, then one group-by
# --------------------------------------------------------------------------------------
@dataclass
class _Plan:
    engine: _Engine
    source: _Source
    context: str
    customer_col: str
    date_col: str
    value_col: str | None
    group_col: str | None
    freq: str
    cust: str
    ts: str  # SQL of the parsed timestamp, on the file's columns
    period: str  # SQL of the period ordinal, on the alias "ts"
    value: str | None
    group: str | None
    group_missing: str | None
    n_null_group: int
    n_rows: int
    max_moment: np.datetime64
    min_moment: np.datetime64
    n_negative: int
    sums_may_overflow: bool

    def tx(self) -> str:
        """The parsed transactions as a sub-query: cid, per, v, g.

        Only the needed columns are selected, under fixed aliases, so that no column of
        the file can shadow them.
        """
        inner = ", ".join(
            [
                f"{self.cust} AS cid",
                f"{self.ts} AS ts",
                f"{self.value} AS v" if self.value else "NULL::DOUBLE AS v",
                f"{self.group} AS g" if self.group else "NULL AS g",
            ]
        )
        return (
            f"SELECT cid, {self.period} AS per, v, g "
            f"FROM (SELECT {inner} FROM {self.source.relation()})"
        )


def _examples(
    engine: _Engine, source: _Source, where: str, *select: str
) -> tuple[list, list[tuple]]:
    """The first offending rows, for an error message (runs only when one is raised).

    Returns their row numbers (counted from 0 after the header in each file, as
    ``pandas.read_csv`` numbers them; ``file:row`` when there are several files) and
    the selected values. Files are read one at a time, in order, single-threaded.
    """
    engine.run("SET threads = 1")
    engine.run("SET preserve_insertion_order = true")
    rows: list = []
    values: list[tuple] = []
    for path in source.files:
        try:
            found = engine.rows(
                f"SELECT row_number() OVER () - 1, {', '.join(select)} "
                f"FROM {source.relation([path])} QUALIFY {where} LIMIT {_SHOW - len(rows)}"
            )
        except DataValidationError:  # a file without one of the columns: none there
            continue
        for row, *picked in found:
            rows.append(row if len(source.files) == 1 else f"{Path(path).name}:{row}")
            values.append(tuple(picked))
        if len(rows) >= _SHOW:
            break
    return rows, values


def _report(engine: _Engine, source: _Source, where: str, raw: str | None, cust: str) -> str:
    """"first values [...]; first rows [...] (customers [...])" of the offending rows."""
    select = [raw, cust] if raw is not None else [cust]
    rows, values = _examples(engine, source, where, *select)
    customers = [_short(v[-1]) for v in values]
    shown = f"first values {[_short(v[0]) for v in values]}; " if raw is not None else ""
    return f"{shown}first rows {rows} (customers {customers})"


def _short(value: Any) -> Any:
    """A value for a message, its repr cut to 60 characters on one line."""
    text = repr(value)
    return value if len(text) <= 60 and "\n" not in text else text.replace("\n", " ")[:60] + "..."


def _plan(
    engine: _Engine,
    transactions: Any,
    customer_col: str,
    date_col: str,
    value_col: str | None,
    group_col: str | None,
    date_format: str | None,
    freq: str,
    context: str,
) -> _Plan:
    freq_base(freq)
    source = _resolve(transactions)
    engine.failure = f"{context}: could not read {source.patterns}"
    described = engine.rows(f"DESCRIBE SELECT * FROM {source.relation()}")
    types = {name: sql_type for name, sql_type, *_ in described}
    needed = [customer_col, date_col] + [c for c in (value_col, group_col) if c is not None]
    for col in needed:
        if not isinstance(col, str):
            raise ValueError(f"{context}: a column name must be a string, got {col!r}")
    missing = [c for c in needed if c not in types]
    if missing:
        raise DataValidationError(
            f"{context}: missing column(s) {missing}; the data has columns {list(types)}"
        )
    if group_col is not None and group_col == customer_col:
        raise ValueError(f"{context}: group_col and customer_col are both {group_col!r}")
    for col in (date_col, value_col):
        if col is not None and _is_nested(types[col]):
            raise DataValidationError(
                f"{context}: column '{col}' holds values of type {types[col]}, not single values"
            )

    customer = _label(customer_col, types[customer_col], source, "customer id", context)
    group = None
    if group_col is not None:
        group = _label(group_col, types[group_col], source, "group", context)
    ts_expr = _date_expression(engine, source, date_col, types[date_col], date_format, context)
    value = None if value_col is None else _value_expression(value_col, types[value_col], context)
    if source.kind == "csv":
        # Read every needed column as text and convert it here, counting what fails: the
        # sniffer's types hold for the rows it sampled, not for row 30,000.
        source.text_columns = tuple(dict.fromkeys(needed))
    raw_date = _ident(date_col)
    date_missing = f"{raw_date} IS NULL"
    if source.kind == "csv" or types[date_col] == "VARCHAR":
        date_missing = f"({raw_date} IS NULL OR regexp_full_match({raw_date}, '{_BLANK_TEXT}'))"
    far = f"(ts < TIMESTAMP '{DATE_MIN}' OR ts >= TIMESTAMP '{DATE_END}')"
    # Every row's checks in one projection (each expression evaluated once), counted below.
    flags = {
        "cm": customer.missing,
        "dm": date_missing,
        "ts": ts_expr,
        "v": value or "NULL::DOUBLE",
        "gm": group.missing if group is not None else "false",
    }
    label_checks = [*customer.type_checks(), *(group.type_checks() if group else [])]
    flags.update({f"t{i}": check for i, check in enumerate(label_checks)})
    checks = [
        "count(*)",
        "count(*) FILTER (WHERE cm)",
        "count(*) FILTER (WHERE dm)",
        "count(*) FILTER (WHERE NOT dm AND ts IS NULL)",
        f"count(*) FILTER (WHERE {far})",
        f"max(ts) FILTER (WHERE NOT {far})",
        f"min(ts) FILTER (WHERE NOT {far})",
        "count(*) FILTER (WHERE v IS NULL OR NOT isfinite(v))",
        "count(*) FILTER (WHERE v < 0)",
        "count(*) FILTER (WHERE gm)",
        "max(abs(v)) FILTER (WHERE isfinite(v))",
        *[f"count(*) FILTER (WHERE t{i})" for i in range(len(label_checks))],
    ]
    projection = ", ".join(f"{sql} AS {alias}" for alias, sql in flags.items())
    stats = engine.one(
        f"SELECT {', '.join(checks)} FROM (SELECT {projection} FROM {source.relation()})"
    )
    n_rows, null_cust, null_date, bad_date, far_date, max_ts, min_ts = stats[:7]
    bad_value, n_negative, null_group = stats[7:10] if value is not None else (0, 0, stats[9])
    largest_value = stats[10] if value is not None else None
    failures = list(stats[11:])
    cust_failures = failures[: len(customer.type_checks())]
    group_failures = failures[len(cust_failures) :]
    far = f"({ts_expr} < TIMESTAMP '{DATE_MIN}' OR {ts_expr} >= TIMESTAMP '{DATE_END}')"

    pre = f"{context}: "
    if n_rows == 0:
        raise DataValidationError(f"{pre}the transaction log is empty")
    if null_cust:
        rows, _ = _examples(engine, source, customer.missing, customer.raw)
        raise DataValidationError(
            f"{pre}column '{customer_col}': {null_cust} of {n_rows} rows have no customer id; "
            f"first rows {rows} (empty strings count as missing)"
        )
    if null_date:
        raise DataValidationError(
            f"{pre}column '{date_col}': {null_date} of {n_rows} rows have no date; "
            f"{_report(engine, source, date_missing, None, customer.raw)}"
        )
    if bad_date:
        hint = (
            f"with date_format={date_format!r}"
            if date_format
            else "as ISO 8601; pass date_format, e.g. '%Y-%m-%d'"
        )
        where = f"NOT {date_missing} AND {ts_expr} IS NULL"
        raise DataValidationError(
            f"{pre}column '{date_col}': {bad_date} of {n_rows} rows could not be parsed as "
            f"dates ({hint}); {_report(engine, source, where, raw_date, customer.raw)}"
        )
    if far_date:
        raise DataValidationError(
            f"{pre}column '{date_col}': {far_date} of {n_rows} rows are dates outside "
            f"{DATE_RANGE_TEXT}; {_report(engine, source, far, raw_date, customer.raw)}"
        )
    if bad_value:
        where = f"{value} IS NULL OR NOT isfinite({value})"
        raise DataValidationError(
            f"{pre}column '{value_col}': {bad_value} of {n_rows} rows are missing, infinite or "
            f"not numbers; {_report(engine, source, where, _ident(value_col), customer.raw)}"
        )
    return _Plan(
        engine=engine,
        source=source,
        context=context,
        customer_col=customer_col,
        date_col=date_col,
        value_col=value_col,
        group_col=group_col,
        freq=freq,
        cust=customer.value(cust_failures),
        ts=ts_expr,
        period=_period_expression("ts", freq),
        value=value,
        group=None if group is None else group.value(group_failures),
        group_missing=None if group is None else group.missing,
        n_null_group=int(null_group),
        n_rows=int(n_rows),
        max_moment=np.datetime64(pd.Timestamp(max_ts).to_datetime64(), "us"),
        min_moment=np.datetime64(pd.Timestamp(min_ts).to_datetime64(), "us"),
        n_negative=int(n_negative),
        # No customer's values can add up beyond the float range when all rows'
        # together cannot: then the per-customer check is skipped (and its column).
        sums_may_overflow=largest_value is not None
        and float(largest_value) * int(n_rows) > 0.5 * np.finfo(np.float64).max,
    )


def _duration_sql(start: str, end: str, freq: str, time_unit: str) -> str:
    """SQL for :func:`clvmodels.units.durations` between the period ordinals ``start``
    and ``end``, with the same float operations, so the results agree to the last bit."""
    base = freq_base(freq)
    steps = f"(({end}) - ({start}))"
    unit = f"{UNIT_HOURS[time_unit]!r}::DOUBLE"
    if base in FIXED_PERIOD_HOURS:
        return f"(CAST({steps} AS DOUBLE) * {FIXED_PERIOD_HOURS[base]!r}::DOUBLE / {unit})"
    months = CALENDAR_PERIOD_MONTHS[base]
    if time_unit in ("M", "Y"):
        per_unit = 1.0 if time_unit == "M" else 12.0
        return f"(CAST({steps} * {months} AS DOUBLE) / {per_unit!r}::DOUBLE)"

    def period_start(ordinal: str) -> str:
        return f"(TIMESTAMP '1970-01-01' + to_months(CAST(({ordinal}) * {months} AS INTEGER)))"

    hours = f"date_diff('hour', {period_start(start)}, {period_start(end)})"
    return f"(CAST({hours} AS DOUBLE) / {unit})"


def _aggregate(
    plan: _Plan,
    cal_period: int,
    end_period: int,
    time_unit: str = "W",
    *,
    log_spend: bool = False,
    regularity: bool = False,
) -> pd.DataFrame:
    """Per-customer statistics of the calibration window (up to ``cal_period``) and of
    the holdout window ``(cal_period, end_period]``, from one group-by.

    Every customer of the log comes back, including those whose first purchase is
    after the cut-off (their calibration columns are NULL), so they can be counted.
    The checks that need the group-by (values too large to add up, groups) run here.
    With ``log_spend`` or ``regularity`` each purchase period also learns its
    customer's previous one (a window over the periods), which marks the repeat periods
    and gives the gaps: ``log_value_sum`` and ``n_nonpositive`` (logs of the repeat
    periods' values, and how many have none), ``log_gap_sum`` (logs of the gaps).
    """
    cal = f"per <= {cal_period}"
    hold = f"per > {cal_period} AND per <= {end_period}"
    g_min, g_max = ("min(g)", "max(g)") if plan.group else ("NULL", "NULL")
    # Sums of absolute values: for the log-spend threshold, and to find customers whose
    # values add up beyond the float range where the log's values could.
    absolute = "fsum(abs(v)) AS av," if log_spend or plan.sums_may_overflow else ""
    overflow = "NOT isfinite(fsum(av)) AS beyond_range," if plan.sums_may_overflow else ""
    logs = ""
    source = "pp"
    if log_spend or regularity:
        source = "(SELECT *, lag(per) OVER (PARTITION BY cid ORDER BY per) AS prev FROM pp)"
        repeat = f"{cal} AND prev IS NOT NULL"
        # Positive beyond the rounding of the period's sum (as in the pandas path); CASE
        # keeps ln away from the others (an error in DuckDB): they are counted instead.
        positive = f"v > n_rows * {EPS!r}::DOUBLE * av"
        logs = "".join(
            [
                f"fsum(ln(CASE WHEN {positive} THEN v END)) FILTER (WHERE {repeat}) "
                f"AS log_value_sum, count(*) FILTER (WHERE {repeat} AND NOT ({positive})) "
                "AS n_nonpositive,"
                if log_spend
                else "",
                f"fsum(ln({_duration_sql('prev', 'per', plan.freq, time_unit)})) "
                f"FILTER (WHERE {repeat}) AS log_gap_sum,"
                if regularity
                else "",
            ]
        )
    sql = f"""
        WITH pp AS (
            SELECT cid, per, fsum(v) AS v, {absolute} count(*) AS n_rows,
                   {g_min} AS g_min, {g_max} AS g_max
            FROM ({plan.tx()}) GROUP BY cid, per
        )
        SELECT
            {logs}
            cid,
            count(*) FILTER (WHERE {cal}) AS n_periods,
            min(per) AS first_any,
            max(per) FILTER (WHERE {cal}) AS last,
            fsum(v) FILTER (WHERE {cal}) - arg_min(v, per) AS repeat_value,
            count(*) FILTER (WHERE {hold}) AS n_holdout,
            fsum(v) FILTER (WHERE {hold}) AS holdout_value,
            sum(n_rows) FILTER (WHERE {cal}) AS rows_cal,
            sum(n_rows) FILTER (WHERE {hold}) AS rows_hold,
            {overflow}
            min(g_min) AS g_min,
            max(g_max) AS g_max
        FROM {source} GROUP BY cid ORDER BY cid
    """
    frame = plan.engine.run(sql).df()
    if plan.sums_may_overflow:
        # One flag per customer, not the sums themselves: 10M customers' sums would be
        # another 80 MB held, and copied, beside the summary.
        over = frame.pop("beyond_range").to_numpy(dtype=bool)
        if over.any():
            ids = frame["cid"].to_numpy()[over][:_SHOW].tolist()
            raise DataValidationError(
                f"{plan.context}: column '{plan.value_col}': the values of {int(over.sum())} "
                "customer(s) add up beyond the float range (about "
                f"{np.finfo(np.float64).max:.3g}) in absolute value, so their sums would be "
                f"infinite; first customer ids {ids}; rescale the values (e.g. to thousands)"
            )
    if plan.n_null_group:
        report = _report(plan.engine, plan.source, str(plan.group_missing), None, plan.cust)
        raise DataValidationError(
            f"{plan.context}: column '{plan.group_col}': {plan.n_null_group} of {plan.n_rows} "
            f"rows have no group; {report}"
        )
    if plan.group and (several := frame["g_min"] != frame["g_max"]).any():
        _several_groups(plan, frame, several.to_numpy())
    return frame


def _several_groups(plan: _Plan, frame: pd.DataFrame, several: np.ndarray) -> None:
    ids = frame["cid"].to_numpy()[several][:_SHOW]
    listed = ", ".join(_quote(str(i)) if isinstance(i, str) else str(i) for i in ids)
    rows = plan.engine.rows(
        f"SELECT cid, list(DISTINCT g ORDER BY g) FROM ({plan.tx()}) "
        f"WHERE cid IN ({listed}) GROUP BY cid ORDER BY cid"
    )
    shown = {cid: groups for cid, groups in rows}
    raise DataValidationError(
        f"{plan.context}: column '{plan.group_col}': a customer's group must be constant, but "
        f"{int(several.sum())} customers have several groups; first: {shown}"
    )


def _summary_columns(
    plan: _Plan, agg: pd.DataFrame, end_period: int, freq: str, time_unit: str
) -> pd.DataFrame:
    """The rfm_summary frame of the customers present in the calibration window."""
    first = agg["first_any"].to_numpy(dtype=np.int64)
    last = agg["last"].to_numpy(dtype=np.int64)
    frequency = agg["n_periods"].to_numpy(dtype=np.int64) - 1
    columns: dict[str, Any] = {
        "frequency": frequency.astype(np.int64),
        "recency": durations(first, last, freq, time_unit).astype(np.float64),
        "T": durations(first, end_period, freq, time_unit).astype(np.float64),
    }
    if plan.value is not None:
        repeat = agg["repeat_value"].to_numpy(dtype=np.float64)
        columns["monetary_value"] = mean_or_zero(repeat, frequency)
    if "log_value_sum" in agg.columns:
        total = agg["log_value_sum"].fillna(0.0).to_numpy(dtype=np.float64)
        no_log = agg["n_nonpositive"].to_numpy(dtype=np.int64) > 0
        columns[LOG_SPEND_COLUMN] = np.where(no_log, np.nan, mean_or_zero(total, frequency))
    if "log_gap_sum" in agg.columns:
        columns[REGULARITY_COLUMN] = agg["log_gap_sum"].fillna(0.0).to_numpy(dtype=np.float64)
    if plan.group_col is not None:
        columns[plan.group_col] = _hashable(pd.Index(agg["g_min"])).to_numpy()
    index = _hashable(pd.Index(agg["cid"], name=plan.customer_col))
    return pd.DataFrame(columns, index=index)


def _check_split(
    context: str,
    cal_moment: np.datetime64,
    cal_period: int,
    end_moment: np.datetime64,
    end_period: int,
    freq: str,
) -> None:
    if end_period <= cal_period:
        raise ValueError(
            f"{context}: observation_end ({iso(end_moment)}) must fall in a later {freq!r} "
            f"period than calibration_end ({iso(cal_moment)})"
        )


def _hashable(labels: pd.Index) -> pd.Index:
    """Binary ids come back from DuckDB as bytearrays; pandas keeps them as bytes."""
    if labels.dtype == object and len(labels) and isinstance(labels[0], bytearray):
        return pd.Index([bytes(b) for b in labels], name=labels.name, dtype=object)
    return labels


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
def rfm_summary_duckdb(
    transactions: str | Path | Sequence[str | Path],
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
    memory_limit: str | None = "2GB",
    temp_directory: str | Path | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """:func:`clvmodels.rfm_summary` of Parquet or CSV files, computed out of core in DuckDB.

    Parameters
    ----------
    transactions : path, glob, folder, or list of those
        Parquet files (``*.parquet``) or CSV files (``*.csv``, optionally ``.gz`` /
        ``.zst`` compressed), all of one format, with the same columns. A folder
        means every such file below it.
    customer_col, date_col, value_col, observation_end, freq, time_unit, group_col, date_format
        As in :func:`clvmodels.rfm_summary`.
    log_spend, regularity
        As in :func:`clvmodels.rfm_summary`: ``monetary_log_mean`` and
        ``log_interpurchase_sum`` (a window over each customer's purchase periods;
        their logs and sums agree with the pandas path up to rounding, see the module
        notes).
    memory_limit : str or None, default "2GB"
        DuckDB's memory limit (e.g. ``"500MB"``); beyond it DuckDB spills to
        ``temp_directory``. None leaves DuckDB's default (80% of the RAM).
    temp_directory : path, optional
        Folder for spilled data; by default a fresh temporary folder, removed after.
    threads : int, optional
        DuckDB worker threads; by default one per core.

    Returns
    -------
    DataFrame
        What :func:`clvmodels.rfm_summary` returns for the same transactions in
        memory: the same index, columns, dtypes and ``attrs``, the same values up to
        the rounding of ``monetary_value``'s sums (see the module notes).

    Raises
    ------
    FileNotFoundError
        When a path or glob matches no file.
    DataValidationError
        For the problems :func:`clvmodels.rfm_summary` reports.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from clvmodels import load_cdnow
    >>> from clvmodels.outofcore import rfm_summary_duckdb
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cdnow.parquet"
    >>> load_cdnow().to_parquet(path)
    >>> summary = rfm_summary_duckdb(path, "customer_id", "date", "amount",
    ...                              observation_end="1997-09-30")
    >>> summary.loc[1, ["frequency", "recency", "T", "monetary_value"]].round(3).to_list()
    [2.0, 30.429, 38.857, 22.345]
    >>> len(summary), int(summary["frequency"].sum())
    (2357, 2457)
    """
    context = "rfm_summary"
    check_log_options(value_col, log_spend, regularity, context)
    check_time_unit(time_unit)
    freq_base(freq)
    end_moment = end_period = None
    if observation_end is not None:
        end_moment, end_period = cutoff(observation_end, "observation_end", date_format, freq)
    with _Engine(memory_limit, temp_directory, threads) as engine:
        plan = _plan(
            engine, transactions, customer_col, date_col, value_col, group_col, date_format,
            freq, context,
        )
        if end_period is None:
            end_moment = plan.max_moment
            end_period = period_ordinal(end_moment, freq)
        agg = _aggregate(
            plan, end_period, end_period, time_unit, log_spend=log_spend, regularity=regularity
        )
    present = agg["n_periods"].to_numpy() > 0
    if not present.any():
        raise DataValidationError(
            f"{context}: no transaction falls on or before observation_end "
            f"{iso(end_moment)}; the first is on {iso(plan.min_moment)}"
        )
    n_customers_all = len(agg)
    agg = agg[present]
    frame = _summary_columns(plan, agg, end_period, freq, time_unit)
    n_kept = int(agg["rows_cal"].sum())
    frame.attrs.update(
        {
            "kind": "rfm_summary",
            "time_unit": time_unit,
            "freq": freq,
            "observation_end": iso(end_moment),
            "customer_col": customer_col,
            "date_col": date_col,
            "value_col": value_col,
            "group_col": group_col,
            "n_customers": len(frame),
            "n_transactions": n_kept,
            "n_transactions_excluded_after_end": plan.n_rows - n_kept,
            "n_customers_first_purchase_after_end": n_customers_all - len(frame),
            "n_negative_values": plan.n_negative,
            **log_attrs(frame),
        }
    )
    return frame


def read_transactions_duckdb(
    transactions: str | Path | Sequence[str | Path],
    customer_col: str,
    date_col: str,
    value_col: str | None = None,
    *,
    group_col: str | None = None,
    date_format: str | None = None,
    memory_limit: str | None = "2GB",
    temp_directory: str | Path | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """The transaction columns of Parquet or CSV files, read and checked by DuckDB.

    Only the named columns are read, with the checks and the date and value parsing
    of :func:`rfm_summary_duckdb` (so the rows are the ones the summaries count): for
    per-transaction work on files, such as the tracking check of a report.

    Parameters
    ----------
    transactions, memory_limit, temp_directory, threads
        As in :func:`rfm_summary_duckdb`.
    customer_col, date_col, value_col, group_col, date_format
        As in :func:`clvmodels.rfm_summary`.

    Returns
    -------
    DataFrame
        One row per transaction with the named columns, in file order: dates as
        wall-clock ``datetime64``, values as float.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from clvmodels import load_cdnow
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cdnow.csv"
    >>> load_cdnow().to_csv(path, index=False)
    >>> log = read_transactions_duckdb(path, "customer_id", "date", "amount")
    >>> len(log), list(log.columns), str(log["date"].dtype).startswith("datetime64")
    (6919, ['customer_id', 'date', 'amount'], True)
    """
    with _Engine(memory_limit, temp_directory, threads) as engine:
        plan = _plan(
            engine, transactions, customer_col, date_col, value_col, group_col, date_format,
            "D", "read_transactions",
        )
        columns = [f"{plan.cust} AS {_ident(customer_col)}", f"{plan.ts} AS {_ident(date_col)}"]
        if plan.value is not None:
            columns.append(f"{plan.value} AS {_ident(str(value_col))}")
        if plan.group is not None:
            columns.append(f"{plan.group} AS {_ident(str(group_col))}")
        engine.con.execute("SET preserve_insertion_order = true")
        return engine.con.execute(
            f"SELECT {', '.join(columns)} FROM {plan.source.relation()}"
        ).df()


def calibration_holdout_split_duckdb(
    transactions: str | Path | Sequence[str | Path],
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
    memory_limit: str | None = "2GB",
    temp_directory: str | Path | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """:func:`clvmodels.calibration_holdout_split` of Parquet or CSV files, in DuckDB.

    Parameters
    ----------
    transactions, memory_limit, temp_directory, threads
        As in :func:`rfm_summary_duckdb`.
    customer_col, date_col, value_col, calibration_end, observation_end, freq, time_unit
        As in :func:`clvmodels.calibration_holdout_split`.
    group_col, date_format, log_spend, regularity
        As in :func:`clvmodels.calibration_holdout_split`.

    Returns
    -------
    DataFrame
        Exactly what :func:`clvmodels.calibration_holdout_split` returns for the same
        transactions in memory.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from clvmodels import load_cdnow
    >>> from clvmodels.outofcore import calibration_holdout_split_duckdb
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cdnow.parquet"
    >>> load_cdnow().to_parquet(path)
    >>> split = calibration_holdout_split_duckdb(
    ...     path, "customer_id", "date", "amount",
    ...     calibration_end="1997-09-30", observation_end="1998-06-30")
    >>> int(split["frequency"].sum()), int(split["frequency_holdout"].sum())
    (2457, 1882)
    """
    context = "calibration_holdout_split"
    check_log_options(value_col, log_spend, regularity, context)
    check_time_unit(time_unit)
    freq_base(freq)
    cal_moment, cal_period = cutoff(calibration_end, "calibration_end", date_format, freq)
    end_moment = end_period = None
    if observation_end is not None:
        end_moment, end_period = cutoff(observation_end, "observation_end", date_format, freq)
        _check_split(context, cal_moment, cal_period, end_moment, end_period, freq)
    with _Engine(memory_limit, temp_directory, threads) as engine:
        plan = _plan(
            engine, transactions, customer_col, date_col, value_col, group_col, date_format,
            freq, context,
        )
        if end_period is None:
            end_moment = plan.max_moment
            end_period = period_ordinal(end_moment, freq)
            _check_split(context, cal_moment, cal_period, end_moment, end_period, freq)
        agg = _aggregate(
            plan, cal_period, end_period, time_unit, log_spend=log_spend, regularity=regularity
        )
    present = agg["n_periods"].to_numpy() > 0
    if not present.any():
        raise DataValidationError(
            f"{context}: no transaction falls on or before calibration_end "
            f"{iso(cal_moment)}; the first is on {iso(plan.min_moment)}"
        )
    first_any = agg["first_any"].to_numpy(dtype=np.int64)
    rows_cal = int(agg["rows_cal"].sum())
    known = agg[present]
    rows_hold = int(known["rows_hold"].sum())
    rows_hold_all = int(agg["rows_hold"].sum())
    frame = _summary_columns(plan, known, cal_period, freq, time_unit)
    counts = known["n_holdout"].to_numpy(dtype=np.int64)
    frame["frequency_holdout"] = counts
    if plan.value is not None:
        totals = known["holdout_value"].fillna(0.0).to_numpy(dtype=np.float64)
        frame["monetary_value_holdout"] = mean_or_zero(totals, counts)
    frame["duration_holdout"] = float(durations(cal_period, end_period, freq, time_unit))
    frame.attrs.update(
        {
            "kind": "calibration_holdout",
            "time_unit": time_unit,
            "freq": freq,
            "calibration_end": iso(cal_moment),
            "observation_end": iso(end_moment),
            "customer_col": customer_col,
            "date_col": date_col,
            "value_col": value_col,
            "group_col": group_col,
            "n_customers": len(frame),
            "n_transactions": rows_cal + rows_hold_all,
            "n_transactions_calibration": rows_cal,
            "n_transactions_holdout": rows_hold,
            "n_transactions_excluded_after_end": plan.n_rows - rows_cal - rows_hold_all,
            "n_customers_first_purchase_after_calibration": int(
                np.count_nonzero((first_any > cal_period) & (first_any <= end_period))
            ),
            "n_customers_first_purchase_after_end": int(np.count_nonzero(first_any > end_period)),
            "n_negative_values": plan.n_negative,
            **log_attrs(frame),
        }
    )
    return frame
