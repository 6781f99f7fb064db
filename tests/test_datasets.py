"""Bundled CDNOW data: counts of Fader, Hardie and Lee (2005) and the loader's contract."""

import numpy as np
import pandas as pd
import pytest

from clvmodels.datasets import load_cdnow


@pytest.mark.parametrize(
    ("sample", "n_rows", "n_customers"),
    [(True, 6_919, 2_357), (False, 69_659, 23_570)],
    ids=["sample", "master"],
)
def test_counts_and_span(sample, n_rows, n_customers):
    log = load_cdnow(sample=sample)
    assert len(log) == n_rows
    assert log["customer_id"].nunique() == n_customers
    assert log["date"].min() == pd.Timestamp("1997-01-01")
    assert log["date"].max() == pd.Timestamp("1998-06-30")
    # The whole cohort made its first purchase in the first quarter of 1997.
    assert log.groupby("customer_id")["date"].min().max() < pd.Timestamp("1997-04-01")


def test_columns_and_dtypes():
    log = load_cdnow()
    assert list(log.columns) == ["customer_id", "date", "quantity", "amount"]
    assert log["customer_id"].dtype == np.int64
    assert log["quantity"].dtype == np.int64
    assert log["amount"].dtype == np.float64
    assert pd.api.types.is_datetime64_dtype(log["date"].dtype)


def test_sample_ids_follow_the_paper():
    log = load_cdnow()
    assert sorted(log["customer_id"].unique()) == list(range(1, 2_358))
    first = log[log["customer_id"] == 1]
    assert first["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "1997-01-01",
        "1997-01-18",
        "1997-08-02",
        "1997-12-12",
    ]
    assert first["amount"].tolist() == [29.33, 29.73, 14.96, 26.48]
    assert first["quantity"].tolist() == [2, 2, 1, 2]


def test_totals_are_the_published_file_totals():
    # Sums over the distributed text files, which pin the exact content of the copy.
    sample, master = load_cdnow(True), load_cdnow(False)
    assert int(sample["quantity"].sum()) == 16_479
    assert round(float(sample["amount"].sum()), 2) == 244_091.94
    assert int(master["quantity"].sum()) == 167_881
    assert round(float(master["amount"].sum()), 2) == 2_500_315.63


def test_sample_is_a_subset_of_the_master_cohort():
    sample, master = load_cdnow(True), load_cdnow(False)
    key = ["date", "quantity", "amount"]
    merged = sample.merge(master, on=key, how="left", suffixes=("", "_master"))
    assert merged["customer_id_master"].notna().all()


def test_each_call_returns_an_independent_copy():
    log = load_cdnow()
    log.loc[0, "amount"] = -1.0
    assert load_cdnow().loc[0, "amount"] == 29.33
