"""Reliability of the data layer (issue 15): bad input is refused with the package's own
one-line errors, and whatever is accepted gives a valid summary that accounts for every row.

First the explicit cases of the issue, each a known way a transaction log goes wrong, in
pandas, Polars and DuckDB (files); then hypothesis fuzzing of transaction logs and
summaries against a small reference implementation written here. The Spark engine's cases
are at the end of ``tests/test_spark.py``, which owns the Spark session.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tempfile
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clvmodels import (
    DataValidationError,
    calibration_holdout_split,
    compress,
    rfm_summary,
    validate_summary,
)
from clvmodels.outofcore import rfm_summary_duckdb

FLOAT_MAX = float(np.finfo(np.float64).max)
# Error messages that name no column: they are about the log as a whole.
WHOLE_LOG_PROBLEMS = ("the transaction log is empty", "no transaction falls on or before")


def sums_close(actual: float, expected: float, scale: float, terms: int) -> bool:
    """Whether two sums of the same ``terms`` values agree up to their order of addition.

    Floating-point summation errs by at most about ``terms`` units in the last place of
    the sum of the absolute values (``scale``), whatever the order.
    """
    return abs(actual - expected) <= (terms + 2) * float(np.spacing(abs(scale)))


def one_line_error(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message, message
    assert len(message) < 1000, message
    return message


@pytest.fixture
def log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 1, 2, 3, 3],
            "day": ["2024-01-01", "2024-01-05", "2024-01-02", "2024-01-03", "2024-01-09"],
            "amount": [10.0, 5.0, 7.0, 3.0, 4.0],
        }
    )


def with_column(frame: pd.DataFrame, column: str, values: list) -> pd.DataFrame:
    out = frame.copy()
    out[column] = pd.Series(values, index=out.index, dtype=object)
    return out


# --------------------------------------------------------------------------------------
# Explicit cases: refused, with the column, the count and the first rows named
# --------------------------------------------------------------------------------------
DAY = ["2024-01-01", "2024-01-05", "2024-01-02", "2024-01-03", "2024-01-09"]
AMOUNT = [5.0, 7.0, 3.0, 4.0]  # the last four amounts of the log
# case: (column, its values, what the message says)
REFUSED = {
    "list ids": ("id", [[1], [1], 2, 3, 3], r"'id': 2 of 5 rows hold lists, dicts or other"),
    "dict ids": ("id", [{"a": 1}, 1, 2, 3, 3], r"'id': 1 of 5 rows hold lists.*\{'a': 1\}"),
    "tuple ids": ("id", [(1, 2), 1, 2, 3, 3], r"'id': 1 of 5 rows hold lists.*rows \[0\]"),
    "missing id": ("id", [1, None, 2, 3, 3], r"'id': 1 of 5 rows have no customer id; first "
                   r"rows \[1\]"),
    "NaN id": ("id", [1.0, np.nan, 2.0, 3.0, 3.0], r"'id': 1 of 5 rows have no customer id"),
    "empty id": ("id", ["a", "", "b", "c", "c"], r"'id': 1 of 5 rows have no customer id.*empty"),
    "blank id": ("id", ["a", "a", " \t", "c", "c"], r"'id': 1 of 5 rows have no customer id"),
    "list dates": ("day", [["2024-01-01"], *DAY[1:]], r"'day': 1 of 5 rows could not be parsed"),
    "dict dates": ("day", [{"y": 2024}, *DAY[1:]], r"'day': 1 of 5 rows could not be parsed"),
    "NaT date": ("day", [pd.NaT, *DAY[1:]], r"'day': 1 of 5 rows have no date; first rows \[0\]"),
    "empty date": ("day", ["", *DAY[1:]], r"'day': 1 of 5 rows have no date; first rows \[0\]"),
    "bad date": ("day", ["2024-02-30", *DAY[1:]], r"'day': 1 of 5 rows could not be parsed"),
    "date 9999": ("day", ["9999-12-31", *DAY[1:]], r"'day': 1 of 5 rows are dates outside the "
                  r"supported years 1678 to 2261; first values \['9999-12-31'\]"),
    "date 0001": ("day", [dt.datetime(1, 1, 1), *DAY[1:]], r"'day': 1 of 5 rows are dates "
                  r"outside"),
    "complex amounts": ("amount", np.array([1 + 2j, *AMOUNT]), r"'amount' holds complex "
                        r"numbers, but values must be real: 1 of 5 rows"),
    "complex among amounts": ("amount", [1 + 2j, *AMOUNT], r"'amount': 1 of 5 rows are "
                              r"missing, infinite or not numbers; first values \[\(1\+2j\)\]"),
    "boolean amounts": ("amount", np.array([True, False, True, True, False]), r"'amount' holds "
                        r"booleans, not values"),
    "boolean among amounts": ("amount", [True, *AMOUNT], r"'amount': 1 of 5 rows are missing.*"
                              r"first values \[True\]"),
    "NaN amount": ("amount", [np.nan, *AMOUNT], r"'amount': 1 of 5 rows are missing, infinite "
                   r"or not numbers"),
    "empty amount": ("amount", ["", "5", "7", "3", "4"], r"'amount': 1 of 5 rows are missing"),
    "text amount": ("amount", ["10", "5", "n/a", "3", "4"], r"'amount': 1 of 5 rows .*"
                    r"\['n/a'\]; first rows \[2\] \(customers \[2\]\)"),
    "integer beyond floats": ("amount", [10**400, 5, 7, 3, 4], r"'amount': 1 of 5 rows are "
                              r"missing, infinite or not numbers"),
    "overflowing sums": ("amount", [1e308, 1e308, 7.0, 3.0, 4.0], r"'amount': the values of 1 "
                         r"customer\(s\) add up beyond the float range .* first customer ids "
                         r"\[1\]"),
    "durations as dates": ("day", pd.to_timedelta([1, 2, 3, 4, 5], unit="D"), r"'day' holds "
                           r"timedelta64\[.*\] values, not dates"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
@pytest.mark.parametrize("entry", ["rfm_summary", "calibration_holdout_split"])
def test_bad_transactions_are_refused_naming_column_count_and_rows(log, case, entry):
    column, values, message = REFUSED[case]
    frame = log.copy()
    frame[column] = values if isinstance(values, np.ndarray | pd.Index) else pd.Series(
        values, dtype=object
    )
    call = {
        "rfm_summary": lambda: rfm_summary(frame, "id", "day", "amount"),
        "calibration_holdout_split": lambda: calibration_holdout_split(
            frame, "id", "day", "amount", calibration_end="2024-01-04"
        ),
    }[entry]
    with pytest.raises(DataValidationError, match=message) as err:
        call()
    one_line_error(err.value)


def test_duplicate_column_names_are_refused(log):
    doubled = pd.concat([log, log[["amount"]]], axis=1)
    with pytest.raises(DataValidationError, match=r"column 'amount' is 2 columns of the data"):
        rfm_summary(doubled, "id", "day", "amount")
    renamed = log.set_axis(["id", "day", "id"], axis=1)
    with pytest.raises(DataValidationError, match=r"column 'id' is 2 columns"):
        calibration_holdout_split(renamed, "id", "day", calibration_end="2024-01-04")
    summary = rfm_summary(log, "id", "day", "amount")
    doubled_summary = pd.concat([summary, summary[["T"]]], axis=1)
    with pytest.raises(DataValidationError, match=r"column 'T' is 2 columns"):
        validate_summary(doubled_summary)
    with pytest.raises(DataValidationError, match=r"compress: column 'T' is 2 columns"):
        compress(doubled_summary)


def test_lists_in_groups_and_blank_groups(log):
    with pytest.raises(DataValidationError, match=r"'region': 2 of 5 rows hold lists"):
        rfm_summary(with_column(log, "region", [["n"], ["n"], "s", "s", "s"]), "id", "day",
                    group_col="region")
    with pytest.raises(DataValidationError, match=r"'region': 1 of 5 rows have no group"):
        rfm_summary(with_column(log, "region", ["n", "n", " ", "s", "s"]), "id", "day",
                    group_col="region")


def test_an_empty_log_and_a_log_after_the_cut_off(log):
    with pytest.raises(DataValidationError, match="rfm_summary: the transaction log is empty"):
        rfm_summary(log.iloc[:0], "id", "day", "amount")
    with pytest.raises(DataValidationError, match="calibration_holdout_split: the transaction"):
        calibration_holdout_split(log.iloc[:0], "id", "day", calibration_end="2024-01-04")
    with pytest.raises(
        DataValidationError,
        match=r"no transaction falls on or before observation_end 2023-12-31; the first is on "
        r"2024-01-01",
    ):
        rfm_summary(log, "id", "day", observation_end="2023-12-31")
    with pytest.raises(DataValidationError, match="on or before calibration_end 2023-12-31"):
        calibration_holdout_split(log, "id", "day", calibration_end="2023-12-31")


def test_cut_offs_outside_the_supported_years_and_bad_column_names(log):
    with pytest.raises(ValueError, match="observation_end='9999-12-31' is outside the supported"):
        rfm_summary(log, "id", "day", observation_end="9999-12-31")
    with pytest.raises(ValueError, match=r"calibration_end=\['2024-01-04'\] is not a date"):
        calibration_holdout_split(log, "id", "day", calibration_end=["2024-01-04"])
    with pytest.raises(ValueError, match=r"a column name must be a label .* got \['id'\]"):
        rfm_summary(log, ["id"], "day")


def test_summaries_with_complex_or_container_values(log):
    summary = rfm_summary(log, "id", "day", "amount")
    with pytest.raises(DataValidationError, match=r"column 'T' must be numeric \(real numbers\)"):
        validate_summary(summary.assign(T=summary["T"] + 0j))
    with pytest.raises(DataValidationError, match=r"'monetary_value' must be numeric"):
        validate_summary(summary.assign(monetary_value=[1, "a", 2]), require_monetary=True)
    with pytest.raises(DataValidationError, match=r"compress: column 'T': 1 of 3 rows hold lists"):
        compress(summary.assign(T=pd.Series([[1.0], 2.0, 3.0], dtype=object, index=summary.index)))


# --------------------------------------------------------------------------------------
# Explicit cases: accepted under a documented rule
# --------------------------------------------------------------------------------------
def test_mixed_utc_offsets_are_read_at_their_wall_clock_time(tmp_path):
    # The wall-clock rule: a date keeps the time written, whatever its offset, so that
    # 23:30+02:00 on the 1st stays on the 1st (no "Mixed timezones detected").
    days = [
        "2021-03-01T23:30:00+02:00",
        "2021-03-02 00:10:00-05:00",
        "2021-03-05T23:59:00Z",
        "2021-03-09T08:00:00",
        "2021-03-09",
    ]
    frame = pd.DataFrame({"id": [7, 7, 7, 8, 9], "at": days, "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
    summary = rfm_summary(frame, "id", "at", "v", time_unit="D")
    assert summary.loc[7].tolist() == [2, 4.0, 8.0, 2.5]
    assert summary.attrs["observation_end"] == "2021-03-09T08:00:00"
    frame.to_parquet(tmp_path / "log.parquet")
    frame.to_csv(tmp_path / "log.csv", index=False)
    for path in (tmp_path / "log.parquet", tmp_path / "log.csv"):
        pd.testing.assert_frame_equal(rfm_summary(path, "id", "at", "v", time_unit="D"), summary)
    # The same with an explicit format whose offset code (%z) varies from row to row.
    stamped = frame.iloc[:3].assign(at=["2021-03-01 23:30+0200", "2021-03-02 00:10-0500",
                                        "2021-03-05 23:59+0000"])
    expected = rfm_summary(stamped, "id", "at", "v", date_format="%Y-%m-%d %H:%M%z")
    assert expected.loc[7, "frequency"] == 2
    stamped.to_csv(tmp_path / "z.csv", index=False)
    pd.testing.assert_frame_equal(
        rfm_summary(tmp_path / "z.csv", "id", "at", "v", date_format="%Y-%m-%d %H:%M%z"),
        expected,
    )


def test_mixed_naive_and_aware_datetimes_use_their_own_wall_clock():
    utc, tokyo = dt.UTC, dt.timezone(dt.timedelta(hours=9))
    stamps = [
        dt.datetime(2024, 1, 1, 23, 0, tzinfo=tokyo),
        dt.datetime(2024, 1, 3, 1, 0),
        pd.Timestamp("2024-01-04 23:30", tz="America/New_York"),
        dt.datetime(2024, 1, 6, 0, 30, tzinfo=utc),
    ]
    frame = pd.DataFrame({"id": [1, 1, 1, 1], "at": pd.Series(stamps, dtype=object)})
    naive = frame.assign(at=pd.to_datetime(["2024-01-01 23:00", "2024-01-03 01:00",
                                            "2024-01-04 23:30", "2024-01-06 00:30"]))
    pd.testing.assert_frame_equal(
        rfm_summary(frame, "id", "at", time_unit="D"), rfm_summary(naive, "id", "at", time_unit="D")
    )


def test_polars_input_is_held_to_the_same_rules(log):
    import polars as pl
    frame = pl.from_pandas(log.assign(day=["2024-01-01T10:00+01:00", "2024-01-05T10:00-03:00",
                                           "2024-01-02", "2024-01-03", "2024-01-09"]))
    summary = rfm_summary(frame, "id", "day", "amount", time_unit="D")
    assert summary.loc[1].tolist() == [1, 4.0, 8.0, 5.0]
    listed = pl.DataFrame({"id": [[1], [1]], "day": ["2024-01-01", "2024-01-02"]})
    with pytest.raises(DataValidationError, match=r"'id': 2 of 2 rows hold lists"):
        rfm_summary(listed, "id", "day")
    _, weights, inverse = compress(pl.from_pandas(summary.reset_index()))
    assert weights.sum() == len(summary) and len(inverse) == len(summary)


def test_excluded_rows_and_customers_are_counted(log):
    split = calibration_holdout_split(
        log, "id", "day", "amount", calibration_end="2024-01-02", observation_end="2024-01-05"
    )
    attrs = split.attrs
    # 1 Jan and 2 Jan in calibration; 3 Jan (a new customer) and 5 Jan in the holdout;
    # 9 Jan after the end.
    assert (attrs["n_transactions_calibration"], attrs["n_transactions_holdout"]) == (2, 1)
    assert attrs["n_transactions_excluded_after_end"] == 1
    assert attrs["n_customers_first_purchase_after_calibration"] == 1
    assert attrs["n_transactions"] == 4  # the new customer's row is in the window
    summary = rfm_summary(log, "id", "day", observation_end="2024-01-02")
    assert summary.attrs["n_customers_first_purchase_after_end"] == 1
    assert summary.attrs["n_transactions"] + summary.attrs[
        "n_transactions_excluded_after_end"
    ] == len(log)


# --------------------------------------------------------------------------------------
# DuckDB: files whose trouble starts after the rows the type sniffer samples
# --------------------------------------------------------------------------------------
def late_trouble(path: Path, last: str, n: int = 30_000) -> Path:
    lines = ["id,day,v", *(f"{i},2020-01-{1 + i % 28:02d},1.5" for i in range(n)), last]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("last", "message"),
    [
        ("7,2020-01-02,abc", r"'v': 1 of 30001 rows are missing, infinite or not numbers; "
         r"first values \['abc'\]; first rows \[30000\] \(customers \['7'\]\)"),
        ("7,yesterday,1.0", r"'day': 1 of 30001 rows could not be parsed as dates .*"
         r"\['yesterday'\]; first rows \[30000\]"),
        ("7,9999-12-31,1.0", r"'day': 1 of 30001 rows are dates outside the supported years"),
        ("7,2020-01-02,1e308\n7,2020-01-02,1e308", r"'v': the values of 1 customer\(s\) add "
         r"up beyond the float range"),
    ],
    ids=["amount", "date", "far date", "overflow"],
)
def test_duckdb_reports_bad_rows_beyond_the_sniffed_sample(tmp_path, last, message):
    path = late_trouble(tmp_path / "log.csv", last)
    with pytest.raises(DataValidationError, match=message) as err:
        rfm_summary(path, "id", "day", "v")
    one_line_error(err.value)


def test_duckdb_reads_late_string_and_decimal_ids_like_pandas(tmp_path):
    path = late_trouble(tmp_path / "log.csv", "abc,2020-01-02,2.0", n=30_000)
    expected = rfm_summary(pd.read_csv(path, dtype={"id": str}), "id", "day", "v")
    pd.testing.assert_frame_equal(rfm_summary(path, "id", "day", "v"), expected)
    assert expected.index.dtype == object or pd.api.types.is_string_dtype(expected.index)
    # A decimal id after integer ones: read as a float id, never rounded to an integer.
    path = late_trouble(tmp_path / "dec.csv", "1.5,2020-01-02,2.0", n=30_000)
    summary = rfm_summary(path, "id", "day", "v")
    assert 1.5 in summary.index and summary.loc[1.0, "frequency"] == 0
    pd.testing.assert_frame_equal(summary, rfm_summary(pd.read_csv(path), "id", "day", "v"))


def test_duckdb_names_the_file_of_each_bad_row(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    late_trouble(folder / "a.csv", "1,2020-01-03,2.0", n=10)
    late_trouble(folder / "b.csv", "2,2020-01-03,oops", n=10)
    with pytest.raises(DataValidationError, match=r"first rows \['b.csv:10'\]"):
        rfm_summary(folder, "id", "day", "v")
    # A malformed line beyond the sniffer's sample: DuckDB's own error, in one line.
    late_trouble(tmp_path / "ragged.csv", "2,2020-01-02,3,4,5")
    with pytest.raises(DataValidationError, match=r"could not read .*ragged.csv") as err:
        rfm_summary(tmp_path / "ragged.csv", "id", "day", "v")
    one_line_error(err.value)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"id": [[1], [2]], "day": ["2020-01-01", "2020-01-02"]}),
         r"column 'id' holds values of type BIGINT\[\], not single customer id values"),
        (pd.DataFrame({"id": [{"k": 1}, {"k": 2}], "day": ["2020-01-01", "2020-01-02"]}),
         r"column 'id' holds values of type STRUCT"),
        (pd.DataFrame({"id": ["a", ""], "day": ["2020-01-01", "2020-01-02"]}),
         r"'id': 1 of 2 rows have no customer id; first rows \[1\]"),
        (pd.DataFrame({"id": [1.0, np.nan], "day": ["2020-01-01", "2020-01-02"]}),
         r"'id': 1 of 2 rows have no customer id"),
        (pd.DataFrame({"id": [1, 2], "day": [["2020-01-01"], ["2020-01-02"]]}),
         r"column 'day' holds values of type VARCHAR\[\], not single values"),
        (pd.DataFrame({"id": [1, 2], "day": ["2020-01-01", " "]}),
         r"'day': 1 of 2 rows have no date; first rows \[1\] \(customers \[2\]\)"),
        (pd.DataFrame({"id": [1, 2], "day": pd.to_datetime(["2020-01-01", "2262-01-01"])}),
         r"'day': 1 of 2 rows are dates outside the supported years 1678 to 2261"),
    ],
    ids=["list ids", "struct ids", "empty id", "NaN id", "list dates",
         "blank date", "far date"],
)
def test_duckdb_refuses_what_pandas_refuses(tmp_path, frame, message):
    frame.to_parquet(tmp_path / "log.parquet")
    with pytest.raises(DataValidationError, match=message) as err:
        rfm_summary(tmp_path / "log.parquet", "id", "day")
    one_line_error(err.value)
    with pytest.raises(DataValidationError):
        rfm_summary(frame, "id", "day")


def test_duckdb_keeps_binary_ids_as_pandas_does(tmp_path):
    days = ["2020-01-01", "2020-01-02", "2020-01-09"]
    frame = pd.DataFrame({"id": [b"b", b"a", b"b"], "day": days})
    frame.to_parquet(tmp_path / "log.parquet")
    expected = rfm_summary(frame, "id", "day")
    pd.testing.assert_frame_equal(rfm_summary(tmp_path / "log.parquet", "id", "day"), expected)
    assert list(expected.index) == [b"a", b"b"]


# --------------------------------------------------------------------------------------
# A reference implementation, for the fuzzing below
# --------------------------------------------------------------------------------------
def reference_summary(ids: list, days: list[int], values: list[float], end: int) -> dict:
    """Per customer: (frequency, recency and T in days, exact repeat total, sum of |v|),
    from plain Python lists, for logs of daily periods (``days`` as integers)."""
    periods: dict = defaultdict(lambda: defaultdict(list))
    for cid, day, value in zip(ids, days, values, strict=True):
        if day <= end:
            periods[cid][day].append(value)
    out = {}
    for cid, by_day in periods.items():
        ordered = sorted(by_day)
        repeat = sum((Fraction(v) for d in ordered[1:] for v in by_day[d]), Fraction(0))
        magnitude = sum((abs(Fraction(v)) for d in ordered for v in by_day[d]), Fraction(0))
        out[cid] = (len(ordered) - 1, ordered[-1] - ordered[0], end - ordered[0], repeat,
                    magnitude)
    return out


def overflows(ids: list, values: list[float]) -> bool:
    """Whether some customer's values add up beyond the float range in absolute value."""
    totals: dict = defaultdict(Fraction)
    for cid, value in zip(ids, values, strict=True):
        totals[cid] += abs(Fraction(value))
    return any(total > Fraction(FLOAT_MAX) for total in totals.values())


