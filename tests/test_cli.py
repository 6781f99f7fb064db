"""The command line: demo, forecast, one-line errors, atomic output."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clvmodels.calibration import recalibrated
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


def test_forecast_with_both_tier_probabilities_recalibrates_the_top_tier(
    transactions_csv, tmp_path
):
    out = tmp_path / "forecast.csv"
    args = _forecast_args(transactions_csv, out, "--segments", "--predictive",
                          "--horizon-months", "6", "--draws", "80", "--n-futures", "40")
    args.remove("--quiet")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # Six months before the log's end (1998-06-30) the models were refitted and tried.
    found = re.search(r"Top-tier probabilities tried on 1997-12-\d\d to 1998-06-30 .*?slope "
                      r"([0-9.]+), intercept ([+-][0-9.]+)", result.output)
    assert found, result.output
    # The tier table's short headers are defined by the line above it.
    assert "realised = share of simulated futures" in result.output
    header = next(line for line in result.output.splitlines() if "share of value" in line)
    assert header.split() == ["customers", "CLV", "lower", "upper", "share", "of", "value",
                              "tier", "probability", "realised"], header
    table = pd.read_csv(out, index_col=0)
    raw = table["top_tier_probability_realised"].to_numpy()
    # 40 futures per customer (of 80 draws): shares of 40 (the top tier holds no zeros).
    np.testing.assert_allclose(raw * 40, np.round(raw * 40), atol=1e-6)
    np.testing.assert_allclose(
        table["top_tier_probability_realised_recalibrated"],
        recalibrated(raw, float(found.group(2)), float(found.group(1))), atol=0.01,
    )
    args[args.index("--output") + 1] = str(tmp_path / "plain.csv")
    result = runner.invoke(app, [*args, "--no-tier-backtest"])
    assert result.exit_code == 0 and "Top-tier probabilities tried" not in result.output
    assert "top_tier_probability_realised_recalibrated" not in pd.read_csv(
        tmp_path / "plain.csv", nrows=1).columns


def test_forecast_with_common_shocks_widens_the_totals(transactions_csv, tmp_path):
    out = tmp_path / "forecast.csv"
    args = _forecast_args(transactions_csv, out, "--segments", "--predictive",
                          "--no-tier-backtest", "--common-shocks", "--draws", "300")
    args.remove("--quiet")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    number = r"([0-9,]+)"
    interval = rf"{number} \(interval {number} to {number}; predictive {number} to {number}\)"
    plain = re.search(rf"Portfolio CLV over 12 months, discounted at 1% per month: {interval}",
                      result.output)  # fmt: skip
    shocked = re.search(
        rf"With shocks common to all customers \(per-week shock sd ([0-9.]+), lag-one "
        rf"correlation (-?[0-9.]+), level error sd ([0-9.]+): posterior means, \d backtests, "
        rf"(\d+)% of a trend taken in by the fit; refits\): {interval}; the tiers' totals "
        "include them", result.output,
    )  # fmt: skip
    assert plain and shocked, result.output
    plain_values = [float(v.replace(",", "")) for v in plain.groups()]
    shocked_values = [float(v.replace(",", "")) for v in shocked.groups()[4:]]
    assert 0.15 < float(shocked.group(1)) < 0.3  # CDNOW's weekly scatter beyond noise
    assert 30 < int(shocked.group(4)) < 70  # BG/NBD's curve takes about half of a trend
    assert shocked_values[0] == plain_values[0]  # the shocks are mean-preserving
    for low, high in ((1, 2), (3, 4)):
        assert shocked_values[high] - shocked_values[low] > 1.5 * (
            plain_values[high] - plain_values[low])  # fmt: skip
    assert len(pd.read_csv(out, index_col=0)) == 2357


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
        ("--value-col", "price", "missing column(s) ['price']"),
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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "Nope"], "unknown transaction model 'Nope': choose one of ["),
        (["--spend-model", "BetaGeo"], "BetaGeo is not a spend model"),
        (["--period", "W", "--horizon-months", "6"], "--horizon-months counts months"),
        (["--discount-rate", "-1"], "discount_rate"),
        (["--n-futures", "20"], "n_futures needs predictive=True"),
        (["--predictive", "--n-futures", "80"], "n_futures must be"),
    ],
)
def test_bad_settings_are_one_line_without_output(transactions_csv, tmp_path, extra, message):
    result = runner.invoke(app, _forecast_args(transactions_csv, tmp_path / "f.csv", *extra))
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_forecast_reads_a_glob_of_files_with_calendar_options(cdnow_transactions, tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    for year in (1997, 1998):
        part = cdnow_transactions[cdnow_transactions["date"].dt.year == year]
        part.to_csv(folder / f"{year}.csv", index=False)
    out = tmp_path / "forecast.csv"
    args = _forecast_args(folder / "*.csv", out, "--horizon", "2", "--period", "Q",
                          "--discount-rate", "0.03", "--random-state", "3",
                          "--model", "BetaGeo", "--spend-model", "GammaGamma")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, index_col=0)
    assert len(table) == 2357 and (table["clv"] > 0).all()
    # The old spellings still work: the same seed gives the same numbers.
    again = tmp_path / "again.csv"
    old = _forecast_args(folder / "*.csv", again, "--horizon", "2", "--period", "Q",
                         "--discount-rate", "0.03", "--seed", "3")
    assert runner.invoke(app, old).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(again, index_col=0), table)


def test_forecast_with_the_mbg_cnbd_k_by_name(transactions_csv, cdnow_transactions, tmp_path):
    from clvmodels import BetaGeoCNBD, GammaGamma, customer_lifetime_value, rfm_summary

    out = tmp_path / "forecast.csv"
    args = _forecast_args(transactions_csv, out, "--model", "ModifiedBetaGeoCNBD",
                          "--observation-end", "1997-09-30")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, index_col=0)
    # The regularity column the model needs came from the log, and the forecast is the
    # Python API's BetaGeoCNBD(modified=True).
    summary = rfm_summary(cdnow_transactions, "customer_id", "date", "amount",
                          observation_end="1997-09-30", regularity=True)
    transaction = BetaGeoCNBD(modified=True).fit(summary)
    expected = customer_lifetime_value(transaction, GammaGamma().fit(summary), summary,
                                       n_draws=20, random_state=0).table
    np.testing.assert_allclose(table["clv"], expected["clv"].loc[table.index], rtol=1e-6)
    # ... not the unmodified BG/CNBD-k's: customers without repeat purchases may be gone.
    once = (table["frequency"] == 0).to_numpy()
    assert (table.loc[once, "probability_alive"] < 1).all()
    assert (BetaGeoCNBD().fit(summary).probability_alive(data=summary)[once] == 1).all()


def test_models_lists_the_registry():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert lines["BetaGeo"] == "transaction" and lines["GammaGamma"] == "spend"
    assert lines["HierarchicalBetaGeo"] == "transaction"
    assert lines["ModifiedBetaGeoCNBD"] == lines["BetaGeoCNBD"] == "transaction"


def test_report_pairs_models_and_spend_models(transactions_csv, tmp_path):
    args = [
        "report", "--transactions", str(transactions_csv), "--customer-col", "customer_id",
        "--date-col", "date", "--value-col", "amount", "--calibration-end", "1997-09-30",
        "--output", str(tmp_path / "r.html"), "--model", "BetaGeo", "--model", "BetaGeo",
        "--spend-model", "GammaGamma", "--spend-model", "GammaGamma", "--spend-model", "x",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "give one --spend-model, or one for each --model (2), not 3" in result.output
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
        "--model", "BetaGeo", "--horizon", "4", "--period", "Q", "--title", "CDNOW <1997>",
    ])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<title>CDNOW &lt;1997&gt;</title>" in html
    assert "BetaGeo + GammaGamma" in html and "4 quarters, discounted at 1% per quarter" in html
    assert html.startswith("<!DOCTYPE html>") or html.lstrip().lower().startswith("<!doctype")
    assert "data:image/png;base64" in html
    assert "http://" not in html.replace("http://www.w3.org", "")


def test_demo_writes_table_models_and_report(tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    result = runner.invoke(app, ["demo", "--output-dir", str(tmp_path), "--draws", "100",
                                 "--mcmc-draws", "0"])
    assert result.exit_code == 0, result.output
    # Not a terminal: the tables are set 120 wide, so no header is cut or wrapped.
    assert max(len(line) for line in result.output.splitlines()) <= 120
    for header in ("share of value", "tier probability", "realised", "CLV [90% interval]"):
        assert header in result.output, header
    assert "…" not in result.output, result.output
    # The family is compared; the best on holdout value (MBG/NBD on CDNOW) forecasts.
    assert "ModifiedBetaGeo parameters" in result.output
    assert "Top 10 customers by CLV" in result.output
    table = pd.read_csv(tmp_path / "customers.csv", index_col=0)
    assert len(table) == 2357
    assert {"clv", "clv_lower", "clv_upper", "tier"} <= set(table.columns)
    # Both tier probabilities, named apart; the demo's forecast is predictive.
    assert {"tier_probability", "tier_probability_realised"} <= set(table.columns)
    assert table["tier_probability_realised"].mean() < table["tier_probability"].mean()
    assert "realised = share of simulated futures" in " ".join(result.output.split())
    # The report's default: the forecast's total (and tiers' totals) with common shocks.
    assert "With shocks common to all customers (per-week shock sd" in result.output
    assert {p.name for p in tmp_path.glob("*.json")} == {"modified_beta_geo.json",
                                                         "gamma_gamma.json"}
    assert (tmp_path / "report.html").stat().st_size > 50_000
    assert "5 models compared" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_report_model_selection_defaults(transactions_csv, tmp_path, monkeypatch):
    import clvmodels.report

    seen = []
    monkeypatch.setattr(clvmodels.report, "build_report",
                        lambda *args, **kwargs: seen.append(kwargs) or args[5])
    base = ["report", "--transactions", str(transactions_csv), "--customer-col", "customer_id",
            "--date-col", "date", "--value-col", "amount", "--calibration-end", "1997-09-30",
            "--output", str(tmp_path / "r.html"), "--quiet"]
    # No --model: the family (the report's default), the best forecasting, no MCMC.
    assert runner.invoke(app, base).exit_code == 0
    assert (seen[-1]["models"], seen[-1]["forecast_model"], seen[-1]["bayesian"]) == (
        None, None, False)
    assert seen[-1]["common_shocks"] is True
    assert runner.invoke(app, [*base, "--no-common-shocks"]).exit_code == 0
    assert seen[-1]["common_shocks"] is False
    # A forecasting model by its transaction model's name; the Bayesian versions too.
    assert runner.invoke(app, [*base, "--forecast-model", "ParetoNBD", "--bayesian"]).exit_code == 0
    assert seen[-1]["forecast_model"] == "ParetoNBD + GammaGamma" and seen[-1]["bayesian"]
    args = [*base, "--model", "BetaGeoCNBD", "--model", "ParetoNBD", "--spend-model",
            "GammaGamma", "--forecast-model", "ParetoNBD + GammaGamma"]
    assert runner.invoke(app, args).exit_code == 0
    assert seen[-1]["models"] == {"BetaGeoCNBD + GammaGamma": ("BetaGeoCNBD", "GammaGamma"),
                                  "ParetoNBD + GammaGamma": ("ParetoNBD", "GammaGamma")}
    assert seen[-1]["forecast_model"] == "ParetoNBD + GammaGamma"
    # The model average, by its short name.
    assert runner.invoke(app, [*base, "--forecast-model", "average"]).exit_code == 0
    assert seen[-1]["forecast_model"] == "average"


def test_report_forecast_model_must_be_compared(transactions_csv, tmp_path):
    result = runner.invoke(app, [
        "report", "--transactions", str(transactions_csv), "--customer-col", "customer_id",
        "--date-col", "date", "--value-col", "amount", "--calibration-end", "1997-09-30",
        "--output", str(tmp_path / "r.html"), "--model", "BetaGeo", "--forecast-model",
        "ParetoNBD",
    ])
    assert result.exit_code == 2
    assert "forecast_model='ParetoNBD + GammaGamma' is not one of ['BetaGeo + GammaGamma']" in (
        result.output)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# Reliability (issue 15): one line on stderr and a documented exit code, never a
# traceback; an existing output untouched and nothing left beside it
# --------------------------------------------------------------------------------------
def _one_line(result, code):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clvmodels: error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n-draws", "nan"], "Invalid value for '--n-draws'"),
        (["--n-draws", "0"], "n_draws must be a positive whole number, got 0"),
        (["--horizon", "abc"], "Invalid value for '--horizon'"),
        (["--horizon", "1000000"], "horizon=1000000 periods is beyond the supported 10,000"),
        (["--horizon", "0"], "horizon must be at least 1 period"),
        (["--interval", "1.5"], "interval must lie strictly between 0 and 1, got 1.5"),
        (["--interval", "nan"], "interval must lie strictly between 0 and 1, got nan"),
        (["--discount-rate", "-0.01"], "discount_rate must be a finite non-negative rate"),
        (["--discount-rate", "inf"], "discount_rate must be a finite non-negative rate"),
        (["--period", "fortnight"], "period='fortnight' is not supported"),
        (["--time-unit", "fortnight"], "time_unit"),
        (["--freq", "x"], "freq"),
        (["--seed", "-1"], "random_state must be None or a whole number >= 0, got -1"),
        (["--observation-end", "yesterday"], "observation_end='yesterday' is not a date"),
        (["--observation-end", "9999-12-31"], "outside the supported years 1678 to 2261"),
        (["--model", "os.system"], "unknown transaction model 'os.system'"),
        (["--model", "HierarchicalBetaGeo", "--mcmc-draws", "-3"],
         "fit_options['draws'] must be a whole number >= 1 for HierarchicalBetaGeo, got -3"),
        (["--model", "HierarchicalBetaGeo", "--mcmc-chains", "0"],
         "fit_options['chains'] must be a whole number >= 1 for HierarchicalBetaGeo, got 0"),
        # Click's wording: "No such option: --x" (8.2) or "No such option '--x'." (8.1).
        (["--no-such-option", "1"], "No such option"),
    ],
)
def test_settings_are_refused_up_front_in_one_line(tmp_path, extra, message, monkeypatch):
    """Refused before the data is read: the transactions file here does not parse."""
    src = tmp_path / "tx.csv"
    src.write_text("this is not read\n")
    out = tmp_path / "f.csv"
    out.write_text("old")
    line = _one_line(runner.invoke(app, _forecast_args(src, out, *extra)), 2)
    assert message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "tx.csv"]
    assert out.read_text() == "old"


def test_mcmc_settings_of_no_bayesian_model_are_not_checked(transactions_csv, tmp_path):
    out = tmp_path / "f.csv"
    result = runner.invoke(app, _forecast_args(transactions_csv, out, "--mcmc-draws", "0"))
    assert result.exit_code == 0, result.output


def test_file_errors_name_the_file_before_any_work(transactions_csv, tmp_path):
    (tmp_path / "plain").write_text("x")
    (tmp_path / "empty").mkdir()
    cases = {
        "output under a file": (transactions_csv, tmp_path / "plain" / "f.csv",
                                f"cannot write output {tmp_path / 'plain' / 'f.csv'}: "
                                f"{tmp_path / 'plain'} is a file, not a folder"),
        "output is a folder": (transactions_csv, tmp_path / "empty",
                               "is a directory; give a file name"),
        "input is an empty folder": (tmp_path / "empty", tmp_path / "f.csv",
                                     "holds no Parquet or CSV files"),
        "input under a file": (tmp_path / "plain" / "tx.csv", tmp_path / "f.csv",
                               "does not exist"),
        "input is not a table": (tmp_path / "plain", tmp_path / "f.csv", "cannot tell the format"),
    }
    for name, (src, out, message) in cases.items():
        line = _one_line(runner.invoke(app, _forecast_args(src, out)), 2)
        assert message in line, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "plain"]
    assert list((tmp_path / "empty").iterdir()) == []


def test_an_output_folder_without_write_permission_is_refused_up_front(
    transactions_csv, tmp_path, monkeypatch
):
    # Root may write anywhere, so the permission answer is simulated.
    monkeypatch.setattr("clvmodels.cli.os.access", lambda path, mode: False)
    line = _one_line(runner.invoke(app, _forecast_args(transactions_csv, tmp_path / "f.csv")), 2)
    assert "no permission to write in folder" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(28, "No space left on device"), "No space left on device"),
        (OSError(5, "Input/output error"), "input/output error"),
        (PermissionError(13, "Permission denied", "f.csv"), "permission denied: f.csv"),
        (KeyboardInterrupt(), None),
    ],
)
def test_a_failed_write_leaves_the_old_output_and_no_temporary(
    transactions_csv, tmp_path, monkeypatch, error, message
):
    out = tmp_path / "f.csv"
    out.write_text("old")

    def failing_to_csv(self, path, *args, **kwargs):
        Path(path).write_text("half")
        raise error

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing_to_csv)
    result = runner.invoke(app, _forecast_args(transactions_csv, out))
    if message is None:  # Ctrl-C: exit 130, quietly
        assert result.exit_code == 130 and "Traceback" not in result.output
    else:
        line = _one_line(result, 2)
        assert line.startswith(f"clvmodels: error: cannot write {out}: ")
        assert message.lower() in line.lower()
    assert [p.name for p in tmp_path.iterdir()] == ["f.csv"]
    assert out.read_text() == "old"


def test_an_unreadable_input_is_one_line(transactions_csv, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(transactions_csv))

    monkeypatch.setattr("clvmodels.cli.run_pipeline", denied)
    line = _one_line(runner.invoke(app, _forecast_args(transactions_csv, tmp_path / "f.csv")), 2)
    assert line == f"clvmodels: error: permission denied: {transactions_csv}"


def test_an_internal_error_is_one_line_with_exit_1(transactions_csv, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'posterior'\nmore detail")

    monkeypatch.setattr("clvmodels.cli.run_pipeline", broken)
    args = _forecast_args(transactions_csv, tmp_path / "f.csv")
    line = _one_line(runner.invoke(app, args), 1)
    assert "internal error, AttributeError: 'NoneType' object has no attribute" in line
    assert "CLVMODELS_TRACEBACK=1" in line
    # Asked for, the traceback is there.
    monkeypatch.setenv("CLVMODELS_TRACEBACK", "1")
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and isinstance(result.exception, AttributeError)


def test_out_of_memory_is_one_line(transactions_csv, tmp_path, monkeypatch):
    def hungry(*args, **kwargs):
        raise MemoryError("Unable to allocate 80.0 GiB")

    monkeypatch.setattr("clvmodels.cli.run_pipeline", hungry)
    line = _one_line(runner.invoke(app, _forecast_args(transactions_csv, tmp_path / "f.csv")), 1)
    assert "out of memory (MemoryError: Unable to allocate 80.0 GiB)" in line


def test_ctrl_c_during_the_run_exits_130_and_writes_nothing(transactions_csv, tmp_path,
                                                            monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("clvmodels.cli.run_pipeline", interrupted)
    result = runner.invoke(app, _forecast_args(transactions_csv, tmp_path / "f.csv"))
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_signal_handlers_are_restored_after_a_command(transactions_csv, tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def spy(*args, **kwargs):
        seen.append(signal.getsignal(signal.SIGTERM))
        raise ValueError("stop here")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("clvmodels.cli.run_pipeline", spy)
        _one_line(runner.invoke(app, _forecast_args(transactions_csv, tmp_path / "f.csv")), 2)
    assert seen and seen[0] is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_report_refuses_an_output_under_a_file_before_fitting(transactions_csv, tmp_path):
    (tmp_path / "plain").write_text("x")
    result = runner.invoke(app, [
        "report", "--transactions", str(transactions_csv), "--customer-col", "customer_id",
        "--date-col", "date", "--value-col", "amount", "--calibration-end", "1997-09-30",
        "--output", str(tmp_path / "plain" / "r.html"), "--mcmc-draws", "0",
    ])
    assert "plain is a file, not a folder" in _one_line(result, 2)


# --------------------------------------------------------------------------------------
# Covariates: --customer-data with --purchase-/--dropout-/--spend-covariates
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def apparel_files(tmp_path_factory):
    from clvmodels import load_apparel, load_apparel_covariates

    folder = tmp_path_factory.mktemp("apparel")
    load_apparel().to_csv(folder / "transactions.csv", index=False)
    load_apparel_covariates().to_csv(folder / "customers.csv")
    load_apparel_covariates().to_parquet(folder / "customers.parquet")
    load_apparel_covariates().to_csv(folder / "no_id.csv", index=False)
    return folder


def _apparel_args(folder, output, *extra):
    return [
        "forecast", "--transactions", str(folder / "transactions.csv"),
        "--customer-col", "customer_id", "--date-col", "date", "--value-col", "amount",
        "--output", str(output), "--observation-end", "2005-10-10", "--draws", "20",
        "--quiet", *extra,
    ]


def _captured_pipeline(monkeypatch):
    """Run the real pipeline and keep its result, to read the fitted models."""
    import clvmodels.cli as cli
    import clvmodels.report as report

    results = []
    real = cli.run_pipeline

    def keeping(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(cli, "run_pipeline", keeping)
    monkeypatch.setattr(report, "run_pipeline", keeping)
    return results


@pytest.mark.parametrize("customers", ["customers.csv", "customers.parquet"])
def test_forecast_fits_the_covariates_the_python_api_fits(
    apparel_files, tmp_path, monkeypatch, customers
):
    from clvmodels import GammaGamma, ParetoNBD, load_apparel, load_apparel_covariates
    from clvmodels.data import rfm_summary

    results = _captured_pipeline(monkeypatch)
    out = tmp_path / "forecast.csv"
    result = runner.invoke(app, _apparel_args(
        apparel_files, out, "--model", "ParetoNBD", "--customer-data",
        str(apparel_files / customers), "--purchase-covariates", "gender,channel",
        "--dropout-covariates", "gender", "--spend-covariates", "channel",
    ))
    assert result.exit_code == 0, result.output
    summary = rfm_summary(load_apparel(), "customer_id", "date", "amount",
                          observation_end="2005-10-10").join(load_apparel_covariates())
    tx = ParetoNBD(purchase_covariates=["gender", "channel"],
                   dropout_covariates=["gender"]).fit(summary)
    spend = GammaGamma(spend_covariates=["channel"]).fit(summary)
    fitted = results[0]
    assert list(fitted.transaction_model.params_.index) == [
        "r", "alpha", "s", "beta", "purchase:gender", "purchase:channel", "dropout:gender"]
    # The same data and the same optimiser, read through another path (the rows can come
    # in another order, so sums round differently). Gamma-Gamma's q and gamma lie on a
    # flat ridge here (q ~ 400): the optimum moves along it by ~1e-5 relative with the
    # rounding, so the estimates are compared in units of their standard errors and the
    # log-likelihood, which the ridge leaves unchanged, tightly.
    for ours, direct in ((fitted.transaction_model, tx), (fitted.spend_model, spend)):
        assert list(ours.params_.index) == list(direct.params_.index)
        assert ours.log_likelihood_ == pytest.approx(direct.log_likelihood_, rel=1e-9)
        gap = np.abs(ours.params_.to_numpy() - direct.params_.to_numpy())
        assert np.all(gap <= 1e-3 * direct.standard_errors_.to_numpy()), (
            ours.params_, direct.params_)
    table = pd.read_csv(out, index_col=0)
    assert len(table) == 250 and {"gender", "channel"} <= set(table.columns)
    np.testing.assert_allclose(
        table["probability_alive"].to_numpy(), tx.probability_alive(data=summary).to_numpy(),
        rtol=1e-6,
    )


def test_report_takes_covariates_for_the_named_models(apparel_files, tmp_path, monkeypatch):
    results = _captured_pipeline(monkeypatch)
    out = tmp_path / "report.html"
    result = runner.invoke(app, [
        "report", "--transactions", str(apparel_files / "transactions.csv"),
        "--customer-col", "customer_id", "--date-col", "date", "--value-col", "amount",
        "--calibration-end", "2005-10-10", "--output", str(out), "--n-draws", "20",
        "--model", "ParetoNBD", "--model", "BetaGeo",
        "--customer-data", str(apparel_files / "customers.csv"),
        "--purchase-covariates", "gender", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    models = results[0].models
    for name in ("ParetoNBD + GammaGamma", "BetaGeo + GammaGamma"):
        assert "purchase:gender" in models[name][0].params_.index
        assert list(models[name][1].params_.index) == ["p", "q", "gamma"]  # no covariates
    assert "purchase:gender" in out.read_text()
    # The tier backtest refits the covariate model with the same customer data.
    check = results[0].tier_backtest
    assert results[0].warnings == [] and check is not None
    assert "top_tier_probability_realised_recalibrated" in results[0].customers()
    # Common shocks are measured on the log, which holds no covariates: said, not warned.
    assert results[0].common_shocks_note.endswith(
        "reads customer covariates ['gender'], which cohorts simulated from the log lack; "
        "measure the shocks against the model without them")  # fmt: skip
    assert "Common shocks: not estimated: " in " ".join(out.read_text().split())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "BetaGeoCNBD", "--customer-data", "{dir}/customers.csv",
          "--purchase-covariates", "gender"],
         "BetaGeoCNBD takes no covariates for --purchase-covariates; models that do: "),
        (["--customer-data", "{dir}/customers.csv", "--dropout-covariates", "gender,age"],
         "--dropout-covariates: customer data {dir}/customers.csv has no column(s) ['age']; "
         "its columns are ['gender', 'channel']"),
        (["--spend-covariates", "gender"],
         "--spend-covariates names columns of --customer-data: give that file too"),
        (["--customer-data", "{dir}/customers.csv", "--purchase-covariates", "gender,"],
         "--purchase-covariates must be column names separated by commas, got 'gender,'"),
        (["--customer-data", "{dir}/missing.csv"],
         "customer data file {dir}/missing.csv does not exist"),
        (["--customer-data", "{dir}/customers.txt"],
         "customer data {dir}/customers.txt must end in .csv or .parquet"),
        (["--customer-data", "{dir}/no_id.csv"],
         "customer data {dir}/no_id.csv has no column 'customer_id' (--customer-col)"),
        (["--customer-data", "{dir}/transactions.csv"],
         "customer_data: 183 customer ids have more than one row"),
    ],
)
def test_covariate_options_are_refused_in_one_line(apparel_files, tmp_path, extra, message):
    out = tmp_path / "f.csv"
    args = _apparel_args(apparel_files, out, *(e.format(dir=apparel_files) for e in extra))
    line = _one_line(runner.invoke(app, args), 2)
    assert message.format(dir=apparel_files) in line
    if message.endswith("models that do: "):
        # the package's (and any other registered class that takes them)
        takers = set(line.split("models that do: ")[1].split(", "))
        assert {"BetaGeo", "ModifiedBetaGeo", "ParetoNBD"} <= takers
        assert not {"BetaGeoCNBD", "ModifiedBetaGeoCNBD", "GammaGamma"} & takers
    assert not out.exists()


def test_report_refuses_covariates_for_the_default_family_and_bayesian(apparel_files, tmp_path):
    base = [
        "report", "--transactions", str(apparel_files / "transactions.csv"),
        "--customer-col", "customer_id", "--date-col", "date", "--value-col", "amount",
        "--calibration-end", "2005-10-10", "--output", str(tmp_path / "r.html"),
        "--customer-data", str(apparel_files / "customers.csv"),
        "--purchase-covariates", "gender",
    ]
    line = _one_line(runner.invoke(app, base), 2)
    assert "--purchase-covariates cannot be used with the default family" in line
    line = _one_line(runner.invoke(app, [*base, "--model", "ParetoNBD", "--bayesian"]), 2)
    assert "--purchase-covariates cannot be used with --bayesian" in line
