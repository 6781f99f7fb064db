"""DuckDB summaries of files: the same frames as the in-memory pandas path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_columns import assert_same_log_summary
from summation import assert_same_summary

from clvmodels.data import DataValidationError, calibration_holdout_split, rfm_summary
from clvmodels.datasets import load_cdnow
from clvmodels.outofcore import calibration_holdout_split_duckdb, rfm_summary_duckdb

CDNOW_MASTER_CSV = (
    Path(__file__).resolve().parents[1] / "src" / "clvmodels" / "datasets" / "cdnow_master.csv.gz"
)
def synthetic_log(seed: int, n_customers: int = 300, string_ids: bool = False) -> pd.DataFrame:
    """A log with same-day repeats, times of day, returns (negative values) and groups."""
    rng = np.random.default_rng(seed)
    n_tx = rng.integers(1, 12, size=n_customers)
    cust = np.repeat(np.arange(n_customers), n_tx)
    first = rng.integers(0, 120, size=n_customers)
    day = first[cust] + np.where(rng.random(cust.size) < 0.3, 0, rng.integers(0, 400, cust.size))
    seconds = rng.integers(0, 86400, size=cust.size)
    stamps = (
        np.datetime64("2019-12-30", "s")
        + (day * 86400 + seconds).astype("timedelta64[s]")
    )
    values = np.round(rng.gamma(2.0, 20.0, size=cust.size), 2)
    values[rng.random(cust.size) < 0.03] *= -1
    ids = np.array([f"c{i:05d}" for i in range(n_customers)])[cust] if string_ids else cust + 100
    regions = np.array(["north", "south", "east"])[np.arange(n_customers) % 3][cust]
    order = rng.permutation(cust.size)
    return pd.DataFrame(
        {"customer": ids, "ts": stamps, "value": values, "region": regions}
    ).iloc[order].reset_index(drop=True)


@pytest.fixture(scope="module")
def cdnow_parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("cdnow") / "cdnow_sample.parquet"
    load_cdnow(sample=True).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def log_files(tmp_path_factory):
    """One synthetic log written as a single Parquet file, three part files and CSV."""
    log = synthetic_log(7, n_customers=400, string_ids=True)
    root = tmp_path_factory.mktemp("log")
    log.to_parquet(root / "log.parquet")
    parts = root / "parts"
    parts.mkdir()
    bounds = np.linspace(0, len(log), 4).astype(int)
    for k in range(3):
        log.iloc[bounds[k] : bounds[k + 1]].to_parquet(parts / f"part-{k}.parquet")
    log.to_csv(root / "log.csv", index=False)
    return log, root


# --------------------------------------------------------------------------------------
# Published numbers and the bundled data
# --------------------------------------------------------------------------------------
def test_cdnow_calibration_data_of_the_paper(cdnow_parquet):
    # Fader, Hardie & Lee (2005): 2,357 customers, 2,457 repeat purchases by 1997-09-30.
    summary = rfm_summary_duckdb(
        cdnow_parquet, "customer_id", "date", "amount", observation_end="1997-09-30"
    )
    assert len(summary) == 2357
    assert int(summary["frequency"].sum()) == 2457
    assert summary.loc[1, ["frequency", "recency", "T"]].round(2).to_list() == [2, 30.43, 38.86]
    # (29.73 + 14.96) / 2: the first purchase is not part of the mean spend.
    assert summary.loc[1, "monetary_value"] == pytest.approx(22.345, rel=1e-13)
    assert summary.attrs["n_transactions"] == 4960  # of 6,919 lines; 1,959 are later
    assert summary.attrs["n_transactions_excluded_after_end"] == 1959


@pytest.mark.parametrize(
    "options",
    [
        {"observation_end": "1997-09-30"},
        {},
        {"freq": "W"},
        {"freq": "W-WED", "time_unit": "D"},
        {"freq": "M", "time_unit": "M"},
        {"freq": "Q", "time_unit": "D"},
        {"freq": "Y", "time_unit": "Y"},
        {"freq": "h", "time_unit": "h"},
        {"time_unit": "M", "observation_end": "1998-01-15"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults",
)
def test_cdnow_parquet_matches_pandas(cdnow_transactions, cdnow_parquet, options):
    expected = rfm_summary(cdnow_transactions, "customer_id", "date", "amount", **options)
    actual = rfm_summary_duckdb(cdnow_parquet, "customer_id", "date", "amount", **options)
    assert_same_summary(expected, actual, cdnow_transactions)


def test_cdnow_split_matches_pandas(cdnow_transactions, cdnow_split, cdnow_parquet):
    actual = calibration_holdout_split_duckdb(
        cdnow_parquet,
        "customer_id",
        "date",
        "amount",
        calibration_end="1997-09-30",
        observation_end="1998-06-30",
    )
    assert_same_summary(cdnow_split, actual, cdnow_transactions)
    assert int(actual["frequency_holdout"].sum()) == 1882


def test_bundled_master_csv_read_directly():
    # The gzipped CSV shipped with the package, read by DuckDB without pandas.
    full = load_cdnow(sample=False)
    expected = rfm_summary(full, "customer_id", "date", "amount")
    actual = rfm_summary_duckdb(CDNOW_MASTER_CSV, "customer_id", "date", "amount")
    assert_same_summary(expected, actual, full)
    assert len(actual) == 23570
    assert actual.attrs["n_transactions"] == 69659


# --------------------------------------------------------------------------------------
# Synthetic logs: same-day purchases, returns, groups, several files
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source", ["log.parquet", "parts", "parts/*.parquet", "list", "log.csv"]
)
def test_sources_give_the_in_memory_result(log_files, source):
    log, root = log_files
    path = (
        [root / "parts" / f"part-{k}.parquet" for k in range(3)]
        if source == "list"
        else str(root / source)
    )
    options = {"observation_end": "2020-09-30", "group_col": "region"}
    expected = rfm_summary(log, "customer", "ts", "value", **options)
    actual = rfm_summary_duckdb(path, "customer", "ts", "value", **options)
    assert_same_summary(expected, actual, log)
    # The log really exercises the conventions: same-day lines, returns, late rows.
    assert expected.attrs["n_negative_values"] > 0
    assert expected.attrs["n_transactions_excluded_after_end"] > 0
    assert expected.attrs["n_customers_first_purchase_after_end"] > 0
    same_day = log.assign(day=log["ts"].dt.floor("D")).duplicated(["customer", "day"]).sum()
    assert same_day > 100


def test_split_of_synthetic_files(log_files):
    log, root = log_files
    options = {
        "calibration_end": "2020-03-31",
        "observation_end": "2020-12-31",
        "group_col": "region",
        "time_unit": "D",
    }
    expected = calibration_holdout_split(log, "customer", "ts", "value", **options)
    actual = calibration_holdout_split_duckdb(
        root / "parts" / "*.parquet", "customer", "ts", "value", **options
    )
    assert_same_summary(expected, actual, log)
    assert actual.attrs["n_customers_first_purchase_after_calibration"] > 0
    assert actual.attrs["n_transactions_holdout"] > 0


def test_split_without_values_and_default_end(log_files):
    log, root = log_files
    expected = calibration_holdout_split(log, "customer", "ts", calibration_end="2020-02-01")
    actual = calibration_holdout_split_duckdb(
        root / "log.parquet", "customer", "ts", calibration_end="2020-02-01"
    )
    assert_same_summary(expected, actual)
    assert "monetary_value" not in actual.columns


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_customers=st.integers(1, 60),
    freq=st.sampled_from(["D", "W", "M", "h"]),
    end_day=st.integers(0, 500),
    logs=st.booleans(),
)
def test_any_log_matches_pandas(tmp_path, seed, n_customers, freq, end_day, logs):
    log = synthetic_log(seed, n_customers)
    path = tmp_path / f"log-{seed}-{n_customers}.parquet"
    log.to_parquet(path)
    end = pd.Timestamp("2019-12-30") + pd.Timedelta(days=end_day)
    options = {"observation_end": end, "freq": freq, "log_spend": logs, "regularity": logs}
    try:
        expected = rfm_summary(log, "customer", "ts", "value", **options)
    except DataValidationError as err:
        with pytest.raises(DataValidationError, match="no transaction falls on or before"):
            rfm_summary_duckdb(path, "customer", "ts", "value", **options)
        assert "no transaction" in str(err)
        return
    actual = rfm_summary_duckdb(path, "customer", "ts", "value", **options)
    assert_same_log_summary(expected, actual, log)


def test_time_zone_aware_parquet_uses_wall_clock(tmp_path):
    # 23:30 in New York is already the next day in UTC; pandas keeps the local day.
    stamps = pd.to_datetime(
        ["2021-03-01 23:30", "2021-03-02 00:10", "2021-03-05 23:59", "2021-03-09 08:00"]
    ).tz_localize("America/New_York")
    log = pd.DataFrame({"id": [1, 1, 1, 2], "at": stamps, "spend": [5.0, 7.0, 3.0, 1.0]})
    log.to_parquet(tmp_path / "tz.parquet")
    expected = rfm_summary(log, "id", "at", "spend")
    actual = rfm_summary_duckdb(tmp_path / "tz.parquet", "id", "at", "spend")
    assert_same_summary(expected, actual, log)
    assert actual.loc[1, "frequency"] == 2  # 1, 2 and 5 March local time


def test_csv_offsets_keep_the_time_as_written(tmp_path):
    # pandas reads "23:30+02:00" as 23:30 local time; so must the CSV path.
    text = (
        "id,at,spend\n"
        "7,2021-03-01T23:30:00+02:00,5\n"
        "7,2021-03-02 00:10:00+0200,7\n"
        "7,2021-03-05T23:59:00+02:00,3\n"
        "8,2021-03-09T08:00:00+02:00,1\n"
    )
    (tmp_path / "tz.csv").write_text(text)
    log = pd.read_csv(tmp_path / "tz.csv")
    expected = rfm_summary(log, "id", "at", "spend")
    actual = rfm_summary_duckdb(tmp_path / "tz.csv", "id", "at", "spend")
    assert_same_summary(expected, actual, log)
    assert actual.attrs["observation_end"] == "2021-03-09T08:00:00"


def test_integer_dates_with_format(tmp_path):
    log = pd.DataFrame({"id": [3, 3, 4], "day": [19970101, 19970108, 19970110], "v": [1.0, 2, 3]})
    log.to_csv(tmp_path / "log.csv", index=False)
    expected = rfm_summary(log, "id", "day", "v", date_format="%Y%m%d")
    actual = rfm_summary_duckdb(tmp_path / "log.csv", "id", "day", "v", date_format="%Y%m%d")
    assert_same_summary(expected, actual, log)
    np.testing.assert_array_equal(actual["T"], [9 / 7, 0.0])


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("date_format", ["%", "%Q"])
def test_a_format_duckdb_cannot_read_is_refused_by_name(tmp_path, kind, date_format):
    # Not "could not read the files": the files are fine, the setting is not.
    log = pd.DataFrame({"id": [3, 3, 4], "day": [19970101, 19970108, 19970110], "v": [1.0, 2, 3]})
    path = tmp_path / f"log.{kind}"
    log.to_csv(path, index=False) if kind == "csv" else log.to_parquet(path)
    with pytest.raises(ValueError, match=f"date_format='{date_format}' is not a valid format"):
        rfm_summary_duckdb(path, "id", "day", "v", date_format=date_format)


def test_file_columns_named_like_internal_aliases(tmp_path):
    # The SQL works under aliases (cid, ts, per, v, g); a file may use those names too.
    log = pd.DataFrame(
        {
            "per": [5, 5, 6, 5],
            "ts": ["2020-01-01", "2020-01-03", "2020-01-02", "2020-01-09"],
            "cid": [2.0, 3.0, 4.0, 1.0],
            "v": ["x", "x", "y", "x"],
        }
    )
    log.to_csv(tmp_path / "log.csv", index=False)
    expected = rfm_summary(log, "per", "ts", "cid", group_col="v")
    actual = rfm_summary_duckdb(tmp_path / "log.csv", "per", "ts", "cid", group_col="v")
    assert_same_summary(expected, actual, log)
    assert actual.loc[5, "monetary_value"] == 2.0  # (3 + 1) / 2 repeat purchases


def test_spills_under_a_small_memory_limit(tmp_path):
    log = synthetic_log(3, n_customers=20_000)
    log.to_parquet(tmp_path / "big.parquet")
    spill = tmp_path / "spill"
    expected = rfm_summary(log, "customer", "ts", "value")
    actual = rfm_summary_duckdb(
        tmp_path / "big.parquet",
        "customer",
        "ts",
        "value",
        memory_limit="40MB",
        temp_directory=spill,
        threads=1,
    )
    assert_same_summary(expected, actual, log)


def test_public_functions_take_paths(cdnow_transactions, cdnow_parquet, cdnow_split):
    from clvmodels import calibration_holdout_split as split_public
    from clvmodels import rfm_summary as summary_public

    expected = rfm_summary(cdnow_transactions, "customer_id", "date", "amount")
    actual = summary_public(str(cdnow_parquet), "customer_id", "date", "amount")
    assert_same_summary(expected, actual, cdnow_transactions)
    actual = split_public(
        [cdnow_parquet],
        "customer_id",
        "date",
        "amount",
        calibration_end="1997-09-30",
        observation_end="1998-06-30",
    )
    assert_same_summary(cdnow_split, actual, cdnow_transactions)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matches"):
        rfm_summary_duckdb(tmp_path / "nothing-*.parquet", "a", "b")
    (tmp_path / "log.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot tell the format"):
        rfm_summary_duckdb(tmp_path / "log.json", "a", "b")
    with pytest.raises(TypeError, match="expected a path"):
        rfm_summary_duckdb(pd.DataFrame({"a": [1]}), "a", "b")


def test_missing_column_is_named(cdnow_parquet):
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['spend'\]"):
        rfm_summary_duckdb(cdnow_parquet, "customer_id", "date", "spend")


def test_bad_rows_are_counted_and_named(tmp_path):
    good = {"id": ["a", "b", "c"], "day": ["2020-01-01", "2020-01-02", "2020-01-03"]}
    cases = {
        "no_id": ({**good, "id": ["a", None, "c"]}, r"column 'id': 1 of 3 rows have no customer"),
        "no_date": (
            {**good, "day": ["2020-01-01", None, None]},
            r"'day': 2 of 3 rows have no date",
        ),
        "bad_date": (
            {**good, "day": ["2020-01-01", "yesterday", "2020-01-03"]},
            r"'day': 1 of 3 rows could not be parsed.*\['yesterday'\].*\['b'\]",
        ),
    }
    for name, (columns, message) in cases.items():
        path = tmp_path / f"{name}.parquet"
        pd.DataFrame(columns).to_parquet(path)
        with pytest.raises(DataValidationError, match=message):
            rfm_summary_duckdb(path, "id", "day")
        with pytest.raises(DataValidationError):
            rfm_summary(pd.DataFrame(columns), "id", "day")


def test_non_numeric_values_and_several_groups(tmp_path):
    log = pd.DataFrame(
        {
            "id": [1, 1, 2, 2, 3],
            "day": pd.to_datetime(["2020-01-01", "2020-01-05", "2020-01-02", "2020-02-01",
                                   "2020-01-03"]),
            "v": ["1.5", "n/a", "2", "3", "4"],
            "g": ["x", "y", "x", "x", "z"],
        }
    )
    log.to_parquet(tmp_path / "log.parquet")
    with pytest.raises(DataValidationError, match=r"'v': 1 of 5 rows .*\['n/a'\].*\[1\]"):
        rfm_summary_duckdb(tmp_path / "log.parquet", "id", "day", "v")
    several = r"'g': .* 1 customers have several groups; first: \{1: \['x', 'y'\]\}"
    with pytest.raises(DataValidationError, match=several):
        rfm_summary_duckdb(tmp_path / "log.parquet", "id", "day", group_col="g")


def test_numbers_as_dates_need_a_format(tmp_path):
    pd.DataFrame({"id": [1], "day": [20200101]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(DataValidationError, match="holds numbers, not dates"):
        rfm_summary_duckdb(tmp_path / "n.parquet", "id", "day")


def test_cut_offs_out_of_range(cdnow_parquet):
    with pytest.raises(DataValidationError, match="no transaction falls on or before"):
        rfm_summary_duckdb(cdnow_parquet, "customer_id", "date", observation_end="1990-01-01")
    with pytest.raises(ValueError, match="must fall in a later"):
        calibration_holdout_split_duckdb(
            cdnow_parquet,
            "customer_id",
            "date",
            calibration_end="1998-01-01",
            observation_end="1997-06-01",
        )
    with pytest.raises(ValueError, match="freq='2D' is not supported"):
        rfm_summary_duckdb(cdnow_parquet, "customer_id", "date", freq="2D")


# --------------------------------------------------------------------------------------
# Opt-in log columns: monetary_log_mean (log_spend) and log_interpurchase_sum (regularity)
# --------------------------------------------------------------------------------------
LOG_OPTIONS = {"log_spend": True, "regularity": True}


@pytest.mark.parametrize(
    "options",
    [
        {"observation_end": "1997-09-30"},
        {"freq": "W-WED", "time_unit": "D"},
        {"freq": "M", "time_unit": "W"},
        {"freq": "Q", "time_unit": "M"},
        {"freq": "Y", "time_unit": "h"},
        {"freq": "h", "time_unit": "h"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_cdnow_log_columns_match_pandas(cdnow_transactions, cdnow_parquet, options):
    expected = rfm_summary(cdnow_transactions, "customer_id", "date", "amount", **options,
                           **LOG_OPTIONS)
    actual = rfm_summary_duckdb(cdnow_parquet, "customer_id", "date", "amount", **options,
                                **LOG_OPTIONS)
    assert_same_log_summary(expected, actual, cdnow_transactions)
    # rfm_summary sends files here, flags included
    routed = rfm_summary(cdnow_parquet, "customer_id", "date", "amount", **options,
                         **LOG_OPTIONS)
    assert_same_log_summary(expected, routed, cdnow_transactions)


def test_bundled_master_csv_log_columns_and_split():
    """The full cohort, from the gzipped CSV: 8 repeat buyers have a repeat day worth
    $0.00 (no log), counted alike by both engines."""
    full = load_cdnow(sample=False)
    expected = rfm_summary(full, "customer_id", "date", "amount", **LOG_OPTIONS)
    actual = rfm_summary_duckdb(CDNOW_MASTER_CSV, "customer_id", "date", "amount", **LOG_OPTIONS)
    assert_same_log_summary(expected, actual, full)
    assert actual.attrs["n_customers_nonpositive_repeat_period"] == 8
    split = {"calibration_end": "1997-09-30", "observation_end": "1998-06-30"}
    expected = calibration_holdout_split(full, "customer_id", "date", "amount", **split,
                                         **LOG_OPTIONS)
    actual = calibration_holdout_split_duckdb(CDNOW_MASTER_CSV, "customer_id", "date", "amount",
                                              **split, **LOG_OPTIONS)
    assert_same_log_summary(expected, actual, full)


@pytest.mark.parametrize("source", ["parts/*.parquet", "log.csv"])
def test_synthetic_log_columns_match_pandas(log_files, source):
    log, root = log_files
    options = {"observation_end": "2020-09-30", "group_col": "region", **LOG_OPTIONS}
    expected = rfm_summary(log, "customer", "ts", "value", **options)
    actual = rfm_summary_duckdb(str(root / source), "customer", "ts", "value", **options)
    assert_same_log_summary(expected, actual, log)
    assert expected.columns[-1] == "region"
    # returns make some repeat periods non-positive
    assert expected.attrs["n_customers_nonpositive_repeat_period"] > 0
    split = {"calibration_end": "2020-03-31", "observation_end": "2020-12-31",
             "group_col": "region", "time_unit": "D", **LOG_OPTIONS}
    expected = calibration_holdout_split(log, "customer", "ts", "value", **split)
    actual = calibration_holdout_split_duckdb(str(root / source), "customer", "ts", "value",
                                              **split)
    assert_same_log_summary(expected, actual, log)


def test_cancelling_periods_have_no_log_in_either_engine(tmp_path):
    """A refund that cancels its period leaves 0 or rounding noise of either sign,
    depending on the order of addition: both engines call it "no log" alike."""
    day = pd.Timestamp("2024-01-05")
    rows = [("a", day - pd.Timedelta(days=4), 10.0), ("a", day, 0.1), ("a", day, 0.2),
            ("a", day, -0.3), ("b", day - pd.Timedelta(days=4), 1.0), ("b", day, 0.3),
            ("b", day, -0.2), ("b", day, -0.1), ("c", day - pd.Timedelta(days=1), 3.0),
            ("c", day, 2.5)]
    log = pd.DataFrame(rows, columns=["id", "at", "spend"])
    log.to_parquet(tmp_path / "cancel.parquet")
    expected = rfm_summary(log, "id", "at", "spend", log_spend=True)
    actual = rfm_summary_duckdb(tmp_path / "cancel.parquet", "id", "at", "spend", log_spend=True)
    assert_same_log_summary(expected, actual, log)
    assert actual["monetary_log_mean"].isna().tolist() == [True, True, False]


def test_log_column_bounds_are_strict(cdnow_transactions, cdnow_parquet):
    """The engine comparison fails for a change far smaller than any real error (a gap
    off by a day, a value off by a cent), and for a NaN in the wrong place."""
    options = {"observation_end": "1997-09-30", **LOG_OPTIONS}
    expected = rfm_summary(cdnow_transactions, "customer_id", "date", "amount", **options)
    actual = rfm_summary_duckdb(cdnow_parquet, "customer_id", "date", "amount", **options)
    assert_same_log_summary(expected, actual, cdnow_transactions)
    for column in ("monetary_log_mean", "log_interpurchase_sum"):
        wrong = actual.copy()
        wrong.loc[1, column] += 1e-11
        with pytest.raises(AssertionError, match=f"{column}: customer 1"):
            assert_same_log_summary(expected, wrong, cdnow_transactions)
    wrong = actual.copy()
    wrong.loc[1, "monetary_log_mean"] = np.nan
    with pytest.raises(AssertionError, match="NaNs"):
        assert_same_log_summary(expected, wrong, cdnow_transactions)