# --------------------------------------------------------------------------------------
# Strategies: transaction logs, clean or with one fault, and summaries
# --------------------------------------------------------------------------------------
EPOCH = np.datetime64("2023-01-02", "s")
HUGE = [1e308, -1e308, 1.7e308, 1e307, -0.0, 5e-324]
amounts = st.one_of(
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda x: round(x, 2)),
    st.integers(-(10**6), 10**6).map(float),
    st.just(0.0),
    st.sampled_from(HUGE),
)
ID_POOLS = {
    "int": st.integers(0, 9),
    "str": st.sampled_from(["a", "b", "c", "Zoë", "id 4", "05", "x-6"]),
    "float": st.sampled_from([0.5, 1.0, 2.25, -3.0, 1e9]),
    "mixed": st.sampled_from([1, 2, "1", "b"]),
}
DATE_KINDS = ("datetime64", "iso", "iso time", "offsets", "aware")
FAULTS = {
    # fault: (column it concerns, value written into one row)
    "no id": ("id", None),
    "blank id": ("id", "  "),
    "list id": ("id", [1]),
    "no date": ("day", None),
    "blank date": ("day", ""),
    "bad date": ("day", "2023-02-30"),
    "far date": ("day", "9999-01-01"),
    "no amount": ("amount", np.nan),
    "infinite amount": ("amount", -np.inf),
    "text amount": ("amount", "12,50"),
    "boolean amount": ("amount", True),
    "complex amount": ("amount", 3 + 1j),
}


