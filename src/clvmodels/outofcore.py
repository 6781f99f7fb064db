"""Customer summaries of transaction files larger than memory, computed in DuckDB.

:func:`rfm_summary_duckdb` and :func:`calibration_holdout_split_duckdb` read Parquet
or CSV files (a path, a list of paths, a glob or a folder) and run the whole
aggregation in DuckDB: the transactions never enter pandas, only the per-customer
result comes back. DuckDB streams the files and spills its hash tables to a temporary
folder when they outgrow ``memory_limit``, so the log may be far larger than memory.

The results follow :func:`clvmodels.rfm_summary` and
:func:`clvmodels.calibration_holdout_split`: same index, columns, dtypes, ``attrs``
and validation errors, and the same counts and durations to the last bit. Summed
values are the one exception: pandas and DuckDB add a customer's values in different
orders and with different algorithms, so ``monetary_value`` and
``monetary_value_holdout`` may differ by the rounding of those sums, which is bounded
by the values added, not by the result: at most about ``(n + 1) * eps * sum(|x|) / d``
for a mean of ``n`` values ``x`` over ``d`` periods (``eps`` = 2.2e-16). Where
purchases and refunds nearly cancel, that bound is large relative to the mean itself
(a mean of -0.0233 from purchases and returns worth hundreds may differ in its 13th
significant digit); the difference never exceeds it.

Two conventions are specific to files:

* dates with a time zone are read in their own wall-clock time, as the pandas path
  does: Parquet timestamps in the zone stored in the file, CSV dates with a UTC
  offset (``2020-01-01T23:30:00+02:00``) at the time written;
* CSV types come from DuckDB's sniffer; dates it does not recognise are parsed as
  ISO 8601 unless ``date_format`` is given.
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

from clvmodels._periods import WEEK_ANCHORS as _WEEK_ANCHORS
from clvmodels._periods import (
    check_time_unit,
    cutoff,
    durations,
    freq_base,
    iso,
    mean_or_zero,
    period_ordinal,
)
from clvmodels.data import DataValidationError

__all__ = ["calibration_holdout_split_duckdb", "is_file_source", "rfm_summary_duckdb"]

_SHOW = 5  # offending examples named in an error message
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_COMPRESSION_SUFFIXES = (".gz", ".zst")
# A UTC offset (or Z) right after a time of day: "10:00:00+02:00", "10:00Z", "10:00 +0200".
_OFFSET_PATTERN = r"(\d{2}:\d{2}(:\d{2}(\.\d+)?)?)\s*(Z|[+-]\d{2}(:?\d{2})?)$"


# --------------------------------------------------------------------------------------
# Periods and durations: the conventions of clvmodels.data, as integer period ordinals
# --------------------------------------------------------------------------------------
def week_offset(freq: str) -> int:
    """``c`` such that ``floor((epoch_day + c) / 7) + 1`` is pandas' weekly period ordinal.

    A week "W-XXX" ends on XXX and starts the day after; 1970-01-01 was a Thursday
    (weekday 3), so day ``d`` starts a week when ``(d + 3 - start) % 7 == 0``.
    """
    anchor = "SUN" if freq == "W" else freq[2:]
    start = (_WEEK_ANCHORS.index(anchor) + 1) % 7
    return (3 - start) % 7


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

    def relation(self) -> str:
        paths = "[" + ", ".join(_quote(p) for p in self.patterns) + "]"
        if self.kind == "parquet":
            return f"read_parquet({paths})"
        types = ""
        if self.text_columns:
            pairs = ", ".join(f"{_quote(c)}: 'VARCHAR'" for c in self.text_columns)
            types = f", types = {{{pairs}}}"
        return f"read_csv({paths}, union_by_name = true{types})"


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


class _Engine:
    """A private DuckDB connection with a memory limit and a spill folder."""

    def __init__(
        self, memory_limit: str | None, temp_directory: str | Path | None, threads: int | None
    ) -> None:
        import duckdb

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

    def one(self, sql: str) -> tuple:
        return self.con.execute(sql).fetchone()

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()


# --------------------------------------------------------------------------------------
# Column expressions
# --------------------------------------------------------------------------------------
_NUMERIC = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL",
)


def _is_numeric(sql_type: str) -> bool:
    return sql_type.startswith(_NUMERIC)


def _parquet_time_zone(source: _Source, column: str) -> str | None:
    import pyarrow.parquet as pq

    field = pq.read_schema(source.files[0]).field(column)
    return getattr(field.type, "tz", None)


def _date_expression(
    source: _Source, column: str, sql_type: str, date_format: str | None, context: str
) -> str:
    """SQL turning the date column into a wall-clock TIMESTAMP (NULL where unparsable)."""
    col = _ident(column)
    if sql_type == "BOOLEAN":
        raise DataValidationError(f"{context}: column '{column}' holds booleans, not dates")
    if sql_type.startswith("TIMESTAMP WITH TIME ZONE"):
        if source.kind == "parquet":
            return f"timezone({_quote(_parquet_time_zone(source, column) or 'UTC')}, {col})"
        # The sniffer turned the offsets into instants; read the text again and drop
        # each offset, which keeps the time as written.
        source.text_columns = (*source.text_columns, column)
        sql_type = "VARCHAR"
    if sql_type == "VARCHAR" and date_format is None:
        wall_clock = f"regexp_replace(trim({col}), '{_OFFSET_PATTERN}', '\\1')"
        return f"TRY_CAST({wall_clock} AS TIMESTAMP)"
    if sql_type.startswith(("TIMESTAMP", "DATE")):
        return f"CAST({col} AS TIMESTAMP)"
    if _is_numeric(sql_type):
        if date_format is None:
            raise DataValidationError(
                f"{context}: column '{column}' holds numbers, not dates: convert it, or "
                "pass date_format (e.g. date_format='%Y%m%d' for 19970101)"
            )
        text = f"CAST(CAST({col} AS BIGINT) AS VARCHAR)"
        return f"CAST(try_strptime({text}, {_quote(date_format)}) AS TIMESTAMP)"
    if date_format is not None:
        return f"CAST(try_strptime(CAST({col} AS VARCHAR), {_quote(date_format)}) AS TIMESTAMP)"
    return f"TRY_CAST({col} AS TIMESTAMP)"


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
    if _is_numeric(sql_type):
        return f"CAST({_ident(column)} AS DOUBLE)"
    return f"TRY_CAST({_ident(column)} AS DOUBLE)"


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
    n_rows: int
    max_moment: np.datetime64
    min_moment: np.datetime64
    n_negative: int

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


def _examples(engine: _Engine, source: _Source, select: str, where: str) -> list:
    """Up to five offending rows, for an error message (runs only when one is raised)."""
    rows = engine.rows(f"SELECT {select} FROM {source.relation()} WHERE {where} LIMIT {_SHOW}")
    return [r[0] if len(r) == 1 else r for r in rows]


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
    try:
        described = engine.rows(f"DESCRIBE SELECT * FROM {source.relation()}")
    except Exception as err:  # duckdb raises its own IO/parse errors
        raise DataValidationError(f"{context}: could not read {source.patterns}: {err}") from err
    types = {name: sql_type for name, sql_type, *_ in described}
    needed = [customer_col, date_col] + [c for c in (value_col, group_col) if c is not None]
    missing = [c for c in needed if c not in types]
    if missing:
        raise DataValidationError(
            f"{context}: missing column(s) {missing}; the data has columns {list(types)}"
        )
    if group_col is not None and group_col == customer_col:
        raise ValueError(f"{context}: group_col and customer_col are both {group_col!r}")

    cust = _ident(customer_col)
    ts_expr = _date_expression(source, date_col, types[date_col], date_format, context)
    value = None if value_col is None else _value_expression(value_col, types[value_col], context)
    group = None if group_col is None else _ident(group_col)
    raw_date = _ident(date_col)
    checks = [
        "count(*)",
        f"count(*) FILTER (WHERE {cust} IS NULL)",
        f"count(*) FILTER (WHERE {raw_date} IS NULL)",
        f"count(*) FILTER (WHERE {raw_date} IS NOT NULL AND {ts_expr} IS NULL)",
        f"max({ts_expr})",
        f"min({ts_expr})",
    ]
    if value is not None:
        checks += [
            f"count(*) FILTER (WHERE {value} IS NULL OR NOT isfinite({value}))",
            f"count(*) FILTER (WHERE {value} < 0)",
        ]
    if group is not None:
        checks.append(f"count(*) FILTER (WHERE {group} IS NULL)")
    stats = engine.one(f"SELECT {', '.join(checks)} FROM {source.relation()}")
    n_rows, null_cust, null_date, bad_date, max_ts, min_ts = stats[:6]
    rest = list(stats[6:])
    bad_value = n_negative = null_group = 0
    if value is not None:
        bad_value, n_negative = rest[:2]
        rest = rest[2:]
    if group is not None:
        null_group = rest[0]

    if n_rows == 0:
        raise DataValidationError(f"{context}: the transaction log is empty")
    if null_cust:
        raise DataValidationError(
            f"{context}: column '{customer_col}': {null_cust} of {n_rows} rows have no customer "
            f"id; first such rows (date) {_examples(engine, source, raw_date, f'{cust} IS NULL')}"
        )
    if null_date:
        ids = _examples(engine, source, cust, f"{raw_date} IS NULL")
        raise DataValidationError(
            f"{context}: column '{date_col}': {null_date} of {n_rows} rows have no date; "
            f"first customers {ids}"
        )
    if bad_date:
        where = f"{raw_date} IS NOT NULL AND {ts_expr} IS NULL"
        examples = _examples(engine, source, f"{raw_date}, {cust}", where)
        hint = (
            f"with date_format={date_format!r}"
            if date_format
            else "as ISO 8601; pass date_format, e.g. '%Y-%m-%d'"
        )
        raise DataValidationError(
            f"{context}: column '{date_col}': {bad_date} of {n_rows} rows could not be parsed "
            f"as dates ({hint}); first values {[e[0] for e in examples]} "
            f"(customers {[e[1] for e in examples]})"
        )
    if bad_value:
        raw = _ident(value_col)
        examples = _examples(
            engine, source, f"{raw}, {cust}", f"{value} IS NULL OR NOT isfinite({value})"
        )
        raise DataValidationError(
            f"{context}: column '{value_col}': {bad_value} of {n_rows} rows are missing, "
            f"infinite or not numbers (first values {[e[0] for e in examples]}); "
            f"customers {[e[1] for e in examples]}"
        )
    if null_group:
        ids = _examples(engine, source, cust, f"{group} IS NULL")
        raise DataValidationError(
            f"{context}: column '{group_col}': {null_group} of {n_rows} rows have no group; "
            f"first customers {ids}"
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
        cust=cust,
        ts=ts_expr,
        period=_period_expression("ts", freq),
        value=value,
        group=group,
        n_rows=int(n_rows),
        max_moment=np.datetime64(pd.Timestamp(max_ts).to_datetime64(), "us"),
        min_moment=np.datetime64(pd.Timestamp(min_ts).to_datetime64(), "us"),
        n_negative=int(n_negative),
    )


def _aggregate(plan: _Plan, cal_period: int, end_period: int) -> pd.DataFrame:
    """Per-customer statistics of the calibration window (up to ``cal_period``) and of
    the holdout window ``(cal_period, end_period]``, from one group-by.

    Every customer of the log comes back, including those whose first purchase is
    after the cut-off (their calibration columns are NULL), so they can be counted.
    """
    cal = f"per <= {cal_period}"
    hold = f"per > {cal_period} AND per <= {end_period}"
    g_min, g_max = ("min(g)", "max(g)") if plan.group else ("NULL", "NULL")
    sql = f"""
        WITH pp AS (
            SELECT cid, per, fsum(v) AS v, count(*) AS n_rows, {g_min} AS g_min, {g_max} AS g_max
            FROM ({plan.tx()}) GROUP BY cid, per
        )
        SELECT
            cid,
            count(*) FILTER (WHERE {cal}) AS n_periods,
            min(per) AS first_any,
            max(per) FILTER (WHERE {cal}) AS last,
            fsum(v) FILTER (WHERE {cal}) - arg_min(v, per) AS repeat_value,
            count(*) FILTER (WHERE {hold}) AS n_holdout,
            sum(v) FILTER (WHERE {hold}) AS holdout_value,
            sum(n_rows) FILTER (WHERE {cal}) AS rows_cal,
            sum(n_rows) FILTER (WHERE {hold}) AS rows_hold,
            min(g_min) AS g_min,
            max(g_max) AS g_max
        FROM pp GROUP BY cid ORDER BY cid
    """
    frame = plan.engine.con.execute(sql).df()
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
    if plan.group_col is not None:
        columns[plan.group_col] = pd.Index(agg["g_min"]).to_numpy()
    index = pd.Index(agg["cid"], name=plan.customer_col)
    return pd.DataFrame(columns, index=index)


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
    check_time_unit(time_unit)
    with _Engine(memory_limit, temp_directory, threads) as engine:
        plan = _plan(
            engine, transactions, customer_col, date_col, value_col, group_col, date_format,
            freq, context,
        )
        if observation_end is None:
            end_moment = plan.max_moment
            end_period = period_ordinal(end_moment, freq)
        else:
            end_moment, end_period = cutoff(observation_end, "observation_end", date_format, freq)
        agg = _aggregate(plan, end_period, end_period)
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
        }
    )
    return frame


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
    group_col, date_format
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
    check_time_unit(time_unit)
    with _Engine(memory_limit, temp_directory, threads) as engine:
        plan = _plan(
            engine, transactions, customer_col, date_col, value_col, group_col, date_format,
            freq, context,
        )
        cal_moment, cal_period = cutoff(calibration_end, "calibration_end", date_format, freq)
        if observation_end is None:
            end_moment = plan.max_moment
            end_period = period_ordinal(end_moment, freq)
        else:
            end_moment, end_period = cutoff(observation_end, "observation_end", date_format, freq)
        if end_period <= cal_period:
            raise ValueError(
                f"{context}: observation_end ({iso(end_moment)}) must fall in a later {freq!r} "
                f"period than calibration_end ({iso(cal_moment)})"
            )
        agg = _aggregate(plan, cal_period, end_period)
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
        }
    )
    return frame
