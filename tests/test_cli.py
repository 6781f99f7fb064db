"""The command line: demo, forecast, one-line errors, atomic output."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from clvmodels.cli import app, write_table_atomically

runner = CliRunner()


@pytest.fixture(scope="module")
def transactions_csv(tmp_path_factory, cdnow_transactions):
    path = tmp_path_factory.mktemp("tx") / "transactions.csv"
    cdnow_transactions.to_csv(path, index=False)
    return path


def _forecast_args(transactions, output, *extra):
    return [
        "forecast", "--transactions", str(transactions), "--customer-col", "customer_id",
        "--date-col", "date", "--value-col", "amount", "--output", str(output),
        "--draws", "50", "--quiet", *extra,
    ]


def test_forecast_csv_to_parquet(transactions_csv, tmp_path):
    out = tmp_path / "forecast.parquet"
    result = runner.invoke(app, _forecast_args(transactions_csv, out, "--segments"))
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert len(table) == 2357
    for col in ("frequency", "recency", "T", "clv", "clv_lower", "clv_upper", "tier"):
        assert col in table.columns
    assert (table["clv_lower"] <= table["clv"]).all()
    assert (table["clv"] <= table["clv_upper"]).all()


def test_forecast_parquet_to_csv_with_observation_end(cdnow_transactions, tmp_path):
    src = tmp_path / "tx.parquet"
    cdnow_transactions.to_parquet(src)
    out = tmp_path / "forecast.csv"
    result = runner.invoke(
        app, _forecast_args(src, out, "--observation-end", "1997-09-30", "--horizon-months", "6")
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, index_col=0)
    assert table["T"].max() == pytest.approx(272 / 7, abs=1e-9)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--value-col", "price", "value column 'price' is not in the transactions file"),
        ("--transactions", "{tmp}/missing.csv", "does not exist"),
        ("--output", "{tmp}/forecast.txt", "must end in .csv or .parquet"),
        ("--observation-end", "not-a-date", "observation_end"),
        ("--interval", "1.5", "interval"),
    ],
)
def test_bad_input_is_one_line_without_output(transactions_csv, tmp_path, flag, value, message):
    out = tmp_path / "forecast.csv"
    args = _forecast_args(transactions_csv, out)
    value = value.format(tmp=tmp_path)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_rows_are_named(tmp_path):
    src = tmp_path / "tx.csv"
    pd.DataFrame(
        {"customer_id": [1, 1, 2], "date": ["2024-01-01", "2024-02-30", "2024-01-05"],
         "amount": [10.0, 12.0, 8.0]}
    ).to_csv(src, index=False)
    result = runner.invoke(app, _forecast_args(src, tmp_path / "f.csv"))
    assert result.exit_code == 2
    assert "date" in result.output and "1" in result.output


def test_entry_point_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "clvmodels", "forecast", "--transactions",
         str(tmp_path / "nope.csv"), "--customer-col", "c", "--date-col", "d",
         "--value-col", "v", "--output", str(tmp_path / "o.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("clvmodels: error:")
    assert "Traceback" not in proc.stderr


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    class Exploding(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            raise OSError("disk full")

    target = tmp_path / "out.csv"
    with pytest.raises(OSError, match="disk full"):
        write_table_atomically(Exploding({"a": [1]}), target)
    assert list(tmp_path.iterdir()) == []


def test_report_command_writes_html(transactions_csv, tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(app, [
        "report", "--transactions", str(transactions_csv), "--customer-col", "customer_id",
        "--date-col", "date", "--value-col", "amount", "--calibration-end", "1997-09-30",
        "--output", str(out), "--draws", "50", "--mcmc-draws", "0", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") or html.lstrip().lower().startswith("<!doctype")
    assert "data:image/png;base64" in html
    assert "http://" not in html.replace("http://www.w3.org", "")


def test_demo_writes_table_models_and_report(tmp_path):
    result = runner.invoke(app, ["demo", "--output-dir", str(tmp_path), "--draws", "100",
                                 "--mcmc-draws", "0"])
    assert result.exit_code == 0, result.output
    assert "BetaGeo parameters" in result.output
    assert "Top 10 customers by CLV" in result.output
    table = pd.read_csv(tmp_path / "customers.csv", index_col=0)
    assert len(table) == 2357
    assert {"clv", "clv_lower", "clv_upper", "tier"} <= set(table.columns)
    assert (tmp_path / "bgnbd.json").exists() and (tmp_path / "gamma_gamma.json").exists()
    assert (tmp_path / "report.html").stat().st_size > 50_000