def render_dates(days: list[int], seconds: list[int], kind: str, offsets: list[int]) -> pd.Series:
    stamps = EPOCH + (np.array(days) * 86400 + np.array(seconds)).astype("timedelta64[s]")
    if kind == "datetime64":
        return pd.Series(stamps)
    if kind == "aware":
        return pd.Series(pd.DatetimeIndex(stamps).tz_localize("Europe/Paris", ambiguous="NaT",
                                                              nonexistent="NaT"))
    text = pd.DatetimeIndex(stamps).strftime("%Y-%m-%d" if kind == "iso" else "%Y-%m-%dT%H:%M:%S")
    if kind == "offsets":
        text = [f"{t}{o:+03d}:00" if o else f"{t}Z" for t, o in zip(text, offsets, strict=True)]
    return pd.Series(list(text), dtype=object)


@st.composite
def transaction_logs(draw, faults: bool = True, id_kinds=tuple(ID_POOLS)):
    """A log with ids, dates and amounts of several kinds; at most one fault.

    Returns the frame, the plain rows (ids, day numbers, amounts) for the reference, and
    the faulty column (or None).
    """
    n = draw(st.integers(0 if faults else 1, 25))
    id_kind = draw(st.sampled_from(id_kinds))
    ids = draw(st.lists(ID_POOLS[id_kind], min_size=n, max_size=n))
    days = draw(st.lists(st.integers(0, 400), min_size=n, max_size=n))
    kind = draw(st.sampled_from(DATE_KINDS))
    seconds = draw(st.lists(st.integers(0, 86399), min_size=n, max_size=n))
    if kind == "iso":
        seconds = [0] * n
    if kind == "aware":  # keep clear of daylight-saving gaps and folds
        seconds = [s % 3600 + 36000 for s in seconds]
    offsets = draw(st.lists(st.integers(-11, 12), min_size=n, max_size=n))
    values = draw(st.lists(amounts, min_size=n, max_size=n))
    frame = pd.DataFrame(
        {
            "id": pd.Series(ids, dtype=object if id_kind == "mixed" else None),
            "day": render_dates(days, seconds, kind, offsets),
            "amount": pd.Series(values, dtype=np.float64),
        }
    )
    fault = draw(st.sampled_from([None, *FAULTS])) if faults and n else None
    column = None
    if fault is not None:
        column, bad = FAULTS[fault]
        row = draw(st.integers(0, n - 1))
        cells = frame[column].astype(object).tolist()
        cells[row] = bad
        frame[column] = pd.Series(cells, dtype=object)
    return frame, (ids, days, values), column


