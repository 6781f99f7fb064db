"""Spark summaries, compression and scoring agree with the single-machine path.

Spark runs in local mode (two cores) in one session shared by the module. pyspark is a
dev dependency, so its absence fails the tests; a missing Java runtime (not a Python
package) skips the module.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from log_columns import assert_same_log_summary
from summation import EPS, assert_same_summary

if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs a Java runtime", allow_module_level=True)

from clvmodels.clv import customer_lifetime_value
from clvmodels.data import (
    DataValidationError,
    calibration_holdout_split,
    rfm_summary,
)
from clvmodels.data import compress as data_compress
from clvmodels.models.beta_geo import BetaGeo
from clvmodels.models.gamma_gamma import GammaGamma
from clvmodels.segmentation import segment
from clvmodels.spark import (
    calibration_holdout_split_spark,
    compress,
    rfm_summary_spark,
    score_spark,
    spark_datetime_pattern,
    summary_attrs,
    to_pandas,
)

pytestmark = [
    pytest.mark.spark,
    # pyspark's own complaints about pandas 3, not ours.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    # Python workers must run this interpreter, where clvmodels is installed; a local
    # SparkContext reads PYSPARK_PYTHON (default: whatever "python3" is on the PATH).
    previous = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("clvmodels-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    if previous is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = previous


def synthetic_log(seed: int, n_customers: int) -> pd.DataFrame:
    """Same-day repeats, times of day, returns and a region per customer."""
    rng = np.random.default_rng(seed)
    n_tx = rng.integers(1, 10, size=n_customers)
    cust = np.repeat(np.arange(n_customers), n_tx)
    first = rng.integers(0, 90, size=n_customers)
    day = first[cust] + np.where(rng.random(cust.size) < 0.3, 0, rng.integers(0, 300, cust.size))
    seconds = rng.integers(0, 86400, size=cust.size)
    stamps = np.datetime64("2021-01-01", "s") + (day * 86400 + seconds).astype("timedelta64[s]")
    values = np.round(rng.gamma(2.0, 15.0, size=cust.size), 2)
    values[rng.random(cust.size) < 0.02] *= -1
    regions = np.array(["north", "south"])[np.arange(n_customers) % 2][cust]
    ids = np.array([f"k{i:04d}" for i in range(n_customers)])[cust]
    return pd.DataFrame({"customer": ids, "ts": stamps, "value": values, "region": regions})


@pytest.fixture(scope="module")
def cdnow_spark(spark, cdnow_transactions):
    return spark.createDataFrame(cdnow_transactions).cache()


@pytest.fixture(scope="module")
def log(spark):
    frame = synthetic_log(11, 600)
    return frame, spark.createDataFrame(frame).repartition(3).cache()


# --------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {"observation_end": "1997-09-30"},
        {"freq": "W", "time_unit": "D"},
        {"freq": "M", "time_unit": "W"},
    ],
    ids=["calibration", "weeks", "months"],
)
def test_cdnow_summary_matches_pandas(cdnow_transactions, cdnow_spark, options):
    expected = rfm_summary(cdnow_transactions, "customer_id", "date", "amount", **options)
    actual = to_pandas(rfm_summary_spark(cdnow_spark, "customer_id", "date", "amount", **options))
    assert_same_summary(expected, actual, cdnow_transactions)


def test_cdnow_published_calibration_data(cdnow_spark):
    summary = rfm_summary_spark(
        cdnow_spark, "customer_id", "date", "amount", observation_end="1997-09-30"
    )
    attrs = summary_attrs(summary)
    assert attrs["n_customers"] == 2357
    assert attrs["time_unit"] == "W"
    totals = summary.agg({"frequency": "sum"}).collect()[0][0]
    assert totals == 2457  # Fader, Hardie & Lee (2005)


def test_cdnow_split_matches_pandas(cdnow_transactions, cdnow_split, cdnow_spark):
    actual = calibration_holdout_split_spark(
        cdnow_spark,
        "customer_id",
        "date",
        "amount",
        calibration_end="1997-09-30",
        observation_end="1998-06-30",
    )
    assert_same_summary(cdnow_split, to_pandas(actual), cdnow_transactions)


def test_synthetic_log_with_groups_and_returns(log):
    frame, sdf = log
    options = {"observation_end": "2021-08-31", "group_col": "region"}
    expected = rfm_summary(frame, "customer", "ts", "value", **options)
    actual = to_pandas(rfm_summary_spark(sdf, "customer", "ts", "value", **options))
    assert_same_summary(expected, actual, frame)
    assert expected.attrs["n_negative_values"] > 0
    assert expected.attrs["n_customers_first_purchase_after_end"] > 0


def test_synthetic_split_default_end(log):
    frame, sdf = log
    options = {"calibration_end": "2021-04-15", "group_col": "region", "time_unit": "D"}
    expected = calibration_holdout_split(frame, "customer", "ts", "value", **options)
    actual = to_pandas(calibration_holdout_split_spark(sdf, "customer", "ts", "value", **options))
    assert_same_summary(expected, actual, frame)
    assert expected.attrs["n_customers_first_purchase_after_calibration"] > 0


def test_string_dates_with_strftime_format(spark):
    frame = pd.DataFrame(
        {"id": [1, 1, 2, 1], "day": ["03/01/2020", "05/01/2020", "04/01/2020", "19/02/2020"]}
    )
    expected = rfm_summary(frame, "id", "day", date_format="%d/%m/%Y", observation_end="1/3/2020")
    actual = rfm_summary_spark(
        spark.createDataFrame(frame), "id", "day", date_format="%d/%m/%Y",
        observation_end="1/3/2020",
    )
    assert_same_summary(expected, to_pandas(actual))
    assert spark_datetime_pattern("%Y%m%d at %H") == "yyyyMMdd' at 'HH"


def test_string_dates_with_offsets_keep_the_time_as_written(spark):
    # "00:10+02:00" is 10 past midnight on the 2nd, as pandas reads it.
    frame = pd.DataFrame(
        {
            "id": [7, 7, 7, 8],
            "at": [
                "2021-03-01T23:30:00+02:00",
                "2021-03-02 00:10:00+0200",
                "2021-03-05T23:59:00+02:00",
                "2021-03-09T08:00:00+02:00",
            ],
        }
    )
    expected = rfm_summary(frame, "id", "at")
    actual = to_pandas(rfm_summary_spark(spark.createDataFrame(frame), "id", "at"))
    assert_same_summary(expected, actual)
    assert actual.loc[7, "frequency"] == 2


def test_bad_input_is_reported(spark):
    frame = pd.DataFrame(
        {
            "id": [1, 1, 2, 3],
            "day": ["2020-01-01", "not a date", "2020-01-02", "2020-01-03"],
            "g": ["a", "b", "a", "a"],
        }
    )
    sdf = spark.createDataFrame(frame)
    with pytest.raises(DataValidationError, match=r"'day': 1 of 4 rows could not be parsed.*"):
        rfm_summary_spark(sdf, "id", "day")
    good = spark.createDataFrame(frame.assign(day="2020-01-01"))
    with pytest.raises(DataValidationError, match=r"1 customers have several groups; first: \{1:"):
        rfm_summary_spark(good, "id", "day", group_col="g")
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['amount'\]"):
        rfm_summary_spark(good, "id", "day", "amount")
    with pytest.raises(DataValidationError, match="no transaction falls on or before"):
        rfm_summary_spark(good, "id", "day", observation_end="2019-01-01")


# --------------------------------------------------------------------------------------
# Opt-in log columns: monetary_log_mean (log_spend) and log_interpurchase_sum (regularity)
# --------------------------------------------------------------------------------------
LOG_OPTIONS = {"log_spend": True, "regularity": True}


@pytest.fixture(scope="module")
def cdnow_master_spark(spark):
    from clvmodels.datasets import load_cdnow

    frame = load_cdnow(sample=False)
    return frame, spark.createDataFrame(frame).repartition(3).cache()


@pytest.mark.parametrize(
    "options",
    [{}, {"freq": "M", "time_unit": "W"}, {"freq": "Q", "time_unit": "M"}],
    ids=["days", "months-in-weeks", "quarters-in-months"],
)
def test_cdnow_master_log_columns_match_pandas(cdnow_master_spark, options):
    """The full cohort, with its 8 repeat buyers who have a repeat day worth $0.00."""
    frame, sdf = cdnow_master_spark
    expected = rfm_summary(frame, "customer_id", "date", "amount", **options, **LOG_OPTIONS)
    actual = to_pandas(rfm_summary_spark(sdf, "customer_id", "date", "amount", **options,
                                         **LOG_OPTIONS))
    assert_same_log_summary(expected, actual, frame)
    if not options:  # with longer periods the $0.00 days merge with others
        assert actual.attrs["n_customers_nonpositive_repeat_period"] == 8


def test_log_columns_of_synthetic_split(log):
    frame, sdf = log
    options = {"calibration_end": "2021-04-15", "observation_end": "2021-08-31",
               "group_col": "region", "time_unit": "D", **LOG_OPTIONS}
    expected = calibration_holdout_split(frame, "customer", "ts", "value", **options)
    actual = to_pandas(calibration_holdout_split_spark(sdf, "customer", "ts", "value", **options))
    assert_same_log_summary(expected, actual, frame)
    assert expected.attrs["n_customers_nonpositive_repeat_period"] > 0
    only = {"observation_end": "2021-08-31", "regularity": True}
    expected = rfm_summary(frame, "customer", "ts", "value", **only)
    actual = to_pandas(rfm_summary_spark(sdf, "customer", "ts", "value", **only))
    assert_same_log_summary(expected, actual, frame)
    assert "monetary_log_mean" not in actual.columns
    with pytest.raises(ValueError, match="needs value_col"):
        rfm_summary_spark(sdf, "customer", "ts", log_spend=True)


# --------------------------------------------------------------------------------------
# Fitting on compressed rows
# --------------------------------------------------------------------------------------
def test_compress_fits_like_the_full_summary(cdnow_summary, cdnow_spark):
    summary = rfm_summary_spark(
        cdnow_spark, "customer_id", "date", "amount", observation_end="1997-09-30"
    )
    rows = compress(summary)
    assert int(rows["weight"].sum()) == 2357
    # The distinct (frequency, recency, T) of the 2,357 customers, as on one machine.
    assert len(rows) == len(data_compress(cdnow_summary)[0]) == 1016
    assert rows.attrs["time_unit"] == "W"
    model = BetaGeo().fit(rows, weights=rows["weight"])
    reference = BetaGeo().fit(cdnow_summary)
    np.testing.assert_allclose(model.params_, reference.params_, rtol=1e-6)
    assert model.time_unit_ == "W"
    spend_rows = compress(summary, columns=("frequency", "recency", "T", "monetary_value"))
    spend = GammaGamma().fit(spend_rows, weights=spend_rows["weight"])
    np.testing.assert_allclose(spend.params_, GammaGamma().fit(cdnow_summary).params_, rtol=1e-6)


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(cdnow_summary):
    return BetaGeo().fit(cdnow_summary), GammaGamma().fit(cdnow_summary)


def test_scores_match_the_single_machine_forecast(spark, cdnow_summary, fitted):
    bgnbd, spend = fitted
    # The very summary the single-machine forecast scores, spread over three partitions
    # (no metadata travels with it, so the time unit is stated).
    summary = spark.createDataFrame(cdnow_summary.reset_index()).repartition(3)
    settings = {"horizon": 6, "period": "M", "n_draws": 300, "random_state": 4}
    scores = score_spark(bgnbd, spend, summary, batch_rows=500, time_unit="W", **settings)
    actual = scores.toPandas().set_index("customer_id").sort_index()

    forecast = customer_lifetime_value(bgnbd, spend, cdnow_summary, **settings)
    expected = forecast.table
    assert list(actual.columns) == [*expected.columns, "tier"]
    # Same draws, same code, customer by customer. Not to the last bit: the executors
    # are other processes, and a library may round a transcendental function one way in
    # one loop and another in the next (NumPy 2.0's np.exp did, within one process).
    # A customer scored with another's data or another draw moves by far more than 1e-12.
    pd.testing.assert_frame_equal(
        actual[expected.columns], expected, check_exact=False, rtol=1e-12, atol=0
    )
    # Tiers from global boundaries: the same as segment() on one machine.
    seg = segment(forecast)
    np.testing.assert_array_equal(actual["tier"].to_numpy(), seg.customers["tier"].astype(str))
    counts = actual["tier"].value_counts()
    assert counts["top value"] >= 0.1 * len(actual)  # ties can only add customers


def test_predictive_scores_simulate_the_futures_asked_for(spark, cdnow_summary, fitted):
    # Each partition simulates with its own seed, so the bounds are not the single
    # machine's; the number of futures reaches the executors all the same. Two futures
    # per customer bound a new value with probability 1/3 only (their minimum and
    # maximum), so those intervals are far narrower than from 200.
    bgnbd, spend = fitted
    summary = spark.createDataFrame(cdnow_summary.reset_index()).repartition(2)
    settings = {"n_draws": 200, "random_state": 3, "tiers": False, "time_unit": "W",
                "predictive": True}  # fmt: skip
    widths = []
    for n_futures in (None, 2):
        scores = score_spark(bgnbd, spend, summary, n_futures=n_futures, **settings)
        table = scores.toPandas()
        assert (table["clv_pred_lower"] <= table["clv_pred_upper"]).all()
        widths.append((table["clv_pred_upper"] - table["clv_pred_lower"]).mean())
    assert widths[1] < 0.6 * widths[0]


def test_scores_of_a_spark_summary(cdnow_transactions, cdnow_summary, cdnow_spark, fitted):
    bgnbd, spend = fitted
    summary = rfm_summary_spark(
        cdnow_spark, "customer_id", "date", "amount", observation_end="1997-09-30"
    )
    scores = score_spark(bgnbd, spend, summary, n_draws=100, random_state=2, tiers=False)
    actual = scores.toPandas().set_index("customer_id").sort_index()
    expected = customer_lifetime_value(
        bgnbd, spend, cdnow_summary, n_draws=100, random_state=2
    ).table
    # The summaries' mean spends differ by the rounding of sums added in another order.
    # CDNOW amounts are never negative, so that bound (tests/summation.py) is relative
    # here: (n + 1) eps for a customer's n transactions. Expected spend and CLV are
    # linear in the mean spend (the interval ends are quantiles of draws that are), so
    # the scores inherit it, plus a few dozen eps of the scoring's own roundings of
    # slightly different inputs: 1e-12 covers both with room, and one cent more or less
    # among a customer's purchases (relative 1e-5 or more) would still fail.
    assert (cdnow_transactions["amount"] >= 0).all()
    most = cdnow_transactions.groupby("customer_id").size().max()
    assert (most + 1) * EPS < 1e-12 / 50
    pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-12, atol=0)


def test_value_thresholds_and_no_tiers(cdnow_summary, cdnow_spark, fitted):
    bgnbd, spend = fitted
    summary = rfm_summary_spark(
        cdnow_spark, "customer_id", "date", "amount", observation_end="1997-09-30"
    )
    thresholds = {"gold": 100.0, "silver": 20.0, "bronze": 0.0}
    scores = score_spark(
        bgnbd, spend, summary, n_draws=50, random_state=1, thresholds=thresholds
    ).toPandas()
    clv = scores["clv"].to_numpy()
    expected = np.where(clv >= 100, "gold", np.where(clv >= 20, "silver", "bronze"))
    np.testing.assert_array_equal(scores["tier"].to_numpy(), expected)
    plain = score_spark(bgnbd, spend, summary, n_draws=50, random_state=1, tiers=False)
    assert "tier" not in plain.columns


def test_scoring_checks_units_and_columns(cdnow_spark, fitted):
    bgnbd, spend = fitted
    daily = rfm_summary_spark(
        cdnow_spark, "customer_id", "date", "amount", observation_end="1997-09-30", time_unit="D"
    )
    with pytest.raises(ValueError, match="fitted on a summary in 'W' but this summary is in 'D'"):
        score_spark(bgnbd, spend, daily, n_draws=10, tiers=False)
    no_value = rfm_summary_spark(cdnow_spark, "customer_id", "date", observation_end="1997-09-30")
    with pytest.raises(DataValidationError, match="monetary_value"):
        score_spark(bgnbd, spend, no_value, n_draws=10, tiers=False)


# --------------------------------------------------------------------------------------
# Reliability (issue 15): bad input refused as in the pandas path, offsets at wall clock
# --------------------------------------------------------------------------------------
def test_mixed_utc_offsets_agree_with_pandas(spark):
    frame = pd.DataFrame(
        {
            "id": [7, 7, 7, 8, 9],
            "at": [
                "2021-03-01T23:30:00+02:00",
                "2021-03-02 00:10:00-05:00",
                "2021-03-05T23:59:00Z",
                "2021-03-09T08:00:00",
                "2021-03-09",
            ],
            "v": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    expected = rfm_summary(frame, "id", "at", "v", time_unit="D")
    actual = to_pandas(rfm_summary_spark(spark.createDataFrame(frame), "id", "at", "v",
                                         time_unit="D"))
    assert_same_summary(expected, actual, frame)
    assert actual.loc[7].tolist() == [2, 4.0, 8.0, 2.5]
    stamped = frame.iloc[:3].assign(
        at=["2021-03-01 23:30+0200", "2021-03-02 00:10-0500", "2021-03-05 23:59+0000"]
    )
    options = {"date_format": "%Y-%m-%d %H:%M%z"}
    expected = rfm_summary(stamped, "id", "at", "v", **options)
    actual = to_pandas(rfm_summary_spark(spark.createDataFrame(stamped), "id", "at", "v",
                                         **options))
    assert_same_summary(expected, actual, stamped)


def test_bad_input_is_refused_as_in_pandas(spark):
    day = ["2020-01-01", "2020-01-05"]
    cases = [
        (spark.createDataFrame([([1], day[0]), ([1], day[1])], "id array<int>, day string"),
         {}, r"column 'id' holds values of type array<int>, not single customer id values"),
        (spark.createDataFrame([(b"a", day[0])], "id binary, day string"),
         {}, r"column 'id' holds values of type binary"),
        (spark.createDataFrame([(" ", day[0]), ("a", day[1])], "id string, day string"),
         {}, r"'id': 1 of 2 rows have no customer id"),
        (spark.createDataFrame([(float("nan"), day[0]), (1.0, day[1])], "id double, day string"),
         {}, r"'id': 1 of 2 rows have no customer id"),
        (spark.createDataFrame([(1, ""), (1, day[1])], "id int, day string"),
         {}, r"'day': 1 of 2 rows have no date"),
        (spark.createDataFrame([(1, "9999-12-31"), (1, day[1])], "id int, day string"),
         {}, r"'day': 1 of 2 rows are dates outside the supported years 1678 to 2261"),
        (spark.createDataFrame([(1, day[0], 1e308), (1, day[1], 1e308)],
                               "id int, day string, v double"),
         {"value_col": "v"}, r"'v': the values of 1 customer\(s\) add up beyond the float "
         r"range .* first customer ids \[1\]"),
        (spark.createDataFrame([(1, day[0], [1.0])], "id int, day string, v array<double>"),
         {"value_col": "v"}, r"column 'v' holds values of type array<double>"),
        (spark.createDataFrame([(1, day[0], day[0])], "id int, day string, day string"),
         {}, r"column 'day' is 2 columns of the data"),
        (spark.createDataFrame([], "id int, day string"), {}, "the transaction log is empty"),
    ]
    for sdf, options, message in cases:
        with pytest.raises(DataValidationError, match=message) as err:
            rfm_summary_spark(sdf, "id", "day", **options)
        assert "\n" not in str(err.value)
    good = spark.createDataFrame([(1, day[0]), (1, day[1])], "id int, day string")
    with pytest.raises(ValueError, match="observation_end='9999-01-01' is outside"):
        rfm_summary_spark(good, "id", "day", observation_end="9999-01-01")
    with pytest.raises(DataValidationError, match="no transaction falls on or before"):
        calibration_holdout_split_spark(good, "id", "day", calibration_end="2019-12-31")