def check_customers(summary: pd.DataFrame, rows: tuple, end: int) -> None:
    """The invariants of a summary's customers, against the reference."""
    ids, days, values = rows
    validate_summary(summary, require_monetary=True)
    expected = reference_summary(ids, days, values, end)
    assert sorted(map(repr, summary.index)) == sorted(map(repr, expected))
    assert summary.index.is_unique and len(summary) == summary.attrs["n_customers"]
    for cid, (frequency, recency, T, repeat, magnitude) in expected.items():
        row = summary.loc[cid]
        assert row["frequency"] == frequency
        assert row["recency"] == recency * 24.0 / 168.0 and row["T"] == T * 24.0 / 168.0
        assert 0 <= row["recency"] <= row["T"]
        total = row["monetary_value"] * frequency
        terms = sum(1 for i in ids if i == cid) + 2
        assert sums_close(total, float(repeat), float(magnitude), terms), (cid, total, repeat)


def check_counts(summary: pd.DataFrame, rows: tuple, end: int) -> None:
    """Every row and customer of the log is in the summary or counted as left out."""
    ids, days, values = rows
    attrs = summary.attrs
    assert attrs["n_transactions"] == sum(d <= end for d in days)
    assert attrs["n_transactions"] + attrs["n_transactions_excluded_after_end"] == len(ids)
    assert attrs["n_customers"] + attrs["n_customers_first_purchase_after_end"] == len(set(ids))
    assert attrs["n_negative_values"] == sum(v < 0 for v in values)


def expect_refusal(err: Exception, column: str | None, frame: pd.DataFrame) -> None:
    """A refusal is the package's own one-line ValueError naming a column (or the log)."""
    assert isinstance(err, ValueError), repr(err)
    message = one_line_error(err)
    named = [c for c in frame.columns if f"'{c}'" in message]
    assert named or any(p in message for p in WHOLE_LOG_PROBLEMS), message
    if column is not None:
        assert isinstance(err, DataValidationError) and f"'{column}'" in message, message


# --------------------------------------------------------------------------------------
# Fuzzing: pandas
# --------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(data=transaction_logs(), end_day=st.integers(-5, 420))
def test_any_log_gives_a_valid_summary_or_a_named_refusal(data, end_day):
    frame, rows, fault = data
    end = EPOCH + np.timedelta64(end_day, "D")
    try:
        summary = rfm_summary(frame, "id", "day", "amount", observation_end=str(end)[:10],
                              time_unit="W")
    except ValueError as err:
        expect_refusal(err, fault, frame)
        if fault is None and len(frame):
            assert overflows(rows[0], rows[2]) or "no transaction falls" in str(err), str(err)
        return
    assert fault is None, f"a log with a fault in '{fault}' was accepted"
    assert not overflows(rows[0], rows[2])
    check_customers(summary, rows, end_day)
    check_counts(summary, rows, end_day)


@settings(max_examples=100, deadline=None)
@given(data=transaction_logs(), cal_day=st.integers(0, 300), span=st.integers(1, 200))
def test_any_split_accounts_for_every_row(data, cal_day, span):
    frame, (ids, days, values), fault = data
    cal = str(EPOCH + np.timedelta64(cal_day, "D"))[:10]
    end = str(EPOCH + np.timedelta64(cal_day + span, "D"))[:10]
    try:
        split = calibration_holdout_split(
            frame, "id", "day", "amount", calibration_end=cal, observation_end=end
        )
    except ValueError as err:
        expect_refusal(err, fault, frame)
        return
    assert fault is None
    calibration = split[["frequency", "recency", "T", "monetary_value"]]
    calibration.attrs = split.attrs
    check_customers(calibration, (ids, days, values), cal_day)
    attrs = split.attrs
    in_window = sum(d <= cal_day + span for d in days)
    in_calibration = sum(d <= cal_day for d in days)
    assert attrs["n_transactions_calibration"] == in_calibration
    assert attrs["n_transactions"] == in_window
    assert attrs["n_transactions_excluded_after_end"] == len(days) - in_window
    known = {i for i, d in zip(ids, days, strict=True) if d <= cal_day}
    holdout = sum(cal_day < d <= cal_day + span and i in known
                  for i, d in zip(ids, days, strict=True))
    assert attrs["n_transactions_holdout"] == holdout
    assert len(split) == len(known) == attrs["n_customers"]
    assert (split["frequency_holdout"] >= 0).all()
    assert split["frequency_holdout"].sum() <= holdout
    assert np.isfinite(split["monetary_value_holdout"]).all()
    validate_summary(split, require_monetary=True)


# --------------------------------------------------------------------------------------
# Fuzzing: pandas against DuckDB (Parquet and CSV) and Polars
# --------------------------------------------------------------------------------------
def assert_agree(expected: pd.DataFrame, actual: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Same customers, counts and times exactly; sums up to their order of addition."""
    assert actual.attrs == expected.attrs
    assert list(actual.index) == list(expected.index)
    for col in ("frequency", "recency", "T"):
        np.testing.assert_array_equal(actual[col].to_numpy(), expected[col].to_numpy())
    values = pd.to_numeric(frame["amount"], errors="coerce")
    scale = frame.assign(a=values.abs()).groupby("id")["a"].sum()
    counts = frame.groupby("id").size()
    for cid in expected.index:
        a = actual.loc[cid, "monetary_value"] * actual.loc[cid, "frequency"]
        e = expected.loc[cid, "monetary_value"] * expected.loc[cid, "frequency"]
        assert sums_close(a, e, scale[cid], int(counts[cid]) + 2), (cid, a, e)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=transaction_logs(id_kinds=("int", "str", "float")),
    end_day=st.integers(-5, 420),
    fmt=st.sampled_from(["parquet", "csv"]),
)
def test_duckdb_agrees_with_pandas_on_any_log(data, end_day, fmt):
    frame, _, _ = data
    end = str(EPOCH + np.timedelta64(end_day, "D"))[:10]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"log.{fmt}"
        # Both engines read the same file (pandas through its own reader), so a fault the
        # format cannot hold (a boolean among floats in Parquet) is no fault any more.
        if fmt == "csv":
            frame.to_csv(path, index=False)
            frame = pd.read_csv(path)
        else:
            try:
                frame.to_parquet(path)
            except Exception:  # a column of mixed types has no Parquet type
                return
            frame = pd.read_parquet(path)
        try:
            expected = rfm_summary(frame, "id", "day", "amount", observation_end=end)
        except ValueError as err:
            expect_refusal(err, None, frame)
            with pytest.raises(ValueError) as refused:
                rfm_summary_duckdb(path, "id", "day", "amount", observation_end=end)
            one_line_error(refused.value)
            return
        actual = rfm_summary_duckdb(path, "id", "day", "amount", observation_end=end)
    assert_agree(expected, actual, frame)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=transaction_logs(faults=False, id_kinds=("int", "str")),
    cal_day=st.integers(0, 300),
    span=st.integers(1, 120),
)
def test_duckdb_splits_any_log_like_pandas(data, cal_day, span):
    frame, _, _ = data
    cal = str(EPOCH + np.timedelta64(cal_day, "D"))[:10]
    end = str(EPOCH + np.timedelta64(cal_day + span, "D"))[:10]
    options = {"calibration_end": cal, "observation_end": end}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.parquet"
        frame.to_parquet(path)
        frame = pd.read_parquet(path)
        try:
            expected = calibration_holdout_split(frame, "id", "day", "amount", **options)
        except DataValidationError as err:
            with pytest.raises(DataValidationError, match=str(err).split(":")[1][:20]):
                calibration_holdout_split(path, "id", "day", "amount", **options)
            return
        actual = calibration_holdout_split(path, "id", "day", "amount", **options)
    assert_agree(expected, actual, frame)
    np.testing.assert_array_equal(actual["frequency_holdout"], expected["frequency_holdout"])
    np.testing.assert_array_equal(actual["duration_holdout"], expected["duration_holdout"])
    scale = frame.assign(a=frame["amount"].abs()).groupby("id")["a"].sum()
    for cid in expected.index:
        a, e = (
            s.loc[cid, "monetary_value_holdout"] * s.loc[cid, "frequency_holdout"]
            for s in (actual, expected)
        )
        assert sums_close(a, e, scale[cid], len(frame) + 2), (cid, a, e)


@settings(max_examples=60, deadline=None)
@given(data=transaction_logs(faults=False, id_kinds=("int", "str", "float")))
def test_polars_agrees_with_pandas(data):
    import polars as pl
    frame, _, _ = data
    try:
        expected = rfm_summary(frame, "id", "day", "amount")
    except DataValidationError as err:
        assert "add up beyond the float range" in str(err)
        return
    actual = rfm_summary(pl.from_pandas(frame), "id", "day", "amount")
    assert_agree(expected, actual, frame)
    _, weights, inverse = compress(pl.from_pandas(expected.reset_index()))
    _, ref_weights, ref_inverse = compress(expected)
    np.testing.assert_array_equal(weights, ref_weights)
    np.testing.assert_array_equal(inverse, ref_inverse)


# --------------------------------------------------------------------------------------
# Fuzzing: summaries, valid and invalid, against a reference checker
# --------------------------------------------------------------------------------------
def reference_problems(frame: pd.DataFrame) -> set[str]:
    """The columns (or "index", "empty") a summary check must complain about."""
    if len(frame) == 0:
        return {"empty"}
    problems = set()
    numbers = {}
    for col in ("frequency", "recency", "T", "monetary_value"):
        series = frame[col]
        if series.dtype.kind not in "iuf":
            problems.add(col)
            continue
        values = series.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            problems.add(col)
        numbers[col] = values
    if problems:
        return problems
    x, t_x, T = (numbers[c] for c in ("frequency", "recency", "T"))
    if (x < 0).any() or (x != np.round(x)).any():
        problems.add("frequency")
    if (t_x < 0).any() or (t_x > T * (1 + 1e-9)).any() or ((x == 0) & (t_x != 0)).any():
        problems.add("recency")
    if (T < 0).any() or ((T == 0) & (x > 0)).any():
        problems.add("T")
    if not frame.index.is_unique:
        problems.add("index")
    return problems


@st.composite
def summaries(draw):
    n = draw(st.integers(0, 8))
    frequency = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    T = [draw(st.floats(0.1, 100)) for _ in range(n)]
    recency = [0.0 if f == 0 else draw(st.floats(0, t)) for f, t in zip(frequency, T, strict=True)]
    spend = draw(st.lists(st.floats(-100, 1e4, allow_nan=False), min_size=n, max_size=n))
    frame = pd.DataFrame(
        {"frequency": frequency, "recency": recency, "T": T, "monetary_value": spend},
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )
    corruptions = draw(st.lists(st.sampled_from(
        ["nan", "inf", "negative", "fraction", "late", "string", "bool", "complex", "dup index"]
    ), max_size=2)) if n else []
    # A recency beyond T first, while every column is still numeric.
    for corruption in sorted(corruptions, key=lambda c: c != "late"):
        col = draw(st.sampled_from(["frequency", "recency", "T", "monetary_value"]))
        row = draw(st.integers(0, n - 1))
        if corruption == "dup index":
            frame.index = pd.Index([*frame.index[:-1], frame.index[0]], name="customer_id")
        elif corruption == "bool":
            frame[col] = np.arange(n) % 2 == 0
        elif corruption == "complex":
            frame[col] = np.arange(n) + 1j
        elif corruption == "late":
            frame.iloc[row, 1] = frame.iloc[row, 2] * 2 + 1
        else:
            value = {"nan": np.nan, "inf": np.inf, "negative": -1.0, "fraction": 0.5,
                     "string": "7"}[corruption]
            cells = frame[col].astype(object).tolist()
            cells[row] = value
            frame[col] = pd.Series(cells, index=frame.index).infer_objects()
    return frame


def polars_or_none(frame: pd.DataFrame):
    """The summary as a Polars frame (ids in a column), or None where Polars has no type
    for a column, or would give one a type pandas does not (objects)."""
    import polars as pl
    if any(dtype.kind == "O" for dtype in frame.dtypes):
        return None
    try:
        return pl.from_pandas(frame.reset_index())
    except Exception:  # complex numbers, mixed objects
        return None


@settings(max_examples=200, deadline=None)
@given(frame=summaries())
def test_any_summary_is_checked_like_the_reference(frame):
    problems = reference_problems(frame)
    # A Polars frame has no index: its ids are a column, and get the same verdict but for
    # repeated ids.
    polars = polars_or_none(frame) if "index" not in problems else None
    try:
        out = validate_summary(frame, require_monetary=True)
    except DataValidationError as err:
        message = one_line_error(err)
        named = {p for p in problems if f"'{p}'" in message or (p + ":") in message}
        named |= {"empty"} if "empty" in message else set()
        assert named, (problems, message)
        if polars is not None:
            subject = re.search(r"column '[^']+'|empty", message).group(0)
            with pytest.raises(DataValidationError, match=re.escape(subject)):
                validate_summary(polars, require_monetary=True)
        return
    assert not problems, problems
    assert out is frame
    rows, weights, inverse = compress(frame)
    assert weights.sum() == len(frame)
    np.testing.assert_array_equal(
        rows.iloc[inverse].to_numpy(), frame[["frequency", "recency", "T"]].to_numpy()
    )
    if polars is not None:
        validate_summary(polars, require_monetary=True)
        polar_rows, polar_weights, polar_inverse = compress(polars)
        np.testing.assert_array_equal(polar_weights, weights)
        np.testing.assert_array_equal(polar_inverse, inverse)
        np.testing.assert_array_equal(polar_rows.to_numpy(), rows.to_numpy())


def test_reference_checker_sees_what_it_should():
    # The oracle of the fuzzing above, on a few hand-made frames.
    good = pd.DataFrame({"frequency": [0, 2], "recency": [0.0, 3.0], "T": [5.0, 6.0],
                         "monetary_value": [0.0, 2.5]})
    assert reference_problems(good) == set()
    assert reference_problems(good.assign(recency=[0.0, 7.0])) == {"recency"}
    assert reference_problems(good.assign(T=[5.0, math.nan])) == {"T"}
    assert reference_problems(good.iloc[:0]) == {"empty"}
    assert reference_problems(good.set_axis(["a", "a"])) == {"index"}
